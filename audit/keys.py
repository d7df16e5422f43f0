"""Checkpoint signing keys: encrypted key files and the public key registry.

Private keys live only in files, as PKCS#8 encrypted with a passphrase
(``BestAvailableEncryption``); they never enter the audit database. The
database holds a *registry of public keys* with a validity interval, and
revocations (which are inserts, like everything in the ledger). Rotation is
"register the new key, revoke the old one from that moment": checkpoints the
old key signed before then stay valid, later ones do not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from audit.errors import SigningKeyError
from audit.note import NoteSigner, NoteVerifier, public_key_bytes
from audit.schema import KeyRevocationRow, KeyRow

__all__ = [
    "KeyRegistry",
    "TrustedKey",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "write_key_pair",
]


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def write_key_pair(key: Ed25519PrivateKey, directory: Path, passphrase: bytes) -> tuple[Path, Path]:
    """Write ``private.pem`` (encrypted PKCS#8) and ``public.pem`` into ``directory``.

    Refuses to overwrite existing key files; the private file is created 0600.
    """
    if len(passphrase) < 8:
        raise SigningKeyError("the key passphrase must have at least 8 characters")
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "private.pem", directory / "public.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} exists; refusing to overwrite a key")
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Created exclusively and 0600 from the start: never a moment world-readable.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: Path, passphrase: bytes) -> Ed25519PrivateKey:
    """Load an encrypted PKCS#8 Ed25519 private key; wrong passphrase → :class:`SigningKeyError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read private key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"cannot unlock private key {path}: wrong passphrase or not an encrypted PEM key"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> bytes:
    """Raw 32-byte Ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return public_key_bytes(key)


@dataclass(frozen=True)
class TrustedKey:
    """A public key a verifier trusts, with the interval in which its signatures count."""

    verifier: NoteVerifier
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def key_id(self) -> str:
        """The 8-hex-digit key id."""
        return self.verifier.key_id

    def problem_at(self, when: datetime) -> str | None:
        """Why a signature made at ``when`` must not be trusted, or ``None`` if it may."""
        if self.revoked_at is not None and when >= self.revoked_at:
            revoked = format_timestamp(self.revoked_at)
            return f"key {self.key_id} revoked at {revoked}: {self.revocation_reason}"
        if self.valid_from is not None and when < self.valid_from:
            return f"key {self.key_id} not valid before {format_timestamp(self.valid_from)}"
        if self.valid_until is not None and when >= self.valid_until:
            return f"key {self.key_id} expired at {format_timestamp(self.valid_until)}"
        return None


def _parse_ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _aware(when: datetime, what: str) -> datetime:
    if when.utcoffset() is None:
        raise SigningKeyError(f"{what} must be timezone-aware")
    return when


KeyAuditHook = Callable[[Connection, AuditEvent], None]
"""Appends an audit entry inside the registry's open transaction (see :attr:`Ledger.keys`)."""


class KeyRegistry:
    """Public checkpoint keys registered in a ledger database (append-only tables).

    With an ``audit`` hook (the ledger's own registry has one), a registration
    or revocation made on behalf of an ``actor`` is an audit entry too
    (``key.register`` / ``key.revoke``), committed in the same transaction as
    the key row: both are written or neither is.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        audit: KeyAuditHook | None = None,
    ) -> None:
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self._audit = audit

    def _record(self, conn: Connection, actor: Actor | None, event: AuditEvent | None) -> None:
        if actor is None or event is None:
            return
        if self._audit is None:
            raise SigningKeyError("this key registry cannot record audit entries")
        self._audit(conn, event)

    def register(
        self,
        signer_or_verifier: NoteSigner | NoteVerifier,
        *,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        actor: Actor | None = None,
    ) -> TrustedKey:
        """Register a public key (idempotent for an identical key); returns its entry.

        With ``actor`` a new registration is audited (``key.register``).
        """
        verifier = (
            signer_or_verifier.verifier
            if isinstance(signer_or_verifier, NoteSigner)
            else signer_or_verifier
        )
        now = self._clock()
        start = _aware(valid_from, "valid_from") if valid_from else now
        if valid_until is not None and _aware(valid_until, "valid_until") <= start:
            raise SigningKeyError("a key's validity must end after it starts")
        existing = self.get(verifier.key_id)
        if existing is not None:
            if existing.verifier != verifier:
                raise SigningKeyError(f"key id {verifier.key_id} is taken by another key")
            return existing
        try:
            with self.engine.begin() as conn:
                event = (
                    AuditEvent(
                        actor,
                        "key.register",
                        "audit_key",
                        verifier.key_id,
                        new={
                            "name": verifier.name,
                            "vkey": verifier.vkey(),
                            "valid_from": format_timestamp(start),
                            "valid_until": format_timestamp(valid_until) if valid_until else None,
                        },
                    )
                    if actor is not None
                    else None
                )
                conn.execute(
                    insert(KeyRow).values(
                        key_id=verifier.key_id,
                        name=verifier.name,
                        public_key=verifier.public_key,
                        valid_from=format_timestamp(start),
                        valid_until=format_timestamp(valid_until) if valid_until else None,
                        registered_at=format_timestamp(now),
                    )
                )
                self._record(conn, actor, event)
        except IntegrityError as exc:  # a concurrent registration of the same id
            raise SigningKeyError(f"key {verifier.key_id} was registered concurrently") from exc
        registered = self.get(verifier.key_id)
        assert registered is not None
        return registered

    def revoke(
        self, key_id: str, *, reason: str, at: datetime | None = None, actor: Actor | None = None
    ) -> TrustedKey:
        """Revoke a key from ``at`` (default now); a reason is mandatory.

        With ``actor`` the revocation is audited (``key.revoke``, with the reason).
        """
        if not reason or not reason.strip():
            raise SigningKeyError("revoking a key needs a reason")
        key = self.get(key_id)
        if key is None:
            raise SigningKeyError(f"no registered key {key_id}")
        if key.revoked_at is not None:
            raise SigningKeyError(f"key {key_id} is already revoked")
        when = _aware(at, "revocation time") if at else self._clock()
        with self.engine.begin() as conn:
            conn.execute(
                insert(KeyRevocationRow).values(
                    key_id=key_id, revoked_at=format_timestamp(when), reason=reason
                )
            )
            if actor is not None:
                event = AuditEvent(
                    actor,
                    "key.revoke",
                    "audit_key",
                    key_id,
                    old={"revoked_at": None},
                    new={"revoked_at": format_timestamp(when)},
                    reason=reason,
                    requires_reason=True,
                )
                self._record(conn, actor, event)
        revoked = self.get(key_id)
        assert revoked is not None
        return revoked

    def rotate(
        self,
        old_key_id: str,
        new: NoteSigner | NoteVerifier,
        *,
        at: datetime | None = None,
        actor: Actor | None = None,
    ) -> TrustedKey:
        """Register ``new`` valid from ``at`` and retire ``old_key_id`` at the same moment."""
        when = _aware(at, "rotation time") if at else self._clock()
        registered = self.register(new, valid_from=when, actor=actor)
        self.revoke(old_key_id, reason=f"rotated to {registered.key_id}", at=when, actor=actor)
        return registered

    def get(self, key_id: str) -> TrustedKey | None:
        """The registered key with ``key_id``, with its revocation if any."""
        return next((k for k in self.list_keys() if k.key_id == key_id), None)

    def list_keys(self) -> list[TrustedKey]:
        """Every registered key."""
        with self.engine.connect().execution_options(ledger_read=True) as conn:
            revocations = {r.key_id: r for r in conn.execute(select(KeyRevocationRow)).all()}
            result = []
            for row in conn.execute(select(KeyRow).order_by(KeyRow.registered_at)).all():
                revocation = revocations.get(row.key_id)
                result.append(
                    TrustedKey(
                        NoteVerifier(row.name, bytes(row.public_key)),
                        valid_from=_parse_ts(row.valid_from),
                        valid_until=_parse_ts(row.valid_until),
                        revoked_at=_parse_ts(revocation.revoked_at) if revocation else None,
                        revocation_reason=revocation.reason if revocation else None,
                    )
                )
        return result
