"""``gxpmes connect``: status lines, clean SIGTERM, no acknowledged value lost across SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gxpmes.database import Database

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def write_config(path: Path, topic: str, client_id: str) -> Path:
    path.write_text(f"""
spool = "spool-{client_id}.db"
status_interval = 0.5

[[tags]]
tag = "GRAN01/TT-101"
batch = "{BATCH}"
parameter = "{HEAT}/temperature"
unit = "Cel"

[mqtt]
host = "127.0.0.1"
port = 1883
client_id = "{client_id}"
topics = ["{topic}"]
""")
    return path


def start(config: Path, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gxpmes.cli", "connect", "--config", str(config), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def recorded(db_path: str) -> list[dict[str, object]]:
    db = Database(db_path)
    try:
        with db.read() as conn:
            from sqlalchemy import text

            return [
                dict(r._mapping)
                for r in conn.execute(
                    text("SELECT seq, value, source_key FROM ebr_value ORDER BY seq")
                ).all()
            ]
    finally:
        db.close()


def wait(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def publisher() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def reading(i: int, base: datetime) -> bytes:
    return json.dumps(
        {
            "tag": "GRAN01/TT-101",
            "value": f"{70 + (i % 40) / 10:.1f}",
            "ts": (base + timedelta(milliseconds=i)).isoformat(),
        }
    ).encode()


def test_status_lines_and_clean_sigterm(running, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db_path = str(running.db.engine.url.database)
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    process = start(write_config(tmp_path / "c.toml", topic, f"gx-{uuid.uuid4().hex[:8]}"), db_path)
    try:
        pub = publisher()
        time.sleep(2.5)  # connector connected and subscribed
        base = datetime.now(UTC)
        for i in range(50):
            pub.publish(topic, reading(i, base), qos=1)
        wait(lambda: len(recorded(db_path)) >= 50)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "values/s recorded" in out and "buffered" in out and "(stopped)" in out
    assert len(recorded(db_path)) == 50
    pub.loop_stop()


def test_sigkill_loses_no_acknowledged_value(running, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db_path = str(running.db.engine.url.database)
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    config = write_config(tmp_path / "c.toml", topic, f"gx-{uuid.uuid4().hex[:8]}")
    total = 400
    pub = publisher()
    base = datetime.now(UTC)
    process = start(config, db_path)
    time.sleep(2.5)

    def publish_all() -> None:
        for i in range(total):
            pub.publish(topic, reading(i, base), qos=1).wait_for_publish(10)
            time.sleep(0.01)

    sender = threading.Thread(target=publish_all)
    sender.start()
    try:
        for _ in range(3):  # kill the connector at arbitrary moments; the broker keeps its session
            time.sleep(1.2)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            process = start(config, db_path)
        sender.join(60)
        wait(lambda: len(recorded(db_path)) >= total, timeout=90)
        time.sleep(1.5)  # anything redelivered late would show up now
        values = recorded(db_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        pub.loop_stop()
    keys = [v["source_key"] for v in values]
    assert len(values) == total, "a value was lost or recorded twice"
    assert len(set(keys)) == total
