"""``gxpmes demo``: a whole example end to end on a local SQLite file."""

from __future__ import annotations

import argparse
from pathlib import Path

from gxpmes.cli.common import output_folder


def cmd_demo(args: argparse.Namespace) -> int:
    from gxpmes.demo import run_demo

    # The demo creates the folder itself, after checking --schemas.
    out = output_folder(args.out, create=False)
    return run_demo(out, Path(args.schemas) if args.schemas else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    demo = sub.add_parser(
        "demo",
        help="run a whole example end to end on a local SQLite file",
        description="Run one batch end to end (plant, users, recipe, execution, review, "
        "release, B2MML export, checkpoint, verification, a tampered copy caught) into a "
        "folder of its own. Exit code 1 if a check does not behave as expected.",
    )
    demo.add_argument(
        "--out", default="gxpmes-demo", metavar="DIR", help="output folder (default: gxpmes-demo)"
    )
    demo.add_argument(
        "--schemas",
        metavar="DIR",
        help="MESA B2MML schema folder for the export step (default: $GXPMES_B2MML_SCHEMAS, "
        "then the installed schemas; the export is skipped when there are none)",
    )
    demo.set_defaults(func=cmd_demo)
