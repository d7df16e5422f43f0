"""Helpers shared by the command modules: exit codes, passphrases, files, ledgers."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

from audit.keys import TrustedKey, load_public_key
from audit.ledger import Ledger
from audit.note import NoteVerifier

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DEFAULT_KEY_NAME = "gxpmes-audit"


class CliError(Exception):
    """A usage or I/O problem reported with exit code 2."""


def passphrase(confirm: bool) -> bytes:
    """The key passphrase from ``GXPMES_KEY_PASSPHRASE`` or the terminal."""
    env = os.environ.get("GXPMES_KEY_PASSPHRASE")
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise CliError("no passphrase: set GXPMES_KEY_PASSPHRASE or run interactively")
    first = getpass.getpass("Key passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise CliError("passphrases differ")
    return first.encode()


def read_text(path: str) -> str:
    """The UTF-8 text of ``path``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc


def read_bytes(path: str) -> bytes:
    """The bytes of ``path``."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def open_ledger(url: str, *, read_only: bool) -> Ledger:
    """The ledger at ``url`` (an SQLAlchemy URL or an SQLite file path)."""
    if read_only and "://" not in url and not Path(url).exists():
        raise CliError(f"no such database file: {url}")
    return Ledger.open(url, read_only=read_only)


def checkpoint_keys(public_key: str | None, checkpoint: str | None) -> list[TrustedKey]:
    """The checkpoint key of ``public_key`` (a public.pem), if one is given.

    The key name is part of the key hash, so the key is trusted under every
    name the checkpoint's signature lines use.
    """
    if not public_key:
        return []
    raw = load_public_key(Path(public_key))
    names = signature_names(checkpoint or "") or [DEFAULT_KEY_NAME]
    return [TrustedKey(NoteVerifier(name, raw)) for name in names]


def signature_names(note: str) -> list[str]:
    """The key names on the signature lines of a signed note, in order."""
    names = []
    for line in note.splitlines():
        if line.startswith("— "):
            parts = line[2:].split(" ")
            if parts and parts[0] not in names:
                names.append(parts[0])
    return names


def verify_only_engine(db: Any, trusted_system_keys: dict[str, bytes] | None = None) -> Any:
    """A batch engine that reads, captures and verifies, but holds no key to sign with."""
    from gxpmes.ebr.engine import BatchEngine
    from gxpmes.identity import IdentityService, SignatureService

    identity = IdentityService(db)
    return BatchEngine(
        db, identity, SignatureService(identity, None, trusted_system_keys=trusted_system_keys)
    )
