"""Schema migrations are GMP events: each one that runs is in the audit trail.

The entry (``schema.upgrade``, revision before and after) commits in the
migration's transaction. A log whose tree heads are signed gets no unsigned
entry from a command without the head key: the migration runs, the command
warns, and the log still verifies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.db import open_engine
from audit.entry import Actor, AuditEvent
from audit.keys import TrustedKey, generate_private_key, write_key_pair
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_ledger
from gxpmes.cli import main
from gxpmes.database import Database, schema_revision
from gxpmes.migrations import upgrade

OP = Actor("op01", "Olga Operator")


def schema_entries(url: str) -> list[tuple[object, object]]:
    ledger = Ledger.open(url, read_only=True)
    try:
        return [
            (e.event.old["revision"], e.event.new["revision"])  # type: ignore[index]
            for e in ledger.entries_for("schema", "gxpmes")
            if e.event.action == "schema.upgrade"
        ]
    finally:
        ledger.close()


def at_revision(url: str, revision: str, signer: NoteSigner | None = None) -> None:
    """A database at an older schema revision whose log already holds an entry."""
    engine = open_engine(url)
    try:
        ledger = Ledger(engine, head_signer=signer)
        ledger.append(AuditEvent(OP, "capture", "value", "B1/1", new={"v": 1}))
        with engine.begin() as conn:
            upgrade(conn, revision)
    finally:
        engine.dispose()


def test_db_upgrade_records_each_migration_that_ran(tmp_path: Path) -> None:
    url = str(tmp_path / "mes.db")
    at_revision(url, "0002")
    assert main(["db", "upgrade", "--db", url]) == 0
    _current, head = schema_revision(open_engine(url, read_only=True))
    assert schema_entries(url) == [("0002", head)]
    assert main(["db", "upgrade", "--db", url]) == 0  # nothing to migrate: no entry
    assert schema_entries(url) == [("0002", head)]


def test_a_new_database_records_its_schema_under_a_signed_head(db_url: str) -> None:
    signer = NoteSigner("heads", generate_private_key())
    db = Database(db_url, create=True, head_signer=signer)
    try:
        _current, head = schema_revision(db.engine)
        report = verify_ledger(db.ledger, head_keys=TrustedKey(signer.verifier))
        assert report.ok, report.summary()
    finally:
        db.engine.dispose()
    assert schema_entries(db_url) == [(None, head)]


def test_signed_log_without_the_head_key_migrates_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "mes.db")
    signer = NoteSigner("heads", generate_private_key())
    at_revision(url, "0001", signer)
    assert main(["db", "upgrade", "--db", url]) == 0
    err = capsys.readouterr().err
    assert "migration from revision 0001" in err and "not in the audit trail" in err
    current, head = schema_revision(open_engine(url, read_only=True))
    assert current == head
    assert schema_entries(url) == []
    ledger = Ledger.open(url, read_only=True)
    try:
        assert verify_ledger(ledger, head_keys=TrustedKey(signer.verifier)).ok
    finally:
        ledger.close()


def test_signed_log_with_the_head_key_records_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "mes.db")
    key = generate_private_key()
    signer = NoteSigner("heads", key)
    at_revision(url, "0001", signer)
    private, _public = write_key_pair(key, tmp_path / "keys", b"head-key-passphrase")
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", "head-key-passphrase")
    assert (
        main(["db", "upgrade", "--db", url, "--head-key", str(private), "--head-key-name", "heads"])
        == 0
    )
    _current, head = schema_revision(open_engine(url, read_only=True))
    assert schema_entries(url) == [("0001", head)]
    ledger = Ledger.open(url, read_only=True)
    try:
        report = verify_ledger(ledger, head_keys=TrustedKey(signer.verifier))
        assert report.ok, report.summary()
    finally:
        ledger.close()
