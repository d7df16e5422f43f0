"""V0600 ProductInformation / ProductDefinition ↔ isa95.operations.ProductDefinition.

The definition and information readers serve V0701 too (:mod:`.definitions`): the
release renamed the elements and reads its segments and Version its own way, the
rest is read alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from isa95.b2mml.mapping.segments import _data, _data_tree, _specification
from isa95.b2mml.mapping.trees import (
    _desc,
    _get,
    _list,
    _model,
    _parse_time,
    _put,
    _quantity_tree,
    _texts,
    _time,
    _where,
)
from isa95.errors import B2MMLError
from isa95.operations import (
    MaterialSpecification,
    ProductDefinition,
    ProductInformation,
    ProductSegment,
)


def _material_spec_tree(m: MaterialSpecification) -> dict[str, Any]:
    if m.id is not None:  # refused, never dropped
        raise B2MMLError(f"material specification {m.id!r}: V0600 has no ID element to carry it")
    tree: dict[str, Any] = {}
    _put(tree, "MaterialClassID", m.material_class_id)
    _put(tree, "MaterialDefinitionID", m.material_definition_id)
    _put(tree, "MaterialUse", m.use and str(m.use))
    _put(tree, "Quantity", _quantity_tree(m.quantity))
    return tree


def _product_segment_tree(s: ProductSegment) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": s.id}
    _put(tree, "Description", s.description)
    _put(tree, "Duration", s.duration)
    _put(tree, "ProcessSegmentID", list(s.process_segment_ids))
    _put(tree, "Parameter", [_data_tree(p, "Parameter") for p in s.parameters])
    _put(
        tree,
        "PersonnelSpecification",
        [{"PersonnelClassID": c} for c in s.personnel_class_ids],
    )
    _put(
        tree,
        "EquipmentSpecification",
        [{"EquipmentClassID": c} for c in s.equipment_class_ids],
    )
    _put(tree, "MaterialSpecification", [_material_spec_tree(m) for m in s.materials])
    _put(tree, "ProductSegment", [_product_segment_tree(c) for c in s.children])
    return tree


def _class_only(specs: list[Any], key: str) -> list[str]:
    """Class IDs of specifications that hold nothing else (others stay unmapped)."""
    found = []
    for spec in specs:
        if {k for k in spec if not k.startswith("@@")} == {key}:
            found.extend(_texts(spec, key))
    return found


def _product_segment(t: dict[str, Any]) -> ProductSegment:
    where = _where(t, "ProductSegment")
    return _model(
        lambda: ProductSegment(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            duration=_get(t, "Duration"),
            process_segment_ids=_texts(t, "ProcessSegmentID"),
            parameters=[_data(p, "Parameter") for p in _list(t, "Parameter")],
            personnel_class_ids=_class_only(_list(t, "PersonnelSpecification"), "PersonnelClassID"),
            equipment_class_ids=_class_only(_list(t, "EquipmentSpecification"), "EquipmentClassID"),
            materials=[
                _specification(m, i) for i, m in enumerate(_list(t, "MaterialSpecification"))
            ],
            children=[_product_segment(c) for c in _list(t, "ProductSegment")],
        ),
        where,
        t,
    )


def _definition_tree(model: ProductDefinition, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": model.id}
    _put(tree, "Version", model.version)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "PublishedDate", _time(model.published))
    _put(tree, "ProductProductionRule", model.production_rule)
    _put(tree, "BillOfMaterialsID", model.bill_of_materials_id)
    _put(tree, "BillOfResourcesID", model.bill_of_resources_id)
    _put(tree, "ProductSegment", [_product_segment_tree(s) for s in model.segments])
    return tree


@dataclass(frozen=True)
class DefinitionNames:
    """What a release's product-definition readers differ in."""

    information: str
    """The information element (``ProductInformation``)."""
    definition: str
    """The definition element (``ProductDefinition``)."""
    segment: str
    """A definition's segment element (``ProductSegment``)."""
    read_segment: Callable[[dict[str, Any]], ProductSegment]
    """The release's segment reader."""
    read_version: Callable[[dict[str, Any]], str | None]
    """The definition's Version (an identifier in V0600, an IdentifierType in V0701)."""
    production_rule: bool
    """Whether the definition holds a ``ProductProductionRule`` (V0600 only)."""


def _production_rule(tree: dict[str, Any], names: DefinitionNames) -> dict[str, Any]:
    """The rule as a model field where the release has one; else no field (left unset)."""
    if names.production_rule:
        return {"production_rule": _get(tree, "ProductProductionRule")}
    return {}


def read_definition(tree: dict[str, Any], names: DefinitionNames) -> ProductDefinition:
    """A product definition read from ``tree`` as the release of ``names`` writes it."""
    where = _where(tree, names.definition)
    return _model(
        lambda: ProductDefinition(
            id=_get(tree, "ID"),
            version=names.read_version(tree),
            description=_get(tree, "Description"),
            published=_parse_time(_get(tree, "PublishedDate"), f"{where}/PublishedDate"),
            **_production_rule(tree, names),
            bill_of_materials_id=_get(tree, "BillOfMaterialsID"),
            bill_of_resources_id=_get(tree, "BillOfResourcesID"),
            segments=[names.read_segment(s) for s in _list(tree, names.segment)],
        ),
        where,
        tree,
    )


def read_information(tree: dict[str, Any], names: DefinitionNames) -> ProductInformation:
    """Product information read from ``tree`` as the release of ``names`` writes it."""
    where = _where(tree, names.information)
    return _model(
        lambda: ProductInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            published=_parse_time(_get(tree, "PublishedDate"), f"{where}/PublishedDate"),
            definitions=[read_definition(d, names) for d in _list(tree, names.definition)],
        ),
        where,
        tree,
    )


V0600_NAMES = DefinitionNames(
    information="ProductInformation",
    definition="ProductDefinition",
    segment="ProductSegment",
    read_segment=_product_segment,
    read_version=lambda tree: _get(tree, "Version"),
    production_rule=True,
)


def _definition_from_tree(tree: dict[str, Any], version: str) -> ProductDefinition:
    return read_definition(tree, V0600_NAMES)


def _product_information_tree(model: ProductInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "PublishedDate", _time(model.published))
    _put(tree, "ProductDefinition", [_definition_tree(d, version) for d in model.definitions])
    return tree


def _product_information_from_tree(tree: dict[str, Any], version: str) -> ProductInformation:
    return read_information(tree, V0600_NAMES)
