"""``gxpmes witness``: run a C2SP witness for other sites' logs, and use one.

``serve`` cosigns checkpoints of the logs it is told about (origin and log
key, from the command line — never from the database) when they are
consistent with what it cosigned before; its state lives in its database.
``submit`` asks a witness to cosign a checkpoint of this site's log (proofs
come from the log's database); ``check`` counts trusted witnesses'
cosignatures on a checkpoint against a quorum.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from audit.keys import load_private_key, load_public_key
from audit.note import parse_vkey
from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    open_ledger,
    output_file,
    passphrase,
    read_text,
    write_file,
)

if TYPE_CHECKING:
    from audit.witness import CosignerVerifier, KnownLog

DEFAULT_LISTEN = "127.0.0.1:7380"


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"--listen {text!r}: give HOST:PORT (port 0 picks a free one)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _known_logs(values: list[str]) -> list[KnownLog]:
    from audit.witness import KnownLog, LogKey

    keys: dict[str, list[LogKey]] = {}
    for value in values:
        origin, sep, path = value.rpartition("=")
        if not sep or not origin or not path:
            raise CliError(f"--log {value!r}: give ORIGIN=KEYFILE")
        text = read_text(path)
        if text.lstrip().startswith("-----BEGIN"):
            key = LogKey(load_public_key(Path(path)))  # trusted under any signature name
        else:
            key = LogKey.from_verifier(parse_vkey(text))
        keys.setdefault(origin, []).append(key)
    return [KnownLog(origin, tuple(found)) for origin, found in keys.items()]


def _witness_key(value: str) -> CosignerVerifier:
    from audit.witness import parse_cosigner_vkey

    text = value if "+" in value and not Path(value).exists() else read_text(value)
    return parse_cosigner_vkey(text)


def cmd_witness_init(args: argparse.Namespace) -> int:
    from audit.witness import WitnessStore
    from gxpmes.dbopen import database_errors, require_database

    require_database(args.db, create=True)
    with database_errors(args.db):
        WitnessStore.open(args.db).close()
    print(f"witness tables ready in {args.db}")
    return EXIT_OK


def cmd_witness_serve(args: argparse.Namespace) -> int:
    from audit.witness import Cosigner, Witness, WitnessServer, WitnessStore
    from gxpmes.dbopen import database_errors, require_database

    logs = _known_logs(args.log)
    if not logs:
        raise CliError("give at least one --log ORIGIN=KEYFILE to witness")
    address = _listen(args.listen)
    cosigner = Cosigner(args.name, load_private_key(Path(args.key), passphrase(confirm=False)))
    require_database(args.db, create=False)
    with database_errors(args.db):
        store = WitnessStore.open(args.db)
    witness = Witness(cosigner, store, logs)
    try:
        server = WitnessServer(address, witness, args.prefix)
    except OSError as exc:
        store.close()
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from exc

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"witness {cosigner.name} listening on {server.url}")
    print(f"vkey: {cosigner.verifier.vkey()}")
    for log in witness.logs:
        print(f"witnessing: {log}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return EXIT_OK


def cmd_witness_vkey(args: argparse.Namespace) -> int:
    from audit.witness import CosignerVerifier

    print(CosignerVerifier(args.name, load_public_key(Path(args.public_key))).vkey())
    return EXIT_OK


def cmd_witness_submit(args: argparse.Namespace) -> int:
    from audit.note import split_note
    from audit.witness import WitnessRefused, append_cosignatures, request_cosignature
    from audit.witness.protocol import parse_tlog_checkpoint

    out = output_file(args.out) if args.out else None
    note = read_text(args.checkpoint)
    witness = _witness_key(args.witness)
    ledger = open_ledger(args.db, read_only=True)
    try:
        size = parse_tlog_checkpoint(split_note(note)[0]).tree_size

        def prove(old: int) -> list[bytes]:
            return list(ledger.prove_consistency(old, size).path)

        try:
            cosigned = request_cosignature(
                args.url,
                note,
                witness,
                prove,
                old_size=args.old_size,
            )
        except WitnessRefused as refused:
            print(f"witness refused: {refused}", file=sys.stderr)
            return EXIT_PROBLEM
    finally:
        ledger.close()
    result = append_cosignatures(note, [cosigned.line])
    if out is not None:
        write_file(out, result)
    print(result, end="")
    return EXIT_OK


def cmd_witness_status(args: argparse.Namespace) -> int:
    from audit.witness import probe_witness

    ledger = open_ledger(args.db, read_only=True)
    try:
        if args.checkpoint:
            note = read_text(args.checkpoint)
        else:
            stored = ledger.checkpoints()
            if not stored:
                raise CliError("the log holds no checkpoint to ask about; give --checkpoint")
            note = stored[-1]
        log_size = ledger.size()
    finally:
        ledger.close()
    view = probe_witness(args.url, note)
    print(view.describe())
    if view.fork:
        return EXIT_PROBLEM
    if view.size > log_size:
        print(
            f"the log holds {log_size} entries but the witness cosigned {view.size}: "
            "entries were removed or the log was rolled back",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    print(f"the log holds {log_size} entries: not behind the witness")
    return EXIT_OK


def cmd_witness_check(args: argparse.Namespace) -> int:
    from audit.witness import verify_cosignatures

    keys = [_witness_key(value) for value in args.witness]
    quorum = len(keys) if args.quorum is None else args.quorum
    report = verify_cosignatures(read_text(args.checkpoint), keys, quorum)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_PROBLEM


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``witness init|serve|vkey|submit|status|check``."""
    witness = sub.add_parser(
        "witness",
        help="C2SP transparency-log witness: cosign other sites' checkpoints",
        description="Run a C2SP tlog-witness for other sites' audit logs, ask one to cosign "
        "this site's checkpoints, and check cosignatures.",
    ).add_subparsers(dest="witness_command", required=True, metavar="COMMAND")

    init = witness.add_parser(
        "init",
        help="create the witness's tables (and an SQLite file)",
        description="Create the witness state tables in a database (the site's own or a "
        "separate one). Existing tables are kept.",
    )
    init.add_argument("--db", required=True, help=DB_HELP)
    init.set_defaults(func=cmd_witness_init)

    serve = witness.add_parser(
        "serve",
        help="answer add-checkpoint requests with cosignatures",
        description="Serve POST /add-checkpoint (c2sp.org/tlog-witness) until interrupted. "
        "The key passphrase comes from $GXPMES_KEY_PASSPHRASE or the terminal.",
    )
    serve.add_argument("--db", required=True, help=f"witness state database; {DB_HELP}")
    serve.add_argument("--key", required=True, metavar="PEM", help="the witness's private.pem")
    serve.add_argument(
        "--name", required=True, help="witness name in cosignatures, e.g. site-b.example/witness"
    )
    serve.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0: any free port)",
    )
    serve.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="ORIGIN=KEYFILE",
        help="a log to witness: its origin line and its checkpoint key (a vkey file, or a "
        "public.pem trusted under any key name); repeat for more logs",
    )
    serve.add_argument("--prefix", default="", help="URL path prefix of the endpoint")
    serve.set_defaults(func=cmd_witness_serve)

    vkey = witness.add_parser(
        "vkey",
        help="print a witness's verifier key (cosignature/v1)",
        description="Print the witness verifier key name+id+key (signature type 0x04) that "
        "relying parties put in their trust file.",
    )
    vkey.add_argument("--public-key", required=True, metavar="PEM", help="the witness's public.pem")
    vkey.add_argument("--name", required=True, help="the witness name it serves under")
    vkey.set_defaults(func=cmd_witness_vkey)

    submit = witness.add_parser(
        "submit",
        help="ask a witness to cosign a checkpoint of this site's log",
        description="Send a signed checkpoint with a consistency proof from this site's "
        "database to a witness; print (and with --out write) the checkpoint with the "
        "witness's cosignature. Exit 1 if the witness refuses (fork or rollback).",
    )
    submit.add_argument("--db", required=True, help=f"this site's log; {DB_HELP}")
    submit.add_argument("--checkpoint", required=True, metavar="FILE", help="signed checkpoint")
    submit.add_argument("--url", required=True, help="the witness's submission URL prefix")
    submit.add_argument(
        "--witness", required=True, metavar="VKEY", help="the witness's vkey (or a file holding it)"
    )
    submit.add_argument(
        "--old-size",
        type=int,
        default=0,
        help="size the witness is believed to hold (default 0: it tells)",
    )
    submit.add_argument("--out", metavar="FILE", help="write the cosigned checkpoint here")
    submit.set_defaults(func=cmd_witness_submit)

    status = witness.add_parser(
        "status",
        help="ask a witness how much of this site's log it has cosigned",
        description="Ask a witness which size of this log it last cosigned (its add-checkpoint "
        "answers tell, nothing changes) and compare with the log: exit 1 when the witness saw "
        "more entries than the log holds (truncation or rollback) or another root (fork).",
    )
    status.add_argument("--db", required=True, help=f"this site's log; {DB_HELP}")
    status.add_argument("--url", required=True, help="the witness's submission URL prefix")
    status.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a signed checkpoint of the log to ask with (default: the newest in the database)",
    )
    status.set_defaults(func=cmd_witness_status)

    check = witness.add_parser(
        "check",
        help="count trusted witnesses' cosignatures on a checkpoint",
        description="Exit 0 when at least --quorum of the given witnesses cosigned the "
        "checkpoint, else 1.",
    )
    check.add_argument("--checkpoint", required=True, metavar="FILE", help="cosigned checkpoint")
    check.add_argument(
        "--witness",
        action="append",
        required=True,
        metavar="VKEY",
        help="a trusted witness's vkey (or a file holding it); repeat",
    )
    check.add_argument(
        "--quorum", type=int, help="cosignatures needed (default: every witness given)"
    )
    check.set_defaults(func=cmd_witness_check)
