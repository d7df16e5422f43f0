"""Password hashing with scrypt (memory-hard) and the password policy."""

from __future__ import annotations

import base64
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gxpmes.errors import ConfigurationError, PasswordPolicyError

__all__ = ["OWASP_LOG2_N", "PasswordHasher", "PasswordPolicy"]

OWASP_LOG2_N = 17
"""log2 of scrypt's n in OWASP's Password Storage Cheat Sheet (n=2**17, r=8, p=1)."""


@dataclass(frozen=True)
class PasswordHasher:
    """scrypt with a random salt per password; the hash string carries its parameters.

    Format: ``scrypt$<log2 n>$<r>$<p>$<base64 salt>$<base64 key>``. The default
    cost is OWASP's recommendation for scrypt (n=2**17, r=8, p=1: 128 MiB per
    check, :data:`OWASP_LOG2_N`). A hash made with other parameters still
    verifies and :meth:`needs_rehash` says so; the identity service then
    rehashes it at the next successful check. Only test installations lower
    the cost (``gxpmes.testing.plant`` says which, and why).
    """

    log2_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.log2_n <= 22 or not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            raise ConfigurationError("scrypt parameters out of range (log2 n 1..22, r 1..32)")

    def hash(self, password: str) -> str:
        """A new salted hash of ``password``."""
        salt = os.urandom(16)
        key = self._kdf(salt, self.log2_n, self.r, self.p).derive(password.encode("utf-8"))
        return "$".join(
            [
                "scrypt",
                str(self.log2_n),
                str(self.r),
                str(self.p),
                base64.b64encode(salt).decode(),
                base64.b64encode(key).decode(),
            ]
        )

    def verify(self, password: str, stored: str) -> bool:
        """True when ``password`` matches ``stored`` (constant-time comparison)."""
        try:
            scheme, log2_n, r, p, salt_b64, key_b64 = stored.split("$")
            if scheme != "scrypt" or not 1 <= int(log2_n) <= 22 or not 1 <= int(r) <= 32:
                return False
            salt, key = base64.b64decode(salt_b64), base64.b64decode(key_b64)
            kdf = self._kdf(salt, int(log2_n), int(r), int(p))
        except (ValueError, TypeError):
            return False
        try:
            kdf.verify(password.encode("utf-8"), key)
        except InvalidKey:
            return False
        return True

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` is weaker than our parameters (or unreadable).

        Never a downgrade: a service configured with a lower cost (a test
        plant over a production database) leaves stronger hashes as they are.
        """
        parts = stored.split("$")
        try:
            cost = (int(parts[1]), int(parts[2]), int(parts[3]))
        except (IndexError, ValueError):
            return True
        return len(parts) != 6 or parts[0] != "scrypt" or cost < (self.log2_n, self.r, self.p)

    @staticmethod
    def _kdf(salt: bytes, log2_n: int, r: int, p: int) -> Scrypt:
        return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)


def constant_time_equal(a: str, b: str) -> bool:
    """Compare secrets without leaking where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class PasswordPolicy:
    """Configurable password rules (length, character classes, history, expiry)."""

    min_length: int = 12
    require_classes: int = 3
    history: int = 5
    max_age_days: int | None = 90
    max_failed_attempts: int = 3
    idle_timeout_minutes: int = 15

    def __post_init__(self) -> None:
        if self.min_length < 8:
            raise ConfigurationError("passwords shorter than 8 characters are not acceptable")
        if not 1 <= self.require_classes <= 4:
            raise ConfigurationError("require_classes is between 1 and 4")
        if self.max_failed_attempts < 1 or self.idle_timeout_minutes < 1:
            raise ConfigurationError("lockout threshold and idle timeout must be positive")

    def check(self, password: str, user_id: str) -> None:
        """Raise :class:`PasswordPolicyError` saying which rule ``password`` breaks."""
        if len(password) < self.min_length:
            raise PasswordPolicyError(f"password must have at least {self.min_length} characters")
        classes = sum(
            bool(re.search(pattern, password))
            for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]")
        )
        if classes < self.require_classes:
            raise PasswordPolicyError(
                f"password must mix at least {self.require_classes} of: lower case, upper case, "
                "digits, other characters"
            )
        if user_id.lower() in password.lower():
            raise PasswordPolicyError("password must not contain the user id")
