"""``gxpmes audit``: checkpoints, verification, proofs and export of the audit trail."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.keys import TrustedKey, load_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import keys_under_head_names, verify_ledger
from gxpmes.cli.common import (
    DB_HELP,
    DEFAULT_KEY_NAME,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    checkpoint_keys,
    open_ledger,
    output_file,
    passphrase,
    public_key,
    read_text,
    write_file,
)
from gxpmes.errors import FileAccessError


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    ledger = open_ledger(args.db, read_only=False)
    try:
        key = load_private_key(Path(args.key), passphrase(confirm=False))
        note = ledger.checkpoint(NoteSigner(args.name, key))
    finally:
        ledger.close()
    write_file(out, note)
    print(note, end="")
    return EXIT_OK


def head_keys(paths: list[str], ledger: Ledger) -> list[TrustedKey]:
    """The tree-head keys of the public.pem files ``paths``.

    The key name is part of the key hash, so each key is trusted under every
    name the stored heads' signature lines use: trust is in the key alone.
    """
    return keys_under_head_names(
        ledger, [public_key(path) for path in paths], default_name=DEFAULT_KEY_NAME
    )


def anchored_check(args: argparse.Namespace) -> Any:
    """With ``--trust``: ``check(ledger, progress)`` verifying against the trust file and every
    checkpoint given (``--checkpoint`` files, ``--checkpoints`` folders); else None."""
    if not args.trust:
        if args.checkpoints:
            raise CliError("--checkpoints needs --trust (the keys to check them with)")
        return None
    if args.public_key or args.head_key:
        raise CliError("--trust replaces --public-key and --head-key: list the keys in the file")
    from audit.anchoring.trust import load_trust_file
    from audit.anchoring.verify import collect_checkpoints, verify_anchored

    policy = load_trust_file(args.trust)
    given = collect_checkpoints(
        [args.checkpoint] if args.checkpoint else [], list(args.checkpoints or [])
    )

    def check(ledger: Ledger, progress: Any) -> Any:
        deep = getattr(args, "deep", False)
        return verify_anchored(ledger, policy, given=given, progress=progress, deep=deep)

    return check


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gxpmes.cli.verify import checked_jobs

    checked_jobs(args)  # refused before the database is opened
    anchored = anchored_check(args)
    if anchored is None and bool(args.checkpoint) != bool(args.public_key):
        raise CliError("--checkpoint and --public-key go together")
    checkpoint = read_text(args.checkpoint) if args.checkpoint else None
    trusted = checkpoint_keys(args.public_key, checkpoint)
    ledger = open_ledger(args.db, read_only=True)

    def progress(done: int) -> None:
        if not args.json:
            print(f"  verified {done} entries", file=sys.stderr)

    try:
        if anchored is not None:
            report = anchored(ledger, progress)
        else:
            report = verify_ledger(
                ledger,
                checkpoint=checkpoint,
                trusted_keys=trusted,
                head_keys=head_keys(args.head_key or [], ledger),
                progress=progress,
                deep=args.deep,
                jobs=checked_jobs(args),
            )
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.summary())
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_PROBLEM


def cmd_audit_prove(args: argparse.Namespace) -> int:
    from audit.checkpoint import open_checkpoint

    tree_size = None
    if args.checkpoint:
        tree_size = open_checkpoint(read_text(args.checkpoint)).checkpoint.tree_size
    ledger = open_ledger(args.db, read_only=True)
    try:
        if args.leaf is not None:
            leaf_proof = ledger.prove_leaf(args.seq, args.leaf, tree_size)
        else:
            proof = ledger.prove_inclusion(args.seq, tree_size)
    finally:
        ledger.close()
    if args.leaf is not None:
        # Composed proof of one value of a block (audit.blocks.check_leaf_proof checks it).
        leaf_data = leaf_proof.as_json()
        if args.json:
            print(json.dumps(leaf_data, indent=2))
        else:
            print(
                f"value {args.leaf} of block entry {args.seq} (of {leaf_proof.block_size}) "
                f"in tree of {leaf_proof.tree_size}"
            )
            for h in (*leaf_data["block_path"], "--", *leaf_data["log_path"]):
                print(f"  {h}")
        return EXIT_OK
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
    target = output_file(args.out) if args.out else None
    ledger = open_ledger(args.db, read_only=True)
    try:
        try:
            out = open(target, "w", encoding="utf-8") if target else sys.stdout  # noqa: SIM115
        except OSError as exc:
            raise FileAccessError(f"cannot write {target}: {exc.strerror}") from exc
        try:
            # Value blocks' leaves, read after the first entry: every entry read has its
            # block committed with it, so it is in the (later) read of the blocks.
            blocks: Iterator[tuple[int, bytes]] | None = None
            block: tuple[int, bytes] | None = None
            for seq, canonical, leaf, _tree in ledger.iter_raw_rows():
                if blocks is None:
                    blocks = ledger.iter_blocks()
                    block = next(blocks, None)
                record = {
                    "seq": seq,
                    "leaf_hash": leaf.hex(),
                    "canonical": base64.b64encode(canonical).decode("ascii"),
                }
                while block is not None and block[0] < seq:  # no such entry: verify reports it
                    block = next(blocks, None)
                if block is not None and block[0] == seq:  # a value block's leaves
                    record["leaves"] = base64.b64encode(block[1]).decode("ascii")
                    block = next(blocks, None)
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
        finally:
            if out is not sys.stdout:
                out.close()
    finally:
        ledger.close()
    return EXIT_OK


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    """``--trust FILE`` and ``--checkpoints DIR`` (shared by ``audit verify`` and ``verify``)."""
    parser.add_argument(
        "--trust",
        metavar="TOML",
        help="trust file listing the trusted checkpoint (tree-head) keys, TSA certificates and "
        "witness keys with validity and revocations; keys, revocations and checkpoints in the "
        "database then count only as information",
    )
    parser.add_argument(
        "--checkpoints",
        action="append",
        metavar="DIR",
        help="folder of checkpoints kept outside the database (the directory sink's); the trail "
        "must be consistent with every one (repeatable; needs --trust)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit checkpoint|verify|prove|export``."""
    from gxpmes.cli.verify import jobs_option

    audit_cmd = sub.add_parser(
        "audit",
        help="the audit trail",
        description="Checkpoints, verification, inclusion proofs and export of the audit trail.",
    ).add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    from gxpmes.cli import audit_review

    audit_review.register(audit_cmd)

    cp = audit_cmd.add_parser(
        "checkpoint",
        help="write a signed checkpoint",
        description="Sign the trail's current size and root hash with a private key, record "
        "the checkpoint in the ledger and write it to a file.",
    )
    cp.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    cp.add_argument(
        "--key", required=True, metavar="PEM", help="encrypted private.pem (`gxpmes keys new`)"
    )
    cp.add_argument("--out", required=True, metavar="FILE", help="checkpoint file to write")
    cp.add_argument(
        "--name",
        default=DEFAULT_KEY_NAME,
        help=f"key name used in the signature (default: {DEFAULT_KEY_NAME})",
    )
    cp.set_defaults(func=cmd_audit_checkpoint)

    verify = audit_cmd.add_parser(
        "verify",
        help="verify the whole trail (exit 1 if it is not intact)",
        description="Recompute every hash of the trail; with a checkpoint, also check that the "
        "trail still extends what was signed; with the application's tree-head key, check every "
        "signed tree head and report entries under none as forged. Exit code 1 when a problem "
        "is found.",
    )
    verify.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="signed checkpoint file (needs --public-key or --trust)",
    )
    verify.add_argument(
        "--public-key", metavar="PEM", help="public.pem of the checkpoint key (needs --checkpoint)"
    )
    verify.add_argument(
        "--head-key",
        action="append",
        metavar="PEM",
        help="public.pem of the application's tree-head key; repeat for every key it has used "
        "(without it, rows inserted behind the ledger's back are not detected)",
    )
    add_trust_options(verify)
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.add_argument("--deep", action="store_true", help="also parse every entry fully (slower)")
    jobs_option(verify)
    verify.set_defaults(func=cmd_audit_verify)

    prove = audit_cmd.add_parser(
        "prove",
        help="inclusion proof of one entry",
        description="Print the RFC 9162 inclusion proof of one entry.",
    )
    prove.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    prove.add_argument(
        "--seq", required=True, type=int, help="sequence number of the entry (from 0)"
    )
    prove.add_argument(
        "--checkpoint", metavar="FILE", help="prove against this checkpoint's tree size"
    )
    prove.add_argument(
        "--leaf",
        type=int,
        metavar="INDEX",
        help="prove value INDEX (from 0) of block entry --seq: its path in the block "
        "composed with the entry's inclusion proof",
    )
    prove.add_argument("--json", action="store_true", help="machine-readable proof")
    prove.set_defaults(func=cmd_audit_prove)

    export = audit_cmd.add_parser(
        "export",
        help="export entries for independent re-hashing",
        description="Export every entry (sequence number, leaf hash, canonical bytes, and a "
        "value block's leaves) so anyone can re-hash the trail with hashlib alone.",
    )
    export.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    export.add_argument(
        "--jsonl", action="store_true", help="one JSON object per line (the only format)"
    )
    export.add_argument("--out", metavar="FILE", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_audit_export)
