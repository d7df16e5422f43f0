"""Captured values are written in value blocks, and each stays individually provable.

One capture call writes one ``value.block`` entry per batch; its leaves are
the values' records (everything a value needs to stand alone), value
``(seq, leaf)`` is read from leaf ``leaf``; ``ebr_value_block`` indexes the
blocks (a row per parameter per block) and ``ebr_value_key`` holds the source
keys; a manual entry stays an entry of its own (an ``ebr_value`` row). A
value's proof is checked by the pure checker against a signed checkpoint
alone; ``gxpmes verify`` rebuilds the index and keys from the blocks and
names every altered, deleted or inserted row.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from ebr_support import HEAT
from sqlalchemy import text

from audit.blocks import LeafProof, check_leaf_proof
from audit.checkpoint import open_checkpoint
from audit.errors import ProofError
from audit.note import NoteSigner
from gxpmes.ebr.engine import CapturedValue
from gxpmes.errors import BatchError
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import HEAD_KEY_NAME, OT_SOURCE
from isa95.common import Quantity

TEMPERATURE = f"{HEAT}/temperature"


def _values(plant, batch_id: str, numbers: list[str], quality: str = "Good"):  # type: ignore[no-untyped-def]
    return [
        CapturedValue(
            batch_id,
            TEMPERATURE,
            "TT-101",
            Decimal(n),
            "Cel",
            plant.clock(),
            quality=quality,
            source_key=f"{batch_id}-{i}-{n}",
        )
        for i, n in enumerate(numbers)
    ]


def _unguard(plant) -> None:  # type: ignore[no-untyped-def]
    """Drop the value tables' append-only guards, as an attacker with the owner's rights
    would."""
    with plant.db.engine.begin() as conn:
        for table in ("ebr_value", "ebr_value_block", "ebr_value_key"):
            if plant.db.engine.dialect.name == "sqlite":
                conn.execute(text(f"DROP TRIGGER {table}_no_update"))
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
            else:
                conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))


def _second_line(plant, batch_id: str) -> None:  # type: ignore[no-untyped-def]
    """Start ``batch_id`` on a second granulator and blender (the first are in use)."""
    sup, op = plant.sessions["sup1"], plant.sessions["op1"]
    for equipment_id, cls in (("GRAN-02", "Granulator"), ("BLEND-02", "Blender")):
        plant.engine.register_equipment(
            sup,
            equipment_id,
            level="Unit",
            equipment_class=cls,
            calibration_due=plant.clock() + timedelta(days=180),
        )
        plant.engine.record_cleaning(op, equipment_id, "cleaned per SOP-CL-01, visually clean")
    plant.engine.create_batch(
        sup,
        batch_id,
        recipe_id="MR-GRAN",
        version="1",
        lot_id=f"{batch_id}-LOT",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-02", "BLEND-02"],
    )
    plant.engine.start_batch(op, batch_id)
    for path in ("GRAN/UP-GRAN", "GRAN/UP-GRAN/OP-WET", HEAT):
        plant.engine.command(op, batch_id, path, "Start")


def test_one_block_per_batch_per_call_and_leaves_that_stand_alone(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    _second_line(plant, "B-2")
    size = plant.db.ledger.size()
    mixed = [*_values(plant, "B-1", ["70.0", "71.5"]), *_values(plant, "B-2", ["69.0"])]
    mixed.append(_values(plant, "B-1", ["72.25"])[0])
    seqs = plant.engine.capture(mixed, source=OT_SOURCE)
    entries = [plant.db.ledger.entry(s) for s in range(size, plant.db.ledger.size())]
    blocks = [e for e in entries if e.event.action == "value.block"]
    assert [(e.event.object_type, e.event.object_id) for e in blocks] == [
        ("value_block", "B-1"),
        ("value_block", "B-2"),
    ]
    b1, b2 = (e.seq for e in blocks)
    assert seqs == [b1, b1, b2, b1]
    assert blocks[0].event.actor.user_id == OT_SOURCE.account_id
    assert blocks[0].event.new == {
        "batch_id": "B-1",
        "client_id": OT_SOURCE.client_id,
        "values": 3,
    }
    leaves = [json.loads(leaf) for leaf in plant.db.ledger.block_leaves(b1)]
    assert [leaf["value"] for leaf in leaves] == ["70.0", "71.5", "72.25"]
    assert leaves[0] == {
        "batch_id": "B-1",
        "parameter": TEMPERATURE,
        "tag": "TT-101",
        "value": "70.0",
        "unit": "Cel",
        "source_ts": leaves[0]["source_ts"],
        "server_ts": leaves[0]["server_ts"],
        "quality": "Good",
        "in_limits": True,
        "source_key": "B-1-0-70.0",
        "client_id": OT_SOURCE.client_id,
        "account": OT_SOURCE.account_id,
    }
    rows = plant.engine.values("B-1")
    assert [(r["seq"], r["leaf"], r["value"]) for r in rows] == [
        (b1, 0, "70.0"),
        (b1, 1, "71.5"),
        (b1, 2, "72.25"),
    ]
    assert not any(r["manual"] for r in rows)
    # No per-value entries: the log grew by the two blocks (and no exception was raised).
    assert len(entries) == 2
    assert plant.engine.verify_values("B-1") == [] and plant.engine.verify_values("B-2") == []


def test_exceptions_and_manual_entries_stay_entries_of_their_own(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    size = plant.db.ledger.size()
    plant.engine.capture(_values(plant, "B-1", ["70.0"], quality="Bad"), source=OT_SOURCE)
    actions = [plant.db.ledger.entry(s).event.action for s in range(size, plant.db.ledger.size())]
    assert actions == ["value.block", "exception.raise"]
    value = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70.1"), "Cel", plant.clock())
    seq = plant.engine.manual_entry(plant.sessions["op1"], value, reason="handheld reading")
    entry = plant.db.ledger.entry(seq)
    assert entry.event.action == "value.manual" and entry.event.actor.user_id == "op1"
    assert entry.event.new["value"] == "70.1" and entry.block is None
    (row,) = [r for r in plant.engine.values("B-1") if r["manual"]]
    assert (row["seq"], row["leaf"]) == (seq, 0)
    with pytest.raises(BatchError, match=r"audit entry \d+ of its own"):
        plant.engine.prove_value(seq)


def test_a_value_is_proved_with_only_the_proof_and_a_signed_checkpoint(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    numbers = [f"{70 + i / 10:.1f}" for i in range(11)]  # an odd block: a lone right node
    (seq, *_rest) = plant.engine.capture(_values(plant, "B-1", numbers), source=OT_SOURCE)
    plant.engine.capture(_values(plant, "B-1", ["80.0"]), source=OT_SOURCE)  # the log grows
    signer = NoteSigner(HEAD_KEY_NAME, plant.system_key)
    opened = open_checkpoint(plant.db.ledger.checkpoint(signer))
    message = opened.text.encode("utf-8")
    assert any(signer.verifier.verify(message, s.signature) for s in opened.signatures)
    head = opened.checkpoint
    for leaf in range(len(numbers)):
        proof = plant.engine.prove_value(seq, leaf, tree_size=head.tree_size)
        # Only the proof (as exported: JSON) and the checkpoint's root and size.
        proof = LeafProof.from_json(json.loads(json.dumps(proof.as_json())))
        block = check_leaf_proof(proof, head.root, head.tree_size)
        assert block.size == len(numbers)
        record = json.loads(proof.leaf)
        assert (record["batch_id"], record["value"]) == ("B-1", numbers[leaf])
    forged = json.loads(proof.leaf)
    forged["value"] = "99.9"
    altered = LeafProof(
        json.dumps(forged, separators=(",", ":"), sort_keys=True).encode(),
        proof.index,
        proof.block_size,
        proof.block_path,
        proof.entry,
        proof.seq,
        proof.tree_size,
        proof.log_path,
    )
    with pytest.raises(ProofError):
        check_leaf_proof(altered, head.root, head.tree_size)
    moved = LeafProof(
        proof.leaf,
        proof.index - 1,
        proof.block_size,
        proof.block_path,
        proof.entry,
        proof.seq,
        proof.tree_size,
        proof.log_path,
    )
    with pytest.raises(ProofError):
        check_leaf_proof(moved, head.root, head.tree_size)
    with pytest.raises(BatchError, match="no captured value"):
        plant.engine.prove_value(seq, len(numbers))


_EDITS = {
    # the block index: which block holds how many values of which parameter
    "index altered": "UPDATE ebr_value_block SET count = 2 WHERE seq = :s",
    "index deleted": "DELETE FROM ebr_value_block WHERE seq = :s",
    "index inserted": (
        "INSERT INTO ebr_value_block (seq, parameter, batch_id, count, first_leaf, last_leaf, "
        "last_server_ts) SELECT seq, 'GRAN/UP-GRAN/OP-WET/HEAT/pressure', batch_id, 1, 0, 0, "
        "last_server_ts FROM ebr_value_block WHERE seq = :s"
    ),
    # source keys: a deleted one would let a redelivered value be recorded twice
    "key altered": "UPDATE ebr_value_key SET leaf = 0 WHERE source_key = 'B-1-1-71.0'",
    "key deleted": "DELETE FROM ebr_value_key WHERE source_key = 'B-1-2-72.0'",
    "key inserted": (
        "INSERT INTO ebr_value_key (source_key, seq, leaf, batch_id) "
        "VALUES ('B-1-9-99.0', :s, 1, 'B-1')"
    ),
    # a value row passed off as a value of the block
    "value inserted": (
        "INSERT INTO ebr_value (seq, leaf, batch_id, parameter, tag, value, unit, "
        "source_ts, server_ts, quality, manual, in_limits, source_key) "
        "SELECT seq, 3, batch_id, parameter, 'TT-101', '75.0', 'Cel', last_server_ts, "
        "last_server_ts, 'Good', false, true, NULL FROM ebr_value_block WHERE seq = :s"
    ),
}


@pytest.mark.parametrize("edit", sorted(_EDITS))
def test_verify_names_every_sql_edit_of_the_value_tables(plant, edit: str) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    (seq, *_rest) = plant.engine.capture(
        _values(plant, "B-1", ["70.0", "71.0", "72.0"]), source=OT_SOURCE
    )
    report = verify_record(plant.db.engine, trusted_keys=plant.trusted_keys())
    assert report.ok, report.lines()
    assert plant.engine.verify_values("B-1") == []
    _unguard(plant)
    with plant.db.engine.begin() as conn:
        conn.execute(text(_EDITS[edit]), {"s": seq})
    index_key = f"{seq}/{TEMPERATURE}"
    expected = {
        "index altered": ("ebr_value_block", index_key, "count", "column_differs"),
        "index deleted": ("ebr_value_block", index_key, None, "missing_row"),
        "index inserted": (
            "ebr_value_block",
            f"{seq}/GRAN/UP-GRAN/OP-WET/HEAT/pressure",
            None,
            "extra_row",
        ),
        "key altered": ("ebr_value_key", "B-1-1-71.0", "leaf", "column_differs"),
        "key deleted": ("ebr_value_key", "B-1-2-72.0", None, "missing_row"),
        "key inserted": ("ebr_value_key", "B-1-9-99.0", None, "extra_row"),
        "value inserted": ("ebr_value", f"{seq}/3", None, "extra_row"),
    }[edit]
    for batch in (None, "B-1"):
        report = verify_record(plant.db.engine, batch=batch, trusted_keys=plant.trusted_keys())
        assert report.ledger.ok and not report.ok
        found = {(p.table, p.key, p.column, p.kind) for p in report.problems}
        assert found == {expected}, report.lines()
    # The engine's own check of one batch names it too.
    assert plant.engine.verify_values("B-1") != []
