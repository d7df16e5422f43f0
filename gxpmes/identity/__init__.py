"""Part 11 identity: users, roles, authentication, sessions, lockout and e-signatures."""

from gxpmes.identity.passwords import PasswordHasher, PasswordPolicy
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
    "Credentials",
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
