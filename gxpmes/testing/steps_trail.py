"""Steps for audit-trail review (EU GMP Annex 11 §9): reviewing a batch's trail, and
release without or after that review. Same conventions as :mod:`gxpmes.testing.steps`."""

from __future__ import annotations

from pytest_bdd import parsers, then, when

from gxpmes.testing.plant import TestPlant
from gxpmes.testing.steps import _attempt
from gxpmes.trail import TrailScope, collect_trail

__all__: list[str] = []  # steps register themselves


@when(parsers.parse('QA completes the review of batch "{batch}" but not of its audit trail'))
def review_without_trail(plant: TestPlant, batch: str) -> None:
    def review() -> None:
        for item in plant.engine.review_by_exception(batch):
            if item.kind.startswith("exception") and item.open:
                plant.engine.assess_exception(
                    item.item_id, plant.creds("qa1"), comment="assessed, no impact"
                )
        plant.engine.complete_review(batch, plant.creds("qa1"))

    _attempt(plant, review)


@when(
    parsers.parse(
        '"{user}" records a review of the audit trail of batch "{batch}" '
        "with a hash the trail does not give"
    )
)
def review_with_wrong_hash(plant: TestPlant, user: str, batch: str) -> None:
    view = collect_trail(plant.db, TrailScope(batch_id=batch))
    wrong = ("0" if view.content_sha256[0] != "0" else "1") + view.content_sha256[1:]
    _attempt(
        plant,
        lambda: plant.engine.trail_reviews.record(
            view.scope, view.through_seq, wrong, plant.creds(user), comment="looks fine"
        ),
    )


@then(parsers.parse('batch "{batch}" has {count:d} recorded audit-trail review(s)'))
def review_count(plant: TestPlant, batch: str, count: int) -> None:
    assert len(plant.engine.trail_reviews.reviews(batch)) == count
