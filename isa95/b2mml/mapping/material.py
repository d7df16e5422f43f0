"""MaterialInformation ↔ isa95.material."""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    _class_fields,
    _class_tree,
    _desc,
    _get,
    _list,
    _model,
    _property,
    _property_tree,
    _put,
    _quantity,
    _quantity_tree,
    _storage,
    _storage_tree,
    _texts,
    _where,
)
from isa95.material import (
    MaterialClass,
    MaterialDefinition,
    MaterialInformation,
    MaterialLot,
    MaterialSubLot,
)


def _material_to_tree(model: MaterialInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    _put(
        tree,
        "MaterialClass",
        [_class_tree(c, "MaterialClassProperty") for c in model.classes],
    )
    _put(tree, "MaterialDefinition", [_definition_tree(d) for d in model.definitions])
    _put(tree, "MaterialLot", [_lot_tree(lot, version) for lot in model.lots])
    return tree


def _definition_tree(d: MaterialDefinition) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": d.id}
    _put(tree, "Description", _desc(d.description))
    _put(tree, "MaterialDefinitionProperty", [_property_tree(p) for p in d.properties])
    _put(tree, "MaterialClassID", list(d.material_class_ids))
    return tree


def _lot_tree(lot: MaterialLot, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": lot.id}
    _put(tree, "Description", _desc(lot.description))
    _put(tree, "MaterialDefinitionID", lot.material_definition_id)
    _put(tree, "Status", lot.status)
    _put(tree, "MaterialLotProperty", [_property_tree(p) for p in lot.properties])
    _put(tree, "MaterialSubLot", [_sublot_tree(s, version) for s in lot.sublots])
    _put(tree, "StorageLocation", _storage_tree(version, lot.storage_location))
    _put(tree, "Quantity", _quantity_tree(lot.quantity))
    return tree


def _sublot_tree(sub: MaterialSubLot, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": sub.id}
    _put(tree, "Description", _desc(sub.description))
    _put(tree, "Status", sub.status)
    _put(tree, "StorageLocation", _storage_tree(version, sub.storage_location))
    _put(tree, "Quantity", _quantity_tree(sub.quantity))
    return tree


def _lot_from_tree(t: dict[str, Any], version: str = "") -> MaterialLot:
    where = _where(t, "MaterialLot")
    return _model(
        lambda: MaterialLot(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            material_definition_id=_get(t, "MaterialDefinitionID"),
            status=_get(t, "Status"),
            storage_location=_storage(t),
            quantity=_quantity(t, where),
            properties=[_property(p) for p in _list(t, "MaterialLotProperty")],
            sublots=[_sublot_from_tree(s) for s in _list(t, "MaterialSubLot")],
        ),
        where,
        t,
    )


def _sublot_from_tree(t: dict[str, Any], version: str = "") -> MaterialSubLot:
    where = _where(t, "MaterialSubLot")
    return _model(
        lambda: MaterialSubLot(
            id=_get(t, "ID"),
            description=_get(t, "Description"),
            status=_get(t, "Status"),
            storage_location=_storage(t),
            quantity=_quantity(t, where),
        ),
        where,
        t,
    )


def _definition_from_tree(d: dict[str, Any], version: str = "") -> MaterialDefinition:
    return _model(
        lambda: MaterialDefinition(
            id=_get(d, "ID"),
            description=_get(d, "Description"),
            material_class_ids=_texts(d, "MaterialClassID"),
            properties=[_property(p) for p in _list(d, "MaterialDefinitionProperty")],
        ),
        _where(d, "MaterialDefinition"),
        d,
    )


def _class_from_tree(c: dict[str, Any], version: str = "") -> MaterialClass:
    return _model(
        lambda: MaterialClass(**_class_fields(c, "MaterialClassProperty")),
        _where(c, "MaterialClass"),
        c,
    )


def _material_from_tree(tree: dict[str, Any], version: str) -> MaterialInformation:
    return _model(
        lambda: MaterialInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            classes=[_class_from_tree(c) for c in _list(tree, "MaterialClass")],
            definitions=[_definition_from_tree(d) for d in _list(tree, "MaterialDefinition")],
            lots=[_lot_from_tree(t) for t in _list(tree, "MaterialLot")],
        ),
        _where(tree, "MaterialInformation"),
        tree,
    )
