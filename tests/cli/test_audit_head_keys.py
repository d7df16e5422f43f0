"""``gxpmes audit verify --head-key``: tree heads checked from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from audit.entry import Actor, AuditEvent, encode_entry
from audit.keys import load_private_key
from audit.ledger import Ledger
from audit.merkle import extend_frontier, frontier_indexes, record_hash
from audit.note import NoteSigner
from gxpmes.cli import main

PASS = "correct horse battery"
OP = Actor("op", "Op Erator")


@pytest.fixture
def sealed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    keys = tmp_path / "keys"
    assert main(["keys", "new", "--out", str(keys)]) == 0
    signer = NoteSigner("plant-heads", load_private_key(keys / "private.pem", PASS.encode()))
    db = tmp_path / "trail.db"
    ledger = Ledger.open(db, head_signer=signer)
    ledger.append_many([AuditEvent(OP, "capture", "v", str(i), new={"i": i}) for i in range(9)])
    ledger.append(AuditEvent(OP, "create", "batch", "B1"))
    ledger.close()
    return db, keys / "public.pem"


def forge_tail(db: Path) -> None:
    """Insert the next entry in perfect form by bare SQL, as a role with INSERT rights could."""
    ledger = Ledger.open(db)
    try:
        size, prev = ledger.head()
        event = AuditEvent(OP, "release", "batch", "B1")
        canonical = encode_entry(size, datetime.now(UTC), prev, event)
        leaf = record_hash(canonical)
        with ledger.engine.begin() as conn:
            frontier = list(ledger.hash_reader(conn)(frontier_indexes(size)))
            interior = b"".join(extend_frontier(frontier, size, leaf))
            conn.execute(
                text("INSERT INTO audit_entry VALUES (:s, 0, :c, :l, :t)"),
                {"s": size, "c": canonical, "l": leaf, "t": interior},
            )
    finally:
        ledger.close()


def test_head_key_checks_every_head_and_reports_a_forged_row(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, public = sealed
    assert main(["audit", "verify", "--db", str(db), "--head-key", str(public)]) == 0
    out = capsys.readouterr()
    assert "every entry under a signed tree head (2 checked)" in out.out
    assert "warning" not in out.err

    forge_tail(db)
    assert main(["audit", "verify", "--db", str(db)]) == 0  # hashes alone cannot see it
    assert "warning: signed tree heads not checked" in capsys.readouterr().err
    code = main(["audit", "verify", "--db", str(db), "--head-key", str(public), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (report["problem"], report["first_bad_seq"], report["signed_size"]) == (
        "unsigned_entries",
        10,
        10,
    )


def test_a_key_the_application_never_used_is_refused(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _public = sealed
    assert main(["keys", "new", "--out", str(tmp_path / "other")]) == 0
    other = str(tmp_path / "other" / "public.pem")
    assert main(["audit", "verify", "--db", str(db), "--head-key", other]) == 1
    assert "PROBLEM head_untrusted" in capsys.readouterr().out
