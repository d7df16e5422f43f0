"""V0701 OperationsDefinitionInformation / OperationsDefinition ↔ isa95.operations models.

V0701 renamed V0600's product definitions: ``ProductInformation`` became
``OperationsDefinitionInformation``, ``ProductDefinition`` ``OperationsDefinition``
and ``ProductSegment`` ``OperationsSegment``. One model carries both releases
(:class:`~isa95.operations.ProductInformation`, ``ProductDefinition``,
``ProductSegment``). What V0701 adds — OperationsType, HierarchyScope, effective
dates, material bills, segment dependencies, specifications with more than one
class, with persons/equipment named, properties — is not carried: it is listed
in ``unmapped`` and stays on the binding (``document.binding_of(model)``).

V0701 specifications need an ID the models do not hold: they are written as
``P<n>``/``E<n>``/``M<n>`` (the specification's position among those of its
kind the model carries), and an ID read that differs from that is listed in
``unmapped``.
"""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.products import DefinitionNames, read_definition, read_information
from isa95.b2mml.mapping.segments import _data, _data_tree
from isa95.b2mml.mapping.trees import (
    NORMALISED,
    Tracked,
    _desc,
    _get,
    _list,
    _model,
    _put,
    _quantity,
    _quantity_tree,
    _text,
    _texts,
    _time,
    _unread,
    _where,
)
from isa95.errors import B2MMLError
from isa95.operations import (
    MaterialSpecification,
    MaterialUse,
    ProductDefinition,
    ProductInformation,
    ProductSegment,
)

_USES = set(MaterialUse.__members__.values())


def _material_tree(m: MaterialSpecification, index: int) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": m.id or f"M{index}"}
    _put(tree, "MaterialClassID", [m.material_class_id] if m.material_class_id else None)
    _put(
        tree,
        "MaterialDefinitionID",
        [m.material_definition_id] if m.material_definition_id else None,
    )
    _put(tree, "MaterialUse", m.use and str(m.use))
    _put(tree, "Quantity", _quantity_tree(m.quantity))
    return tree


def _segment_tree(s: ProductSegment) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": s.id}
    _put(tree, "Description", _desc(s.description))
    _put(tree, "Duration", s.duration)
    _put(tree, "ProcessSegmentID", list(s.process_segment_ids))
    _put(
        tree,
        "ParameterSpecification",
        [_data_tree(p, "ParameterChild") for p in s.parameters],
    )
    _put(
        tree,
        "PersonnelSpecification",
        [{"ID": f"P{i}", "PersonnelClassID": [c]} for i, c in enumerate(s.personnel_class_ids)],
    )
    _put(
        tree,
        "EquipmentSpecification",
        [{"ID": f"E{i}", "EquipmentClassID": [c]} for i, c in enumerate(s.equipment_class_ids)],
    )
    _put(
        tree,
        "MaterialSpecification",
        [_material_tree(m, i) for i, m in enumerate(s.materials)],
    )
    _put(tree, "OperationsSegmentChild", [_segment_tree(c) for c in s.children])
    return tree


def _ids(tree: dict[str, Any], key: str) -> list[str]:
    """Identifiers (repeated or not), blanks around them dropped and noted as :func:`_get` does."""
    found = []
    for index, value in enumerate(_texts(tree, key)):
        if value != value.strip() and value.strip():
            notes = NORMALISED.get()
            if notes is not None:
                where = tree.path if isinstance(tree, Tracked) else ""
                at = f"{key}[{index}]" if isinstance(dict.get(tree, key), list) else key
                notes.append(f"{where}/{at}: {value!r} read as {value.strip()!r}")
            value = value.strip()
        found.append(value)
    return found


def _check_id(spec: dict[str, Any], expected: str) -> None:
    """Consume a specification's ID when it is the one the writer makes; else list it."""
    if _text(dict.get(spec, "ID")) == expected:
        spec.get("ID")


def _class_ids(specs: list[Any], key: str, prefix: str) -> list[str]:
    """Class IDs of specifications holding an ID and exactly one class (others unmapped)."""
    found: list[str] = []
    for spec in specs:
        names = {k for k in spec if not k.startswith("@@")}
        classes = dict.get(spec, key, [])  # not marked read: only what is taken is
        if names == {"ID", key} and isinstance(classes, list) and len(classes) == 1:
            _check_id(spec, f"{prefix}{len(found)}")
            found.append(_get(spec, key))
    return found


def _material(m: dict[str, Any], index: int) -> MaterialSpecification:
    where = _where(m, "MaterialSpecification")
    given = _get(m, "ID")
    use = _get(m, "MaterialUse")
    if use is not None and use not in _USES:
        _unread(m, "MaterialUse")  # a use the model has no value for: listed
    return _model(
        lambda: MaterialSpecification(
            id=None if given == f"M{index}" else given,
            material_class_id=_get(m, "MaterialClassID"),
            material_definition_id=_get(m, "MaterialDefinitionID"),
            use=MaterialUse(use) if use in _USES else None,
            quantity=_quantity(m, where),
        ),
        where,
        m,
    )


def _segment(t: dict[str, Any]) -> ProductSegment:
    where = _where(t, "OperationsSegment")
    return _model(
        lambda: ProductSegment(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            duration=_get(t, "Duration"),
            process_segment_ids=_ids(t, "ProcessSegmentID"),
            parameters=[_data(p, "ParameterChild") for p in _list(t, "ParameterSpecification")],
            personnel_class_ids=_class_ids(
                _list(t, "PersonnelSpecification"), "PersonnelClassID", "P"
            ),
            equipment_class_ids=_class_ids(
                _list(t, "EquipmentSpecification"), "EquipmentClassID", "E"
            ),
            materials=[_material(m, i) for i, m in enumerate(_list(t, "MaterialSpecification"))],
            children=[_segment(c) for c in _list(t, "OperationsSegmentChild")],
        ),
        where,
        t,
    )


def _definition_tree(model: ProductDefinition, version: str) -> dict[str, Any]:
    if model.production_rule is not None:
        raise B2MMLError(
            f"product definition {model.id!r}: V0701 OperationsDefinition has no "
            "ProductProductionRule (V0600 only); write it as V0600 or clear production_rule"
        )
    tree: dict[str, Any] = {"ID": model.id}
    _put(tree, "Description", _desc(model.description))
    _put(tree, "Version", model.version)
    _put(tree, "PublishedDate", _time(model.published))
    _put(tree, "OperationsSegment", [_segment_tree(s) for s in model.segments])
    _put(
        tree,
        "BillOfMaterialsID",
        [model.bill_of_materials_id] if model.bill_of_materials_id else None,
    )
    _put(
        tree,
        "BillOfResourcesID",
        [model.bill_of_resources_id] if model.bill_of_resources_id else None,
    )
    return tree


V0701_NAMES = DefinitionNames(
    information="OperationsDefinitionInformation",
    definition="OperationsDefinition",
    segment="OperationsSegment",
    read_segment=_segment,
    read_version=lambda tree: next(iter(_ids(tree, "Version")), None),  # an IdentifierType
    production_rule=False,
)


def _definition_from_tree(tree: dict[str, Any], version: str) -> ProductDefinition:
    return read_definition(tree, V0701_NAMES)


def _information_tree(model: ProductInformation, version: str) -> dict[str, Any]:
    if model.id is None:
        raise B2MMLError(
            "V0701 OperationsDefinitionInformation requires an ID; the ProductInformation has none"
        )
    tree: dict[str, Any] = {"ID": model.id}
    _put(tree, "Description", _desc(model.description))
    _put(tree, "PublishedDate", _time(model.published))
    _put(tree, "OperationsDefinition", [_definition_tree(d, version) for d in model.definitions])
    return tree


def _information_from_tree(tree: dict[str, Any], version: str) -> ProductInformation:
    return read_information(tree, V0701_NAMES)
