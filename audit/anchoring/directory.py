"""A write-once directory of signed checkpoints (a folder on another disk, host or WORM share).

Each checkpoint becomes one file, ``<tree size, 20 digits>-<first 16 hex of
SHA-256(note)>.checkpoint``, holding the signed note exactly. A file is
written to a temporary name, fsync'd, then hard-linked to its final name —
``link`` fails if the name exists, so a file is never overwritten or seen
half-written — and the directory is fsync'd so the name survives power loss.
Publishing the same note again finds the identical file and succeeds.

:func:`read_checkpoint_dir` reads such a directory back for verification
(``gxpmes audit verify --checkpoints DIR``).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from audit.anchoring.sink import PublishedCheckpoint, Receipt
from audit.errors import AnchorError, SinkRefused, SinkUnavailable

__all__ = [
    "SUFFIX",
    "DirectorySink",
    "checkpoint_file_name",
    "read_checkpoint_dir",
    "write_once",
]

SUFFIX = ".checkpoint"
_NAME_RE = re.compile(r"^[0-9]{20}-[0-9a-f]{16}\.checkpoint$")


def checkpoint_file_name(checkpoint: PublishedCheckpoint) -> str:
    """The file name a checkpoint gets: sortable by size, unique by content."""
    digest = hashlib.sha256(checkpoint.note).hexdigest()[:16]
    return f"{checkpoint.tree_size:020d}-{digest}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _already_there(final: Path, data: bytes) -> bool:
    try:
        existing = final.read_bytes()
    except FileNotFoundError:
        return False
    if existing != data:
        # Same name, other bytes: someone wrote there; never overwrite evidence.
        raise SinkRefused(f"{final} exists with other content; refusing to overwrite it")
    return True


def write_once(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` as ``directory/name`` once: fsync'd, linked into place, never overwritten.

    Writing the same bytes again is a no-op; other bytes under an existing
    name raise :class:`SinkRefused`. ``OSError`` is left to the caller.
    """
    final = directory / name
    if _already_there(final, data):
        return final
    temporary = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, final)  # fails if the name exists: never overwrites
        except FileExistsError:
            _already_there(final, data)  # a concurrent writer of the same bytes
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(directory)
    return final


class DirectorySink:
    """Writes each checkpoint once into ``directory`` (see the module docstring)."""

    kind = "directory"

    def __init__(
        self,
        directory: str | Path,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._name = name or f"directory:{self.directory}"
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        """The sink's name (default ``directory:<path>``)."""
        return self._name

    def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
        """Write the checkpoint's file (idempotent); the receipt holds its file name."""
        file_name = checkpoint_file_name(checkpoint)
        try:
            if not self.directory.is_dir():
                raise SinkUnavailable(f"checkpoint directory {self.directory} does not exist")
            write_once(self.directory, file_name, checkpoint.note)
        except OSError as exc:
            raise SinkUnavailable(
                f"cannot write checkpoint into {self.directory}: {exc.strerror or exc}"
            ) from exc
        return Receipt(self.name, self.kind, file_name.encode("ascii"), self._clock())


def read_checkpoint_dir(directory: str | Path) -> list[tuple[str, str]]:
    """``(file name, note text)`` of every checkpoint file in ``directory``, by name.

    Files not named like checkpoints are ignored; an unreadable or non-UTF-8
    checkpoint file raises :class:`AnchorError` naming it (verification must
    not silently skip evidence).
    """
    path = Path(directory)
    try:
        names = sorted(p.name for p in path.iterdir() if _NAME_RE.match(p.name))
    except OSError as exc:
        raise AnchorError(f"cannot read checkpoint directory {path}: {exc.strerror}") from exc
    found = []
    for name in names:
        try:
            found.append((name, (path / name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"cannot read checkpoint file {path / name}: {exc}") from exc
    return found
