"""Users, roles, passwords, sessions and lockout (21 CFR 11.10(d)(g), 11.100, 11.300)."""

from __future__ import annotations

import pytest
from identity_support import PASSWORDS
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit.verify import verify_ledger
from gxpmes.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordPolicyError,
    PermissionDenied,
    SessionExpired,
    UserError,
)
from gxpmes.identity import Credentials, PasswordHasher, PasswordPolicy


def actions(plant, object_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.event.action for e in plant.db.ledger.entries_for("user", object_id)]


def test_passwords_are_scrypt_hashed_and_never_logged(plant) -> None:  # type: ignore[no-untyped-def]
    with plant.db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM gx_user WHERE user_id='op1'")
        ).scalar_one()
    assert stored.startswith("scrypt$") and PASSWORDS["op1"] not in stored
    for _seq, canonical, _l, _t in plant.db.ledger.iter_raw_rows():
        for secret in PASSWORDS.values():
            assert secret.encode() not in canonical
        assert b"scrypt$" not in canonical
    with pytest.raises(AuthenticationError) as info:
        plant.identity.login("op1", "Wrong-Password-1!")
    assert "Wrong-Password" not in str(info.value)


def test_hasher_round_trip_and_parameters() -> None:
    hasher = PasswordHasher(log2_n=10)
    stored = hasher.hash("Secret-Value-1")
    assert hasher.verify("Secret-Value-1", stored)
    assert not hasher.verify("secret-value-1", stored)
    assert not hasher.verify("x", "garbage")
    assert hasher.hash("Secret-Value-1") != stored  # salted
    assert PasswordHasher(log2_n=11).needs_rehash(stored)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Short-1!", "at least 12"),
        ("alllowercaseletters", "mix at least"),
        ("Xy7-Xy7-xy7-abc!", "user id"),
    ],
)
def test_password_policy(plant, password: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PasswordPolicyError, match=message):
        plant.accounts.create_user(plant.admin_creds(), "xy7", "X Y", ["Operator"], password)
    with pytest.raises(UserError, match="no user"):
        plant.identity.user("xy7")  # nothing half-written


def test_password_history_and_expiry(plant) -> None:  # type: ignore[no-untyped-def]
    plant.identity.change_password("op1", PASSWORDS["op1"], "Brand-New-Pass-26")
    with pytest.raises(PasswordPolicyError, match="differ from the last"):
        plant.identity.change_password("op1", "Brand-New-Pass-26", PASSWORDS["op1"])
    plant.identity.login("op1", "Brand-New-Pass-26")
    plant.clock.advance(days=91)
    with pytest.raises(AuthenticationError, match="expired"):
        plant.identity.login("op1", "Brand-New-Pass-26")
    assert "user.password_change" in actions(plant, "op1")


def test_user_ids_are_unique_forever_and_never_deleted(plant) -> None:  # type: ignore[no-untyped-def]
    plant.accounts.deactivate(plant.admin_creds(), "op2", reason="left the company")
    with pytest.raises(UserError, match="never reused"):
        plant.accounts.create_user(
            plant.admin_creds(), "op2", "Other Person", ["Operator"], "Another-Pass-2026!"
        )
    with pytest.raises(AuthenticationError):
        plant.identity.login("op2", PASSWORDS["op2"])
    with pytest.raises(DBAPIError, match="never deleted"), plant.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM gx_user WHERE user_id = 'op2'"))
    assert plant.identity.user("op2").active is False
    assert actions(plant, "op2") == [
        "user.create",
        "user.password_change",  # the one-time password replaced by the user's own
        "user.deactivate",
        "auth.refused_inactive",
    ]


def test_lockout_alert_and_admin_unlock(plant) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            plant.identity.login("op1", "Wrong-Password-1!")
    with pytest.raises(AccountLocked, match="locked after 3"):
        plant.identity.login("op1", "Wrong-Password-1!")
    with pytest.raises(AccountLocked):
        plant.identity.login("op1", PASSWORDS["op1"])  # right password, still locked
    alerts = [
        e for e in plant.db.ledger.entries_for("user", "op1") if e.event.action == "security.alert"
    ]
    assert len(alerts) == 1 and alerts[0].event.reason == "possible unauthorised use"
    operator = plant.identity.login("op2", PASSWORDS["op2"])
    with pytest.raises(PermissionDenied):
        plant.accounts.unlock(
            Credentials("op2", PASSWORDS["op2"], operator), "op1", reason="I know her"
        )
    with pytest.raises(Exception, match="needs a reason"):
        plant.accounts.unlock(plant.admin_creds(), "op1", reason=None)
    plant.accounts.unlock(
        plant.admin_creds(), "op1", reason="identity confirmed by phone, ticket 4711"
    )
    assert plant.identity.login("op1", PASSWORDS["op1"]).user_id == "op1"
    assert actions(plant, "op1")[-2:] == ["auth.refused_locked", "user.unlock"]


def test_unknown_user_does_not_reveal_which_component_was_wrong(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthenticationError) as unknown:
        plant.identity.login("nobody", "Whatever-Pass-1!")
    with pytest.raises(AuthenticationError) as wrong:
        plant.identity.login("op1", "Whatever-Pass-1!")
    assert str(unknown.value) == str(wrong.value)


def test_idle_timeout_ends_the_session(plant) -> None:  # type: ignore[no-untyped-def]
    session = plant.identity.login("qa2", PASSWORDS["qa2"])
    plant.clock.advance(minutes=14)
    assert plant.identity.authorise(session, "sign.Released").user_id == "qa2"
    plant.clock.advance(minutes=16)
    with pytest.raises(SessionExpired, match="idle"):
        plant.identity.authorise(session, "sign.Released")
    with pytest.raises(SessionExpired):
        plant.identity.authorise(session, "sign.Released")


def test_roles_and_permissions(plant) -> None:  # type: ignore[no-untyped-def]
    operator = plant.identity.login("op1", PASSWORDS["op1"])
    with pytest.raises(PermissionDenied, match=r"user\.manage"):
        plant.accounts.create_user(
            Credentials("op1", PASSWORDS["op1"], operator),
            "op9",
            "Nine",
            ["Operator"],
            "Nine-Nine-2026!x",
        )
    with pytest.raises(UserError, match="unknown role"):
        plant.accounts.set_roles(plant.admin_creds(), "op1", ["Wizard"], reason="typo")
    user = plant.accounts.set_roles(
        plant.admin_creds(), "op1", ["Operator", "QA Reviewer"], reason="cross-trained"
    )
    assert user.roles == {"Operator", "QA Reviewer"}
    entry = [
        e for e in plant.db.ledger.entries_for("user", "op1") if e.event.action == "user.roles"
    ]
    assert entry[-1].event.old == {"roles": ["Operator"]}
    assert entry[-1].event.reason == "cross-trained"
    with pytest.raises(UserError, match="users exist"):
        plant.identity.bootstrap_admin("root", "Root", "Root-Password-2026!")


def test_trail_stays_verifiable(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthenticationError):
        plant.identity.login("op1", "nope-nope-nope")
    assert verify_ledger(plant.db.ledger).ok


def test_policy_configuration_is_checked() -> None:
    from gxpmes.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        PasswordPolicy(min_length=4)
    with pytest.raises(ConfigurationError):
        PasswordPolicy(max_failed_attempts=0)
