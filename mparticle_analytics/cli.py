"""``mparticle-analytics``: the library's console command, one subcommand per tool.

Subcommands register themselves through ``set_defaults(func=...)``, so adding
one is one ``add_parser`` call here and ``main`` never changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Optional

from .devserver.command import DESCRIPTION as DEVSERVER_DESCRIPTION
from .devserver.command import configure_parser as configure_devserver
from .version import VERSION


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mparticle-analytics",
        description="Tools for mparticle-analytics (Segment's API, delivered to mParticle).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    configure_devserver(
        commands.add_parser(
            "devserver",
            help="run a local mParticle-compatible endpoint",
            description=DEVSERVER_DESCRIPTION,
        )
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)
