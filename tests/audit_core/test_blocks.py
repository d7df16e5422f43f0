"""Value blocks: one audit entry commits to many values, each provable on its own.

The block tree is checked against the plain recursive RFC 9162 oracle for
every size and index; leaf proofs compose with the log's inclusion proof and
fail when any part of them is changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rfc9162_reference import mth, path
from sqlalchemy import text

from audit.blocks import (
    CanonicalLeaves,
    LeafProof,
    block_path,
    block_root,
    check_in_block,
    check_leaf_proof,
    check_leaves,
    encode_leaves,
    leaf_hashes,
    pack_leaves,
    prove_in_block,
    unpack_leaves,
)
from audit.canonical import canonicalize
from audit.entry import Actor, AuditEvent, BlockRef, block_of, encode_entry, parse_entry
from audit.errors import CanonicalizationError, EntryError, ProofError, StorageError
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.merkle import check_inclusion, record_hash
from audit.note import NoteSigner
from audit.verify import verify_inclusion, verify_ledger

OP = Actor("svc-hist", "Historian collector")
T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def values(n: int, start: int = 0) -> CanonicalLeaves:
    return encode_leaves(
        {
            "tag": f"TT-{(start + i) % 7}",
            "value": Decimal(7000 + start + i) / 100,
            "source_ts": T0 + timedelta(milliseconds=start + i),
            "quality": "Good",
        }
        for i in range(n)
    )


def block_event(batch: str = "B1", n: int = 0) -> AuditEvent:
    return AuditEvent(OP, "capture.block", "batch", batch, new={"values": n})


def raw_leaves(n: int) -> list[bytes]:
    return [canonicalize({"i": i, "s": "x" * (i % 5)}) for i in range(n)]


# ----------------------------------------------------------- block tree


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=70))
def test_block_root_and_every_path_match_the_rfc_9162_oracle(leaves: list[bytes]) -> None:
    root = block_root(leaves)
    assert root == mth(leaves)
    hashes = leaf_hashes(leaves)
    for index, leaf in enumerate(leaves):
        proof = prove_in_block(leaves, index)
        assert proof == path(index, leaves)
        assert block_path(hashes, index) == proof
        check_in_block(proof, len(leaves), root, index, leaf)


def test_every_size_and_index_up_to_130() -> None:
    for size in range(1, 131):
        leaves = raw_leaves(size)
        root = block_root(leaves)
        assert root == mth(leaves)
        for index in range(size):
            check_in_block(prove_in_block(leaves, index), size, root, index, leaves[index])


@given(st.data())
def test_a_tampered_leaf_path_root_index_or_size_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 40))
    leaves = raw_leaves(size)
    index = data.draw(st.integers(0, size - 1))
    root = block_root(leaves)
    proof = prove_in_block(leaves, index)
    with pytest.raises(ProofError):
        check_in_block(proof, size, root, index, leaves[index] + b" ")
    with pytest.raises(ProofError):
        check_in_block(proof, size, bytes(32), index, leaves[index])
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index or size == 1))
    if other != index:
        with pytest.raises(ProofError):
            check_in_block(proof, size, root, other, leaves[index])
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[at] = bytes([bad[at][0] ^ (1 << (bit % 8))]) + bad[at][1:]
        with pytest.raises(ProofError):
            check_in_block(bad, size, root, index, leaves[index])
        with pytest.raises(ProofError):
            check_in_block(proof[:-1], size, root, index, leaves[index])
    with pytest.raises(ProofError):
        check_in_block([*proof, bytes(32)], size, root, index, leaves[index])
    # (A path alone may also fit another size with the same root, e.g. leaf 0 of 3
    # and of 4 leaves: the size is bound by the block entry, see check_leaf_proof.)


def test_empty_block_and_out_of_range_index_are_refused() -> None:
    with pytest.raises(ProofError):
        block_root([])
    with pytest.raises(ProofError):
        prove_in_block([b"{}"], 1)
    with pytest.raises(ProofError):
        prove_in_block([b"{}"], -1)


# -------------------------------------------------------------- leaves


@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**53) + 1, 2**53 - 1),
                st.text(max_size=12),
                st.decimals(allow_nan=False, allow_infinity=False, places=3),
                st.floats(allow_nan=False, allow_infinity=False),
                st.lists(st.integers(-5, 5), max_size=3),
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_encoded_leaves_are_canonical_and_pass_the_check(records: list[dict[str, object]]) -> None:
    try:
        leaves = encode_leaves(records)
    except CanonicalizationError:
        return  # e.g. a lone surrogate: refused, as the entry encoder refuses it
    for record, leaf in zip(records, leaves, strict=True):
        assert leaf == canonicalize(record)
        assert b"\n" not in leaf
    check_leaves(list(leaves))  # as plain bytes: checked, and accepted
    assert unpack_leaves(pack_leaves(leaves)) == list(leaves)


@pytest.mark.parametrize(
    "leaf",
    [
        b'{"b":1,"a":2}',  # members out of order
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',  # not the shortest number form
        b'{"a":1e21}',  # RFC 8785 writes 1e+21
        b'{"a":"\\u0041"}',  # an escape RFC 8785 does not write
        b'{"a":1,"a":1}',  # duplicate member
        b"[1,2]",  # not an object
        b'"text"',
        b"{",
        b"",
        b'{"a":"x\ny"}',  # a raw newline (no JSON at all)
        b'{"\xc3\xa9":1,"z":2}',  # UTF-16 order: e-acute sorts after z
    ],
)
def test_a_leaf_that_is_not_a_canonical_object_is_refused(leaf: bytes) -> None:
    with pytest.raises(EntryError, match="leaf 1 is not the RFC 8785"):
        check_leaves([b'{"ok":1}', leaf])


def test_leaf_checks_accept_what_rfc_8785_writes() -> None:
    check_leaves([b'{"a":1e+21}', b'{"z":2,"\xc3\xa9":1}', b'{"a":{"b":[1,"x",null]}}'])
    check_leaves([b'{"big":9007199254740992}'])  # beyond orjson's strict range, still exact
    with pytest.raises(EntryError, match="not bytes"):
        check_leaves(["{}"])  # type: ignore[list-item]
    with pytest.raises(EntryError, match="1 to"):
        check_leaves([])
    with pytest.raises(EntryError, match="not a JSON object"):
        encode_leaves([[1, 2]])  # type: ignore[list-item]
    with pytest.raises(CanonicalizationError, match="/leaves/1/t"):
        encode_leaves([{"t": T0}, {"t": datetime(2026, 1, 1)}])  # naive time


# -------------------------------------------------------------- entries


def test_ordinary_entries_are_byte_identical_and_block_entries_round_trip() -> None:
    event = block_event(n=3)
    plain = encode_entry(4, T0, bytes(32), event)
    assert plain == canonicalize(parse_entry(plain).as_dict())
    assert b'"block"' not in plain and block_of(plain) is None
    ref = BlockRef(block_root(raw_leaves(3)), 3)
    canonical = encode_entry(4, T0, bytes(32), event, ref)
    parsed = parse_entry(canonical)
    assert parsed.block == ref and block_of(canonical) == ref
    assert canonicalize(parsed.as_dict()) == canonical
    assert json.loads(canonical)["block"] == {"root": ref.root.hex(), "size": 3}
    # A payload member named "block" is not the entry's block.
    nested = AuditEvent(OP, "c", "x", "1", new={"block": "B", "root": "r"})
    assert block_of(encode_entry(0, T0, bytes(32), nested)) is None
    with pytest.raises(EntryError):
        BlockRef(b"short", 1)
    with pytest.raises(EntryError):
        BlockRef(bytes(32), 0)
    with pytest.raises(EntryError, match="malformed block"):
        parse_entry(canonical.replace(b'"size":3', b'"size":"3"'))


# --------------------------------------------------------------- ledger


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner("plant1-heads", generate_private_key())


@pytest.fixture
def ledger(db_url: str, signer: NoteSigner) -> Iterator[Ledger]:
    led = Ledger.open(db_url, head_signer=signer)
    yield led
    led.close()


def test_append_block_commits_to_its_values_and_each_value_is_provable(
    ledger: Ledger, signer: NoteSigner
) -> None:
    ledger.append(AuditEvent(OP, "create", "batch", "B1"))
    leaves = values(1000)
    receipt = ledger.append_block(block_event(n=1000), leaves)
    assert (receipt.seq, receipt.count, receipt.tree_size) == (1, 1000, 2)
    assert receipt.root == block_root(leaves)
    entry = ledger.entry(1)
    assert entry.block == BlockRef(receipt.root, 1000)
    assert entry.leaf_hash == receipt.entry_hash
    assert entry.event.new == {"values": 1000}
    assert ledger.block_leaves(1) == list(leaves)
    more = ledger.append_blocks([(block_event(n=3), values(3, 1000)), (block_event(), values(1))])
    assert [r.seq for r in more] == [2, 3] and ledger.size() == 4
    root, size = ledger.root(), ledger.size()
    for seq, index in [(1, 0), (1, 500), (1, 999), (2, 2), (3, 0)]:
        proof = ledger.prove_leaf(seq, index)
        assert check_leaf_proof(proof, root, size) == ledger.entry(seq).block
        again = LeafProof.from_json(json.loads(json.dumps(proof.as_json())))
        assert again == proof
    note = ledger.checkpoint(signer)
    proof = ledger.prove_leaf(1, 7)
    # The entry half is an ordinary RFC 9162 inclusion proof against a signed checkpoint.
    verify_inclusion(
        path=proof.log_path, leaf_index=1, checkpoint=note, keys=signer.verifier, entry=proof.entry
    )
    report = verify_ledger(ledger, head_keys=signer.verifier)
    assert report.ok, report.summary()
    assert report.signed_size == 4


def test_prove_leaf_at_an_older_tree_size(ledger: Ledger) -> None:
    ledger.append_block(block_event(), values(5))
    old_root = ledger.root()
    ledger.append_block(block_event(), values(5, 5))
    proof = ledger.prove_leaf(0, 4, tree_size=1)
    check_leaf_proof(proof, old_root, 1)
    with pytest.raises(ProofError):
        check_leaf_proof(proof, ledger.root(), 2)


def test_leaf_proof_fails_when_any_part_is_changed(ledger: Ledger) -> None:
    ledger.append_many([AuditEvent(OP, "c", "x", str(i)) for i in range(3)])
    ledger.append_block(block_event(n=9), values(9))
    ledger.append_block(block_event(n=4), values(4, 9))
    root, size = ledger.root(), ledger.size()
    proof = ledger.prove_leaf(3, 6)
    check_leaf_proof(proof, root, size)
    other = ledger.prove_leaf(4, 1)
    flipped = bytes([proof.block_path[0][0] ^ 1]) + proof.block_path[0][1:]
    bad = [
        dataclasses.replace(proof, leaf=proof.leaf.replace(b"Good", b"Bad!")),
        dataclasses.replace(proof, leaf=other.leaf),
        dataclasses.replace(proof, index=5),
        dataclasses.replace(proof, block_size=10),
        dataclasses.replace(proof, block_path=(flipped, *proof.block_path[1:])),
        dataclasses.replace(proof, block_path=proof.block_path[:-1]),
        dataclasses.replace(proof, entry=other.entry),
        dataclasses.replace(proof, entry=proof.entry.replace(b'"size":9', b'"size":8')),
        dataclasses.replace(proof, seq=4),
        dataclasses.replace(proof, log_path=other.log_path),
        dataclasses.replace(proof, tree_size=size - 1),
        dataclasses.replace(proof, entry=ledger.entry(0).canonical, seq=0),
    ]
    for changed in bad:
        with pytest.raises(ProofError):
            check_leaf_proof(changed, root, size)
    with pytest.raises(ProofError):
        check_leaf_proof(proof, bytes(32), size)
    with pytest.raises(ProofError):
        LeafProof.from_json({**proof.as_json(), "index": "6"})
    with pytest.raises(ProofError, match="commits to no block"):
        ledger.prove_leaf(0, 0)
    with pytest.raises(ProofError, match="not in the block"):
        ledger.prove_leaf(3, 9)
    with pytest.raises(ProofError, match="no audit entry"):
        ledger.prove_leaf(99, 0)


def test_append_block_joins_the_callers_transaction(ledger: Ledger, signer: NoteSigner) -> None:
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "start", "batch", "B1"), conn=conn)
        receipt = ledger.append_block(block_event(n=3), values(3), conn=conn)
        ledger.append_block(block_event(n=2), values(2, 3), conn=conn)
    assert receipt.seq == 1 and ledger.size() == 3
    with pytest.raises(RuntimeError), ledger.transaction() as conn:  # rolled back: nothing stays
        ledger.append_block(block_event(), values(4), conn=conn)
        raise RuntimeError("the caller's own failure")
    assert ledger.size() == 3
    with pytest.raises(StorageError, match="no block leaves"):
        ledger.block_leaves(3)
    with pytest.raises(StorageError, match="not sealed"), ledger.engine.begin() as conn:
        ledger.append_block(block_event(), values(1), conn=conn)
    assert ledger.size() == 3
    report = verify_ledger(ledger, head_keys=signer.verifier)
    assert report.ok and report.heads_checked == 1, report.summary()  # one transaction


def test_bad_leaves_or_event_write_nothing(ledger: Ledger) -> None:
    ledger.append_block(block_event(), values(2))
    with pytest.raises(EntryError, match="leaf 1"):
        ledger.append_block(block_event(), [b'{"a":1}', b'{"a" :1}'])
    with pytest.raises(EntryError, match="1 to"):
        ledger.append_block(block_event(), [])
    with pytest.raises(EntryError, match="AuditEvent"):
        ledger.append_block("event", values(1))  # type: ignore[arg-type]
    with pytest.raises(EntryError, match="leaf 0"):  # the second block's: neither is written
        ledger.append_blocks([(block_event(), values(1)), (block_event(), [b"[]"])])
    with pytest.raises(EntryError, match="raw newline"):  # "canonical" by hand, wrongly
        ledger.append_block(block_event(), CanonicalLeaves([b'{"a":1}\n{"a":2}']))
    assert ledger.size() == 1
    assert ledger.append_blocks([]) == []


def test_ordinary_appends_are_unchanged_beside_blocks(tmp_path: Path) -> None:
    """The same events give the same bytes in a ledger that also holds blocks."""
    clock = iter(T0 + timedelta(seconds=i) for i in range(100))
    plain = Ledger.open(tmp_path / "plain.db", clock=lambda: next(clock))
    event = AuditEvent(OP, "create", "batch", "B1", new={"x": Decimal("1.5")})
    entry = plain.append(event)
    assert entry.block is None
    assert entry.canonical == encode_entry(0, entry.recorded_at, bytes(32), event)
    assert b'"block"' not in entry.canonical
    plain.close()


def test_a_ledger_without_the_block_table_reads_and_refuses_blocks(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "old.db")
    ledger.append(AuditEvent(OP, "c", "x", "1"))
    with ledger.engine.begin() as conn:  # as it was before blocks existed
        conn.execute(text("DROP TABLE audit_block"))
    ledger.close()
    old = Ledger.open(tmp_path / "old.db", read_only=True)
    assert list(old.iter_blocks()) == []
    with pytest.raises(StorageError, match="no block leaves"):
        old.block_leaves(0)
    assert verify_ledger(old).ok
    old.close()
    reopened = Ledger.open(tmp_path / "old.db")  # opening for writing adds the table
    reopened.append_block(block_event(), values(2))
    assert reopened.block_leaves(1) == list(values(2))
    reopened.close()


def test_entry_and_leaf_hashes_use_rfc_9162_leaf_hashing(ledger: Ledger) -> None:
    leaves = values(6)
    receipt = ledger.append_block(block_event(), leaves)
    proof = ledger.prove_leaf(receipt.seq, 3)
    assert record_hash(proof.entry) == receipt.entry_hash
    check_inclusion(proof.log_path, 1, ledger.root(), 0, receipt.entry_hash)
    assert mth(list(leaves)) == receipt.root


def test_cli_prove_leaf_prints_a_proof_that_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gxpmes.cli import main

    ledger = Ledger.open(tmp_path / "cli.db")
    ledger.append(AuditEvent(OP, "start", "batch", "B1"))
    ledger.append_block(block_event(n=20), values(20))
    root, size = ledger.root(), ledger.size()
    ledger.close()
    capsys.readouterr()
    argv = ["audit", "prove", "--db", str(tmp_path / "cli.db"), "--seq", "1", "--leaf", "13"]
    assert main([*argv, "--json"]) == 0
    proof = LeafProof.from_json(json.loads(capsys.readouterr().out))
    assert proof.index == 13 and proof.leaf == values(20)[13]
    check_leaf_proof(proof, root, size)
    assert main(argv) == 0
    assert "value 13 of block entry 1 (of 20) in tree of 2" in capsys.readouterr().out
    assert main([*argv[:-2], "--leaf", "20"]) != 0  # not in the block
    assert main([*argv[:-4], "--seq", "0", "--leaf", "0"]) != 0  # entry 0 is no block
