"""EquipmentInformation ↔ isa95.equipment (role-based hierarchy)."""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    V0701,
    _class_fields,
    _class_tree,
    _desc,
    _get,
    _list,
    _model,
    _property,
    _property_tree,
    _put,
    _text,
    _texts,
    _where,
)
from isa95.equipment import Equipment, EquipmentClass, EquipmentInformation, EquipmentLevel
from isa95.errors import B2MMLError, DocumentContentError


def _child_name(version: str, base: str) -> str:
    return f"{base}Child" if version == V0701 else base


def _equipment_tree(e: Equipment, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": e.id}
    _put(tree, "Description", _desc(e.description))
    if version == V0701:
        if e.level_equipment_id is not None:  # refused, never dropped
            raise B2MMLError(
                f"equipment {e.id!r}: V0701's EquipmentLevel has no EquipmentID to carry "
                f"level_equipment_id {e.level_equipment_id!r}"
            )
        tree["EquipmentLevel"] = str(e.level)
    else:  # V0600 types EquipmentLevel as a hierarchy scope
        tree["EquipmentLevel"] = {
            "EquipmentID": e.level_equipment_id or e.id,
            "EquipmentElementLevel": str(e.level),
        }
    _put(tree, "EquipmentProperty", [_property_tree(p) for p in e.properties])
    _put(tree, _child_name(version, "Equipment"), [_equipment_tree(c, version) for c in e.children])
    _put(tree, "EquipmentClassID", list(e.equipment_class_ids))
    return tree


def _equipment_to_tree(model: EquipmentInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "Equipment", [_equipment_tree(e, version) for e in model.equipment])
    _put(
        tree,
        "EquipmentClass",
        [_class_tree(c, "EquipmentClassProperty") for c in model.classes],
    )
    return tree


def _item_from_tree(t: dict[str, Any], version: str) -> Equipment:
    """One ``Equipment`` element (and its children) as an :class:`Equipment`."""
    where = _where(t, "Equipment")
    raw_level = t.get("EquipmentLevel")
    level_id = None
    if isinstance(raw_level, dict) and "EquipmentElementLevel" in raw_level:
        level_id = _get(raw_level, "EquipmentID")  # kept unless it is the equipment's own
        raw_level = raw_level.get("EquipmentElementLevel")
    level = _text(raw_level)
    if level is None or level not in EquipmentLevel.__members__.values():
        raise DocumentContentError(f"{where}: equipment level {level!r} is not a role-based level")
    return _model(
        lambda: Equipment(
            id=_get(t, "ID"),
            level=EquipmentLevel(level),
            description=_get(t, "Description"),
            properties=[_property(p) for p in _list(t, "EquipmentProperty")],
            equipment_class_ids=_texts(t, "EquipmentClassID"),
            level_equipment_id=None if level_id == _get(t, "ID") else level_id,
            children=[
                _item_from_tree(c, version) for c in _list(t, _child_name(version, "Equipment"))
            ],
        ),
        where,
        t,
    )


def _class_from_tree(c: dict[str, Any], version: str = "") -> EquipmentClass:
    return _model(
        lambda: EquipmentClass(**_class_fields(c, "EquipmentClassProperty")),
        _where(c, "EquipmentClass"),
        c,
    )


def _class_to_tree(c: EquipmentClass, version: str = "") -> dict[str, Any]:
    return _class_tree(c, "EquipmentClassProperty")


def _equipment_from_tree(tree: dict[str, Any], version: str) -> EquipmentInformation:
    return _model(
        lambda: EquipmentInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            equipment=[_item_from_tree(e, version) for e in _list(tree, "Equipment")],
            classes=[_class_from_tree(c) for c in _list(tree, "EquipmentClass")],
        ),
        _where(tree, "EquipmentInformation"),
        tree,
    )
