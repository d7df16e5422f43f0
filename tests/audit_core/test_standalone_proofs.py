"""Stand-alone proof checks: only the proof, the entry, the checkpoint and a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.entry import Actor, AuditEvent
from audit.errors import CheckpointError, ProofError
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_consistency, verify_inclusion

OP = Actor("op", "Op Erator")


def test_inclusion_and_consistency_against_signed_checkpoints(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    signer = NoteSigner("k", generate_private_key())
    ledger.append_many([AuditEvent(OP, "capture", "v", str(i), new={"i": i}) for i in range(13)])
    old_note = ledger.checkpoint(signer)
    ledger.append_many(
        [AuditEvent(OP, "capture", "v", str(i), new={"i": i}) for i in range(13, 50)]
    )
    new_note = ledger.checkpoint(signer)
    entry = ledger.entry(7).canonical
    proof = ledger.prove_inclusion(7, 50)
    ledger.close()

    cp = verify_inclusion(
        path=proof.path, leaf_index=7, checkpoint=new_note, keys=signer.verifier, entry=entry
    )
    assert cp.tree_size == 50
    verify_inclusion(
        path=proof.path,
        leaf_index=7,
        checkpoint=new_note,
        keys=signer.verifier,
        leaf_hash=proof.leaf_hash,
    )
    with pytest.raises(ProofError):
        verify_inclusion(
            path=proof.path,
            leaf_index=7,
            checkpoint=new_note,
            keys=signer.verifier,
            entry=entry.replace(b'"i":7', b'"i":8'),
        )
    with pytest.raises(ProofError):  # proof for size 50 against the size-13 checkpoint
        verify_inclusion(
            path=proof.path, leaf_index=7, checkpoint=old_note, keys=signer.verifier, entry=entry
        )
    other = NoteSigner("k", generate_private_key())
    with pytest.raises(CheckpointError, match="unknown_key"):
        verify_inclusion(
            path=proof.path, leaf_index=7, checkpoint=new_note, keys=other.verifier, entry=entry
        )
    with pytest.raises(ProofError, match="exactly one"):
        verify_inclusion(path=proof.path, leaf_index=7, checkpoint=new_note, keys=signer.verifier)

    ledger = Ledger.open(tmp_path / "l.db", read_only=True)
    consistency = ledger.prove_consistency(13, 50)
    ledger.close()
    verify_consistency(
        path=consistency.path,
        old_checkpoint=old_note,
        new_checkpoint=new_note,
        keys=signer.verifier,
    )
    with pytest.raises(ProofError):
        verify_consistency(
            path=consistency.path[1:],
            old_checkpoint=old_note,
            new_checkpoint=new_note,
            keys=signer.verifier,
        )
