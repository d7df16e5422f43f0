"""PersonnelInformation ↔ isa95.personnel (qualifications as QUAL: properties)."""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    QUALIFICATION_PREFIX,
    _class_fields,
    _class_tree,
    _desc,
    _get,
    _list,
    _model,
    _parse_time,
    _property,
    _property_tree,
    _put,
    _source,
    _texts,
    _value_tree,
    _where,
    xsd_datetime,
)
from isa95.personnel import Person, PersonnelClass, PersonnelInformation, Qualification


def _qualification_tree(q: Qualification) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": QUALIFICATION_PREFIX + q.id}
    _put(tree, "Description", _desc(q.description))
    values = [{**_value_tree(q.result, None), "Key": "result"}] if q.result is not None else []
    if q.valid_until is not None:
        values.append(
            {**_value_tree(xsd_datetime(q.valid_until), None, "dateTime"), "Key": "validUntil"}
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
            valid_until = _parse_time(
                _get(value, "ValueString"), f"{_where(value, 'Value')} (validUntil)"
            )
    return _source(
        Qualification(
            id=(_get(t, "ID") or "")[len(QUALIFICATION_PREFIX) :],
            description=_get(t, "Description"),
            result=result,
            valid_until=valid_until,
        ),
        t,
    )


def _person_tree(p: Person, version: str = "") -> dict[str, Any]:
    t: dict[str, Any] = {"ID": p.id}
    _put(t, "PersonName", p.name)
    _put(
        t,
        "PersonProperty",
        [_property_tree(x) for x in p.properties]
        + [_qualification_tree(q) for q in p.qualifications],
    )
    _put(t, "PersonnelClassID", list(p.personnel_class_ids))
    return t


def _class_to_tree(c: PersonnelClass, version: str = "") -> dict[str, Any]:
    return _class_tree(c, "PersonnelClassProperty")


def _personnel_to_tree(model: PersonnelInformation, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _put(tree, "ID", model.id)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "Person", [_person_tree(p) for p in model.persons])
    _put(tree, "PersonnelClass", [_class_to_tree(c) for c in model.classes])
    return tree


def _person_from_tree(t: dict[str, Any], version: str = "") -> Person:
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
        _where(t, "Person"),
        t,
    )


def _class_from_tree(c: dict[str, Any], version: str = "") -> PersonnelClass:
    return _model(
        lambda: PersonnelClass(**_class_fields(c, "PersonnelClassProperty")),
        _where(c, "PersonnelClass"),
        c,
    )


def _personnel_from_tree(tree: dict[str, Any], version: str) -> PersonnelInformation:
    return _model(
        lambda: PersonnelInformation(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            persons=[_person_from_tree(p) for p in _list(tree, "Person")],
            classes=[_class_from_tree(c) for c in _list(tree, "PersonnelClass")],
        ),
        _where(tree, "PersonnelInformation"),
        tree,
    )
