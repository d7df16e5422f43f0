"""``gxpmes audit``: checkpoints, verification, proofs and export of the audit trail."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from audit.keys import load_private_key
from audit.note import NoteSigner
from audit.verify import verify_ledger
from gxpmes.cli.common import (
    DEFAULT_KEY_NAME,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    checkpoint_keys,
    open_ledger,
    passphrase,
    read_text,
)


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    key = load_private_key(Path(args.key), passphrase(confirm=False))
    ledger = open_ledger(args.db, read_only=False)
    note = ledger.checkpoint(NoteSigner(args.name, key))
    out = Path(args.out)
    try:
        out.write_text(note, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from exc
    print(note, end="")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    if bool(args.checkpoint) != bool(args.public_key):
        raise CliError("--checkpoint and --public-key go together")
    ledger = open_ledger(args.db, read_only=True)
    checkpoint = read_text(args.checkpoint) if args.checkpoint else None
    trusted = checkpoint_keys(args.public_key, checkpoint)

    def progress(done: int) -> None:
        if not args.json:
            print(f"  verified {done} entries", file=sys.stderr)

    report = verify_ledger(
        ledger, checkpoint=checkpoint, trusted_keys=trusted, progress=progress, deep=args.deep
    )
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_audit_prove(args: argparse.Namespace) -> int:
    from audit.checkpoint import open_checkpoint

    ledger = open_ledger(args.db, read_only=True)
    tree_size = None
    if args.checkpoint:
        tree_size = open_checkpoint(read_text(args.checkpoint)).checkpoint.tree_size
    proof = ledger.prove_inclusion(args.seq, tree_size)
    data = proof.as_json()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"entry {proof.leaf_index} in tree of {proof.tree_size}: root {data['root']}")
        for h in data["path"]:
            print(f"  {h}")
    return EXIT_OK


def cmd_audit_export(args: argparse.Namespace) -> int:
    if not args.jsonl:
        raise CliError("only --jsonl export is supported")
    ledger = open_ledger(args.db, read_only=True)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        for seq, canonical, leaf, _tree in ledger.iter_raw_rows():
            record = {
                "seq": seq,
                "leaf_hash": leaf.hex(),
                "canonical": base64.b64encode(canonical).decode("ascii"),
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit checkpoint|verify|prove|export``."""
    audit_cmd = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    cp = audit_cmd.add_parser("checkpoint", help="write a signed checkpoint")
    cp.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file path")
    cp.add_argument("--key", required=True, help="encrypted private.pem")
    cp.add_argument("--out", required=True, help="checkpoint file to write")
    cp.add_argument("--name", default=DEFAULT_KEY_NAME, help="key name used in the signature")
    cp.set_defaults(func=cmd_audit_checkpoint)

    verify = audit_cmd.add_parser("verify", help="verify the whole trail")
    verify.add_argument("--db", required=True)
    verify.add_argument("--checkpoint", help="signed checkpoint file")
    verify.add_argument("--public-key", help="public.pem of the checkpoint key")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.add_argument("--deep", action="store_true", help="parse every entry fully")
    verify.set_defaults(func=cmd_audit_verify)

    prove = audit_cmd.add_parser("prove", help="inclusion proof of one entry")
    prove.add_argument("--db", required=True)
    prove.add_argument("--seq", required=True, type=int)
    prove.add_argument("--checkpoint", help="prove against this checkpoint's tree size")
    prove.add_argument("--json", action="store_true")
    prove.set_defaults(func=cmd_audit_prove)

    export = audit_cmd.add_parser("export", help="export entries for independent re-hashing")
    export.add_argument("--db", required=True)
    export.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_audit_export)
