"""Audit-trail review (EU GMP Annex 11 §9, 21 CFR 11.10(b), (e)).

:func:`collect_trail` reads the trail of a scope (a batch, or a time range,
optionally one actor or action) as readable rows with the SHA-256 of exactly
that content; :class:`TrailReviews` records a QA reviewer's signed "audit trail
reviewed" entry for it, and checks before release that a batch's trail was
reviewed (:meth:`TrailReviews.check_reviewed`). Rendering as HTML and PDF is
:mod:`gxpmes.reports.trail`.
"""

from gxpmes.trail.review import (
    REVIEW_ACTION,
    REVIEW_RECORD,
    RecordedReview,
    TrailReviews,
    TrailRow,
    TrailScope,
    TrailView,
    collect_trail,
)

__all__ = [
    "REVIEW_ACTION",
    "REVIEW_RECORD",
    "RecordedReview",
    "TrailReviews",
    "TrailRow",
    "TrailScope",
    "TrailView",
    "collect_trail",
]
