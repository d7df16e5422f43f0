"""Independent verification of a ledger, a checkpoint, and single proofs.

:func:`verify_ledger` re-derives everything from the stored canonical bytes —
leaf hashes, the hash chain, every stored Merkle hash, the root — and, given a
signed checkpoint and the keys to trust, checks that the log still contains
what was checkpointed. It reads only, so it runs on a read-only copy, and it
stops at the first problem, naming its sequence number and kind.

:func:`verify_inclusion` and :func:`verify_consistency` need no database at
all: the proof, the entry (or its leaf hash), the checkpoint and a public key.

Given the application's head keys, :func:`verify_ledger` also checks the
ledger's signed tree heads (one per write transaction, see
:mod:`audit.ledger`): each must be signed by a trusted key valid at its time
and match the log at its size, and every entry must lie under one. An entry
past the last signed head was not appended by the ledger: a bare INSERT, in
perfect form or not, is reported as forged.

With ``jobs`` > 1, :func:`verify_ledger` checks ranges of whole Merkle
subtrees in worker processes and stitches them in order; the report is the
single scan's (see "Parallel verification" in docs/audit.md).
"""

from __future__ import annotations

import binascii
import bisect
import enum
import hashlib
import itertools
import json
import multiprocessing
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect

from audit.blocks import BlockScan
from audit.canonical import format_timestamp
from audit.checkpoint import Checkpoint, OpenedCheckpoint, open_checkpoint
from audit.entry import GENESIS_PREV, seq_span
from audit.errors import CheckpointError, ProofError
from audit.keys import TrustedKey
from audit.merkle import (
    EMPTY_TREE_HASH,
    check_consistency,
    check_inclusion,
    extend_frontier,
    frontier_root,
    node_hash,
    record_hash,
)
from audit.note import NoteVerifier, split_note

__all__ = [
    "HEADS_NOT_CHECKED",
    "HeadTuple",
    "KeySpec",
    "Problem",
    "RowTuple",
    "VerificationReport",
    "check_checkpoint_signature",
    "keys_under_head_names",
    "verify_consistency",
    "verify_inclusion",
    "verify_ledger",
    "verify_rows",
]


class Problem(enum.StrEnum):
    """Kinds of integrity problems verification reports."""

    HASH_MISMATCH = "hash_mismatch"
    """An entry's bytes no longer hash to its stored leaf hash (edited entry)."""
    CHAIN_BREAK = "chain_break"
    """An entry's ``prev`` is not the hash of the entry before it."""
    GAP = "gap"
    """A sequence number is missing (deleted entry)."""
    SEQ_MISMATCH = "seq_mismatch"
    """An entry is stored under another seq than it was written with (reordered / forged)."""
    TREE_HASH_MISMATCH = "tree_hash_mismatch"
    """A stored Merkle interior hash does not match the entries below it."""
    MALFORMED_ENTRY = "malformed_entry"
    """An entry's bytes are not a canonical audit entry."""
    BAD_SIGNATURE = "bad_signature"
    """The checkpoint's signature does not verify."""
    UNKNOWN_KEY = "unknown_key"
    """The checkpoint is signed by no trusted key."""
    REVOKED_KEY = "revoked_key"
    """The checkpoint's key was revoked, expired or not yet valid at the checkpoint's time."""
    CHECKPOINT_MALFORMED = "checkpoint_malformed"
    """The checkpoint text cannot be parsed."""
    CHECKPOINT_INCONSISTENT = "checkpoint_inconsistent"
    """The log's first <size> entries no longer have the checkpointed root, or origin differs."""
    TRUNCATED = "truncated"
    """The log holds fewer entries than a checkpoint or a signed tree head vouches for."""
    HEAD_UNTRUSTED = "head_untrusted"
    """A stored tree head is malformed or not validly signed by a trusted head key at its time."""
    HEAD_INCONSISTENT = "head_inconsistent"
    """A signed tree head disagrees with the log at its size (root, chain head, origin, order)."""
    UNSIGNED_ENTRIES = "unsigned_entries"
    """Entries after the last signed tree head: not appended by the ledger (forged)."""
    TIME_REVERSED = "time_reversed"
    """An entry is recorded earlier than the entry before it (the ledger refuses that)."""
    BLOCK_MISMATCH = "block_mismatch"
    """A value block's stored leaves do not give the root and count its entry commits to."""
    BLOCK_MISSING = "block_missing"
    """An entry commits to a value block whose leaves are not stored."""
    BLOCK_UNEXPECTED = "block_unexpected"
    """Value-block leaves are stored for an entry that commits to no block (or for no entry)."""


@dataclass
class VerificationReport:
    """The outcome of a verification: never just a bool."""

    ok: bool
    entries: int
    tree_size: int
    root: str
    first_bad_seq: int | None = None
    problem: Problem | None = None
    detail: str = ""
    chain_head: str = ""
    checkpoint_size: int | None = None
    checkpoint_key_id: str | None = None
    checkpoints_checked: int = 0
    heads_checked: int = 0
    signed_size: int | None = None
    """Entries covered by a valid signed tree head; ``None`` when heads were not checked."""
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON form used by ``gxpmes audit verify --json``."""
        data = asdict(self)
        data["problem"] = None if self.problem is None else str(self.problem)
        return data

    def summary(self) -> str:
        """One human-readable line."""
        if self.ok:
            cp = (
                f", consistent with checkpoint of size {self.checkpoint_size} "
                f"(key {self.checkpoint_key_id})"
                if self.checkpoint_size is not None
                else ""
            )
            if self.checkpoint_size is None and self.checkpoints_checked:
                cp = f", consistent with {self.checkpoints_checked} trusted checkpoint(s)"
            heads = (
                f", every entry under a signed tree head ({self.heads_checked} checked)"
                if self.signed_size is not None
                else ""
            )
            return f"INTACT: {self.entries} entries, root {self.root}{cp}{heads}"
        where = f" at seq {self.first_bad_seq}" if self.first_bad_seq is not None else ""
        return f"PROBLEM {self.problem}{where}: {self.detail}"


def check_checkpoint_signature(
    opened: OpenedCheckpoint, trusted: Sequence[TrustedKey]
) -> tuple[Problem | None, str, str | None]:
    """Check a checkpoint's signatures against trusted keys.

    Returns ``(problem or None, detail, key id that vouched)``. One valid
    signature by a trusted key valid at the checkpoint's time suffices.
    """
    by_hash = {(k.verifier.name, k.verifier.key_hash): k for k in trusted}
    worst: tuple[Problem, str, str | None] = (
        Problem.UNKNOWN_KEY,
        "checkpoint is signed by no trusted key ("
        + ", ".join(f"{s.name}/{s.key_id}" for s in opened.signatures)
        + ")",
        None,
    )
    for signature in opened.signatures:
        key = by_hash.get((signature.name, signature.key_hash))
        if key is None:
            continue
        if not key.verifier.verify(opened.text.encode("utf-8"), signature.signature):
            worst = (Problem.BAD_SIGNATURE, f"signature by key {key.key_id} is invalid", key.key_id)
            continue
        reason = key.problem_at(opened.checkpoint.timestamp)
        if reason is not None:
            if worst[0] is Problem.UNKNOWN_KEY:
                worst = (Problem.REVOKED_KEY, reason, key.key_id)
            continue
        return None, "", key.key_id
    return worst


_PREV_MARK = b',"prev":"'
_SEQ_MARK = b',"seq":'


def _chain_fields(canonical: bytes) -> tuple[int, bytes]:
    """Fast read of ``seq`` and ``prev`` from canonical entry bytes.

    In RFC 8785 form the top-level members are sorted, so ``prev`` and
    ``seq`` follow ``old``/``new``; a quote inside any JSON string is escaped,
    so the *last* unescaped ``,"prev":"`` is the top-level member.
    """
    at = canonical.rfind(_PREV_MARK)
    seq_at = canonical.rfind(_SEQ_MARK)
    if at < 0 or seq_at < at or not canonical.endswith(b',"v":1}'):
        raise ValueError("entry lacks its prev/seq members")
    start = at + len(_PREV_MARK)
    prev = bytes.fromhex(canonical[start : start + 64].decode("ascii"))
    seq = int(canonical[seq_at + len(_SEQ_MARK) : -len(b',"v":1}')])
    return seq, prev


def _deep_chain_fields(canonical: bytes) -> tuple[int, bytes]:
    data = json.loads(canonical)
    seq, prev = data["seq"], bytes.fromhex(data["prev"])
    if type(seq) is not int:
        raise ValueError("seq is not an integer")
    return seq, prev


_STAMP_MARK = b'"recorded_at":"'
_STAMP_LEN = len(b"2000-01-01T00:00:00.000000Z")


def _time_went_back(recorded: bytes, last_time: bytes) -> bool:
    """Whether an entry's recorded time is earlier than the entry before's (11.10(e)).

    Both are fixed-width UTC text, so text order is time order. One named
    function for the single scan and the stitching of parallel ranges, so the
    control is one thing (and can be removed as one thing by the validation
    suite's remove-the-control proofs).
    """
    return recorded < last_time


def _recorded_at(canonical: bytes, seq: int) -> bytes:
    """The entry's ``recorded_at`` as fixed-width UTC text (text order is time order).

    It sits just before the ``seq`` member; any other layout is parsed as JSON
    and normalised.
    """
    end = len(canonical) - len(b',"seq":%d,"v":1}' % seq) - 1
    start = end - _STAMP_LEN
    if canonical[end : end + 1] == b'"' and canonical[start - 15 : start] == _STAMP_MARK:
        return canonical[start:end]
    value = datetime.fromisoformat(json.loads(canonical)["recorded_at"])
    return format_timestamp(value).encode("ascii")


RowTuple = tuple[int, bytes, bytes, bytes]
"""A stored entry: ``(seq, canonical bytes, leaf hash, tree hashes)``."""

KeySpec = TrustedKey | NoteVerifier | Sequence[TrustedKey | NoteVerifier]
"""Keys to trust: one key, a bare verifier (trusted without a validity interval), or several."""


HeadTuple = tuple[int, str]
"""A stored tree head: ``(tree size, signed note)``."""

HEADS_NOT_CHECKED = (
    "signed tree heads not checked (no head key given): rows inserted into the database "
    "without the ledger would not be detected"
)


class _HeadScan:
    """Checks stored tree heads, in order, as the row scan reaches their sizes."""

    def __init__(
        self, heads: Iterable[HeadTuple], keys: Sequence[TrustedKey], origin: str | None
    ) -> None:
        self._heads = iter(heads)
        self._keys = keys
        self._origin = origin
        self._last = -1
        self.checked = 0
        self.signed_size = 0
        self.next_size = -1
        self._note = ""
        self._advance()

    def _advance(self) -> None:
        head = next(self._heads, None)
        self.next_size, self._note = (-1, "") if head is None else (int(head[0]), head[1])

    def _open(self, size: int) -> OpenedCheckpoint | tuple[Problem, str]:
        try:
            opened = open_checkpoint(self._note)
        except CheckpointError as exc:
            return Problem.HEAD_UNTRUSTED, f"tree head stored for size {size} is malformed: {exc}"
        problem, detail, _ = check_checkpoint_signature(opened, self._keys)
        if problem is not None:
            return Problem.HEAD_UNTRUSTED, f"tree head for size {size}: {problem}: {detail}"
        return opened

    def check(self, size: int, root: bytes, chain_head: bytes) -> tuple[Problem, str] | None:
        """Check the heads stored for ``size``, the log's root and chain head at that size."""
        while self.next_size == size:
            if size <= self._last:
                return Problem.HEAD_INCONSISTENT, f"two tree heads are stored for size {size}"
            self._last = size
            opened = self._open(size)
            if isinstance(opened, tuple):
                return opened
            head = opened.checkpoint
            if head.tree_size != size:
                return (
                    Problem.HEAD_INCONSISTENT,
                    f"tree head stored for size {size} is signed for size {head.tree_size}",
                )
            if self._origin is not None and head.origin != self._origin:
                return (
                    Problem.HEAD_INCONSISTENT,
                    f"tree head for size {size} is for log {head.origin!r}, not {self._origin!r}",
                )
            if head.root != root or head.chain_head != chain_head:
                return (
                    Problem.HEAD_INCONSISTENT,
                    f"signed tree head for size {size} does not match the log's first {size} "
                    "entries: they were changed after the ledger signed them",
                )
            self.checked += 1
            self.signed_size = size
            self._advance()
        if 0 <= self.next_size < size:
            return (
                Problem.HEAD_INCONSISTENT,
                f"tree head for size {self.next_size} is stored after the head for size {size}",
            )
        return None

    def finish(self, entries: int) -> tuple[Problem, int | None, str] | None:
        """After the scan: heads beyond the log, then entries no signed head covers."""
        if self.next_size > entries:
            opened = self._open(self.next_size)
            if isinstance(opened, tuple):
                return opened[0], None, opened[1]
            return (
                Problem.TRUNCATED,
                entries,
                f"a signed tree head vouches for {self.next_size} entries but the log holds "
                f"{entries}: entries were removed",
            )
        if self.signed_size < entries:
            return (
                Problem.UNSIGNED_ENTRIES,
                self.signed_size,
                f"{seq_span(self.signed_size, entries)} under no signed tree head: not appended "
                "by the ledger (forged), or by a ledger without its head key",
            )
        return None


# ------------------------------------------------------------------ the scan
#
# One loop checks rows, for the single-process verifier (the whole log) and
# for each worker of the parallel one (one range of whole Merkle subtrees).
# A finding's place in the scan is ``(position, stage)``: the seq of the row
# being checked (for a tree-head check, the last entry it covers) and which of
# that row's checks found it, in the order the loop makes them. The parallel
# verifier compares these places to report exactly the problem the single scan
# stops at.

_GAP, _HASH, _CHAIN, _TREE, _TIME, _EXTRA, _MARK = range(7)
_NO_CAP = 1 << 64
"""Range size of the single scan: no range, every subtree is completed in the loop."""
_ROW_ERRORS = (ValueError, KeyError, TypeError, UnicodeDecodeError)


@dataclass(slots=True)
class _Finding:
    at: tuple[int, int]
    problem: Problem
    seq: int | None
    detail: str


@dataclass(slots=True)
class _ScanState:
    """Where a scan starts and, afterwards, where it stopped."""

    expected: int
    prev: bytes | None
    """Leaf hash of entry ``expected - 1``; ``None`` when it is another range's."""
    last_time: bytes = b""
    frontier: list[bytes] = field(default_factory=list)
    finding: _Finding | None = None
    first_prev: bytes | None = None
    """With ``prev`` unknown: the ``prev`` the first entry was written with."""
    first_blamed: int = 0
    pending: bytes | None = None
    """Stored hashes of the range's last entry above the range's own subtree."""


def _as_bytes_value(value: Any) -> bytes:
    # e.g. TEXT written over the BLOB by hand
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _chain_break(seq: int, blamed: int, written_prev: bytes, prev: bytes) -> _Finding:
    return _Finding(
        (seq, _CHAIN),
        Problem.CHAIN_BREAK,
        blamed,
        f"entry {seq} links to {written_prev.hex()[:16]}…, but entry {seq - 1} "
        f"hashes to {prev.hex()[:16]}…",
    )


def _link_finding(
    canonical: bytes,
    seq: int,
    leaf: bytes,
    tree_stored: bytes,
    prev: bytes | None,
    read_chain: Callable[[bytes], tuple[int, bytes]],
    state: _ScanState,
) -> _Finding | None:
    """The slow path of the chain check: parse ``seq`` and ``prev`` and compare."""
    try:
        written_seq, written_prev = read_chain(canonical)
    except _ROW_ERRORS as exc:
        return _Finding(
            (seq, _CHAIN),
            Problem.MALFORMED_ENTRY,
            seq,
            f"entry {seq} is not a canonical entry: {exc}",
        )
    if written_seq != seq:
        return _Finding(
            (seq, _CHAIN),
            Problem.SEQ_MISMATCH,
            seq,
            f"entry stored as {seq} was written as {written_seq}",
        )
    if prev is not None and written_prev == prev:
        return None
    # Entry seq does not link to entry seq-1: which of the two changed?
    # For odd seq, its stored level-1 hash was built from the original
    # hash of seq-1; if that agrees with seq's link, seq-1 was altered.
    blamed = seq
    if seq & 1 and tree_stored[:32] == node_hash(written_prev, leaf):
        blamed = seq - 1
    if prev is None:  # entry seq-1 is another range's: the parent compares
        state.first_prev, state.first_blamed = written_prev, blamed
        return None
    return _chain_break(seq, blamed, written_prev, prev)


BlockTuple = tuple[int, bytes]
"""A stored value block: ``(entry seq, packed leaves)`` (:mod:`audit.blocks`)."""


def _block_check(blocks: BlockScan) -> Callable[[int, bytes], _Finding | None]:
    """The scan's per-entry check of value blocks (``entry_check``)."""
    check = blocks.check

    def entry_check(seq: int, canonical: bytes) -> _Finding | None:
        following = blocks.next_seq
        if (following > seq or following < 0) and b'"block":' not in canonical:
            return None  # no block here, none stored before it: the common case
        found = check(seq, canonical)
        return None if found is None else _Finding((seq, _EXTRA), Problem(found[0]), *found[1:])

    return entry_check


def _blocks_left(blocks: BlockScan, entries: int) -> _Finding | None:
    """Leaves stored past the last entry scanned."""
    found = blocks.finish(entries)
    if found is None:
        return None
    # After everything the scan checks at its last entry, tree-head marks included.
    return _Finding((entries - 1, _MARK + 1), Problem(found[0]), found[1], found[2])


def _scan(
    rows: Iterable[RowTuple],
    state: _ScanState,
    *,
    deep: bool,
    next_mark: Callable[[int], int],
    at_mark: Callable[[int, list[bytes], bytes], _Finding | None],
    cap: int = _NO_CAP,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
    entry_check: Callable[[int, bytes], _Finding | None] | None = None,
) -> None:
    """Check ``rows`` in seq order from ``state.expected``, stopping at the first finding.

    Per entry, in this order: its seq is the next one (gap), its bytes hash
    to its stored leaf hash, it links to the entry before and was written
    with its seq, the stored interior hashes of the subtrees it completes
    match the ones recomputed from the frontier, and its recorded time is
    not earlier than the entry before's. After an entry whose size
    ``next_mark`` named, ``at_mark(size, frontier, leaf)`` checks the root.

    ``cap`` is the size of the range being checked (a power of two it
    starts at a multiple of): the range's last entry completes subtrees up
    to that size here, and leaves its stored hashes above in ``pending``.

    ``entry_check(seq, canonical)``, when given, is a further check of each
    entry after its own (place ``(seq, _EXTRA)``). A check that keeps state
    across entries must be split by range for the parallel verifier.
    """
    sha256 = hashlib.sha256
    hexlify = binascii.hexlify
    read_chain = _deep_chain_fields if deep else _chain_fields
    went_back = _time_went_back
    frontier = state.frontier
    pop = frontier.pop
    push = frontier.append
    prev = state.prev
    prev_hex = b"" if prev is None else hexlify(prev)
    last_time = state.last_time
    expected = state.expected
    mark = next_mark(expected)
    finding: _Finding | None = None
    for seq, canonical, leaf_stored, tree_stored in rows:
        if seq != expected:
            finding = _Finding(
                (expected, _GAP),
                Problem.GAP,
                expected,
                f"entry {expected} is missing (next stored is {seq})",
            )
            break
        if canonical.__class__ is not bytes:
            canonical = _as_bytes_value(canonical)
        leaf = sha256(b"\x00" + canonical).digest()
        if leaf != leaf_stored:
            finding = _Finding(
                (seq, _HASH),
                Problem.HASH_MISMATCH,
                seq,
                f"entry {seq} does not hash to its stored hash",
            )
            break
        # Fast path: the link and the seq sit at known places at the end of
        # the canonical bytes (see _chain_fields); any doubt takes the slow path.
        tail = b',"seq":%d,"v":1}' % seq
        at = canonical.rfind(_PREV_MARK, -200)
        if deep or not (
            at >= 0 and canonical[at + 9 : at + 73] == prev_hex and canonical.endswith(tail)
        ):
            finding = _link_finding(canonical, seq, leaf, tree_stored, prev, read_chain, state)
            if finding is not None:
                break
        if seq & 1:  # an odd record completes one subtree or more
            h = sha256(b"\x01" + pop() + leaf).digest()
            if seq & 2:
                parts = [h]
                bit = 2
                while seq & bit and bit < cap:
                    h = sha256(b"\x01" + pop() + h).digest()
                    parts.append(h)
                    bit <<= 1
                interior = b"".join(parts)
                if seq & bit:  # the range's last entry: its higher subtrees span ranges
                    state.pending = tree_stored[len(interior) :]
                    tree_stored = tree_stored[: len(interior)]
            else:
                interior = h
            push(h)
        else:  # even records complete no subtree: the common half, kept cheap
            push(leaf)
            interior = b""
        if interior != tree_stored:
            finding = _Finding(
                (seq, _TREE),
                Problem.TREE_HASH_MISMATCH,
                seq,
                f"stored Merkle hashes of entry {seq} do not match the entries before it",
            )
            break
        # The recorded time sits just before the seq member (see _recorded_at).
        end = len(canonical) - len(tail) - 1
        start = end - _STAMP_LEN
        if canonical[end : end + 1] == b'"' and canonical.startswith(_STAMP_MARK, start - 15):
            recorded = canonical[start:end]
        else:
            try:
                recorded = _recorded_at(canonical, seq)
            except _ROW_ERRORS as exc:
                finding = _Finding(
                    (seq, _TIME),
                    Problem.MALFORMED_ENTRY,
                    seq,
                    f"entry {seq} has no valid recorded time: {exc}",
                )
                break
        if went_back(recorded, last_time):
            finding = _Finding(
                (seq, _TIME),
                Problem.TIME_REVERSED,
                seq,
                f"entry {seq} is recorded at {recorded.decode()}, earlier than entry {seq - 1} "
                f"({last_time.decode()}): time went backwards",
            )
            break
        if entry_check is not None:
            finding = entry_check(seq, canonical)
            if finding is not None:
                break
        last_time = recorded
        prev = leaf
        prev_hex = hexlify(leaf)
        expected += 1
        if expected == mark:
            finding = at_mark(expected, frontier, leaf)
            if finding is not None:
                break
            mark = next_mark(expected)
        if progress is not None and expected % progress_every == 0:
            progress(expected)
    state.expected = expected
    state.prev = prev
    state.last_time = last_time
    state.finding = finding


class _Plan:
    """What a verification checks besides the rows: checkpoint, anchors, tree heads.

    Made before the scan (checking what needs no rows), asked at every size
    where a checkpoint or head wants the root, and finishing the report.
    """

    def __init__(
        self,
        *,
        checkpoint: OpenedCheckpoint | None,
        trusted_keys: Sequence[TrustedKey],
        origin: str | None,
        heads: Iterable[HeadTuple] | None,
        head_keys: Sequence[TrustedKey],
        anchors: Sequence[tuple[str, Checkpoint]],
    ) -> None:
        self.cp: Checkpoint | None = checkpoint.checkpoint if checkpoint else None
        self.report = VerificationReport(
            ok=True, entries=0, tree_size=0, root=EMPTY_TREE_HASH.hex()
        )
        self.scan = _HeadScan(heads, head_keys, origin) if heads is not None else None
        if self.scan is None:
            self.report.warnings.append(HEADS_NOT_CHECKED)
        self.failed = False
        self.cp_size = self.cp.tree_size if self.cp is not None else -1
        self.cp_head = (self.cp.root, self.cp.chain_head) if self.cp is not None else None
        self.anchored: dict[int, list[tuple[str, Checkpoint]]] = {}
        self.anchor_sizes: list[int] = []
        self._prepare(checkpoint, trusted_keys, origin, anchors)

    def _prepare(
        self,
        checkpoint: OpenedCheckpoint | None,
        trusted_keys: Sequence[TrustedKey],
        origin: str | None,
        anchors: Sequence[tuple[str, Checkpoint]],
    ) -> None:
        cp, report, scan = self.cp, self.report, self.scan
        if checkpoint is not None:
            assert cp is not None
            report.checkpoint_size = cp.tree_size
            if origin is not None and cp.origin != origin:
                self.fail(
                    Problem.CHECKPOINT_INCONSISTENT,
                    None,
                    f"checkpoint is for log {cp.origin!r}, this log is {origin!r}",
                )
                return
            problem, detail, key_id = check_checkpoint_signature(checkpoint, trusted_keys)
            report.checkpoint_key_id = key_id
            if problem is not None:
                self.fail(problem, None, detail)
                return
            report.checkpoints_checked = 1
        if scan is not None and scan.next_size == 0:
            found = scan.check(0, EMPTY_TREE_HASH, GENESIS_PREV)
            if found is not None:
                self.fail(found[0], None, found[1])
                return
        for label, anchor in anchors:
            if origin is not None and anchor.origin != origin:
                self.fail(
                    Problem.CHECKPOINT_INCONSISTENT,
                    None,
                    f"checkpoint {label} is for log {anchor.origin!r}, this log is {origin!r}",
                )
                return
            self.anchored.setdefault(anchor.tree_size, []).append((label, anchor))
        self.anchor_sizes = sorted(s for s in self.anchored if s > 0)

    def fail(self, problem: Problem, seq: int | None, detail: str) -> VerificationReport:
        report = self.report
        report.ok = False
        report.problem = problem
        report.first_bad_seq = seq
        report.detail = detail
        self.failed = True
        return self.done()

    def done(self) -> VerificationReport:
        if self.scan is not None:
            self.report.heads_checked = self.scan.checked
            self.report.signed_size = self.scan.signed_size
        return self.report

    def next_mark(self, after: int) -> int:
        """The next size at which a checkpoint or a head wants the root: -1 for none."""
        sizes = [s for s in (self.cp_size, self.scan.next_size if self.scan else -1) if s > after]
        at = bisect.bisect_right(self.anchor_sizes, after)
        if at < len(self.anchor_sizes):
            sizes.append(self.anchor_sizes[at])
        return min(sizes, default=-1)

    def mark_sizes(self, head_sizes: Iterable[int]) -> list[int]:
        """Every size :meth:`next_mark` will name, given the stored heads' sizes."""
        sizes = {s for s in head_sizes if s > 0} if self.scan is not None else set()
        sizes.update(self.anchor_sizes)
        if self.cp_size > 0:
            sizes.add(self.cp_size)
        return sorted(sizes)

    def at_mark(self, expected: int, frontier: list[bytes], leaf: bytes) -> _Finding | None:
        return self.check_root(expected, frontier_root(frontier), leaf)

    def check_root(self, expected: int, root_here: bytes, leaf: bytes) -> _Finding | None:
        """Check the checkpoint, anchors and heads for size ``expected``."""
        at = (expected - 1, _MARK)
        if expected == self.cp_size and (root_here, leaf) != self.cp_head:
            return _Finding(
                at,
                Problem.CHECKPOINT_INCONSISTENT,
                None,
                f"the first {self.cp_size} entries no longer have the checkpointed root: "
                "history before the checkpoint was rewritten",
            )
        for label, anchor in self.anchored.get(expected, ()):
            if (root_here, leaf) != (anchor.root, anchor.chain_head):
                return _Finding(
                    at,
                    Problem.CHECKPOINT_INCONSISTENT,
                    None,
                    f"the first {expected} entries no longer have the root of checkpoint "
                    f"{label}: history before it was rewritten",
                )
            self.report.checkpoints_checked += 1
        if self.scan is not None:
            found = self.scan.check(expected, root_here, leaf)
            if found is not None:
                return _Finding(at, found[0], None, found[1])
        return None

    def finish(
        self,
        expected: int,
        root: bytes,
        chain_head: bytes,
        progress: Callable[[int], None] | None,
    ) -> VerificationReport:
        """The report after a scan of ``expected`` entries that found nothing wrong."""
        report, cp = self.report, self.cp
        report.entries = expected
        report.tree_size = expected
        report.root = root.hex()
        report.chain_head = chain_head.hex() if expected else ""
        if progress is not None:
            progress(expected)
        if cp is not None and expected < cp.tree_size:
            return self.fail(
                Problem.TRUNCATED,
                expected,
                f"the log holds {expected} entries but a checkpoint vouches for {cp.tree_size}",
            )
        if self.anchor_sizes and expected < self.anchor_sizes[-1]:
            label = self.anchored[self.anchor_sizes[-1]][0][0]
            return self.fail(
                Problem.TRUNCATED,
                expected,
                f"the log holds {expected} entries but checkpoint {label} vouches for "
                f"{self.anchor_sizes[-1]}: entries were removed",
            )
        if self.scan is not None:
            outcome = self.scan.finish(expected)
            if outcome is not None:
                return self.fail(*outcome)
        return self.done()


def verify_rows(
    rows: Iterable[RowTuple],
    *,
    checkpoint: OpenedCheckpoint | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100_000,
    deep: bool = False,
    heads: Iterable[HeadTuple] | None = None,
    head_keys: Sequence[TrustedKey] = (),
    anchors: Sequence[tuple[str, Checkpoint]] = (),
    blocks: Iterable[BlockTuple] | None = None,
) -> VerificationReport:
    """Verify stored rows ``(seq, canonical, leaf_hash, tree_hashes)`` in seq order.

    ``blocks`` are the stored value blocks ``(seq, packed leaves)`` in seq
    order: each block's root and count are recomputed and checked against
    its entry's ``block`` member (:mod:`audit.blocks`).

    ``anchors`` are further checkpoints, already trusted by the caller
    (:mod:`audit.anchoring.verify`), each named by where it came from: the log
    must hold each one's size and have its root and chain head there.

    ``deep`` parses every entry as JSON (slower) instead of reading its
    ``seq``/``prev`` members in place. ``heads`` are the stored tree heads
    ``(tree size, note)`` in size order, checked against ``head_keys`` and
    against the root and chain head recomputed at their sizes; then every
    entry must be under a valid head. With ``heads=None`` they are not
    checked and the report carries a warning saying so.
    """
    plan = _Plan(
        checkpoint=checkpoint,
        trusted_keys=trusted_keys,
        origin=origin,
        heads=heads,
        head_keys=head_keys,
        anchors=anchors,
    )
    if plan.failed:
        return plan.report
    state = _ScanState(expected=0, prev=GENESIS_PREV)
    block_scan = None if blocks is None else BlockScan(blocks)
    _scan(
        rows,
        state,
        deep=deep,
        next_mark=plan.next_mark,
        at_mark=plan.at_mark,
        progress=progress,
        progress_every=progress_every,
        entry_check=None if block_scan is None else _block_check(block_scan),
    )
    if state.finding is None and block_scan is not None:
        state.finding = _blocks_left(block_scan, state.expected)
    if state.finding is not None:
        return plan.fail(state.finding.problem, state.finding.seq, state.finding.detail)
    assert state.prev is not None
    return plan.finish(state.expected, frontier_root(state.frontier), state.prev, progress)


# ------------------------------------------------------- parallel verification
#
# The log is cut into ranges of ``size`` entries, ``size`` a power of two, each
# starting at a multiple of it: every range is one complete Merkle subtree
# (the last may be shorter). A worker process scans its range with the same
# loop as above, from an empty frontier: every interior hash an entry of the
# range stores is then recomputed inside the range, except the hashes the
# range's last entry stores above the range's own subtree, which it hands on
# (``pending``). What a worker cannot know — the hash and time of the entry
# before its range, the subtrees left of it — the parent supplies while it
# stitches the ranges together in order.

_ROWS_SQL = "SELECT seq, canonical, leaf_hash, tree_hashes FROM audit_entry"
_MIN_RANGE = 1 << 18
"""Smallest automatic range; a log under two of them is verified in one process."""
_START_METHOD = "forkserver"
"""How worker processes start (a benchmark uses "spawn" to count their CPU time as its own)."""


@dataclass(frozen=True, slots=True)
class _Source:
    """How a worker reads the rows the parent sees: an SQLite file or a PostgreSQL snapshot."""

    kind: str
    target: str
    snapshot: str | None = None


@dataclass(frozen=True, slots=True)
class _RangeTask:
    source: _Source | None
    index: int
    start: int
    end: int
    size: int
    marks: tuple[int, ...]
    deep: bool
    last: bool = False
    """The log's last range: it also reads value blocks stored past its end."""


@dataclass(slots=True)
class _RangeResult:
    first_seq: int | None
    state: _ScanState
    first_time: bytes | None
    marks: list[tuple[int, bytes, bytes]]


def _check_range(
    rows: Iterable[RowTuple], task: _RangeTask, blocks: Iterable[BlockTuple] | None = None
) -> _RangeResult:
    """A worker's scan of one range: findings, its subtree roots and its boundary values.

    ``blocks`` are the value blocks stored in the range (the last range: and after it).
    """
    it = iter(rows)
    block_scan = None if blocks is None else BlockScan(blocks)
    first = next(it, None)
    state = _ScanState(expected=task.start, prev=GENESIS_PREV if task.start == 0 else None)
    marks = task.marks
    seen: list[tuple[int, bytes, bytes]] = []

    def next_mark(after: int) -> int:
        at = bisect.bisect_right(marks, after)
        return marks[at] if at < len(marks) else -1

    def at_mark(size: int, frontier: list[bytes], leaf: bytes) -> _Finding | None:
        seen.append((size, frontier_root(frontier), leaf))
        return None

    first_time = None
    if first is not None:
        _scan(
            itertools.chain((first,), it),
            state,
            deep=task.deep,
            next_mark=next_mark,
            at_mark=at_mark,
            cap=task.size,
            entry_check=None if block_scan is None else _block_check(block_scan),
        )
        if state.finding is None and block_scan is not None and task.last:
            state.finding = _blocks_left(block_scan, state.expected)
        finding = state.finding
        if (
            task.start > 0
            and first[0] == task.start
            and (finding is None or finding.at > (task.start, _TIME))
        ):
            canonical = first[1] if first[1].__class__ is bytes else _as_bytes_value(first[1])
            first_time = _recorded_at(canonical, task.start)  # the scan read it already
    return _RangeResult(None if first is None else first[0], state, first_time, seen)


def _sqlite_rows(path: str, task: _RangeTask) -> Generator[RowTuple, None, None]:
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        cursor = conn.cursor()
        cursor.arraysize = 10_000
        cursor.execute(f"{_ROWS_SQL} WHERE seq >= ? AND seq < ? ORDER BY seq", _row_bounds(task))
        yield from cursor
    finally:
        conn.close()


@contextmanager
def _snapshot_connection(source: _Source) -> Iterator[Any]:
    """A read-only psycopg connection in the parent's exported snapshot.

    Every worker then sees exactly the rows the parent sees, whatever is
    appended meanwhile.
    """
    import psycopg

    with psycopg.connect(source.target) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute(f"SET TRANSACTION SNAPSHOT '{source.snapshot}'")
        yield conn


def _row_bounds(task: _RangeTask) -> tuple[int, int]:
    # The first range also takes any (tampered) row below seq 0.
    return (-(1 << 63) if task.index == 0 else task.start, task.end)


def _postgres_rows(source: _Source, task: _RangeTask) -> Generator[RowTuple, None, None]:
    with (
        _snapshot_connection(source) as conn,
        conn.cursor(name="gxpmes_verify_range") as cursor,
    ):
        cursor.itersize = 10_000
        cursor.execute(f"{_ROWS_SQL} WHERE seq >= %s AND seq < %s ORDER BY seq", _row_bounds(task))
        for seq, canonical, leaf, tree in cursor:
            yield seq, bytes(canonical), bytes(leaf), bytes(tree)


_BLOCKS_SQL = (
    "SELECT seq, leaves FROM audit_block WHERE seq >= {mark} AND seq < {mark} ORDER BY seq"
)


def _block_bounds(task: _RangeTask) -> tuple[int, int]:
    # As the rows, and the last range also past its end (a block without its entry).
    low, end = _row_bounds(task)
    return (low, (1 << 63) - 1 if task.last else end)


def _sqlite_blocks(path: str, task: _RangeTask) -> Generator[BlockTuple, None, None]:
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_block'").fetchone():
            cursor = conn.cursor()
            cursor.arraysize = 64
            yield from cursor.execute(_BLOCKS_SQL.format(mark="?"), _block_bounds(task))
    finally:
        conn.close()


def _postgres_blocks(source: _Source, task: _RangeTask) -> Generator[BlockTuple, None, None]:
    with _snapshot_connection(source) as conn:
        if conn.execute("SELECT to_regclass('audit_block')").fetchone() == (None,):
            return
        with conn.cursor(name="gxpmes_verify_blocks") as cursor:
            cursor.itersize = 64
            cursor.execute(_BLOCKS_SQL.format(mark="%s"), _block_bounds(task))
            yield from cursor  # as stored: BlockScan names a value that is not bytes


def _verify_range(task: _RangeTask) -> _RangeResult:
    """Worker process entry point: read the range with a connection of its own and scan it."""
    source = task.source
    assert source is not None
    if source.kind == "sqlite":
        rows = _sqlite_rows(source.target, task)
        blocks = _sqlite_blocks(source.target, task)
    else:
        rows = _postgres_rows(source, task)
        blocks = _postgres_blocks(source, task)
    try:
        return _check_range(rows, task, blocks)
    finally:
        rows.close()
        blocks.close()


def _fold(frontier: Sequence[bytes], h: bytes) -> bytes:
    """Root of the tree whose frontier is ``frontier`` followed by a subtree fold ``h``."""
    for left in reversed(frontier):
        h = node_hash(left, h)
    return h


def _stitch(
    plan: _Plan,
    tasks: Sequence[_RangeTask],
    results: Iterator[_RangeResult],
    progress: Callable[[int], None] | None,
) -> VerificationReport:
    """Join range results in order into the single scan's report (see docs/audit.md)."""
    frontier: list[bytes] = []  # whole ranges: subtrees of size ``tasks[0].size`` and up
    prev = GENESIS_PREV
    last_time = b""
    expected = 0
    pending_results: list[_RangeResult] = []
    for task in tasks:
        result = pending_results.pop(0) if pending_results else next(results)
        state = result.state
        # Findings and root checks in this range, ordered by their place in the scan.
        checks: list[_Finding | tuple[int, bytes, bytes]] = []
        if state.finding is not None:
            checks.append(state.finding)
        elif state.expected < task.end:  # rows missing at the end of the range
            later = None
            while later is None:
                ahead = next(results, None)
                if ahead is None:
                    break
                pending_results.append(ahead)
                later = ahead.first_seq
            if later is not None:  # else nothing after it: the log ends here
                gap = _Finding(
                    (state.expected, _GAP),
                    Problem.GAP,
                    state.expected,
                    f"entry {state.expected} is missing (next stored is {later})",
                )
                checks.append(gap)
        if state.first_prev is not None and state.first_prev != prev:
            link = _chain_break(task.start, state.first_blamed, state.first_prev, prev)
            checks.append(link)
        if result.first_time is not None and _time_went_back(result.first_time, last_time):
            reversed_at = _Finding(
                (task.start, _TIME),
                Problem.TIME_REVERSED,
                task.start,
                f"entry {task.start} is recorded at {result.first_time.decode()}, earlier than "
                f"entry {task.start - 1} ({last_time.decode()}): time went backwards",
            )
            checks.append(reversed_at)
        full = task.end - task.start == task.size
        whole = full and state.expected == task.end
        last_seq = task.end - 1
        merged = list(frontier)
        if whole or (
            full
            and state.finding is not None
            and state.finding.at[0] == last_seq
            and state.finding.at[1] > _TREE
        ):  # the range's last entry completed it: join it to the whole ranges before
            upper = b"".join(extend_frontier(merged, task.index, state.frontier[-1]))
            if upper != (state.pending or b""):
                seq = task.end - 1
                tree = _Finding(
                    (seq, _TREE),
                    Problem.TREE_HASH_MISMATCH,
                    seq,
                    f"stored Merkle hashes of entry {seq} do not match the entries before it",
                )
                checks.append(tree)
        for size, fold, leaf in result.marks:
            checks.append((size, _fold(frontier, fold), leaf))
        # Stable: a worker's own finding comes first among findings at one place.
        checks.sort(key=lambda c: c.at if isinstance(c, _Finding) else (c[0] - 1, _MARK))
        for check in checks:
            found = check if isinstance(check, _Finding) else plan.check_root(*check)
            if found is not None:
                return plan.fail(found.problem, found.seq, found.detail)
        if state.expected > task.start:
            assert state.prev is not None
            prev, last_time = state.prev, state.last_time
        expected = state.expected
        if not whole:  # the log's last range, or rows missing up to the end of the log
            return plan.finish(expected, frontier_root(frontier + state.frontier), prev, progress)
        frontier = merged
        if progress is not None:
            progress(expected)
    return plan.finish(expected, frontier_root(frontier), prev, progress)


def _plan_ranges(
    span: int, size: int, marks: Sequence[int], source: _Source | None, deep: bool
) -> list[_RangeTask]:
    tasks = []
    for index, start in enumerate(range(0, span, size)):
        end = min(start + size, span)
        lo, hi = bisect.bisect_right(marks, start), bisect.bisect_right(marks, end)
        tasks.append(
            _RangeTask(source, index, start, end, size, tuple(marks[lo:hi]), deep, end == span)
        )
    return tasks


def _range_size(span: int, jobs: int) -> int:
    """A power of two giving about four ranges per worker, and at least ``_MIN_RANGE``."""
    target = max(span // (4 * jobs), _MIN_RANGE)
    return 1 << (target.bit_length() - 1)


def _run_ranges(
    plan: _Plan,
    span: int,
    head_sizes: Sequence[int],
    *,
    size: int,
    jobs: int,
    source: _Source,
    deep: bool,
    progress: Callable[[int], None] | None,
) -> VerificationReport:
    tasks = _plan_ranges(span, size, plan.mark_sizes(head_sizes), source, deep)
    # Workers fork from a clean server process: no inherited connections or threads,
    # and no interpreter start per worker after the first verification.
    context = multiprocessing.get_context(_START_METHOD)
    if _START_METHOD == "forkserver":
        context.set_forkserver_preload(["audit.verify"])
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context)
    try:
        return _stitch(plan, tasks, pool.map(_verify_range, tasks), progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _verify_rows_in_ranges(
    rows: Sequence[RowTuple],
    size: int,
    *,
    checkpoint: OpenedCheckpoint | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    origin: str | None = None,
    deep: bool = False,
    heads: Sequence[HeadTuple] | None = None,
    head_keys: Sequence[TrustedKey] = (),
    anchors: Sequence[tuple[str, Checkpoint]] = (),
) -> VerificationReport:
    """The parallel verifier's ranges and stitching, run in this process over a row list.

    For tests: it splits ``rows`` as the workers' queries would and runs the
    same range scan and stitching as :func:`verify_ledger` with ``jobs`` > 1.
    """
    plan = _Plan(
        checkpoint=checkpoint,
        trusted_keys=trusted_keys,
        origin=origin,
        heads=heads,
        head_keys=head_keys,
        anchors=anchors,
    )
    if plan.failed:
        return plan.report
    last = max((row[0] for row in rows), default=-1)
    marks = plan.mark_sizes([s for s, _note in heads or ()])
    tasks = _plan_ranges(last + 1, size, marks, None, deep)

    def in_range(task: _RangeTask) -> list[RowTuple]:
        low, end = _row_bounds(task)
        return [row for row in rows if low <= row[0] < end]

    return _stitch(plan, tasks, (_check_range(in_range(t), t) for t in tasks), None)


def verify_ledger(
    ledger: Any,
    *,
    checkpoint: str | OpenedCheckpoint | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    progress: Callable[[int], None] | None = None,
    deep: bool = False,
    head_keys: KeySpec | None = None,
    jobs: int = 1,
    range_size: int | None = None,
) -> VerificationReport:
    """Verify a :class:`audit.ledger.Ledger` (optionally against a signed checkpoint).

    Keys registered in the ledger's own database are *not* trusted by
    default — pass ``trusted_keys`` from an independent source (a public key
    file); revocations recorded in the database are still honoured, since a
    revocation can only take trust away.

    ``head_keys`` (the application's tree-head keys, e.g. from its
    ``public.pem``; every key it has used) turns on the tree-head checks: each
    stored head must be validly signed and match the log, and entries past
    the last signed head are reported as :attr:`Problem.UNSIGNED_ENTRIES`.
    Rows and heads are then read from one consistent snapshot. Without head
    keys the heads are not checked and ``warnings`` says so.

    ``jobs`` > 1 verifies ranges of whole Merkle subtrees in that many worker
    processes, each reading its range over a connection of its own, and
    stitches them in order (docs/audit.md, "Parallel verification"); the
    report is the one ``jobs=1`` gives. ``range_size`` (a power of two, at
    least 4) fixes the range length; by default about four ranges per job, at
    least 262,144 entries each, and a log shorter than two ranges is verified
    in this process. Value blocks are checked in the range of their entry.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if range_size is not None and (range_size < 4 or range_size & (range_size - 1)):
        raise ValueError(f"range_size must be a power of two of at least 4, got {range_size}")
    opened: OpenedCheckpoint | None
    if isinstance(checkpoint, str):
        try:
            opened = open_checkpoint(checkpoint)
        except CheckpointError as exc:
            report = VerificationReport(
                ok=False,
                entries=0,
                tree_size=0,
                root="",
                problem=Problem.CHECKPOINT_MALFORMED,
                detail=str(exc),
            )
            return report
    else:
        opened = checkpoint
    trusted = ledger.apply_revocations(trusted_keys)
    heads_trusted = _trusted_from(head_keys) if head_keys is not None else []
    if heads_trusted:
        heads_trusted = ledger.apply_revocations(heads_trusted)
    if jobs > 1:
        parallel = _verify_ledger_parallel(
            ledger,
            jobs=jobs,
            range_size=range_size,
            checkpoint=opened,
            trusted_keys=trusted,
            head_keys=heads_trusted or None,
            progress=progress,
            deep=deep,
        )
        if parallel is not None:
            return parallel
    # Rows, heads and value blocks of one moment (a block commits with its entry).
    with ledger.snapshot_blocks() as (rows, heads, blocks):
        return verify_rows(
            rows,
            checkpoint=opened,
            trusted_keys=trusted,
            origin=ledger.origin,
            progress=progress,
            deep=deep,
            heads=heads if heads_trusted else None,
            head_keys=heads_trusted,
            blocks=blocks,
        )


def _stream_heads(conn: Connection, is_pg: bool) -> Iterator[HeadTuple]:
    dbapi: Any = conn.connection.dbapi_connection
    cursor = dbapi.cursor(name="gxpmes_verify_heads") if is_pg else dbapi.cursor()
    try:
        if is_pg:
            cursor.itersize = 10_000
        else:
            cursor.arraysize = 10_000
        cursor.execute("SELECT tree_size, note FROM audit_tree_head ORDER BY tree_size")
        for size, note in cursor:
            yield int(size), note
    finally:
        cursor.close()


def _verify_ledger_parallel(
    ledger: Any,
    *,
    jobs: int,
    range_size: int | None,
    checkpoint: OpenedCheckpoint | None,
    trusted_keys: Sequence[TrustedKey],
    head_keys: Sequence[TrustedKey] | None,
    progress: Callable[[int], None] | None,
    deep: bool,
) -> VerificationReport | None:
    """:func:`verify_ledger` over worker processes; ``None`` when the log is too short."""
    engine = ledger.engine
    is_pg = engine.dialect.name == "postgresql"
    options: dict[str, Any] = {"ledger_read": True}
    if is_pg:
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as conn:
        # One read transaction: the log's size, the heads, and (PostgreSQL) the snapshot
        # the workers import. On SQLite the rows below this size are the same for every
        # later reader: the ledger only appends, and its triggers refuse UPDATE and DELETE.
        last = conn.exec_driver_sql("SELECT max(seq) FROM audit_entry").scalar()
        span = 0 if last is None else int(last) + 1
        size = range_size or _range_size(span, jobs)
        if span < 2 * size:
            return None
        has_heads = head_keys is not None and inspect(conn).has_table("audit_tree_head")
        head_sizes: list[int] = []
        if has_heads:
            head_sizes = [
                int(s)
                for (s,) in conn.exec_driver_sql(
                    "SELECT tree_size FROM audit_tree_head ORDER BY tree_size"
                )
            ]
        if is_pg:
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            url = engine.url.set(drivername="postgresql")
            source = _Source("postgresql", url.render_as_string(hide_password=False), snapshot)
        else:
            files = conn.exec_driver_sql("PRAGMA database_list").fetchall()
            source = _Source("sqlite", next(f[2] for f in files if f[1] == "main"))
        heads = _stream_heads(conn, is_pg) if has_heads else iter(())
        try:
            plan = _Plan(
                checkpoint=checkpoint,
                trusted_keys=trusted_keys,
                origin=ledger.origin,
                heads=None if head_keys is None else heads,
                head_keys=head_keys or (),
                anchors=(),
            )
            if plan.failed:
                return plan.report
            return _run_ranges(
                plan,
                span,
                head_sizes,
                size=size,
                jobs=jobs,
                source=source,
                deep=deep,
                progress=progress,
            )
        finally:
            if isinstance(heads, Generator):
                heads.close()


def keys_under_head_names(
    ledger: Any, public_keys: Sequence[bytes], *, default_name: str | None = None
) -> list[TrustedKey]:
    """Each raw Ed25519 key trusted under every name the ledger's tree heads are signed with.

    The key name is part of a note's key hash, so a verifier given only key
    bytes (a public.pem) tries them under the heads' own names: trust is in
    the bytes the caller gives, never in the database. A log without heads
    uses ``default_name``, if one is given.
    """
    if not public_keys:
        return []
    names: list[str] = []
    for _size, note in ledger.iter_tree_heads():
        try:
            signatures = split_note(note)[1]
        except CheckpointError:
            continue  # verification names the malformed head
        names.extend(sig.name for sig in signatures if sig.name not in names)
    if not names and default_name is not None:
        names = [default_name]
    return [
        TrustedKey(NoteVerifier(name, raw)) for raw in dict.fromkeys(public_keys) for name in names
    ]


def _trusted_from(keys: KeySpec) -> list[TrustedKey]:
    if isinstance(keys, TrustedKey | NoteVerifier):
        keys = [keys]
    return [k if isinstance(k, TrustedKey) else TrustedKey(k) for k in keys]


def _trusted_checkpoint(checkpoint: str | OpenedCheckpoint, keys: KeySpec) -> Checkpoint:
    opened = open_checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    problem, detail, _ = check_checkpoint_signature(opened, _trusted_from(keys))
    if problem is not None:
        raise CheckpointError(f"{problem}: {detail}")
    return opened.checkpoint


def verify_inclusion(
    *,
    path: Sequence[bytes],
    leaf_index: int,
    checkpoint: str | OpenedCheckpoint,
    keys: KeySpec,
    entry: bytes | None = None,
    leaf_hash: bytes | None = None,
) -> Checkpoint:
    """Stand-alone check that an entry is in the log a signed checkpoint describes.

    Give the entry's canonical bytes (``entry``) or its ``leaf_hash``. Raises
    :class:`ProofError` or :class:`CheckpointError`; returns the trusted checkpoint.
    """
    if (entry is None) == (leaf_hash is None):
        raise ProofError("give exactly one of entry bytes or leaf hash")
    cp = _trusted_checkpoint(checkpoint, keys)
    leaf = record_hash(entry) if entry is not None else leaf_hash
    assert leaf is not None
    check_inclusion(path, cp.tree_size, cp.root, leaf_index, leaf)
    return cp


def verify_consistency(
    *,
    path: Sequence[bytes],
    old_checkpoint: str | OpenedCheckpoint,
    new_checkpoint: str | OpenedCheckpoint,
    keys: KeySpec,
) -> None:
    """Stand-alone check that the newer signed checkpoint extends the older one."""
    old = _trusted_checkpoint(old_checkpoint, keys)
    new = _trusted_checkpoint(new_checkpoint, keys)
    if old.origin != new.origin:
        raise ProofError(f"checkpoints are of different logs: {old.origin!r}, {new.origin!r}")
    if old.tree_size == 0:
        return
    check_consistency(path, new.tree_size, new.root, old.tree_size, old.root)
