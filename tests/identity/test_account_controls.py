"""Separation of duties and signed account administration (21 CFR 11.10(d), (g),
11.200(a)(3), 211.192, 211.186; EU GMP Annex 11 §12)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from identity_support import ISSUED, PASSWORDS, Plant
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gxpmes.errors import PermissionDenied, SeparationOfDutiesError, SignatureError
from gxpmes.identity import (
    Credentials,
    DutyMatrix,
    IdentityService,
    Meaning,
    SignableRecord,
    SignatureService,
)
from gxpmes.identity.admin import AccountAdministration
from gxpmes.records.verify import RecordReport, verify_record


def creds(user: str, session=None) -> Credentials:  # type: ignore[no-untyped-def]
    return Credentials(user, PASSWORDS[user], session)


def verify(plant: Plant) -> RecordReport:
    return verify_record(plant.db.engine, signature_keys=dict(plant.signatures.trusted))


def test_nobody_changes_their_own_account(plant) -> None:  # type: ignore[no-untyped-def]
    admin = plant.admin_creds()
    size = plant.db.ledger.size()
    accounts = plant.accounts
    changes: list[Callable[[], object]] = [
        lambda: accounts.set_roles(admin, "admin", ["Administrator"], reason="me"),
        lambda: accounts.unlock(admin, "admin", reason="me"),
        lambda: accounts.deactivate(admin, "admin", reason="me"),
        lambda: accounts.reset_password(admin, "ADMIN", "Another-Pass-26!", reason="me"),
    ]
    for change in changes:
        with pytest.raises(SeparationOfDutiesError, match="their own account"):
            change()
    refused = plant.db.ledger.entries_for("account_change", "user.roles:admin")
    assert [e.event.action for e in refused] == ["signature.refused"]
    assert plant.db.ledger.size() == size + 4  # four refusals, nothing else
    assert plant.identity.user("admin").roles == {"Administrator"}


def test_role_grants_are_signed_reasoned_audited_and_verified(plant) -> None:  # type: ignore[no-untyped-def]
    user = plant.accounts.set_roles(
        plant.admin_creds(), "op1", ["Operator", "QA Reviewer"], reason="cross-trained, HR-7"
    )
    assert user.roles == {"Operator", "QA Reviewer"}
    grant = next(
        e
        for e in reversed(plant.db.ledger.entries_for("user", "op1"))
        if e.event.action == "user.roles"
    )
    assert grant.event.reason == "cross-trained, HR-7" and grant.event.actor.user_id == "admin"
    change_id = grant.event.new["change_id"]
    [signature] = plant.signatures.signatures_in_scope("account:op1")[-1:]
    assert (signature.record_id, signature.meaning, signature.signer_id) == (
        change_id,
        "Authorised",
        "admin",
    )
    report = verify(plant)
    assert report.ok, [p.line() for p in report.problems]
    # The signed record cannot be edited afterwards (append-only).
    with pytest.raises(DBAPIError), plant.db.engine.begin() as conn:
        conn.execute(text("UPDATE gx_account_change SET new = '{}'"))


def test_an_admin_granting_himself_roles_by_sql_is_caught_and_cannot_sign(plant) -> None:  # type: ignore[no-untyped-def]
    with plant.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE gx_user SET roles = 'Administrator\nQA Approver' WHERE user_id = 'admin'")
        )
    report = verify(plant)
    assert any(
        p.table == "gx_user" and p.key == "admin" and p.column == "roles" for p in report.problems
    )
    batch = SignableRecord("batch", "B-1", {"status": "Reviewed"}, "B-1")
    with pytest.raises(SeparationOfDutiesError, match="'Administrator' and 'QA Approver'"):
        plant.signatures.sign(batch, Meaning.RELEASED, creds("admin"))
    assert plant.signatures.signatures_for(batch) == []


def test_conflicting_roles_are_refused_at_grant(plant) -> None:  # type: ignore[no-untyped-def]
    admin = plant.admin_creds()
    with pytest.raises(SeparationOfDutiesError, match="refused at grant"):
        plant.accounts.set_roles(admin, "op1", ["Administrator", "Operator"], reason="helper")
    with pytest.raises(SeparationOfDutiesError):
        plant.accounts.create_user(
            admin, "root2", "Root Two", ["Administrator", "QA Approver"], ISSUED
        )
    assert plant.identity.user("op1").roles == {"Operator"}
    # A second administrator is fine: Administrator conflicts with signing roles only.
    plant.accounts.create_user(admin, "admin2", "Ada Admin", ["Administrator"], ISSUED)


def test_an_operator_cannot_administer_accounts(plant) -> None:  # type: ignore[no-untyped-def]
    session = plant.identity.login("op1", PASSWORDS["op1"])
    with pytest.raises(PermissionDenied, match="lacks permission"):
        plant.accounts.set_roles(creds("op1", session), "op2", ["Operator"], reason="x")


def test_account_changes_need_the_administrators_password_in_session(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError, match="session"):
        plant.accounts.unlock(creds("admin"), "op1", reason="no session")
    with pytest.raises(Exception, match="wrong"):
        plant.accounts.unlock(
            Credentials("admin", "Not-The-Password-1", plant.admin), "op1", reason="x"
        )


def test_reviewer_is_not_releaser_and_performer_is_not_verifier(plant) -> None:  # type: ignore[no-untyped-def]
    step = SignableRecord("batch_step", "B-2/CHARGE", {"qty": "5 kg"}, "B-2")
    plant.signatures.sign(step, Meaning.PERFORMED, creds("op1"))
    with pytest.raises(SeparationOfDutiesError, match="cannot also sign Verified"):
        plant.signatures.sign(step, Meaning.VERIFIED, creds("op1"))
    batch = SignableRecord("batch", "B-2", {"status": "Executed"}, "B-2")
    plant.signatures.sign(batch, Meaning.REVIEWED, creds("qa2"))
    with pytest.raises(SeparationOfDutiesError, match="signed Reviewed"):
        plant.signatures.sign(batch, Meaning.RELEASED, creds("qa2"))
    recipe = SignableRecord("master_recipe", "MR/v1", {"v": 1}, "recipe:MR/v1")
    plant.accounts.set_roles(
        plant.admin_creds(), "qa1", ["QA Approver"], reason="author in training"
    )
    plant.signatures.sign(recipe, Meaning.PERFORMED, creds("op2"))
    plant.signatures.sign(recipe, Meaning.APPROVED, creds("qa1"))
    with pytest.raises(SeparationOfDutiesError):  # the author cannot approve
        plant.accounts.set_roles(
            plant.admin_creds(), "op2", ["Operator", "QA Approver"], reason="promotion"
        )
        plant.signatures.sign(recipe, Meaning.APPROVED, creds("op2"))


def test_the_conflict_matrix_is_configurable(plant) -> None:  # type: ignore[no-untyped-def]
    def accounts_with(duties: DutyMatrix) -> AccountAdministration:
        identity = IdentityService(plant.db, hasher=plant.identity.hasher, duties=duties)
        return AccountAdministration(SignatureService(identity, plant.signatures._key))

    lax = accounts_with(DutyMatrix(role_conflicts=frozenset()))
    lax.set_roles(plant.admin_creds(), "op1", ["Administrator", "Operator"], reason="site rule")
    strict = accounts_with(
        DutyMatrix(role_conflicts=frozenset({frozenset({"Operator", "QA Reviewer"})}))
    )
    with pytest.raises(SeparationOfDutiesError, match="'Operator' and 'QA Reviewer'"):
        strict.set_roles(plant.admin_creds(), "op2", ["Operator", "QA Reviewer"], reason="x")
    with pytest.raises(Exception, match="two different roles"):
        DutyMatrix(role_conflicts=frozenset({frozenset({"Operator"})}))
