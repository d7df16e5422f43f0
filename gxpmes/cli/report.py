"""``gxpmes report``: the human-readable batch record."""

from __future__ import annotations

import argparse
from pathlib import Path

from audit.keys import load_public_key
from gxpmes.cli.common import (
    EXIT_OK,
    CliError,
    checkpoint_keys,
    read_text,
    verify_only_engine,
)


def cmd_report(args: argparse.Namespace) -> int:
    from gxpmes.database import Database
    from gxpmes.identity.signatures import key_id_of
    from gxpmes.reports import render_report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    checkpoint = read_text(args.checkpoint) if args.checkpoint else None
    trusted_checkpoint = checkpoint_keys(args.public_key, checkpoint)
    trusted_signatures: dict[str, bytes] = {}
    signature_key = args.signature_key or args.public_key
    if signature_key:
        raw = load_public_key(Path(signature_key))
        trusted_signatures[key_id_of(raw)] = raw
    if "://" not in args.db and not Path(args.db).exists():
        raise CliError(f"no such database file: {args.db}")
    db = Database(args.db)
    try:
        engine = verify_only_engine(db, trusted_signatures)
        written = render_report(
            engine,
            args.batch,
            Path(args.out),
            formats=formats,
            checkpoint=checkpoint,
            trusted_keys=trusted_checkpoint,
        )
    finally:
        db.close()
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report``."""
    report = sub.add_parser("report", help="human-readable batch record (HTML and PDF)")
    report.add_argument("--db", required=True)
    report.add_argument("--batch", required=True)
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--format", default="html,pdf", help="html,pdf (default both)")
    report.add_argument("--checkpoint", help="signed checkpoint to verify the trail against")
    report.add_argument("--public-key", help="public.pem of the checkpoint key")
    report.add_argument(
        "--signature-key", help="public.pem of the system signature key (default: --public-key)"
    )
    report.set_defaults(func=cmd_report)
