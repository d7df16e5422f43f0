"""RFC 9162 §2.1 Merkle tree hashing over densely stored hashes.

This follows Go's ``golang.org/x/mod/sumdb/tlog``: every hash of a *complete*
subtree is stored exactly once, at a position given by
:func:`stored_hash_index`, and never changes afterwards. Appending record ``n``
stores its leaf hash plus one interior hash for every subtree it completes
(amortised two hashes per record); the root of any tree size and every proof
are assembled from O(log n) stored hashes, never by rebuilding the tree.

Hashes:

* leaf: ``SHA-256(0x00 ‖ record bytes)``  (:func:`record_hash`)
* interior: ``SHA-256(0x01 ‖ left ‖ right)``  (:func:`node_hash`)
* empty tree: ``SHA-256()``

A stored hash is addressed by ``(level, k)``: the hash of leaves
``[k·2^level, (k+1)·2^level)``. It is produced by record
``(k+1)·2^level − 1``, which makes it the ``level``-th hash that record
stores; :func:`stored_hash_owner` gives that pair, and lets a store keep a
record's hashes together in the record's own row.

Proof functions take a ``read_hashes`` callable (stored indexes → hashes) so
they work on any storage; the ``check_*`` functions need nothing but the proof
and the hashes and are what an independent verifier runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from audit.errors import ProofError

__all__ = [
    "EMPTY_TREE_HASH",
    "HASH_SIZE",
    "HashReader",
    "check_consistency",
    "check_inclusion",
    "completed_subtree_count",
    "extend_frontier",
    "frontier_indexes",
    "frontier_root",
    "inclusion_proof_indexes",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "record_hash",
    "root_from_inclusion",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hash_owner",
    "stored_hashes_for_record",
    "tree_hash",
    "tree_hash_indexes",
]

HASH_SIZE = 32
EMPTY_TREE_HASH = hashlib.sha256().digest()

HashReader = Callable[[Sequence[int]], Sequence[bytes]]
"""Reads stored hashes by stored-hash index, returning them in the same order."""

_sha256 = hashlib.sha256


def record_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 ‖ data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(b"\x01" + left + right).digest()


def stored_hash_index(level: int, n: int) -> int:
    """Position in the dense hash storage of the level-``level`` hash number ``n``."""
    # Level L's n-th hash is written right after level L+1's (2n+1)-th hash;
    # walk down to level 0, where hash n is stored at n + n/2 + n/4 + ...
    for _ in range(level):
        n = 2 * n + 1
    index = 0
    while n > 0:
        index += n
        n >>= 1
    return index + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`stored_hash_index`: ``index`` → ``(level, n)``."""
    n = index // 2
    index_n = stored_hash_index(0, n)
    if index_n > index:  # pragma: no cover - arithmetic invariant
        raise ProofError("bad stored hash index arithmetic")
    while True:
        # Record n+1 adds 1 + trailing_zeros(n+1) hashes.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def stored_hash_owner(level: int, n: int) -> tuple[int, int]:
    """The record that stores hash ``(level, n)`` and its position in that record's list."""
    return ((n + 1) << level) - 1, level


def stored_hash_count(tree_size: int) -> int:
    """Number of hashes stored for a tree of ``tree_size`` records."""
    if tree_size == 0:
        return 0
    count = stored_hash_index(0, tree_size - 1) + 1
    i = tree_size - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def completed_subtree_count(n: int) -> int:
    """How many interior hashes record ``n`` completes (trailing one bits of ``n``)."""
    return _trailing_zeros(n + 1)


def stored_hashes_for_record(n: int, leaf: bytes, read_hashes: HashReader) -> list[bytes]:
    """Hashes to store when record ``n`` (with leaf hash ``leaf``) is appended.

    The first is ``leaf``; then one per subtree that record ``n`` completes,
    each combining the left sibling subtree (read from storage) with the
    hash below it. Their stored indexes are consecutive from
    ``stored_hash_index(0, n)``.
    """
    m = completed_subtree_count(n)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in range(m - 1, -1, -1)]
    old = read_hashes(indexes) if m else []
    hashes = [leaf]
    h = leaf
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


def frontier_indexes(tree_size: int) -> list[int]:
    """Stored indexes of the complete subtrees that make up a tree of ``tree_size``.

    Largest (leftmost) first: one per set bit of ``tree_size``. These hashes,
    the tree's right frontier, are all an appender needs to extend the tree.
    """
    indexes = []
    lo = 0
    for level in range(tree_size.bit_length() - 1, -1, -1):
        if tree_size >> level & 1:
            indexes.append(stored_hash_index(level, lo >> level))
            lo += 1 << level
    return indexes


def extend_frontier(frontier: list[bytes], n: int, leaf: bytes) -> list[bytes]:
    """Append record ``n`` to a frontier (see :func:`frontier_indexes`) in place.

    Returns the interior hashes record ``n`` completes, lowest level first:
    exactly ``stored_hashes_for_record(n, leaf, ...)[1:]``, computed from the
    frontier instead of storage reads.
    """
    interior = []
    h = leaf
    for _ in range(_trailing_zeros(n + 1)):
        h = node_hash(frontier.pop(), h)
        interior.append(h)
    frontier.append(h)
    return interior


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """Root hash of the tree whose right frontier is ``frontier`` (largest subtree first).

    The frontier's subtrees are exactly the maximal complete subtrees
    :func:`tree_hash` combines, so an appender or a verifier that keeps a
    frontier gets any root it passes with no storage reads.
    """
    if not frontier:
        return EMPTY_TREE_HASH
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = node_hash(left, h)
    return h


def _maxpow2(n: int) -> tuple[int, int]:
    """Largest power of two strictly less than ``n`` (n ≥ 2), and its log2."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def _sub_tree_index(lo: int, hi: int, need: list[int]) -> list[int]:
    # Split [lo, hi) into maximal complete subtrees, left to right.
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _sub_tree_hash(lo: int, hi: int, hashes: list[bytes], pos: int) -> tuple[bytes, int]:
    count = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        count += 1
        lo += k
    if len(hashes) - pos < count:  # pragma: no cover - arithmetic invariant
        raise ProofError("not enough stored hashes for subtree")
    # The fringe is combined right to left: H(t0, H(t1, H(t2, ...))).
    h = hashes[pos + count - 1]
    for i in range(count - 2, -1, -1):
        h = node_hash(hashes[pos + i], h)
    return h, pos + count


def tree_hash(tree_size: int, read_hashes: HashReader) -> bytes:
    """Root hash (RFC 9162 MTH) of the first ``tree_size`` records."""
    if tree_size < 0:
        raise ProofError(f"negative tree size {tree_size}")
    if tree_size == 0:
        return EMPTY_TREE_HASH
    indexes = _sub_tree_index(0, tree_size, [])
    hashes = list(read_hashes(indexes))
    root, _ = _sub_tree_hash(0, tree_size, hashes, 0)
    return root


# ---------------------------------------------------------------- inclusion


def _leaf_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes], pos: int) -> tuple[list[bytes], int]:
    if lo + 1 == hi:
        return [], pos  # the verifier knows the leaf hash
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        proof, pos = _leaf_proof(lo, lo + k, n, hashes, pos)
        sibling, pos = _sub_tree_hash(lo + k, hi, hashes, pos)
    else:
        sibling, pos = _sub_tree_hash(lo, lo + k, hashes, pos)
        proof, pos = _leaf_proof(lo + k, hi, n, hashes, pos)
    proof.append(sibling)
    return proof, pos


def inclusion_proof_indexes(tree_size: int, index: int) -> list[int]:
    """Stored indexes :func:`prove_inclusion` reads (so a store can fetch them at once)."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    return _leaf_proof_index(0, tree_size, index, [])


def tree_hash_indexes(tree_size: int) -> list[int]:
    """Stored indexes :func:`tree_hash` reads."""
    return _sub_tree_index(0, tree_size, []) if tree_size > 0 else []


def prove_inclusion(tree_size: int, index: int, read_hashes: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof (audit path) of leaf ``index`` in a tree of ``tree_size``.

    The path is ordered from the leaf's sibling up to the root's child.
    """
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    indexes = _leaf_proof_index(0, tree_size, index, [])
    if not indexes:
        return []
    hashes = list(read_hashes(indexes))
    proof, _ = _leaf_proof(0, tree_size, index, hashes, 0)
    return proof


def root_from_inclusion(proof: Sequence[bytes], tree_size: int, index: int, leaf: bytes) -> bytes:
    """Root implied by an inclusion proof; raises :class:`ProofError` if its shape is wrong."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is not in a tree of size {tree_size}")
    path = list(proof)

    def run(lo: int, hi: int, depth: int) -> bytes:
        if lo + 1 == hi:
            if depth != 0:
                raise ProofError("inclusion proof is longer than the path to the leaf")
            return leaf
        if depth == 0:
            raise ProofError("inclusion proof is shorter than the path to the leaf")
        sibling = path[depth - 1]
        k, _ = _maxpow2(hi - lo)
        if index < lo + k:
            return node_hash(run(lo, lo + k, depth - 1), sibling)
        return node_hash(sibling, run(lo + k, hi, depth - 1))

    return run(0, tree_size, len(path))


def check_inclusion(
    proof: Sequence[bytes], tree_size: int, root: bytes, index: int, leaf: bytes
) -> None:
    """Verify that ``leaf`` is record ``index`` of the tree of ``tree_size`` with ``root``.

    Raises :class:`ProofError` when it is not; returns ``None`` when it is.
    """
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError("inclusion proof holds a hash of the wrong length")
    if root_from_inclusion(proof, tree_size, index, leaf) != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the tree root")


# -------------------------------------------------------------- consistency


def _tree_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if n == hi:
        if lo == 0:
            return need
        return _sub_tree_index(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _tree_proof_index(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes], pos: int) -> tuple[list[bytes], int]:
    if n == hi:
        if lo == 0:
            return [], pos  # the verifier knows the old root
        h, pos = _sub_tree_hash(lo, hi, hashes, pos)
        return [h], pos
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        proof, pos = _tree_proof(lo, lo + k, n, hashes, pos)
        sibling, pos = _sub_tree_hash(lo + k, hi, hashes, pos)
    else:
        sibling, pos = _sub_tree_hash(lo, lo + k, hashes, pos)
        proof, pos = _tree_proof(lo + k, hi, n, hashes, pos)
    proof.append(sibling)
    return proof, pos


def prove_consistency(new_size: int, old_size: int, read_hashes: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.4 proof that the tree of ``old_size`` is a prefix of that of ``new_size``."""
    if not 1 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    indexes = _tree_proof_index(0, new_size, old_size, [])
    if not indexes:
        return []
    hashes = list(read_hashes(indexes))
    proof, _ = _tree_proof(0, new_size, old_size, hashes, 0)
    return proof


def check_consistency(
    proof: Sequence[bytes], new_size: int, new_root: bytes, old_size: int, old_root: bytes
) -> None:
    """Verify that the tree (old_size, old_root) is a prefix of (new_size, new_root).

    Raises :class:`ProofError` when it is not.
    """
    if not 1 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError("consistency proof holds a hash of the wrong length")
    path = list(proof)

    def run(lo: int, hi: int, depth: int) -> tuple[bytes, bytes]:
        # Returns (hash of the old tree's part, hash of the new tree's part).
        if old_size == hi:
            if lo == 0:
                if depth != 0:
                    raise ProofError("consistency proof is too long")
                return old_root, old_root
            if depth != 1:
                raise ProofError("consistency proof has the wrong length")
            return path[0], path[0]
        if depth == 0:
            raise ProofError("consistency proof is too short")
        sibling = path[depth - 1]
        k, _ = _maxpow2(hi - lo)
        if old_size <= lo + k:
            old_h, new_h = run(lo, lo + k, depth - 1)
            return old_h, node_hash(new_h, sibling)
        old_h, new_h = run(lo + k, hi, depth - 1)
        return node_hash(sibling, old_h), node_hash(sibling, new_h)

    old_h, new_h = run(0, new_size, len(path))
    if old_h != old_root or new_h != new_root:
        raise ProofError(f"consistency proof does not link size {old_size} to size {new_size}")
