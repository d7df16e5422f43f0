"""Shared state and helpers of the batch engine: lookups, status changes, audit, logbook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, overload

from sqlalchemy import Connection, select

from audit.canonical import canonicalize, format_timestamp
from audit.entry import Actor, AuditEvent, Entry
from gxpmes.database import Database
from gxpmes.ebr.schema import (
    BatchRow,
    DeviationRow,
    EquipmentLogRow,
    EquipmentRow,
    ExceptionRow,
    RecipeRow,
    StepRow,
    ValueBlockRow,
    ValueRow,
    WeighingRow,
)
from gxpmes.errors import (
    BatchError,
    EquipmentNotReady,
    GxpError,
    RecordClosedError,
    RecordIntegrityError,
)
from gxpmes.identity import Credentials, IdentityService, SignableRecord, SignatureService
from gxpmes.identity.service import Session, User
from gxpmes.records import writer as projection
from gxpmes.records.images import VALUE_COLUMNS, block_value_rows
from gxpmes.records.replay import RecordProblem, compare_rows, replay
from gxpmes.records.tables import projected
from isa95.recipe import Recipe
from isa95.statemachine import ProceduralState

__all__ = [
    "CAPTURE_PERMISSION",
    "CLOSED",
    "CREATED",
    "EXECUTED",
    "IN_EXECUTION",
    "OT_COLLECTOR",
    "QUALITIES",
    "REJECTED",
    "RELEASED",
    "REVIEWED",
    "CaptureSource",
    "CapturedValue",
    "EngineBase",
    "ReviewItem",
]

CREATED, IN_EXECUTION, EXECUTED, REVIEWED, RELEASED, REJECTED = (
    "Created",
    "In execution",
    "Executed",
    "Reviewed",
    "Released",
    "Rejected",
)
CLOSED = frozenset({RELEASED, REJECTED})
QUALITIES = ("Good", "Uncertain", "Bad")
OT_COLLECTOR = Actor("svc-ot", "OT data collector")
"""Default actor of captured values (the OT connector's service account)."""
CAPTURE_PERMISSION = "capture.device"
"""The permission an account needs to deliver values to :meth:`capture` (role "OT Device").

Distinct from ``batch.capture`` (a person's manual entry): a connector records
under a service or device account, never under a person's."""
_ACTIVE = frozenset(s.value for s in ProceduralState) - {"Idle", "Complete", "Stopped", "Aborted"}


def _exact_text(text: str) -> str:
    """``text`` as a plain str: a text field of a str subclass (numpy.str_, say) is
    checked, looked up and recorded as the text it holds, whatever its methods say."""
    return str.__str__(text)


_KEY_TYPES = frozenset({str, type(None)})
_TEXT_FIELDS = ("batch_id", "parameter", "tag", "unit", "quality", "source_key")


def _plain_time(moment: datetime) -> datetime:
    """A datetime subclass's time as a plain datetime: the future check compares, and the
    record writes, the same instant (a subclass may compare as it likes)."""
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        moment.tzinfo,
        fold=moment.fold,
    )


@dataclass(frozen=True)
class CapturedValue:
    """A process value from the plant floor, mapped to a batch parameter.

    ``parameter`` is the recipe path ``procedure/unit procedure/operation/phase/parameter``.
    ``quality`` follows OPC UA: Good, Uncertain or Bad.
    """

    batch_id: str
    parameter: str
    tag: str
    value: Decimal
    unit: str
    source_ts: datetime
    server_ts: datetime | None = None
    quality: str = "Good"
    source_key: str | None = None
    """The source's identity of the value; a second delivery with the same key is skipped."""

    def __post_init__(self) -> None:
        # An int of any size is exact as a Decimal; other non-Decimals are refused at capture.
        value: object = self.value  # typed Decimal, but callers pass ints
        if type(value) is int or (type(value) is not Decimal and isinstance(value, Decimal)):
            # A Decimal subclass's str() (the recorded text) could name another number
            # than the one checked against the limits: the plain Decimal of its digits.
            object.__setattr__(self, "value", Decimal(value))
        for name in _TEXT_FIELDS:  # a str subclass may measure and compare as it likes
            text = getattr(self, name)
            if type(text) is not str and isinstance(text, str):
                object.__setattr__(self, name, _exact_text(text))
        for name in ("source_ts", "server_ts"):
            moment = getattr(self, name)
            if type(moment) is not datetime and isinstance(moment, datetime):
                object.__setattr__(self, name, _plain_time(moment))


_CAPTURED_FIELDS = tuple(f.name for f in fields(CapturedValue))
"""CapturedValue's fields, in order: the columns of :class:`CapturedColumns`."""
_ALL_FIELDS = attrgetter(*_CAPTURED_FIELDS)


def _column(name: str, given: Iterable[Any]) -> tuple[Any, ...]:
    """The items of captured column ``name`` as a tuple (a copy the caller cannot change)."""
    try:
        return tuple(given)
    except TypeError:
        raise BatchError(
            f"captured column {name} is not a sequence: {type(given).__name__}"
        ) from None


class CapturedColumns(Sequence[CapturedValue]):
    """Process values held column by column: the i-th value is ``CapturedValue(batch_id[i],
    parameter[i], ..., source_key[i])``.

    A sequence of :class:`CapturedValue` (indexing, iteration and slicing build
    them, or sub-columns) that ``BatchEngine.capture`` reads column by column
    without building one object per value: a connector delivering tens of
    thousands of values a second hands its columns as they are. Every column
    has one item per value; ``server_ts``, ``quality`` and ``source_key`` may
    be given as ``None`` for "the default of every value" (no server time,
    Good, no key). Each column is copied into a tuple: nothing the caller does
    later changes the values. Only this class is read column by column; a
    subclass is read through its items, as any other sequence.
    """

    __slots__ = _CAPTURED_FIELDS

    # Tuples: a column cannot change length or content after the checks that
    # constructing it made (capture reads them as they are).
    batch_id: tuple[str, ...]
    parameter: tuple[str, ...]
    tag: tuple[str, ...]
    value: tuple[Decimal, ...]
    unit: tuple[str, ...]
    source_ts: tuple[datetime, ...]
    server_ts: tuple[datetime | None, ...]
    quality: tuple[str, ...]
    source_key: tuple[str | None, ...]

    def __init__(
        self,
        batch_id: Sequence[str],
        parameter: Sequence[str],
        tag: Sequence[str],
        value: Sequence[Decimal],
        unit: Sequence[str],
        source_ts: Sequence[datetime],
        server_ts: Sequence[datetime | None] | None = None,
        quality: Sequence[str] | None = None,
        source_key: Sequence[str | None] | None = None,
    ) -> None:
        batch_ids = _column("batch_id", batch_id)
        count = len(batch_ids)
        columns: tuple[Sequence[Any], ...] = (
            batch_ids,
            parameter,
            tag,
            value,
            unit,
            source_ts,
            (None,) * count if server_ts is None else server_ts,
            ("Good",) * count if quality is None else quality,
            (None,) * count if source_key is None else source_key,
        )
        for name, given in zip(_CAPTURED_FIELDS, columns, strict=True):
            column = _column(name, given)
            if name == "source_key" and not set(map(type, column)) <= _KEY_TYPES:
                column = tuple(
                    _exact_text(k) if isinstance(k, str) and type(k) is not str else k
                    for k in column
                )
            if len(column) != count:
                raise BatchError(
                    f"captured columns differ in length: {name} has {len(column)} items, "
                    f"batch_id has {count}"
                )
            object.__setattr__(self, name, column)

    @classmethod
    def of(cls, values: Iterable[CapturedValue]) -> CapturedColumns:
        """The columns of ``values``."""
        every = list(values)
        return cls(*([getattr(v, name) for v in every] for name in _CAPTURED_FIELDS))

    def columns(self) -> tuple[tuple[Any, ...], ...]:
        """The nine columns (tuples), in :class:`CapturedValue`'s field order."""
        columns: tuple[tuple[Any, ...], ...] = _ALL_FIELDS(self)
        return columns

    def __len__(self) -> int:
        return len(self.batch_id)

    @overload
    def __getitem__(self, index: int) -> CapturedValue: ...

    @overload
    def __getitem__(self, index: slice) -> CapturedColumns: ...

    def __getitem__(self, index: int | slice) -> CapturedValue | CapturedColumns:
        if isinstance(index, slice):
            return CapturedColumns(*(column[index] for column in self.columns()))
        return CapturedValue(*(column[index] for column in self.columns()))

    def __iter__(self) -> Iterator[CapturedValue]:
        return map(CapturedValue, *self.columns())

    def picked(self, indices: Iterable[int]) -> CapturedColumns:
        """The values at ``indices``, in that order."""
        chosen = list(indices)
        return CapturedColumns(*([column[i] for i in chosen] for column in self.columns()))

    def __repr__(self) -> str:
        return f"CapturedColumns({len(self)} values)"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CapturedColumns is read-only: cannot set {name!r}")


@dataclass(frozen=True)
class CaptureSource:
    """Who delivers values to ``BatchEngine.capture``: an account and a client.

    ``account_id`` is a service or device account (a user account whose roles
    grant :data:`CAPTURE_PERMISSION`, e.g. the "OT Device" role); values are
    recorded under its name, and an unknown, deactivated, locked or
    unauthorised account is refused. ``client_id`` names the delivering
    client (the connector's MQTT client id, OPC UA session, host...) and is
    recorded in every value's audit entry as ``client_id``.
    """

    account_id: str
    client_id: str


@dataclass(frozen=True)
class ReviewItem:
    """One line of the review-by-exception view."""

    kind: str
    reference: str
    detail: str
    open: bool
    item_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _json(value: Any) -> str:
    return canonicalize(value).decode()


def _weighing_record(
    weighing_id: str,
    batch_id: str,
    material_id: str,
    lot_id: str,
    target: str,
    tolerance: str,
    actual: str,
    unit: str,
    balance_id: str,
) -> SignableRecord:
    """What the weigher and the verifier sign for a weighing."""
    content = {
        "batch_id": batch_id,
        "material_id": material_id,
        "lot_id": lot_id,
        "target": target,
        "tolerance": tolerance,
        "actual": actual,
        "unit": unit,
        "balance_id": balance_id,
    }
    return SignableRecord("weighing", weighing_id, content, batch_id)


class EngineBase:
    """Batch records over one :class:`Database`, with identity and signatures."""

    def __init__(
        self,
        db: Database,
        identity: IdentityService,
        signatures: SignatureService,
        *,
        collector: Actor = OT_COLLECTOR,
        stale_after: timedelta = timedelta(minutes=5),
        future_skew: timedelta = timedelta(seconds=60),
    ) -> None:
        self.db = db
        self.identity = identity
        self.signatures = signatures
        self.collector = collector
        self.stale_after = stale_after
        self.future_skew = future_skew
        """How far a source or server timestamp may lie ahead of this server's clock."""
        self._recipes: dict[tuple[str, str], Recipe] = {}
        # (recipe id, version, parameter path) → whether a phase of it has the parameter
        self._recipe_parameters: dict[tuple[str, str, str], bool] = {}
        self._capture_accounts: dict[str, tuple[Any, ...]] = {}
        """Capture accounts whose row (this image) was checked against its trail."""

    def _now(self) -> datetime:
        return self.db.clock()

    def _ts(self) -> str:
        return format_timestamp(self._now())

    def _user(self, conn: Connection, session: Session, permission: str) -> User:
        return self.identity._authorise(conn, session, permission)

    def _audit(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        object_type: str,
        object_id: str,
        *,
        new: Any = None,
        old: Any = None,
        reason: str | None = None,
    ) -> int:
        return self.db.audit(
            conn, AuditEvent(actor, action, object_type, object_id, new=new, old=old, reason=reason)
        )

    @staticmethod
    def _one(conn: Connection, column: Any, value: str, what: str) -> Any:
        """The row whose ``column`` is ``value``; :class:`BatchError` naming ``what`` if none."""
        row = conn.execute(select(column.class_).where(column == value)).one_or_none()
        if row is None:
            raise BatchError(f"no {what} {value!r}")
        return row

    def _batch(self, conn: Connection, batch_id: str) -> Any:
        return self._one(conn, BatchRow.batch_id, batch_id, "batch")

    def _open_batch(self, conn: Connection, batch_id: str, *allowed: str) -> Any:
        row = self._batch(conn, batch_id)
        if row.status in CLOSED:
            raise RecordClosedError(f"batch {batch_id} is {row.status}: its record cannot change")
        if allowed and row.status not in allowed:
            raise BatchError(f"batch {batch_id} is {row.status}; this needs {' or '.join(allowed)}")
        return row

    def _set_status(
        self,
        conn: Connection,
        actor: Actor,
        batch_id: str,
        old: str,
        new: str,
        reason: str | None = None,
        **columns: Any,
    ) -> None:
        projection.update(conn, BatchRow, {"batch_id": batch_id}, {"status": new, **columns})
        self._audit(
            conn,
            actor,
            "batch.status",
            "batch",
            batch_id,
            old={"status": old},
            new={"status": new},
            reason=reason,
        )

    def _signed_change(
        self,
        credentials: Credentials,
        meaning: str,
        subject: SignableRecord,
        build: Callable[[Connection], SignableRecord],
        change: Callable[[Connection, Actor], Any],
        *,
        reason: str | None = None,
    ) -> Any:
        """Sign a record and change state in ONE transaction (compare-and-set).

        ``build`` runs under the write lock: it checks the state the caller
        saw is still there and returns the record to sign; ``change`` then
        applies the state change as the signer. Both commit with the
        signature or nothing does; a refusal (including "someone else got
        there first") is audited against ``subject`` after the rollback.
        Passwords are checked before the lock is taken.
        """
        signer = self.signatures.authenticate(credentials, meaning, subject)
        try:
            with self.db.transaction() as conn:
                record = build(conn)
                self.signatures.sign_in(conn, signer, record, reason=reason)
                return change(conn, signer.user.actor)
        except GxpError as exc:
            self.signatures.audit_refusal(subject, str(meaning), credentials.user_id, exc)
            raise

    def _check_against_log(
        self,
        conn: Connection,
        entries: Iterable[Entry],
        tables: dict[str, Any],
    ) -> None:
        """Raise :class:`RecordIntegrityError` unless ``tables`` match the log's images.

        ``entries`` are the audit entries that wrote the rows (the trails of
        their objects); ``tables`` maps a projected table to the ``where``
        clause selecting the rows to check. The per-batch check the engine runs
        before it relies on a state (the full check is ``gxpmes verify``).
        """
        by_seq = {entry.seq: entry.event for entry in entries}
        state = replay((seq, by_seq[seq].action, by_seq[seq].new) for seq in sorted(by_seq))
        specs = projected()
        problems: list[RecordProblem] = []
        for table, where in tables.items():
            spec = specs[table]
            found = [dict(r) for r in conn.execute(select(spec.table).where(where)).mappings()]
            problems.extend(compare_rows(spec, state.get(table, {}), found))
        if problems:
            raise RecordIntegrityError(
                "the record does not match its audit trail: "
                + "; ".join(p.line() for p in problems[:5])
            )

    def _check_batch_record(self, conn: Connection, batch_id: str) -> None:
        """The batch row, its exceptions and deviations agree with the log; signatures verify."""
        trail = self.db.ledger.entries_for
        entries = trail("batch", batch_id)
        # Exceptions and deviations are raised under the batch; their later
        # entries (assessment, investigation, closure) are under their own ids.
        for entry in list(entries):
            new = entry.event.new if isinstance(entry.event.new, dict) else {}
            for item in new.get("rows", []):
                row = item.get("row") or {}
                if item.get("table") == "ebr_exception":
                    entries += trail("batch_exception", row["exception_id"])
                elif item.get("table") == "ebr_deviation":
                    entries += trail("deviation", row["deviation_id"])
        self._check_against_log(
            conn,
            entries,
            {
                "ebr_batch": BatchRow.batch_id == batch_id,
                "ebr_exception": ExceptionRow.batch_id == batch_id,
                "ebr_deviation": DeviationRow.batch_id == batch_id,
            },
        )
        bad = [
            f"{s.meaning} by {s.signer_id} on {s.record_type} {s.record_id}: {problem}"
            for s, problem in self.verify_batch_signatures(batch_id)
            if problem is not None
        ]
        if bad:
            raise RecordIntegrityError("signature check failed: " + "; ".join(bad[:5]))

    def verify_batch_signatures(self, batch_id: str) -> list[tuple[Any, str | None]]:
        """Re-check every signature of the batch against the records as they are now."""
        raise NotImplementedError  # provided by the review module

    def _check_recipe_row(self, conn: Connection, recipe_id: str, version: str) -> None:
        """The recipe row matches its audit trail (its approval signatures: see recipes)."""
        self._check_against_log(
            conn,
            self.db.ledger.entries_for("master_recipe", f"{recipe_id}/v{version}"),
            {"ebr_recipe": (RecipeRow.recipe_id == recipe_id) & (RecipeRow.version == version)},
        )

    def _equipment(self, conn: Connection, equipment_id: str) -> Any:
        row = conn.execute(
            select(EquipmentRow).where(EquipmentRow.equipment_id == equipment_id)
        ).one_or_none()
        if row is None:
            raise EquipmentNotReady(f"no equipment {equipment_id!r}")
        return row

    def _log(
        self,
        conn: Connection,
        user: User | Actor,
        equipment_id: str,
        event: str,
        batch_id: str | None,
        comment: str,
    ) -> None:
        actor = user.actor if isinstance(user, User) else user
        projection.insert(
            conn,
            EquipmentLogRow,
            {
                "equipment_id": equipment_id,
                "event": event,
                "batch_id": batch_id,
                "at": self._ts(),
                "by": actor.user_id,
                "comment": comment,
            },
        )
        self._audit(
            conn,
            actor,
            f"equipment.{event}",
            "equipment",
            equipment_id,
            new={"batch_id": batch_id, "comment": comment},
        )

    def recipe(self, recipe_id: str, version: str, *, check: bool = True) -> tuple[Recipe, str]:
        """A recipe version and its status.

        The row is checked against its audit trail (and, if Approved, its two
        signatures) the first time this engine loads it; ``check=False`` is for
        readers that report integrity themselves (the batch record report).
        """
        with self.db.read() as conn:
            row = conn.execute(
                select(RecipeRow).where(
                    RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
                )
            ).one_or_none()
        if row is None:
            raise BatchError(f"no master recipe {recipe_id} v{version}")
        key = (recipe_id, version)
        if not check:
            return Recipe.model_validate(json.loads(row.body)), row.status
        if key not in self._recipes:
            # Checked against its trail once per engine: limits come from this body.
            with self.db.read() as conn:
                # The row only: an engine without trusted system keys (a
                # connector's) cannot verify signatures.
                self._check_recipe_row(conn, recipe_id, version)
            self._recipes[key] = Recipe.model_validate(json.loads(row.body))
        return self._recipes[key], row.status

    def _step(self, conn: Connection, batch_id: str, path: str) -> Any:
        row = conn.execute(
            select(StepRow).where(StepRow.batch_id == batch_id, StepRow.path == path)
        ).one_or_none()
        if row is None:
            raise BatchError(f"batch {batch_id} has no procedural element {path!r}")
        return row

    def _set_step(
        self,
        conn: Connection,
        actor: Actor,
        batch_id: str,
        path: str,
        old: str,
        new: str,
        cause: str,
    ) -> None:
        projection.update(conn, StepRow, {"batch_id": batch_id, "path": path}, {"state": new})
        self._audit(
            conn,
            actor,
            "step.state",
            "batch_step",
            f"{batch_id}/{path}",
            old={"state": old},
            new={"state": new, "cause": cause},
        )

    def _raise_exception(
        self, conn: Connection, batch_id: str, kind: str, detail: str, reference: str
    ) -> str:
        exception_id = str(uuid.uuid4())
        projection.insert(
            conn,
            ExceptionRow,
            {
                "exception_id": exception_id,
                "batch_id": batch_id,
                "kind": kind,
                "detail": detail,
                "reference": reference,
                "raised_at": self._ts(),
                "assessed": False,
                "assessment": None,
            },
        )
        self._audit(
            conn,
            self.collector,
            "exception.raise",
            # Keyed by the batch, so the batch's trail lists every exception it raised.
            "batch",
            batch_id,
            new={"exception_id": exception_id, "kind": kind, "detail": detail},
        )
        return exception_id

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch row as a dict."""
        with self.db.read() as conn:
            return dict(self._batch(conn, batch_id)._mapping)

    def values(self, batch_id: str) -> list[dict[str, Any]]:
        """Every value of a batch, in record order (``seq``, then ``leaf``): captured
        values read from their value blocks' leaves, manual entries from ``ebr_value``.

        Each is a dict of the ``ebr_value`` columns (``manual`` False for captures).
        """
        with self.db.read() as conn:
            rows = self._value_rows(conn, batch_id)
        return [dict(zip(VALUE_COLUMNS, row, strict=True)) for row in rows]

    def _value_rows(
        self, conn: Connection, batch_id: str, under: str | None = None
    ) -> list[tuple[Any, ...]]:
        """The batch's values as rows in :data:`VALUE_COLUMNS` order, sorted by (seq, leaf).

        ``under`` (a phase path) keeps the values of parameters ``LIKE 'under/%'``.
        Captured values come from the leaves of the value blocks that
        ``ebr_value_block`` lists for the batch (and parameters); values that are
        entries of their own (manual entries, captures before value blocks) from
        ``ebr_value``.
        """
        own = select(*(ValueRow.__table__.c[c] for c in VALUE_COLUMNS)).where(
            ValueRow.batch_id == batch_id
        )
        index = select(ValueBlockRow.seq, ValueBlockRow.parameter).where(
            ValueBlockRow.batch_id == batch_id
        )
        if under is not None:
            own = own.where(ValueRow.parameter.like(f"{under}/%"))
            index = index.where(ValueBlockRow.parameter.like(f"{under}/%"))
        rows: list[tuple[Any, ...]] = [tuple(r) for r in conn.execute(own)]
        wanted: dict[int, set[str]] = {}
        for seq, parameter in conn.execute(index):
            wanted.setdefault(seq, set()).add(parameter)
        if wanted:
            from audit.blocks import blob_of, leaves_of
            from audit.schema import BlockRow

            seqs = sorted(wanted)
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                for seq, blob in conn.execute(
                    select(BlockRow.seq, BlockRow.leaves).where(BlockRow.seq.in_(chunk))
                ):
                    parameters = wanted[seq]
                    rows.extend(
                        row
                        for row in block_value_rows(seq, leaves_of(seq, blob_of(blob)))
                        if row[2] == batch_id and row[3] in parameters
                    )
        rows.sort(key=lambda row: (row[0], row[1]))
        return rows

    def steps(self, batch_id: str) -> list[dict[str, Any]]:
        """The procedural elements of a batch and their states."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(StepRow).where(StepRow.batch_id == batch_id).order_by(StepRow.path)
            ).all()
        return [dict(r._mapping) for r in rows]

    def weighings(self, batch_id: str) -> list[dict[str, Any]]:
        """Weighings of a batch."""
        with self.db.read() as conn:
            rows = conn.execute(select(WeighingRow).where(WeighingRow.batch_id == batch_id)).all()
        return [dict(r._mapping) for r in rows]

    def equipment_ids(self, batch_id: str) -> Iterable[str]:
        """Equipment assigned to a batch."""
        return [str(e) for e in json.loads(self.batch(batch_id)["equipment"])]
