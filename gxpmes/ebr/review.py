"""Deviations, review by exception, release and rejection (21 CFR 211.192)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, select

from audit.entry import Actor
from gxpmes.ebr.base import (
    CREATED,
    EXECUTED,
    IN_EXECUTION,
    REJECTED,
    RELEASED,
    REVIEWED,
    ReviewItem,
)
from gxpmes.ebr.execution import BatchExecution
from gxpmes.ebr.schema import (
    DeviationRow,
    ExceptionRow,
    LotRow,
    StepRow,
    WeighingRow,
)
from gxpmes.errors import (
    BatchError,
    ReleaseBlocked,
    StateChangedError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord
from gxpmes.identity.service import Session
from gxpmes.records import writer as projection
from gxpmes.trail.review import REVIEW_RECORD, TrailReviews


class BatchReview(BatchExecution):
    """Deviations, review by exception, release and rejection (21 CFR 211.192)."""

    require_trail_review: bool = True
    """Release needs a recorded review of the batch's audit trail that covers every
    change of its record (EU GMP Annex 11 §9; :mod:`gxpmes.trail`). Set False on an
    engine only where the regulated company's procedure reviews the trail otherwise."""

    @property
    def trail_reviews(self) -> TrailReviews:
        """Recording and checking audit-trail reviews (:class:`gxpmes.trail.TrailReviews`)."""
        return TrailReviews(self.db, self.signatures)

    def open_deviation(self, session: Session, batch_id: str, title: str) -> str:
        """Open a deviation against a batch (blocks release until closed).

        Not on a Reviewed batch: the review signature covers the batch's
        deviations, so a finding after review is a reason to reject the batch.
        """
        deviation_id = f"DEV-{uuid.uuid4().hex[:8].upper()}"
        with self.db.transaction() as conn:
            user = self._user(conn, session, "deviation.open")
            self._open_batch(conn, batch_id, CREATED, IN_EXECUTION, EXECUTED)
            projection.insert(
                conn,
                DeviationRow,
                dict(
                    deviation_id=deviation_id,
                    batch_id=batch_id,
                    title=title,
                    status="open",
                    opened_by=user.user_id,
                ),
            )
            self._audit(
                conn,
                user.actor,
                "deviation.open",
                # Keyed by the batch, so the batch's trail lists every deviation opened on it.
                "batch",
                batch_id,
                new={"deviation_id": deviation_id, "title": title},
            )
        return deviation_id

    def investigate_deviation(
        self, session: Session, deviation_id: str, *, investigation: str, impact: str
    ) -> None:
        """Record the investigation and the impact assessment: open › investigated."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "deviation.investigate")
            row = self._deviation(conn, deviation_id)
            self._open_batch(conn, row.batch_id)
            if row.status != "open":
                raise BatchError(f"deviation {deviation_id} is {row.status}")
            projection.update(
                conn,
                DeviationRow,
                {"deviation_id": deviation_id},
                dict(status="investigated", investigation=investigation, impact=impact),
            )
            self._audit(
                conn,
                user.actor,
                "deviation.investigate",
                "deviation",
                deviation_id,
                old={"status": "open"},
                new={"status": "investigated", "impact": impact},
                reason=investigation,
            )

    def deviation_record(self, deviation_id: str) -> SignableRecord:
        """Signable content of a deviation (its investigation and impact)."""
        with self.db.read() as conn:
            row = self._deviation(conn, deviation_id)
        return SignableRecord(
            "deviation",
            deviation_id,
            {
                "batch_id": row.batch_id,
                "title": row.title,
                "investigation": row.investigation,
                "impact": row.impact,
            },
            row.batch_id,
        )

    def close_deviation(self, deviation_id: str, approver: Credentials, *, conclusion: str) -> None:
        """QA closes an investigated deviation with a signature (Approved)."""
        subject = self.deviation_record(deviation_id)

        def build(conn: Connection) -> SignableRecord:
            row = self._deviation(conn, deviation_id)
            self._open_batch(conn, row.batch_id)
            if row.status != "investigated":
                raise BatchError(
                    f"deviation {deviation_id} is {row.status}; investigate it before closing"
                )
            return self.deviation_record(deviation_id)

        def change(conn: Connection, actor: Actor) -> None:
            projection.update(
                conn,
                DeviationRow,
                {"deviation_id": deviation_id},
                dict(status="closed", closure=conclusion),
            )
            self._audit(
                conn,
                actor,
                "deviation.close",
                "deviation",
                deviation_id,
                old={"status": "investigated"},
                new={"status": "closed"},
                reason=conclusion,
            )

        self._signed_change(approver, Meaning.APPROVED, subject, build, change, reason=conclusion)

    def _deviation(self, conn: Connection, deviation_id: str) -> Any:
        return self._one(conn, DeviationRow.deviation_id, deviation_id, "deviation")

    def review_by_exception(self, batch_id: str) -> list[ReviewItem]:
        """What QA must look at: exceptions, deviations, manual entries, changes, open items."""
        items: list[ReviewItem] = []
        with self.db.read() as conn:
            self._batch(conn, batch_id)
            for row in conn.execute(
                select(ExceptionRow)
                .where(ExceptionRow.batch_id == batch_id)
                .order_by(ExceptionRow.raised_at)
            ).all():
                items.append(
                    ReviewItem(
                        f"exception:{row.kind}",
                        row.reference,
                        row.detail,
                        not row.assessed,
                        row.exception_id,
                        {"assessment": row.assessment},
                    )
                )
            for deviation in conn.execute(
                select(DeviationRow).where(DeviationRow.batch_id == batch_id)
            ).all():
                items.append(
                    ReviewItem(
                        "deviation",
                        deviation.deviation_id,
                        f"{deviation.title} [{deviation.status}]",
                        deviation.status != "closed",
                        deviation.deviation_id,
                        {"impact": deviation.impact, "investigation": deviation.investigation},
                    )
                )
            weighings = (
                conn.execute(
                    select(WeighingRow.weighing_id).where(WeighingRow.batch_id == batch_id)
                )
                .scalars()
                .all()
            )
            phases = conn.execute(
                select(StepRow.path, StepRow.state).where(
                    StepRow.batch_id == batch_id, StepRow.kind == "Phase"
                )
            ).all()
        verified = {
            (s.record_type, s.record_id)
            for s in self.signatures.signatures_in_scope(batch_id)
            if s.meaning == Meaning.VERIFIED
        }
        for weighing_id in weighings:
            if ("weighing", weighing_id) not in verified:
                items.append(
                    ReviewItem(
                        "open:weighing_unverified",
                        weighing_id,
                        "weighing lacks its second-person verification",
                        True,
                    )
                )
        for path, state in phases:
            if state != "Complete":
                items.append(ReviewItem("open:phase_incomplete", path, f"phase is {state}", True))
        for entry in self._changes(batch_id):
            items.append(entry)
        from gxpmes.erp.exceptions import review_items  # the batch's ERP exchange problems

        items.extend(review_items(self.db, batch_id))
        return items

    def _changes(self, batch_id: str) -> list[ReviewItem]:
        changes = []
        for object_type in ("batch",):
            for entry in self.db.ledger.entries_for(object_type, batch_id):
                if entry.event.reason is not None:
                    changes.append(
                        ReviewItem(
                            "change",
                            f"{object_type} {batch_id}",
                            f"{entry.event.action} by {entry.event.actor.printed_name}: "
                            f"{entry.event.old} → {entry.event.new}",
                            False,
                            str(entry.seq),
                            {"reason": entry.event.reason},
                        )
                    )
        return changes

    def exception_record(self, exception_id: str) -> SignableRecord:
        """Signable content of an exception."""
        with self.db.read() as conn:
            row = self._one(conn, ExceptionRow.exception_id, exception_id, "exception")
        return SignableRecord(
            "batch_exception",
            exception_id,
            {
                "batch_id": row.batch_id,
                "kind": row.kind,
                "detail": row.detail,
                "reference": row.reference,
            },
            row.batch_id,
        )

    def assess_exception(self, exception_id: str, reviewer: Credentials, *, comment: str) -> None:
        """QA assesses one exception, with a comment and a signature (Reviewed)."""
        if not comment.strip():
            raise BatchError("an assessment needs a comment")
        subject = self.exception_record(exception_id)

        def build(conn: Connection) -> SignableRecord:
            row = self._one(conn, ExceptionRow.exception_id, exception_id, "exception")
            self._open_batch(conn, row.batch_id, EXECUTED)
            if row.assessed:
                raise StateChangedError(f"exception {exception_id} is already assessed")
            self._check_batch_record(conn, row.batch_id)
            return self.exception_record(exception_id)

        def change(conn: Connection, actor: Actor) -> None:
            projection.update(
                conn,
                ExceptionRow,
                {"exception_id": exception_id},
                dict(assessed=True, assessment=comment),
            )
            self._audit(
                conn,
                actor,
                "exception.assess",
                "batch_exception",
                exception_id,
                old={"assessed": False},
                new={"assessed": True},
                reason=comment,
            )

        self._signed_change(reviewer, Meaning.REVIEWED, subject, build, change, reason=comment)

    def batch_record(self, batch_id: str) -> SignableRecord:
        """What QA signs for the whole batch: its stable content (status excluded)."""
        with self.db.read() as conn:
            batch = self._batch(conn, batch_id)
            values = [row[0] for row in self._value_rows(conn, batch_id)]
            weighings = conn.execute(
                select(WeighingRow)
                .where(WeighingRow.batch_id == batch_id)
                .order_by(WeighingRow.weighing_id)
            ).all()
            exceptions = conn.execute(
                select(ExceptionRow)
                .where(ExceptionRow.batch_id == batch_id)
                .order_by(ExceptionRow.exception_id)
            ).all()
            deviations = conn.execute(
                select(DeviationRow)
                .where(DeviationRow.batch_id == batch_id)
                .order_by(DeviationRow.deviation_id)
            ).all()
        content = {
            "batch_id": batch_id,
            "recipe": f"{batch.recipe_id}/v{batch.recipe_version}",
            "product_id": batch.product_id,
            "lot_id": batch.lot_id,
            "planned": batch.planned_quantity,
            "actual": batch.actual_quantity,
            "unit": batch.unit,
            "executed_at": batch.executed_at,
            "value_seqs": [
                len(values),
                values[0] if values else None,
                values[-1] if values else None,
            ],
            "weighings": [[w.weighing_id, w.lot_id, w.actual] for w in weighings],
            "exceptions": [[e.exception_id, e.kind, e.assessment] for e in exceptions],
            "items": [[i["item_id"], i["kind"]] for i in self.record_items(batch_id)],
            # Ids only: a deviation's investigation and closure are signed on the
            # deviation itself, and may close after the review signature.
            "deviations": [d.deviation_id for d in deviations],
        }
        return SignableRecord("batch", batch_id, content, batch_id)

    def complete_review(self, batch_id: str, reviewer: Credentials) -> None:
        """QA completes the review: every exception assessed → Reviewed (signed)."""
        subject = SignableRecord("batch", batch_id, {}, batch_id)

        def build(conn: Connection) -> SignableRecord:
            open_items = [
                i
                for i in self.review_by_exception(batch_id)
                if i.open and i.kind != "deviation" and not i.kind.startswith("erp:")
            ]
            if open_items:
                raise ReleaseBlocked(
                    f"{len(open_items)} open review item(s): "
                    + "; ".join(f"{i.kind} {i.reference}" for i in open_items[:5])
                )
            self._open_batch(conn, batch_id, EXECUTED)
            self._check_batch_record(conn, batch_id)
            self._check_record_complete(conn, batch_id, "reviewed")
            return self.batch_record(batch_id)

        def change(conn: Connection, actor: Actor) -> None:
            self._set_status(conn, actor, batch_id, EXECUTED, REVIEWED)

        self._signed_change(reviewer, Meaning.REVIEWED, subject, build, change)

    def release(self, batch_id: str, approver: Credentials) -> None:
        """QA releases a reviewed batch; blocked while any deviation is open (211.192)."""
        self._decide(batch_id, approver, Meaning.RELEASED, RELEASED, None)

    def reject(self, batch_id: str, approver: Credentials, *, reason: str) -> None:
        """QA rejects the batch."""
        self._decide(batch_id, approver, Meaning.REJECTED, REJECTED, reason)

    def _decide(
        self, batch_id: str, approver: Credentials, meaning: str, status: str, reason: str | None
    ) -> None:
        subject = SignableRecord("batch", batch_id, {}, batch_id)
        seen: dict[str, Any] = {}

        def build(conn: Connection) -> SignableRecord:
            # Under the write lock: of a release and a reject sent at once, the
            # second finds the batch closed and leaves no signature behind.
            batch = self._open_batch(
                conn, batch_id, REVIEWED, *((EXECUTED,) if status == REJECTED else ())
            )
            seen["batch"] = batch
            self._check_batch_record(conn, batch_id)
            if status == RELEASED:
                self._check_record_complete(conn, batch_id, "released")
            open_deviations = (
                conn.execute(
                    select(DeviationRow.deviation_id).where(
                        DeviationRow.batch_id == batch_id, DeviationRow.status != "closed"
                    )
                )
                .scalars()
                .all()
            )
            if open_deviations and status == RELEASED:
                raise ReleaseBlocked(
                    f"release blocked by open deviation(s): {', '.join(open_deviations)} "
                    "(21 CFR 211.192)"
                )
            if status == RELEASED and self.require_trail_review:
                self.trail_reviews.check_reviewed(batch_id, conn)
            return self.batch_record(batch_id)

        def change(conn: Connection, actor: Actor) -> None:
            batch = seen["batch"]
            self._set_status(
                conn, actor, batch_id, batch.status, status, reason=reason, closed_at=self._ts()
            )
            lot_status = "Released" if status == RELEASED else "Rejected"
            if conn.execute(select(LotRow.lot_id).where(LotRow.lot_id == batch.lot_id)).first():
                old = projection.update(
                    conn, LotRow, {"lot_id": batch.lot_id}, dict(status=lot_status)
                )
                self._audit(
                    conn,
                    actor,
                    "lot.status",
                    "lot",
                    batch.lot_id,
                    old={"status": old["status"]},
                    new={"status": lot_status, "batch_id": batch_id},
                    reason=reason or f"batch {batch_id} {status.lower()}",
                )
            # The decision's ERP documents commit with it, or the decision does not.
            from gxpmes.erp.outbox import emit

            emit(self, conn, "batch.released" if status == RELEASED else "batch.rejected", batch_id)

        self._signed_change(approver, meaning, subject, build, change, reason=reason)

    def verify_batch_signatures(self, batch_id: str) -> list[tuple[Any, str | None]]:
        """Re-check every signature of the batch against the records as they are now."""
        records: dict[tuple[str, str], Any] = {}
        for signature in self.signatures.signatures_in_scope(batch_id):
            key = (signature.record_type, signature.record_id)
            if key in records:
                continue
            loader = {
                "batch_step": lambda rid: self.step_record(batch_id, rid[len(batch_id) + 1 :]),
                "weighing": self.weighing_record,
                "charge": self.charge_record,
                "process_value": lambda rid: self.entry_record(batch_id, rid.rsplit("/", 1)[1])[0],
                "batch_record_item": lambda rid: self.entry_record(batch_id, rid)[0],
                "batch_exception": self.exception_record,
                "deviation": self.deviation_record,
                "batch": self.batch_record,
                REVIEW_RECORD: self.trail_reviews.review_record,
            }.get(signature.record_type)
            if loader is not None:
                records[key] = loader(signature.record_id)
        return self.signatures.verify_scope(batch_id, records)
