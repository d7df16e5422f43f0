"""Electronic signatures (21 CFR 11.50, 11.70, 11.100, 11.200).

A signature binds a *manifestation* — signer id, printed name, date and time
with time zone, meaning — to the SHA-256 of exactly the content signed
(RFC 8785 bytes), and the system signs that manifest with its Ed25519 key.
Editing a signature row, or copying it to another record, therefore fails
verification. Optionally the user's own key (encrypted with their password)
signs too (digital-signature mode).

Signing rules, checked before anything is written:

* the first signing in a session needs user id and password; later signings
  in the same, still-active session need the password again;
* the meaning must be granted by the signer's roles (``sign.<Meaning>``), and
  those roles must not conflict (:class:`gxpmes.identity.duties.DutyMatrix`);
* the password is the signer's own (not one an administrator issued) and
  has not expired;
* separation of duties: whoever performed cannot verify the same record;
  whoever performed or verified in a scope (a batch, a recipe) cannot review,
  approve, release or reject it; whoever reviewed cannot release it;
* a Verified signature needs a Performed one by someone else first;
* the record must not have changed since it was shown (``expected_hash``).

A refused signing leaves an audit entry and no signature.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, func, select

from audit.canonical import canonicalize
from audit.entry import AuditEvent
from audit.note import public_key_bytes
from gxpmes.errors import (
    AuthenticationError,
    ConfigurationError,
    GxpError,
    PermissionDenied,
    RecordChangedError,
    SeparationOfDutiesError,
    SignatureError,
)
from gxpmes.identity import keywrap
from gxpmes.identity.duties import SIGNING_CONFLICTS
from gxpmes.identity.schema import SessionRow, SignatureRow, UserKeyRow
from gxpmes.identity.service import IdentityService, Session, User
from gxpmes.lengths import check_lengths
from gxpmes.records import writer as projection

__all__ = [
    "Credentials",
    "Meaning",
    "Signable",
    "SignableRecord",
    "Signature",
    "SignatureService",
    "content_hash",
]


class Meaning(enum.StrEnum):
    """Standard signature meanings; services may configure more."""

    PERFORMED = "Performed"
    VERIFIED = "Verified"
    REVIEWED = "Reviewed"
    APPROVED = "Approved"
    RELEASED = "Released"
    REJECTED = "Rejected"
    AUTHORISED = "Authorised"
    """An administrator's signature on a change of someone's account."""


SEPARATION_OF_DUTIES: Mapping[str, tuple[frozenset[str], str]] = SIGNING_CONFLICTS
"""The default signing conflicts (an installation's ``DutyMatrix.signing`` replaces them)."""


class Signable(Protocol):
    """What can be signed: a typed, identified record with canonical content."""

    @property
    def signable_type(self) -> str: ...

    @property
    def signable_id(self) -> str: ...

    @property
    def signable_scope(self) -> str: ...

    def signable_content(self) -> Any: ...


@dataclass(frozen=True)
class SignableRecord:
    """A plain :class:`Signable`: type, id, scope (e.g. the batch) and JSON-like content."""

    signable_type: str
    signable_id: str
    content: Any
    signable_scope: str = ""

    def signable_content(self) -> Any:
        """The content that is hashed and signed."""
        return self.content


def content_hash(record: Signable) -> str:
    """Hex SHA-256 of the RFC 8785 bytes of the record's content."""
    return hashlib.sha256(canonicalize(record.signable_content())).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """The two components: user id and password (``session`` links later signings)."""

    user_id: str
    password: str = field(repr=False)
    session: Session | None = None


@dataclass(frozen=True)
class Signer:
    """A person whose two signature components were just checked, for one meaning."""

    user: User
    meaning: str
    client_tz: str
    session: Session | None = None
    user_key: Ed25519PrivateKey | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Signature:
    """A stored signature with its manifestation."""

    signature_id: str
    record_type: str
    record_id: str
    scope: str
    content_hash: str
    signer_id: str
    printed_name: str
    signed_at: datetime
    time_zone: str
    meaning: str
    reason: str | None
    manifest: str
    system_key_id: str
    system_signature: bytes
    user_public_key: bytes | None = None
    user_signature: bytes | None = None

    @property
    def manifestation(self) -> str:
        """Printed name, date and time with zone, and meaning, as shown on every rendering."""
        local = self.signed_at.astimezone(_zone(self.time_zone))
        return (
            f"{self.printed_name} ({self.signer_id}) — {self.meaning} — "
            f"{local.strftime('%Y-%m-%d %H:%M:%S')} {self.time_zone} "
            f"(UTC{local.strftime('%z')[:3]}:{local.strftime('%z')[3:]})"
        )


def _zone(name: str) -> Any:
    from datetime import UTC, timedelta, timezone

    if name == "UTC":
        return UTC
    if name[:1] in "+-" and len(name) == 6:
        sign = 1 if name[0] == "+" else -1
        return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    return ZoneInfo(name)


def key_id_of(public_key: bytes) -> str:
    """The id under which a system public key signs: hex SHA-256 prefix."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _from_row(row: Any) -> Signature:
    data = json.loads(row.manifest)
    return Signature(
        signature_id=row.signature_id,
        record_type=data["record_type"],
        record_id=data["record_id"],
        scope=data["scope"],
        content_hash=data["content_hash"],
        signer_id=data["signer_id"],
        printed_name=data["printed_name"],
        signed_at=datetime.fromisoformat(data["signed_at"]),
        time_zone=data["time_zone"],
        meaning=data["meaning"],
        reason=data["reason"],
        manifest=row.manifest,
        system_key_id=row.system_key_id,
        system_signature=bytes(row.system_signature),
        user_public_key=None if row.user_public_key is None else bytes(row.user_public_key),
        user_signature=None if row.user_signature is None else bytes(row.user_signature),
    )


class SignatureService:
    """Makes and verifies electronic signatures for one installation.

    ``system_key`` is the Ed25519 key that countersigns every manifest (load it
    from an encrypted key file; it is never stored in the database).
    ``extra_meanings`` adds configured meanings (permission ``sign.<Meaning>``);
    one longer than the signature table's ``meaning`` column is a
    :class:`~gxpmes.errors.ConfigurationError`.
    """

    def __init__(
        self,
        identity: IdentityService,
        system_key: Ed25519PrivateKey | None,
        *,
        trusted_system_keys: Mapping[str, bytes] | None = None,
        extra_meanings: frozenset[str] = frozenset(),
    ) -> None:
        self.identity = identity
        self.db = identity.db
        self._key = system_key
        self.trusted: dict[str, bytes] = dict(trusted_system_keys or {})
        self.system_key_id = ""
        if system_key is not None:
            public = public_key_bytes(system_key.public_key())
            self.system_key_id = key_id_of(public)
            self.trusted[self.system_key_id] = public
        check_lengths(
            ConfigurationError,
            (("signature meaning", m, SignatureRow.meaning) for m in sorted(extra_meanings)),
        )
        self.meanings = frozenset(m.value for m in Meaning) | extra_meanings

    # ------------------------------------------------------------- signing

    def sign(
        self,
        record: Signable,
        meaning: str,
        credentials: Credentials,
        *,
        reason: str | None = None,
        expected_hash: str | None = None,
        digital: bool = False,
    ) -> Signature:
        """Sign ``record`` with ``meaning`` in a transaction of its own; refusals are audited.

        Engine code that changes state together with the signature uses
        :meth:`authenticate` then :meth:`sign_in` inside its own transaction.
        """
        signer = self.authenticate(credentials, meaning, record, digital=digital)
        try:
            with self.db.transaction() as conn:
                signature_id = self.sign_in(
                    conn, signer, record, reason=reason, expected_hash=expected_hash
                )
        except GxpError as exc:
            self.audit_refusal(record, meaning, credentials.user_id, exc)
            raise
        return self._get(signature_id)

    def authenticate(
        self,
        credentials: Credentials,
        meaning: str,
        record: Signable,
        *,
        digital: bool = False,
    ) -> Signer:
        """Check both signature components and the permission to sign as ``meaning``.

        Runs outside any write transaction (a failed password updates the
        lockout counter in a transaction of its own); refusals are audited
        against ``record``.
        """
        meaning = str(meaning)  # a Meaning member or a configured meaning string
        # Before anything, the refusal audit included: a record the signature table
        # cannot name is the caller's mistake, not a signing attempt.
        check_lengths(
            SignatureError,
            (
                ("record type", record.signable_type, SignatureRow.record_type),
                (f"{record.signable_type} record id", record.signable_id, SignatureRow.record_id),
                (f"{record.signable_type} scope", record.signable_scope, SignatureRow.scope),
            ),
        )
        try:
            if meaning not in self.meanings:
                raise SignatureError(f"unknown signature meaning {meaning!r}")
            if self._key is None:
                raise SignatureError(
                    "this signature service verifies only: no system key to sign with"
                )
            user = self._authenticate(credentials)
            if f"sign.{meaning}" not in self.identity.permissions(user):
                raise PermissionDenied(
                    f"{user.user_id} may not sign as {meaning!r} (roles: "
                    f"{', '.join(sorted(user.roles)) or 'none'})"
                )
            self.identity.check_usable_for_signing(user)
            user_key = self._user_key(user.user_id, credentials.password) if digital else None
        except GxpError as exc:
            self.audit_refusal(record, meaning, credentials.user_id, exc)
            raise
        client_tz = credentials.session.client_tz if credentials.session else "UTC"
        return Signer(user, meaning, client_tz, credentials.session, user_key)

    def sign_in(
        self,
        conn: Connection,
        signer: Signer,
        record: Signable,
        *,
        reason: str | None = None,
        expected_hash: str | None = None,
    ) -> str:
        """Write the signature inside the caller's transaction; returns its id.

        Separation of duties is checked against the signatures visible in that
        transaction, so a state check and the signature commit together or not
        at all. The caller audits a refusal after its transaction rolled back
        (:meth:`audit_refusal`).
        """
        user, meaning = signer.user, signer.meaning
        digest = content_hash(record)
        if expected_hash is not None and expected_hash != digest:
            raise RecordChangedError(
                f"{record.signable_type} {record.signable_id!r} changed after it was shown; "
                "review it again before signing"
            )
        now = self.db.clock()
        manifest_data = {
            "record_type": record.signable_type,
            "record_id": record.signable_id,
            "scope": record.signable_scope,
            "content_hash": digest,
            "signer_id": user.user_id,
            "printed_name": user.printed_name,
            "signed_at": now.isoformat(),
            "time_zone": signer.client_tz,
            "meaning": meaning,
            "reason": reason,
        }
        manifest = canonicalize(manifest_data).decode()
        assert self._key is not None
        system_signature = self._key.sign(manifest.encode())
        user_public = user_signature = None
        if signer.user_key is not None:
            user_public = public_key_bytes(signer.user_key.public_key())
            user_signature = signer.user_key.sign(manifest.encode())
        signature_id = str(uuid.uuid4())
        self._check_separation(conn, record, meaning, user)
        if signer.session is not None:
            projection.update(
                conn,
                SessionRow,
                {"session_id": signer.session.key},
                dict(signed=True),
            )
        order = conn.execute(select(func.count()).select_from(SignatureRow)).scalar_one()
        projection.insert(
            conn,
            SignatureRow,
            dict(
                signature_id=signature_id,
                record_type=record.signable_type,
                record_id=record.signable_id,
                scope=record.signable_scope,
                signer_id=user.user_id,
                meaning=meaning,
                manifest=manifest,
                system_key_id=self.system_key_id,
                system_signature=system_signature,
                user_public_key=user_public,
                user_signature=user_signature,
                audit_seq=None,  # the seq of the entry below, filled by the writer
                created_order=order,
            ),
        )
        self.db.audit(
            conn,
            AuditEvent(
                user.actor,
                "signature.sign",
                record.signable_type,
                record.signable_id,
                new={
                    "meaning": meaning,
                    "content_hash": digest,
                    "signature_id": signature_id,
                    "scope": record.signable_scope,
                },
                reason=reason,
                client_tz=signer.client_tz,
            ),
        )
        return signature_id

    def _authenticate(self, credentials: Credentials) -> User:
        if credentials.session is None:
            return self.identity.verify_password(
                credentials.user_id, credentials.password, purpose="signature"
            )
        session = credentials.session
        if session.user_id != credentials.user_id:
            raise AuthenticationError("credentials do not belong to this session's user")
        with self.db.transaction() as conn:
            _user, row = self.identity.active_session(conn, session)
        # 11.200(a)(1): in a continuous session the password is always re-checked.
        return self.identity.verify_password(
            credentials.user_id,
            credentials.password,
            purpose="signature in session" if row.signed else "signature",
        )

    def _check_separation(
        self, conn: Connection, record: Signable, meaning: str, user: User
    ) -> None:
        # The scope's signatures (a batch); a record without a scope is its own scope.
        conditions = (
            [SignatureRow.scope == record.signable_scope]
            if record.signable_scope
            else [
                SignatureRow.record_type == record.signable_type,
                SignatureRow.record_id == record.signable_id,
            ]
        )
        existing = [_from_row(r) for r in conn.execute(select(SignatureRow).where(*conditions))]
        on_record = [
            s
            for s in existing
            if (s.record_type, s.record_id) == (record.signable_type, record.signable_id)
        ]
        if meaning == Meaning.VERIFIED and not any(
            s.meaning == Meaning.PERFORMED for s in on_record
        ):
            raise SignatureError(
                f"{record.signable_type} {record.signable_id!r} has no Performed signature "
                "to verify"
            )
        if any(s.signer_id == user.user_id and s.meaning == meaning for s in on_record):
            raise SignatureError(f"{user.user_id} already signed this record as {meaning}")
        configured = self.identity.duties.signing
        rule = (SEPARATION_OF_DUTIES if configured is None else configured).get(meaning)
        if rule is None:
            return
        conflicts, level = rule
        pool = on_record if level == "record" else existing
        clash = [s for s in pool if s.signer_id == user.user_id and s.meaning in conflicts]
        if clash:
            where = "record" if level == "record" else f"scope {record.signable_scope!r}"
            raise SeparationOfDutiesError(
                f"separation of duties: {user.user_id} signed {clash[0].meaning} in this {where} "
                f"and cannot also sign {meaning}"
            )

    def audit_refusal(self, record: Signable, meaning: str, user_id: str, exc: GxpError) -> None:
        """Record a refused signing attempt (21 CFR 11.10(e): attempts are part of the trail)."""
        from gxpmes.database import SYSTEM

        with self.db.transaction() as conn:
            self.db.audit(
                conn,
                AuditEvent(
                    SYSTEM,
                    "signature.refused",
                    record.signable_type,
                    record.signable_id,
                    new={
                        "meaning": meaning,
                        "user_id": user_id,
                        "refusal": type(exc).__name__,
                        "detail": str(exc),
                    },
                ),
            )

    # ----------------------------------------------------------- user keys

    def enroll_user_key(self, user_id: str, password: str) -> bytes:
        """Give a user their own signing key, wrapped with their password (digital mode).

        The wrapping key comes from scrypt at the password hash's cost
        (:mod:`gxpmes.identity.keywrap`).
        """
        user = self.identity.verify_password(user_id, password, purpose="signing key enrolment")
        self.identity.check_usable_for_signing(user)
        user_id = user.user_id
        key = Ed25519PrivateKey.generate()
        encrypted = keywrap.wrap(key, password, self.identity.hasher)
        public = public_key_bytes(key.public_key())
        with self.db.transaction() as conn:
            if conn.execute(select(UserKeyRow).where(UserKeyRow.user_id == user_id)).first():
                raise SignatureError(f"{user_id} already has a signing key")
            projection.insert(
                conn,
                UserKeyRow,
                dict(user_id=user_id, public_key=public, encrypted_private_key=encrypted),
            )
            self.db.audit(
                conn,
                AuditEvent(
                    user.actor,
                    "user.signing_key",
                    "user",
                    user_id,
                    new={"public_key": base64.b64encode(public).decode()},
                ),
            )
        return public

    def _user_key(self, user_id: str, password: str) -> Ed25519PrivateKey:
        with self.db.read() as conn:
            row = conn.execute(
                select(UserKeyRow).where(UserKeyRow.user_id == user_id)
            ).one_or_none()
        if row is None:
            raise SignatureError(f"{user_id} has no personal signing key (digital mode)")
        return keywrap.unwrap(bytes(row.encrypted_private_key), password)

    # ----------------------------------------------------------- reading

    def _get(self, signature_id: str) -> Signature:
        with self.db.read() as conn:
            row = conn.execute(
                select(SignatureRow).where(SignatureRow.signature_id == signature_id)
            ).one()
        return _from_row(row)

    def signatures_for(self, record: Signable) -> list[Signature]:
        """Signatures on ``record``, in signing order."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(SignatureRow)
                .where(
                    SignatureRow.record_type == record.signable_type,
                    SignatureRow.record_id == record.signable_id,
                )
                .order_by(SignatureRow.created_order)
            ).all()
        return [_from_row(r) for r in rows]

    def signatures_in_scope(self, scope: str) -> list[Signature]:
        """Every signature in a scope (e.g. all signatures of a batch)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(SignatureRow)
                .where(SignatureRow.scope == scope)
                .order_by(SignatureRow.created_order)
            ).all()
        return [_from_row(r) for r in rows]

    # --------------------------------------------------------- verification

    def verify_signature(
        self, signature: Signature, record: Signable, *, digest: str | None = None
    ) -> None:
        """Raise :class:`SignatureError` unless ``signature`` fits ``record`` as it is now."""
        public = self.trusted.get(signature.system_key_id)
        if public is None:
            raise SignatureError(
                f"signature {signature.signature_id}: unknown system key {signature.system_key_id}"
            )
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(
                signature.system_signature, signature.manifest.encode()
            )
        except InvalidSignature as exc:
            raise SignatureError(
                f"signature {signature.signature_id}: manifest was altered "
                "(system signature does not verify)"
            ) from exc
        data = json.loads(signature.manifest)
        if canonicalize(data).decode() != signature.manifest:
            raise SignatureError(f"signature {signature.signature_id}: manifest is not canonical")
        if (data["record_type"], data["record_id"]) != (record.signable_type, record.signable_id):
            raise SignatureError(
                f"signature {signature.signature_id} belongs to {data['record_type']} "
                f"{data['record_id']!r}, not to {record.signable_type} {record.signable_id!r}"
            )
        if data["content_hash"] != (content_hash(record) if digest is None else digest):
            raise SignatureError(
                f"signature {signature.signature_id}: the record changed after it was signed"
            )
        if signature.user_signature is not None:
            if signature.user_public_key is None:
                raise SignatureError(f"signature {signature.signature_id}: user key missing")
            try:
                Ed25519PublicKey.from_public_bytes(signature.user_public_key).verify(
                    signature.user_signature, signature.manifest.encode()
                )
            except InvalidSignature as exc:
                raise SignatureError(
                    f"signature {signature.signature_id}: the signer's own "
                    "signature does not verify"
                ) from exc

    def verify_scope(
        self, scope: str, records: Mapping[tuple[str, str], Signable]
    ) -> list[tuple[Signature, str | None]]:
        """Re-check every signature of a scope against the current records.

        ``records`` maps ``(record_type, record_id)`` to the record. Returns
        ``(signature, problem or None)`` for each signature.
        """
        results: list[tuple[Signature, str | None]] = []
        # A record signed twice (Performed, Verified) is hashed once: a phase's
        # content lists every value captured in it.
        digests: dict[tuple[str, str], str] = {}
        for signature in self.signatures_in_scope(scope):
            key = (signature.record_type, signature.record_id)
            record = records.get(key)
            if record is None:
                results.append((signature, "the signed record is missing"))
                continue
            if key not in digests:
                digests[key] = content_hash(record)
            try:
                self.verify_signature(signature, record, digest=digests[key])
            except SignatureError as exc:
                results.append((signature, str(exc)))
            else:
                results.append((signature, None))
        return results
