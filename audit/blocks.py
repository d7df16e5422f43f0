"""Value blocks: many values under one audit entry, each still individually provable.

A process historian records values far faster than one audit entry per value
can be written durably. A *block* hashes many values (its *leaves*) into one
RFC 9162 Merkle tree and one ordinary audit entry commits to that tree's root
(:meth:`audit.ledger.Ledger.append_block`): the entry's canonical bytes carry
a top-level member ``"block": {"root": <hex>, "size": <n>}`` (see
:class:`audit.entry.BlockRef`), and the leaves are stored beside the entry.

* A leaf is the RFC 8785 canonical JSON of one JSON object (one value record),
  as bytes. Canonical JSON escapes every control character, so a leaf never
  holds a raw newline: a block's leaves are stored (and exported) as one blob,
  the leaves joined by ``0x0A`` (:func:`pack_leaves`), i.e. JSON Lines.
* The block root is RFC 9162 §2.1.1's MTH over the leaves, with the RFC's leaf
  hash ``SHA-256(0x00 ‖ leaf)`` and interior hash ``SHA-256(0x01 ‖ l ‖ r)``:
  the same tree as the log's (:mod:`audit.merkle`), over a block's leaves.
* A value's proof (:class:`LeafProof`) composes two RFC 9162 §2.1.3 inclusion
  proofs: the leaf in its block (root from the entry's ``block`` member), and
  the block entry in the log (root from a signed checkpoint).
  :func:`check_leaf_proof` needs nothing but the proof and the log's root and
  size.

Verification (:class:`BlockScan`) recomputes every block's root from the
stored leaves while the log is scanned: a missing, extra, altered or
reordered leaf changes the root or the count; leaves stored for an entry that
commits to no block, and a block entry without its leaves, are reported too.
All functions here are pure: they take and return plain data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.canonical import canonicalize
from audit.entry import MAX_BLOCK_LEAVES, BlockRef, block_of, parse_entry
from audit.errors import CanonicalizationError, EntryError, ProofError, StorageError
from audit.merkle import HASH_SIZE, check_inclusion, record_hash, root_from_inclusion

__all__ = [
    "BLOCK_MISMATCH",
    "BLOCK_MISSING",
    "BLOCK_UNEXPECTED",
    "LEAF_SEPARATOR",
    "MAX_BLOCK_LEAVES",
    "BlockScan",
    "CanonicalLeaves",
    "LeafProof",
    "UnreadableLeaves",
    "blob_of",
    "block_path",
    "block_root",
    "check_block",
    "check_in_block",
    "check_leaf_proof",
    "check_leaves",
    "encode_leaves",
    "leaf_hashes",
    "leaves_of",
    "pack_leaves",
    "prove_in_block",
    "root_of_hashes",
    "scan_blocks",
    "unpack_leaves",
]

LEAF_SEPARATOR = b"\n"
"""Between two leaves of a stored block (canonical JSON never holds a raw newline)."""

BLOCK_MISMATCH = "block_mismatch"
"""Problem kind: a block's stored leaves do not give the root and size its entry commits to."""
BLOCK_MISSING = "block_missing"
"""Problem kind: an entry commits to a block whose leaves are not stored."""
BLOCK_UNEXPECTED = "block_unexpected"
"""Problem kind: leaves are stored for an entry that commits to no block (or for no entry)."""

_sha256 = hashlib.sha256
_loads = orjson.loads
_dumps = orjson.dumps
_CHECK_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
# Values orjson writes exactly as RFC 8785 does (see audit.entry): no floats, no nesting.
_PLAIN_KINDS = frozenset({str, int, bool, type(None)})


# ------------------------------------------------------------------ leaves


class CanonicalLeaves(tuple[bytes, ...]):
    """Leaves :func:`encode_leaves` wrote: canonical by construction, not checked again.

    Any other sequence of bytes given to ``append_block`` is checked leaf by
    leaf (:func:`check_leaves`).
    """

    __slots__ = ()


def _is_canonical_object(leaf: bytes) -> bool:
    """Whether ``leaf`` is the RFC 8785 form of a JSON object."""
    try:
        value = _loads(leaf)
    except orjson.JSONDecodeError:
        return False
    if type(value) is not dict:
        return False
    # Flat objects of ASCII names and strings, safe integers, booleans and nulls:
    # orjson writes exactly RFC 8785 (tests/audit_core/test_fast_encoder.py).
    if _PLAIN_KINDS.issuperset(map(type, value.values())) and "".join(value).isascii():
        try:
            return bool(_dumps(value, option=_CHECK_OPTIONS) == leaf)
        except TypeError:  # an integer beyond ±(2**53 - 1): the exact encoder decides
            pass
    try:
        # RFC 8785 numbers are IEEE doubles: 34413302571355090 is how a double is written.
        return canonicalize(json.loads(leaf, parse_int=float)) == leaf
    except (ValueError, CanonicalizationError):
        return False


def _all_flat_canonical(leaves: Sequence[bytes]) -> bool:
    """Fast path of :func:`check_leaves`: every leaf a flat object orjson writes as RFC 8785.

    One parse of all leaves as a JSON array, one compiled encode per object,
    compared with the leaves themselves (so each leaf is exactly one object).
    ``False`` means "not shown here", and the leaves are checked one by one.
    """
    try:
        objects = _loads(b"[" + b",".join(leaves) + b"]")
        if len(objects) != len(leaves) or [_dumps(o, option=_CHECK_OPTIONS) for o in objects] != [
            *leaves
        ]:
            return False
    except (orjson.JSONDecodeError, TypeError):
        return False
    kinds: set[type] = set()
    names: list[str] = []
    for value in objects:
        if type(value) is not dict:
            return False
        kinds.update(map(type, value.values()))
        names.append("".join(value))
    return _PLAIN_KINDS.issuperset(kinds) and "".join(names).isascii()


def check_leaves(leaves: Sequence[bytes]) -> None:
    """Raise :class:`EntryError` unless ``leaves`` can form a block.

    A block holds 1 to :data:`MAX_BLOCK_LEAVES` leaves, each the RFC 8785
    canonical bytes of one JSON object. :class:`CanonicalLeaves` pass
    unchecked (they were encoded here).
    """
    count = len(leaves)
    if not 1 <= count <= MAX_BLOCK_LEAVES:
        raise EntryError(f"a block holds 1 to {MAX_BLOCK_LEAVES} leaves, not {count}")
    if type(leaves) is CanonicalLeaves or _all_flat_canonical(leaves):
        return
    for index, leaf in enumerate(leaves):
        if type(leaf) is not bytes:
            raise EntryError(f"leaf {index} is {type(leaf).__name__}, not bytes")
        if not _is_canonical_object(leaf):
            raise EntryError(
                f"leaf {index} is not the RFC 8785 canonical JSON of an object: "
                f"{leaf[:80]!r}; encode it with audit.blocks.encode_leaves"
            )


def encode_leaves(records: Iterable[Mapping[str, Any]]) -> CanonicalLeaves:
    """RFC 8785 bytes of each record (a JSON object), ready for ``append_block``.

    The same encoder as entry payloads (flat records of ASCII names with
    strings, integers, Decimals and aware datetimes take the compiled path;
    anything else the exact one). Raises
    :class:`~audit.errors.CanonicalizationError` naming the leaf and member.
    """
    from audit.entry import _encode_payload

    out: list[bytes] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise EntryError(f"leaf {index} is {type(record).__name__}, not a JSON object")
        try:
            out.append(_encode_payload(record if type(record) is dict else dict(record)).encode())
        except CanonicalizationError as exc:
            exc.path = f"/leaves/{index}{exc.path}"
            raise
        except UnicodeEncodeError as exc:
            raise CanonicalizationError("a lone surrogate", f"/leaves/{index}") from exc
    return CanonicalLeaves(out)


def pack_leaves(leaves: Sequence[bytes]) -> bytes:
    """The stored (and exported) form of a block's leaves: joined by ``0x0A``."""
    return LEAF_SEPARATOR.join(leaves)


def unpack_leaves(blob: bytes) -> list[bytes]:
    """The leaves of a stored block, in order (inverse of :func:`pack_leaves`)."""
    return bytes(blob).split(LEAF_SEPARATOR)


class UnreadableLeaves(bytes):
    """Stands for a stored ``leaves`` value that is not bytes (text, NULL, a number:
    a column altered behind the ledger's back); ``what`` says what it is. Checks
    report it as the block's problem, readers refuse it (:func:`leaves_of`)."""

    what: str = "not bytes"


def blob_of(value: object) -> bytes:
    """A stored ``leaves`` value as the driver returned it, as bytes; anything that is
    not bytes becomes an :class:`UnreadableLeaves` (empty) naming its type."""
    if type(value) is bytes or isinstance(value, UnreadableLeaves):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    marker = UnreadableLeaves()
    marker.what = "NULL" if value is None else type(value).__name__
    return marker


def leaves_of(seq: int, blob: bytes) -> list[bytes]:
    """:func:`unpack_leaves` of block entry ``seq``'s stored value (from :func:`blob_of`);
    :class:`StorageError` naming the entry when that value is not bytes."""
    if isinstance(blob, UnreadableLeaves):
        raise StorageError(
            f"the leaves stored for block entry {seq} are {blob.what}, not bytes: "
            "the audit_block row was altered"
        )
    return unpack_leaves(blob)


# ------------------------------------------------------------ block tree


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes ``SHA-256(0x00 ‖ leaf)``, in order."""
    sha256 = _sha256
    return [sha256(b"\x00" + leaf).digest() for leaf in leaves]


def _next_level(level: list[bytes]) -> list[bytes]:
    sha256 = _sha256
    up = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) & 1:
        up.append(level[-1])  # a lone right node moves up unchanged
    return up


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH of a non-empty list of leaf hashes.

    Computed bottom-up, pairing neighbours and carrying a lone last node up:
    the same tree as the RFC's split at the largest power of two below n.
    """
    if not hashes:
        raise ProofError("a block holds at least one leaf")
    level = list(hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def block_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 root of a block's leaves (each hashed as ``SHA-256(0x00 ‖ leaf)``)."""
    return root_of_hashes(leaf_hashes(leaves))


def block_path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 audit path of leaf ``index`` from the block's leaf hashes."""
    if not 0 <= index < len(hashes):
        raise ProofError(f"leaf index {index} is not in a block of {len(hashes)} leaves")
    path: list[bytes] = []
    level = list(hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        index >>= 1
    return path


def prove_in_block(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof (audit path) of leaf ``index`` in its block.

    Ordered from the leaf's sibling up, exactly as :func:`audit.merkle.prove_inclusion`.
    """
    return block_path(leaf_hashes(leaves), index)


def check_in_block(path: Sequence[bytes], size: int, root: bytes, index: int, leaf: bytes) -> None:
    """Verify that ``leaf`` (its bytes) is leaf ``index`` of the block of ``size`` with ``root``.

    Raises :class:`ProofError` when it is not.
    """
    check_inclusion(path, size, root, index, record_hash(leaf))


# ---------------------------------------------------------------- proofs


@dataclass(frozen=True, slots=True)
class LeafProof:
    """Proof that one value (leaf) is in the log: two composed RFC 9162 inclusion proofs.

    ``leaf`` is at ``index`` of a block of ``block_size`` leaves (audit path
    ``block_path``); ``entry`` is the canonical bytes of the block entry, whose
    ``block`` member gives that block's root; the entry is record ``seq`` of
    the log of ``tree_size`` entries (audit path ``log_path``).
    """

    leaf: bytes
    index: int
    block_size: int
    block_path: tuple[bytes, ...]
    entry: bytes
    seq: int
    tree_size: int
    log_path: tuple[bytes, ...]

    def as_json(self) -> dict[str, Any]:
        """JSON form (hex hashes, base64 bytes), read back by :meth:`from_json`."""
        return {
            "leaf": base64.b64encode(self.leaf).decode("ascii"),
            "index": self.index,
            "block_size": self.block_size,
            "block_path": [h.hex() for h in self.block_path],
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "seq": self.seq,
            "tree_size": self.tree_size,
            "log_path": [h.hex() for h in self.log_path],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeafProof:
        """Read :meth:`as_json`'s form; raises :class:`ProofError` when malformed."""
        try:
            return cls(
                leaf=base64.b64decode(data["leaf"], validate=True),
                index=_int(data["index"]),
                block_size=_int(data["block_size"]),
                block_path=tuple(bytes.fromhex(h) for h in data["block_path"]),
                entry=base64.b64decode(data["entry"], validate=True),
                seq=_int(data["seq"]),
                tree_size=_int(data["tree_size"]),
                log_path=tuple(bytes.fromhex(h) for h in data["log_path"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError(f"malformed leaf proof: {exc}") from exc


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def check_leaf_proof(proof: LeafProof, log_root: bytes, log_size: int) -> BlockRef:
    """Verify a value's proof against the log's root at ``log_size`` (from a trusted checkpoint).

    Checks, with nothing but the proof: the entry bytes are a canonical block
    entry written as record ``seq``, committing to a block of ``block_size``
    leaves; the leaf is leaf ``index`` of that block's root; the entry is
    record ``seq`` of the log with ``log_root``. Returns the block reference;
    raises :class:`ProofError` otherwise.
    """
    if proof.tree_size != log_size:
        raise ProofError(f"the proof is for a log of {proof.tree_size} entries, not {log_size}")
    if any(len(h) != HASH_SIZE for h in (*proof.block_path, *proof.log_path)):
        raise ProofError("leaf proof holds a hash of the wrong length")
    try:
        entry = parse_entry(proof.entry)
    except EntryError as exc:
        raise ProofError(f"the proof's entry is not a canonical audit entry: {exc}") from exc
    if entry.block is None:
        raise ProofError(f"entry {entry.seq} commits to no block")
    if entry.seq != proof.seq:
        raise ProofError(f"the proof's entry was written as {entry.seq}, not {proof.seq}")
    if entry.block.size != proof.block_size:
        raise ProofError(
            f"entry {entry.seq} commits to a block of {entry.block.size} leaves, "
            f"not {proof.block_size}"
        )
    try:
        check_in_block(
            proof.block_path, proof.block_size, entry.block.root, proof.index, proof.leaf
        )
    except ProofError as exc:
        raise ProofError(f"leaf {proof.index} of block entry {entry.seq}: {exc}") from exc
    check_inclusion(proof.log_path, log_size, log_root, proof.seq, record_hash(proof.entry))
    return entry.block


def leaf_root(proof: LeafProof) -> bytes:
    """The block root a leaf proof's path leads to (for diagnostics)."""
    return root_from_inclusion(
        proof.block_path, proof.block_size, proof.index, record_hash(proof.leaf)
    )


# ---------------------------------------------------------- verification


def check_block(seq: int, block: BlockRef, blob: bytes) -> tuple[str, str] | None:
    """Whether the stored leaves ``blob`` are the block entry ``seq`` commits to.

    Returns ``None`` when they are, else ``(problem kind, detail)``: the
    count differs (a leaf missing or added) or the root differs (a leaf
    altered, reordered, or bytes cut).
    """
    if isinstance(blob, UnreadableLeaves):
        return (
            BLOCK_MISMATCH,
            f"the leaves stored for entry {seq} are {blob.what}, not bytes: "
            "the audit_block row was altered",
        )
    leaves = unpack_leaves(blob)
    if len(leaves) != block.size:
        return (
            BLOCK_MISMATCH,
            f"entry {seq} commits to a block of {block.size} leaves but {len(leaves)} are stored",
        )
    if block_root(leaves) != block.root:
        return (
            BLOCK_MISMATCH,
            f"the {block.size} leaves stored for entry {seq} do not hash to the block root it "
            "commits to: a leaf was altered, reordered or replaced",
        )
    return None


BlockRow = tuple[int, bytes]
"""A stored block: ``(entry seq, packed leaves)``."""


class BlockScan:
    """Checks stored blocks in seq order alongside a scan of the log's entries.

    Call :meth:`check` for every entry in seq order (cheap for ordinary
    entries), then :meth:`finish` with the number of entries scanned.
    """

    def __init__(self, blocks: Iterable[BlockRow]) -> None:
        self._blocks: Iterator[BlockRow] = iter(blocks)
        self.blocks = 0
        self.leaves = 0
        self.next_seq = -1
        self._blob = b""
        self._advance()

    def _advance(self) -> None:
        row = next(self._blocks, None)
        if row is None:
            self.next_seq, self._blob = -1, b""
        else:
            self.next_seq, self._blob = int(row[0]), blob_of(row[1])

    def check(self, seq: int, canonical: bytes) -> tuple[str, int, str] | None:
        """Check entry ``seq`` against the stored blocks; ``(kind, seq, detail)`` on a problem."""
        if 0 <= self.next_seq < seq:
            return (
                BLOCK_UNEXPECTED,
                self.next_seq,
                f"leaves are stored for entry {self.next_seq}, which is not in the log "
                "or is stored twice",
            )
        try:
            block = block_of(canonical)
        except EntryError as exc:
            return BLOCK_MISMATCH, seq, f"entry {seq} has a malformed block member: {exc}"
        if self.next_seq != seq:
            if block is None:
                return None
            return BLOCK_MISSING, seq, f"entry {seq} commits to a block whose leaves are missing"
        if block is None:
            return (
                BLOCK_UNEXPECTED,
                seq,
                f"leaves are stored for entry {seq}, which commits to no block",
            )
        problem = check_block(seq, block, self._blob)
        if problem is not None:
            return problem[0], seq, problem[1]
        self.blocks += 1
        self.leaves += block.size
        self._advance()
        return None

    def finish(self, entries: int) -> tuple[str, int, str] | None:
        """After the scan: leaves stored past the last entry."""
        if self.next_seq >= 0:
            return (
                BLOCK_UNEXPECTED,
                self.next_seq,
                f"leaves are stored for entry {self.next_seq}, but the log holds {entries} "
                "entries (or they are stored out of order)",
            )
        return None


def scan_blocks(
    rows: Iterable[tuple[int, bytes, bytes, bytes]], blocks: Iterable[BlockRow]
) -> tuple[str, int, str] | None:
    """The first block problem ``(kind, seq, detail)`` in a log's rows and stored blocks.

    ``rows`` are stored entries ``(seq, canonical, leaf hash, tree hashes)`` in
    seq order, ``blocks`` the stored blocks in seq order; only the block
    checks run (the entries' own checks are :func:`audit.verify.verify_rows`').
    """
    scan = BlockScan(blocks)
    entries = 0
    for seq, canonical, _leaf, _tree in rows:
        found = scan.check(seq, bytes(canonical))
        if found is not None:
            return found
        entries = seq + 1
    return scan.finish(entries)
