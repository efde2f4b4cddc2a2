"""``python -m mparticle_analytics.devserver [--host H] [--port P] [--key K] [--secret S]``."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from .command import DESCRIPTION, configure_parser, run


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m mparticle_analytics.devserver", description=DESCRIPTION)
    return run(configure_parser(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
