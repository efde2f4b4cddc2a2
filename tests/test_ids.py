"""Identifiers: valid version-4 UUIDs, never repeated, also across a fork."""

from __future__ import annotations

import os
import uuid

from mparticle_analytics.ids import uuid4


def test_ids_are_valid_version_4_uuids_and_distinct() -> None:
    ids = [uuid4() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(value) for value in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == v for u, v in zip(parsed, ids))


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(writer, "".join(uuid4() for _ in range(10)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = os.read(reader, 4096).decode()
    os.close(reader)
    parent = "".join(uuid4() for _ in range(10))
    assert len(child) == 360 and child != parent
