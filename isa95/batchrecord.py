"""BatchML batch production record: what a batch did, as exchanged with other systems."""

from __future__ import annotations

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Text

__all__ = ["BatchProductionRecord", "RecordEvent", "RecordedValue", "TagSeries"]


class RecordedValue(Model):
    """One captured value of a tag at a time."""

    timestamp: AwareDatetime
    value: Text
    quality: Identifier | None = None


class TagSeries(Model):
    """The values of one tag (process value) over the batch."""

    tag: Identifier
    unit: Identifier | None = None
    description: Text | None = None
    data_type: Identifier = "decimal"
    values: list[RecordedValue] = Field(min_length=1)
    """At least one value: BatchML has no empty data set."""
    data_set_id: Identifier | None = None
    """EntryID of the DataSet the series was read from (its first series only); None:
    the writer derives ``<record id>/DS<n>`` (n: the series' index)."""


class RecordEvent(Model):
    """Something that happened: a signature, a deviation, a state change, a comment."""

    id: Identifier
    timestamp: AwareDatetime
    event_type: Identifier = "Other"
    event_subtype: Identifier = "Other"
    message: Text | None = None
    person_id: Identifier | None = None
    equipment_id: Identifier | None = None
    procedural_element: Identifier | None = None


class BatchProductionRecord(Model):
    """A batch production record (BatchML)."""

    id: Identifier
    entry_id: Identifier | None = None
    """The record's EntryID as read when it is not ``id``; None: the writer writes ``id``."""
    batch_id: Identifier | None = None
    lot_id: Identifier | None = None
    material_definition_id: Identifier | None = None
    description: Text | None = None
    record_status: Identifier | None = None
    creation_date: AwareDatetime | None = None
    series: list[TagSeries] = Field(default_factory=list)
    events: list[RecordEvent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> BatchProductionRecord:
        tags = [s.tag for s in self.series]
        if len(tags) != len(set(tags)):
            raise ValueError("each tag may appear in only one series")
        return self
