"""Part 11 identity: users, roles, authentication, sessions, lockout and e-signatures."""

from gxpmes.identity.admin import AccountAdministration
from gxpmes.identity.duties import DutyMatrix
from gxpmes.identity.passwords import OWASP_LOG2_N, PasswordHasher, PasswordPolicy
from gxpmes.identity.service import DEFAULT_ROLES, IdentityService, Session, User
from gxpmes.identity.signatures import (
    Credentials,
    Meaning,
    Signable,
    SignableRecord,
    Signature,
    SignatureService,
    content_hash,
)

__all__ = [
    "DEFAULT_ROLES",
    "OWASP_LOG2_N",
    "AccountAdministration",
    "Credentials",
    "DutyMatrix",
    "IdentityService",
    "Meaning",
    "PasswordHasher",
    "PasswordPolicy",
    "Session",
    "Signable",
    "SignableRecord",
    "Signature",
    "SignatureService",
    "User",
    "content_hash",
]
