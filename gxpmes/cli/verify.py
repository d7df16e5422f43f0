"""``gxpmes verify``: the one command QA runs — the log, every record table, every signature."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from gxpmes.cli.audit import add_trust_options, anchored_check, head_keys
from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    checkpoint_keys,
    open_database,
    public_key,
    read_text,
)


def jobs_option(parser: argparse.ArgumentParser) -> None:
    """``--jobs N``: worker processes verifying the log (shared with ``audit verify``)."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes verifying the audit log, each a range of whole Merkle subtrees "
        "(default: one per CPU; 1 verifies in this process; the report is the same). "
        "With --trust the log is verified in one process",
    )


def checked_jobs(args: argparse.Namespace) -> int:
    jobs: int = args.jobs
    if jobs < 1:
        raise CliError(f"--jobs must be at least 1, not {jobs}")
    return jobs


def parallel_log_check(
    jobs: int,
    checkpoint: str | None,
    trusted: Sequence[Any],
    heads: Sequence[Any] | None,
    signature_keys: dict[str, bytes],
) -> Callable[[Any, Callable[[int], None]], Any]:
    """The log check ``verify_record`` makes by default, over ``jobs`` worker processes."""
    from audit.verify import keys_under_head_names, verify_ledger

    def check(ledger: Any, progress: Callable[[int], None]) -> Any:
        keys = (
            keys_under_head_names(
                ledger,
                [k.verifier.public_key for k in trusted] + list(signature_keys.values()),
            )
            if heads is None
            else list(heads)
        )
        return verify_ledger(
            ledger,
            checkpoint=checkpoint,
            trusted_keys=trusted,
            head_keys=keys or None,
            progress=progress,
            jobs=jobs,
        )

    return check


def cmd_verify(args: argparse.Namespace) -> int:
    from gxpmes.identity.signatures import key_id_of
    from gxpmes.records.verify import print_progress, verify_record

    jobs = checked_jobs(args)
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
        ledger_check = anchored
        if ledger_check is None and jobs > 1:
            ledger_check = parallel_log_check(jobs, checkpoint, trusted, heads, signature_keys)
        report = verify_record(
            db.engine,
            batch=args.batch,
            checkpoint=checkpoint,
            trusted_keys=trusted,
            head_keys=heads,
            signature_keys=signature_keys,
            progress=None if args.json else print_progress,
            ledger_check=ledger_check,
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
    jobs_option(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)
