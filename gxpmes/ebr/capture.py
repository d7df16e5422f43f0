"""OT value capture: limits, quality, timestamps, exceptions, stale data, manual entries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from audit.blocks import CanonicalLeaves, LeafProof
from audit.canonical import format_timestamp
from audit.entry import MAX_BLOCK_LEAVES, Actor, AuditEvent
from gxpmes.ebr.base import (
    _ACTIVE,
    CAPTURE_PERMISSION,
    IN_EXECUTION,
    QUALITIES,
    CapturedValue,
    CaptureSource,
)
from gxpmes.ebr.recipes import RecipeRecords
from gxpmes.ebr.schema import (
    BatchRow,
    StepRow,
    ValueRow,
)
from gxpmes.errors import BatchError, CaptureRefused, RecordIntegrityError
from gxpmes.identity.schema import UserRow
from gxpmes.identity.service import Session, _user
from gxpmes.records.images import (
    BLOCK_ACTION,
    VALUE_ACTIONS,
    VALUE_COLUMNS,
    value_leaf,
    value_name,
    value_row,
)
from isa95.errors import ModelError
from isa95.recipe import FormulaParameter, Phase, Recipe

_VALUE_CHARS: int = ValueRow.__table__.c.value.type.length  # type: ignore[attr-defined]
_CLIENT_ID_CHARS = 256
MANUAL_ACTION = "value.manual"
BLOCK_OBJECT = "value_block"
"""Object type of value-block entries; the object id is the batch."""


class ValueCapture(RecipeRecords):
    """OT value capture: limits, quality, timestamps, exceptions, stale data, manual entries."""

    def _limits(self, recipe: Recipe, parameter: str) -> FormulaParameter | None:
        try:
            return recipe.parameter(parameter)
        except ModelError:  # a parameter without limits in the recipe
            return None

    @staticmethod
    def _ahead_of(value: CapturedValue, latest: datetime) -> bool:
        """The value's source or server time lies after ``latest`` (server clock + skew)."""
        return value.source_ts > latest or (
            value.server_ts is not None and value.server_ts > latest
        )

    @staticmethod
    def _phase_parameter(recipe: Recipe, path: str) -> FormulaParameter | None:
        """The parameter ``path`` (``proc/up/op/phase/param``) of a phase, or None."""
        head, _, name = path.rpartition("/")
        for element_path, element in recipe.procedural_elements():
            if element_path == head and isinstance(element, Phase):
                return next((p for p in element.parameters if p.id == name), None)
        return None

    def capture(self, values: Sequence[CapturedValue], *, source: CaptureSource) -> list[int]:
        """Record process values in bulk; returns each value's audit sequence number.

        The values of one call are written as value blocks: one ``value.block``
        entry per batch, committing to the RFC 9162 Merkle root of its values'
        records (the block's leaves, in the order given); value ``i`` of a
        batch in this call is ``ebr_value`` row ``(seq, i)`` and is proved on
        its own by :meth:`prove_value`. Every value's seq is its block's.

        ``source`` identifies who delivers them: a service or device account
        whose roles grant :data:`~gxpmes.ebr.base.CAPTURE_PERMISSION` (the
        block entry is written under that account; the block and each value's
        record carry ``source.client_id``, and each record the account). The
        account row is checked against its audit trail before it is trusted.

        All or nothing: if any value is refused (unknown, inactive, locked or
        unauthorised account; batch not executing; phase not active; parameter
        not in the recipe; naive time; a source or server time more than
        ``future_skew`` ahead of this server's clock; unknown quality) none is
        written, the refusal is audited, and :class:`CaptureRefused` says why.
        Out-of-limit and non-Good values are recorded *and* raise exceptions
        for review.
        """
        if not values:
            return []
        server_now = self._now()
        with self.db.transaction() as conn:
            actor, refused = self._capture_account(conn, source)
            if not refused:
                values = self._not_yet_recorded(conn, values)
                if not values:
                    return []
                refused, contexts = self._check_capture(conn, values, server_now)
                if not refused:
                    assert actor is not None
                    return self._write_values(
                        conn,
                        values,
                        contexts,
                        server_now,
                        manual=False,
                        actor=actor,
                        client_id=source.client_id,
                    )
        with self.db.transaction() as conn:
            self._audit(
                conn,
                actor or self.collector,
                "capture.refused",
                "batch",
                values[0].batch_id,
                new={
                    "count": len(values),
                    "problems": refused[:20],
                    "account": source.account_id,
                    "client_id": str(source.client_id)[:_CLIENT_ID_CHARS],
                },
            )
        raise CaptureRefused(
            f"{len(refused)} of {len(values)} values refused, none written: "
            + "; ".join(refused[:5])
        )

    def _capture_account(
        self, conn: Connection, source: CaptureSource
    ) -> tuple[Actor | None, list[str]]:
        """The actor values are recorded under, or why ``source`` may not capture."""
        if not isinstance(source, CaptureSource):
            return None, [f"capture needs a CaptureSource, not {type(source).__name__}"]
        client = source.client_id
        if (
            not isinstance(client, str)
            or not client.strip()
            or len(client) > _CLIENT_ID_CHARS
            or not client.isprintable()
        ):
            return None, [f"client id {str(client)[:40]!r} is blank, too long or not printable"]
        row = self.identity._row(conn, source.account_id)
        if row is None:
            return None, [f"no account {source.account_id!r}"]
        image = tuple(row)
        if self._capture_accounts.get(source.account_id) != image:
            # Trusted once per row image: a role granted by SQL is not a grant.
            try:
                self._check_against_log(
                    conn,
                    self.db.ledger.entries_for("user", row.user_id),
                    {"gx_user": UserRow.user_id == row.user_id},
                )
            except RecordIntegrityError as exc:
                return None, [f"account {row.user_id!r}: {exc}"]
            self._capture_accounts[source.account_id] = image
        user = _user(row)
        if not user.active or user.locked:
            state = "deactivated" if not user.active else "locked"
            return None, [f"account {user.user_id!r} is {state}"]
        if CAPTURE_PERMISSION not in self.identity.permissions(user):
            return None, [
                f"account {user.user_id!r} lacks permission {CAPTURE_PERMISSION!r} "
                "(a service or device account, e.g. role 'OT Device')"
            ]
        return user.actor, []

    def _not_yet_recorded(
        self, conn: Connection, values: Sequence[CapturedValue]
    ) -> list[CapturedValue]:
        """Drop values whose source key is already recorded (redelivered by the plant side)."""
        keys = [v.source_key for v in values if v.source_key]
        if not keys:
            return list(values)
        recorded: set[str] = set()
        for start in range(0, len(keys), 500):
            found = conn.execute(
                select(ValueRow.source_key).where(
                    ValueRow.source_key.in_(keys[start : start + 500])
                )
            ).scalars()
            recorded.update(key for key in found if key is not None)
        seen: set[str] = set()
        fresh = []
        for value in values:
            if value.source_key:
                if value.source_key in recorded or value.source_key in seen:
                    continue
                seen.add(value.source_key)
            fresh.append(value)
        return fresh

    def _check_capture(
        self, conn: Connection, values: Sequence[CapturedValue], server_now: datetime
    ) -> tuple[list[str], dict[str, Any]]:
        problems: list[str] = []
        contexts: dict[str, Any] = {}
        # What values of one batch parameter share (batch, phase, recipe) is checked once
        # per parameter: None when it may take values, else why not.
        shared: dict[tuple[str, str], str | None] = {}
        latest = server_now + self.future_skew
        for value in values:
            pkey = (value.batch_id, value.parameter)
            if pkey in shared:
                refusal = shared[pkey]
            else:
                refusal = shared[pkey] = self._parameter_refusal(conn, contexts, *pkey)
            if refusal is not None:
                problems.append(f"{value.tag} → {value.batch_id}/{value.parameter}: {refusal}")
                continue
            if value.quality not in QUALITIES:
                refusal = f"quality {value.quality!r} is not Good, Uncertain or Bad"
            elif value.source_ts.utcoffset() is None or (
                value.server_ts is not None and value.server_ts.utcoffset() is None
            ):
                refusal = "naive timestamp"
            elif self._ahead_of(value, latest):
                ahead = max(value.source_ts, value.server_ts or value.source_ts)
                refusal = (
                    f"timestamp {format_timestamp(ahead)} is more than "
                    f"{self.future_skew} ahead of the server clock {format_timestamp(server_now)}"
                )
            elif not isinstance(value.value, Decimal):
                refusal = f"value {value.value!r} is not a Decimal (or int)"
            elif not value.value.is_finite():
                refusal = f"value {value.value} is not finite"
            elif len(text := str(value.value)) > _VALUE_CHARS:  # refused, never rounded
                refusal = (
                    f"value {text[:20]}… has {len(text)} characters; "
                    f"a value row holds at most {_VALUE_CHARS} characters"
                )
            if refusal is not None:
                problems.append(f"{value.tag} → {value.batch_id}/{value.parameter}: {refusal}")
        return problems, contexts

    def _parameter_refusal(
        self, conn: Connection, contexts: dict[str, Any], batch_id: str, parameter: str
    ) -> str | None:
        """Why no value of ``parameter`` in batch ``batch_id`` may be captured now, or None."""
        if batch_id not in contexts:
            batch = conn.execute(
                select(BatchRow).where(BatchRow.batch_id == batch_id)
            ).one_or_none()
            contexts[batch_id] = (
                None
                if batch is None
                else (batch, self.recipe(batch.recipe_id, batch.recipe_version)[0])
            )
        context = contexts[batch_id]
        if context is None:
            return "no such batch"
        batch, recipe = context
        if batch.status != IN_EXECUTION:
            return f"batch is {batch.status}, not In execution"
        phase = parameter.rsplit("/", 1)[0]
        state = conn.execute(
            select(StepRow.state).where(StepRow.batch_id == batch_id, StepRow.path == phase)
        ).scalar_one_or_none()
        if state is None:
            return f"no phase {phase!r} in this batch"
        if self._phase_parameter(recipe, parameter) is None:
            return f"the recipe has no parameter {parameter!r}"
        if state not in _ACTIVE:
            return f"phase is {state}"
        return None

    def _write_values(
        self,
        conn: Connection,
        values: Sequence[CapturedValue],
        contexts: dict[str, Any],
        server_now: datetime,
        *,
        manual: bool,
        actor: Actor | None = None,
        reason: str | None = None,
        client_id: str | None = None,
    ) -> list[int]:
        """Write checked values: captures as value blocks, a manual entry as its own entry.

        Captured values are grouped by batch (in the order given); each group
        is one ``value.block`` entry whose leaves are the values' records
        (:func:`~gxpmes.records.images.value_leaf`), and ``ebr_value`` row
        ``(seq, leaf)`` is its leaf ``leaf``. Returns each value's entry seq.
        """
        who = actor or self.collector
        server_text = format_timestamp(server_now)
        limits_of: dict[tuple[str, str], FormulaParameter | None] = {}
        exceptions: list[tuple[CapturedValue, str, str]] = []
        # Blocks: (batch id, records); each value's block is block_of[i].
        groups: list[tuple[str, list[dict[str, Any]]]] = []
        open_group: dict[str, int] = {}  # batch id → its block still taking values
        block_of: list[int] = []
        for value in values:
            key = (value.batch_id, value.parameter)
            if key not in limits_of:  # one recipe lookup per parameter, not per value
                limits_of[key] = self._limits(contexts[value.batch_id][1], value.parameter)
            limits = limits_of[key]
            in_limits = limits is None or limits.within_limits(value.value)
            if limits is not None and limits.unit and limits.unit != value.unit:
                in_limits = False
            # Flat on purpose (the compiled encoder's fast path).
            record = {
                "batch_id": value.batch_id,
                "parameter": value.parameter,
                "tag": value.tag,
                "value": value.value,
                "unit": value.unit,
                "source_ts": format_timestamp(value.source_ts),
                "server_ts": server_text
                if value.server_ts is None
                else format_timestamp(value.server_ts),
                "quality": value.quality,
                "in_limits": in_limits,
                "source_key": value.source_key,
            }
            if client_id is not None:  # a capture: the leaf names who delivered it
                record["client_id"] = client_id
                record["account"] = who.user_id
            index = open_group.get(value.batch_id)
            if index is None or len(groups[index][1]) >= MAX_BLOCK_LEAVES:
                index = open_group[value.batch_id] = len(groups)
                groups.append((value.batch_id, []))
            groups[index][1].append(record)
            block_of.append(index)
            if not in_limits:
                exceptions.append(
                    (
                        value,
                        "out_of_limit",
                        f"{value.tag} = {value.value} {value.unit} outside "
                        f"[{limits.low if limits else ''}, {limits.high if limits else ''}] "
                        f"{limits.unit if limits else ''}".strip(),
                    )
                )
            if value.quality != "Good":
                exceptions.append((value, "bad_quality", f"{value.tag} quality {value.quality}"))
            if manual:
                exceptions.append(
                    (
                        value,
                        "manual_entry",
                        f"{value.tag} = {value.value} entered by hand: {reason}",
                    )
                )
        value_rows: list[tuple[Any, ...]] = []
        seqs: list[int] = []
        if manual:
            # A person's entry stays an entry of its own (it is signed, referenced by seq).
            (value,) = values
            ((_batch, (record,)),) = groups
            event = AuditEvent(
                who,
                MANUAL_ACTION,
                "process_value",
                f"{value.batch_id}/{value.parameter}",
                new=record,
                reason=reason,
            )
            seq = self.db.ledger.append(event, conn=conn).seq
            value_rows.append(value_row(seq, MANUAL_ACTION, record))
            seqs.append(seq)
        else:
            # One block per batch, all in one append: encoded here by the entry
            # encoder's rules (value_leaf), so the ledger takes them as canonical.
            blocks = [
                (
                    AuditEvent(
                        who,
                        BLOCK_ACTION,
                        BLOCK_OBJECT,
                        batch_id,
                        new={"batch_id": batch_id, "client_id": client_id, "values": len(records)},
                    ),
                    CanonicalLeaves(map(value_leaf, records)),
                )
                for batch_id, records in groups
            ]
            receipts = self.db.ledger.append_blocks(blocks, conn=conn)
            for (_batch, records), receipt in zip(groups, receipts, strict=True):
                seq = receipt.seq
                seqs.append(seq)
                value_rows.extend(
                    (
                        seq,
                        index,
                        r["batch_id"],
                        r["parameter"],
                        r["tag"],
                        str(r["value"]),
                        r["unit"],
                        r["source_ts"],
                        r["server_ts"],
                        r["quality"],
                        False,
                        r["in_limits"],
                        r["source_key"],
                    )
                    for index, r in enumerate(records)
                )
        # Driver-level executemany, as the ledger does: this is the capture hot path.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self._value_insert_sql(conn), value_rows)
        finally:
            cursor.close()
        for value, kind, detail in exceptions:
            self._raise_exception(conn, value.batch_id, kind, detail, f"{value.parameter}")
        if manual:
            return seqs
        return [seqs[index] for index in block_of]

    def _value_insert_sql(self, conn: Connection) -> str:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        return (
            f"INSERT INTO ebr_value ({', '.join(VALUE_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(VALUE_COLUMNS))})"
        )

    def report_data_quality(self, batch_id: str, parameter: str, detail: str) -> None:
        """Input for a batch parameter was refused before capture (malformed, non-finite...).

        While the batch executes this is a ``data_quality`` exception for review;
        otherwise it is recorded in the audit trail only.
        """
        with self.db.transaction() as conn:
            batch = conn.execute(
                select(BatchRow.status).where(BatchRow.batch_id == batch_id)
            ).first()
            if batch is not None and batch.status == IN_EXECUTION:
                self._raise_exception(conn, batch_id, "data_quality", detail, parameter)
            else:
                self._audit(
                    conn,
                    self.collector,
                    "capture.refused",
                    "batch",
                    batch_id,
                    new={"parameter": parameter, "detail": detail},
                )

    def manual_entry(self, session: Session, value: CapturedValue, *, reason: str) -> int:
        """A value typed in by a person (e.g. a handheld reading); always an exception to review."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.capture")
            problems, contexts = self._check_capture(conn, [value], self._now())
            if problems:
                raise CaptureRefused("; ".join(problems))
            return self._write_values(
                conn, [value], contexts, self._now(), manual=True, actor=user.actor, reason=reason
            )[0]

    def check_stale(self, batch_id: str) -> list[str]:
        """Raise a ``stale`` exception for each limited parameter of an active phase
        with no value within ``stale_after``; returns the parameters found stale."""
        now = self._now()
        stale = []
        with self.db.transaction() as conn:
            batch = self._open_batch(conn, batch_id, IN_EXECUTION)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            active = {
                r.path
                for r in conn.execute(
                    select(StepRow).where(StepRow.batch_id == batch_id, StepRow.kind == "Phase")
                ).all()
                if r.state == "Running"
            }
            for path, element in recipe.procedural_elements():
                if path not in active or not isinstance(element, Phase):
                    continue
                for parameter in element.parameters:
                    full = f"{path}/{parameter.id}"
                    last = conn.execute(
                        select(ValueRow.server_ts)
                        .where(ValueRow.batch_id == batch_id, ValueRow.parameter == full)
                        .order_by(ValueRow.seq.desc(), ValueRow.leaf.desc())
                        .limit(1)
                    ).scalar_one_or_none()
                    if last is None or now - datetime.fromisoformat(last) > self.stale_after:
                        self._raise_exception(
                            conn,
                            batch_id,
                            "stale",
                            f"no value for {full} within {self.stale_after}",
                            full,
                        )
                        stale.append(full)
        return stale

    def verify_values(self, batch_id: str) -> list[str]:
        """Compare every stored value with the log; returns the discrepancies.

        A value changed, deleted or added in ``ebr_value`` no longer matches
        (or lacks) the record the log holds for it: the leaf of its value block,
        or the entry of a manual entry. Entries and leaves themselves are
        protected by the ledger's own verification. Values are named ``seq/leaf``.
        """
        problems = []
        stored = {(v["seq"], v["leaf"]): v for v in self.values(batch_id)}
        expected: dict[tuple[int, int], Any] = {}
        ledger = self.db.ledger
        for entry in ledger.entries_for(BLOCK_OBJECT, batch_id):
            if entry.event.action == BLOCK_ACTION:
                for index, leaf in enumerate(ledger.block_leaves(entry.seq)):
                    expected[(entry.seq, index)] = json.loads(leaf)
        batch = self.batch(batch_id)
        recipe, _ = self.recipe(batch["recipe_id"], batch["recipe_version"])
        parameters = [
            f"{path}/{p.id}"
            for path, element in recipe.procedural_elements()
            if isinstance(element, Phase)
            for p in element.parameters
        ]
        for parameter in parameters:
            for entry in ledger.entries_for("process_value", f"{batch_id}/{parameter}"):
                if entry.event.action in VALUE_ACTIONS:
                    expected[(entry.seq, 0)] = entry.event.new
        for key in sorted(expected):
            new = expected[key]
            row = stored.pop(key, None)
            name = value_name(*key)
            if row is None:
                problems.append(f"value {name} ({new['tag']}) is missing from the record")
            elif (row["value"], row["tag"], row["quality"]) != (
                str(new["value"]),
                new["tag"],
                new["quality"],
            ):
                problems.append(
                    f"value {name} ({new['tag']}) differs from its audit entry: "
                    f"{row['value']} vs {new['value']}"
                )
        for key, row in stored.items():
            problems.append(f"value {value_name(*key)} ({row['tag']}) has no audit entry")
        return problems

    def prove_value(self, seq: int, leaf: int = 0, tree_size: int | None = None) -> LeafProof:
        """The proof that captured value ``(seq, leaf)`` is in the log.

        The value's record (the leaf's RFC 8785 bytes), its path to the root of
        value block ``seq``, and that entry's RFC 9162 inclusion proof in the log
        of ``tree_size`` entries (default: now): checked by
        :func:`audit.blocks.check_leaf_proof` from the proof, the block entry's
        bytes and a signed tree head alone. A manual entry is an entry of its own:
        prove it with :meth:`audit.ledger.Ledger.prove_inclusion`.
        """
        with self.db.read() as conn:
            row = conn.execute(
                select(ValueRow.seq).where(ValueRow.seq == seq, ValueRow.leaf == leaf)
            ).first()
        if row is None:
            raise BatchError(f"no captured value {value_name(seq, leaf)}")
        entry = self.db.ledger.entry(seq)
        if entry.event.action != BLOCK_ACTION:
            raise BatchError(
                f"value {value_name(seq, leaf)} is audit entry {seq} of its own "
                f"({entry.event.action}): prove it with the log's inclusion proof"
            )
        return self.db.ledger.prove_leaf(seq, leaf, tree_size=tree_size)
