"""Read a scope of the audit trail as a reviewer sees it, and record its signed review.

A *scope* is a batch (every entry about the batch and the objects that belong
to it: steps, values, weighings, exceptions, deviations, record items, its
signatures and refusals, the release of its lot) or a time range, optionally
narrowed to one actor or one action. :func:`collect_trail` returns its rows —
who (id and printed name), when (UTC and the client's zone), what (action and
object), old → new, why (reason) and the signature meaning — read from the log
up to one sequence number, and the SHA-256 of their canonical form
(:data:`FORMAT`). The entries up to that number never change, so the same
scope and number always give the same rows and the same hash.

A review is recorded with :meth:`TrailReviews.record`: the reviewer's
e-signature (meaning Reviewed) over the scope, the sequence number and the
hash, and an audit entry ``trail.review`` carrying the same, in one
transaction. The hash is recomputed from the log before anything is written:
a reviewer cannot record a review of content the trail does not hold. A batch
review is signed in the batch's scope, so the separation-of-duties rules of
the batch apply (whoever performed or verified a step does not review its
trail; the trail's reviewer does not release the batch).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from audit.canonical import canonicalize, format_timestamp
from audit.entry import AuditEvent
from gxpmes.errors import (
    BatchError,
    ConfigurationError,
    GxpError,
    RecordChangedError,
    ReleaseBlocked,
    SignatureError,
)
from gxpmes.identity.signatures import Credentials, Meaning, SignableRecord

if TYPE_CHECKING:
    from gxpmes.database import Database
    from gxpmes.identity.signatures import Signature, SignatureService

__all__ = [
    "FORMAT",
    "NOT_CHANGES",
    "REVIEW_ACTION",
    "REVIEW_RECORD",
    "RecordedReview",
    "TrailReviews",
    "TrailRow",
    "TrailScope",
    "TrailView",
    "collect_trail",
]

FORMAT = "gxpmes-audit-trail-review/1"
"""Version of the row form whose SHA-256 a review signs; a new form gets a new name."""
REVIEW_ACTION = "trail.review"
REVIEW_RECORD = "audit_trail_review"
"""Record type (and audit object type) of a recorded review."""
RANGE_SCOPE = "audit-trail"
"""Signature scope of reviews that are not of one batch."""

NOT_CHANGES = frozenset({REVIEW_ACTION, "batch.export"})
"""Actions in a batch's trail that change nothing in its record: entries after a
review that are only these (or refusals, ``*.refused``) do not call for another."""

# Objects of these types are master data shared by many batches: an entry about
# one belongs to a batch's trail only when it names the batch (lot release,
# weighing from a lot), and does not pull the object's later entries in.
_SHARED_TYPES = frozenset(
    {"lot", "equipment", "user", "master_recipe", "audit_key", "schema", "session"}
)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ConfigurationError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value


@dataclass(frozen=True)
class TrailScope:
    """What part of the trail is reviewed: one batch, or a time range; optionally one actor
    or action (``action`` may be a pattern such as ``user.*``)."""

    batch_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        _aware(self.since, "since")
        _aware(self.until, "until")
        if self.batch_id is not None and not self.batch_id.strip():
            raise ConfigurationError("batch id is blank")
        if self.batch_id is None and (self.since is None or self.until is None):
            raise ConfigurationError("a trail review needs a batch, or both since and until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ConfigurationError(
                f"since ({self.since.isoformat()}) is not before until ({self.until.isoformat()})"
            )
        for name in ("actor", "action"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigurationError(f"{name} filter is blank")

    @property
    def complete(self) -> bool:
        """A whole batch: no time, actor or action filter (only such a review clears release)."""
        return (
            self.batch_id is not None
            and self.since is None
            and self.until is None
            and (self.actor is None and self.action is None)
        )

    @property
    def signable_scope(self) -> str:
        """The signature scope: the batch (its separation of duties applies), or the trail."""
        return self.batch_id if self.batch_id is not None else RANGE_SCOPE

    def as_json(self) -> dict[str, Any]:
        """The scope as it is signed and recorded."""
        return {
            "batch_id": self.batch_id,
            "since": None if self.since is None else format_timestamp(self.since),
            "until": None if self.until is None else format_timestamp(self.until),
            "actor": self.actor,
            "action": self.action,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrailScope:
        """The scope of :meth:`as_json`."""

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(str(value))

        return cls(
            batch_id=data.get("batch_id"),
            since=when("since"),
            until=when("until"),
            actor=data.get("actor"),
            action=data.get("action"),
        )

    def describe(self) -> str:
        """One line for titles: ``batch B-1`` / ``2026-03-01 … 2026-03-02, actor qa1``."""
        parts = []
        if self.batch_id is not None:
            parts.append(f"batch {self.batch_id}")
        if self.since is not None or self.until is not None:
            parts.append(
                f"{format_timestamp(self.since) if self.since else '…'} – "
                f"{format_timestamp(self.until) if self.until else '…'}"
            )
        if self.actor is not None:
            parts.append(f"actor {self.actor}")
        if self.action is not None:
            parts.append(f"action {self.action}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrailRow:
    """One audit entry as a reviewer reads it."""

    seq: int
    leaf_hash: str
    recorded_at: str
    """UTC, as recorded."""
    local_time: str
    """``2026-03-02 09:00:00 Europe/Berlin (UTC+01:00)``: the client's zone."""
    actor_id: str
    printed_name: str
    action: str
    object_type: str
    object_id: str
    old: Any
    new: Any
    """The entry's ``new`` without its row images (listed in :attr:`rows_written`)."""
    reason: str | None
    meaning: str | None
    """The signature meaning, for signature entries."""
    rows_written: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The row's canonical form (what the review's hash covers)."""
        return {
            "seq": self.seq,
            "leaf_hash": self.leaf_hash,
            "recorded_at": self.recorded_at,
            "local_time": self.local_time,
            "actor_id": self.actor_id,
            "printed_name": self.printed_name,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "meaning": self.meaning,
            "rows_written": list(self.rows_written),
        }


@dataclass(frozen=True)
class TrailView:
    """The rows of a scope up to ``through_seq`` and the SHA-256 of their content."""

    scope: TrailScope
    through_seq: int
    """The last sequence number read (-1: an empty log)."""
    origin: str
    rows: list[TrailRow]
    content_sha256: str

    def content(self) -> dict[str, Any]:
        """What :attr:`content_sha256` is the SHA-256 of (RFC 8785 bytes)."""
        return _content(self.scope, self.through_seq, self.origin, self.rows)


def _content(scope: TrailScope, through: int, origin: str, rows: list[TrailRow]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "origin": origin,
        "scope": scope.as_json(),
        "through_seq": through,
        "rows": [row.as_json() for row in rows],
    }


def _zone(name: str) -> Any:
    if name == "UTC":
        return UTC
    if name[:1] in "+-" and len(name) == 6:
        sign = 1 if name[0] == "+" else -1
        return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # the entry's zone was valid when written; this host lacks it


def _local(recorded_at: str, client_tz: str) -> str:
    local = datetime.fromisoformat(recorded_at).astimezone(_zone(client_tz))
    offset = local.strftime("%z")
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {client_tz} (UTC{offset[:3]}:{offset[3:]})"


def _row(seq: int, leaf: bytes, data: Mapping[str, Any]) -> TrailRow:
    from gxpmes.records.images import row_changes
    from gxpmes.records.replay import key_text

    new = data["new"]
    written: list[str] = []
    try:
        for table, key, image in row_changes(seq, data["action"], new):
            written.append(f"{table} {key_text(key)}" + (" (removed)" if image is None else ""))
    except GxpError as exc:
        written.append(f"unreadable row image: {exc}")
    shown = new
    if isinstance(new, Mapping) and "rows" in new:
        shown = {k: v for k, v in new.items() if k != "rows"}
    meaning = None
    if data["action"].startswith("signature.") and isinstance(new, Mapping):
        meaning = new.get("meaning")
    return TrailRow(
        seq=seq,
        leaf_hash=leaf.hex(),
        recorded_at=data["recorded_at"],
        local_time=_local(data["recorded_at"], data["client_tz"]),
        actor_id=data["actor"]["id"],
        printed_name=data["actor"]["name"],
        action=data["action"],
        object_type=data["object"]["type"],
        object_id=data["object"]["id"],
        old=data["old"],
        new=shown,
        reason=data["reason"],
        meaning=None if meaning is None else str(meaning),
        rows_written=tuple(written),
    )


class _BatchMembership:
    """Decides, entry by entry in log order, which entries belong to one batch's trail."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.prefix = batch_id + "/"
        self.objects: set[tuple[str, str]] = {("batch", batch_id)}

    def _names_batch(self, payload: Any) -> bool:
        if not isinstance(payload, Mapping):
            return False
        if payload.get("batch_id") == self.batch_id or payload.get("scope") == self.batch_id:
            return True
        rows = payload.get("rows")
        if isinstance(rows, list):
            for item in rows:
                image = item.get("row") if isinstance(item, Mapping) else None
                if isinstance(image, Mapping) and (
                    image.get("batch_id") == self.batch_id or image.get("scope") == self.batch_id
                ):
                    return True
        return False

    def __call__(self, data: Mapping[str, Any]) -> bool:
        obj = (data["object"]["type"], data["object"]["id"])
        if obj in self.objects or obj[1].startswith(self.prefix):
            return True
        if self._names_batch(data["new"]):
            if obj[0] not in _SHARED_TYPES:
                self.objects.add(obj)  # its later entries (assessment, refusals) belong too
            return True
        return False


_FIELDS = ("recorded_at", "client_tz", "actor", "action", "object", "old", "new", "reason")


def _entries(db: Database, through: int) -> Iterator[tuple[int, bytes, dict[str, Any] | str]]:
    """``(seq, leaf hash, entry)``; the entry is the reason it cannot be read if it cannot."""
    for seq, canonical, leaf, _tree in db.ledger.iter_raw_rows():
        if seq > through:
            return
        try:
            data = json.loads(bytes(canonical))
            missing = [f for f in _FIELDS if f not in data]
            if (
                missing
                or not isinstance(data["actor"], dict)
                or not isinstance(data["object"], dict)
            ):
                raise ValueError(f"lacks {', '.join(missing) or 'actor or object'}")
            datetime.fromisoformat(data["recorded_at"])
            yield seq, bytes(leaf), data
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            yield seq, bytes(leaf), f"entry {seq} cannot be read: {exc}"


def _unreadable(seq: int, leaf: bytes, problem: str) -> TrailRow:
    """A row for an entry that is not a readable audit entry: shown in every scope."""
    return TrailRow(
        seq,
        leaf.hex(),
        "?",
        "?",
        "?",
        "?",
        "(unreadable entry)",
        "?",
        "?",
        None,
        problem,
        None,
        None,
    )


def collect_trail(db: Database, scope: TrailScope, *, through_seq: int | None = None) -> TrailView:
    """The rows of ``scope`` among entries ``0..through_seq`` (default: the whole log now)."""
    size = db.ledger.size()
    through = size - 1 if through_seq is None else through_seq
    if through >= size or through < -1:
        raise ConfigurationError(
            f"the trail has entries 0..{size - 1}; it cannot be read through entry {through}"
        )
    member = _BatchMembership(scope.batch_id) if scope.batch_id is not None else None
    since = None if scope.since is None else format_timestamp(scope.since)
    until = None if scope.until is None else format_timestamp(scope.until)
    action = scope.action
    pattern = action is not None and any(c in action for c in "*?[")
    rows = []
    for seq, leaf, data in _entries(db, through):
        if isinstance(data, str):  # a finding in any scope (gxpmes verify names it too)
            rows.append(_unreadable(seq, leaf, data))
            continue
        # Membership first, on every entry: it follows objects from entry to entry.
        if member is not None and not member(data):
            continue
        # Fixed-width UTC text: text order is time order.
        if since is not None and data["recorded_at"] < since:
            continue
        if until is not None and data["recorded_at"] >= until:
            continue
        if scope.actor is not None and data["actor"]["id"] != scope.actor:
            continue
        if action is not None and not (
            fnmatch.fnmatchcase(data["action"], action) if pattern else data["action"] == action
        ):
            continue
        rows.append(_row(seq, leaf, data))
    origin = db.ledger.origin
    digest = hashlib.sha256(canonicalize(_content(scope, through, origin, rows))).hexdigest()
    return TrailView(scope, through, origin, rows, digest)


@dataclass(frozen=True)
class RecordedReview:
    """A recorded audit-trail review, as its ``trail.review`` entry and signature state it."""

    review_id: str
    scope: TrailScope
    through_seq: int
    entries: int
    content_sha256: str
    comment: str
    reviewer_id: str
    printed_name: str
    seq: int
    """Sequence number of the ``trail.review`` entry."""
    signature_id: str
    manifestation: str = ""
    content: dict[str, Any] = field(default_factory=dict, repr=False)

    def record(self) -> SignableRecord:
        """What the reviewer signed."""
        return SignableRecord(
            REVIEW_RECORD, self.review_id, self.content, self.scope.signable_scope
        )


def _require_batch(conn: Connection, batch_id: str) -> None:
    """A review is of a batch that exists: an empty trail of a mistyped id is no review."""
    from gxpmes.ebr.schema import BatchRow

    if conn.execute(select(BatchRow.batch_id).where(BatchRow.batch_id == batch_id)).first() is None:
        raise BatchError(f"no batch {batch_id!r}: there is no trail to review")


def _signed_content(scope: TrailScope, view: TrailView, comment: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "origin": view.origin,
        "scope": scope.as_json(),
        "through_seq": view.through_seq,
        "entries": len(view.rows),
        "content_sha256": view.content_sha256,
        "comment": comment,
    }


class TrailReviews:
    """Records signed audit-trail reviews and answers whether a batch's trail was reviewed."""

    def __init__(self, db: Database, signatures: SignatureService) -> None:
        self.db = db
        self.signatures = signatures

    def record(
        self,
        scope: TrailScope,
        through_seq: int,
        content_sha256: str,
        reviewer: Credentials,
        *,
        comment: str,
    ) -> RecordedReview:
        """Record that ``reviewer`` reviewed ``scope`` through ``through_seq``, whose rendered
        content has SHA-256 ``content_sha256`` (:attr:`TrailView.content_sha256`).

        The content is recomputed from the log first: a hash that does not match
        raises :class:`~gxpmes.errors.RecordChangedError` and nothing is written.
        The signature (meaning Reviewed, in the batch's scope for a batch) and the
        ``trail.review`` entry commit together. A refusal is audited.
        """
        if not isinstance(comment, str) or not comment.strip():
            raise ConfigurationError("a trail review needs a comment (what was found)")
        review_id = f"ATR-{uuid.uuid4().hex[:12].upper()}"
        subject = SignableRecord(REVIEW_RECORD, review_id, {}, scope.signable_scope)
        signer = self.signatures.authenticate(reviewer, Meaning.REVIEWED, subject)
        try:
            view = collect_trail(self.db, scope, through_seq=through_seq)
            self._check_hash(view, content_sha256)
            content = _signed_content(scope, view, comment)
            record = SignableRecord(REVIEW_RECORD, review_id, content, scope.signable_scope)
            with self.db.transaction() as conn:
                if scope.batch_id is not None:
                    _require_batch(conn, scope.batch_id)
                signature_id = self.signatures.sign_in(conn, signer, record, reason=comment)
                seq = self.db.audit(
                    conn,
                    AuditEvent(
                        signer.user.actor,
                        REVIEW_ACTION,
                        REVIEW_RECORD,
                        review_id,
                        new={**content, "signature_id": signature_id},
                        reason=comment,
                        client_tz=signer.client_tz,
                    ),
                )
        except GxpError as exc:
            self.signatures.audit_refusal(subject, str(Meaning.REVIEWED), reviewer.user_id, exc)
            raise
        return self._review(review_id, seq, {**content, "signature_id": signature_id})

    @staticmethod
    def _check_hash(view: TrailView, content_sha256: str) -> None:
        """The reviewed content is the trail's: else :class:`RecordChangedError`."""
        if view.content_sha256 != content_sha256.strip().lower():
            raise RecordChangedError(
                f"the trail of {view.scope.describe()} through entry {view.through_seq} has "
                f"SHA-256 {view.content_sha256}, not {content_sha256}: review what the trail holds"
            )

    def _review(self, review_id: str, seq: int, new: Mapping[str, Any]) -> RecordedReview:
        content = {k: v for k, v in new.items() if k != "signature_id"}
        signature = self.signatures._get(str(new["signature_id"]))
        return RecordedReview(
            review_id=review_id,
            scope=TrailScope.from_json(new["scope"]),
            through_seq=int(new["through_seq"]),
            entries=int(new["entries"]),
            content_sha256=str(new["content_sha256"]),
            comment=str(new["comment"]),
            reviewer_id=signature.signer_id,
            printed_name=signature.printed_name,
            seq=seq,
            signature_id=signature.signature_id,
            manifestation=signature.manifestation,
            content=content,
        )

    def review(self, review_id: str) -> RecordedReview:
        """The recorded review ``review_id`` (from its ``trail.review`` entry)."""
        entries = [
            e
            for e in self.db.ledger.entries_for(REVIEW_RECORD, review_id)
            if e.event.action == REVIEW_ACTION
        ]
        if len(entries) != 1 or not isinstance(entries[0].event.new, Mapping):
            raise ConfigurationError(f"no recorded audit-trail review {review_id!r}")
        return self._review(review_id, entries[0].seq, entries[0].event.new)

    def review_record(self, review_id: str) -> SignableRecord:
        """The signed content of a review, for re-verifying its signature."""
        return self.review(review_id).record()

    def _review_signatures(self, scope: str) -> list[Signature]:
        return [
            s
            for s in self.signatures.signatures_in_scope(scope)
            if s.record_type == REVIEW_RECORD and s.meaning == Meaning.REVIEWED
        ]

    def reviews(self, batch_id: str | None = None) -> list[RecordedReview]:
        """Recorded reviews of one batch, or of time ranges (``batch_id`` None), oldest first."""
        signatures = self._review_signatures(batch_id if batch_id is not None else RANGE_SCOPE)
        return [self.review(s.record_id) for s in signatures]

    def last_change(self, batch_id: str) -> int:
        """Sequence number of the last entry of the batch's trail that changed its record."""
        view = collect_trail(self.db, TrailScope(batch_id=batch_id))
        changes = [
            row.seq
            for row in view.rows
            if row.action not in NOT_CHANGES
            and not row.action.endswith(".refused")
            and not (row.action == "signature.sign" and row.object_type == REVIEW_RECORD)
        ]
        return max(changes, default=-1)

    def check_reviewed(self, batch_id: str, conn: Connection | None = None) -> RecordedReview:
        """The review that covers every change of the batch's record; else
        :class:`~gxpmes.errors.ReleaseBlocked` saying what is missing.

        A review counts when it is of the whole batch (no filter), covers the
        trail through its last change, its signature verifies against the
        content it recorded, and the trail still gives the hash it signed.
        """
        del conn  # entries up to the review never change; the log is read on its own
        last = self.last_change(batch_id)
        candidates = [r for r in self.reviews(batch_id) if r.scope.complete]
        if not candidates:
            raise ReleaseBlocked(
                f"release needs a recorded review of batch {batch_id}'s audit trail "
                "(EU GMP Annex 11 §9): none recorded"
            )
        current = [r for r in candidates if r.through_seq >= last]
        if not current:
            newest = max(r.through_seq for r in candidates)
            raise ReleaseBlocked(
                f"the audit trail of batch {batch_id} changed after its last review "
                f"(reviewed through entry {newest}, last change at entry {last}): review it again"
            )
        problems = []
        for review in sorted(current, key=lambda r: -r.seq):
            signature = self.signatures._get(review.signature_id)
            try:
                self.signatures.verify_signature(signature, review.record())
            except SignatureError as exc:
                problems.append(f"{review.review_id}: {exc}")
                continue
            view = collect_trail(self.db, review.scope, through_seq=review.through_seq)
            if view.content_sha256 != review.content_sha256 or view.origin != str(
                review.content.get("origin")
            ):
                problems.append(f"{review.review_id}: the trail no longer gives the hash reviewed")
                continue
            return review
        raise ReleaseBlocked(
            f"no valid review of batch {batch_id}'s audit trail: " + "; ".join(problems)
        )

    def verify_signatures(self, scope: str) -> list[tuple[Any, str | None]]:
        """``(signature, problem or None)`` for every review signature in ``scope``."""
        records: dict[tuple[str, str], Any] = {}
        for signature in self._review_signatures(scope):
            try:
                records[(REVIEW_RECORD, signature.record_id)] = self.review_record(
                    signature.record_id
                )
            except GxpError:
                continue  # reported as "the signed record is missing"
        results = self.signatures.verify_scope(scope, records)
        return [(s, p) for s, p in results if s.record_type == REVIEW_RECORD]
