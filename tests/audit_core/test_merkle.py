"""The stored-hash Merkle log against a plain recursive RFC 9162 implementation."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import rfc9162_reference as ref
from hypothesis import given
from hypothesis import strategies as st

from audit import merkle as m
from audit.errors import ProofError

N = 200
DATA = [f"entry {i}".encode() for i in range(N)]


class Store:
    """A list of stored hashes, filled the way the ledger fills its rows."""

    def __init__(self, records: Sequence[bytes]) -> None:
        self.hashes: list[bytes] = []
        self.reads = 0
        for n, data in enumerate(records):
            assert len(self.hashes) == m.stored_hash_index(0, n)
            self.hashes.extend(m.stored_hashes_for_record(n, m.record_hash(data), self.read))
            assert len(self.hashes) == m.stored_hash_count(n + 1)

    def read(self, indexes: Sequence[int]) -> list[bytes]:
        self.reads += len(indexes)
        return [self.hashes[i] for i in indexes]


STORE = Store(DATA)


def test_hash_functions_are_rfc9162() -> None:
    assert m.record_hash(b"x") == ref.leaf(b"x")
    assert m.node_hash(b"a" * 32, b"b" * 32) == ref.node(b"a" * 32, b"b" * 32)
    assert m.tree_hash(0, STORE.read) == m.EMPTY_TREE_HASH == ref.mth([])


@pytest.mark.parametrize("size", range(1, N + 1))
def test_roots_and_inclusion_proofs_match_reference(size: int) -> None:
    root = m.tree_hash(size, STORE.read)
    assert root == ref.mth(DATA[:size])
    for index in range(size):
        proof = m.prove_inclusion(size, index, STORE.read)
        assert proof == ref.path(index, DATA[:size])
        m.check_inclusion(proof, size, root, index, m.record_hash(DATA[index]))


@pytest.mark.parametrize("size", range(1, 65))
def test_all_consistency_proofs_match_reference_small(size: int) -> None:
    new_root = ref.mth(DATA[:size])
    for old in range(1, size + 1):
        proof = m.prove_consistency(size, old, STORE.read)
        assert proof == ref.proof(old, DATA[:size])
        m.check_consistency(proof, size, new_root, old, ref.mth(DATA[:old]))


@given(st.integers(1, N).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_match_reference_large(pair: tuple[int, int]) -> None:
    old, new = pair
    proof = m.prove_consistency(new, old, STORE.read)
    assert proof == ref.proof(old, DATA[:new])
    m.check_consistency(proof, new, ref.mth(DATA[:new]), old, ref.mth(DATA[:old]))


def test_frontier_append_equals_stored_hashes() -> None:
    frontier: list[bytes] = []
    for n, data in enumerate(DATA):
        interior = m.extend_frontier(frontier, n, m.record_hash(data))
        start = m.stored_hash_index(0, n)
        assert interior == STORE.hashes[start + 1 : start + 1 + len(interior)]
        assert [STORE.hashes[i] for i in m.frontier_indexes(n + 1)] == frontier
        assert m.frontier_root(frontier) == ref.mth(DATA[: n + 1])
    assert m.frontier_root([]) == m.EMPTY_TREE_HASH


@given(st.integers(0, 10**6))
def test_stored_hash_index_round_trips(index: int) -> None:
    level, n = m.split_stored_hash_index(index)
    assert m.stored_hash_index(level, n) == index
    owner, position = m.stored_hash_owner(level, n)
    assert m.stored_hash_index(0, owner) + position == index


def test_proofs_read_logarithmically_many_hashes() -> None:
    big = 1 << 20
    reads: list[int] = []

    def reader(indexes: Sequence[int]) -> list[bytes]:
        reads.append(len(indexes))
        return [b"\0" * 32] * len(indexes)

    m.prove_inclusion(big + 12345, 777, reader)
    m.tree_hash(big + 12345, reader)
    m.prove_consistency(big + 12345, 99999, reader)
    assert all(r <= 2 * 21 for r in reads)


@given(
    st.integers(1, N).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.data(),
)
def test_altered_inclusion_proofs_fail(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    root = m.tree_hash(size, STORE.read)
    leaf = m.record_hash(DATA[index])
    proof = m.prove_inclusion(size, index, STORE.read)
    # (Changing only the claimed size is not an alteration a proof can catch:
    # a signed checkpoint binds size and root together.)
    alteration = data.draw(st.sampled_from(["flip", "drop", "extra", "index", "leaf"]))
    if alteration == "flip" and proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
    elif alteration == "drop" and proof:
        proof.pop()
    elif alteration == "extra":
        proof.append(b"\x07" * 32)
    elif alteration == "index" and size > 1:
        index = (index + 1) % size
    else:
        leaf = m.record_hash(DATA[index] + b"!")
    with pytest.raises(ProofError):
        m.check_inclusion(proof, size, root, index, leaf)


@given(st.integers(2, N).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))), st.data())
def test_altered_consistency_proofs_fail(pair: tuple[int, int], data: st.DataObject) -> None:
    old, new = pair
    proof = m.prove_consistency(new, old, STORE.read)
    old_root, new_root = ref.mth(DATA[:old]), ref.mth(DATA[:new])
    target = data.draw(st.sampled_from(["proof", "old_root", "new_root"]))
    if target == "proof" and proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = bytes(32)
    elif target == "old_root":
        old_root = ref.mth(DATA[1 : old + 1])
    else:
        new_root = ref.mth(DATA[1 : new + 1])
    with pytest.raises(ProofError):
        m.check_consistency(proof, new, new_root, old, old_root)


@pytest.mark.parametrize(("size", "index"), [(0, 0), (5, 5), (5, -1)])
def test_impossible_inclusion_requests_raise(size: int, index: int) -> None:
    with pytest.raises(ProofError, match="not in a tree"):
        m.prove_inclusion(size, index, STORE.read)


@pytest.mark.parametrize(("new", "old"), [(5, 0), (5, 6), (0, 0)])
def test_impossible_consistency_requests_raise(new: int, old: int) -> None:
    with pytest.raises(ProofError, match="no consistency proof"):
        m.prove_consistency(new, old, STORE.read)


def test_wrong_length_hash_in_proof_is_refused() -> None:
    with pytest.raises(ProofError, match="wrong length"):
        m.check_inclusion([b"short"], 2, bytes(32), 0, bytes(32))
