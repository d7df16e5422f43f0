"""Key files (encrypted PKCS#8) and the key registry: rotation and revocation."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.errors import SigningKeyError
from audit.keys import generate_private_key, load_private_key, load_public_key, write_key_pair
from audit.ledger import Ledger
from audit.note import NoteSigner, public_key_bytes


def test_key_pair_files(tmp_path: Path) -> None:
    key = generate_private_key()
    private, public = write_key_pair(key, tmp_path / "k", b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    loaded = load_private_key(private, b"correct horse")
    assert public_key_bytes(loaded.public_key()) == load_public_key(public)
    assert load_public_key(public) == public_key_bytes(key.public_key())


def test_wrong_passphrase_and_overwrite_are_refused(tmp_path: Path) -> None:
    write_key_pair(generate_private_key(), tmp_path, b"correct horse")
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_private_key(tmp_path / "private.pem", b"wrong horse")
    with pytest.raises(SigningKeyError, match="refusing to overwrite"):
        write_key_pair(generate_private_key(), tmp_path, b"correct horse")
    with pytest.raises(SigningKeyError, match="at least 8"):
        write_key_pair(generate_private_key(), tmp_path / "x", b"short")
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem")
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(tmp_path / "private.pem")


def test_registry_rotation_and_revocation(db_url: str) -> None:
    ledger = Ledger.open(db_url)
    try:
        old = NoteSigner("log", generate_private_key())
        new = NoteSigner("log", generate_private_key())
        start = datetime(2026, 1, 1, tzinfo=UTC)
        registered = ledger.keys.register(old, valid_from=start)
        assert ledger.keys.register(old) == registered  # idempotent
        switch = start + timedelta(days=30)
        ledger.keys.rotate(old.verifier.key_id, new, at=switch)
        retired = ledger.keys.get(old.verifier.key_id)
        assert retired is not None
        assert retired.problem_at(switch - timedelta(seconds=1)) is None
        assert "rotated" in (retired.problem_at(switch) or "")
        current = ledger.keys.get(new.verifier.key_id)
        assert current is not None and current.problem_at(switch) is None
        assert current.problem_at(switch - timedelta(seconds=1)) is not None
        with pytest.raises(SigningKeyError, match="already revoked"):
            ledger.keys.revoke(old.verifier.key_id, reason="again")
        with pytest.raises(SigningKeyError, match="needs a reason"):
            ledger.keys.revoke(new.verifier.key_id, reason=" ")
        with pytest.raises(SigningKeyError, match="no registered key"):
            ledger.keys.revoke("deadbeef", reason="x")
        with pytest.raises(SigningKeyError, match="refusing to sign"):
            ledger.checkpoint(old)
    finally:
        ledger.close()
