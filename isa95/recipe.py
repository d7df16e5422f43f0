"""ISA-88 recipes: general / site / master / control, procedure hierarchy and formula."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from isa95.common import AwareDatetime, Identifier, Model, Quantity, Text
from isa95.errors import ModelError

__all__ = [
    "Constraint",
    "EquipmentConnection",
    "EquipmentElement",
    "EquipmentProceduralElement",
    "EquipmentRequirement",
    "FormulaParameter",
    "Link",
    "LinkEnd",
    "MaterialRequirement",
    "Operation",
    "Phase",
    "Procedure",
    "ProcedureLogic",
    "Recipe",
    "RecipeElement",
    "RecipeType",
    "Step",
    "Transition",
    "UnitProcedure",
]


class RecipeType(enum.StrEnum):
    """The four ISA-88 recipe types."""

    GENERAL = "General"
    SITE = "Site"
    MASTER = "Master"
    CONTROL = "Control"


_NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class FormulaParameter(Model):
    """A process parameter with target and limits in an engineering unit.

    ``low``/``high`` are the acceptance limits; values outside them are
    exceptions when captured during execution.

    ``data_type`` is the BatchML DataType of the value (``decimal``,
    ``integer``, ``double``, ``duration``, ``boolean``, ``dateTime``,
    ``string``, ``Measure`` …). A value that is a number is carried exactly in
    ``target``; ``value`` holds the value as written whenever that differs
    from ``target`` written out (``"012.50"``, ``"1.5E3"``) or is no number
    at all (``"PT5M"``, ``"true"``, ``"2026-01-01T08:00:00Z"``), so every
    DataType's lexical value survives a round trip.
    """

    id: Identifier
    description: Text | None = None
    target: Decimal | None = None
    low: Decimal | None = None
    high: Decimal | None = None
    unit: Identifier | None = None
    value: Text | None = None
    """The value as written, when ``target`` does not say it exactly (see above)."""
    data_type: Identifier = "decimal"
    interpretation: Identifier = "Constant"
    """BatchML DataInterpretation of the value."""
    parameter_type: Identifier = "ProcessParameter"
    subtypes: list[Identifier] = Field(default_factory=list)
    """ParameterSubType values (the LowLimit/HighLimit sub-parameters are ``low``/``high``)."""
    low_id: Identifier | None = None
    """ID of the LowLimit sub-parameter as read (a QM characteristic, say); None: the
    writer derives ``<id>.low``."""
    high_id: Identifier | None = None
    """ID of the HighLimit sub-parameter as read; None: the writer derives ``<id>.high``."""
    low_parameter_type: Identifier | None = None
    """ParameterType of the LowLimit sub-parameter; None: ``ProcessParameter``."""
    high_parameter_type: Identifier | None = None
    """ParameterType of the HighLimit sub-parameter; None: ``ProcessParameter``."""

    @model_validator(mode="after")
    def _limits(self) -> FormulaParameter:
        if self.value is not None and self.target is not None:
            text = self.value.strip()
            if not _NUMERIC_TEXT.fullmatch(text) or Decimal(text) != self.target:
                raise ModelError(
                    f"parameter {self.id!r}: value {self.value!r} is not the target {self.target}"
                )
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


class Constraint(Model):
    """A condition on the equipment a requirement accepts (format not fixed by ISA-88)."""

    id: Text | None = None
    condition: Text | None = None


class EquipmentRequirement(Model):
    """Equipment needed, by equipment class (and optionally constraints)."""

    equipment_class_id: Identifier
    description: Text | None = None
    constraints: list[Constraint] = Field(default_factory=list)


class LinkEnd(Model):
    """One end of a procedure-logic link: a step or transition (or other) id."""

    id: Text
    type: Identifier
    """``Step``, ``Transition``, ``Begin``, ``End`` … (FromType / ToType)."""
    scope: Identifier = "External"
    """IDScope: ``External`` (an element of the procedure logic) or ``Internal``."""


class Link(Model):
    """A link in a procedure function chart: control or other flow between ends."""

    id: Identifier
    from_ids: list[LinkEnd] = Field(default_factory=list)
    to_ids: list[LinkEnd] = Field(default_factory=list)
    link_type: Identifier = "ControlLink"
    depiction: Identifier = "LineAndArrow"
    evaluation_order: Text | None = None
    description: Text | None = None


class Step(Model):
    """One use of a recipe element in the procedure logic."""

    id: Identifier
    recipe_element_id: Text
    recipe_element_version: Text = ""
    description: Text | None = None


class Transition(Model):
    """A transition of the procedure logic with its condition (as written)."""

    id: Identifier
    condition: Text
    annotation: Text | None = None
    description: Text | None = None


class ProcedureLogic(Model):
    """An ISA-88 procedure function chart: steps and transitions joined by links."""

    links: list[Link] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)

    def successors(self, node_id: str) -> list[str]:
        """Ids every link leads to from ``node_id`` (a step or transition id)."""
        return [
            end.id
            for link in self.links
            if any(start.id == node_id for start in link.from_ids)
            for end in link.to_ids
        ]


class RecipeElement(Model):
    """A BatchML recipe element the procedural hierarchy does not describe.

    Begin/End/Allocation symbols, elements used by steps of the procedure
    logic, or typed elements outside a Procedure › UnitProcedure › Operation ›
    Phase tree, with their parameters and nested elements.
    """

    id: Identifier
    element_type: Identifier
    """RecipeElementType: ``Begin``, ``End``, ``Operation``, ``Phase``, ``Other`` …"""
    version: Identifier | None = None
    description: Text | None = None
    actual_equipment_ids: list[Identifier] = Field(default_factory=list)
    equipment_requirements: list[EquipmentRequirement] = Field(default_factory=list)
    parameters: list[FormulaParameter] = Field(default_factory=list)
    procedure_logic: ProcedureLogic | None = None
    elements: list[RecipeElement] = Field(default_factory=list)


class EquipmentProceduralElement(Model):
    """A procedural element an equipment element offers (with its parameters)."""

    id: Identifier
    element_type: Identifier
    description: Text | None = None
    class_id: Identifier | None = None
    """The equipment procedural element class it is an instance of (BatchML offers a
    class reference or parameters, not both)."""
    parameters: list[FormulaParameter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _class_or_parameters(self) -> EquipmentProceduralElement:
        if self.class_id is not None and self.parameters:
            raise ModelError(
                f"equipment procedural element {self.id!r}: BatchML carries a class ID or "
                "parameters, not both"
            )
        return self


class EquipmentConnection(Model):
    """A connection between equipment elements (e.g. a material movement path)."""

    id: Identifier
    connection_type: Identifier
    description: Text | None = None
    from_equipment_ids: list[Identifier] = Field(default_factory=list)
    to_equipment_ids: list[Identifier] = Field(default_factory=list)


class EquipmentElement(Model):
    """BatchML equipment element: the plant a recipe runs on, with what it can do."""

    id: Text
    element_type: Identifier
    level: Identifier
    description: Text | None = None
    procedural_elements: list[EquipmentProceduralElement] = Field(default_factory=list)
    connections: list[EquipmentConnection] = Field(default_factory=list)
    children: list[EquipmentElement] = Field(default_factory=list)


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
    procedure_logic: ProcedureLogic | None = None
    elements: list[RecipeElement] = Field(default_factory=list)
    """Child recipe elements that are not phases (Begin/End symbols …)."""

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
    procedure_logic: ProcedureLogic | None = None
    elements: list[RecipeElement] = Field(default_factory=list)
    """Child recipe elements that are not operations (Begin/End symbols …)."""

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
    procedure_logic: ProcedureLogic | None = None
    elements: list[RecipeElement] = Field(default_factory=list)
    """Child recipe elements that are not unit procedures (Begin/End symbols …)."""

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
    version_absent: bool = False
    """True when read from a recipe without Version: ``version`` is the default "1"
    then, and the writer omits Version while it still is "1"."""
    recipe_type: RecipeType = RecipeType.MASTER
    description: Text | None = None
    version_date: AwareDatetime | None = None
    product_id: Identifier | None = None
    product_name: Text | None = None
    batch_size: Quantity | None = None
    batch_id: Identifier | None = None
    """The batch a control recipe runs (BatchML ControlRecipe BatchID)."""
    formula: list[FormulaParameter] = Field(default_factory=list)
    equipment_requirements: list[EquipmentRequirement] = Field(default_factory=list)
    procedure: Procedure | None = None
    procedure_logic: ProcedureLogic | None = None
    """The recipe's procedure function chart (BatchML ProcedureLogic)."""
    elements: list[RecipeElement] = Field(default_factory=list)
    """Recipe elements beside ``procedure`` (Begin/End symbols, elements the
    procedure logic's steps use)."""
    equipment_elements: list[EquipmentElement] = Field(default_factory=list)
    """The equipment elements of the BatchInformation the recipe was read from
    (or is written in)."""

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
