"""``gxpmes connect`` signs automatic checkpoints, publishes them, and shows the sinks' lag."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from waiting import wait_until

from audit.keys import write_key_pair
from gxpmes.cli import main
from gxpmes.database import Database
from gxpmes.testing.plant import HEAD_KEY_NAME

PASSPHRASE = "connector-test-passphrase"
BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def values(db_path: str) -> int:
    from sqlalchemy import text

    db = Database(db_path)
    try:
        with db.read() as conn:
            # Captured values are counted in the value-block index; manual entries
            # (and values from before value blocks) are rows of ebr_value.
            return int(
                conn.scalar(
                    text(
                        "SELECT (SELECT count(*) FROM ebr_value)"
                        " + (SELECT coalesce(sum(count), 0) FROM ebr_value_block)"
                    )
                )
                or 0
            )
    finally:
        db.close()


def test_connect_publishes_checkpoints_and_reports_lag(  # type: ignore[no-untyped-def]
    running: Any, broker: Any, tmp_path: Path
) -> None:
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    db_path = str(running.db.engine.url.database)
    _private, public = write_key_pair(running.system_key, tmp_path / "keys", PASSPHRASE.encode())
    (tmp_path / "worm").mkdir()
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    config = tmp_path / "c.toml"
    config.write_text(f"""
spool = "spool.db"
status_interval = 0.3

[ledger]
head_key = "keys/private.pem"
head_key_name = "{HEAD_KEY_NAME}"

[anchoring]
every_entries = 10
every_seconds = 0.2

[[anchoring.sink]]
kind = "directory"
path = "worm"
name = "worm"

[[anchoring.sink]]
kind = "directory"
path = "unplugged-disk"
name = "offsite"

[[tags]]
tag = "GRAN01/TT-101"
batch = "{BATCH}"
parameter = "{HEAT}/temperature"
unit = "Cel"
topic = "{topic}"

[mqtt]
host = "127.0.0.1"
port = 1883
client_id = "gx-{uuid.uuid4().hex[:8]}"
topics = ["{topic}"]
""")
    before = values(db_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "gxpmes.cli", "connect", "--config", str(config), "--db", db_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1", GXPMES_KEY_PASSPHRASE=PASSPHRASE),
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        base = datetime.now(UTC).isoformat()

        def publish_some() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gxpmes connect exited: {process.communicate()[1][-2000:]}")
            reading = {"tag": "GRAN01/TT-101", "value": "71.5", "ts": base}
            client.publish(topic, json.dumps(reading).encode(), qos=1)
            return values(db_path) > before and any((tmp_path / "worm").iterdir())

        wait_until(publish_some, interval=0.3, what="values recorded and a checkpoint published")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        client.loop_stop()
    assert process.returncode == 0, err
    lines = [line for line in out.splitlines() if "anchors:" in line]
    assert lines, out
    assert "worm ok" in lines[-1]
    assert "offsite DOWN" in lines[-1] and "does not exist" in lines[-1]
    # What the connector published verifies the trail from outside the database.
    trust = public.parent / "trust.toml"
    trust.write_text(f'[[checkpoint_key]]\npublic_key = "public.pem"\nname = "{HEAD_KEY_NAME}"\n')
    args = ["audit", "verify", "--db", db_path, "--trust", str(trust)]
    assert main([*args, "--checkpoints", str(tmp_path / "worm")]) == 0
