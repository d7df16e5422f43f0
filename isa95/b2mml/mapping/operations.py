"""Operations/Production schedules and performance ↔ isa95.operations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isa95.b2mml.mapping.segments import _data, _data_tree
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
    _quantity,
    _quantity_tree,
    _texts,
    _time,
    _where,
)
from isa95.operations import (
    DataValue,
    EquipmentActual,
    MaterialActual,
    MaterialRequirement,
    MaterialUse,
    OperationsPerformance,
    OperationsRequest,
    OperationsResponse,
    OperationsSchedule,
    PersonnelActual,
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
        _put(t, "Priority", None if r.priority is None else _decimal_text(r.priority))
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
            _put(st, names.parameter, [_parameter_tree(p, names) for p in s.parameters])
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


def _requirement(m: dict[str, Any]) -> MaterialRequirement:
    where = _where(m, "MaterialRequirement")
    return _model(
        lambda: MaterialRequirement(
            material_definition_id=_get(m, "MaterialDefinitionID"),
            lot_id=_get(m, "MaterialLotID"),
            use=_use(m),
            quantity=_quantity(m, where),
        ),
        where,
    )


def _parameter_tree(p: DataValue, names: _Names) -> dict[str, Any]:
    """V0701's SegmentParameter is the parameter; V0600's ProductionParameter wraps one."""
    if names.parameter == "ProductionParameter":
        return {"Parameter": _data_tree(p)}
    return _data_tree(p)


def _parameters(wrapper: dict[str, Any], names: _Names) -> list[dict[str, Any]]:
    """The parameters a SegmentParameter / ProductionParameter element holds."""
    if names.parameter == "ProductionParameter":
        return _list(wrapper, "Parameter")
    return [wrapper]


def _schedule_from_tree(tree: dict[str, Any], version: str, names: _Names) -> OperationsSchedule:
    schedule = _where(tree, "OperationsSchedule")

    def segment(st: dict[str, Any]) -> SegmentRequirement:
        where = _where(st, "SegmentRequirement", "ProcessSegmentID")
        _get(st, "OperationsDefinitionID")
        _get(st, "OperationsSegmentID")
        materials = [_requirement(m) for m in _list(st, "MaterialRequirement")]
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
                parameters=[
                    _data(p) for w in _list(st, names.parameter) for p in _parameters(w, names)
                ],
            ),
            where,
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
                segments=[segment(s) for s in _list(t, "SegmentRequirement")],
            ),
            where,
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
    )


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
    performance = _where(tree, "OperationsPerformance")

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
            start=_parse_time(_get(tree, "StartTime"), f"{performance}/StartTime"),
            end=_parse_time(
                _get(tree, "EndTime" if version == V0600 else "Endtime"), f"{performance}/EndTime"
            ),
            responses=[response(r) for r in _list(tree, names.response)],
        ),
        performance,
    )
