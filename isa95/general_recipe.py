"""ISA-88 general and site recipes (IEC 61512-3, BatchML ``GRecipe``).

A general recipe says *what* a product needs, independent of any plant: a
header (products, validity), a formula (process inputs, outputs and
intermediates with their amounts, and process parameters) and a process
procedure — process stages › process operations › process actions, each a
:class:`ProcessElement` whose order is given by directed links between its
children (and its materials) and by procedure chart symbols (parallel
indicators, annotations). A site recipe is the same structure adapted to one
site (``recipe_type`` ``Site``). Instead of the equipment requirements of a
master recipe, general and site recipes state **resource constraints**.

Values are kept exactly as written (:class:`RecipeValue`: text, DataType,
unit, key), so every DataType's lexical value survives reading and writing:
``"3/10"``, ``"012.50"``, ``"PT5M"``. Repeated descriptions are all kept.
Identifiers that a document may leave empty (``<ID/>``, as recipe editors
write directed links) are ``""``; any other identifier must be non-empty
without surrounding blanks, as everywhere in :mod:`isa95`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from isa95.common import AwareDatetime, Model, Text, _identifier, check_interval
from isa95.errors import ModelError

__all__ = [
    "ChartElementType",
    "ConstraintType",
    "DirectedLink",
    "ElementID",
    "GeneralRecipe",
    "GeneralRecipeFormula",
    "GeneralRecipeHeader",
    "GeneralRecipeInformation",
    "GeneralRecipeType",
    "HeaderProperty",
    "LifeCycleState",
    "MaterialList",
    "MaterialsType",
    "OtherInformation",
    "ParameterType",
    "ProcedureChartElement",
    "ProcessElement",
    "ProcessElementLibrary",
    "ProcessElementParameter",
    "ProcessElementType",
    "RecipeMaterial",
    "RecipeProduct",
    "RecipeValue",
    "ResourceConstraint",
    "ResourceConstraintLibrary",
    "ResourceConstraintProperty",
    "SequenceOrder",
]


def _element_id(value: str) -> str:
    return value if value == "" else _identifier(value)


ElementID = Annotated[str, Field(max_length=256), AfterValidator(_element_id)]
"""An identifier, or ``""`` for an identifier element written empty (``<ID/>``)."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

_NUMERIC_TYPES = frozenset(
    {
        "decimal",
        "double",
        "float",
        "integer",
        "int",
        "long",
        "short",
        "byte",
        "positiveInteger",
        "negativeInteger",
        "nonNegativeInteger",
        "nonPositiveInteger",
        "unsignedInt",
        "unsignedLong",
        "unsignedShort",
        "unsignedByte",
    }
)
"""xsd number types: a value of one of these DataTypes must be a number."""


class GeneralRecipeType(enum.StrEnum):
    """BatchML GRecipeType: a general or a site recipe."""

    GENERAL = "General"
    SITE = "Site"
    OTHER = "Other"


class LifeCycleState(enum.StrEnum):
    """ISA-88.03 clause 5.8 life-cycle states of recipes, process elements and constraints."""

    DRAFT = "Draft"
    APPROVED = "Approved"
    RELEASED = "Released"
    EFFECTIVE = "Effective"
    WITHDRAWN = "Withdrawn"
    OTHER = "Other"


class ProcessElementType(enum.StrEnum):
    """The level of a process element in the process model."""

    PROCESS = "Process"
    PROCESS_STAGE = "Process Stage"
    PROCESS_OPERATION = "Process Operation"
    PROCESS_ACTION = "Process Action"
    OTHER = "Other"


class MaterialsType(enum.StrEnum):
    """What a list of materials is to its process element or formula."""

    INPUT = "Input"
    OUTPUT = "Output"
    INTERMEDIATE = "Intermediate"
    OTHER = "Other"


class SequenceOrder(enum.StrEnum):
    """Where a process element stands in a parallel or serial path."""

    FIRST_PARALLEL = "First Parallel"
    MIDDLE_PARALLEL = "Middle Parallel"
    END_PARALLEL = "End Parallel"
    FIRST_IN_PATH = "First In Path"
    LAST_IN_PATH = "Last In Path"
    NOT_IN_PARALLEL = "Not In Parallel"
    SINGLE_FIRST_PARALLEL = "Single First Parallel"
    SINGLE_MIDDLE_PARALLEL = "Single Middle Parallel"
    SINGLE_END_PARALLEL = "Single End Parallel"
    OTHER = "Other"


class ChartElementType(enum.StrEnum):
    """Procedure function chart symbols of ISA-88.03 (7.2.3) besides process elements."""

    PREVIOUS_OPERATION = "Previous Operation Indicator"
    NEXT_OPERATION = "Next Operation Indicator"
    START_PARALLEL = "Start Parallel Indicator"
    END_PARALLEL = "End Parallel Indicator"
    START_OPTIONAL_PARALLEL = "Start Optional Parallel Indicator"
    END_OPTIONAL_PARALLEL = "End Optional Parallel Indicator"
    ANNOTATION = "Annotation"
    OTHER = "Other"


class ParameterType(enum.StrEnum):
    """What a process element parameter is (V0600 lacks Constant, Equation, Reference)."""

    CONSTANT = "Constant"
    EQUATION = "Equation"
    INPUT = "Input"
    OUTPUT = "Output"
    OPTIONAL = "Optional"
    REFERENCE = "Reference"
    REQUIRED = "Required"
    OTHER = "Other"


class ConstraintType(enum.StrEnum):
    """Whether a resource constraint must be met."""

    OPTIONAL = "Optional"
    REQUIRED = "Required"
    OTHER = "Other"


def _numeric_text(text: str | None, what: str) -> None:
    if text is not None and not _DECIMAL.fullmatch(text.strip()):
        raise ModelError(f"{what} {text!r} is not a decimal number")


class RecipeValue(Model):
    """A B2MML value or quantity exactly as written: ValueString (or QuantityString),
    DataType, UnitOfMeasure, Key.

    ``value`` is the text as written; :attr:`number` gives it as an exact
    ``Decimal`` when it is a number. A value whose DataType is an xsd number
    type must be a number (or empty).
    """

    value: Text = ""
    data_type: Text | None = None
    """The DataType as written (``decimal``, ``Measure``, ``Text`` …); None: absent."""
    unit: Text | None = None
    key: Text | None = None

    @model_validator(mode="after")
    def _typed(self) -> RecipeValue:
        text = self.value.strip()
        if self.data_type in _NUMERIC_TYPES and text and not _NUMBER.fullmatch(text):
            raise ModelError(f"value {self.value!r} is not a {self.data_type} number")
        return self

    @property
    def number(self) -> Decimal | None:
        """The value as an exact number, or None when it is none (``"3/10"``, ``"PT5M"``)."""
        text = self.value.strip()
        return Decimal(text) if _NUMBER.fullmatch(text) else None


class RecipeMaterial(Model):
    """A material of a formula or process element, with its amount (GRecipeMaterial)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    material_id: ElementID | None = None
    order: Text | None = None
    """Its place among the materials (a decimal number, as written)."""
    amount: RecipeValue | None = None

    @model_validator(mode="after")
    def _order(self) -> RecipeMaterial:
        _numeric_text(self.order, f"material {self.id!r}: order")
        return self


class MaterialList(Model):
    """Process inputs, outputs or intermediates (GRecipeMaterials)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    materials_type: MaterialsType | None = None
    materials: list[RecipeMaterial] = Field(default_factory=list)


class ProcessElementParameter(Model):
    """A process parameter: its kinds (Input, Output, Required …) and values.

    Nested parameters exist in V0701 only.
    """

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    parameter_types: list[ParameterType] = Field(default_factory=list)
    parameters: list[ProcessElementParameter] = Field(default_factory=list)
    values: list[RecipeValue] = Field(default_factory=list)


class ResourceConstraintProperty(Model):
    """A property a resource must have to meet a constraint."""

    id: ElementID
    descriptions: list[Text] = Field(default_factory=list)
    values: list[RecipeValue] = Field(default_factory=list)


class ResourceConstraint(Model):
    """What equipment (or another resource) must offer: the general recipe's
    counterpart of a master recipe's equipment requirement."""

    id: ElementID | None = None
    """ConstraintID."""
    descriptions: list[Text] = Field(default_factory=list)
    constraint_types: list[ConstraintType] = Field(default_factory=list)
    life_cycle_state: LifeCycleState | None = None
    ranges: list[RecipeValue] = Field(default_factory=list)
    properties: list[ResourceConstraintProperty] = Field(default_factory=list)


class OtherInformation(Model):
    """Information the recipe model has no place for (GROtherInformation)."""

    id: ElementID | None = None
    """OtherInfoID."""
    descriptions: list[Text] = Field(default_factory=list)
    values: list[RecipeValue] = Field(default_factory=list)


class DirectedLink(Model):
    """An arrow of the procedure chart: from a process element or material list to another."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    from_id: ElementID | None = None
    to_id: ElementID | None = None


class ProcedureChartElement(Model):
    """A chart symbol that is no process element: parallel indicators, annotations."""

    id: ElementID | None = None
    label: Text | None = None
    descriptions: list[Text] = Field(default_factory=list)
    element_type: ChartElementType | None = None


class ProcessElement(Model):
    """A process, process stage, process operation or process action.

    Its children (``elements``) are the next level; ``links`` and
    ``chart_elements`` are its procedure chart: which child (or material
    list) follows which.
    """

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    element_type: ProcessElementType | None = None
    life_cycle_state: LifeCycleState | None = None
    sequence_order: SequenceOrder | None = None
    sequence_path: Text | None = None
    """A decimal number, as written."""
    materials: list[MaterialList] = Field(default_factory=list)
    links: list[DirectedLink] = Field(default_factory=list)
    chart_elements: list[ProcedureChartElement] = Field(default_factory=list)
    elements: list[ProcessElement] = Field(default_factory=list)
    parameters: list[ProcessElementParameter] = Field(default_factory=list)
    resource_constraints: list[ResourceConstraint] = Field(default_factory=list)
    other_information: list[OtherInformation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _checks(self) -> ProcessElement:
        _numeric_text(self.sequence_path, f"process element {self.id!r}: sequence path")
        ids = [e.id for e in self.elements if e.id]
        if len(ids) != len(set(ids)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ModelError(
                f"process element {self.id!r}: child process element {twice[0]!r} appears twice"
            )
        return self

    def walk(self) -> Iterator[ProcessElement]:
        """This element and every element below it, depth first."""
        yield self
        for element in self.elements:
            yield from element.walk()

    def successors(self, node_id: str) -> list[str]:
        """Ids the directed links lead to from ``node_id`` (a child or material list)."""
        return [
            link.to_id for link in self.links if link.from_id == node_id and link.to_id is not None
        ]


class GeneralRecipeFormula(Model):
    """The formula: process inputs, outputs, intermediates and process parameters."""

    descriptions: list[Text] = Field(default_factory=list)
    inputs: MaterialList | None = None
    outputs: MaterialList | None = None
    intermediates: MaterialList | None = None
    parameters: list[ProcessElementParameter] = Field(default_factory=list)


class RecipeProduct(Model):
    """A product the recipe makes (the header's product information)."""

    product_id: ElementID
    descriptions: list[Text] = Field(default_factory=list)
    product_name: Text | None = None
    batch_size: RecipeValue | None = None


class HeaderProperty(Model):
    """A named property of the recipe header."""

    id: ElementID
    descriptions: list[Text] = Field(default_factory=list)
    values: list[RecipeValue] = Field(default_factory=list)


class GeneralRecipeHeader(Model):
    """Header: what the recipe was derived from, its products and when it is valid."""

    descriptions: list[Text] = Field(default_factory=list)
    derived_from_id: ElementID | None = None
    products: list[RecipeProduct] = Field(default_factory=list)
    effective_date: AwareDatetime | None = None
    expiration_date: AwareDatetime | None = None
    header_property: HeaderProperty | None = None

    @model_validator(mode="after")
    def _validity(self) -> GeneralRecipeHeader:
        check_interval(self.effective_date, self.expiration_date, "recipe validity")
        return self


class GeneralRecipe(Model):
    """An ISA-88 general or site recipe (BatchML GRecipe)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    recipe_type: GeneralRecipeType | None = None
    life_cycle_state: LifeCycleState | None = None
    header: GeneralRecipeHeader | None = None
    formula: GeneralRecipeFormula | None = None
    procedure: ProcessElement | None = None
    """The process procedure: the top process element."""
    resource_constraints: list[ResourceConstraint] = Field(default_factory=list)
    other_information: list[OtherInformation] = Field(default_factory=list)

    @property
    def is_site_recipe(self) -> bool:
        """True for a site recipe."""
        return self.recipe_type == GeneralRecipeType.SITE

    def process_elements(
        self, element_type: ProcessElementType | None = None
    ) -> Iterator[ProcessElement]:
        """Every process element of the procedure, depth first (the procedure first);
        with ``element_type``, those of that level only (e.g. every process stage)."""
        if self.procedure is not None:
            for element in self.procedure.walk():
                if element_type is None or element.element_type == element_type:
                    yield element

    def element(self, element_id: str) -> ProcessElement:
        """The process element with ``element_id`` (the first, depth first)."""
        for element in self.process_elements():
            if element.id == element_id:
                return element
        raise ModelError(f"recipe {self.id!r} has no process element {element_id!r}")


class GeneralRecipeInformation(Model):
    """A set of general or site recipes (BatchML GRecipeInformation)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    published_date: AwareDatetime | None = None
    recipes: list[GeneralRecipe] = Field(default_factory=list)


class ProcessElementLibrary(Model):
    """Process elements kept for reuse in recipes (BatchML ProcessElementLibrary)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    published_date: AwareDatetime | None = None
    elements: list[ProcessElement] = Field(default_factory=list)
    """ProcessElementSpec."""


class ResourceConstraintLibrary(Model):
    """Resource constraints kept for reuse in recipes (BatchML ResourceConstraintLibrary)."""

    id: ElementID | None = None
    descriptions: list[Text] = Field(default_factory=list)
    published_date: AwareDatetime | None = None
    constraints: list[ResourceConstraint] = Field(default_factory=list)
    """ResourceConstraintSpec."""
