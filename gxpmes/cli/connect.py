"""``gxpmes connect``: run the OT connectors until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    head_signer_from,
    open_database,
    optional_dependency,
    verify_only_engine,
)


def cmd_connect(args: argparse.Namespace) -> int:
    import signal
    import threading

    from gxpmes.connectors.runner import Connector, load_config, run_until_signalled

    # First of all: a SIGTERM while starting up (a service manager stopping a
    # connector that is still connecting) is a clean stop too, never a kill.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config_path = Path(args.config)
    config = load_config(config_path)
    db = open_database(
        args.db, read_only=False, head_signer=head_signer_from(config, config_path.parent)
    )
    try:
        anchors = None
        if db.ledger.head_signer is not None:
            # Automatic checkpoints to the [anchoring] sinks (defaults: 1 s / 10,000 entries).
            anchors = db.start_checkpoints(
                config=config.get("anchoring") or {}, base=config_path.parent
            )
        with optional_dependency("opcua,mqtt"):  # each source imports its client library
            connector = Connector(config, verify_only_engine(db), config_path.parent)

        def echo(line: str, **options: Any) -> None:
            # The sinks' lag rides on the connector's status line.
            print(line if anchors is None else f"{line}; {anchors.status_line()}", **options)

        run_until_signalled(
            connector, stop, float(config.get("status_interval", args.status_interval)), echo
        )
    finally:
        db.close()
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``connect``."""
    connect = sub.add_parser(
        "connect",
        help="run the OT connectors (OPC UA, MQTT, Sparkplug B)",
        description="Capture plant values from OPC UA and MQTT / Sparkplug B into batch "
        "records until SIGTERM or SIGINT, buffering through database outages. With a tree-head "
        "key ([ledger] head_key) it signs a checkpoint every second or 10,000 entries and "
        "publishes it to the [anchoring] sinks; their lag is on the status line.",
    )
    connect.add_argument(
        "--config", required=True, metavar="TOML", help="connector configuration (TOML)"
    )
    connect.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    connect.add_argument(
        "--status-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between status lines (default: 10; status_interval in the config wins)",
    )
    connect.set_defaults(func=cmd_connect)
