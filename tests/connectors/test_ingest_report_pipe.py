"""An ingest process whose runner is gone ends quietly: no BrokenPipeError traceback.

When the runner is SIGKILLed, the report pipe's other end is closed; the
ingest process's reports (its periodic counters and the final one after the
stop) must not raise.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from gxpmes.connectors import mqtt, opcua
from gxpmes.connectors.ingestprocess import send_report


def broken_pipe() -> Any:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    receiving.close()  # the runner is gone
    return sending


def test_a_report_to_a_runner_that_is_gone_is_no_error() -> None:
    sending = broken_pipe()
    with pytest.raises(BrokenPipeError):
        sending.send({"counts": {}})  # what the ingest mains used to do
    assert send_report(sending, {"counts": {}}) is False
    sending.close()
    assert send_report(sending, {"counts": {}}) is False  # closed: OSError
    receiving, sending = multiprocessing.Pipe(duplex=False)
    assert send_report(sending, {"counts": {"received": 1}}) is True
    assert receiving.recv() == {"counts": {"received": 1}}


@pytest.fixture
def in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run an ingest main here: without its process-wide settings (death signal, handlers)."""
    monkeypatch.setattr(mqtt, "die_with_parent", lambda: None)
    monkeypatch.setattr(opcua, "die_with_parent", lambda: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)


def test_the_mqtt_ingest_main_ends_quietly_when_the_runner_is_gone(
    in_this_process: None, broker: tuple[str, int], tmp_path: Path
) -> None:
    options = {
        "spool": str(tmp_path / "spool.db"),
        "seen_retention": 60,
        "mqtt": {"host": broker[0], "port": broker[1], "topics": ["pipe/#"], "client_id": "p1"},
        "topic_tags": {},
        "base": str(tmp_path),
        "group_commit_values": 100,
    }
    stop = threading.Event()
    # Returns (the first report finds the runner gone) instead of raising BrokenPipeError.
    mqtt.ingest_process_main(options, broken_pipe(), stop, os.getppid(), 0.05)


def test_the_opcua_ingest_main_ends_quietly_when_the_runner_is_gone(
    in_this_process: None, tmp_path: Path
) -> None:
    options = {
        "spool": str(tmp_path / "spool.db"),
        "seen_retention": 60,
        "opcua": {"endpoint": "opc.tcp://127.0.0.1:9/", "nodes": []},
        "base": str(tmp_path),
        "group_commit_values": 100,
    }
    opcua.ingest_process_main(options, broken_pipe(), threading.Event(), os.getppid(), 0.05)
