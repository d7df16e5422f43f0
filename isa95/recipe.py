"""ISA-88 recipes: general / site / master / control, procedure hierarchy and formula."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Quantity, Text
from isa95.errors import ModelError

__all__ = [
    "EquipmentRequirement",
    "FormulaParameter",
    "MaterialRequirement",
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


class MaterialRequirement(Model):
    """A bill-of-materials line: ``quantity`` ± ``tolerance`` of a material, for one phase.

    Quantities are for the recipe's ``batch_size``; a batch of another planned
    size scales quantity and tolerance in proportion.
    """

    material_id: Identifier
    quantity: Quantity
    tolerance: Decimal
    """Absolute, in the quantity's unit."""

    @model_validator(mode="after")
    def _positive(self) -> MaterialRequirement:
        if not self.quantity.value.is_finite() or self.quantity.value <= 0:
            raise ModelError(f"material {self.material_id!r}: quantity must be positive")
        if not self.quantity.unit:
            raise ModelError(f"material {self.material_id!r}: quantity needs a unit")
        if not self.tolerance.is_finite() or self.tolerance < 0:
            raise ModelError(f"material {self.material_id!r}: tolerance must be 0 or more")
        return self


Meaning = Literal["Performed", "Verified"]


def _performed() -> list[Meaning]:
    return ["Performed"]


def _check_order(kind: str, ids: Sequence[str], after: dict[str, list[str]]) -> None:
    """``after`` (id → predecessor sibling ids) names siblings only and has no cycle."""
    known = set(ids)
    for element, predecessors in after.items():
        for predecessor in predecessors:
            if predecessor not in known or predecessor == element:
                raise ModelError(
                    f"{kind} {element!r} comes after {predecessor!r}, which is not another "
                    f"{kind} of the same parent"
                )
    done: set[str] = set()
    for element in ids:  # depth-first: a path that meets itself is a cycle
        stack = [(element, [element])]
        while stack:
            node, path = stack.pop()
            for predecessor in after.get(node, []):
                if predecessor == element:
                    raise ModelError(f"{kind}s {' → '.join([*path, element])} form a cycle")
                if predecessor not in done and predecessor not in path:
                    stack.append((predecessor, [*path, predecessor]))
        done.add(element)


class Phase(Model):
    """The lowest procedural element: one process-oriented action.

    Besides its parameters a phase declares its place in the procedure
    (``after``: sibling phases that must be Complete before it starts; phases
    with no order between them are parallel branches) and its mandatory data:
    ``required`` parameters (ids: each needs a recorded value), ``materials``
    to dispense and charge (the phase's part of the bill of materials),
    in-process ``controls`` with limits, ``samples`` to take, the
    ``signatures`` needed before review, and whether manual entries and IPC
    results need a second person (``verify_entries``).
    """

    id: Identifier
    description: Text | None = None
    parameters: list[FormulaParameter] = Field(default_factory=list)
    after: list[Identifier] = Field(default_factory=list)
    required: list[Identifier] = Field(default_factory=list)
    materials: list[MaterialRequirement] = Field(default_factory=list)
    controls: list[FormulaParameter] = Field(default_factory=list)
    """In-process controls (IPC): each needs a recorded result before the phase completes."""
    samples: list[Identifier] = Field(default_factory=list)
    signatures: list[Meaning] = Field(default_factory=_performed)
    verify_entries: bool = False

    @model_validator(mode="after")
    def _declarations(self) -> Phase:
        if "Performed" not in self.signatures:
            raise ModelError(f"phase {self.id!r}: a phase is always signed Performed")
        for what, ids in (
            ("material", [m.material_id for m in self.materials]),
            ("control", [c.id for c in self.controls]),
            ("sample", list(self.samples)),
            ("parameter", [p.id for p in self.parameters]),
        ):
            if len(set(ids)) != len(ids):
                raise ModelError(f"phase {self.id!r}: a {what} is listed twice")
        unknown = set(self.required) - {p.id for p in self.parameters}
        if unknown:
            raise ModelError(
                f"phase {self.id!r}: required {', '.join(sorted(unknown))} is not a parameter"
            )
        return self


class Operation(Model):
    """A set of phases run on one unit, ordered by their ``after`` lists."""

    id: Identifier
    description: Text | None = None
    phases: list[Phase] = Field(default_factory=list)
    after: list[Identifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> Operation:
        _check_order("phase", [p.id for p in self.phases], {p.id: p.after for p in self.phases})
        return self


class UnitProcedure(Model):
    """Operations on one unit (of a required equipment class), ordered by ``after``."""

    id: Identifier
    description: Text | None = None
    equipment_requirement: EquipmentRequirement | None = None
    operations: list[Operation] = Field(default_factory=list)
    after: list[Identifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> UnitProcedure:
        _check_order(
            "operation", [o.id for o in self.operations], {o.id: o.after for o in self.operations}
        )
        return self


class Procedure(Model):
    """The top of the procedural hierarchy; unit procedures are ordered by ``after``."""

    id: Identifier
    description: Text | None = None
    unit_procedures: list[UnitProcedure] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> Procedure:
        _check_order(
            "unit procedure",
            [u.id for u in self.unit_procedures],
            {u.id: u.after for u in self.unit_procedures},
        )
        return self


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

    def element(self, path: str) -> Model:
        """The procedural element at ``path`` (``proc/up/op/phase``)."""
        for element_path, element in self.procedural_elements():
            if element_path == path:
                return element
        raise ModelError(f"recipe {self.id!r} has no procedural element {path!r}")

    def predecessors(self, path: str) -> list[str]:
        """Paths of the siblings that must be Complete before ``path`` starts."""
        element = self.element(path)
        parent = path.rpartition("/")[0]
        return [f"{parent}/{p}" for p in getattr(element, "after", [])]

    def bill_of_materials(self) -> list[tuple[str, MaterialRequirement]]:
        """Every BOM line with the path of the phase it belongs to."""
        return [
            (path, line)
            for path, element in self.procedural_elements()
            if isinstance(element, Phase)
            for line in element.materials
        ]

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
