"""Audit-trail review (Annex 11 §9, 11.10(b), (e)): readable rows, a signed review bound to
exactly what was read, and release only after the batch's trail was reviewed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ebr_support import USERS, Plant
from hypothesis import given
from hypothesis import strategies as st
from trail.conftest import B

from audit.db import open_engine
from gxpmes.errors import (
    BatchError,
    ConfigurationError,
    GxpError,
    RecordChangedError,
    ReleaseBlocked,
    SeparationOfDutiesError,
)
from gxpmes.identity import Credentials
from gxpmes.records.verify import verify_record
from gxpmes.testing import steps
from gxpmes.trail import REVIEW_RECORD, RecordedReview, TrailReviews, TrailScope, collect_trail


def _another_batch(plant: Plant, batch_id: str) -> None:
    for equipment_id in ("GRAN-01", "BLEND-01"):
        plant.engine.record_cleaning(plant.sessions["op1"], equipment_id, "cleaned per SOP-CL-01")
    steps.batch_in_execution(plant, batch_id)


def _record(plant: Plant, scope: TrailScope, reviewer: str = "qa1") -> RecordedReview:
    view = collect_trail(plant.db, scope)
    reviews = TrailReviews(plant.db, plant.signatures)
    return reviews.record(
        scope, view.through_seq, view.content_sha256, plant.creds(reviewer), comment="reviewed"
    )


def test_rows_say_who_when_what_old_new_why_and_meaning(plant: Plant) -> None:
    _another_batch(plant, "B-OTHER")  # another batch's entries stay out
    view = collect_trail(plant.db, TrailScope(batch_id=B))
    actions = [r.action for r in view.rows]
    assert actions[0] == "batch.create"
    assert {"weighing.record", "value.block", "step.state", "deviation.open"} <= set(actions)
    assert all("B-OTHER" not in r.object_id for r in view.rows)
    # Captured values are in the trail as value blocks of this batch, saying how many.
    blocks = [r for r in view.rows if r.action == "value.block"]
    assert all(r.object_id == B and r.new["batch_id"] == B for r in blocks)
    assert sum(r.new["values"] for r in blocks) == len(plant.engine.values(B)) - sum(
        r.action == "value.manual" for r in view.rows
    )
    create = view.rows[0]
    assert (create.actor_id, create.printed_name) == ("sup1", "Sam Supervisor")
    status = next(r for r in view.rows if r.action == "batch.status")
    assert (status.old, status.new) == ({"status": "Created"}, {"status": "In execution"})
    assert status.rows_written == ("ebr_batch B-TR1",)
    investigate = next(r for r in view.rows if r.action == "deviation.investigate")
    assert investigate.reason == "PID overshoot"
    signed = [r for r in view.rows if r.action == "signature.sign"]
    assert {r.meaning for r in signed} >= {"Performed", "Verified", "Reviewed"}
    assert all(r.recorded_at.endswith("Z") for r in view.rows)
    # Signed in a Berlin session: the review's rows show Berlin time and the offset.
    berlin = Credentials("qa1", USERS["qa1"][2], session=plant.session("qa1"))
    plant.engine.trail_reviews.record(
        view.scope, view.through_seq, view.content_sha256, berlin, comment="reviewed"
    )
    rows = collect_trail(plant.db, TrailScope(batch_id=B)).rows
    assert [r.action for r in rows[-2:]] == ["signature.sign", "trail.review"]
    assert rows[-1].local_time == "2026-03-02 09:00:00 Europe/Berlin (UTC+01:00)"
    assert rows[-1].recorded_at == "2026-03-02T08:00:00.000000Z"
    assert rows[-2].meaning == "Reviewed"


def test_same_scope_and_entry_give_the_same_hash(plant: Plant) -> None:
    first = collect_trail(plant.db, TrailScope(batch_id=B))
    _another_batch(plant, "B-LATER")  # entries after, outside the scope
    again = collect_trail(plant.db, TrailScope(batch_id=B), through_seq=first.through_seq)
    assert again.content_sha256 == first.content_sha256
    assert again.rows == first.rows
    later = collect_trail(plant.db, TrailScope(batch_id=B))
    assert later.through_seq > first.through_seq  # the log grew: another content
    assert later.content_sha256 != first.content_sha256


def test_release_needs_a_review_that_covers_every_change(plant: Plant) -> None:
    engine = plant.engine
    engine.close_deviation(plant.state["deviation"], plant.creds("qa2"), conclusion="CAPA-1")
    with pytest.raises(ReleaseBlocked, match="none recorded"):
        engine.release(B, plant.creds("qa2"))
    # A review of part of the trail (one actor) does not clear release.
    _record(plant, TrailScope(batch_id=B, actor="op1"))
    with pytest.raises(ReleaseBlocked, match="none recorded"):
        engine.release(B, plant.creds("qa2"))
    review = _record(plant, TrailScope(batch_id=B))
    engine.release(B, plant.creds("qa2"))
    assert engine.batch(B)["status"] == "Released"
    # The release entry and the lot release are in the trail, after the review.
    rows = collect_trail(plant.db, TrailScope(batch_id=B)).rows
    assert [r.action for r in rows if r.seq > review.seq][-2:] == ["batch.status", "lot.status"]


def test_a_change_after_the_review_needs_another(plant: Plant) -> None:
    _record(plant, TrailScope(batch_id=B))
    plant.engine.close_deviation(plant.state["deviation"], plant.creds("qa2"), conclusion="CAPA")
    with pytest.raises(ReleaseBlocked, match="changed after its last review"):
        plant.engine.release(B, plant.creds("qa2"))
    # Refused attempts are not changes: the refusal above needs no new review.
    _record(plant, TrailScope(batch_id=B))
    with pytest.raises(GxpError):  # op1 may not release: a refusal, audited
        plant.engine.release(B, plant.creds("op1"))
    plant.engine.release(B, plant.creds("qa2"))


def test_a_hash_that_does_not_match_the_trail_is_refused(plant: Plant) -> None:
    plant.engine.close_deviation(plant.state["deviation"], plant.creds("qa2"), conclusion="CAPA")
    view = collect_trail(plant.db, TrailScope(batch_id=B))
    wrong = "0" * 64
    with pytest.raises(RecordChangedError, match="review what the trail holds"):
        plant.engine.trail_reviews.record(
            view.scope, view.through_seq, wrong, plant.creds("qa1"), comment="looks fine"
        )
    # Reviewing an older reading with a newer entry number is refused the same way.
    _another_batch(plant, "B-LATER")
    with pytest.raises(RecordChangedError):
        plant.engine.trail_reviews.record(
            view.scope,
            view.through_seq + 5,
            view.content_sha256,
            plant.creds("qa1"),
            comment="looks fine",
        )
    assert plant.engine.trail_reviews.reviews(B) == []
    refused = plant.db.ledger.entries_for("batch", B)  # the refusal is keyed by its subject
    assert all(e.event.action != "trail.review" for e in refused)
    with pytest.raises(ReleaseBlocked, match="none recorded"):
        plant.engine.release(B, plant.creds("qa2"))


def test_the_trail_reviewer_does_not_release_the_batch(plant: Plant) -> None:
    plant.engine.close_deviation(plant.state["deviation"], plant.creds("qa2"), conclusion="CAPA")
    _record(plant, TrailScope(batch_id=B), reviewer="qa2")  # QA Approver may sign Reviewed
    with pytest.raises(SeparationOfDutiesError):
        plant.engine.release(B, plant.creds("qa2"))
    assert plant.engine.batch(B)["status"] == "Reviewed"


def test_whoever_performed_a_step_does_not_review_its_trail(plant: Plant) -> None:
    view = collect_trail(plant.db, TrailScope(batch_id=B))
    plant.accounts.set_roles(
        plant.admin_creds(), "op2", ["Operator", "QA Reviewer"], reason="validation"
    )
    with pytest.raises(SeparationOfDutiesError):  # op2 verified steps of B
        plant.engine.trail_reviews.record(
            view.scope, view.through_seq, view.content_sha256, plant.creds("op2"), comment="ok"
        )


def test_a_review_is_verified_and_an_edited_review_is_caught(plant: Plant, tmp_path: Path) -> None:
    review = _record(plant, TrailScope(batch_id=B))
    since = datetime(2026, 1, 1, tzinfo=UTC)
    _record(plant, TrailScope(since=since, until=since + timedelta(days=365), action="user.*"))
    keys = plant.signature_keys()
    report = verify_record(plant.db.engine, signature_keys=keys)
    assert report.ok, report.lines()
    assert report.signatures_checked >= 2
    if plant.db.engine.dialect.name != "sqlite":
        return  # the SQL edit below is the SQLite file's; PostgreSQL: tests/records
    path = Path(plant.db.engine.url.database or "")
    plant.db.close()
    copy = tmp_path / "edited.db"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as conn:
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='trigger'"
        ).fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        # Someone with the database login "widens" the review to a later entry.
        conn.execute(
            "UPDATE gx_signature SET manifest = replace(manifest, 'Reviewed', 'Reviewed ') "
            "WHERE record_type = ? AND record_id = ?",
            (REVIEW_RECORD, review.review_id),
        )
    engine = open_engine(copy, read_only=True)
    try:
        edited = verify_record(engine, signature_keys=keys)
    finally:
        engine.dispose()
    assert not edited.ok
    assert any(p.table == "gx_signature" for p in edited.problems), edited.lines()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a batch, or both since and until"),
        ({"since": datetime(2026, 1, 1, tzinfo=UTC)}, "both since and until"),
        ({"batch_id": " "}, "blank"),
        ({"batch_id": "B", "actor": ""}, "actor filter is blank"),
        (
            {"since": datetime(2026, 1, 2, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
            "is not before",
        ),
        ({"since": datetime(2026, 1, 1), "until": datetime(2026, 1, 2, tzinfo=UTC)}, "aware"),
    ],
)
def test_a_scope_must_say_what_it_covers(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrailScope(**kwargs)  # type: ignore[arg-type]


def test_an_entry_number_beyond_the_log_is_refused(plant: Plant) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read through"):
        collect_trail(plant.db, TrailScope(batch_id=B), through_seq=plant.db.ledger.size())


times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    batch=st.one_of(st.none(), st.text(min_size=1).filter(str.strip)),
    span=st.tuples(
        times, st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650))
    ),
    actor=st.one_of(st.none(), st.text(min_size=1).filter(str.strip)),
    action=st.one_of(st.none(), st.sampled_from(["batch.status", "user.*", "signature.s?gn"])),
)
def test_a_scope_survives_its_recorded_form(
    batch: str | None, span: tuple[datetime, timedelta], actor: str | None, action: str | None
) -> None:
    since, length = span
    ranged = batch is None
    scope = TrailScope(
        batch_id=batch,
        since=since if ranged else None,
        until=since + length if ranged else None,
        actor=actor,
        action=action,
    )
    assert TrailScope.from_json(scope.as_json()) == scope


def test_reviews_are_listed_by_batch_and_by_range(plant: Plant) -> None:
    reviews = TrailReviews(plant.db, plant.signatures)
    first = _record(plant, TrailScope(batch_id=B))
    since = datetime(2026, 1, 1, tzinfo=UTC)
    ranged = _record(plant, TrailScope(since=since, until=since + timedelta(days=400)))
    assert [r.review_id for r in reviews.reviews(B)] == [first.review_id]
    assert [r.review_id for r in reviews.reviews()] == [ranged.review_id]
    listed = reviews.reviews(B)[0]
    assert listed.scope == TrailScope(batch_id=B)
    assert listed.manifestation.startswith("Quinn Reviewer (qa1) — Reviewed — ")
    entry = plant.db.ledger.entry(listed.seq)
    assert (entry.event.action, entry.event.reason) == ("trail.review", "reviewed")
    assert isinstance(entry.event.new, dict)
    assert entry.event.new["content_sha256"] == listed.content_sha256


def test_a_batch_that_does_not_exist_has_no_trail_to_review(plant: Plant) -> None:
    """A mistyped batch id's trail is empty: signing it "reviewed" would be a signature
    outside every record, so it is refused and nothing is signed."""
    before = len(plant.signatures.signatures_in_scope("B-TYPO"))
    with pytest.raises(BatchError, match="no batch 'B-TYPO'"):
        _record(plant, TrailScope(batch_id="B-TYPO"))
    assert len(plant.signatures.signatures_in_scope("B-TYPO")) == before == 0
    assert verify_record(plant.db.engine).ok
