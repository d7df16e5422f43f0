"""Hypothesis strategies producing valid isa95 models (for B2MML round trips)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries
from isa95.common import Property, Quantity
from isa95.equipment import (
    ALLOWED_CHILDREN,
    Equipment,
    EquipmentClass,
    EquipmentInformation,
    EquipmentLevel,
)
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
    UnitProcedure,
)

_chars = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    exclude_characters="\ufffe\uffff",
)
identifiers = st.text(_chars, min_size=1, max_size=12).map(str.strip).filter(bool)
texts = st.text(st.one_of(_chars, st.sampled_from("\n\t <>&'\"")), min_size=1, max_size=30)
optional_text = st.none() | texts
units = st.none() | st.sampled_from(["kg", "Cel", "rpm", "%", "kPa", "L"])
decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9
)
quantities = st.none() | st.builds(Quantity, value=decimals, unit=units)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=zones
)
properties = st.builds(
    Property, id=identifiers, value=optional_text, unit=units, description=optional_text
)
properties_any = st.builds(
    Property,
    id=identifiers,
    value=optional_text,
    unit=units,
    description=optional_text,
    data_type=st.sampled_from(["string", "integer", None]),
)
"""Properties, some with a Value that has no DataType (None)."""


def _sorted_times(n: int) -> st.SearchStrategy[list[datetime]]:
    return st.lists(times, min_size=n, max_size=n).map(sorted)


material_information = st.builds(
    MaterialInformation,
    id=st.none() | identifiers,
    description=optional_text,
    classes=st.lists(
        st.builds(
            MaterialClass,
            id=identifiers,
            description=optional_text,
            properties=st.lists(properties, max_size=2),
        ),
        max_size=2,
    ),
    definitions=st.lists(
        st.builds(
            MaterialDefinition,
            id=identifiers,
            description=optional_text,
            material_class_ids=st.lists(identifiers, max_size=2),
            properties=st.lists(properties, max_size=2),
        ),
        max_size=2,
    ),
    lots=st.lists(
        st.builds(
            MaterialLot,
            id=identifiers,
            material_definition_id=st.none() | identifiers,
            description=optional_text,
            status=st.none() | identifiers,
            storage_location=st.none() | identifiers,
            quantity=quantities,
            properties=st.lists(properties, max_size=2),
            sublots=st.lists(
                st.builds(
                    MaterialSubLot,
                    id=identifiers,
                    description=optional_text,
                    status=st.none() | identifiers,
                    storage_location=st.none() | identifiers,
                    quantity=quantities,
                ),
                max_size=2,
            ),
        ),
        max_size=3,
    ),
)


def erp_ids(prefix: str) -> st.SearchStrategy[str | None]:
    """An ID an ERP sent (never one the writer derives), or None (the writer derives)."""
    return st.none() | identifiers.map(lambda i: f"{prefix}-{i}")


def _keyed(v0701: bool, prefix: str) -> st.SearchStrategy[str | None]:
    """IDs only V0701 has an element for (V0600 writers refuse them)."""
    return erp_ids(prefix) if v0701 else st.none()


def _equipment(
    level: EquipmentLevel, depth: int, v0600: bool = False
) -> st.SearchStrategy[Equipment]:
    allowed = sorted(ALLOWED_CHILDREN[level])
    children = (
        st.lists(
            st.sampled_from(allowed).flatmap(lambda lv: _equipment(lv, depth - 1, v0600)),
            max_size=2,
        )
        if depth > 0 and allowed
        else st.just([])
    )
    return st.builds(
        Equipment,
        id=identifiers,
        level=st.just(level),
        description=optional_text,
        equipment_class_ids=st.lists(identifiers, max_size=2),
        properties=st.lists(properties, max_size=1),
        children=children,
        level_equipment_id=erp_ids("AREA") if v0600 else st.none(),
    )


def _equipment_information(v0600: bool) -> st.SearchStrategy[EquipmentInformation]:
    return st.builds(
        EquipmentInformation,
        id=identifiers,
        description=optional_text,
        classes=st.lists(
            st.builds(
                EquipmentClass,
                id=identifiers,
                description=optional_text,
                properties=st.lists(properties, max_size=2),
            ),
            max_size=2,
        ),
        equipment=st.lists(
            st.sampled_from(list(EquipmentLevel)).flatmap(lambda lv: _equipment(lv, 2, v0600)),
            max_size=2,
        ),
    )


equipment_information = _equipment_information(False)

personnel_information = st.builds(
    PersonnelInformation,
    id=identifiers,
    description=optional_text,
    classes=st.lists(
        st.builds(
            PersonnelClass,
            id=identifiers,
            description=optional_text,
            properties=st.lists(properties, max_size=2),
        ),
        max_size=2,
    ),
    persons=st.lists(
        st.builds(
            Person,
            id=identifiers,
            name=optional_text,
            personnel_class_ids=st.lists(identifiers, max_size=2),
            properties=st.lists(
                properties.filter(lambda p: not p.id.startswith("QUAL:")), max_size=2
            ),
            qualifications=st.lists(
                st.builds(
                    Qualification,
                    id=identifiers,
                    description=optional_text,
                    result=optional_text,
                    valid_until=st.none() | times,
                ),
                max_size=2,
            ),
        ),
        max_size=3,
    ),
)

data_values = st.builds(
    DataValue, id=identifiers, value=texts, unit=units, description=optional_text
)
data_values_any = st.builds(
    DataValue,
    id=identifiers,
    value=texts,
    unit=units,
    description=optional_text,
    data_type=st.sampled_from(["string", "integer", None]),
) | st.builds(DataValue, id=identifiers, value=st.none(), description=optional_text)
"""Data values, some without a Value (None) or without a DataType (None)."""
uses = st.none() | st.sampled_from(list(MaterialUse))


def _process_segment_information(v0701: bool) -> st.SearchStrategy[ProcessSegmentInformation]:
    return st.builds(
        ProcessSegmentInformation,
        id=identifiers,
        description=optional_text,
        segments=st.lists(
            st.builds(
                ProcessSegment,
                id=identifiers,
                description=optional_text,
                equipment_class_ids=st.lists(identifiers, max_size=2),
                personnel_class_ids=st.lists(identifiers, max_size=2),
                equipment_specification_ids=st.lists(_keyed(v0701, "EQ"), max_size=2).map(
                    _trim_none
                ),
                personnel_specification_ids=st.lists(_keyed(v0701, "SPEC"), max_size=2).map(
                    _trim_none
                ),
                materials=st.lists(
                    st.builds(
                        MaterialSpecification,
                        id=erp_ids("BOM"),
                        material_definition_id=st.none() | identifiers,
                        material_class_id=st.none() | identifiers,
                        use=uses,
                        quantity=quantities,
                    ),
                    max_size=2,
                ),
                parameters=st.lists(data_values, max_size=2),
            ).filter(_specification_ids_fit),
            max_size=3,
        ),
    )


def _trim_none(ids: list[str | None]) -> list[str | None]:
    """Trailing None entries are not read back (they mean "derive"): drop them."""
    while ids and ids[-1] is None:
        ids = ids[:-1]
    return ids


def _specification_ids_fit(segment: ProcessSegment) -> bool:
    """Specification IDs beyond the class IDs have no specification to go on."""
    return len(segment.equipment_specification_ids) <= len(segment.equipment_class_ids) and len(
        segment.personnel_specification_ids
    ) <= len(segment.personnel_class_ids)


process_segment_information = _process_segment_information(False)


def _interval(builder, **kwargs):  # type: ignore[no-untyped-def]
    return _sorted_times(2).flatmap(
        lambda ts: st.builds(builder, start=st.just(ts[0]), end=st.just(ts[1]), **kwargs)
    )


def _segment_requirements(v0701: bool) -> st.SearchStrategy[SegmentRequirement]:
    return _sorted_times(2).flatmap(
        lambda ts: st.builds(
            SegmentRequirement,
            id=identifiers,
            process_segment_id=identifiers,
            operations_definition_id=_keyed(v0701, "OD"),
            operations_segment_id=_keyed(v0701, "OS"),
            description=optional_text,
            earliest_start=st.just(ts[0]),
            latest_end=st.just(ts[1]),
            equipment_ids=st.lists(identifiers, max_size=2),
            materials=st.lists(
                st.builds(
                    MaterialRequirement,
                    material_definition_id=st.none() | identifiers,
                    lot_id=st.none() | identifiers,
                    use=uses,
                    quantity=quantities,
                ),
                max_size=2,
            ),
            parameters=st.lists(data_values, max_size=2),
        )
    )


segment_requirements = _segment_requirements(False)


def _operations_schedule(v0701: bool) -> st.SearchStrategy[OperationsSchedule]:
    return _interval(
        OperationsSchedule,
        id=identifiers,
        description=optional_text,
        operations_type=st.sampled_from(["Production", "Maintenance", "Quality", "Inventory"]),
        requests=st.lists(
            _interval(
                OperationsRequest,
                id=identifiers,
                description=optional_text,
                operations_definition_id=identifiers,
                priority=st.none() | st.integers(0, 1000),
                segments=st.lists(_segment_requirements(v0701), min_size=1, max_size=2),
            ),
            min_size=1,
            max_size=2,
        ),
    )


operations_schedule = _operations_schedule(False)


def _segment_responses(v0701: bool) -> st.SearchStrategy[SegmentResponse]:
    return _interval(
        SegmentResponse,
        id=identifiers,
        process_segment_id=st.none() | identifiers,
        description=optional_text,
        materials=st.lists(
            st.builds(
                MaterialActual,
                id=_keyed(v0701, "GI"),
                material_definition_id=st.none() | identifiers,
                lot_id=st.none() | identifiers,
                sublot_id=st.none() | identifiers,
                use=uses,
                quantity=quantities,
            ),
            max_size=2,
        ),
        equipment=st.lists(
            st.builds(
                EquipmentActual,
                id=_keyed(v0701, "ERP-EQ"),
                equipment_id=identifiers,
                description=optional_text,
            ),
            max_size=2,
        ),
        personnel=st.lists(
            st.builds(
                PersonnelActual,
                id=_keyed(v0701, "ERP-CONF"),
                person_id=identifiers,
                description=optional_text,
            ),
            max_size=2,
        ),
        data=st.lists(data_values, max_size=2),
    )


segment_responses = _segment_responses(False)


def _operations_performance(v0701: bool) -> st.SearchStrategy[OperationsPerformance]:
    return _interval(
        OperationsPerformance,
        id=identifiers,
        description=optional_text,
        operations_type=st.sampled_from(["Production", "Maintenance", "Quality", "Inventory"]),
        schedule_id=st.none() | identifiers,
        responses=st.lists(
            _interval(
                OperationsResponse,
                id=identifiers,
                request_id=st.none() | identifiers,
                description=optional_text,
                state=st.none() | st.sampled_from(["Completed", "Running", "Aborted"]),
                segments=st.lists(_segment_responses(v0701), min_size=1, max_size=2),
            ),
            min_size=1,
            max_size=2,
        ),
    )


operations_performance = _operations_performance(False)

batch_production_record = st.builds(
    BatchProductionRecord,
    id=identifiers,
    entry_id=erp_ids("ENTRY"),
    batch_id=st.none() | identifiers,
    lot_id=st.none() | identifiers,
    material_definition_id=st.none() | identifiers,
    description=optional_text,
    record_status=st.none() | identifiers,
    creation_date=st.none() | times,
    series=st.lists(
        st.builds(
            TagSeries,
            tag=identifiers,
            data_set_id=erp_ids("DS"),
            unit=units,
            description=optional_text,
            values=st.lists(
                st.builds(
                    RecordedValue,
                    timestamp=times,
                    value=texts,
                    quality=st.none() | st.sampled_from(["Good", "Bad", "Uncertain"]),
                ),
                min_size=1,
                max_size=4,
            ),
        ),
        max_size=3,
        unique_by=lambda s: s.tag,
    ),
    events=st.lists(
        st.builds(
            RecordEvent,
            id=identifiers,
            timestamp=times,
            event_type=st.sampled_from(["Operator", "Alarm", "Deviation", "Signature"]),
            event_subtype=st.sampled_from(["Security", "Other", "Performed"]),
            message=optional_text,
            person_id=st.none() | identifiers,
            equipment_id=st.none() | identifiers,
            procedural_element=st.none() | identifiers,
        ),
        max_size=3,
    ),
)


@st.composite
def formula_parameters(draw: st.DrawFn) -> FormulaParameter:
    numbers = sorted(draw(st.lists(decimals, min_size=3, max_size=3)))
    low, target, high = (draw(st.none() | st.just(n)) for n in numbers)
    return FormulaParameter(
        id=draw(identifiers),
        description=draw(optional_text),
        target=target,
        low=low,
        high=high,
        unit=draw(st.none() | st.sampled_from(["Cel", "rpm", "min"])),
        low_id=draw(erp_ids("QM-LSL")) if low is not None else None,
        high_id=draw(erp_ids("QM-USL")) if high is not None else None,
        low_parameter_type=draw(limit_types) if low is not None else None,
        high_parameter_type=draw(limit_types) if high is not None else None,
    )


limit_types = st.none() | st.sampled_from(["ProcessInput", "ProcessOutput", "Other"])


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    n = draw(st.integers(0, 2))
    procedure = None
    if draw(st.booleans()):
        procedure = Procedure(
            id="PROC",
            description=draw(optional_text),
            unit_procedures=[
                UnitProcedure(
                    id=f"UP{i}",
                    equipment_requirement=draw(
                        st.none()
                        | st.builds(
                            EquipmentRequirement,
                            equipment_class_id=identifiers,
                            description=optional_text,
                        )
                    ),
                    operations=[
                        Operation(
                            id=f"OP{j}",
                            phases=[
                                Phase(
                                    id=f"PH{k}",
                                    description=draw(optional_text),
                                    parameters=draw(
                                        st.lists(
                                            formula_parameters(),
                                            max_size=2,
                                            unique_by=lambda p: p.id,
                                        )
                                    ),
                                )
                                for k in range(draw(st.integers(0, 2)))
                            ],
                        )
                        for j in range(draw(st.integers(0, 2)))
                    ],
                )
                for i in range(n + 1)
            ],
        )
    version_absent = draw(st.booleans())
    return Recipe(
        id=draw(identifiers),
        version="1" if version_absent else draw(identifiers),
        version_absent=version_absent,
        description=draw(optional_text),
        version_date=draw(st.none() | times),
        product_id=draw(st.none() | identifiers),
        product_name=draw(optional_text),
        batch_size=draw(st.none() | st.builds(Quantity, value=decimals, unit=units)),
        formula=draw(st.lists(formula_parameters(), max_size=3)),
        equipment_requirements=draw(
            st.lists(
                st.builds(
                    EquipmentRequirement, equipment_class_id=identifiers, description=optional_text
                ),
                max_size=2,
            )
        ),
        procedure=procedure,
    )


ALL = {
    "MaterialInformation": material_information,
    "EquipmentInformation": equipment_information,
    "PersonnelInformation": personnel_information,
    "ProcessSegmentInformation": process_segment_information,
    "OperationsSchedule": operations_schedule,
    "OperationsPerformance": operations_performance,
    "BatchProductionRecord": batch_production_record,
    "MasterRecipe": recipes(),
}

ALL_V0701 = {
    **ALL,
    "ProcessSegmentInformation": _process_segment_information(True),
    "OperationsSchedule": _operations_schedule(True),
    "OperationsPerformance": _operations_performance(True),
}
"""ALL, with the identifiers only V0701 has an element for."""

ALL_V0600 = {**ALL, "EquipmentInformation": _equipment_information(True)}
"""ALL, with the identifiers only V0600 has an element for."""
