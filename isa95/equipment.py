"""Role-based equipment hierarchy (ISA-95 Part 1 / ISA-88 Part 1)."""

from __future__ import annotations

import enum
from collections.abc import Iterator

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Property, Quantity, Text
from isa95.errors import ModelError

__all__ = [
    "ALLOWED_CHILDREN",
    "Equipment",
    "EquipmentCapability",
    "EquipmentClass",
    "EquipmentInformation",
    "EquipmentLevel",
]


class EquipmentLevel(enum.StrEnum):
    """Equipment element levels, spelled as B2MML's EquipmentElementLevel."""

    ENTERPRISE = "Enterprise"
    SITE = "Site"
    AREA = "Area"
    PROCESS_CELL = "ProcessCell"
    UNIT = "Unit"
    PRODUCTION_LINE = "ProductionLine"
    WORK_CELL = "WorkCell"
    PRODUCTION_UNIT = "ProductionUnit"
    STORAGE_ZONE = "StorageZone"
    STORAGE_UNIT = "StorageUnit"
    EQUIPMENT_MODULE = "EquipmentModule"
    CONTROL_MODULE = "ControlModule"


L = EquipmentLevel
_LOWER = frozenset({L.EQUIPMENT_MODULE, L.CONTROL_MODULE})
ALLOWED_CHILDREN: dict[EquipmentLevel, frozenset[EquipmentLevel]] = {
    L.ENTERPRISE: frozenset({L.SITE}),
    L.SITE: frozenset({L.AREA}),
    # Work centres: batch (process cell), continuous (production unit),
    # discrete (production line) and storage (storage zone).
    L.AREA: frozenset({L.PROCESS_CELL, L.PRODUCTION_UNIT, L.PRODUCTION_LINE, L.STORAGE_ZONE}),
    L.PROCESS_CELL: frozenset({L.UNIT}),
    L.PRODUCTION_UNIT: frozenset({L.UNIT}),
    L.PRODUCTION_LINE: frozenset({L.WORK_CELL}),
    L.STORAGE_ZONE: frozenset({L.STORAGE_UNIT}),
    # Work units hold the ISA-88 lower levels.
    L.UNIT: _LOWER,
    L.WORK_CELL: _LOWER,
    L.STORAGE_UNIT: _LOWER,
    L.EQUIPMENT_MODULE: _LOWER,
    L.CONTROL_MODULE: frozenset({L.CONTROL_MODULE}),
}
"""Which levels may sit directly below which (role-based hierarchy)."""


class EquipmentClass(Model):
    """A class of equipment (e.g. "Granulator") with its properties."""

    id: Identifier
    description: Text | None = None
    properties: list[Property] = Field(default_factory=list)


class Equipment(Model):
    """One piece of equipment at a level of the hierarchy, with its children."""

    id: Identifier
    level: EquipmentLevel
    description: Text | None = None
    equipment_class_ids: list[Identifier] = Field(default_factory=list)
    properties: list[Property] = Field(default_factory=list)
    children: list[Equipment] = Field(default_factory=list)
    level_equipment_id: Identifier | None = None
    """V0600 EquipmentLevel/EquipmentID as read when it is not ``id``; None: the writer
    writes ``id``. V0701's EquipmentLevel has no EquipmentID: a V0701 writer refuses one."""

    @model_validator(mode="after")
    def _check_children(self) -> Equipment:
        for child in self.children:
            _check_level(self, child)
        return self

    def add_child(self, child: Equipment) -> Equipment:
        """Attach ``child`` below this element; a wrong level raises :class:`ModelError`."""
        _check_level(self, child)
        if any(c.id == child.id for c in self.children):
            raise ModelError(f"{self.level} {self.id!r} already has a child {child.id!r}")
        self.children.append(child)
        return child

    def walk(self) -> Iterator[Equipment]:
        """This element and everything below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, equipment_id: str) -> Equipment:
        """The element with ``equipment_id`` in this subtree."""
        for element in self.walk():
            if element.id == equipment_id:
                return element
        raise ModelError(f"no equipment {equipment_id!r} below {self.id!r}")


def _check_level(parent: Equipment, child: Equipment) -> None:
    allowed = ALLOWED_CHILDREN[parent.level]
    if child.level not in allowed:
        names = ", ".join(sorted(allowed)) or "nothing"
        raise ModelError(
            f"{child.level} {child.id!r} cannot be placed under {parent.level} {parent.id!r}; "
            f"a {parent.level} may contain: {names}"
        )


class EquipmentCapability(Model):
    """Capability of equipment over a time span (available / committed / unattainable)."""

    equipment_id: Identifier
    capability_type: Identifier = "Available"
    quantity: Quantity | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


class EquipmentInformation(Model):
    """A B2MML EquipmentInformation payload: classes and equipment trees."""

    id: Identifier | None = None
    description: Text | None = None
    classes: list[EquipmentClass] = Field(default_factory=list)
    equipment: list[Equipment] = Field(default_factory=list)
