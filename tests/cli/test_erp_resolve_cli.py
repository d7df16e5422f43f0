"""``gxpmes erp resolve``: a person closes an ERP exception, audited, from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ebr_support import USERS, Plant, make_plant

from audit.keys import write_key_pair
from gxpmes.cli import main
from gxpmes.erp.exceptions import open_exceptions, raise_exception
from gxpmes.records.verify import verify_record
from gxpmes.testing import steps
from gxpmes.testing.plant import HEAD_KEY_NAME, Clock

PASS = "correct horse battery"
B = "B-ERP-CLI"


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plant]:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    # Users made minutes ago: the command runs on this machine's clock.
    clock = Clock(datetime.now(UTC) - timedelta(minutes=5))
    installation = make_plant(str(tmp_path / "plant.db"), clock=clock)
    assert installation.system_key is not None
    write_key_pair(installation.system_key, tmp_path / "keys", PASS.encode())
    steps.batch_executed(installation, B)
    yield installation
    installation.db.close()


def test_resolve_closes_the_exception_with_an_audited_resolution(
    plant: Plant,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with plant.db.transaction() as conn:
        exception_id = raise_exception(
            plant.db, conn, plant.engine.collector, batch_id=B, message_id="BOD-1",
            kind="rejected", detail="plant 1000 not open for posting",
        )  # fmt: skip
    plant.clock.now = datetime.now(UTC)  # the log's time never goes back
    command = [
        "erp", "resolve", "--db", str(tmp_path / "plant.db"), "--exception", exception_id,
        "--user", "qa1", "--resolution", "reposted after ERP opened plant 1000",
        "--head-key", str(tmp_path / "keys" / "private.pem"), "--head-key-name", HEAD_KEY_NAME,
    ]  # fmt: skip

    monkeypatch.setenv("GXPMES_PASSWORD", "not the password")
    assert main(command) == 2
    assert "password" in capsys.readouterr().err.lower()
    assert [e["exception_id"] for e in open_exceptions(plant.db, B)] == [exception_id]

    monkeypatch.setenv("GXPMES_PASSWORD", USERS["qa1"][2])
    assert main(command) == 0
    assert f"ERP exception {exception_id} resolved by qa1" in capsys.readouterr().out
    assert open_exceptions(plant.db, B) == []
    entry = next(e for e in plant.db.ledger.entries_for("erp_exception", exception_id)
                 if e.event.action == "erp.exception.resolve")  # fmt: skip
    assert entry.event.actor.user_id == "qa1"
    assert entry.event.reason == "reposted after ERP opened plant 1000"

    assert main(command) == 2  # a second resolution is refused, nothing written
    assert "already resolved" in capsys.readouterr().err
    report = verify_record(plant.db.engine, signature_keys=plant.signature_keys())
    assert report.ok, report.lines()


def test_unknown_exception_exits_2(
    plant: Plant,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GXPMES_PASSWORD", USERS["qa1"][2])
    code = main([
        "erp", "resolve", "--db", str(tmp_path / "plant.db"), "--exception", "no-such-id",
        "--user", "qa1", "--resolution", "x",
        "--head-key", str(tmp_path / "keys" / "private.pem"), "--head-key-name", HEAD_KEY_NAME,
    ])  # fmt: skip
    assert code == 2
    assert "no ERP exception 'no-such-id'" in capsys.readouterr().err
