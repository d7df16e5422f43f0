"""ISA-88 recipes: general / site / master / control, procedure hierarchy and formula."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from decimal import Decimal

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Quantity, Text
from isa95.errors import ModelError

__all__ = [
    "EquipmentRequirement",
    "FormulaParameter",
    "Operation",
    "Phase",
    "Procedure",
    "Recipe",
    "RecipeType",
    "UnitProcedure",
]


class RecipeType(enum.StrEnum):
    """The four ISA-88 recipe types."""

    GENERAL = "General"
    SITE = "Site"
    MASTER = "Master"
    CONTROL = "Control"


class FormulaParameter(Model):
    """A process parameter with target and limits in an engineering unit.

    ``low``/``high`` are the acceptance limits; values outside them are
    exceptions when captured during execution.
    """

    id: Identifier
    description: Text | None = None
    target: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    unit: Identifier | None = None

    @model_validator(mode="after")
    def _limits(self) -> FormulaParameter:
        for name in ("target", "low", "high"):
            value = getattr(self, name)
            if value is not None and not value.is_finite():
                raise ModelError(f"parameter {self.id!r}: {name} {value} is not finite")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ModelError(
                f"parameter {self.id!r}: low limit {self.low} > high limit {self.high}"
            )
        if self.target is not None:
            if self.low is not None and self.target < self.low:
                raise ModelError(
                    f"parameter {self.id!r}: target {self.target} below low {self.low}"
                )
            if self.high is not None and self.target > self.high:
                raise ModelError(
                    f"parameter {self.id!r}: target {self.target} above high {self.high}"
                )
        return self

    def within_limits(self, value: Decimal) -> bool:
        """True when ``value`` lies within [low, high] (missing limits do not constrain)."""
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


class EquipmentRequirement(Model):
    """Equipment needed, by equipment class (and optionally a constraint)."""

    equipment_class_id: Identifier
    description: Text | None = None


class Phase(Model):
    """The lowest procedural element: one process-oriented action."""

    id: Identifier
    description: Text | None = None
    parameters: list[FormulaParameter] = Field(default_factory=list)


class Operation(Model):
    """An ordered set of phases run on one unit."""

    id: Identifier
    description: Text | None = None
    phases: list[Phase] = Field(default_factory=list)


class UnitProcedure(Model):
    """An ordered set of operations on one unit (of a required equipment class)."""

    id: Identifier
    description: Text | None = None
    equipment_requirement: EquipmentRequirement | None = None
    operations: list[Operation] = Field(default_factory=list)


class Procedure(Model):
    """The top of the procedural hierarchy."""

    id: Identifier
    description: Text | None = None
    unit_procedures: list[UnitProcedure] = Field(default_factory=list)


class Recipe(Model):
    """A recipe of one of the four ISA-88 types."""

    id: Identifier
    version: Identifier = "1"
    recipe_type: RecipeType = RecipeType.MASTER
    description: Text | None = None
    version_date: AwareDatetime | None = None
    product_id: Identifier | None = None
    product_name: Text | None = None
    batch_size: Quantity | None = None
    formula: list[FormulaParameter] = Field(default_factory=list)
    equipment_requirements: list[EquipmentRequirement] = Field(default_factory=list)
    procedure: Procedure | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Recipe:
        seen: set[str] = set()
        for path, _element in self.procedural_elements():
            if path in seen:
                raise ModelError(f"recipe {self.id!r}: procedural element {path!r} appears twice")
            seen.add(path)
        return self

    def procedural_elements(self) -> Iterator[tuple[str, Model]]:
        """``(path, element)`` for every element: ``proc/up/op/phase`` paths."""
        if self.procedure is None:
            return
        yield self.procedure.id, self.procedure
        for up in self.procedure.unit_procedures:
            up_path = f"{self.procedure.id}/{up.id}"
            yield up_path, up
            for op in up.operations:
                op_path = f"{up_path}/{op.id}"
                yield op_path, op
                for phase in op.phases:
                    yield f"{op_path}/{phase.id}", phase

    def parameter(self, path: str) -> FormulaParameter:
        """A phase parameter by ``proc/up/op/phase/param`` path, or a formula parameter by id."""
        for parameter in self.formula:
            if parameter.id == path:
                return parameter
        head, _, name = path.rpartition("/")
        for element_path, element in self.procedural_elements():
            if element_path == head and isinstance(element, Phase):
                for parameter in element.parameters:
                    if parameter.id == name:
                        return parameter
        raise ModelError(f"recipe {self.id!r} has no parameter {path!r}")
