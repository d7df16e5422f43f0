"""BatchML BatchProductionRecord ↔ isa95.batchrecord (moved out of batchml.py)."""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    _desc,
    _get,
    _list,
    _model,
    _parse_time,
    _put,
    _text,
    _texts,
    _time,
    _where,
)
from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries

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


def _series(ds: dict[str, Any], index: str | None, spec: dict[str, Any]) -> TagSeries:
    """The values of the tag with TagIndex ``index`` in a data set."""
    values: list[RecordedValue] = []
    for od in _list(ds, "OrderedData"):
        when = _parse_time(_get(od, "TimeValue"), f"{_where(od, 'OrderedData')}/TimeValue")
        for dv in _list(od, "DataValue"):
            if _get(dv, "TagIndex") in (index, None):
                values.extend(_recorded(dv, v, when) for v in _list(dv, "Value"))
    unit = _get(spec, "UnitOfMeasure")
    return _model(
        lambda: TagSeries(
            tag=(_texts(spec, "DataSource") or [f"tag{index}"])[0],
            unit=unit or None,
            description=_get(spec, "Description"),
            data_type=_get(spec, "DataType") or "string",
            values=values,
        ),
        _where(spec, "TagSpecification"),
    )


def _recorded(dv: dict[str, Any], value: Any, when: Any) -> RecordedValue:
    return _model(
        lambda: RecordedValue(
            timestamp=when, value=_text(value) or "", quality=_get(dv, "Quality")
        ),
        _where(dv, "DataValue"),
    )


def _bpr_from_tree(tree: dict[str, Any], version: str) -> BatchProductionRecord:
    record_id = _get(tree, "ID") or ""
    record = _where(tree, "BatchProductionRecord")
    _get(tree, "EntryID")
    _get(tree, "ObjectType")
    series: list[TagSeries] = []
    datasets = tree.get("DataSets") or {}
    for ds in _list(datasets, "DataSet"):
        _get(ds, "EntryID")
        _get(ds, "ObjectType")
        specs = {}
        for spec in _list(ds, "TagSpecification"):
            specs[_get(spec, "TagIndex")] = spec
        series.extend(_series(ds, index, spec) for index, spec in specs.items())

    def event(e: dict[str, Any]) -> RecordEvent:
        _get(e, "ObjectType")
        return _model(
            lambda: RecordEvent(
                id=_get(e, "EntryID"),
                timestamp=_parse_time(_get(e, "TimeStamp"), f"{_where(e, 'Event')}/TimeStamp"),
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
            creation_date=_parse_time(_get(tree, "CreationDate"), f"{record}/CreationDate"),
            batch_id=_get(tree, "BatchID"),
            lot_id=_get(tree, "LotID"),
            material_definition_id=_get(tree, "MaterialDefinitionID"),
            record_status=_get(tree, "RecordStatus"),
            series=series,
            events=events,
        ),
        record,
    )
