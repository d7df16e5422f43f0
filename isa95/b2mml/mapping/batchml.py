"""BatchML: BatchProductionRecord and MasterRecipe ↔ isa95.batchrecord / isa95.recipe."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from isa95.b2mml.mapping.trees import (
    _NUMBER,
    Tracked,
    _decimal,
    _decimal_text,
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
from isa95.common import Quantity
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


_ELEMENT_TYPES = ("Procedure", "UnitProcedure", "Operation", "Phase")


_LIMITS = (("low", "LowLimit"), ("high", "HighLimit"))


def _batch_value(number: Decimal | None, unit: str | None) -> dict[str, Any]:
    return {
        "ValueString": ["" if number is None else _decimal_text(number)],
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
    if not _NUMBER.fullmatch(text):
        value.used.discard("ValueString")  # not numeric: reported as unmapped
        return None, unit
    return _decimal(text, f"{where}/Value"), unit


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
            "Nominal": _decimal_text(model.batch_size.value),
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
    recipe = _where(tree, "MasterRecipe")

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
            f"{recipe}/RecipeElement (procedure)",
        )
    header = tree.get("Header") or Tracked({})
    batch_size = None
    size = header.get("BatchSize")
    if size:
        nominal = _get(size, "Nominal")
        if nominal:
            batch_size = Quantity(
                value=_decimal(nominal, f"{recipe}/Header/BatchSize/Nominal"),
                unit=_get(size, "UnitOfMeasure"),
            )
    formula = tree.get("Formula") or Tracked({})
    return _model(
        lambda: Recipe(
            id=recipe_id,
            version=_get(tree, "Version") or "1",
            recipe_type=RecipeType.MASTER,
            version_date=_parse_time(_get(tree, "VersionDate"), f"{recipe}/VersionDate"),
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
        recipe,
    )
