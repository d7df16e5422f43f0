"""Automatic checkpoints as part of the library's normal operation (``gxpmes.database``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from waiting import wait_until

from audit.anchoring.directory import DirectorySink, read_checkpoint_dir
from audit.checkpoint import open_checkpoint
from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.note import NoteSigner
from gxpmes.database import Database
from gxpmes.errors import ConfigurationError

OP = Actor("op01", "Olga Operator")


def test_transactions_of_the_database_trigger_checkpoints(db_url: str, tmp_path: Path) -> None:
    worm = tmp_path / "worm"
    worm.mkdir()
    db = Database(db_url, head_signer=NoteSigner("plant-heads", generate_private_key()))
    try:
        start = db.ledger.size()
        publisher = db.start_checkpoints([DirectorySink(worm)], every_entries=3, every_seconds=3600)
        with pytest.raises(ConfigurationError, match="already running"):
            db.start_checkpoints()
        for i in range(10):
            with db.transaction() as conn:  # the application's write path: seal, then commit
                db.audit(conn, AuditEvent(OP, "note", "batch", f"B{i}"))
            size = start + i + 1
            wait_until(
                lambda size=size: (
                    size - (publisher.newest.tree_size if publisher.newest else 0) <= 2
                ),
                what="a checkpoint within 3 entries",
            )
        lag = publisher.status()
        assert [s.sink for s in lag] == [f"directory:{worm}"]
    finally:
        db.close()  # signs the last checkpoint and stops
    sizes = [open_checkpoint(n).checkpoint.tree_size for _f, n in read_checkpoint_dir(worm)]
    assert sizes[-1] == start + 10 and sizes == sorted(sizes)
