"""Helpers shared by the command modules: exit codes, option help, files, databases.

Files and databases are opened here, so the foreign exceptions they raise
(``OSError``, ``UnicodeDecodeError``, driver errors) become the library's
own errors in one place and ``main`` only maps that hierarchy to exit codes.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.keys import TrustedKey, load_public_key
from audit.note import NoteVerifier
from gxpmes.dbopen import URL_FORMAT
from gxpmes.errors import FileAccessError, GxpError

if TYPE_CHECKING:
    from audit.ledger import Ledger
    from gxpmes.database import Database

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DEFAULT_KEY_NAME = "gxpmes-audit"
DB_HELP = f"the database: {URL_FORMAT}"
SCHEMAS_HELP = (
    "folder holding MESA's V0701/ and V0600/ B2MML schema folders "
    "(default: $GXPMES_B2MML_SCHEMAS, then the folder `gxpmes b2mml schemas install` fills)"
)


class CliError(GxpError):
    """A usage or input problem of the command line (exit code 2)."""


@contextmanager
def optional_dependency(extras: str) -> Iterator[None]:
    """Turn a missing optional package (e.g. matplotlib) into an install hint for ``extras``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("audit", "isa95", "gxpmes"):
            raise  # a module of ours missing is a bug, not an extra to install
        raise CliError(
            f"this command needs {exc.name}, which is not installed: pip install 'gxpmes[{extras}]'"
        ) from exc


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


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    return exc.strerror or str(exc)


def read_text(path: str) -> str:
    """The UTF-8 text of ``path``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileAccessError(f"cannot read {path}: {_reason(exc)}") from exc


def read_bytes(path: str) -> bytes:
    """The bytes of ``path``."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileAccessError(f"cannot read {path}: {_reason(exc)}") from exc


def write_file(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to the file ``path``, replacing it."""
    try:
        if isinstance(data, str):
            Path(path).write_text(data, encoding="utf-8")
        else:
            Path(path).write_bytes(data)
    except OSError as exc:
        raise FileAccessError(f"cannot write {path}: {_reason(exc)}") from exc


def output_folder(path: str | Path, option: str = "--out", *, create: bool = True) -> Path:
    """The folder ``path``, created if missing unless ``create`` is false; a file is refused."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise FileAccessError(f"{option} {path} is a file; give a folder")
    if not create:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileAccessError(f"cannot create folder {path}: {_reason(exc)}") from exc
    return folder


def output_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` checked up front as a file to write: not a folder, in a folder that exists."""
    file = Path(path)
    if file.is_dir():
        raise FileAccessError(f"{option} {path} is a folder; give a file name")
    if not file.parent.is_dir():
        raise FileAccessError(f"{option} {path}: folder {file.parent} does not exist")
    return file


def open_ledger(url: str, *, read_only: bool, head_signer: Any = None) -> Ledger:
    """The existing ledger at ``url``; never creates one (``head_signer`` for a writer)."""
    from gxpmes.dbopen import open_ledger as open_existing

    if head_signer is None:
        return open_existing(url, create=False, read_only=read_only)
    return open_existing(url, create=False, read_only=read_only, head_signer=head_signer)


def open_database(url: str, *, read_only: bool, head_signer: Any = None) -> Database:
    """The existing gxpmes database at ``url``, at the current schema; never creates one.

    A writer passes the installation's tree-head ``head_signer`` (a NoteSigner):
    once a log has signed heads, appending needs it.
    """
    from gxpmes.database import Database

    return Database(url, create=False, read_only=read_only, head_signer=head_signer)


def add_head_key_options(parser: Any) -> None:
    """``--head-key PEM`` / ``--head-key-name``: the installation's tree-head key for a writer."""
    parser.add_argument(
        "--head-key",
        metavar="PEM",
        help="encrypted private.pem of the installation's tree-head key, so this command's "
        "audit entry is signed (passphrase from GXPMES_KEY_PASSPHRASE or the terminal)",
    )
    parser.add_argument(
        "--head-key-name",
        default=DEFAULT_KEY_NAME,
        metavar="NAME",
        help=f"name the log's tree heads are signed under (default: {DEFAULT_KEY_NAME})",
    )


def head_signer_of(args: Any) -> Any:
    """The NoteSigner of ``--head-key`` / ``--head-key-name``, or None."""
    if not getattr(args, "head_key", None):
        return None
    return head_signer_from(
        {"ledger": {"head_key": args.head_key, "head_key_name": args.head_key_name}}, Path(".")
    )


def head_signer_from(config: dict[str, Any], base: Path) -> Any:
    """The tree-head signer named by a ``[ledger]`` table (``head_key``, ``head_key_name``).

    The key file is an encrypted PKCS#8 ``private.pem`` (``gxpmes keys new``); its
    passphrase comes from ``GXPMES_KEY_PASSPHRASE`` or the terminal.
    """
    from audit.keys import load_private_key
    from audit.note import NoteSigner

    ledger = config.get("ledger") or {}
    if not ledger.get("head_key"):
        return None
    path = base / str(ledger["head_key"])
    if not path.is_file():
        raise FileAccessError(f"[ledger] head_key {path} is not a file")
    return NoteSigner(
        str(ledger.get("head_key_name", DEFAULT_KEY_NAME)),
        load_private_key(path, passphrase(confirm=False)),
    )


def public_key(path: str) -> bytes:
    """The raw Ed25519 key of a public.pem."""
    return load_public_key(Path(path))


def checkpoint_keys(public_key_path: str | None, checkpoint: str | None) -> list[TrustedKey]:
    """The checkpoint key of ``public_key_path`` (a public.pem), if one is given.

    The key name is part of the key hash, so the key is trusted under every
    name the checkpoint's signature lines use.
    """
    if not public_key_path:
        return []
    raw = public_key(public_key_path)
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
