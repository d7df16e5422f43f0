"""The ``gxpmes`` command line.

Each command group is a module with a ``register(subparsers)`` function;
adding a command is adding a module to :data:`COMMAND_MODULES`. Commands
raise the library's errors (:class:`~gxpmes.errors.GxpError`,
:class:`~audit.errors.AuditError`, :class:`~isa95.errors.ISA95Error`) and
:func:`main` alone turns them into exit codes and one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from audit.errors import AuditError
from gxpmes.cli import audit, b2mml, connect, db, demo, erp, keys, report, verify, witness
from gxpmes.cli.common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, CliError
from gxpmes.dbopen import URL_FORMAT, describe_failure
from gxpmes.errors import GxpError
from isa95.errors import ISA95Error

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "CliError", "build_parser", "main"]

# In the order ``gxpmes --help`` lists them.
COMMAND_MODULES = (demo, verify, db, keys, audit, witness, connect, report, b2mml, erp)

DESCRIPTION = """\
GxP manufacturing from the command line: a verifiable audit trail, electronic
batch records, batch record reports, OT connectors and B2MML exchange.
Run `gxpmes COMMAND --help` for the options of a command."""

EPILOG = f"""\
exit codes:
  0  success
  1  a check found a problem: the records are not intact (verify, audit
     verify), a document is not valid (b2mml validate), the demo's checks failed
  2  usage, input, file, database or connection error, told in one line on
     standard error (also when the reader of the output stops early, e.g. head)

environment:
  GXPMES_KEY_PASSPHRASE  passphrase of the encrypted private key (keys new,
                         audit checkpoint); asked on the terminal when unset
  GXPMES_B2MML_SCHEMAS   folder holding MESA's V0701/ and V0600/ B2MML schemas
                         (default of --schemas; else the installed ones)
  GXPMES_DATA_DIR        per-user data folder, where `gxpmes b2mml schemas install`
                         puts the schemas (default: the platform's, see
                         `gxpmes b2mml schemas path`)

database URL (--db):
  {URL_FORMAT.replace(", ", chr(10) + "  ")}
  Only `gxpmes db upgrade` and `gxpmes demo` create a database; every other
  command needs an existing one."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gxpmes")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"gxpmes: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``gxpmes`` argument parser with every command group registered."""
    parser = _Parser(
        prog="gxpmes",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"gxpmes {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _fail(message: str) -> int:
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"gxpmes: error: {line}", file=sys.stderr)
    return EXIT_USAGE


def _quiet_stdout() -> None:
    # The reader went away (e.g. `| head`): point stdout at devnull so the
    # interpreter's final flush cannot raise again (Python docs, "Note on SIGPIPE").
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in-process)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gxpmes`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe may show only here
        return code
    except BrokenPipeError:  # the reader stopped early (`| head`): quietly, no traceback
        _quiet_stdout()
        return EXIT_USAGE
    except (GxpError, AuditError, ISA95Error) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except OSError as exc:  # a file or device failure outside the checked boundaries
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        detail = describe_failure(exc)  # the database failed mid-command (server gone, ...)
        if detail is None:
            raise  # a bug: the traceback is what a report needs
        return _fail(f"database failure: {detail}")
