"""Operations/Production schedules and performance ↔ isa95.operations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isa95.b2mml.mapping.segments import _data, _data_tree, _parameter_child
from isa95.b2mml.mapping.trees import (
    V0600,
    V0701,
    _decimal_text,
    _desc,
    _get,
    _integer,
    _list,
    _model,
    _parse_time,
    _put,
    _quantities,
    _quantity,
    _quantity_tree,
    _texts,
    _time,
    _unread,
    _where,
)
from isa95.errors import B2MMLError
from isa95.operations import (
    DataValue,
    EquipmentActual,
    EquipmentRequirement,
    MaterialActual,
    MaterialRequirement,
    MaterialUse,
    OperationsPerformance,
    OperationsRequest,
    OperationsResponse,
    OperationsSchedule,
    PersonnelActual,
    PersonnelRequirement,
    SegmentRequirement,
    SegmentResponse,
)


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


def _written_id(version: str, given: str | None, prefix: str, index: int, what: str) -> str | None:
    """The ID written for a requirement: V0701 needs one (``<prefix><n>`` when the model
    has none); V0600 has no ID element, so a model with one is refused, never cut."""
    if version == V0701:
        return given or f"{prefix}{index}"
    if given is not None:
        raise B2MMLError(f"{what} {given!r}: a V0600 {what} has no ID element to carry it")
    return None


def _id_of(version: str, given: str | None, prefix: str, index: int, what: str) -> dict[str, Any]:
    written = _written_id(version, given, prefix, index, what)
    return {} if written is None else {"ID": written}


def _read_id(t: dict[str, Any], prefix: str, index: int) -> str | None:
    """A requirement's ID, None for the one the writer makes up (``<prefix><n>``)."""
    value = _get(t, "ID")
    return None if value == f"{prefix}{index}" else value


def _material_req_tree(
    m: MaterialRequirement | MaterialActual, version: str, index: int, production: bool
) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    if isinstance(m, MaterialRequirement):
        _put(tree, "ID", _written_id(version, m.id, "M", index, "material requirement"))
        _put(tree, "MaterialClassID", [m.material_class_id] if m.material_class_id else None)
    else:
        _put(tree, "ID", _written_id(version, m.id, "M", index, "material actual"))
    _put(
        tree,
        "MaterialDefinitionID",
        [m.material_definition_id] if m.material_definition_id else None,
    )
    _put(tree, "MaterialLotID", [m.lot_id] if m.lot_id else None)
    _put(tree, "MaterialSubLotID", [m.sublot_id] if m.sublot_id else None)
    if isinstance(m, MaterialRequirement):
        _put(tree, "Description", _desc(m.description))
    _put(tree, "MaterialUse", m.use and str(m.use))
    quantities = _quantity_tree(m.quantity) or []
    if isinstance(m, MaterialRequirement):
        if m.other_quantities and m.quantity is None:
            raise B2MMLError("a material requirement with other_quantities needs its quantity")
        for other in m.other_quantities:
            quantities += _quantity_tree(other) or []
    _put(tree, "Quantity", quantities)
    return tree


def _resource_tree(
    r: EquipmentRequirement | PersonnelRequirement, version: str, index: int
) -> dict[str, Any]:
    """An Equipment- or PersonnelRequirement of an order's segment."""
    equipment = isinstance(r, EquipmentRequirement)
    kind = "Equipment" if equipment else "Personnel"
    tree: dict[str, Any] = {}
    _put(tree, "ID", _written_id(version, r.id, kind[0], index, f"{kind.lower()} requirement"))
    if isinstance(r, EquipmentRequirement):
        _put(tree, "EquipmentClassID", list(r.equipment_class_ids))
        _put(tree, "EquipmentID", list(r.equipment_ids))
    else:
        _put(tree, "PersonnelClassID", list(r.personnel_class_ids))
        _put(tree, "PersonID", list(r.person_ids))
    _put(tree, "Description", _desc(r.description))
    _put(tree, f"{kind}Use", r.use)
    _put(tree, "Quantity", _quantity_tree(r.quantity))
    return tree


def _use(t: dict[str, Any]) -> MaterialUse | None:
    use = _get(t, "MaterialUse")
    if use is not None and use not in MaterialUse.__members__.values():
        _unread(t, "MaterialUse")  # a use the model has no value for: unmapped, listed
        return None
    return MaterialUse(use) if use is not None else None


def _data_child(version: str, names: _Names) -> str:
    """Name of nested data in SegmentData / ProductionData."""
    return f"{names.data}Child" if version == V0701 else names.data


def _no_operations_type(model: OperationsSchedule | OperationsPerformance, noun: str) -> None:
    """V0600's Production* nouns have no OperationsType: refused, never dropped."""
    if model.operations_type is not None:
        raise B2MMLError(
            f"a V0600 {noun} has no OperationsType to carry operations_type "
            f"{model.operations_type!r}; write the Operations* noun, or clear it"
        )


def _schedule_to_tree(model: OperationsSchedule, version: str, names: _Names) -> dict[str, Any]:
    production = names is _PROD
    if production:
        _no_operations_type(model, "ProductionSchedule")
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
        _put(t, "Priority", None if r.priority is None else _decimal_text(r.priority))
        _put(t, names.definition_id, r.operations_definition_id)
        segments = [_segment_req_tree(s, r, version, names) for s in r.segments]
        _put(t, "SegmentRequirement", segments)
        requests.append(t)
    _put(tree, names.request, requests)
    return tree


def _child_segment(version: str) -> str:
    """Name of a nested segment requirement (V0701 SegmentRequirementChild)."""
    return "SegmentRequirementChild" if version == V0701 else "SegmentRequirement"


def _segment_req_tree(
    s: SegmentRequirement, r: OperationsRequest, version: str, names: _Names
) -> dict[str, Any]:
    production = names is _PROD
    st: dict[str, Any] = {}
    _put(st, "ID", s.id)
    _put(st, "Description", _desc(s.description))
    _put(st, "OperationsType", s.operations_type)
    _put(st, "ProcessSegmentID", s.process_segment_id)
    _put(st, "EarliestStartTime", _time(s.earliest_start))
    _put(st, "LatestEndTime", _time(s.latest_end))
    _put(st, "Duration", s.duration)
    if version == V0701:  # required in V0701: derived when the model has none
        st["OperationsDefinitionID"] = (
            s.operations_definition_id or r.operations_definition_id or r.id
        )
        st["OperationsSegmentID"] = s.operations_segment_id or s.process_segment_id or s.id or r.id
    elif s.operations_definition_id is not None or s.operations_segment_id is not None:
        raise B2MMLError(
            f"segment requirement {s.id!r}: V0600 has no OperationsDefinitionID / "
            "OperationsSegmentID element to carry it"
        )
    _put(
        st,
        names.parameter,
        [_parameter_tree(p, names, _parameter_child(version)) for p in s.parameters],
    )
    _put(
        st,
        "PersonnelRequirement",
        [_resource_tree(p, version, i) for i, p in enumerate(s.personnel)],
    )
    legacy = [
        {**({"ID": f"E{i}"} if version == V0701 else {}), "EquipmentID": [e]}
        for i, e in enumerate(s.equipment_ids)
    ]
    offset = len(legacy)
    _put(
        st,
        "EquipmentRequirement",
        legacy + [_resource_tree(e, version, offset + i) for i, e in enumerate(s.equipment)],
    )
    _put(
        st,
        "MaterialRequirement",
        [_material_req_tree(m, version, i, production) for i, m in enumerate(s.materials)],
    )
    _put(st, _child_segment(version), [_segment_req_tree(c, r, version, names) for c in s.children])
    return st


def _requirement(m: dict[str, Any], index: int) -> MaterialRequirement:
    where = _where(m, "MaterialRequirement")
    quantities = _quantities(m, where)
    return _model(
        lambda: MaterialRequirement(
            id=_read_id(m, "M", index),
            material_class_id=_get(m, "MaterialClassID"),
            material_definition_id=_get(m, "MaterialDefinitionID"),
            lot_id=_get(m, "MaterialLotID"),
            sublot_id=_get(m, "MaterialSubLotID"),
            description=_get(m, "Description"),
            use=_use(m),
            quantity=quantities[0] if quantities else None,
            other_quantities=quantities[1:],
        ),
        where,
        m,
    )


def _legacy_equipment(e: dict[str, Any], index: int) -> Any:
    """The equipment ID of a requirement that is nothing but one EquipmentID (and the
    writer's ``E<n>`` ID), which the model carries in ``equipment_ids``; else None."""
    keys = {k for k in e if not k.startswith("@@")}
    ids = _list(e, "EquipmentID")
    if len(ids) != 1 or not isinstance(ids[0], str) or keys - {"ID", "EquipmentID"}:
        return None
    if "ID" in keys and dict.get(e, "ID") != f"E{index}":
        return None
    _get(e, "ID")
    return _get(e, "EquipmentID")


def _resource_fields(t: dict[str, Any], index: int, kind: str, where: str) -> dict[str, Any]:
    return {
        "id": _read_id(t, kind[0], index),
        "description": _get(t, "Description"),
        "use": _get(t, f"{kind}Use"),
        "quantity": _quantity(t, where),
    }


def _equipment_req(t: dict[str, Any], index: int) -> EquipmentRequirement:
    where = _where(t, "EquipmentRequirement")
    fields = _resource_fields(t, index, "Equipment", where)
    return _model(
        lambda: EquipmentRequirement(
            equipment_class_ids=_texts(t, "EquipmentClassID"),
            equipment_ids=_texts(t, "EquipmentID"),
            **fields,
        ),
        where,
        t,
    )


def _personnel_req(t: dict[str, Any], index: int) -> PersonnelRequirement:
    where = _where(t, "PersonnelRequirement")
    fields = _resource_fields(t, index, "Personnel", where)
    return _model(
        lambda: PersonnelRequirement(
            personnel_class_ids=_texts(t, "PersonnelClassID"),
            person_ids=_texts(t, "PersonID"),
            **fields,
        ),
        where,
        t,
    )


def _parameter_tree(p: DataValue, names: _Names, child: str) -> dict[str, Any]:
    """V0701's SegmentParameter is the parameter; V0600's ProductionParameter wraps one."""
    if names.parameter == "ProductionParameter":
        return {"Parameter": _data_tree(p, child)}
    return _data_tree(p, child)


def _parameters(wrapper: dict[str, Any], names: _Names) -> list[dict[str, Any]]:
    """The parameters a SegmentParameter / ProductionParameter element holds."""
    if names.parameter == "ProductionParameter":
        return _list(wrapper, "Parameter")
    return [wrapper]


def _schedule_from_tree(tree: dict[str, Any], version: str, names: _Names) -> OperationsSchedule:
    schedule = _where(tree, "OperationsSchedule")

    child = _parameter_child(version)

    def segment(st: dict[str, Any], r: dict[str, Any]) -> SegmentRequirement:
        where = _where(st, "SegmentRequirement", "ProcessSegmentID")
        # None when it is what the writer derives (see _segment_req_tree)
        definition = _get(st, "OperationsDefinitionID")
        if definition == (_get(r, names.definition_id) or _get(r, "ID")):
            definition = None
        operations_segment = _get(st, "OperationsSegmentID")
        if operations_segment == (_get(st, "ProcessSegmentID") or _get(st, "ID") or _get(r, "ID")):
            operations_segment = None
        requirements = _list(st, "MaterialRequirement")
        materials = [_requirement(m, i) for i, m in enumerate(requirements)]
        equipment_ids: list[str] = []
        equipment: list[EquipmentRequirement] = []
        for i, e in enumerate(_list(st, "EquipmentRequirement")):
            legacy = _legacy_equipment(e, i)
            if legacy is not None:
                equipment_ids.append(legacy)
            else:
                equipment.append(_equipment_req(e, i))
        personnel = [_personnel_req(p, i) for i, p in enumerate(_list(st, "PersonnelRequirement"))]
        children = [segment(c, r) for c in _list(st, _child_segment(version))]
        return _model(
            lambda: SegmentRequirement(
                id=_get(st, "ID"),
                description=_get(st, "Description"),
                process_segment_id=_get(st, "ProcessSegmentID"),
                operations_type=_get(st, "OperationsType"),
                duration=_get(st, "Duration"),
                operations_definition_id=definition,
                operations_segment_id=operations_segment,
                earliest_start=_parse_time(
                    _get(st, "EarliestStartTime"), f"{where}/EarliestStartTime"
                ),
                latest_end=_parse_time(_get(st, "LatestEndTime"), f"{where}/LatestEndTime"),
                equipment_ids=equipment_ids,
                equipment=equipment,
                personnel=personnel,
                materials=materials,
                children=children,
                parameters=[
                    _data(p, child)
                    for w in _list(st, names.parameter)
                    for p in _parameters(w, names)
                ],
            ),
            where,
            st,
        )

    def request(t: dict[str, Any]) -> OperationsRequest:
        where = _where(t, names.request)
        priority = _get(t, "Priority")
        priority = None if priority is None else _integer(priority, f"{where}/Priority")
        return _model(
            lambda: OperationsRequest(
                id=_get(t, "ID"),
                description=_get(t, "Description"),
                operations_definition_id=_get(t, names.definition_id),
                start=_parse_time(_get(t, "StartTime"), f"{where}/StartTime"),
                end=_parse_time(_get(t, "EndTime"), f"{where}/EndTime"),
                priority=priority,
                segments=[segment(s, t) for s in _list(t, "SegmentRequirement")],
            ),
            where,
            t,
        )

    return _model(
        lambda: OperationsSchedule(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            operations_type=_get(tree, "OperationsType"),
            start=_parse_time(_get(tree, "StartTime"), f"{schedule}/StartTime"),
            end=_parse_time(_get(tree, "EndTime"), f"{schedule}/EndTime"),
            requests=[request(r) for r in _list(tree, names.request)],
        ),
        schedule,
        tree,
    )


def _performance_to_tree(
    model: OperationsPerformance, version: str, names: _Names
) -> dict[str, Any]:
    production = names is _PROD
    if production:
        _no_operations_type(model, "ProductionPerformance")
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
        if not production:
            _put(t, "Description", _desc(r.description))
        elif r.description is not None:  # refused, never dropped
            raise B2MMLError(
                f"response {r.id!r}: a V0600 ProductionResponse has no Description; "
                "write the Operations* noun, or clear it"
            )
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
            _put(st, names.data, [_data_tree(d, _data_child(version, names)) for d in s.data])
            _put(
                st,
                "PersonnelActual",
                [
                    {
                        **_id_of(version, p.id, "P", i, "personnel actual"),
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
                        **_id_of(version, e.id, "E", i, "equipment actual"),
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
    performance = _where(tree, "OperationsPerformance")

    def segment(st: dict[str, Any]) -> SegmentResponse:
        where = _where(st, "SegmentResponse")
        return _model(
            lambda: SegmentResponse(
                id=_get(st, "ID"),
                description=_get(st, "Description"),
                process_segment_id=_get(st, "ProcessSegmentID"),
                start=_parse_time(_get(st, "ActualStartTime"), f"{where}/ActualStartTime"),
                end=_parse_time(_get(st, "ActualEndTime"), f"{where}/ActualEndTime"),
                data=[_data(d, _data_child(version, names)) for d in _list(st, names.data)],
                personnel=[
                    PersonnelActual(
                        id=_read_id(p, "P", i),
                        person_id=_get(p, "PersonID") or "",
                        description=_get(p, "Description"),
                    )
                    for i, p in enumerate(_list(st, "PersonnelActual"))
                ],
                equipment=[
                    EquipmentActual(
                        id=_read_id(e, "E", i),
                        equipment_id=_get(e, "EquipmentID") or "",
                        description=_get(e, "Description"),
                    )
                    for i, e in enumerate(_list(st, "EquipmentActual"))
                ],
                materials=[
                    MaterialActual(
                        id=_read_id(m, "M", i),
                        material_definition_id=_get(m, "MaterialDefinitionID"),
                        lot_id=_get(m, "MaterialLotID"),
                        sublot_id=_get(m, "MaterialSubLotID"),
                        use=_use(m),
                        quantity=_quantity(m, where),
                    )
                    for i, m in enumerate(_list(st, "MaterialActual"))
                ],
            ),
            where,
            st,
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
            t,
        )

    return _model(
        lambda: OperationsPerformance(
            id=_get(tree, "ID"),
            description=_get(tree, "Description"),
            operations_type=_get(tree, "OperationsType"),
            schedule_id=_get(
                tree, "ProductionScheduleID" if production else "OperationsScheduleID"
            ),
            start=_parse_time(_get(tree, "StartTime"), f"{performance}/StartTime"),
            end=_parse_time(
                _get(tree, "EndTime" if version == V0600 else "Endtime"), f"{performance}/EndTime"
            ),
            responses=[response(r) for r in _list(tree, names.response)],
        ),
        performance,
        tree,
    )
