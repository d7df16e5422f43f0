"""A user's personal signing key, wrapped with a key derived from their password by scrypt.

The wrapped key sits in the database (``gx_user_key``). Whoever reads that
row must pay the same scrypt cost per password guess as against the password
hash itself, so the key file is no faster oracle for the login password
than the hash. (The first version wrapped with PKCS#8 PBKDF2 at 2,048
iterations: thousands of guesses a second.) A password change re-wraps the
key under the new password (:func:`rewrap`).

Format (bytes): ``b"gxkw1$<log2 n>$<r>$<p>$" + salt(16) + nonce(12) + AES-256-GCM(key)``;
the header is the GCM associated data, so a changed cost parameter fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gxpmes.errors import SignatureError
from gxpmes.identity.passwords import PasswordHasher

__all__ = ["is_current", "rewrap", "unwrap", "wrap"]

_MAGIC = b"gxkw1$"


def _header(hasher: PasswordHasher) -> bytes:
    return _MAGIC + f"{hasher.log2_n}${hasher.r}${hasher.p}$".encode()


def _kek(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(password.encode("utf-8"))


def wrap(key: Ed25519PrivateKey, password: str, hasher: PasswordHasher) -> bytes:
    """``key`` encrypted under a key scrypt derives from ``password`` at ``hasher``'s cost."""
    header = _header(hasher)
    salt, nonce = os.urandom(16), os.urandom(12)
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    kek = _kek(password, salt, hasher.log2_n, hasher.r, hasher.p)
    return header + salt + nonce + AESGCM(kek).encrypt(nonce, raw, header)


def unwrap(wrapped: bytes, password: str) -> Ed25519PrivateKey:
    """The key inside ``wrapped``; :class:`SignatureError` (saying nothing more) if it won't open.

    Keys wrapped by the first version (PKCS#8 PEM) still open, so they can be re-wrapped.
    """
    refused = SignatureError("the personal signing key cannot be unlocked with this password")
    if wrapped.startswith(b"-----BEGIN"):
        try:
            legacy = serialization.load_pem_private_key(wrapped, password.encode("utf-8"))
        except (ValueError, TypeError):
            raise refused from None
        if not isinstance(legacy, Ed25519PrivateKey):
            raise refused
        return legacy
    try:
        if not wrapped.startswith(_MAGIC):
            raise ValueError
        _magic, log2_n, r, p, rest = wrapped.split(b"$", 4)
        header = wrapped[: len(wrapped) - len(rest)]
        if not (1 <= int(log2_n) <= 22 and 1 <= int(r) <= 32 and 1 <= int(p) <= 16):
            raise ValueError
        salt, nonce, sealed = rest[:16], rest[16:28], rest[28:]
        kek = _kek(password, salt, int(log2_n), int(r), int(p))
        raw = AESGCM(kek).decrypt(nonce, sealed, header)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, InvalidTag):
        raise refused from None


def is_current(wrapped: bytes, hasher: PasswordHasher) -> bool:
    """Whether ``wrapped`` is in the current format at ``hasher``'s cost."""
    return wrapped.startswith(_header(hasher))


def rewrap(wrapped: bytes, old_password: str, new_password: str, hasher: PasswordHasher) -> bytes:
    """The same key, wrapped under ``new_password`` (a password change)."""
    return wrap(unwrap(wrapped, old_password), new_password, hasher)
