"""``gxpmes erp route|send|receive|resend|resolve|status``: the ERP exchange."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import timedelta

from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    SCHEMAS_HELP,
    CliError,
    add_head_key_options,
    head_signer_of,
    open_database,
    optional_dependency,
    verify_only_engine,
)

ENDPOINT_HELP = (
    "amqp[s]://USER:PASS@HOST[:PORT]/VHOST?exchange=X&routing_key=Y (publish), "
    "...?queue=Q (consume), or dir:PATH (a drop folder)"
)


def _mode(args: argparse.Namespace) -> bool:
    if args.once == args.follow:
        raise CliError("give exactly one of --once and --follow")
    return bool(args.follow)


def _b2mml(args: argparse.Namespace) -> object:
    from isa95.b2mml.documents import B2MML

    return B2MML(args.schemas)


def cmd_route(args: argparse.Namespace) -> int:
    from gxpmes.cli.keys import os_actor
    from gxpmes.erp.outbox import DEFAULT_ROUTES, configure_route

    db = open_database(args.db, read_only=False, head_signer=head_signer_of(args))
    try:
        if args.defaults:
            if args.event:
                raise CliError("--defaults configures every event; name none")
            for event, documents in DEFAULT_ROUTES.items():
                configure_route(
                    db,
                    os_actor(),
                    event,
                    documents,
                    version=args.version,
                    sender=args.sender,
                    confirm=not args.no_confirm,
                    reason=args.reason,
                )
                print(f"{event}: {', '.join(documents)}")
        else:
            if not args.event:
                raise CliError("name an EVENT (and its documents), or give --defaults")
            configure_route(
                db,
                os_actor(),
                args.event[0],
                args.event[1:],
                version=args.version,
                sender=args.sender,
                confirm=not args.no_confirm,
                reason=args.reason,
            )
            print(f"{args.event[0]}: {', '.join(args.event[1:]) or '(nothing)'}")
    finally:
        db.close()
    return EXIT_OK


def cmd_send(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from gxpmes.erp.delivery import open_transport
    from gxpmes.erp.delivery.sender import Policy, Sender
    from gxpmes.erp.status import send_line

    follow = _mode(args)
    db = open_database(args.db, read_only=False, head_signer=head_signer_of(args))
    try:
        with optional_dependency("erp"):
            transport = open_transport(args.to)
        policy = Policy(
            max_attempts=args.max_attempts,
            backoff=args.backoff,
            confirm_within=timedelta(seconds=args.confirm_timeout)
            if args.confirm_timeout > 0
            else None,
        )
        sender = Sender(db, transport, policy)
        try:
            if not follow:
                sent = sender.run_once()
                print(send_line(db, sender.counts, float(sent), sender.down))
                return EXIT_OK
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            state = {"at": time.monotonic(), "sent": 0}

            def status() -> None:
                now = time.monotonic()
                rate = (sender.counts["sent"] - state["sent"]) / max(now - state["at"], 1e-9)
                state.update(at=now, sent=sender.counts["sent"])
                print(send_line(db, sender.counts, rate, sender.down), flush=True)

            sender.follow(stop, status=status, status_interval=args.status_interval)
            status()
        finally:
            transport.close()
    finally:
        db.close()
    return EXIT_OK


def cmd_receive(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from gxpmes.erp.delivery import open_source
    from gxpmes.erp.delivery.pump import receive
    from gxpmes.erp.inbound import Receiver
    from gxpmes.erp.status import receive_line

    follow = _mode(args)
    db = open_database(args.db, read_only=False, head_signer=head_signer_of(args))
    try:
        with optional_dependency("erp"):
            source = open_source(args.source)
        receiver = Receiver(verify_only_engine(db), _b2mml(args), sender=args.sender)
        counts: Counter[str] = Counter()
        stop = threading.Event()
        state = {"at": time.monotonic(), "n": 0}

        def status(down: str | None) -> None:
            now = time.monotonic()
            n = sum(counts[k] for k in ("accepted", "rejected", "invalid", "confirmation"))
            rate = (n - state["n"]) / max(now - state["at"], 1e-9)
            state.update(at=now, n=n)
            print(receive_line(counts, rate, down), flush=True)

        try:
            if follow:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stop.set())
            receive(
                receiver,
                source,
                follow=follow,
                stop=stop,
                counts=counts,
                status=status,
                status_interval=args.status_interval,
            )
            status(None)
        finally:
            source.close()
    finally:
        db.close()
    return EXIT_OK


def cmd_resend(args: argparse.Namespace) -> int:
    from gxpmes.cli.keys import os_actor
    from gxpmes.erp.confirmations import resend

    db = open_database(args.db, read_only=False, head_signer=head_signer_of(args))
    try:
        was = resend(db, os_actor(), args.message, reason=args.reason)
        print(f"{args.message}: {was} → pending (sent again by the next `gxpmes erp send`)")
    finally:
        db.close()
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace) -> int:
    from gxpmes.cli.audit_review import _password
    from gxpmes.erp.exceptions import resolve

    db = open_database(args.db, read_only=False, head_signer=head_signer_of(args))
    try:  # the library's errors (wrong password, no such exception, resolved) exit 2
        engine = verify_only_engine(db)
        session = engine.identity.login(args.user, _password(args.user))
        resolve(engine, session, args.exception, resolution=args.resolution)
        print(f"ERP exception {args.exception} resolved by {args.user}: {args.resolution}")
    finally:
        db.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from gxpmes.erp.exceptions import open_exceptions
    from gxpmes.erp.status import summary

    db = open_database(args.db, read_only=True)
    try:
        counts = summary(db, args.batch)
        print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
        for exc in open_exceptions(db, args.batch):
            print(
                f"open {exc['kind']} {exc['exception_id']} batch {exc['batch_id'] or '-'} "
                f"message {exc['message_id'] or '-'}: {exc['detail']}"
            )
    finally:
        db.close()
    return EXIT_OK


def _common(parser: argparse.ArgumentParser, *, mode: bool) -> None:
    parser.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    if mode:
        parser.add_argument("--once", action="store_true", help="take what is there, then stop")
        parser.add_argument(
            "--follow", action="store_true", help="keep going until SIGTERM or SIGINT"
        )
        parser.add_argument(
            "--status-interval",
            type=float,
            default=10.0,
            metavar="SECONDS",
            help="seconds between status lines with --follow (default: 10)",
        )
    add_head_key_options(parser)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``erp route|send|receive|resend|resolve|status``."""
    erp = sub.add_parser(
        "erp",
        help="ERP exchange: deliver the outbox, take orders, lots and confirmations in",
        description="Documents for ERP are written to an outbox with the GMP event that "
        "causes them; `erp send` delivers them (AMQP with publisher confirms, or a drop "
        "folder), `erp receive` takes production orders, materials, lots and ERP's "
        "ConfirmBODs in. See docs/erp.md.",
    )
    commands = erp.add_subparsers(dest="erp_command", required=True, metavar="COMMAND")

    route = commands.add_parser(
        "route",
        help="choose which documents a GMP event writes to the outbox (audited)",
        description="EVENT is batch.released, batch.rejected, batch.executed, "
        "weighing.recorded or charge.recorded; DOCUMENTS are BatchProductionRecord, "
        "OperationsPerformance, MaterialConsumption, MaterialProduction (none: the event "
        "writes nothing).",
    )
    route.add_argument("event", nargs="*", metavar="EVENT [DOCUMENT ...]", help="event, documents")
    route.add_argument("--defaults", action="store_true", help="the default routes of every event")
    route.add_argument(
        "--version",
        default="V0701",
        choices=("V0701", "V0600"),
        help="B2MML release written (default: V0701)",
    )
    route.add_argument("--sender", default="MES", help="our LogicalID in ApplicationArea")
    route.add_argument(
        "--no-confirm",
        action="store_true",
        help="ERP does not answer these documents with a ConfirmBOD",
    )
    route.add_argument("--reason", required=True, help="why the routing changes (audited)")
    _common(route, mode=False)
    route.set_defaults(func=cmd_route)

    send = commands.add_parser(
        "send",
        help="deliver the outbox in order per batch, at least once",
        description="Deliver pending documents in outbox order per batch; a document counts "
        "as sent when the broker confirmed it or its file is renamed into place. Failed "
        "attempts are retried with back-off; after --max-attempts an ERP exception shows on "
        "the batch in review (and retries go on).",
    )
    send.add_argument("--to", required=True, metavar="ENDPOINT", help=ENDPOINT_HELP)
    send.add_argument(
        "--max-attempts",
        type=int,
        default=10,
        metavar="N",
        help="failed attempts before an ERP exception (default: 10)",
    )
    send.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="first retry delay, doubled per attempt up to 300 s (default: 1)",
    )
    send.add_argument(
        "--confirm-timeout",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="time ERP has to confirm a document before an ERP exception "
        "(default: 86400; 0: never)",
    )
    _common(send, mode=True)
    send.set_defaults(func=cmd_send)

    receive = commands.add_parser(
        "receive",
        help="take orders, materials, lots and confirmations from ERP",
        description="Take Process/Sync OperationsSchedule (V0701), ProductionSchedule (V0600), "
        "MaterialDefinition, MaterialLot and MaterialInformation, answering each with a "
        "ConfirmBOD through the outbox, and ConfirmBOD / Acknowledge* for documents sent.",
    )
    receive.add_argument(
        "--from", dest="source", required=True, metavar="ENDPOINT", help=ENDPOINT_HELP
    )
    receive.add_argument("--sender", default="MES", help="our LogicalID in ConfirmBODs")
    receive.add_argument("--schemas", metavar="DIR", help=SCHEMAS_HELP)
    _common(receive, mode=True)
    receive.set_defaults(func=cmd_receive)

    again = commands.add_parser(
        "resend",
        help="queue a rejected or unconfirmed document again, unchanged (audited)",
        description="After ERP's side was put right: the document goes again with the same "
        "BOD ID, in its batch's order. Its ERP exception stays open for review.",
    )
    again.add_argument("--message", required=True, metavar="ID", help="the message (BOD) id")
    again.add_argument("--reason", required=True, help="why it is sent again (audited)")
    _common(again, mode=False)
    again.set_defaults(func=cmd_resend)

    close = commands.add_parser(
        "resolve",
        help="close an open ERP exception with what was done about it (audited)",
        description="A person with the review permission closes an ERP exception (delivery "
        "failed, rejected or unconfirmed) with a resolution, recorded on the batch's trail as "
        "the reason. The password comes from GXPMES_PASSWORD or the terminal.",
    )
    close.add_argument("--exception", required=True, metavar="ID", help="the exception id")
    close.add_argument("--user", required=True, metavar="ID", help="who resolves it")
    close.add_argument("--resolution", required=True, help="what was done about it (audited)")
    _common(close, mode=False)
    close.set_defaults(func=cmd_resolve)

    status = commands.add_parser("status", help="deliveries by state and open ERP exceptions")
    status.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    status.add_argument("--batch", metavar="ID", help="only this batch")
    status.set_defaults(func=cmd_status)
