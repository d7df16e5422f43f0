"""Shared helpers of the witness tests: sites with logs, and a witness on a random port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.witness import (
    Cosigner,
    KnownLog,
    LogKey,
    Witness,
    WitnessServer,
    WitnessStore,
    serve_in_thread,
)


def append(ledger: Ledger, count: int, tag: str = "v") -> None:
    """Append ``count`` capture entries to ``ledger``."""
    ledger.append_many(
        [
            AuditEvent(Actor("op", "Op Erator"), "capture", tag, str(i), new={"i": i, "tag": tag})
            for i in range(count)
        ]
    )


@dataclass
class Site:
    """A site: its audit log and the key that signs its checkpoints."""

    ledger: Ledger
    signer: NoteSigner
    path: Path

    @classmethod
    def create(cls, path: Path, name: str, entries: int = 0, *, heads: bool = False) -> Site:
        """A new log; with ``heads``, its tree heads are signed with the checkpoint key."""
        signer = NoteSigner(name, generate_private_key())
        ledger = Ledger.open(path, head_signer=signer if heads else None)
        site = cls(ledger, signer, path)
        append(ledger, entries)
        return site

    def checkpoint(self) -> str:
        return self.ledger.checkpoint(self.signer)

    def prove(self, old_size: int) -> list[bytes]:
        return list(self.ledger.prove_consistency(old_size).path)

    def prover_to(self, size: int):  # type: ignore[no-untyped-def]
        return lambda old: list(self.ledger.prove_consistency(old, size).path)

    def known_log(self) -> KnownLog:
        return KnownLog(self.ledger.origin, (LogKey.from_verifier(self.signer.verifier),))

    def fork(self, path: Path) -> Site:
        """A copy of this log as it is now, signed with the same key (a split view)."""
        signer = self.ledger.head_signer
        self.ledger.close()
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                shutil.copy(source, str(path) + suffix)
        self.ledger = Ledger.open(self.path, head_signer=signer)
        return Site(Ledger.open(path, head_signer=signer), self.signer, path)


@contextmanager
def running_witness(
    db: str | Path, name: str, logs: list[KnownLog], cosigner: Cosigner | None = None
) -> Iterator[tuple[WitnessServer, Witness]]:
    """A witness HTTP server on 127.0.0.1 and a random port, stopped afterwards."""
    store = WitnessStore.open(db)
    witness = Witness(cosigner or Cosigner(name, generate_private_key()), store, logs)
    server = WitnessServer(("127.0.0.1", 0), witness)
    thread = serve_in_thread(server)
    try:
        yield server, witness
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()
