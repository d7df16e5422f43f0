"""Documents from ERP: production orders, material master and lots, and confirmations.

Taken (``Process`` or ``Sync``):

* ``OperationsSchedule`` (V0701) / ``ProductionSchedule`` (V0600) → planned
  batches (:func:`orders_of` says how a request maps);
* ``MaterialDefinition``, ``MaterialLot`` (their own BOD nouns) and
  ``MaterialInformation`` → material definitions and lots, always received
  into Quarantine;
* ``ConfirmBOD`` and ``Acknowledge<Noun>`` → matched to the documents we sent
  (:mod:`gxpmes.erp.confirmations`).

Every document but a confirmation is answered with a ConfirmBOD through the
outbox, written in the same transaction as its effect: ``Accepted``, or
``Rejected`` with the reasons (the whole document is refused if any part is:
nothing half-applied). A BOD ID already taken is a redelivery: nothing
happens again and no second answer is sent. Bytes that are no document we
take — not XML, unsafe XML (a DOCTYPE), not schema-valid, another noun, a
reused BOD ID with other content — go to ``erp_reject`` (kept once per
SHA-256, at most :data:`MAX_KEPT` bytes) and are answered ``Rejected``.
Nothing a sender can put in a document stops the receiver; only a database
failure does, and then the document stays unacknowledged at its source.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any

from sqlalchemy import Connection, select

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.ebr import planning
from gxpmes.erp.bod import (
    Confirmation,
    Header,
    confirm_bod,
    header_of,
    material_information,
    read_confirmation,
)
from gxpmes.erp.confirmations import apply_confirmation
from gxpmes.erp.outbox import ERP_INTERFACE, enqueue
from gxpmes.erp.schema import InboundRow, OutboxRow, RejectRow
from gxpmes.errors import BatchError, GxpError
from gxpmes.lengths import check_length, length_refusal
from gxpmes.records import writer as projection
from isa95.b2mml.safexml import parse_xml
from isa95.errors import ISA95Error
from isa95.operations import MaterialUse

__all__ = ["MAX_BYTES", "MAX_KEPT", "InboundResult", "Receiver", "orders_of"]

MAX_BYTES = 16 * 1024 * 1024
"""Largest inbound document read; a larger one is refused."""
MAX_KEPT = 1024 * 1024
"""Bytes of a refused document kept in ``erp_reject`` (size and SHA-256 always)."""

_SCHEDULES = ("OperationsSchedule", "ProductionSchedule")
_MATERIALS = ("MaterialDefinition", "MaterialLot", "MaterialInformation")
_VERSION_KEYS = ("RecipeVersion", "recipe_version")


@dataclass
class InboundResult:
    """What became of one inbound document."""

    outcome: str
    """accepted | rejected | invalid | duplicate | confirmation"""
    detail: str
    key: str
    reply_message_id: str | None = None
    effects: list[str] = field(default_factory=list)


def orders_of(schedule: Any) -> list[planning.PlannedBatch]:
    """The planned batches an OperationsSchedule asks for, one per OperationsRequest.

    Order id = the request's ID; recipe = its OperationsDefinitionID (else the
    first segment's ProcessSegmentID), version = a segment parameter
    ``RecipeVersion`` if given; product, quantity and planned lot = the
    material requirement with use ``Produced``; dates = the request's
    start/end, else the segments' earliest start / latest end.
    """
    orders = []
    if not schedule.requests:
        raise BatchError("the schedule holds no OperationsRequest")
    for request in schedule.requests:
        if not request.id:
            raise BatchError("an OperationsRequest has no ID (the production order number)")
        recipe = request.operations_definition_id or next(
            (s.process_segment_id for s in request.segments if s.process_segment_id), None
        )
        if not recipe:
            raise BatchError(f"order {request.id}: no OperationsDefinitionID names the recipe")
        produced = next(
            (m for s in request.segments for m in s.materials if m.use == MaterialUse.PRODUCED),
            None,
        )
        if produced is None or produced.material_definition_id is None:
            raise BatchError(f"order {request.id}: no material requirement with use Produced")
        if produced.quantity is None:
            raise BatchError(f"order {request.id}: the produced material has no quantity")
        version = next(
            (p.value for s in request.segments for p in s.parameters if p.id in _VERSION_KEYS),
            None,
        )
        starts = [s.earliest_start for s in request.segments if s.earliest_start]
        ends = [s.latest_end for s in request.segments if s.latest_end]
        orders.append(
            planning.PlannedBatch(
                order_id=request.id,
                product_id=produced.material_definition_id,
                recipe_id=recipe,
                recipe_version=version,
                lot_id=produced.lot_id,
                quantity=produced.quantity.value,
                unit=produced.quantity.unit or "",
                earliest_start=request.start or (min(starts) if starts else None),
                latest_end=request.end or (max(ends) if ends else None),
            )
        )
    ids = [o.order_id for o in orders]
    if len(set(ids)) != len(ids):
        raise BatchError("the schedule names an order twice")
    return orders


def _split(root: str) -> tuple[str | None, str]:
    for verb in ("Process", "Sync"):
        if root.startswith(verb):
            return verb, root[len(verb) :]
    return None, root


class Receiver:
    """Takes inbound documents into one database through the engine's rules."""

    def __init__(
        self,
        engine: Any,
        b2mml: Any,
        *,
        sender: str = "MES",
        actor: Actor = ERP_INTERFACE,
        assume_timezone: tzinfo | None = None,
    ) -> None:
        self.engine = engine
        self.db = engine.db
        self.b2mml = b2mml
        self.sender = sender
        self.actor = actor
        self.assume_timezone = assume_timezone

    # ------------------------------------------------------------- helpers

    def _reply(
        self, conn: Connection, header: Header | None, accepted: bool, reasons: list[str]
    ) -> str:
        message_id = str(uuid.uuid4())
        version = header.version if header is not None else "V0701"
        body = confirm_bod(
            self.b2mml,
            header,
            accepted=accepted,
            reasons=reasons,
            bod_id=message_id,
            sender=self.sender,
            created=self.db.clock(),
            version=version,
        )
        return enqueue(
            self.db,
            conn,
            message_id=message_id,
            batch_id=None,
            event="inbound.confirm",
            document="ConfirmBOD",
            root="ConfirmBOD",
            version=version,
            body=body,
            confirm=False,
            # A BODID too long for the column is still named in the ConfirmBOD's body.
            correlation_id=None if header is None else _fitting_bod_id(header.bod_id),
            actor=self.actor,
        )

    def _taken(self, conn: Connection, key: str) -> Any:
        return conn.execute(select(InboundRow).where(InboundRow.bod_id == key)).one_or_none()

    def _record(
        self,
        conn: Connection,
        key: str,
        header: Header,
        digest: str,
        body: bytes,
        outcome: str,
        detail: str,
        reply: str | None,
    ) -> None:
        projection.insert(
            conn,
            InboundRow,
            dict(
                bod_id=key,
                root=header.root,
                sender=header.sender,
                sha256=digest,
                received_at=format_timestamp(self.db.clock()),
                outcome=outcome,
                detail=detail,
                reply_message_id=reply,
                body=body.decode("utf-8", "replace"),
            ),
        )
        self.db.audit(
            conn,
            AuditEvent(
                self.actor,
                "erp.inbound",
                "erp_inbound",
                key,
                new={"root": header.root, "sha256": digest, "outcome": outcome, "detail": detail},
            ),
        )

    def _invalid(
        self, body: bytes, digest: str, origin: str, reason: str, header: Header | None
    ) -> InboundResult:
        with self.db.transaction() as conn:
            if conn.execute(
                select(RejectRow.reject_id).where(RejectRow.reject_id == digest)
            ).first():
                return InboundResult("duplicate", f"already refused: {reason}", digest)
            reply = self._reply(conn, header, False, [reason])
            projection.insert(
                conn,
                RejectRow,
                dict(
                    reject_id=digest,
                    received_at=format_timestamp(self.db.clock()),
                    source=origin[:512],
                    reason=reason[:4000],
                    size=len(body),
                    payload=body[:MAX_KEPT],
                    reply_message_id=reply,
                ),
            )
            self.db.audit(
                conn,
                AuditEvent(
                    self.actor,
                    "erp.reject",
                    "erp_reject",
                    digest,
                    new={"source": origin[:512], "reason": reason[:4000], "size": len(body)},
                ),
            )
        return InboundResult("invalid", reason, digest, reply)

    # ------------------------------------------------------------- handling

    def handle(self, body: bytes, origin: str) -> InboundResult:
        """Take one inbound document; returns what became of it.

        Raises only for a database failure (the caller leaves the document
        at its source, to be redelivered).
        """
        return self.handle_many([(body, origin)])[0]

    def handle_many(self, items: list[tuple[bytes, str]]) -> list[InboundResult]:
        """Take several documents in order; consecutive confirmations share one transaction.

        Results are in the order of ``items``. A database failure raises and
        leaves every document of the call to be redelivered (all are idempotent).
        """
        results: list[InboundResult | None] = [None] * len(items)
        group: list[tuple[int, _Parsed, Confirmation]] = []

        def flush() -> None:
            for index, result in self._confirmations(group):
                results[index] = result
            group.clear()

        for index, (body, origin) in enumerate(items):
            parsed = self._prepare(body, origin)
            if isinstance(parsed, InboundResult):
                results[index] = parsed
            elif parsed.header.root == "ConfirmBOD" or parsed.header.root.startswith("Acknowledge"):
                try:
                    confirmation = read_confirmation(parsed.tree)
                    if _fitting_bod_id(confirmation.bod_id) != confirmation.bod_id:
                        # Recorded under the key it was taken with (sha256 of the bytes).
                        confirmation = replace(confirmation, bod_id=parsed.key)
                    group.append((index, parsed, confirmation))
                except (GxpError, ISA95Error) as exc:
                    results[index] = self._invalid(
                        body, parsed.digest, origin, str(exc), parsed.header
                    )
            else:
                flush()
                results[index] = self._business(parsed)
        flush()
        return [r for r in results if r is not None]

    def _prepare(self, body: bytes, origin: str) -> InboundResult | _Parsed:
        """Parse and validate; a refused or already taken document is answered here."""
        digest = hashlib.sha256(body).hexdigest()
        if len(body) > MAX_BYTES:
            return self._invalid(
                body, digest, origin, f"document larger than {MAX_BYTES} bytes", None
            )
        header: Header | None = None
        try:
            tree = parse_xml(body)
            header = header_of(tree)
            issues = self.b2mml.validate(body, header.version)
            if issues:
                lines = "; ".join(f"line {i.line} <{i.element}>: {i.message}" for i in issues[:5])
                raise BatchError(f"{header.version} <{header.root}> is not schema-valid: {lines}")
            check_length(BatchError, "sender LogicalID", header.sender, InboundRow.sender)
        except (GxpError, ISA95Error) as exc:
            return self._invalid(body, digest, origin, str(exc), header)
        except Exception as exc:  # lxml and decoders: the document's fault, not ours
            return self._invalid(body, digest, origin, f"unreadable document: {exc}", header)
        key = _fitting_bod_id(header.bod_id) or f"sha256:{digest}"
        with self.db.read() as conn:
            taken = self._taken(conn, key)
        if taken is not None:
            if taken.sha256 == digest:
                return InboundResult("duplicate", "already taken", key, taken.reply_message_id)
            return self._invalid(
                body, digest, origin, f"BOD ID {key} was already taken with other content", header
            )
        return _Parsed(tree, header, key, digest, body, origin)

    def _business(self, parsed: _Parsed) -> InboundResult:
        """Orders, materials and lots: applied whole, or rejected whole with the reasons."""
        header, key, digest, body = parsed.header, parsed.key, parsed.digest, parsed.body
        origin = parsed.origin
        verb, noun = _split(header.root)
        try:
            if verb is not None and noun in _SCHEDULES:
                document = self.b2mml.read(body, assume_timezone=self.assume_timezone)
                work = ("orders", orders_of(document.model), verb == "Sync")
            elif verb is not None and noun in _MATERIALS:
                if noun == "MaterialInformation":
                    information = self.b2mml.read(body, assume_timezone=self.assume_timezone).model
                else:
                    information = material_information(self.b2mml, parsed.tree, header)
                work = ("materials", information, verb == "Sync")
            else:
                raise BatchError(
                    f"<{header.root}> is not a document the MES takes (Process/Sync "
                    "OperationsSchedule, ProductionSchedule, MaterialDefinition, MaterialLot, "
                    "MaterialInformation; ConfirmBOD; Acknowledge*)"
                )
        except (GxpError, ISA95Error) as exc:
            return self._invalid(body, digest, origin, str(exc), header)
        try:
            with self.db.transaction() as conn:
                if self._taken(conn, key) is not None:  # another receiver was quicker
                    return InboundResult("duplicate", "already taken", key)
                effects = self._apply(conn, work, key)
                detail = "; ".join(effects) or "nothing to change"
                reply = self._reply(conn, header, True, [])
                self._record(conn, key, header, digest, body, "Accepted", detail, reply)
            return InboundResult("accepted", detail, key, reply, effects)
        except (GxpError, ISA95Error) as exc:
            reason = str(exc)
        with self.db.transaction() as conn:
            if self._taken(conn, key) is not None:
                return InboundResult("duplicate", "already taken", key)
            reply = self._reply(conn, header, False, [reason])
            self._record(conn, key, header, digest, body, "Rejected", reason, reply)
        return InboundResult("rejected", reason, key, reply)

    def _apply(self, conn: Connection, work: tuple[str, Any, bool], key: str) -> list[str]:
        kind, payload, replace = work
        source = f"BOD {key}"
        effects = []
        if kind == "orders":
            for order in payload:
                done = planning.plan_batch(
                    self.engine, conn, self.actor, order, source=source, replace=replace
                )
                effects.append(f"order {order.order_id} {done}")
            return effects
        for definition in payload.definitions:
            done = planning.define_material(
                self.engine,
                conn,
                self.actor,
                definition.id,
                description=definition.description,
                classes=list(definition.material_class_ids),
                properties=[
                    {"id": p.id, "value": p.value, "unit": p.unit} for p in definition.properties
                ],
                source=source,
            )
            effects.append(f"material {definition.id} {done}")
        for lot in payload.lots:
            if lot.material_definition_id is None or lot.quantity is None:
                raise BatchError(f"lot {lot.id}: needs MaterialDefinitionID and Quantity")
            if lot.status not in (None, "", "Quarantine"):
                # ERP does not release material into GMP use: QA does, in the MES.
                effects.append(f"lot {lot.id}: ERP status {lot.status!r} ignored")
            done = planning.receive_lot(
                self.engine,
                conn,
                self.actor,
                lot.id,
                lot.material_definition_id,
                lot.quantity.value,
                lot.quantity.unit or "",
                source=source,
            )
            effects.append(f"lot {lot.id} {done} in Quarantine")
        if not effects:
            raise BatchError("the document defines no material and no lot")
        return effects

    def _confirmations(
        self, group: list[tuple[int, _Parsed, Confirmation]]
    ) -> list[tuple[int, InboundResult]]:
        """Match confirmations to sent documents, all in one transaction."""
        if not group:
            return []
        results = []
        with self.db.transaction() as conn:
            for index, parsed, confirmation in group:
                if self._taken(conn, parsed.key) is not None:
                    results.append((index, InboundResult("duplicate", "already taken", parsed.key)))
                    continue
                applied = apply_confirmation(self.db, conn, confirmation)
                detail = ", ".join(f"{m} {o}" for m, o in applied.outcomes.items())
                self._record(
                    conn,
                    parsed.key,
                    parsed.header,
                    parsed.digest,
                    parsed.body,
                    "Accepted",
                    detail,
                    None,
                )
                results.append(
                    (
                        index,
                        InboundResult(
                            "confirmation",
                            detail,
                            parsed.key,
                            None,
                            list(applied.outcomes.values()),
                        ),
                    )
                )
        return results


def _fitting_bod_id(bod_id: str | None) -> str | None:
    """``bod_id``, or None when the MES's BOD id columns (128 characters) cannot hold it:
    such a document is keyed by the SHA-256 of its bytes instead."""
    if bod_id is None or length_refusal("BODID", bod_id, OutboxRow.correlation_id):
        return None
    return bod_id


@dataclass(frozen=True)
class _Parsed:
    """A schema-valid document not taken before, ready to be applied."""

    tree: Any
    header: Header
    key: str
    digest: str
    body: bytes
    origin: str
