"""The electronic batch record engine (21 CFR 211.186, 211.188, 211.192).

A batch is created from an *approved* master recipe and runs through
Created › In execution › Executed › Reviewed › Released | Rejected, its
procedural elements driven by the ISA-88 state machine. Every change is an
audit entry written in the same transaction; after Released or Rejected
nothing in the record changes. Values captured from the plant are checked
against the recipe's limits and every exception must be assessed by QA
before release; release is blocked while a deviation is open.

The engine is assembled from one module per job: :mod:`gxpmes.ebr.base`
(shared helpers), :mod:`~gxpmes.ebr.equipment`, :mod:`~gxpmes.ebr.materials`,
:mod:`~gxpmes.ebr.recipes`, :mod:`~gxpmes.ebr.capture`,
:mod:`~gxpmes.ebr.execution` and :mod:`~gxpmes.ebr.review`.
"""

from __future__ import annotations

from gxpmes.ebr.base import (
    CAPTURE_PERMISSION,
    CLOSED,
    CREATED,
    EXECUTED,
    IN_EXECUTION,
    OT_COLLECTOR,
    QUALITIES,
    REJECTED,
    RELEASED,
    REVIEWED,
    CapturedColumns,
    CapturedValue,
    CaptureSource,
    ReviewItem,
)
from gxpmes.ebr.review import BatchReview

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
    "BatchEngine",
    "CaptureSource",
    "CapturedColumns",
    "CapturedValue",
    "ReviewItem",
]


class BatchEngine(BatchReview):
    """Batch records over one :class:`~gxpmes.database.Database`, with identity and signatures."""
