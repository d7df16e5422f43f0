"""``gxpmes demo``: a whole example end to end on a local SQLite file."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from gxpmes.demo import run_demo

    return run_demo(Path(args.out), Path(args.schemas) if args.schemas else None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    demo = sub.add_parser("demo", help="run a whole example end to end on a local SQLite file")
    demo.add_argument("--out", default="gxpmes-demo", help="output folder (default: gxpmes-demo)")
    demo.add_argument("--schemas", help="MESA B2MML schema folder for the export step")
    demo.set_defaults(func=cmd_demo)
