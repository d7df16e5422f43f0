"""ISA-95 Part 2/4 operations: segments, definitions, schedules and performance."""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Quantity, Text, check_interval
from isa95.errors import ModelError

__all__ = [
    "DataValue",
    "EquipmentActual",
    "EquipmentRequirement",
    "MaterialActual",
    "MaterialRequirement",
    "MaterialSpecification",
    "MaterialUse",
    "OperationsDefinition",
    "OperationsPerformance",
    "OperationsRequest",
    "OperationsResponse",
    "OperationsSchedule",
    "PersonnelActual",
    "PersonnelRequirement",
    "ProcessSegment",
    "ProcessSegmentInformation",
    "ProductDefinition",
    "ProductInformation",
    "ProductSegment",
    "SegmentParameter",
    "SegmentRequirement",
    "SegmentResponse",
]


class MaterialUse(enum.StrEnum):
    """How a segment uses a material."""

    CONSUMED = "Consumed"
    PRODUCED = "Produced"
    CONSUMABLE = "Consumable"


class DataValue(Model):
    """A named value (parameter, process data, test result) with its unit.

    ``value`` is the text as written; ``data_type`` its B2MML DataType
    (``string``, ``integer``, ``double``, ``duration``, ``boolean``,
    ``dateTime`` …), so a value of any type round-trips exactly.
    """

    id: Identifier
    value: Text | None
    """None: the element has no Value (then no unit or key either)."""
    unit: Identifier | None = None
    description: Text | None = None
    data_type: Identifier | None = "string"
    """None: the Value has no DataType (the writer writes none)."""
    key: Identifier | None = None
    """The Value's Key, when it has one."""
    children: list[DataValue] = Field(default_factory=list)
    """Nested parameters (V0701 ParameterChild, V0600 Parameter in Parameter)."""

    @model_validator(mode="after")
    def _no_value(self) -> DataValue:
        if self.value is None and (self.unit is not None or self.key is not None):
            raise ModelError(f"{self.id!r}: a unit or key needs a value (may be empty text)")
        return self


SegmentParameter = DataValue


class MaterialSpecification(Model):
    """Material a process segment needs or makes."""

    id: Identifier | None = None
    """The specification's ID as read (an ERP's BOM item, say); None: the writer
    derives ``M<n>`` (n: its index)."""
    material_definition_id: Identifier | None = None
    material_class_id: Identifier | None = None
    use: MaterialUse | None = None
    quantity: Quantity | None = None


class ProcessSegment(Model):
    """A business-level view of a production step and the resources it needs."""

    id: Identifier
    description: Text | None = None
    equipment_class_ids: list[Identifier] = Field(default_factory=list)
    personnel_class_ids: list[Identifier] = Field(default_factory=list)
    materials: list[MaterialSpecification] = Field(default_factory=list)
    parameters: list[SegmentParameter] = Field(default_factory=list)
    equipment_specification_ids: list[Identifier | None] = Field(default_factory=list)
    """ID of the EquipmentSegmentSpecification written for ``equipment_class_ids[i]``
    (V0701 only); a missing or None entry: the writer derives ``E<i>``."""
    personnel_specification_ids: list[Identifier | None] = Field(default_factory=list)
    """ID of the PersonnelSegmentSpecification written for ``personnel_class_ids[i]``
    (V0701 only); a missing or None entry: the writer derives ``P<i>``."""


class OperationsDefinition(Model):
    """How to make a product: the segments used, with a bill of material."""

    id: Identifier
    description: Text | None = None
    operations_type: Identifier | None = None
    process_segment_ids: list[Identifier] = Field(default_factory=list)
    bill_of_material: list[MaterialSpecification] = Field(default_factory=list)


class MaterialRequirement(Model):
    """Material an order needs or makes (possibly a specific lot)."""

    material_definition_id: Identifier | None = None
    lot_id: Identifier | None = None
    use: MaterialUse | None = None
    quantity: Quantity | None = None
    id: Identifier | None = None
    """The requirement's ID (None: written as ``M<n>``, its position, where one is required)."""
    material_class_id: Identifier | None = None
    sublot_id: Identifier | None = None
    description: Text | None = None
    other_quantities: list[Quantity] = Field(default_factory=list)
    """Further quantities after ``quantity`` (e.g. a rate and an amount, told apart by Key)."""


class EquipmentRequirement(Model):
    """Equipment a segment of an order needs: by class and/or named equipment."""

    id: Identifier | None = None
    """None: written as ``E<n>`` where the release requires an ID."""
    equipment_class_ids: list[Identifier] = Field(default_factory=list)
    equipment_ids: list[Identifier] = Field(default_factory=list)
    description: Text | None = None
    use: Identifier | None = None
    quantity: Quantity | None = None


class PersonnelRequirement(Model):
    """People a segment of an order needs: by personnel class and/or named persons."""

    id: Identifier | None = None
    """None: written as ``P<n>`` where the release requires an ID."""
    personnel_class_ids: list[Identifier] = Field(default_factory=list)
    person_ids: list[Identifier] = Field(default_factory=list)
    description: Text | None = None
    use: Identifier | None = None
    quantity: Quantity | None = None


class SegmentRequirement(Model):
    """One segment of an order, with when and what."""

    id: Identifier | None = None
    process_segment_id: Identifier | None = None
    description: Text | None = None
    earliest_start: AwareDatetime | None = None
    latest_end: AwareDatetime | None = None
    equipment_ids: list[Identifier] = Field(default_factory=list)
    """Equipment named by a requirement with nothing but one EquipmentID."""
    materials: list[MaterialRequirement] = Field(default_factory=list)
    parameters: list[SegmentParameter] = Field(default_factory=list)
    equipment: list[EquipmentRequirement] = Field(default_factory=list)
    """Equipment requirements with more than one equipment ID (classes, quantity …)."""
    personnel: list[PersonnelRequirement] = Field(default_factory=list)
    children: list[SegmentRequirement] = Field(default_factory=list)
    """Nested segment requirements (V0701 SegmentRequirementChild)."""
    operations_type: Identifier | None = None
    duration: Text | None = None
    """Duration as written (xsd:duration, e.g. ``PT2H``)."""
    operations_definition_id: Identifier | None = None
    """V0701 OperationsDefinitionID as read; None: the writer derives the request's
    ``operations_definition_id``, else its ``id``."""
    operations_segment_id: Identifier | None = None
    """V0701 OperationsSegmentID as read; None: the writer derives
    ``process_segment_id``, else ``id``, else the request's ``id``."""

    @model_validator(mode="after")
    def _interval(self) -> SegmentRequirement:
        check_interval(self.earliest_start, self.latest_end, f"segment requirement {self.id or ''}")
        return self


class OperationsRequest(Model):
    """An order (production request from ERP)."""

    id: Identifier | None = None
    description: Text | None = None
    operations_definition_id: Identifier | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    priority: int | None = None
    segments: list[SegmentRequirement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> OperationsRequest:
        check_interval(self.start, self.end, f"request {self.id or '(no ID)'}")
        return self


class OperationsSchedule(Model):
    """A set of requests sent for execution."""

    id: Identifier | None = None
    description: Text | None = None
    operations_type: Identifier | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    requests: list[OperationsRequest] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> OperationsSchedule:
        check_interval(self.start, self.end, f"schedule {self.id or ''}")
        return self


class MaterialActual(Model):
    """Material actually consumed or produced."""

    id: Identifier | None = None
    """V0701 ID as read (an ERP confirmation, say); None: the writer derives
    ``M<n>`` (n: its index). V0600 has no ID element: a V0600 writer refuses one."""
    material_definition_id: Identifier | None = None
    lot_id: Identifier | None = None
    sublot_id: Identifier | None = None
    use: MaterialUse | None = None
    quantity: Quantity | None = None


class EquipmentActual(Model):
    """Equipment actually used."""

    id: Identifier | None = None
    """V0701 ID as read (an ERP confirmation, say); None: the writer derives
    ``E<n>`` (n: its index). V0600 has no ID element: a V0600 writer refuses one."""
    equipment_id: Identifier
    description: Text | None = None


class PersonnelActual(Model):
    """A person who actually worked on the segment."""

    id: Identifier | None = None
    """V0701 ID as read (an ERP confirmation, say); None: the writer derives
    ``P<n>`` (n: its index). V0600 has no ID element: a V0600 writer refuses one."""
    person_id: Identifier
    description: Text | None = None


class SegmentResponse(Model):
    """What actually happened in one segment."""

    id: Identifier | None = None
    process_segment_id: Identifier | None = None
    description: Text | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    materials: list[MaterialActual] = Field(default_factory=list)
    equipment: list[EquipmentActual] = Field(default_factory=list)
    personnel: list[PersonnelActual] = Field(default_factory=list)
    data: list[DataValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> SegmentResponse:
        check_interval(self.start, self.end, f"segment response {self.id or '(no ID)'}")
        return self


class OperationsResponse(Model):
    """The response to one request: the actuals of an executed order."""

    id: Identifier | None = None
    request_id: Identifier | None = None
    description: Text | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    state: Identifier | None = None
    segments: list[SegmentResponse] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> OperationsResponse:
        check_interval(self.start, self.end, f"response {self.id or '(no ID)'}")
        return self


class OperationsPerformance(Model):
    """A set of responses reported back (e.g. to ERP)."""

    id: Identifier | None = None
    description: Text | None = None
    operations_type: Identifier | None = None
    schedule_id: Identifier | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    responses: list[OperationsResponse] = Field(default_factory=list)

    @model_validator(mode="after")
    def _interval(self) -> OperationsPerformance:
        check_interval(self.start, self.end, f"performance {self.id or ''}")
        return self


class ProductSegment(Model):
    """A product segment: the process segments, parameters and resources it uses."""

    id: Identifier
    description: Text | None = None
    duration: Text | None = None
    process_segment_ids: list[Identifier] = Field(default_factory=list)
    parameters: list[SegmentParameter] = Field(default_factory=list)
    equipment_class_ids: list[Identifier] = Field(default_factory=list)
    personnel_class_ids: list[Identifier] = Field(default_factory=list)
    materials: list[MaterialSpecification] = Field(default_factory=list)
    children: list[ProductSegment] = Field(default_factory=list)


class ProductDefinition(Model):
    """How to make a product (V0600 ProductDefinition; V0701 calls it OperationsDefinition)."""

    id: Identifier
    version: Identifier | None = None
    description: Text | None = None
    published: AwareDatetime | None = None
    production_rule: Text | None = None
    """ProductProductionRule as written."""
    bill_of_materials_id: Identifier | None = None
    bill_of_resources_id: Identifier | None = None
    segments: list[ProductSegment] = Field(default_factory=list)


class ProductInformation(Model):
    """A B2MML ProductInformation payload (V0600): product definitions."""

    id: Identifier | None = None
    description: Text | None = None
    published: AwareDatetime | None = None
    definitions: list[ProductDefinition] = Field(default_factory=list)


class ProcessSegmentInformation(Model):
    """A B2MML ProcessSegmentInformation payload."""

    id: Identifier | None = None
    description: Text | None = None
    segments: list[ProcessSegment] = Field(default_factory=list)
