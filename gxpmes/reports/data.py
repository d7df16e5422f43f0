"""Everything a batch record report shows, gathered once from the engine and the ledger.

The report's verdict is one of three, never a guess:

* ``verified`` — the trail verifies against a signed checkpoint of a trusted
  key, every table agrees with the trail, every signature verifies with a
  trusted system key;
* ``not_checked`` — nothing failed, but something could not be checked
  because no trusted key (or no checkpoint) was given: the e-signatures'
  system countersignatures, or the trail against a checkpoint kept elsewhere;
* ``failed`` — the trail, a table or a signature does not verify.

Without a trusted key a signature is *not checked*, not invalid: its
countersignature cannot be tested against a key from the database being
checked. A signature or record row changed outside the trail is still caught
by the replay (``gxpmes verify``), which needs no key.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from audit.errors import AuditError
from audit.keys import TrustedKey
from gxpmes.ebr.engine import BatchEngine
from gxpmes.errors import GxpError
from gxpmes.records.verify import verify_record
from gxpmes.trail import RecordedReview, TrailScope, TrailView, collect_trail
from isa95.recipe import FormulaParameter, Phase

CAPTURE_ACTION = "value.block"
"""The audit action of a block of captured process values (``new["values"]`` of them)."""
CAPTURE_ACTIONS = frozenset({CAPTURE_ACTION, "value.capture"})
"""Capture entries: value blocks, and single captured values (written before blocks)."""

__all__ = ["NOT_CHECKED", "ReportData", "Series", "collect_report"]

NOT_CHECKED = "not checked (no trusted key)"
"""How a signature whose system key was not given is marked."""


def _captured(action: str, new: Any) -> int:
    """How many values a capture entry holds (a block says how many; else one)."""
    if action == CAPTURE_ACTION and isinstance(new, dict):
        count = new.get("values")
        if type(count) is int and count > 0:
            return count
    return 1


@dataclass
class Series:
    """Captured values of one parameter with its limits."""

    parameter: str
    tag: str
    unit: str
    limits: FormulaParameter | None
    times: list[datetime] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)
    out_of_limit: list[int] = field(default_factory=list)  # indexes into times/values


@dataclass
class ReportData:
    """The content of one batch record report."""

    batch: dict[str, Any]
    recipe_title: str
    yield_percent: Decimal | None
    equipment: list[dict[str, Any]]
    weighings: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    series: list[Series]
    review: list[dict[str, Any]]
    deviations: list[dict[str, Any]]
    signatures: list[dict[str, Any]]
    decision: dict[str, Any] | None
    seal: dict[str, Any]
    generated_at: datetime
    trail: TrailView | None = None
    """Appendix: the batch's audit trail as a reviewer reads it (:mod:`gxpmes.trail`)."""
    trail_reviews: list[RecordedReview] = field(default_factory=list)
    """Recorded reviews of that trail, oldest first."""

    @property
    def trail_listed(self) -> TrailView | None:
        """The appendix's table: the trail without its process-value captures, which the
        process-value section shows (a 14-day batch holds millions; a table of them is no
        reading aid). ``gxpmes audit review --batch`` renders every entry."""
        if self.trail is None:
            return None
        rows = [r for r in self.trail.rows if r.action not in CAPTURE_ACTIONS]
        return dataclasses.replace(self.trail, rows=rows)

    @property
    def trail_captures(self) -> str | None:
        """One line on the captures left out of :attr:`trail_listed`, or None if none."""
        rows = [r for r in self.trail.rows if r.action in CAPTURE_ACTIONS] if self.trail else []
        if not rows:
            return None
        values = sum(_captured(r.action, r.new) for r in rows)
        return (
            f"{values} captured process values in {len(rows)} capture entries "
            f"(entries {rows[0].seq}–{rows[-1].seq}) are shown in the process-value section, "
            f"not listed here; `gxpmes audit review --batch {self.batch['batch_id']}` "
            "renders every entry"
        )

    @property
    def trail_ok(self) -> bool:
        """True when nothing failed verification (it may still be only partly checked)."""
        return bool(self.seal["ok"])

    @property
    def verdict(self) -> str:
        """``verified``, ``not_checked`` or ``failed`` (see the module docstring)."""
        return str(self.seal["verdict"])

    @property
    def signature_summary(self) -> str:
        """``16 signature(s): 2 INVALID, 14 valid`` — how many of each marking."""
        counts = Counter(s["status"] for s in self.signatures)
        parts = [
            f"{counts[status]} {label}"
            for status, label in (
                ("invalid", "INVALID"),
                ("valid", "valid"),
                ("not_checked", NOT_CHECKED),
            )
            if counts[status]
        ]
        return f"{len(self.signatures)} signature(s)" + (": " + ", ".join(parts) if parts else "")

    @property
    def banner(self) -> str | None:
        """The warning printed at the top of every page, or ``None`` when all verified."""
        if self.verdict == "failed":
            return "VERIFICATION FAILED — THIS RECORD CANNOT BE TRUSTED"
        if self.verdict == "not_checked":
            if self.seal["unchecked_signatures"]:
                return "NOT VERIFIED — SIGNATURES NOT CHECKED: NO TRUSTED KEY GIVEN"
            return "NOT VERIFIED — AUDIT TRAIL NOT CHECKED AGAINST A SIGNED CHECKPOINT"
        return None


def collect_report(
    engine: BatchEngine,
    batch_id: str,
    *,
    checkpoint: str | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
) -> ReportData:
    """Gather the report of ``batch_id`` and verify the audit trail and signatures now."""
    batch = engine.batch(batch_id)
    recipe, _status = engine.recipe(batch["recipe_id"], batch["recipe_version"], check=False)
    limits = {
        f"{path}/{p.id}": p
        for path, element in recipe.procedural_elements()
        if isinstance(element, Phase)
        for p in element.parameters
    }

    signatures = []
    by_record: dict[str, list[dict[str, Any]]] = {}
    # With no trusted system key at all, no countersignature can be checked: such
    # signatures are "not checked". Once keys are given, a key outside them is invalid.
    keys_given = bool(engine.signatures.trusted)
    # Every signature of the batch, in signing order, each checked against its record now.
    for signature, problem in engine.verify_batch_signatures(batch_id):
        status = "valid" if problem is None else "invalid" if keys_given else "not_checked"
        entry = {
            "record_type": signature.record_type,
            "record_id": signature.record_id,
            "meaning": signature.meaning,
            "manifestation": signature.manifestation,
            "reason": signature.reason,
            "status": status,
            "marking": {"valid": "valid", "invalid": "INVALID", "not_checked": NOT_CHECKED}[status],
            "valid": status == "valid",
            "problem": problem,
        }
        signatures.append(entry)
        by_record.setdefault(signature.record_id, []).append(entry)

    series: dict[str, Series] = {}
    for value in engine.values(batch_id):
        key = value["parameter"]
        if key not in series:
            series[key] = Series(key, value["tag"], value["unit"], limits.get(key))
        item = series[key]
        item.times.append(datetime.fromisoformat(value["source_ts"]))
        item.values.append(Decimal(value["value"]))
        if not value["in_limits"] or value["quality"] != "Good":
            item.out_of_limit.append(len(item.values) - 1)

    equipment = []
    for equipment_id in engine.equipment_ids(batch_id):
        log = engine.equipment_log(equipment_id)
        cleanings = [e for e in log if e["event"] == "cleaning"]
        equipment.append(
            {
                "equipment_id": equipment_id,
                "used": [e for e in log if e["batch_id"] == batch_id],
                "last_cleaning": cleanings[-1] if cleanings else None,
            }
        )

    weighings = []
    for weighing in engine.weighings(batch_id):
        weighings.append({**weighing, "signatures": by_record.get(weighing["weighing_id"], [])})
    steps = []
    for step in engine.steps(batch_id):
        steps.append({**step, "signatures": by_record.get(f"{batch_id}/{step['path']}", [])})

    unreadable: list[str] = []  # a damaged trail: the seal says FAILED, the report still prints
    try:
        items = engine.review_by_exception(batch_id)
    except (AuditError, GxpError) as exc:
        items = []
        unreadable.append(f"review items not listed: the batch's trail cannot be read ({exc})")
    review = [
        {
            "kind": i.kind,
            "reference": i.reference,
            "detail": i.detail,
            "open": i.open,
            "signatures": by_record.get(i.item_id, []),
            **i.extra,
        }
        for i in items
        if not i.kind.startswith("deviation")
    ]
    deviations = [
        {
            "deviation_id": i.item_id,
            "detail": i.detail,
            "open": i.open,
            "signatures": by_record.get(i.item_id, []),
            **i.extra,
        }
        for i in items
        if i.kind == "deviation"
    ]
    decision = next(
        (
            s
            for s in signatures
            if s["record_type"] == "batch" and s["meaning"] in ("Released", "Rejected")
        ),
        None,
    )

    # The seal is `gxpmes verify --batch`: the trail, this batch's tables replayed from
    # it, and its signatures; any disagreement turns every page red.
    record = verify_record(
        engine.db.engine,
        batch=batch_id,
        checkpoint=checkpoint,
        trusted_keys=trusted_keys,
        signature_keys=dict(engine.signatures.trusted),
    )
    report = record.ledger
    record_problems = [p.line() for p in record.problems if p.kind != "signature"]
    bad_signatures = [s for s in signatures if s["status"] == "invalid"]
    unchecked_signatures = [s for s in signatures if s["status"] == "not_checked"]
    not_checked = []
    if unchecked_signatures:
        not_checked.append(
            f"{len(unchecked_signatures)} signature(s) not checked: no trusted system key given"
        )
    not_checked.extend(unreadable)
    if report.ok and report.checkpoint_key_id is None:
        not_checked.append("audit trail not checked against a signed checkpoint: none given")
    failed = not report.ok or bool(bad_signatures) or bool(record_problems)
    seal = {
        "ok": not failed,
        "verdict": "failed" if failed else "not_checked" if not_checked else "verified",
        "not_checked": not_checked,
        "record_problems": record_problems,
        "rows_checked": record.rows_checked,
        "tree_size": report.tree_size,
        "root": report.root,
        "checkpoint_size": report.checkpoint_size,
        "checkpoint_key_id": report.checkpoint_key_id,
        "summary": (
            f"{report.problem}: {report.detail}"
            if not report.ok
            else f"{len(record_problems)} record problem(s): " + "; ".join(record_problems[:3])
            if record_problems
            else f"{len(bad_signatures)} signature(s) INVALID ({bad_signatures[0]['problem']}); "
            f"audit trail {report.summary()}"
            if bad_signatures
            else report.summary()
        ),
        "first_bad_seq": report.first_bad_seq,
        "signatures_checked": len(signatures) - len(unchecked_signatures),
        "bad_signatures": len(bad_signatures),
        "unchecked_signatures": len(unchecked_signatures),
        "origin": engine.db.ledger.origin,
    }
    trail, trail_reviews = None, []
    try:  # the appendix; a damaged log is the seal's finding, not a reason to print nothing
        trail = collect_trail(engine.db, TrailScope(batch_id=batch_id))
        trail_reviews = engine.trail_reviews.reviews(batch_id)
    except (AuditError, GxpError) as exc:
        not_checked.append(f"audit trail appendix incomplete: {exc}")
    yield_percent = None
    if batch["actual_quantity"]:
        yield_percent = (
            Decimal(batch["actual_quantity"]) / Decimal(batch["planned_quantity"]) * 100
        ).quantize(Decimal("0.01"))
    return ReportData(
        batch=batch,
        recipe_title=f"{recipe.id} v{recipe.version} — {recipe.description or ''}",
        yield_percent=yield_percent,
        equipment=equipment,
        weighings=weighings,
        steps=steps,
        series=list(series.values()),
        review=review,
        deviations=deviations,
        signatures=signatures,
        decision=decision,
        seal=seal,
        generated_at=engine.db.clock(),
        trail=trail,
        trail_reviews=trail_reviews,
    )
