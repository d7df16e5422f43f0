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
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

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
) -> VerificationReport:
    """Verify stored rows ``(seq, canonical, leaf_hash, tree_hashes)`` in seq order.

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
    sha256 = hashlib.sha256
    read_chain = _deep_chain_fields if deep else _chain_fields
    cp: Checkpoint | None = checkpoint.checkpoint if checkpoint else None
    report = VerificationReport(ok=True, entries=0, tree_size=0, root=EMPTY_TREE_HASH.hex())
    scan = _HeadScan(heads, head_keys, origin) if heads is not None else None
    if scan is None:
        report.warnings.append(HEADS_NOT_CHECKED)

    def fail(problem: Problem, seq: int | None, detail: str) -> VerificationReport:
        report.ok = False
        report.problem = problem
        report.first_bad_seq = seq
        report.detail = detail
        return done()

    def done() -> VerificationReport:
        if scan is not None:
            report.heads_checked = scan.checked
            report.signed_size = scan.signed_size
        return report

    if checkpoint is not None:
        assert cp is not None
        report.checkpoint_size = cp.tree_size
        if origin is not None and cp.origin != origin:
            return fail(
                Problem.CHECKPOINT_INCONSISTENT,
                None,
                f"checkpoint is for log {cp.origin!r}, this log is {origin!r}",
            )
        problem, detail, key_id = check_checkpoint_signature(checkpoint, trusted_keys)
        report.checkpoint_key_id = key_id
        if problem is not None:
            return fail(problem, None, detail)
        report.checkpoints_checked = 1

    if scan is not None and scan.next_size == 0:
        found = scan.check(0, EMPTY_TREE_HASH, GENESIS_PREV)
        if found is not None:
            return fail(found[0], None, found[1])
    cp_size = cp.tree_size if cp is not None else -1
    cp_head = (cp.root, cp.chain_head) if cp is not None else None
    anchored: dict[int, list[tuple[str, Checkpoint]]] = {}
    for label, anchor in anchors:
        if origin is not None and anchor.origin != origin:
            return fail(
                Problem.CHECKPOINT_INCONSISTENT,
                None,
                f"checkpoint {label} is for log {anchor.origin!r}, this log is {origin!r}",
            )
        anchored.setdefault(anchor.tree_size, []).append((label, anchor))
    anchor_sizes = sorted(s for s in anchored if s > 0)

    def next_mark(after: int) -> int:
        # The next size at which a checkpoint or a head wants the root: -1 for none.
        sizes = [s for s in (cp_size, scan.next_size if scan else -1) if s > after]
        at = bisect.bisect_right(anchor_sizes, after)
        if at < len(anchor_sizes):
            sizes.append(anchor_sizes[at])
        return min(sizes, default=-1)

    frontier: list[bytes] = []
    prev = GENESIS_PREV
    prev_hex = prev.hex().encode()
    last_time = b""
    expected = 0
    mark = next_mark(0)
    for seq, canonical, leaf_stored, tree_stored in rows:
        if seq != expected:
            return fail(
                Problem.GAP, expected, f"entry {expected} is missing (next stored is {seq})"
            )
        if canonical.__class__ is not bytes:  # e.g. TEXT written over the BLOB by hand
            canonical = (
                bytes(canonical)
                if isinstance(canonical, bytearray | memoryview)
                else str(canonical).encode("utf-8", "surrogatepass")
            )
        leaf = sha256(b"\x00" + canonical).digest()
        if leaf != leaf_stored:
            return fail(Problem.HASH_MISMATCH, seq, f"entry {seq} does not hash to its stored hash")
        # Fast path: the link and the seq sit at known places at the end of
        # the canonical bytes (see _chain_fields); any doubt takes the slow path.
        at = canonical.rfind(_PREV_MARK, -200)
        if deep or not (
            at >= 0
            and canonical[at + 9 : at + 73] == prev_hex
            and canonical.endswith(b',"seq":%d,"v":1}' % seq)
        ):
            try:
                written_seq, written_prev = read_chain(canonical)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                return fail(
                    Problem.MALFORMED_ENTRY, seq, f"entry {seq} is not a canonical entry: {exc}"
                )
            if written_seq != seq:
                return fail(
                    Problem.SEQ_MISMATCH, seq, f"entry stored as {seq} was written as {written_seq}"
                )
            if written_prev != prev:
                # Entry seq does not link to entry seq-1: which of the two changed?
                # For odd seq, its stored level-1 hash was built from the original
                # hash of seq-1; if that agrees with seq's link, seq-1 was altered.
                blamed = seq
                if seq & 1 and tree_stored[:32] == node_hash(written_prev, leaf):
                    blamed = seq - 1
                return fail(
                    Problem.CHAIN_BREAK,
                    blamed,
                    f"entry {seq} links to {written_prev.hex()[:16]}…, but entry {seq - 1} "
                    f"hashes to {prev.hex()[:16]}…",
                )
        if seq & 1:
            interior = b"".join(extend_frontier(frontier, seq, leaf))
        else:  # even records complete no subtree: the common half, kept cheap
            frontier.append(leaf)
            interior = b""
        if interior != tree_stored:
            return fail(
                Problem.TREE_HASH_MISMATCH,
                seq,
                f"stored Merkle hashes of entry {seq} do not match the entries before it",
            )
        try:
            recorded = _recorded_at(canonical, seq)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            return fail(
                Problem.MALFORMED_ENTRY, seq, f"entry {seq} has no valid recorded time: {exc}"
            )
        if recorded < last_time:
            return fail(
                Problem.TIME_REVERSED,
                seq,
                f"entry {seq} is recorded at {recorded.decode()}, earlier than entry {seq - 1} "
                f"({last_time.decode()}): time went backwards",
            )
        last_time = recorded
        prev = leaf
        prev_hex = leaf.hex().encode()
        expected += 1
        if expected == mark:
            root_here = frontier_root(frontier)
            if expected == cp_size and (root_here, leaf) != cp_head:
                return fail(
                    Problem.CHECKPOINT_INCONSISTENT,
                    None,
                    f"the first {cp_size} entries no longer have the checkpointed root: "
                    "history before the checkpoint was rewritten",
                )
            for label, anchor in anchored.get(expected, ()):
                if (root_here, leaf) != (anchor.root, anchor.chain_head):
                    return fail(
                        Problem.CHECKPOINT_INCONSISTENT,
                        None,
                        f"the first {expected} entries no longer have the root of checkpoint "
                        f"{label}: history before it was rewritten",
                    )
                report.checkpoints_checked += 1
            if scan is not None:
                found = scan.check(expected, root_here, leaf)
                if found is not None:
                    return fail(found[0], None, found[1])
            mark = next_mark(expected)
        if progress is not None and expected % progress_every == 0:
            progress(expected)
    report.entries = expected
    report.tree_size = expected
    report.root = frontier_root(frontier).hex()
    report.chain_head = prev.hex() if expected else ""
    if progress is not None:
        progress(expected)
    if cp is not None and expected < cp.tree_size:
        return fail(
            Problem.TRUNCATED,
            expected,
            f"the log holds {expected} entries but a checkpoint vouches for {cp.tree_size}",
        )
    if anchor_sizes and expected < anchor_sizes[-1]:
        label = anchored[anchor_sizes[-1]][0][0]
        return fail(
            Problem.TRUNCATED,
            expected,
            f"the log holds {expected} entries but checkpoint {label} vouches for "
            f"{anchor_sizes[-1]}: entries were removed",
        )
    if scan is not None:
        outcome = scan.finish(expected)
        if outcome is not None:
            return fail(*outcome)
    return done()


def verify_ledger(
    ledger: Any,
    *,
    checkpoint: str | OpenedCheckpoint | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    progress: Callable[[int], None] | None = None,
    deep: bool = False,
    head_keys: KeySpec | None = None,
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
    """
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
    if not heads_trusted:
        return verify_rows(
            ledger.iter_raw_rows(),
            checkpoint=opened,
            trusted_keys=trusted,
            origin=ledger.origin,
            progress=progress,
            deep=deep,
        )
    heads_trusted = ledger.apply_revocations(heads_trusted)
    with ledger.snapshot() as (rows, heads):
        return verify_rows(
            rows,
            checkpoint=opened,
            trusted_keys=trusted,
            origin=ledger.origin,
            progress=progress,
            deep=deep,
            heads=heads,
            head_keys=heads_trusted,
        )


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
