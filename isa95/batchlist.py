"""BatchML batch list: the batches (campaigns, unit procedures …) a batch control system
has scheduled or is running, as exchanged with other systems (IEC 61512-2 / BatchML)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Text, check_interval

__all__ = ["BatchList", "BatchListEntry", "BatchListEntryKind", "BatchMode", "BatchStatus"]


class BatchListEntryKind(StrEnum):
    """BatchML's ``BatchListEntryType`` values (others are written as ``Other``)."""

    CAMPAIGN = "Campaign"
    BATCH = "Batch"
    UNIT_PROCEDURE = "UnitProcedure"
    OPERATION = "Operation"
    PHASE = "Phase"
    OTHER = "Other"


class BatchStatus(StrEnum):
    """BatchML's batch states (others are written as ``Other``)."""

    IDLE = "Idle"
    RUNNING = "Running"
    COMPLETE = "Complete"
    PAUSING = "Pausing"
    PAUSED = "Paused"
    HOLDING = "Holding"
    HELD = "Held"
    RESTARTING = "Restarting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ABORTING = "Aborting"
    ABORTED = "Aborted"
    OTHER = "Other"


class BatchMode(StrEnum):
    """BatchML's control modes (others are written as ``Other``)."""

    AUTOMATIC = "Automatic"
    SEMI_AUTOMATIC = "SemiAutomatic"
    MANUAL = "Manual"
    OTHER = "Other"


def _finite(value: Decimal | None) -> Decimal | None:
    if value is not None and not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return value


Number = Annotated[Decimal, AfterValidator(_finite)]
"""An exact, finite number (xsd:decimal); never a float."""


class BatchListEntry(Model):
    """One entry of a batch list: a campaign, a batch or one of its procedural elements.

    ``entry_type``, ``status`` and ``mode`` hold BatchML's enumerated value or,
    for anything else, the text BatchML writes as ``Other`` with ``OtherValue``.
    """

    id: Identifier
    entry_type: Identifier = BatchListEntryKind.BATCH
    description: Text | None = None
    status: Identifier | None = None
    mode: Identifier | None = None
    external_id: Identifier | None = None
    recipe_id: Identifier | None = None
    recipe_version: Identifier | None = None
    batch_id: Identifier | None = None
    lot_id: Identifier | None = None
    campaign_id: Identifier | None = None
    product_id: Identifier | None = None
    order_id: Identifier | None = None
    start_condition: AwareDatetime | None = None
    """BatchML's ``StartCondition`` (a date-time in both releases' schemas)."""
    requested_start: AwareDatetime | None = None
    actual_start: AwareDatetime | None = None
    requested_end: AwareDatetime | None = None
    actual_end: AwareDatetime | None = None
    priority: Number | None = None
    requested_batch_size: Number | None = None
    actual_batch_size: Number | None = None
    unit: Annotated[str, Field(max_length=64)] | None = None
    """The unit of measure of both batch sizes."""
    notes: list[Text] = Field(default_factory=list)
    equipment_ids: list[Identifier] = Field(default_factory=list)
    equipment_class_ids: list[Identifier] = Field(default_factory=list)
    actual_equipment_ids: list[Identifier] = Field(default_factory=list)
    entries: list[BatchListEntry] = Field(default_factory=list)
    """Nested entries (a campaign's batches, a batch's unit procedures …)."""

    @field_validator("priority", "requested_batch_size", "actual_batch_size", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("numbers must be Decimal, int or str, never float (binary rounding)")
        return value

    @model_validator(mode="after")
    def _intervals(self) -> BatchListEntry:
        check_interval(self.requested_start, self.requested_end, f"batch list entry {self.id!r}")
        check_interval(self.actual_start, self.actual_end, f"batch list entry {self.id!r}")
        return self

    def walk(self) -> list[BatchListEntry]:
        """This entry and every entry nested in it, depth first."""
        found = [self]
        for entry in self.entries:
            found.extend(entry.walk())
        return found


class BatchList(Model):
    """A BatchML ``BatchList``: its header and its entries."""

    id: Identifier | None = None
    """The list header's ``ID``."""
    version: Identifier | None = None
    """The list header's ``Version``."""
    created: AwareDatetime | None = None
    """The list header's ``CreateDate``."""
    description: Text | None = None
    entries: list[BatchListEntry] = Field(default_factory=list)

    def find(self, entry_id: str) -> BatchListEntry | None:
        """The first entry (nested ones too) with ``entry_id``, or None."""
        for top in self.entries:
            for entry in top.walk():
                if entry.id == entry_id:
                    return entry
        return None
