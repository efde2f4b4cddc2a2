"""Process-wide hooks (after a fork, at exit) that must not keep a client alive."""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable


def weak_hook(method: Callable[[], Any]) -> Callable[[], None]:
    """A hook that runs ``method`` if its object still exists.

    Why weak: hooks live as long as the process, while a client may be
    discarded; a client that is gone must leave no work, and no memory, behind.
    """
    ref = weakref.WeakMethod(method)

    def hook() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return hook


def after_fork_in_child(method: Callable[[], Any]) -> None:
    """Run ``method`` in every child forked from now on (weakly: see ``weak_hook``)."""
    os.register_at_fork(after_in_child=weak_hook(method))
