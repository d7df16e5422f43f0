"""Crash safety (SIGKILL mid-append) and concurrent appenders in several processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from audit.ledger import Ledger
from audit.verify import verify_ledger

CHILD = str(Path(__file__).with_name("appender_child.py"))


def _spawn(url: str, worker: str, batches: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, CHILD, url, worker, str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _acks(lines: list[str]) -> list[tuple[int, int, str]]:
    result = []
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ACK":
            result.append((int(parts[1]), int(parts[2]), parts[3]))
    return result


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_append(tmp_path: Path) -> None:
    url = str(tmp_path / "crash.db")
    Ledger.open(url).close()
    rng = random.Random(1234)
    acknowledged: list[tuple[int, int, str]] = []
    kills = 0
    while kills < 12:
        child = _spawn(url, f"w{kills}", -1)
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda c=child, out=lines: out.extend(c.stdout), daemon=True
        )
        reader.start()
        # Wait for the child to be appending, then kill it at a random moment.
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        assert lines, f"child never acknowledged: {child.stderr.read() if child.stderr else ''}"
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join(timeout=10)
        assert child.returncode == -signal.SIGKILL
        kills += 1
        acknowledged.extend(_acks(lines))

    ledger = Ledger.open(url, read_only=True)
    try:
        rows = {seq: leaf for seq, _c, leaf, _t in ledger.iter_raw_rows()}
        for first, count, last_hash in acknowledged:
            for seq in range(first, first + count):
                assert seq in rows, f"acknowledged entry {seq} lost"
            assert rows[first + count - 1].hex() == last_hash
        report = verify_ledger(ledger)
        assert report.ok, report.summary()
        assert report.entries >= sum(c for _f, c, _h in acknowledged)
    finally:
        ledger.close()


@pytest.mark.slow
def test_four_processes_append_to_postgres_without_gap_or_fork(pg_url: str) -> None:
    Ledger.open(pg_url).close()
    batches = 30
    children = [_spawn(pg_url, f"p{i}", batches) for i in range(4)]
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    acks = [ack for out, _err in outputs for ack in _acks(out.splitlines())]
    assert len(acks) == 4 * batches
    claimed: set[int] = set()
    for first, count, _h in acks:
        seqs = set(range(first, first + count))
        assert not seqs & claimed, "two appenders were given the same sequence numbers"
        claimed |= seqs
    ledger = Ledger.open(pg_url)
    try:
        report = verify_ledger(ledger)
        assert report.ok, report.summary()
        assert report.entries == len(claimed) == max(claimed) + 1
    finally:
        ledger.close()


@pytest.mark.slow
def test_two_processes_append_to_sqlite_without_gap_or_fork(tmp_path: Path) -> None:
    url = str(tmp_path / "shared.db")
    Ledger.open(url).close()
    children = [_spawn(url, f"s{i}", 20) for i in range(2)]
    outputs = [child.communicate(timeout=300) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    total = sum(c for out, _ in outputs for _f, c, _h in _acks(out.splitlines()))
    ledger = Ledger.open(url, read_only=True)
    try:
        report = verify_ledger(ledger)
        assert report.ok and report.entries == total
    finally:
        ledger.close()
