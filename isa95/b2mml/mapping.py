"""Mapping between isa95 models and B2MML element trees, per document noun and release.

Each noun has a ``to_tree`` (model → tree in that release's element names)
and a ``from_tree`` (tree → model). Trees are read through :class:`Tracked`
so that every element a mapper did not consume can be reported as
*unmapped* rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import ValidationError

from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries
from isa95.common import Property, Quantity
from isa95.equipment import Equipment, EquipmentClass, EquipmentInformation, EquipmentLevel
from isa95.errors import ModelError
from isa95.material import (
    MaterialClass,
    MaterialDefinition,
    MaterialInformation,
    MaterialLot,
    MaterialSubLot,
)
from isa95.operations import (
    DataValue,
    EquipmentActual,
    MaterialActual,
    MaterialRequirement,
    MaterialSpecification,
    MaterialUse,
    OperationsPerformance,
    OperationsRequest,
    OperationsResponse,
    OperationsSchedule,
    PersonnelActual,
    ProcessSegment,
    ProcessSegmentInformation,
    SegmentRequirement,
    SegmentResponse,
)
from isa95.personnel import Person, PersonnelClass, PersonnelInformation, Qualification
from isa95.recipe import (
    EquipmentRequirement,
    FormulaParameter,
    Operation,
    Phase,
    Procedure,
    Recipe,
    RecipeType,
    UnitProcedure,
)

__all__ = ["NOUNS", "Noun", "Tracked", "unconsumed"]

_M = TypeVar("_M")

V0701, V0600 = "V0701", "V0600"
QUALIFICATION_PREFIX = "QUAL:"

# ----------------------------------------------------------------- trees


class Tracked(dict[str, Any]):
    """A tree dict that remembers which keys were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return super().get(key, default)


def track(value: Any) -> Any:
    """Wrap every dict of a tree in :class:`Tracked`."""
    if isinstance(value, dict):
        return Tracked({k: track(v) for k, v in value.items()})
    if isinstance(value, list):
        return [track(v) for v in value]
    return value


def unconsumed(value: Any, path: str) -> Iterator[str]:
    """Paths of tree content no mapper read."""
    if isinstance(value, Tracked):
        for key, child in value.items():
            if key.startswith(("@xmlns", "@@")):
                continue
            child_path = f"{path}/{key}"
            if key not in value.used:
                yield child_path
            else:
                yield from unconsumed(child, child_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unconsumed(item, f"{path}[{index}]")


def _list(tree: dict[str, Any], key: str) -> list[Any]:
    value = tree.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("#text")
    return None if value is None else str(value)


def _get(tree: dict[str, Any], key: str) -> Any:
    """Text of child ``key`` (None when absent). Typed Any: pydantic validates it."""
    return _text(tree.get(key))


def _texts(tree: dict[str, Any], key: str) -> list[str]:
    return [t for t in (_text(v) for v in _list(tree, key)) if t is not None]


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == []:
        return
    tree[key] = value


def _desc(text: str | None) -> list[str] | None:
    return [text] if text else None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


ASSUMED_TIMEZONE: ContextVar[tzinfo | None] = ContextVar("assumed_timezone", default=None)
"""Zone for date-times written without one; None (the default) refuses them."""


def _parse_time(text: str | None, where: str) -> Any:
    """An aware datetime (or None); typed Any because models validate it again."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ModelError(f"{where}: {text!r} is not a date-time") from exc
    if value.utcoffset() is None:
        assumed = ASSUMED_TIMEZONE.get()
        if assumed is None:
            raise ModelError(
                f"{where}: {text!r} has no time zone; naive date-times are refused unless the "
                "reader is told which zone the sender meant (assume_timezone=...)"
            )
        value = value.replace(tzinfo=assumed)
    return value


_NUMERIC = {
    "decimal",
    "double",
    "float",
    "integer",
    "int",
    "long",
    "short",
    "Numeric",
    "Quantity",
    "Amount",
    "Measure",
    "positiveInteger",
    "negativeInteger",
    "nonNegativeInteger",
    "nonPositiveInteger",
    "unsignedInt",
    "unsignedLong",
    "unsignedShort",
    "byte",
    "unsignedByte",
}


def _quantity_tree(quantity: Quantity | None) -> list[dict[str, Any]] | None:
    if quantity is None:
        return None
    tree: dict[str, Any] = {"QuantityString": str(quantity.value), "DataType": "decimal"}
    _put(tree, "UnitOfMeasure", quantity.unit)
    return [tree]


def _quantity(tree: dict[str, Any], where: str) -> Quantity | None:
    """The first numeric quantity of an element; non-numeric ones stay unmapped."""
    for item in _list(tree, "Quantity"):
        data_type = _get(item, "DataType") or "decimal"
        if data_type not in _NUMERIC:
            item.used.discard("QuantityString")
            continue
        text = _get(item, "QuantityString")
        if text is None or not text.strip():
            continue
        try:
            value = Decimal(text.strip())
        except InvalidOperation as exc:
            raise ModelError(f"{where}/Quantity: {text!r} is not a {data_type} number") from exc
        if not value.is_finite():
            raise ModelError(f"{where}/Quantity: {text!r} is not a finite number")
        _get(item, "Key")
        return Quantity(value=value, unit=_get(item, "UnitOfMeasure"))
    return None


def _value_tree(value: str | None, unit: str | None, data_type: str = "string") -> dict[str, Any]:
    tree: dict[str, Any] = {"ValueString": value or "", "DataType": data_type}
    _put(tree, "UnitOfMeasure", unit)
    return tree


def _property_tree(prop: Property) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": prop.id}
    _put(tree, "Description", _desc(prop.description))
    if prop.value is not None or prop.unit is not None:
        tree["Value"] = [_value_tree(prop.value, prop.unit)]
    return tree


def _property(tree: dict[str, Any]) -> Property:
    values = _list(tree, "Value")
    value = unit = None
    if values:
        value = _get(values[0], "ValueString")
        unit = _get(values[0], "UnitOfMeasure")
        _get(values[0], "DataType")
    return Property(
        id=_get(tree, "ID") or "",
        value=value or None,
        unit=unit,
        description=_get(tree, "Description"),
    )


def _class_tree(model: Any, property_element: str) -> dict[str, Any]:
    """A material/equipment/personnel class: ID, Description and its properties."""
    tree: dict[str, Any] = {"ID": model.id}
    _put(tree, "Description", _desc(model.description))
    _put(tree, property_element, [_property_tree(p) for p in model.properties])
    return tree


def _class_fields(tree: dict[str, Any], property_element: str) -> dict[str, Any]:
    """Constructor arguments of a class model read from its tree."""
    return {
        "id": _get(tree, "ID"),
        "description": _get(tree, "Description"),
        "properties": [_property(p) for p in _list(tree, property_element)],
    }


def _storage_tree(version: str, location: str | None) -> Any:
    if location is None:
        return None
    if version == V0701:
        return {"Location": location, "LocationType": "Equipment"}
    return location


def _storage(tree: dict[str, Any]) -> str | None:
    value = tree.get("StorageLocation")
    if isinstance(value, dict) and "Location" in value:
        value.get("LocationType")
        return _text(value.get("Location"))
    return _text(value)


def _where(tree: dict[str, Any], label: str, *id_keys: str) -> str:
    """``Label 'id' (line N)`` for error messages."""
    ident = next((i for i in (_text(dict.get(tree, k)) for k in (*id_keys, "ID")) if i), None)
    line = dict.get(tree, "@@line")
    return f"<{label}>" + (f" {ident!r}" if ident else "") + (f" (line {line})" if line else "")


def _model(build: Callable[[], _M], where: str) -> _M:
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ModelError(f"{where}: {field + ': ' if field else ''}{message}") from exc


# ------------------------------------------------------------ material


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


def _material_from_tree(tree: dict[str, Any], version: str) -> MaterialInformation:
    def lot(t: dict[str, Any]) -> MaterialLot:
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
                sublots=[sublot(s) for s in _list(t, "MaterialSubLot")],
            ),
            where,
        )

    def sublot(t: dict[str, Any]) -> MaterialSubLot:
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
        )

    return _model(
        lambda: MaterialInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            classes=[
                MaterialClass(**_class_fields(c, "MaterialClassProperty"))
                for c in _list(tree, "MaterialClass")
            ],
            definitions=[
                MaterialDefinition(
                    id=_get(d, "ID"),
                    description=_get(d, "Description"),
                    material_class_ids=_texts(d, "MaterialClassID"),
                    properties=[_property(p) for p in _list(d, "MaterialDefinitionProperty")],
                )
                for d in _list(tree, "MaterialDefinition")
            ],
            lots=[lot(t) for t in _list(tree, "MaterialLot")],
        ),
        "MaterialInformation",
    )


# ----------------------------------------------------------- equipment


def _child_name(version: str, base: str) -> str:
    return f"{base}Child" if version == V0701 else base


def _equipment_tree(e: Equipment, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": e.id}
    _put(tree, "Description", _desc(e.description))
    if version == V0701:
        tree["EquipmentLevel"] = str(e.level)
    else:  # V0600 types EquipmentLevel as a hierarchy scope
        tree["EquipmentLevel"] = {"EquipmentID": e.id, "EquipmentElementLevel": str(e.level)}
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


def _equipment_from_tree(tree: dict[str, Any], version: str) -> EquipmentInformation:
    def equipment(t: dict[str, Any]) -> Equipment:
        where = _where(t, "Equipment")
        raw_level = t.get("EquipmentLevel")
        if isinstance(raw_level, dict) and "EquipmentElementLevel" in raw_level:
            raw_level.get("EquipmentID")
            raw_level = raw_level.get("EquipmentElementLevel")
        level = _text(raw_level)
        if level is None or level not in EquipmentLevel.__members__.values():
            raise ModelError(f"{where}: equipment level {level!r} is not a role-based level")
        return _model(
            lambda: Equipment(
                id=_get(t, "ID"),
                level=EquipmentLevel(level),
                description=_get(t, "Description"),
                properties=[_property(p) for p in _list(t, "EquipmentProperty")],
                equipment_class_ids=_texts(t, "EquipmentClassID"),
                children=[equipment(c) for c in _list(t, _child_name(version, "Equipment"))],
            ),
            where,
        )

    return _model(
        lambda: EquipmentInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            equipment=[equipment(e) for e in _list(tree, "Equipment")],
            classes=[
                EquipmentClass(**_class_fields(c, "EquipmentClassProperty"))
                for c in _list(tree, "EquipmentClass")
            ],
        ),
        "EquipmentInformation",
    )


# ----------------------------------------------------------- personnel


def _qualification_tree(q: Qualification) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": QUALIFICATION_PREFIX + q.id}
    _put(tree, "Description", _desc(q.description))
    values = [{**_value_tree(q.result, None), "Key": "result"}] if q.result is not None else []
    if q.valid_until is not None:
        values.append(
            {**_value_tree(q.valid_until.isoformat(), None, "dateTime"), "Key": "validUntil"}
        )
    _put(tree, "Value", values)
    return tree


def _qualification(t: dict[str, Any]) -> Qualification:
    result = valid_until = None
    for value in _list(t, "Value"):
        key = _get(value, "Key")
        _get(value, "DataType")
        if key == "result":
            result = _get(value, "ValueString")
        elif key == "validUntil":
            valid_until = _parse_time(_get(value, "ValueString"), "qualification validUntil")
    return Qualification(
        id=(_get(t, "ID") or "")[len(QUALIFICATION_PREFIX) :],
        description=_get(t, "Description"),
        result=result,
        valid_until=valid_until,
    )


def _personnel_to_tree(model: PersonnelInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    persons = []
    for p in model.persons:
        t: dict[str, Any] = {"ID": p.id}
        _put(t, "PersonName", p.name)
        _put(
            t,
            "PersonProperty",
            [_property_tree(x) for x in p.properties]
            + [_qualification_tree(q) for q in p.qualifications],
        )
        _put(t, "PersonnelClassID", list(p.personnel_class_ids))
        persons.append(t)
    _put(tree, "Person", persons)
    _put(
        tree,
        "PersonnelClass",
        [_class_tree(c, "PersonnelClassProperty") for c in model.classes],
    )
    return tree


def _personnel_from_tree(tree: dict[str, Any], version: str) -> PersonnelInformation:
    def person(t: dict[str, Any]) -> Person:
        props = _list(t, "PersonProperty")
        return _model(
            lambda: Person(
                id=_get(t, "ID"),
                name=_get(t, "PersonName"),
                personnel_class_ids=_texts(t, "PersonnelClassID"),
                properties=[
                    _property(p)
                    for p in props
                    if not (_get(p, "ID") or "").startswith(QUALIFICATION_PREFIX)
                ],
                qualifications=[
                    _qualification(p)
                    for p in props
                    if (_get(p, "ID") or "").startswith(QUALIFICATION_PREFIX)
                ],
            ),
            f"Person {_get(t, 'ID')!r}",
        )

    return _model(
        lambda: PersonnelInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            persons=[person(p) for p in _list(tree, "Person")],
            classes=[
                PersonnelClass(**_class_fields(c, "PersonnelClassProperty"))
                for c in _list(tree, "PersonnelClass")
            ],
        ),
        "PersonnelInformation",
    )


# ----------------------------------------------------- process segments


def _parameter_name(version: str) -> str:
    return "ProcessSegmentParameter" if version == V0701 else "Parameter"


def _data_tree(d: DataValue) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": d.id}
    _put(tree, "Description", _desc(d.description))
    tree["Value"] = [_value_tree(d.value, d.unit)]
    return tree


def _data(t: dict[str, Any]) -> DataValue:
    values = _list(t, "Value")
    value = _get(values[0], "ValueString") if values else ""
    unit = _get(values[0], "UnitOfMeasure") if values else None
    if values:
        _get(values[0], "DataType")
    return DataValue(
        id=_get(t, "ID") or "", value=value or "", unit=unit, description=_get(t, "Description")
    )


def _segment_to_tree(s: ProcessSegment, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": s.id}
    _put(tree, "Description", _desc(s.description))
    _put(
        tree,
        "PersonnelSegmentSpecification",
        [
            {
                **({"ID": f"P{i}"} if version == V0701 else {}),
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
                **({"ID": f"E{i}"} if version == V0701 else {}),
                "EquipmentClassID": [c] if version == V0701 else c,
            }
            for i, c in enumerate(s.equipment_class_ids)
        ],
    )
    specs = []
    for i, m in enumerate(s.materials):
        t: dict[str, Any] = {"ID": f"M{i}"}
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
    _put(tree, _parameter_name(version), [_data_tree(p) for p in s.parameters])
    return tree


def _segment_from_tree(t: dict[str, Any], version: str) -> ProcessSegment:
    where = _where(t, "ProcessSegment")
    materials = []
    for m in _list(t, "MaterialSegmentSpecification"):
        _get(m, "ID")
        use = _get(m, "MaterialUse")
        materials.append(
            MaterialSpecification(
                material_class_id=_get(m, "MaterialClassID"),
                material_definition_id=_get(m, "MaterialDefinitionID"),
                use=MaterialUse(use) if use in MaterialUse.__members__.values() else None,
                quantity=_quantity(m, where),
            )
        )
    for spec in _list(t, "PersonnelSegmentSpecification") + _list(
        t, "EquipmentSegmentSpecification"
    ):
        _get(spec, "ID")
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
            parameters=[_data(p) for p in _list(t, _parameter_name(version))],
        ),
        where,
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
        "ProcessSegmentInformation",
    )


# -------------------------------------------------------- schedules


@dataclass(frozen=True)
class _Names:
    """Element names of the Operations* and (V0600) Production* families."""

    request: str
    response: str
    definition_id: str
    parameter: str
    data: str


_OPS = _Names(
    "OperationsRequest",
    "OperationsResponse",
    "OperationsDefinitionID",
    "SegmentParameter",
    "SegmentData",
)
_PROD = _Names(
    "ProductionRequest",
    "ProductionResponse",
    "ProductProductionRuleID",
    "ProductionParameter",
    "ProductionData",
)


def _material_req_tree(
    m: MaterialRequirement | MaterialActual, version: str, index: int, production: bool
) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    if version == V0701:
        tree["ID"] = f"M{index}"
    _put(
        tree,
        "MaterialDefinitionID",
        [m.material_definition_id] if m.material_definition_id else None,
    )
    _put(tree, "MaterialLotID", [m.lot_id] if m.lot_id else None)
    if isinstance(m, MaterialActual):
        _put(tree, "MaterialSubLotID", [m.sublot_id] if m.sublot_id else None)
    _put(tree, "MaterialUse", m.use and str(m.use))
    _put(tree, "Quantity", _quantity_tree(m.quantity))
    return tree


def _use(t: dict[str, Any]) -> MaterialUse | None:
    use = _get(t, "MaterialUse")
    return MaterialUse(use) if use in MaterialUse.__members__.values() else None


def _schedule_to_tree(model: OperationsSchedule, version: str, names: _Names) -> dict[str, Any]:
    production = names is _PROD
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    if not production:
        _put(tree, "OperationsType", model.operations_type)
    _put(tree, "StartTime", _time(model.start))
    _put(tree, "EndTime", _time(model.end))
    requests = []
    for r in model.requests:
        t: dict[str, Any] = {"ID": r.id}
        _put(t, "Description", _desc(r.description))
        _put(t, "StartTime", _time(r.start))
        _put(t, "EndTime", _time(r.end))
        _put(t, "Priority", None if r.priority is None else str(r.priority))
        _put(t, names.definition_id, r.operations_definition_id)
        segments = []
        for s in r.segments:
            st: dict[str, Any] = {}
            _put(st, "ID", s.id)
            _put(st, "Description", _desc(s.description))
            _put(st, "ProcessSegmentID", s.process_segment_id)
            _put(st, "EarliestStartTime", _time(s.earliest_start))
            _put(st, "LatestEndTime", _time(s.latest_end))
            if version == V0701:
                st["OperationsDefinitionID"] = r.operations_definition_id or r.id
                st["OperationsSegmentID"] = s.process_segment_id or s.id or r.id
            _put(st, names.parameter, [_data_tree(p) for p in s.parameters])
            _put(
                st,
                "EquipmentRequirement",
                [
                    {**({"ID": f"E{i}"} if version == V0701 else {}), "EquipmentID": [e]}
                    for i, e in enumerate(s.equipment_ids)
                ],
            )
            _put(
                st,
                "MaterialRequirement",
                [_material_req_tree(m, version, i, production) for i, m in enumerate(s.materials)],
            )
            segments.append(st)
        _put(t, "SegmentRequirement", segments)
        requests.append(t)
    _put(tree, names.request, requests)
    return tree


def _schedule_from_tree(tree: dict[str, Any], version: str, names: _Names) -> OperationsSchedule:
    def segment(st: dict[str, Any]) -> SegmentRequirement:
        where = _where(st, "SegmentRequirement", "ProcessSegmentID")
        _get(st, "OperationsDefinitionID")
        _get(st, "OperationsSegmentID")
        materials = [
            MaterialRequirement(
                material_definition_id=_get(m, "MaterialDefinitionID"),
                lot_id=_get(m, "MaterialLotID"),
                use=_use(m),
                quantity=_quantity(m, where),
            )
            for m in _list(st, "MaterialRequirement")
        ]
        for m in _list(st, "MaterialRequirement"):
            _get(m, "ID")
        for e in _list(st, "EquipmentRequirement"):
            _get(e, "ID")
        return _model(
            lambda: SegmentRequirement(
                id=_get(st, "ID"),
                description=_get(st, "Description"),
                process_segment_id=_get(st, "ProcessSegmentID"),
                earliest_start=_parse_time(
                    _get(st, "EarliestStartTime"), f"{where}/EarliestStartTime"
                ),
                latest_end=_parse_time(_get(st, "LatestEndTime"), f"{where}/LatestEndTime"),
                equipment_ids=[
                    x for e in _list(st, "EquipmentRequirement") for x in _texts(e, "EquipmentID")
                ],
                materials=materials,
                parameters=[_data(p) for p in _list(st, names.parameter)],
            ),
            where,
        )

    def request(t: dict[str, Any]) -> OperationsRequest:
        where = _where(t, names.request)
        priority = _get(t, "Priority")
        return _model(
            lambda: OperationsRequest(
                id=_get(t, "ID"),
                description=_get(t, "Description"),
                operations_definition_id=_get(t, names.definition_id),
                start=_parse_time(_get(t, "StartTime"), f"{where}/StartTime"),
                end=_parse_time(_get(t, "EndTime"), f"{where}/EndTime"),
                priority=None if priority is None else int(priority),
                segments=[segment(s) for s in _list(t, "SegmentRequirement")],
            ),
            where,
        )

    return _model(
        lambda: OperationsSchedule(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            operations_type=_get(tree, "OperationsType"),
            start=_parse_time(_get(tree, "StartTime"), "schedule StartTime"),
            end=_parse_time(_get(tree, "EndTime"), "schedule EndTime"),
            requests=[request(r) for r in _list(tree, names.request)],
        ),
        "schedule",
    )


# ------------------------------------------------------ performance


def _performance_to_tree(
    model: OperationsPerformance, version: str, names: _Names
) -> dict[str, Any]:
    production = names is _PROD
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    if not production:
        _put(tree, "OperationsType", model.operations_type)
        _put(tree, "OperationsScheduleID", model.schedule_id)
    else:
        _put(tree, "ProductionScheduleID", model.schedule_id)
    _put(tree, "StartTime", _time(model.start))
    _put(tree, "EndTime" if version == V0600 else "Endtime", _time(model.end))
    responses = []
    for r in model.responses:
        t: dict[str, Any] = {"ID": r.id}
        if not production:  # ProductionResponse has no Description
            _put(t, "Description", _desc(r.description))
        _put(t, "StartTime", _time(r.start))
        _put(t, "EndTime", _time(r.end))
        if production:
            _put(t, "ProductionRequestID", r.request_id)
        else:
            _put(t, "OperationsRequestID", [r.request_id] if r.request_id else None)
        _put(t, "ResponseState", r.state)
        segments = []
        for s in r.segments:
            st: dict[str, Any] = {"ID": s.id}
            _put(st, "Description", _desc(s.description))
            _put(st, "ProcessSegmentID", [s.process_segment_id] if s.process_segment_id else None)
            _put(st, "ActualStartTime", _time(s.start))
            _put(st, "ActualEndTime", _time(s.end))
            _put(st, names.data, [_data_tree(d) for d in s.data])
            _put(
                st,
                "PersonnelActual",
                [
                    {
                        **({"ID": f"P{i}"} if version == V0701 else {}),
                        "PersonID": [p.person_id],
                        **({"Description": [p.description]} if p.description else {}),
                    }
                    for i, p in enumerate(s.personnel)
                ],
            )
            _put(
                st,
                "EquipmentActual",
                [
                    {
                        **({"ID": f"E{i}"} if version == V0701 else {}),
                        "EquipmentID": [e.equipment_id],
                        **({"Description": [e.description]} if e.description else {}),
                    }
                    for i, e in enumerate(s.equipment)
                ],
            )
            _put(
                st,
                "MaterialActual",
                [_material_req_tree(m, version, i, production) for i, m in enumerate(s.materials)],
            )
            segments.append(st)
        _put(t, "SegmentResponse", segments)
        responses.append(t)
    _put(tree, names.response, responses)
    return tree


def _performance_from_tree(
    tree: dict[str, Any], version: str, names: _Names
) -> OperationsPerformance:
    production = names is _PROD

    def segment(st: dict[str, Any]) -> SegmentResponse:
        where = _where(st, "SegmentResponse")
        for group in ("PersonnelActual", "EquipmentActual", "MaterialActual"):
            for item in _list(st, group):
                _get(item, "ID")
        return _model(
            lambda: SegmentResponse(
                id=_get(st, "ID"),
                description=_get(st, "Description"),
                process_segment_id=_get(st, "ProcessSegmentID"),
                start=_parse_time(_get(st, "ActualStartTime"), f"{where}/ActualStartTime"),
                end=_parse_time(_get(st, "ActualEndTime"), f"{where}/ActualEndTime"),
                data=[_data(d) for d in _list(st, names.data)],
                personnel=[
                    PersonnelActual(
                        person_id=_get(p, "PersonID") or "", description=_get(p, "Description")
                    )
                    for p in _list(st, "PersonnelActual")
                ],
                equipment=[
                    EquipmentActual(
                        equipment_id=_get(e, "EquipmentID") or "",
                        description=_get(e, "Description"),
                    )
                    for e in _list(st, "EquipmentActual")
                ],
                materials=[
                    MaterialActual(
                        material_definition_id=_get(m, "MaterialDefinitionID"),
                        lot_id=_get(m, "MaterialLotID"),
                        sublot_id=_get(m, "MaterialSubLotID"),
                        use=_use(m),
                        quantity=_quantity(m, where),
                    )
                    for m in _list(st, "MaterialActual")
                ],
            ),
            where,
        )

    def response(t: dict[str, Any]) -> OperationsResponse:
        where = _where(t, names.response)
        return _model(
            lambda: OperationsResponse(
                id=_get(t, "ID"),
                description=_get(t, "Description"),
                request_id=_get(t, "ProductionRequestID" if production else "OperationsRequestID"),
                start=_parse_time(_get(t, "StartTime"), f"{where}/StartTime"),
                end=_parse_time(_get(t, "EndTime"), f"{where}/EndTime"),
                state=_get(t, "ResponseState"),
                segments=[segment(s) for s in _list(t, "SegmentResponse")],
            ),
            where,
        )

    return _model(
        lambda: OperationsPerformance(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            operations_type=_get(tree, "OperationsType"),
            schedule_id=_get(
                tree, "ProductionScheduleID" if production else "OperationsScheduleID"
            ),
            start=_parse_time(_get(tree, "StartTime"), "performance StartTime"),
            end=_parse_time(
                _get(tree, "EndTime" if version == V0600 else "Endtime"), "performance EndTime"
            ),
            responses=[response(r) for r in _list(tree, names.response)],
        ),
        "performance",
    )


# ------------------------------------------------------- batch record

_EVENT_TYPES = {
    "Alarm",
    "Control Recipe",
    "Equipment",
    "General",
    "Material",
    "Message",
    "Operator",
    "Procedural Execution",
    "Other",
    "Allocation",
    "Application",
    "Consume",
    "Deallocation",
}
_EVENT_SUBTYPES = {
    "Allocation",
    "Application",
    "Consume",
    "Deallocation",
    "Equipment",
    "Message",
    "Mode Change",
    "Mode Command",
    "Modification",
    "Movement",
    "Parameter Data",
    "Process",
    "Process Data",
    "Produce",
    "Prompt",
    "Prompt Response",
    "Property Value Change",
    "Reconciliation",
    "Security",
    "State Change",
    "State Command",
    "Status Change",
    "System",
    "Target End Time",
    "Target Start Time",
    "Other",
}


def _coded(value: str, allowed: set[str]) -> Any:
    return value if value in allowed else {"#text": "Other", "@OtherValue": value}


def _decoded(value: Any) -> str:
    if isinstance(value, dict):
        if value.get("#text") == "Other" and value.get("@OtherValue"):
            return str(value.get("@OtherValue"))
        return str(value.get("#text"))
    return str(value)


def _record_header(model: BatchProductionRecord, object_type: str) -> dict[str, Any]:
    return {"EntryID": model.id, "ObjectType": object_type}


def _bpr_to_tree(model: BatchProductionRecord, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": model.id, **_record_header(model, "Batch Production Record")}
    _put(tree, "Description", _desc(model.description))
    _put(tree, "CreationDate", _time(model.creation_date))
    _put(tree, "BatchID", model.batch_id)
    _put(tree, "LotID", model.lot_id)
    _put(tree, "MaterialDefinitionID", model.material_definition_id)
    _put(tree, "RecordStatus", model.record_status)
    if model.series:
        datasets = []
        for index, series in enumerate(model.series):
            tag: dict[str, Any] = {
                "TagIndex": "1",
                "DataType": series.data_type,
                "UnitOfMeasure": series.unit or "",
                "DataSource": [series.tag],
            }
            _put(tag, "Description", _desc(series.description))
            datasets.append(
                {
                    "EntryID": f"{model.id}/DS{index}",
                    "ObjectType": "Data Set",
                    "TagSpecification": [tag],
                    "OrderedData": [
                        {
                            "TimeValue": v.timestamp.isoformat(),
                            "DataValue": [
                                {
                                    "TagIndex": "1",
                                    "Value": [v.value],
                                    **({"Quality": v.quality} if v.quality else {}),
                                }
                            ],
                        }
                        for v in series.values
                    ],
                }
            )
        tree["DataSets"] = {"DataSet": datasets}
    if model.events:
        events = []
        for e in model.events:
            t: dict[str, Any] = {
                "EntryID": e.id,
                "ObjectType": "Event",
                "TimeStamp": e.timestamp.isoformat(),
                "EventType": _coded(e.event_type, _EVENT_TYPES),
                "EventSubType": _coded(e.event_subtype, _EVENT_SUBTYPES),
            }
            _put(t, "EquipmentID", [e.equipment_id] if e.equipment_id else None)
            _put(t, "MessageText", [e.message] if e.message else None)
            _put(t, "PersonID", [e.person_id] if e.person_id else None)
            _put(
                t,
                "ProceduralElementReference",
                [e.procedural_element] if e.procedural_element else None,
            )
            events.append(t)
        tree["Events"] = {"Event": events}
    return tree


def _bpr_from_tree(tree: dict[str, Any], version: str) -> BatchProductionRecord:
    record_id = _get(tree, "ID") or ""
    _get(tree, "EntryID")
    _get(tree, "ObjectType")
    series = []
    datasets = tree.get("DataSets") or {}
    for ds in _list(datasets, "DataSet"):
        _get(ds, "EntryID")
        _get(ds, "ObjectType")
        specs = {}
        for spec in _list(ds, "TagSpecification"):
            specs[_get(spec, "TagIndex")] = spec
        for index, spec in specs.items():
            values = []
            for od in _list(ds, "OrderedData"):
                when = _parse_time(
                    _get(od, "TimeValue"), f"BatchProductionRecord {record_id!r} TimeValue"
                )
                for dv in _list(od, "DataValue"):
                    if _get(dv, "TagIndex") in (index, None):
                        for v in _list(dv, "Value"):
                            values.append(
                                RecordedValue(
                                    timestamp=when,
                                    value=_text(v) or "",
                                    quality=_get(dv, "Quality"),
                                )
                            )
            unit = _get(spec, "UnitOfMeasure")
            series.append(
                TagSeries(
                    tag=(_texts(spec, "DataSource") or [f"tag{index}"])[0],
                    unit=unit or None,
                    description=_get(spec, "Description"),
                    data_type=_get(spec, "DataType") or "string",
                    values=values,
                )
            )

    def event(e: dict[str, Any]) -> RecordEvent:
        _get(e, "ObjectType")
        return _model(
            lambda: RecordEvent(
                id=_get(e, "EntryID"),
                timestamp=_parse_time(_get(e, "TimeStamp"), "Event TimeStamp"),
                event_type=_decoded(e.get("EventType")),
                event_subtype=_decoded(e.get("EventSubType")),
                message=_get(e, "MessageText"),
                person_id=_get(e, "PersonID"),
                equipment_id=_get(e, "EquipmentID"),
                procedural_element=_get(e, "ProceduralElementReference"),
            ),
            _where(e, "Event", "EntryID"),
        )

    events = [event(e) for e in _list(tree.get("Events") or {}, "Event")]
    return _model(
        lambda: BatchProductionRecord(
            id=record_id,
            description=_get(tree, "Description"),
            creation_date=_parse_time(
                _get(tree, "CreationDate"), "BatchProductionRecord CreationDate"
            ),
            batch_id=_get(tree, "BatchID"),
            lot_id=_get(tree, "LotID"),
            material_definition_id=_get(tree, "MaterialDefinitionID"),
            record_status=_get(tree, "RecordStatus"),
            series=series,
            events=events,
        ),
        f"BatchProductionRecord {record_id!r}",
    )


# ------------------------------------------------------- master recipe

_ELEMENT_TYPES = ("Procedure", "UnitProcedure", "Operation", "Phase")


_LIMITS = (("low", "LowLimit"), ("high", "HighLimit"))


def _batch_value(number: Decimal | None, unit: str | None) -> dict[str, Any]:
    return {
        "ValueString": ["" if number is None else str(number)],
        "DataInterpretation": "Constant",
        "DataType": "decimal",
        "UnitOfMeasure": unit or "",
    }


def _parameter_tree(p: FormulaParameter) -> dict[str, Any]:
    """A formula parameter: target as value, limits as LowLimit/HighLimit sub-parameters."""
    tree: dict[str, Any] = {"ID": p.id}
    _put(tree, "Description", p.description)
    tree["ParameterType"] = "ProcessParameter"
    tree["Value"] = [_batch_value(p.target, p.unit)]
    limits = []
    for attribute, subtype in _LIMITS:
        number = getattr(p, attribute)
        if number is not None:
            limits.append(
                {
                    "ID": f"{p.id}.{attribute}",
                    "ParameterType": "ProcessParameter",
                    "ParameterSubType": [subtype],
                    "Value": [_batch_value(number, p.unit)],
                }
            )
    _put(tree, "Parameter", limits)
    return tree


def _batch_number(t: dict[str, Any], where: str) -> tuple[Decimal | None, str | None]:
    values = _list(t, "Value")
    if not values:
        return None, None
    value = values[0]
    _get(value, "DataInterpretation")
    _get(value, "DataType")
    text = (_texts(value, "ValueString") or [""])[0].strip()
    unit = _get(value, "UnitOfMeasure") or None
    if not text:
        return None, unit
    try:
        return Decimal(text), unit
    except InvalidOperation:
        value.used.discard("ValueString")  # not numeric: reported as unmapped
        return None, unit


def _parameter(t: dict[str, Any]) -> FormulaParameter:
    where = _where(t, "Parameter")
    target, unit = _batch_number(t, where)
    limits: dict[str, Decimal | None] = {"low": None, "high": None}
    for child in _list(t, "Parameter"):
        subtype = _get(child, "ParameterSubType")
        for attribute, name in _LIMITS:
            if subtype == name:
                _get(child, "ID")
                _get(child, "ParameterType")
                limits[attribute], child_unit = _batch_number(child, where)
                unit = unit or child_unit
    _get(t, "ParameterType")
    return _model(
        lambda: FormulaParameter(
            id=_get(t, "ID"), description=_get(t, "Description"), unit=unit, target=target, **limits
        ),
        where,
    )


def _element_tree(
    kind: str,
    element: Any,
    children: list[dict[str, Any]],
    requirement: EquipmentRequirement | None = None,
    parameters: list[FormulaParameter] | None = None,
) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": element.id}
    _put(tree, "Description", _desc(element.description))
    tree["RecipeElementType"] = kind
    if requirement is not None:
        tree["EquipmentRequirement"] = [
            {
                "ID": requirement.equipment_class_id,
                **({"Description": requirement.description} if requirement.description else {}),
            }
        ]
    _put(tree, "Parameter", [_parameter_tree(p) for p in parameters or []])
    _put(tree, "RecipeElement", children)
    return tree


def _recipe_to_tree(model: Recipe, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": model.id, "Version": model.version}
    _put(tree, "VersionDate", _time(model.version_date))
    _put(tree, "Description", _desc(model.description))
    header: dict[str, Any] = {}
    _put(header, "ProductID", model.product_id)
    _put(header, "ProductName", model.product_name)
    if model.batch_size is not None:
        header["BatchSize"] = {
            "Nominal": str(model.batch_size.value),
            **({"UnitOfMeasure": model.batch_size.unit} if model.batch_size.unit else {}),
        }
    _put(tree, "Header", header or None)
    _put(
        tree,
        "EquipmentRequirement",
        [
            {
                "ID": r.equipment_class_id,
                **({"Description": r.description} if r.description else {}),
            }
            for r in model.equipment_requirements
        ],
    )
    if model.formula:
        tree["Formula"] = {"Parameter": [_parameter_tree(p) for p in model.formula]}
    if model.procedure is not None:
        proc = model.procedure
        tree["RecipeElement"] = [
            _element_tree(
                "Procedure",
                proc,
                [
                    _element_tree(
                        "UnitProcedure",
                        up,
                        [
                            _element_tree(
                                "Operation",
                                op,
                                [
                                    _element_tree("Phase", ph, [], parameters=ph.parameters)
                                    for ph in op.phases
                                ],
                            )
                            for op in up.operations
                        ],
                        requirement=up.equipment_requirement,
                    )
                    for up in proc.unit_procedures
                ],
            )
        ]
    return tree


def _recipe_from_tree(tree: dict[str, Any], version: str) -> Recipe:
    recipe_id = _get(tree, "ID") or ""

    def children(t: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        found = []
        for child in _list(t, "RecipeElement"):
            if _get(child, "RecipeElementType") == kind:
                found.append(child)
        return found

    def requirement(t: dict[str, Any]) -> EquipmentRequirement | None:
        reqs = _list(t, "EquipmentRequirement")
        if not reqs:
            return None
        return EquipmentRequirement(
            equipment_class_id=_get(reqs[0], "ID") or "", description=_get(reqs[0], "Description")
        )

    procedure = None
    procs = [e for e in _list(tree, "RecipeElement") if _get(e, "RecipeElementType") == "Procedure"]
    if procs:
        p = procs[0]
        procedure = _model(
            lambda: Procedure(
                id=_get(p, "ID"),
                description=_get(p, "Description"),
                unit_procedures=[
                    UnitProcedure(
                        id=_get(up, "ID"),
                        description=_get(up, "Description"),
                        equipment_requirement=requirement(up),
                        operations=[
                            Operation(
                                id=_get(op, "ID"),
                                description=_get(op, "Description"),
                                phases=[
                                    Phase(
                                        id=_get(ph, "ID"),
                                        description=_get(ph, "Description"),
                                        parameters=[_parameter(x) for x in _list(ph, "Parameter")],
                                    )
                                    for ph in children(op, "Phase")
                                ],
                            )
                            for op in children(up, "Operation")
                        ],
                    )
                    for up in children(p, "UnitProcedure")
                ],
            ),
            f"MasterRecipe {recipe_id!r} procedure",
        )
    header = tree.get("Header") or Tracked({})
    batch_size = None
    size = header.get("BatchSize")
    if size:
        nominal = _get(size, "Nominal")
        if nominal:
            try:
                batch_size = Quantity(value=Decimal(nominal), unit=_get(size, "UnitOfMeasure"))
            except InvalidOperation as exc:
                raise ModelError(
                    f"MasterRecipe {recipe_id!r}: batch size {nominal!r} is not a number"
                ) from exc
    formula = tree.get("Formula") or Tracked({})
    return _model(
        lambda: Recipe(
            id=recipe_id,
            version=_get(tree, "Version") or "1",
            recipe_type=RecipeType.MASTER,
            version_date=_parse_time(_get(tree, "VersionDate"), "MasterRecipe VersionDate"),
            description=_get(tree, "Description"),
            product_id=_get(header, "ProductID"),
            product_name=_get(header, "ProductName"),
            batch_size=batch_size,
            equipment_requirements=[
                EquipmentRequirement(
                    equipment_class_id=_get(r, "ID") or "", description=_get(r, "Description")
                )
                for r in _list(tree, "EquipmentRequirement")
            ],
            formula=[_parameter(x) for x in _list(formula, "Parameter")],
            procedure=procedure,
        ),
        f"MasterRecipe {recipe_id!r}",
    )


# ------------------------------------------------------------- registry


@dataclass(frozen=True)
class Noun:
    """A document noun: its element name per release and its model mapping."""

    name: str
    model: type
    versions: tuple[str, ...]
    to_tree: Callable[[Any, str], dict[str, Any]]
    from_tree: Callable[[dict[str, Any], str], Any]


NOUNS: dict[str, Noun] = {
    n.name: n
    for n in [
        Noun(
            "MaterialInformation",
            MaterialInformation,
            (V0701, V0600),
            _material_to_tree,
            _material_from_tree,
        ),
        Noun(
            "EquipmentInformation",
            EquipmentInformation,
            (V0701, V0600),
            _equipment_to_tree,
            _equipment_from_tree,
        ),
        Noun(
            "PersonnelInformation",
            PersonnelInformation,
            (V0701, V0600),
            _personnel_to_tree,
            _personnel_from_tree,
        ),
        Noun(
            "ProcessSegmentInformation",
            ProcessSegmentInformation,
            (V0701, V0600),
            _segments_to_tree,
            _segments_from_tree,
        ),
        Noun(
            "OperationsSchedule",
            OperationsSchedule,
            (V0701, V0600),
            lambda m, v: _schedule_to_tree(m, v, _OPS),
            lambda t, v: _schedule_from_tree(t, v, _OPS),
        ),
        Noun(
            "ProductionSchedule",
            OperationsSchedule,
            (V0600,),
            lambda m, v: _schedule_to_tree(m, v, _PROD),
            lambda t, v: _schedule_from_tree(t, v, _PROD),
        ),
        Noun(
            "OperationsPerformance",
            OperationsPerformance,
            (V0701, V0600),
            lambda m, v: _performance_to_tree(m, v, _OPS),
            lambda t, v: _performance_from_tree(t, v, _OPS),
        ),
        Noun(
            "ProductionPerformance",
            OperationsPerformance,
            (V0600,),
            lambda m, v: _performance_to_tree(m, v, _PROD),
            lambda t, v: _performance_from_tree(t, v, _PROD),
        ),
        Noun(
            "BatchProductionRecord",
            BatchProductionRecord,
            (V0701, V0600),
            _bpr_to_tree,
            _bpr_from_tree,
        ),
        Noun("MasterRecipe", Recipe, (V0701, V0600), _recipe_to_tree, _recipe_from_tree),
    ]
}
"""Supported nouns. A model type maps to the first noun listed for it."""
