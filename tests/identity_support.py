"""An installation with users of every role, with a controllable clock (identity tests)."""

from __future__ import annotations

from dataclasses import dataclass

from audit.keys import generate_private_key
from gxpmes.database import Database
from gxpmes.identity import (
    AccountAdministration,
    Credentials,
    IdentityService,
    PasswordHasher,
    PasswordPolicy,
    Session,
    SignatureService,
)
from gxpmes.testing.plant import Clock

PASSWORDS = {
    "admin": "Root-Of-Trust-26!",
    "op1": "Operator-One-2026!",
    "op2": "Operator-Two-2026!",
    "qa1": "Reviewer-QA-2026!",
    "qa2": "Approver-QA-2026!",
}

ISSUED = "Issued-Once-By-IT-26!"


@dataclass
class Plant:
    db: Database
    identity: IdentityService
    signatures: SignatureService
    clock: Clock
    admin: Session

    @property
    def accounts(self) -> AccountAdministration:
        return AccountAdministration(self.signatures)

    def admin_creds(self) -> Credentials:
        return Credentials("admin", PASSWORDS["admin"], self.admin)


def make_plant(db_url: str) -> Plant:
    """Database, services, an administrator session and four users."""
    clock = Clock()
    db = Database(db_url, clock=clock)
    identity = IdentityService(db, policy=PasswordPolicy(), hasher=PasswordHasher(log2_n=10))
    signatures = SignatureService(identity, generate_private_key())
    accounts = AccountAdministration(signatures)
    identity.bootstrap_admin("admin", "Alex Admin", PASSWORDS["admin"])
    admin = identity.login("admin", PASSWORDS["admin"])
    for user_id, name, roles in [
        ("op1", "Olga Operator", ["Operator"]),
        ("op2", "Otto Operator", ["Operator"]),
        ("qa1", "Quinn Reviewer", ["QA Reviewer"]),
        ("qa2", "Petra Approver", ["QA Approver"]),
    ]:
        # A one-time password from the administrator, then the user's own.
        accounts.create_user(
            Credentials("admin", PASSWORDS["admin"], admin), user_id, name, roles, ISSUED
        )
        identity.change_password(user_id, ISSUED, PASSWORDS[user_id])
    return Plant(db, identity, signatures, clock, admin)
