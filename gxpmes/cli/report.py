"""``gxpmes report``: the human-readable batch record."""

from __future__ import annotations

import argparse

from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    checkpoint_keys,
    open_database,
    optional_dependency,
    output_folder,
    public_key,
    read_text,
    verify_only_engine,
)


def cmd_report(args: argparse.Namespace) -> int:
    from gxpmes.identity.signatures import key_id_of

    with optional_dependency("reports"):
        from gxpmes.reports import collect_report, write_report
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if args.checkpoint and not args.public_key:
        raise CliError("--checkpoint needs --public-key (the checkpoint key's public.pem)")
    checkpoint = read_text(args.checkpoint) if args.checkpoint else None
    trusted_checkpoint = checkpoint_keys(args.public_key, checkpoint)
    trusted_signatures: dict[str, bytes] = {}
    signature_key = args.signature_key or args.public_key
    if signature_key:
        raw = public_key(signature_key)
        trusted_signatures[key_id_of(raw)] = raw
    db = open_database(args.db, read_only=True)
    try:
        out = output_folder(args.out)
        engine = verify_only_engine(db, trusted_signatures)
        with optional_dependency("reports"):  # the PDF's libraries load on first use
            data = collect_report(
                engine, args.batch, checkpoint=checkpoint, trusted_keys=trusted_checkpoint
            )
            written = write_report(data, out, formats=formats)
    finally:
        db.close()
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    # Not checked (no key given) is a warning, not a failure; only a failed check exits 1.
    print(f"verification: {data.banner or 'VERIFIED'}")
    for reason in data.seal["not_checked"]:
        print(f"  not checked: {reason}")
    return EXIT_PROBLEM if data.verdict == "failed" else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report``."""
    report = sub.add_parser(
        "report",
        help="human-readable batch record (HTML and PDF)",
        description="Write the batch record of one batch as HTML and/or PDF, with its "
        "signatures, review, deviations and the verification of the audit trail. Give the "
        "public keys so signatures and the trail are checked, not only shown: without them "
        "the report is marked NOT VERIFIED in amber (exit 0); a check that fails marks it "
        "VERIFICATION FAILED in red (exit 1).",
    )
    report.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    report.add_argument("--batch", required=True, metavar="ID", help="batch id")
    report.add_argument("--out", required=True, metavar="DIR", help="output folder")
    report.add_argument(
        "--format", default="html,pdf", help="html, pdf or html,pdf (default: html,pdf)"
    )
    report.add_argument(
        "--checkpoint", metavar="FILE", help="signed checkpoint to verify the trail against"
    )
    report.add_argument(
        "--public-key",
        metavar="PEM",
        help="public.pem of the checkpoint key (also the system signature key by default)",
    )
    report.add_argument(
        "--signature-key",
        metavar="PEM",
        help="public.pem of the system signature key (default: --public-key)",
    )
    report.set_defaults(func=cmd_report)
