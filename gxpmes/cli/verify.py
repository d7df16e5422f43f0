"""``gxpmes verify``: the one command QA runs — the log, every record table, every signature."""

from __future__ import annotations

import argparse
import json

from gxpmes.cli.audit import add_trust_options, anchored_check, head_keys
from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    EXIT_PROBLEM,
    checkpoint_keys,
    open_database,
    public_key,
    read_text,
)


def cmd_verify(args: argparse.Namespace) -> int:
    from gxpmes.identity.signatures import key_id_of
    from gxpmes.records.verify import print_progress, verify_record

    anchored = anchored_check(args)
    checkpoint = read_text(args.checkpoint) if args.checkpoint else None
    trusted = checkpoint_keys(args.public_key, checkpoint)
    signature_keys: dict[str, bytes] = {}
    for path in args.signature_key or ([args.public_key] if args.public_key else []):
        raw = public_key(path)
        signature_keys[key_id_of(raw)] = raw
    if anchored is not None and not args.signature_key:
        # One key commonly signs heads, checkpoints and e-signatures: the file's keys.
        from audit.anchoring.trust import load_trust_file

        for key in load_trust_file(args.trust).checkpoint_keys(["gxpmes"]):
            raw = key.verifier.public_key
            signature_keys[key_id_of(raw)] = raw
    db = open_database(args.db, read_only=True)
    try:
        # Without --head-key, every key the user trusts may have signed the heads
        # (an installation commonly has one key for heads, checkpoints and signatures).
        heads = head_keys(args.head_key, db.ledger) if args.head_key else None
        report = verify_record(
            db.engine,
            batch=args.batch,
            checkpoint=checkpoint,
            trusted_keys=trusted,
            head_keys=heads,
            signature_keys=signature_keys,
            progress=None if args.json else print_progress,
            ledger_check=anchored,
        )
    finally:
        db.close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.summary())
        for line in report.lines():
            print(line)
        for warning in report.warnings:
            print(f"warning: {warning}")
    # A check left undone (no trusted key) is not a pass: QA gets exit 0 only for VERIFIED.
    return EXIT_OK if report.ok and report.complete else EXIT_PROBLEM


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``verify``."""
    verify = sub.add_parser(
        "verify",
        help="verify the audit trail, every batch-record table and every signature",
        description="Verify the audit log (hashes, chain, Merkle tree; against a signed "
        "checkpoint when one is given), then replay it and compare every record table both "
        "ways (row missing, row extra, column differs), and re-verify every e-signature "
        "against its record. Exit 0 only when all agree and every check could be made; 1 with "
        "one line per problem, or NOT VERIFIED when keys were missing (signatures and tree heads "
        "need --public-key / --signature-key).",
    )
    verify.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    verify.add_argument(
        "--batch", metavar="ID", help="check only this batch's rows (and all master data)"
    )
    verify.add_argument(
        "--checkpoint", metavar="FILE", help="signed checkpoint kept outside the database"
    )
    verify.add_argument(
        "--public-key", metavar="PEM", help="public.pem of the checkpoint (and system) key"
    )
    verify.add_argument(
        "--signature-key",
        metavar="PEM",
        action="append",
        help="public.pem of a system signature key (repeatable; default: --public-key)",
    )
    verify.add_argument(
        "--head-key",
        metavar="PEM",
        action="append",
        help="public.pem of the application's tree-head key (repeatable); "
        "entries no validly signed head covers are reported as forged "
        "(default: --public-key and --signature-key)",
    )
    add_trust_options(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)
