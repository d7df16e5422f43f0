"""ProcessSegmentInformation ↔ isa95.operations.ProcessSegment."""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    V0701,
    _desc,
    _get,
    _list,
    _model,
    _put,
    _quantity,
    _quantity_tree,
    _texts,
    _unread,
    _value_tree,
    _where,
)
from isa95.errors import B2MMLError
from isa95.operations import (
    DataValue,
    MaterialSpecification,
    MaterialUse,
    ProcessSegment,
    ProcessSegmentInformation,
)


def _parameter_name(version: str) -> str:
    return "ProcessSegmentParameter" if version == V0701 else "Parameter"


def _data_tree(d: DataValue, child: str | None = None) -> dict[str, Any]:
    """A parameter/data element: ID, Description, Value{…}, nested ones under ``child``."""
    tree: dict[str, Any] = {"ID": d.id}
    _put(tree, "Description", _desc(d.description))
    if d.value is not None:  # None: the element read had no Value
        value = _value_tree(d.value, d.unit, d.data_type)
        _put(value, "Key", d.key)
        tree["Value"] = [value]
    if d.children:
        if child is None:
            raise B2MMLError(f"parameter {d.id!r}: this element cannot nest parameters")
        tree[child] = [_data_tree(c, child) for c in d.children]
    return tree


def _data(t: dict[str, Any], child: str | None = None) -> DataValue:
    values = _list(t, "Value")
    value = (_get(values[0], "ValueString") or "") if values else None
    unit = _get(values[0], "UnitOfMeasure") if values else None
    data_type = _get(values[0], "DataType") if values else "string"  # None: none written
    key = _get(values[0], "Key") if values else None
    where = _where(t, "Parameter")
    return _model(
        lambda: DataValue(
            id=_get(t, "ID") or "",
            value=value,
            unit=unit or None,  # an empty UnitOfMeasure is no unit
            description=_get(t, "Description"),
            data_type=data_type,
            key=key,
            children=[_data(c, child) for c in _list(t, child)] if child else [],
        ),
        where,
        t,
    )


def _parameter_child(version: str) -> str:
    """Name of a nested parameter in a parameter (V0701 ParameterChild, V0600 Parameter)."""
    return "ParameterChild" if version == V0701 else "Parameter"


def _spec_id(ids: list[str | None], index: int, prefix: str, version: str) -> dict[str, Any]:
    """The ID element of a Personnel/EquipmentSegmentSpecification: the model's, else
    ``<prefix><index>`` (V0701); V0600 has none, so a model with one is refused."""
    given = ids[index] if index < len(ids) else None
    if version == V0701:
        return {"ID": given or f"{prefix}{index}"}
    if given is not None:
        raise B2MMLError(f"segment specification {given!r}: V0600 has no ID element to carry it")
    return {}


def _spec_ids(specs: list[dict[str, Any]], key: str, prefix: str) -> list[str | None]:
    """Specification IDs aligned with the class IDs read from ``specs`` (None: derived)."""
    ids: list[str | None] = []
    for spec in specs:
        given = _get(spec, "ID")
        for n, _ in enumerate(_texts(spec, key)):  # one specification per class ID written
            keep = n == 0 and given != f"{prefix}{len(ids)}"
            ids.append(given if keep else None)
    while ids and ids[-1] is None:
        ids.pop()
    return ids


def _segment_to_tree(s: ProcessSegment, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": s.id}
    _put(tree, "Description", _desc(s.description))
    _put(
        tree,
        "PersonnelSegmentSpecification",
        [
            {
                **_spec_id(s.personnel_specification_ids, i, "P", version),
                "PersonnelClassID": [c] if version == V0701 else c,
            }
            for i, c in enumerate(s.personnel_class_ids)
        ],
    )
    _put(
        tree,
        "EquipmentSegmentSpecification",
        [
            {
                **_spec_id(s.equipment_specification_ids, i, "E", version),
                "EquipmentClassID": [c] if version == V0701 else c,
            }
            for i, c in enumerate(s.equipment_class_ids)
        ],
    )
    specs = []
    for i, m in enumerate(s.materials):
        t: dict[str, Any] = {"ID": m.id or f"M{i}"}
        if m.material_class_id:
            t["MaterialClassID"] = (
                [m.material_class_id] if version == V0701 else m.material_class_id
            )
        if m.material_definition_id:
            t["MaterialDefinitionID"] = (
                [m.material_definition_id] if version == V0701 else m.material_definition_id
            )
        _put(t, "MaterialUse", m.use and str(m.use))
        _put(t, "Quantity", _quantity_tree(m.quantity))
        specs.append(t)
    _put(tree, "MaterialSegmentSpecification", specs)
    _put(
        tree,
        _parameter_name(version),
        [_data_tree(p, _parameter_child(version)) for p in s.parameters],
    )
    return tree


def _specification(m: dict[str, Any], index: int) -> MaterialSpecification:
    where = _where(m, "MaterialSegmentSpecification")
    given = _get(m, "ID")
    use = _get(m, "MaterialUse")
    if use is not None and use not in MaterialUse.__members__.values():
        _unread(m, "MaterialUse")  # a use the model has no value for: unmapped, listed
    return _model(
        lambda: MaterialSpecification(
            id=None if given == f"M{index}" else given,
            material_class_id=_get(m, "MaterialClassID"),
            material_definition_id=_get(m, "MaterialDefinitionID"),
            use=MaterialUse(use) if use in MaterialUse.__members__.values() else None,
            quantity=_quantity(m, where),
        ),
        where,
        m,
    )


def _segment_from_tree(t: dict[str, Any], version: str) -> ProcessSegment:
    where = _where(t, "ProcessSegment")
    materials = [
        _specification(m, i) for i, m in enumerate(_list(t, "MaterialSegmentSpecification"))
    ]
    personnel_ids = _spec_ids(_list(t, "PersonnelSegmentSpecification"), "PersonnelClassID", "P")
    equipment_ids = _spec_ids(_list(t, "EquipmentSegmentSpecification"), "EquipmentClassID", "E")
    return _model(
        lambda: ProcessSegment(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            personnel_class_ids=[
                x
                for s in _list(t, "PersonnelSegmentSpecification")
                for x in _texts(s, "PersonnelClassID")
            ],
            equipment_class_ids=[
                x
                for s in _list(t, "EquipmentSegmentSpecification")
                for x in _texts(s, "EquipmentClassID")
            ],
            materials=materials,
            personnel_specification_ids=personnel_ids,
            equipment_specification_ids=equipment_ids,
            parameters=[
                _data(p, _parameter_child(version)) for p in _list(t, _parameter_name(version))
            ],
        ),
        where,
        t,
    )


def _segments_to_tree(model: ProcessSegmentInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "ProcessSegment", [_segment_to_tree(s, version) for s in model.segments])
    return tree


def _segments_from_tree(tree: dict[str, Any], version: str) -> ProcessSegmentInformation:
    return _model(
        lambda: ProcessSegmentInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            segments=[_segment_from_tree(s, version) for s in _list(tree, "ProcessSegment")],
        ),
        _where(tree, "ProcessSegmentInformation"),
        tree,
    )
