"""The ``gxpmes`` command line.

Exit codes (stable, scripts rely on them): 0 success / trail intact,
1 an integrity problem was found, 2 usage, input or I/O error.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.keys import TrustedKey, generate_private_key, load_private_key, load_public_key
from audit.ledger import Ledger
from audit.note import NoteSigner, NoteVerifier
from audit.verify import verify_ledger
from gxpmes.errors import GxpError
from isa95.errors import ISA95Error

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DEFAULT_KEY_NAME = "gxpmes-audit"


class CliError(Exception):
    """A usage or I/O problem reported with exit code 2."""


def _passphrase(confirm: bool) -> bytes:
    env = os.environ.get("GXPMES_KEY_PASSPHRASE")
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise CliError("no passphrase: set GXPMES_KEY_PASSPHRASE or run interactively")
    first = getpass.getpass("Key passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise CliError("passphrases differ")
    return first.encode()


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc


def _open_ledger(url: str, *, read_only: bool) -> Ledger:
    if read_only and "://" not in url and not Path(url).exists():
        raise CliError(f"no such database file: {url}")
    return Ledger.open(url, read_only=read_only)


# ------------------------------------------------------------------ keys


def cmd_keys_new(args: argparse.Namespace) -> int:
    from audit.keys import write_key_pair

    key = generate_private_key()
    private, public = write_key_pair(key, Path(args.out), _passphrase(confirm=True))
    verifier = NoteSigner(args.name, key).verifier
    print(f"private key: {private}\npublic key:  {public}\nkey id:      {verifier.key_id}")
    print(f"vkey:        {verifier.vkey()}")
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    ledger = _open_ledger(args.db, read_only=True)
    rows = []
    for key in ledger.keys.list_keys():
        rows.append(
            {
                "key_id": key.key_id,
                "name": key.verifier.name,
                "valid_from": key.valid_from.isoformat() if key.valid_from else None,
                "valid_until": key.valid_until.isoformat() if key.valid_until else None,
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                "revocation_reason": key.revocation_reason,
                "vkey": key.verifier.vkey(),
            }
        )
    print(json.dumps(rows, indent=2))
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from datetime import datetime

    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise CliError(f"--at {args.at!r} is not an ISO 8601 time") from exc
        if at.utcoffset() is None:
            raise CliError("--at needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    ledger = _open_ledger(args.db, read_only=False)
    key = ledger.keys.revoke(args.key_id, reason=args.reason, at=at)
    print(f"key {key.key_id} revoked at {key.revoked_at}")
    return EXIT_OK


# ----------------------------------------------------------------- audit


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    key = load_private_key(Path(args.key), _passphrase(confirm=False))
    ledger = _open_ledger(args.db, read_only=False)
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
    ledger = _open_ledger(args.db, read_only=True)
    checkpoint = _read_text(args.checkpoint) if args.checkpoint else None
    trusted = _checkpoint_keys(args.public_key, checkpoint)

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


def _checkpoint_keys(public_key: str | None, checkpoint: str | None) -> list[TrustedKey]:
    """The checkpoint key of ``public_key`` (a public.pem), if one is given.

    The key name is part of the key hash, so the key is trusted under every
    name the checkpoint's signature lines use.
    """
    if not public_key:
        return []
    raw = load_public_key(Path(public_key))
    names = _signature_names(checkpoint or "") or [DEFAULT_KEY_NAME]
    return [TrustedKey(NoteVerifier(name, raw)) for name in names]


def _engine(db: Any, trusted_system_keys: dict[str, bytes] | None = None) -> Any:
    """A batch engine that reads, captures and verifies, but holds no key to sign with."""
    from gxpmes.ebr.engine import BatchEngine
    from gxpmes.identity import IdentityService, SignatureService

    identity = IdentityService(db)
    return BatchEngine(
        db, identity, SignatureService(identity, None, trusted_system_keys=trusted_system_keys)
    )


def _signature_names(note: str) -> list[str]:
    names = []
    for line in note.splitlines():
        if line.startswith("— "):
            parts = line[2:].split(" ")
            if parts and parts[0] not in names:
                names.append(parts[0])
    return names


def cmd_audit_prove(args: argparse.Namespace) -> int:
    from audit.checkpoint import open_checkpoint

    ledger = _open_ledger(args.db, read_only=True)
    tree_size = None
    if args.checkpoint:
        tree_size = open_checkpoint(_read_text(args.checkpoint)).checkpoint.tree_size
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
    ledger = _open_ledger(args.db, read_only=True)
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


# ----------------------------------------------------------------- b2mml


def _b2mml(args: argparse.Namespace) -> Any:
    from isa95.b2mml.documents import B2MML

    return B2MML(args.schemas)


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def cmd_b2mml_validate(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, SchemaError

    data = _read_bytes(args.file)
    processor = _b2mml(args)
    try:
        issues = processor.validate(data, args.version)
    except SchemaError:
        raise
    except B2MMLError as exc:
        print(f"INVALID: {exc}")
        return EXIT_PROBLEM
    if issues:
        print(f"INVALID: {len(issues)} error(s)")
        for issue in issues:
            print(f"  {issue}")
        return EXIT_PROBLEM
    print("VALID")
    return EXIT_OK


def cmd_b2mml_read(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, ModelError, SchemaError

    data = _read_bytes(args.file)
    zone = None
    if args.assume_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(args.assume_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CliError(f"unknown time zone {args.assume_timezone!r}") from exc
    try:
        document = _b2mml(args).read(data, assume_timezone=zone)
    except SchemaError:
        raise
    except (B2MMLError, ModelError) as exc:
        print(f"gxpmes: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    result = {
        "version": document.version,
        "root": document.root,
        "noun": document.noun,
        "verb": document.verb,
        "application_area": None
        if document.application_area is None
        else {
            "creation": document.application_area.creation.isoformat(),
            "sender": document.application_area.sender,
            "receivers": document.application_area.receivers,
            "bod_id": document.application_area.bod_id,
        },
        "models": [m.model_dump(mode="json") for m in document.models],
        "unmapped": document.unmapped,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{document.version} {document.root}: {len(document.models)} {document.noun}")
        for path in document.unmapped:
            print(f"  not carried by the model: {path}")
    return EXIT_OK


def cmd_b2mml_convert(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, ModelError, SchemaError

    data = _read_bytes(args.file)
    try:
        converted = _b2mml(args).convert(data, args.to)
    except SchemaError:
        raise
    except (B2MMLError, ModelError) as exc:
        print(f"gxpmes: cannot convert {args.file}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        Path(args.out).write_bytes(converted)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.to} document to {args.out}")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit.db import open_engine
    from audit.schema import create_schema
    from gxpmes.database import upgrade_schema

    engine = open_engine(args.db)
    try:
        create_schema(engine)
        upgrade_schema(engine)
    finally:
        engine.dispose()
    print(f"database {args.db} is at the current schema")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from gxpmes.database import Database
    from gxpmes.identity.signatures import key_id_of
    from gxpmes.reports import render_report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    checkpoint = _read_text(args.checkpoint) if args.checkpoint else None
    trusted_checkpoint = _checkpoint_keys(args.public_key, checkpoint)
    trusted_signatures: dict[str, bytes] = {}
    signature_key = args.signature_key or args.public_key
    if signature_key:
        raw = load_public_key(Path(signature_key))
        trusted_signatures[key_id_of(raw)] = raw
    if "://" not in args.db and not Path(args.db).exists():
        raise CliError(f"no such database file: {args.db}")
    db = Database(args.db)
    try:
        engine = _engine(db, trusted_signatures)
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


def cmd_connect(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gxpmes.connectors.runner import Connector, load_config, run_until_signalled
    from gxpmes.database import Database

    config_path = Path(args.config)
    config = load_config(config_path)
    db = Database(args.db)
    connector = Connector(config, _engine(db), config_path.parent)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run_until_signalled(
            connector, stop, float(config.get("status_interval", args.status_interval))
        )
    finally:
        db.close()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from gxpmes.demo import run_demo

    return run_demo(Path(args.out), Path(args.schemas) if args.schemas else None)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gxpmes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run a whole example end to end on a local SQLite file")
    demo.add_argument("--out", default="gxpmes-demo", help="output folder (default: gxpmes-demo)")
    demo.add_argument("--schemas", help="MESA B2MML schema folder for the export step")
    demo.set_defaults(func=cmd_demo)

    db_cmd = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db_upgrade = db_cmd.add_parser("upgrade", help="create or migrate the schema (Alembic)")
    db_upgrade.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file path")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    keys = sub.add_parser("keys", help="checkpoint signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    new = keys.add_parser("new", help="create an Ed25519 key pair (private key encrypted)")
    new.add_argument("--out", required=True, help="folder for private.pem and public.pem")
    new.add_argument("--name", default=DEFAULT_KEY_NAME, help="key name used in signatures")
    new.set_defaults(func=cmd_keys_new)
    listing = keys.add_parser("list", help="list keys registered in a ledger")
    listing.add_argument("--db", required=True)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a registered key")
    revoke.add_argument("--db", required=True)
    revoke.add_argument("--key-id", required=True)
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--at", help="revocation time (ISO 8601 with zone; default now)")
    revoke.set_defaults(func=cmd_keys_revoke)

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

    connect = sub.add_parser("connect", help="run the OT connectors (OPC UA, MQTT, Sparkplug B)")
    connect.add_argument("--config", required=True, help="connector configuration (TOML)")
    connect.add_argument("--db", required=True)
    connect.add_argument("--status-interval", type=float, default=10.0)
    connect.set_defaults(func=cmd_connect)

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

    b2mml = sub.add_parser("b2mml", help="B2MML documents").add_subparsers(
        dest="b2mml_command", required=True
    )
    schemas_help = "folder with MESA's V0701/ and V0600/ XSDs (default: $GXPMES_B2MML_SCHEMAS)"
    validate = b2mml.add_parser("validate", help="validate a document against MESA's XSDs")
    validate.add_argument("file")
    validate.add_argument("--version", choices=["V0701", "V0600"])
    validate.add_argument("--schemas", help=schemas_help)
    validate.set_defaults(func=cmd_b2mml_validate)
    read = b2mml.add_parser("read", help="read a document into models")
    read.add_argument("file")
    read.add_argument("--json", action="store_true")
    read.add_argument("--assume-timezone", help="IANA zone for date-times sent without one")
    read.add_argument("--schemas", help=schemas_help)
    read.set_defaults(func=cmd_b2mml_read)
    convert = b2mml.add_parser("convert", help="convert a document to another release")
    convert.add_argument("file")
    convert.add_argument("--to", required=True, choices=["V0701", "V0600"])
    convert.add_argument("--out", required=True)
    convert.add_argument("--schemas", help=schemas_help)
    convert.set_defaults(func=cmd_b2mml_convert)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
