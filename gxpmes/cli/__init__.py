"""The ``gxpmes`` command line.

Exit codes (stable, scripts rely on them): 0 success / trail intact,
1 an integrity problem was found, 2 usage, input or I/O error.

Each command group is a module with a ``register(subparsers)`` function;
adding a command is adding a module to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from audit.errors import AuditError
from gxpmes.cli import audit, b2mml, connect, db, demo, keys, report
from gxpmes.cli.common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, CliError
from gxpmes.errors import GxpError
from isa95.errors import ISA95Error

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "CliError", "build_parser", "main"]

# In the order ``gxpmes --help`` lists them.
COMMAND_MODULES = (demo, db, keys, audit, connect, report, b2mml)


def build_parser() -> argparse.ArgumentParser:
    """The ``gxpmes`` argument parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="gxpmes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gxpmes`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, AuditError, ISA95Error, GxpError) as exc:
        print(f"gxpmes: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_USAGE
