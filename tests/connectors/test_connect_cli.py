"""``gxpmes connect``: status lines, clean SIGTERM, no acknowledged value lost across SIGKILLs."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from audit.keys import write_key_pair
from gxpmes.database import Database
from gxpmes.testing.plant import HEAD_KEY_NAME

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


KEY_PASSPHRASE = "connector-test-passphrase"


def head_key(plant: Any, folder: Path) -> Path:
    """The plant's tree-head key as the encrypted private.pem a site would configure."""
    private, _public = write_key_pair(plant.system_key, folder / "keys", KEY_PASSPHRASE.encode())
    return private


def write_config(path: Path, topic: str, client_id: str, key: Path) -> Path:
    path.write_text(f"""
spool = "spool-{client_id}.db"
status_interval = 0.5

[ledger]
head_key = "{key.relative_to(path.parent)}"
head_key_name = "{HEAD_KEY_NAME}"

[[tags]]
tag = "GRAN01/TT-101"
batch = "{BATCH}"
parameter = "{HEAT}/temperature"
unit = "Cel"
topic = "{topic}"

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
        env=dict(os.environ, PYTHONUNBUFFERED="1", GXPMES_KEY_PASSPHRASE=KEY_PASSPHRASE),
    )


def wait_started(process: subprocess.Popen[str]) -> None:
    """Until the connector prints its first status line. Before its handler exists
    (Python itself still starting), SIGTERM kills the process like any other."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], DEADLINE)
    assert ready and process.stdout.readline(), "gxpmes connect printed no status line"


def recorded(db_path: str) -> list[dict[str, object]]:
    """The batch's values as the engine reads them (captured values may live in value
    blocks rather than in rows of their own)."""
    from gxpmes.cli.common import verify_only_engine

    db = Database(db_path)
    try:
        return verify_only_engine(db).values(BATCH)  # type: ignore[no-any-return]
    finally:
        db.close()


def count(db_path: str) -> int:
    return len(recorded(db_path))


def wait_recorded(
    process: subprocess.Popen[str],
    db_path: str,
    n: int,
    *,
    timeout: float = DEADLINE,
    unless: Callable[[], bool] = lambda: False,
) -> None:
    """Wait until ``n`` values are recorded (or ``unless()``); fail at once if the connector
    exits, and with its stderr if the deadline passes."""

    def recorded_enough() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gxpmes connect exited with {process.returncode}")
        return unless() or count(db_path) >= n

    try:
        wait_until(recorded_enough, timeout=timeout, interval=0.2, what=f"{n} values recorded")
    except AssertionError as exc:
        if process.poll() is None:
            process.kill()
        _out, err = process.communicate(timeout=DEADLINE)
        raise AssertionError(f"{exc}\n--- gxpmes connect stderr\n{err[-3000:]}") from None


def open_session(topic: str, client_id: str) -> None:
    """Create the connector's persistent session at the broker, subscribed as it will be.

    From then on the broker queues QoS 1 messages for ``client_id`` until the
    connector connects, so a test can publish without guessing when the new
    process is ready. (That the connector subscribes by itself is tested with
    clean sessions in test_mqtt.py.)
    """
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        wait_until(subscribed.is_set, what="broker confirms the subscription")
    finally:
        client.disconnect()
        client.loop_stop()


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
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    open_session(topic, client_id)
    pub = publisher()
    process = start(
        write_config(tmp_path / "c.toml", topic, client_id, head_key(running, tmp_path)), db_path
    )
    try:
        base = datetime.now(UTC)
        for i in range(50):
            pub.publish(topic, reading(i, base), qos=1)
        wait_recorded(process, db_path, 50)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        pub.loop_stop()
    assert process.returncode == 0, err
    assert "values/s recorded" in out and "buffered" in out and "(stopped)" in out
    assert count(db_path) == 50


def test_sigkill_loses_no_acknowledged_value(running, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db_path = str(running.db.engine.url.database)
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path / "c.toml", topic, client_id, head_key(running, tmp_path))
    total = 400
    open_session(topic, client_id)
    pub = publisher()
    base = datetime.now(UTC)
    process = start(config, db_path)

    def publish_all() -> None:
        for i in range(total):
            pub.publish(topic, reading(i, base), qos=1).wait_for_publish(60)
            time.sleep(0.01)  # a pace, not a wait: values keep arriving across the kills

    sender = threading.Thread(target=publish_all)
    sender.start()
    try:
        # Kill each connector while it is recording (or once everything is sent);
        # the broker keeps the session and redelivers what was not acknowledged.
        for _ in range(3):
            before = count(db_path)
            wait_recorded(process, db_path, before + 50, unless=lambda: not sender.is_alive())
            process.send_signal(signal.SIGKILL)
            process.wait(60)
            process = start(config, db_path)
        sender.join(120)
        assert not sender.is_alive(), "the publisher did not finish"
        wait_recorded(process, db_path, total, timeout=2 * DEADLINE)
        wait_started(process)  # the last restart may not have reached its handler yet
        # A clean stop drains whatever was delivered late; the count after exit is final.
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        values = recorded(db_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)
        pub.loop_stop()
    keys = [v["source_key"] for v in values]
    assert len(values) == total, "a value was lost or recorded twice"
    assert len(set(keys)) == total


def test_status_reports_rejects_by_reason_and_sigterm_is_no_error(
    running, broker, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db_path = str(running.db.engine.url.database)
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    open_session(topic, client_id)
    pub = publisher()
    process = start(
        write_config(tmp_path / "c.toml", topic, client_id, head_key(running, tmp_path)), db_path
    )
    try:
        base = datetime.now(UTC)
        for i in range(30):
            pub.publish(topic, reading(i, base), qos=1)
        for bad in (
            b"{not json",
            json.dumps({"tag": "OTHER/TAG", "value": 1, "ts": base.isoformat()}).encode(),
            json.dumps(
                {"value": 1, "ts": (base + timedelta(days=3)).isoformat()}  # the topic's tag
            ).encode(),
        ):
            pub.publish(topic, bad, qos=1)
        wait_recorded(process, db_path, 30)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        pub.loop_stop()
    assert process.returncode == 0, err
    final = [line for line in out.splitlines() if "(stopped)" in line]
    assert len(final) == 1, out
    assert "3 rejected (future_timestamp 1, malformed 1, tag_override 1)" in final[0]
    assert "0 errors" in final[0] and "lag " in final[0] and "0 buffered" in final[0]
    db = Database(db_path)
    try:
        with db.read() as conn:
            from sqlalchemy import text

            reasons = sorted(conn.execute(text("SELECT reason FROM ebr_ot_reject")).scalars())
        blocks = db.ledger.entries_for("value_block", BATCH)
        leaves = [json.loads(leaf) for e in blocks for leaf in db.ledger.block_leaves(e.seq)]
        rejects = db.ledger.entries_for("ot_connector", client_id)
    finally:
        db.close()
    assert reasons == ["future_timestamp", "malformed", "tag_override"]  # flushed at the stop
    # Every value's audit record (a leaf of a value block) names the connector's device
    # account and its client id, and so does each block entry.
    assert len(leaves) == 30
    assert {(leaf["account"], leaf["client_id"]) for leaf in leaves} == {("svc-ot", client_id)}
    assert {(e.event.actor.user_id, e.event.new["client_id"]) for e in blocks} == {
        ("svc-ot", client_id)
    }
    assert [e.event.actor.user_id for e in rejects] == ["svc-ot"]


def test_connect_over_tls_with_a_password_file(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from broker_support import Mosquitto, free_port, make_pki, password_file, site_config

    pki = make_pki(tmp_path / "pki")
    port, tls_port = free_port(), free_port()
    users = {"gxpmes": "connector-pass-1", "plc": "publisher-pass-1"}
    config = site_config(
        tmp_path / "broker",
        port=port,
        tls_port=tls_port,
        pki=pki,
        passwd=password_file(tmp_path, users),
    )
    broker = Mosquitto(config, port, tls_port).start()
    db_path = str(running.db.engine.url.database)
    topic = f"plant/{uuid.uuid4().hex[:8]}/TT-101"
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    connector = write_config(tmp_path / "c.toml", topic, client_id, head_key(running, tmp_path))
    (tmp_path / "mqtt-password").write_text(users["gxpmes"] + "\n")
    connector.write_text(
        connector.read_text()
        .replace("port = 1883", f"port = {tls_port}")
        .replace('host = "127.0.0.1"', 'host = "localhost"')
        + f'ca_file = "{pki.ca}"\nusername = "gxpmes"\npassword_file = "mqtt-password"\n'
    )
    process = start(connector, db_path)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"plc-{uuid.uuid4().hex[:6]}")
    pub.tls_set(ca_certs=str(pki.ca))
    pub.username_pw_set("plc", users["plc"])
    pub.connect("127.0.0.1", tls_port)
    pub.loop_start()
    try:
        base = datetime.now(UTC)
        # Published until the connector has subscribed: QoS 1 to a persistent session.
        wait_until(
            lambda: pub.publish(topic, reading(0, base), qos=1) is not None and count(db_path) >= 1,
            interval=0.5,
            what="the connector records over TLS",
        )
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        pub.loop_stop()
        broker.stop()
    assert process.returncode == 0, err
    assert count(db_path) == 1  # the same reading, recorded once


def test_status_line_warns_of_loss_before_the_connector() -> None:
    from gxpmes.connectors.runner import Status

    quiet = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0)
    assert "WARNING" not in quiet.line(1.0) and "0 rejected, 0 errors" in quiet.line(1.0)
    lossy = Status(10, 5, 2.5, 10, 0, {"sequence_gap": 2}, {"db_errors": 1}, 2, 500, 1)
    line = lossy.line(1.0)
    assert "5 buffered (lag 2.5 s)" in line and "2 rejected (sequence_gap 2)" in line
    assert "1 errors (db_errors 1)" in line
    assert (
        line.count("WARNING") == 3
        and "500 dropped" in line
        and "lost this connector's session" in line
    )


def test_opcua_security_settings_from_the_configuration(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from gxpmes.connectors.runner import Connector
    from gxpmes.errors import ConfigurationError

    (tmp_path / "opc-password").write_text("opc-pass-1\n")
    config = {
        "spool": "spool.db",
        "tags": [{"tag": "T", "batch": BATCH, "parameter": f"{HEAT}/temperature", "unit": "Cel"}],
        "opcua": {
            "endpoint": "opc.tcp://127.0.0.1:4840/",
            "security_policy": "Basic256Sha256",
            "security_mode": "Sign",
            "certificate": "certs/client.der",
            "private_key": "certs/client-key.pem",
            "server_certificate": "certs/server.der",
            "application_uri": "urn:plant:gxpmes",
            "username": "gxpmes",
            "password_file": "opc-password",
            "nodes": [{"node_id": "ns=2;s=T", "tag": "T"}],
        },
    }
    connector = Connector(config, running.engine, tmp_path)
    try:
        security = connector._opcua_source(config["opcua"]).security
        assert (security.policy, security.mode, security.password) == (
            "Basic256Sha256",
            "Sign",
            "opc-pass-1",
        )
        assert security.server_certificate == tmp_path / "certs/server.der"
        del config["opcua"]["server_certificate"]  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="pinned"):
            connector._opcua_source(config["opcua"])
        config["opcua"]["password_env"] = "GXPMES_TEST_UNSET_VARIABLE"  # type: ignore[index]
        del config["opcua"]["password_file"]  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="GXPMES_TEST_UNSET_VARIABLE"):
            connector._opcua_source(config["opcua"])
    finally:
        connector.close()


@pytest.mark.parametrize(
    ("setting", "text", "message"),
    [
        ("name", "n" * 129, "connector name 'nnn.* longer than 128 characters \\(129\\)"),
        ("name", "  ", "connector name '  ' is blank"),
        ("client_id", "c" * 257, "connector client_id 'ccc.* longer than 256 characters \\(257\\)"),
        ("client_id", "plc\n01", "connector client_id 'plc\\\\n01' is blank, not printable"),
    ],
)
def test_a_connector_identity_the_record_cannot_hold_is_refused_at_start(  # type: ignore[no-untyped-def]
    running, tmp_path: Path, setting: str, text: str, message: str
) -> None:
    """Refused before the spool is opened: a client id capture refuses would make every
    value a dead letter, a name longer than the rejects table holds would be cut."""
    from gxpmes.connectors.runner import Connector
    from gxpmes.errors import ConfigurationError

    config = {
        "spool": "spool.db",
        "tags": [{"tag": "T", "batch": BATCH, "parameter": f"{HEAT}/temperature", "unit": "Cel"}],
        "name": "line-1",  # else the name is the client id
        setting: text,
    }
    with pytest.raises(ConfigurationError, match=message):
        Connector(config, running.engine, tmp_path)
    assert not (tmp_path / "spool.db").exists()
    config[setting] = text.strip()[:128].replace("\n", "") or "ok"
    Connector(config, running.engine, tmp_path).close()
