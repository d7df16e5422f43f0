"""Drop folders: atomic write-then-rename out, and in-order pick-up in.

Out: each document is written to a hidden temporary file in the target
folder, flushed and ``fsync``-ed, then renamed to
``<position>-<message id>.xml`` and the folder itself ``fsync``-ed, so a
reader never sees a partial file and a crash leaves either nothing or the
whole file. Names sort in outbox order. A file that is already there with
the same bytes counts as delivered (a resend after a crash).

In: ``*.xml`` files in name order (hidden and temporary files are ignored —
writers must use the same write-then-rename); a file taken is moved to
``processed/`` after its outcome is recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from gxpmes.erp.delivery import DeliveryError, Incoming, Message, TransportDown

__all__ = ["FolderSource", "FolderTransport", "write_atomically"]

MAX_INBOUND_BYTES = 64 * 1024 * 1024


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(folder: Path, name: str, data: bytes) -> None:
    """Write ``folder/name`` so that it appears whole or not at all, durably."""
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / name)
    _fsync_dir(folder)


class FolderTransport:
    """Writes each message as one file into a drop folder."""

    def __init__(self, path: str | Path) -> None:
        self.folder = Path(path)
        self.name = f"dir:{path}"

    def publish(self, message: Message) -> None:
        """Write the message's file (atomic, fsync'd); raise if the folder cannot take it."""
        if not self.folder.is_dir():
            raise TransportDown(f"{self.name}: folder is missing or not a folder")
        name = f"{message.position:012d}-{message.message_id}.xml"
        target = self.folder / name
        try:
            if target.exists() and target.read_bytes() == message.body:
                return
            write_atomically(self.folder, name, message.body)
        except OSError as exc:
            raise TransportDown(f"{self.name}: cannot write {name}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Nothing to release."""


class FolderSource:
    """Takes ``*.xml`` files from a drop folder in name order."""

    def __init__(self, path: str | Path) -> None:
        self.folder = Path(path)
        self.name = f"dir:{path}"
        self.done = self.folder / "processed"
        self._out: set[Path] = set()  # handed out, not yet acknowledged

    def fetch(self, timeout: float) -> Incoming | None:
        """The first file by name, or None (after ``timeout`` seconds of nothing)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                names = sorted(
                    p.name
                    for p in self.folder.iterdir()
                    if p.suffix == ".xml" and not p.name.startswith(".") and p.is_file()
                )
            except OSError as exc:
                raise TransportDown(f"{self.name}: {exc.strerror or exc}") from exc
            for name in names:
                path = self.folder / name
                if path in self._out:
                    continue
                try:
                    size = path.stat().st_size
                    if size > MAX_INBOUND_BYTES:
                        data = path.open("rb").read(MAX_INBOUND_BYTES + 1)
                    else:
                        data = path.read_bytes()
                except FileNotFoundError:
                    continue  # taken by another receiver meanwhile
                except OSError as exc:
                    raise TransportDown(f"{self.name}: cannot read {name}: {exc}") from exc
                self._out.add(path)
                return Incoming(data, f"{self.name}/{name}", path)
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def ack(self, incoming: Incoming) -> None:
        """Move the file to ``processed/`` (its outcome is recorded)."""
        path = incoming.token
        assert isinstance(path, Path)
        self._out.discard(path)
        try:
            self.done.mkdir(exist_ok=True)
            os.replace(path, self.done / path.name)
            _fsync_dir(self.folder)
        except FileNotFoundError:
            pass  # moved already
        except OSError as exc:
            raise DeliveryError(
                f"{self.name}: cannot move {path.name} to processed/: {exc}"
            ) from exc

    def reset(self) -> None:
        """Hand out again every file not acknowledged."""
        self._out.clear()

    def close(self) -> None:
        """Nothing to release."""
