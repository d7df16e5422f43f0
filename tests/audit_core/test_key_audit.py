"""Key registration and revocation on behalf of someone are audit entries (11.10(e)).

The key row and its entry commit in one transaction; without an actor (the
ledger registering its own head key, a checkpoint key) only the append-only
key registry records it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.entry import Actor, AuditEvent
from audit.errors import SigningKeyError, StorageError
from audit.keys import TrustedKey, generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_ledger

QA = Actor("qa9", "Quincy Keykeeper")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_register_and_revoke_are_audited_under_a_signed_head(db_url: str) -> None:
    heads = NoteSigner("heads", generate_private_key())
    other = NoteSigner("checkpoints", generate_private_key())
    now = [T0]
    ledger = Ledger.open(db_url, head_signer=heads, clock=lambda: now[0])
    try:
        key_id = other.verifier.key_id
        ledger.keys.register(other, actor=QA)
        now[0] += timedelta(hours=1)
        ledger.keys.revoke(key_id, reason="key file leaked", actor=QA)
        trail = ledger.entries_for("audit_key", key_id)
        assert [(e.event.action, e.event.actor, e.event.reason) for e in trail] == [
            ("key.register", QA, None),
            ("key.revoke", QA, "key file leaked"),
        ]
        assert trail[1].event.new == {"revoked_at": "2026-03-01T09:00:00.000000Z"}
        assert verify_ledger(ledger, head_keys=TrustedKey(heads.verifier)).ok
    finally:
        ledger.close()


def test_revocation_and_entry_commit_together(db_url: str) -> None:
    """A ledger that may not append (signed heads, no head key) revokes nothing for anyone."""
    heads = NoteSigner("heads", generate_private_key())
    other = NoteSigner("checkpoints", generate_private_key())
    signing = Ledger.open(db_url, head_signer=heads)
    signing.keys.register(other)
    signing.append(AuditEvent(QA, "capture", "value", "B1/1", new={"v": 1}))  # a signed head
    signing.close()
    unsigned = Ledger.open(db_url)
    try:
        size = unsigned.size()
        with pytest.raises(StorageError, match="head_signer"):
            unsigned.keys.revoke(other.verifier.key_id, reason="leaked", actor=QA)
        assert unsigned.keys.get(other.verifier.key_id).revoked_at is None  # type: ignore[union-attr]
        assert unsigned.size() == size
    finally:
        unsigned.close()


def test_the_ledgers_own_head_key_is_not_revoked_through_itself(db_url: str) -> None:
    heads = NoteSigner("heads", generate_private_key())
    ledger = Ledger.open(db_url, head_signer=heads)
    try:
        with pytest.raises(SigningKeyError, match="signs this ledger's tree heads"):
            ledger.keys.revoke(heads.verifier.key_id, reason="rotating", actor=QA)
        assert ledger.keys.get(heads.verifier.key_id).revoked_at is None  # type: ignore[union-attr]
    finally:
        ledger.close()


def test_cli_revoke_is_audited_and_still_works_on_a_signed_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gxpmes.cli import main

    plain, signed = str(tmp_path / "plain.db"), str(tmp_path / "signed.db")
    heads = NoteSigner("heads", generate_private_key())
    keys = [NoteSigner("cp", generate_private_key()) for _ in range(2)]
    for url, key, signer in ((plain, keys[0], None), (signed, keys[1], heads)):
        ledger = Ledger.open(url, head_signer=signer)
        ledger.keys.register(key)
        ledger.append(AuditEvent(QA, "capture", "value", "B1/1", new={"v": 1}))
        ledger.close()
    argv = ["keys", "revoke", "--reason", "leaked", "--key-id"]
    assert main([*argv, keys[0].verifier.key_id, "--db", plain]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main([*argv, keys[1].verifier.key_id, "--db", signed]) == 0
    assert "not in the audit trail" in capsys.readouterr().err
    for url, key, entries in ((plain, keys[0], 1), (signed, keys[1], 0)):
        ledger = Ledger.open(url, read_only=True)
        try:
            assert ledger.keys.get(key.verifier.key_id).revoked_at is not None  # type: ignore[union-attr]
            trail = ledger.entries_for("audit_key", key.verifier.key_id)
            assert [(e.event.action, e.event.reason) for e in trail] == [("key.revoke", "leaked")][
                :entries
            ]
            assert trail == [] or trail[0].event.actor.user_id.startswith("os:")
        finally:
            ledger.close()
    signed_ledger = Ledger.open(signed, read_only=True)
    try:
        assert verify_ledger(signed_ledger, head_keys=TrustedKey(heads.verifier)).ok
    finally:
        signed_ledger.close()
