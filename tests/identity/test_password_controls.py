"""Passwords and personal keys (21 CFR 11.300(a), (b), (d), 11.200(a)(3)): cost, rehash,
key wrapping, expiry at signing, one-time passwords, atomic lockout, equal work, no
secret in any error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from identity_support import ISSUED, PASSWORDS, Plant
from sqlalchemy import insert, select, text

from audit.canonical import format_timestamp
from gxpmes.errors import AccountLocked, AuthenticationError, GxpError, SignatureError
from gxpmes.identity import (
    OWASP_LOG2_N,
    Credentials,
    IdentityService,
    Meaning,
    PasswordHasher,
    SignableRecord,
    keywrap,
)
from gxpmes.identity.schema import AuthPendingRow, UserKeyRow, UserRow

RECORD = SignableRecord("document", "SOP-1", {"title": "SOP-1", "revision": 2}, "SOP-1")


def creds(user: str, session=None, password=None) -> Credentials:  # type: ignore[no-untyped-def]
    return Credentials(user, PASSWORDS[user] if password is None else password, session)


def stored_hash(plant, user: str) -> str:  # type: ignore[no-untyped-def]
    with plant.db.engine.connect() as conn:
        return str(conn.scalar(select(UserRow.password_hash).where(UserRow.user_id == user)))


def wrapped_key(plant, user: str) -> bytes:  # type: ignore[no-untyped-def]
    with plant.db.engine.connect() as conn:
        return bytes(
            conn.scalar(select(UserKeyRow.encrypted_private_key).where(UserKeyRow.user_id == user))
        )


# ------------------------------------------------------------------ cost and rehash


def test_the_default_cost_is_owasp_scrypt() -> None:
    hasher = PasswordHasher()
    assert (hasher.log2_n, hasher.r, hasher.p) == (OWASP_LOG2_N, 8, 1) == (17, 8, 1)
    stored = hasher.hash("Correct-Horse-26!")
    assert stored.split("$")[:4] == ["scrypt", "17", "8", "1"]
    assert hasher.verify("Correct-Horse-26!", stored)
    assert (IdentityService.__init__.__kwdefaults__ or {})["hasher"] is None  # PasswordHasher()


def test_an_older_cost_is_rehashed_at_the_next_login(plant) -> None:  # type: ignore[no-untyped-def]
    assert stored_hash(plant, "op1").split("$")[1] == "10"
    stronger = IdentityService(plant.db, hasher=PasswordHasher(log2_n=11))
    stronger.login("op1", PASSWORDS["op1"])
    assert stored_hash(plant, "op1").split("$")[1] == "11"
    assert not stronger.hasher.needs_rehash(stored_hash(plant, "op1"))
    assert stronger.login("op1", PASSWORDS["op1"]).user_id == "op1"
    # Never a downgrade: a service at a lower cost leaves the stronger hash alone.
    plant.identity.login("op1", PASSWORDS["op1"])
    assert stored_hash(plant, "op1").split("$")[1] == "11"
    rehashes = [
        e for e in plant.db.ledger.entries_for("user", "op1") if e.event.action == "auth.rehash"
    ]
    assert len(rehashes) == 1  # once, in the trail, without the hash
    assert "scrypt$" not in json.dumps(rehashes[0].event.new or {})


# ------------------------------------------------------------------ personal keys


def test_personal_keys_are_wrapped_with_scrypt_and_rewrapped_on_password_change(plant) -> None:  # type: ignore[no-untyped-def]
    plant.signatures.enroll_user_key("op1", PASSWORDS["op1"])
    first = wrapped_key(plant, "op1")
    assert first.startswith(b"gxkw1$10$8$1$") and b"BEGIN" not in first
    with pytest.raises(SignatureError, match="cannot be unlocked"):
        keywrap.unwrap(first, "Not-The-Password-1")
    plant.identity.change_password("op1", PASSWORDS["op1"], "Brand-New-Pass-26")
    second = wrapped_key(plant, "op1")
    assert second != first and keywrap.is_current(second, plant.identity.hasher)
    with pytest.raises(SignatureError):
        keywrap.unwrap(second, PASSWORDS["op1"])  # the old password opens it no more
    signature = plant.signatures.sign(
        RECORD, Meaning.PERFORMED, creds("op1", password="Brand-New-Pass-26"), digital=True
    )
    assert (
        signature.user_public_key
        == keywrap.unwrap(second, "Brand-New-Pass-26").public_key().public_bytes_raw()
    )


def test_a_legacy_pbkdf2_key_is_rewrapped_at_the_next_login(plant) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.entry import AuditEvent
    from gxpmes.records import writer

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORDS["op2"].encode()),
    )
    with plant.db.transaction() as conn:  # a key enrolled by the first version
        writer.insert(
            conn,
            UserKeyRow,
            dict(
                user_id="op2",
                public_key=key.public_key().public_bytes_raw(),
                encrypted_private_key=pem,
            ),
        )
        plant.db.audit(
            conn, AuditEvent(plant.identity.user("op2").actor, "user.signing_key", "user", "op2")
        )
    plant.identity.login("op2", PASSWORDS["op2"])
    now = wrapped_key(plant, "op2")
    assert (
        now.startswith(b"gxkw1$")
        and keywrap.unwrap(now, PASSWORDS["op2"]).public_key().public_bytes_raw()
        == key.public_key().public_bytes_raw()
    )


# ------------------------------------------------------------------ expiry and one-time


def test_an_expired_password_signs_nothing(plant) -> None:  # type: ignore[no-untyped-def]
    session = plant.identity.login("qa2", PASSWORDS["qa2"])
    plant.clock.advance(days=91)
    with pytest.raises(AuthenticationError, match="expired"):
        plant.signatures.sign(RECORD, Meaning.APPROVED, creds("qa2"))
    with pytest.raises(AuthenticationError):  # nor inside a session
        plant.signatures.sign(RECORD, Meaning.APPROVED, creds("qa2", session))
    assert plant.signatures.signatures_for(RECORD) == []
    plant.identity.change_password("qa2", PASSWORDS["qa2"], "Renewed-Approver-26!")
    signed = plant.signatures.sign(
        RECORD, Meaning.APPROVED, creds("qa2", password="Renewed-Approver-26!")
    )
    assert signed.signer_id == "qa2"


def test_an_issued_password_is_one_time(plant) -> None:  # type: ignore[no-untyped-def]
    user = plant.accounts.create_user(
        plant.admin_creds(), "op3", "Olaf Operator", ["Operator"], ISSUED
    )
    assert user.one_time_password
    with pytest.raises(AuthenticationError, match="set your own before logging in"):
        plant.identity.login("op3", ISSUED)
    with pytest.raises(AuthenticationError, match="set your own before signing"):
        plant.signatures.sign(RECORD, Meaning.PERFORMED, Credentials("op3", ISSUED))
    plant.identity.change_password("op3", ISSUED, "Olafs-Own-Pass-26")
    assert not plant.identity.user("op3").one_time_password
    plant.signatures.sign(RECORD, Meaning.PERFORMED, Credentials("op3", "Olafs-Own-Pass-26"))
    # A reset by the administrator is one-time again, and withdraws the personal key.
    plant.signatures.enroll_user_key("op3", "Olafs-Own-Pass-26")
    plant.accounts.reset_password(
        plant.admin_creds(), "op3", "Reset-By-IT-Desk-26", reason="forgotten, ticket 9"
    )
    assert plant.identity.user("op3").one_time_password
    with pytest.raises(AuthenticationError, match="set your own"):
        plant.signatures.sign(RECORD, Meaning.VERIFIED, Credentials("op3", "Reset-By-IT-Desk-26"))
    with plant.db.engine.connect() as conn:
        assert conn.scalar(select(UserKeyRow.user_id).where(UserKeyRow.user_id == "op3")) is None


# ------------------------------------------------------------------ lockout


def test_checks_in_progress_count_against_the_limit(plant) -> None:  # type: ignore[no-untyped-def]
    """Three checks already running (other processes): a fourth is refused without a check."""
    with plant.db.transaction() as conn:
        for n in range(3):
            conn.execute(
                insert(AuthPendingRow).values(
                    check_id=f"other-{n}", user_id="op1", started_at=format_timestamp(plant.clock())
                )
            )
    real = stored_hash(plant, "op1")
    seen: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, password: str, stored: str) -> bool:
        seen.append(stored)
        return original(self, password, stored)

    PasswordHasher.verify = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(AuthenticationError, match="too many attempts"):
            plant.identity.login("op1", "Guess-Number-Four-1")
    finally:
        PasswordHasher.verify = original  # type: ignore[method-assign]
    assert real not in seen and len(seen) == 1  # the decoy only: the same work, no check
    # Checks abandoned long ago (a killed process) count as failures: the account locks.
    plant.clock.advance(minutes=6)
    with pytest.raises(AccountLocked):
        plant.identity.login("op1", PASSWORDS["op1"])
    assert plant.identity.user("op1").locked


@pytest.mark.parametrize("guessers", [8])
def test_parallel_guessers_get_at_most_the_configured_checks(
    plant: Plant, db_url: str, tmp_path: Path, guessers: int
) -> None:
    limit = plant.identity.policy.max_failed_attempts
    go = tmp_path / "go"
    command = json.dumps(
        {"url": db_url, "user": "op1", "password": "Wrong-Guess-2026!", "go": str(go)}
    )
    child = Path(__file__).with_name("guess_child.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(child)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        for _ in range(guessers)
    ]
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "READY"
    go.touch()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        results.append(json.loads(out.strip().splitlines()[-1]))
    checks = sum(r["checks"] for r in results)
    assert checks == limit, results  # at most the limit; here all of them were used
    assert all(r["error"] in ("AuthenticationError", "AccountLocked") for r in results)
    assert plant.identity.user("op1").locked
    with plant.db.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM gx_auth_pending")) == 0


# ------------------------------------------------------------------ equal work


def test_every_account_state_costs_one_scrypt_and_one_entry(plant) -> None:  # type: ignore[no-untyped-def]
    plant.accounts.deactivate(plant.admin_creds(), "op2", reason="left the company")
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            plant.identity.login("qa1", "Wrong-Password-1!")
    costs: list[tuple[str, ...]] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, password: str, stored: str) -> bool:
        costs.append(tuple(stored.split("$")[1:4]))
        return original(self, password, stored)

    cases = {
        "unknown": ("nobody", "Some-Password-1!"),
        "deactivated": ("op2", PASSWORDS["op2"]),
        "locked": ("qa1", PASSWORDS["qa1"]),
        "wrong": ("op1", "Some-Password-1!"),
    }
    PasswordHasher.verify = spy  # type: ignore[method-assign]
    try:
        for user, password in cases.values():
            size = plant.db.ledger.size()
            costs.clear()
            with pytest.raises(AuthenticationError):
                plant.identity.verify_password(user, password, purpose="login")
            assert costs == [("10", "8", "1")], user
            assert plant.db.ledger.size() == size + 1, user
    finally:
        PasswordHasher.verify = original  # type: ignore[method-assign]


# ------------------------------------------------------------------ no secret in errors


def _texts(exc: BaseException) -> list[str]:
    seen: list[str] = []
    while exc is not None and len(seen) < 20:
        seen += [str(exc), repr(exc), *map(str, exc.args)]
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def test_no_identity_error_carries_a_password_or_a_hash(
    plant: Plant, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[BaseException] = []

    def attempt(action: Any) -> None:
        try:
            action()
        except GxpError as exc:
            errors.append(exc)
        except Exception as exc:  # a foreign error is itself a finding
            errors.append(exc)
            pytest.fail(f"not a library error: {type(exc).__name__}")

    admin = plant.admin_creds()
    attempt(lambda: plant.identity.login("nobody", "Wrong-Password-1!"))
    attempt(lambda: plant.identity.login("op1", "Wrong-Password-1!"))
    attempt(lambda: plant.identity.change_password("op1", PASSWORDS["op1"], "short"))
    attempt(lambda: plant.identity.change_password("op1", PASSWORDS["op1"], PASSWORDS["op1"]))
    attempt(lambda: plant.accounts.create_user(admin, "op1", "Dup", ["Operator"], ISSUED))
    attempt(lambda: plant.accounts.create_user(admin, "qа9", "Mixed", ["Operator"], ISSUED))
    attempt(lambda: plant.accounts.set_roles(admin, "admin", ["Administrator"], reason="self"))
    attempt(
        lambda: plant.accounts.set_roles(admin, "op1", ["Administrator", "Operator"], reason="x")
    )
    attempt(lambda: plant.accounts.unlock(creds("op1"), "op2", reason="x"))
    attempt(lambda: plant.signatures.sign(RECORD, Meaning.APPROVED, creds("op1")))
    attempt(
        lambda: plant.signatures.sign(RECORD, Meaning.PERFORMED, creds("op1", password="Wrong-1!"))
    )
    attempt(lambda: plant.signatures.sign(RECORD, Meaning.PERFORMED, creds("op2"), digital=True))
    for _ in range(3):
        attempt(lambda: plant.identity.login("qa1", "Wrong-Password-1!"))
    attempt(lambda: plant.identity.login("qa1", PASSWORDS["qa1"]))
    # A concurrent create_user: the other writer's row appears between check and insert.
    monkeypatch.setattr("gxpmes.identity.service.id_skeleton", lambda _id: object())
    attempt(lambda: plant.accounts.create_user(admin, "op2", "Someone Else", ["Operator"], ISSUED))
    assert "IntegrityError" not in " ".join(map(repr, errors))
    with plant.db.engine.connect() as conn:
        hashes = [
            str(h) for h in conn.scalars(text("SELECT password_hash FROM gx_password_history"))
        ]
    secrets = [*PASSWORDS.values(), ISSUED, "Wrong-Password-1!", "Wrong-1!"]
    secrets += hashes + [h.split("$")[-1] for h in hashes] + [h.split("$")[-2] for h in hashes]
    assert len(errors) >= 15
    for error in errors:
        for text_ in _texts(error):
            for secret in secrets:
                assert secret not in text_, (type(error).__name__, text_)
