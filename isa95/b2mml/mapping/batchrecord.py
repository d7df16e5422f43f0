"""BatchML BatchProductionRecord ↔ isa95.batchrecord (moved out of batchml.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from lxml import etree
from pydantic import TypeAdapter

from isa95.b2mml.binding import Release, Spec
from isa95.b2mml.mapping.trees import (
    ASSUMED_TIMEZONE,
    Tracked,
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
    unconsumed,
    xsd_datetime,
)
from isa95.b2mml.xmltext import text_of
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
    return {"EntryID": model.entry_id or model.id, "ObjectType": object_type}


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
                    "EntryID": series.data_set_id or f"{model.id}/DS{index}",
                    "ObjectType": "Data Set",
                    "TagSpecification": [tag],
                    "OrderedData": [
                        {
                            "TimeValue": xsd_datetime(v.timestamp),
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
                "TimeStamp": xsd_datetime(e.timestamp),
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


# ------------------------------------------------------------------ reading
#
# The reference mapping reads plain tracked trees (``_bpr_from_tree``). A record
# holds most of its bulk in ``OrderedData`` elements, so :class:`RecordReader`
# reads a record element by element instead: every part but the ordered data
# is read as a tracked tree with the same functions, and each ``OrderedData``
# of the usual shape is mapped straight from its elements (anything else falls
# back to the reference mapping of that element). The models, ``unmapped`` and
# ``normalised`` are the same as the reference's; the streaming reader
# (:mod:`isa95.b2mml.stream`) feeds it elements as they are parsed and lets
# them go.


def _specs(ds: dict[str, Any]) -> dict[Any, Any]:
    """The tag specifications of a data set, by TagIndex (a repeated index: the last)."""
    _get(ds, "EntryID")
    _get(ds, "ObjectType")
    specs: dict[Any, Any] = {}
    for spec in _list(ds, "TagSpecification"):
        specs[_get(spec, "TagIndex")] = spec
    return specs


def _ordered(
    od: dict[str, Any], specs: dict[Any, Any], found: dict[Any, list[RecordedValue]]
) -> None:
    """The values of one OrderedData, appended to ``found`` under each tag they belong to."""
    for index in specs:
        when = _parse_time(_get(od, "TimeValue"), f"{_where(od, 'OrderedData')}/TimeValue")
        for dv in _list(od, "DataValue"):
            if _get(dv, "TagIndex") in (index, None):
                found[index].extend(_recorded(dv, v, when) for v in _list(dv, "Value"))


def _tag_series(
    index: Any, spec: dict[str, Any], values: list[RecordedValue], data_set_id: Any = None
) -> TagSeries:
    """The series of the tag with TagIndex ``index`` (``data_set_id``: its DataSet's
    EntryID, given to the first series of a data set)."""
    unit = _get(spec, "UnitOfMeasure")
    return _model(
        lambda: TagSeries(
            data_set_id=data_set_id,
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


def _event(e: dict[str, Any]) -> RecordEvent:
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


def _record(
    tree: dict[str, Any], series: list[TagSeries], events: list[RecordEvent]
) -> BatchProductionRecord:
    record_id = _get(tree, "ID") or ""
    record = _where(tree, "BatchProductionRecord")
    entry_id = _get(tree, "EntryID")
    _get(tree, "ObjectType")
    for n, one in enumerate(series):  # what the writer derives reads as None
        if one.data_set_id is not None and one.data_set_id == f"{record_id}/DS{n}":
            one.data_set_id = None
    return _model(
        lambda: BatchProductionRecord(
            id=record_id,
            entry_id=None if entry_id == record_id else entry_id,
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


def _bpr_from_tree(tree: dict[str, Any], version: str) -> BatchProductionRecord:
    """The reference mapping: a record from its whole tracked tree."""
    series: list[TagSeries] = []
    for ds in _list(tree.get("DataSets") or {}, "DataSet"):
        specs = _specs(ds)
        found: dict[Any, list[RecordedValue]] = {index: [] for index in specs}
        for od in _list(ds, "OrderedData") if specs else []:
            _ordered(od, specs, found)
        entry = _get(ds, "EntryID")
        series.extend(
            _tag_series(index, spec, found[index], entry if n == 0 else None)
            for n, (index, spec) in enumerate(specs.items())
        )
    events = [_event(e) for e in _list(tree.get("Events") or {}, "Event")]
    return _record(tree, series, events)


RECORD_KEYS = frozenset(
    {
        "ID",
        "EntryID",
        "ObjectType",
        "Description",
        "CreationDate",
        "BatchID",
        "LotID",
        "MaterialDefinitionID",
        "RecordStatus",
    }
)
"""Children of the record element the mapping reads besides DataSets and Events; the
others are only reported as unmapped, so a streaming reader lets their content go."""

_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
_TEXT_SPEC = Spec("(text)")
_SKIPPED = ""
"""Stands for the content of a child left out of a tree (only its name and place count)."""


class _Leftovers(list[str]):
    """The unmapped paths of content that was mapped and let go (stands for its tree)."""


def _holds_leftovers(value: Any) -> bool:
    if isinstance(value, _Leftovers):
        return True
    if isinstance(value, list):
        return any(isinstance(item, _Leftovers) for item in value)
    return isinstance(value, Tracked) and any(_holds_leftovers(v) for v in value.values())


def _unconsumed(value: Any, path: str) -> Iterator[str]:
    """:func:`~isa95.b2mml.mapping.trees.unconsumed`, reading :class:`_Leftovers` in place.

    Every part without leftovers is judged by ``unconsumed`` itself (through a
    one-key view sharing the tree's bookkeeping), so the rules stay its own.
    """
    if isinstance(value, _Leftovers):
        yield from value
    elif isinstance(value, list) and _holds_leftovers(value):
        for index, item in enumerate(value):
            yield from _unconsumed(item, f"{path}[{index}]")
    elif isinstance(value, Tracked) and _holds_leftovers(value):
        for key, child in value.items():
            if key.startswith(("@xmlns", "@@")):
                continue
            if _holds_leftovers(child):
                if key in value.used:
                    yield from _unconsumed(child, f"{path}/{key}")
                else:
                    yield f"{path}/{key}"
                continue
            view = Tracked({key: child}, value.path)
            view.__dict__.update(value.__dict__)  # the same used (and other) bookkeeping
            yield from unconsumed(view, path)
    else:
        yield from unconsumed(value, path)


def _content(
    element: etree._Element,
    spec: Spec,
    release: Release,
    path: str,
    unsupported: list[str],
    skip: frozenset[str] = frozenset(),
) -> Any:
    """The tracked tree of ``element`` as the generic reader builds it.

    Children named in ``skip`` are left out; a placeholder keeps their place
    (the mapping fills it, or reports the name as unmapped).
    """
    attributes = (
        {
            f"@{etree.QName(k).localname}": str(v)
            for k, v in element.attrib.items()
            if not str(k).startswith(_XSI)
        }
        if len(element.attrib)
        else {}
    )
    if not spec.fields:
        text = text_of(element) or ""
        if not attributes:
            return text
        return Tracked({"#text": text, **attributes}, path)
    tree = Tracked(attributes, path)
    dict.__setitem__(tree, "@@line", element.sourceline)
    tree.line = element.sourceline
    skipped = {
        f"{{{slot.namespace}}}{slot.name}" if slot.namespace else slot.name: slot.name
        for slot in spec.fields
        if slot.name in skip
    }
    # A skipped last child (the many OrderedData of a data set): in a schema-valid
    # element only more of it follows, so the children after the first go unvisited.
    last = spec.fields[-1].name if spec.wildcard is None else None
    for child in element:
        tag = child.tag
        if tag in skipped:
            dict.setdefault(tree, skipped[tag], _SKIPPED)
            if skipped[tag] == last:
                break
            continue
        if not isinstance(tag, str):
            continue  # comments and processing instructions carry no data
        namespace, _, name = tag[1:].rpartition("}") if tag[0] == "{" else ("", "", tag)
        slot = spec.by_name.get((namespace, name))
        if slot is None:
            if spec.wildcard is not None:
                dict.setdefault(tree, "##any", []).append(etree.tostring(child, encoding="unicode"))
            else:
                unsupported.append(f"{path}/{name} (line {child.sourceline})")
            continue
        if name in skip:
            dict.setdefault(tree, name, _SKIPPED)
            continue
        child_spec = release.specs[slot.type] if slot.type is not None else _TEXT_SPEC
        if slot.max > 1:
            items = dict.setdefault(tree, name, [])
            items.append(
                _content(child, child_spec, release, f"{path}/{name}[{len(items)}]", unsupported)
            )
        else:
            dict.__setitem__(
                tree, name, _content(child, child_spec, release, f"{path}/{name}", unsupported)
            )
    return tree


def _column_queries(namespace: str, limited: bool) -> dict[str, etree.XPath]:
    """The XPath queries :meth:`RecordReader.ordered_columns` reads a data set with
    (``limited``: only its first ``$first`` OrderedData).

    Only counts and two text columns: with the content model of a schema-valid
    data set (OrderedData: OrderIndex?, TimeValue?, DataValue+; DataValue:
    TagIndex?, Value+, Quality?; all leaves of simple type, so each holds at
    most one text node once comments and processing instructions are ruled
    out), N OrderedData with 2N children, N DataValue, 3N leaves in them, N
    Values, N TimeValue texts and 3N leaf texts mean every OrderedData holds
    exactly one TimeValue and one DataValue of one TagIndex, one Value and
    one Quality, in that order, each with text: proven without testing each
    element (lxml evaluates a predicate per element far more slowly).
    """
    od = "b:OrderedData[position() <= $first]" if limited else "b:OrderedData"
    dv = f"{od}/b:DataValue"
    expressions = {
        "ordered": f"count({od})",
        "children": f"count({od}/*)",
        "data_elements": f"count({dv})",
        "leaves": f"count({dv}/*)",
        "value_elements": f"count({dv}/b:Value)",
        # Each alone: lxml evaluates unions and "//@*" far more slowly.
        "attributes": f"boolean({od}/@*)",
        "child_attributes": f"boolean({od}/*/@*)",
        "leaf_attributes": f"boolean({dv}/*/@*)",
        "comments": f"boolean({od}//comment())",
        "instructions": f"boolean({od}//processing-instruction())",
        "times": f"{od}/b:TimeValue/text()",
        "leaf_texts": f"{dv}/*/text()",
    }
    return {
        name: etree.XPath(expression, namespaces={"b": namespace}, smart_strings=False)
        for name, expression in expressions.items()
    }


_ALL_FIELDS: set[str] = set(RecordedValue.model_fields)


def _share_fields_set(value: RecordedValue) -> None:
    """Let ``value`` share one fields-set with every value read (216 bytes less each).

    Every field of a value read is set, so the shared set never changes: pydantic
    only ever adds names to it, and every name is already in it.
    """
    if value.__pydantic_fields_set__ == _ALL_FIELDS:
        object.__setattr__(value, "__pydantic_fields_set__", _ALL_FIELDS)


_VALUE_TEXTS: TypeAdapter[list[str]] = TypeAdapter(
    list[Annotated[str, *RecordedValue.model_fields["value"].metadata]]
)
"""Checks a column of values as the model's ``value`` field does (its own constraints)."""


def _slot_setter(name: str) -> Any:
    """The setter of the slot ``name`` a pydantic model keeps its bookkeeping in (None:
    pydantic keeps no such slot, so :func:`_can_build_values` says no)."""
    for cls in RecordedValue.__mro__:
        if name in cls.__dict__:
            return getattr(cls.__dict__[name], "__set__", None)
    return None  # pragma: no cover - pydantic changed


_new = object.__new__
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


def _built_values(
    whens: list[datetime], texts: list[str], qualities: list[str | None]
) -> list[RecordedValue]:
    """:class:`RecordedValue` s filled in place, without validation: for parts already
    checked as the model checks them (aware datetimes, checked texts and qualities).
    Every value shares one fields-set (see :func:`_share_fields_set`)."""
    built: list[RecordedValue] = []
    add = built.append
    fields_set = _ALL_FIELDS
    for when, text, quality in zip(whens, texts, qualities, strict=True):
        value = _new(RecordedValue)
        content = value.__dict__
        content["timestamp"] = when
        content["value"] = text
        content["quality"] = quality
        _set_fields_set(value, fields_set)
        _set_extra(value, None)
        _set_private(value, None)
        add(value)
    return built


def _can_build_values() -> bool:
    """True while RecordedValue is what :func:`_built_values` assumes: exactly the fields
    timestamp (an aware datetime), value and quality, checked by field constraints only
    (no validators of its own, no private attributes), and filled the same way."""
    from pydantic import AwareDatetime

    fields = RecordedValue.model_fields
    decorators = RecordedValue.__pydantic_decorators__
    if (
        None in (_set_fields_set, _set_extra, _set_private)
        or getattr(RecordedValue, "__pydantic_post_init__", None) is not None
        or list(fields) != ["timestamp", "value", "quality"]
        or fields["timestamp"].annotation is not AwareDatetime
        or fields["timestamp"].metadata
        or fields["value"].annotation is not str
        or any((decorators.validators, decorators.field_validators, decorators.root_validators))
        or any((decorators.model_validators, decorators.computed_fields))
        or RecordedValue.__private_attributes__
        or RecordedValue.model_config.get("extra") == "allow"
    ):
        return False
    when = datetime.fromisoformat("2026-01-15T08:00:00+01:00")
    made = RecordedValue(timestamp=when, value="1.5", quality="Good")
    _share_fields_set(made)
    (built,) = _built_values([when], ["1.5"], ["Good"])
    return bool(made.__getstate__() == built.__getstate__() and made.timestamp is when)


_BUILD_VALUES = _can_build_values()
"""Whether uniform columns build their values directly (else: the constructor)."""

_TIMES_KEPT = 4096
"""Distinct date-time texts a reader keeps parsed (data sets of one record share them)."""


class RecordReader:
    """Maps a BatchProductionRecord element by element.

    Feed it, in document order, every ``OrderedData`` of a data set
    (:meth:`ordered_data`), the end of every ``DataSet`` (:meth:`dataset_end`)
    and every ``Event`` (:meth:`event`), then the record element itself
    (:meth:`finish`): what it has been fed may be let go (cleared) at once,
    except the record's own children named in :data:`RECORD_KEYS` and the
    (emptied) ``DataSets`` and ``Events`` elements. Run it inside the reading
    context (``ASSUMED_TIMEZONE``, ``NORMALISED``, ``content_errors``).
    """

    def __init__(self, release: Release, path: str = "BatchProductionRecord") -> None:
        ns = release.namespace
        self.release = release
        self.path = path
        self.spec = release.specs[release.elements[(ns, "BatchProductionRecord")] or ""]
        self.datasets_spec = self._child_spec(self.spec, ns, "DataSets")
        self.dataset_spec = self._child_spec(self.datasets_spec, ns, "DataSet")
        self.ordered_spec = self._child_spec(self.dataset_spec, ns, "OrderedData")
        self.events_spec = self._child_spec(self.spec, ns, "Events")
        self.event_spec = self._child_spec(self.events_spec, ns, "Event")
        self.datasets_tag = f"{{{ns}}}DataSets"
        self.dataset_tag = f"{{{ns}}}DataSet"
        self.ordered_tag = f"{{{ns}}}OrderedData"
        self.events_tag = f"{{{ns}}}Events"
        self.event_tag = f"{{{ns}}}Event"
        self._time_tag = f"{{{ns}}}TimeValue"
        self._data_tag = f"{{{ns}}}DataValue"
        self._index_tag = f"{{{ns}}}TagIndex"
        self._value_tag = f"{{{ns}}}Value"
        self._quality_tag = f"{{{ns}}}Quality"
        self.skipped = frozenset(f.name for f in self.spec.fields if f.name not in RECORD_KEYS)
        """Children of the record read elsewhere (DataSets, Events) or not at all."""
        self.unsupported: list[str] = []
        self.series: list[TagSeries] = []
        self.events: list[RecordEvent] = []
        self._datasets: list[Any] = []
        self._events: list[Any] = []
        self._ds: Tracked | None = None
        self._specs: dict[Any, Any] = {}
        self._found: dict[Any, list[RecordedValue]] = {}
        self._od_paths = _Leftovers()
        self._od_count = 0
        self._assumed = ASSUMED_TIMEZONE.get()
        self._qualities: dict[str, str] = {}
        self._valid_qualities: dict[str, str] = {}
        """Qualities a RecordedValue accepted (each checked once, one string each)."""
        self._times: dict[str, datetime] = {}
        """Date-time texts of uniform columns, parsed (at most :data:`_TIMES_KEPT`)."""
        self._queries = _column_queries(ns, limited=False)
        self._limited_queries = _column_queries(ns, limited=True)
        self.sources: list[tuple[Any, etree._Element]] | None = None
        """With a list here, ``(model, element)`` of the record, each series (its
        DataSet) and each event are collected: the element each was read from."""

    def _child_spec(self, spec: Spec, ns: str, name: str) -> Spec:
        slot = spec.by_name[(ns, name)]
        return self.release.specs[slot.type or ""]

    def discards(self, name: str) -> bool:
        """True when the record's child ``name`` is not mapped: its content may go unread."""
        return name in self.skipped and name not in ("DataSets", "Events")

    # ------------------------------------------------------------ data sets

    def _open(self, dataset: etree._Element) -> Tracked:
        path = f"{self.path}/DataSets/DataSet[{len(self._datasets)}]"
        ds: Tracked = _content(
            dataset,
            self.dataset_spec,
            self.release,
            path,
            self.unsupported,
            frozenset({"OrderedData"}),
        )
        self._ds = ds
        self._specs = _specs(ds)
        self._found = {index: [] for index in self._specs}
        self._od_paths = _Leftovers()
        self._od_count = 0
        if "OrderedData" in ds:
            dict.__setitem__(ds, "OrderedData", self._od_paths)
        return ds

    def open(self, dataset: etree._Element) -> None:
        """Read the data set's own content (all but its OrderedData), once per data set."""
        if self._ds is None:
            self._open(dataset)

    def ordered_columns(self, dataset: etree._Element, first: int | None = None) -> bool:
        """Map every ``OrderedData`` of a whole, parsed data set at once, if they are uniform.

        Uniform: each holds one TimeValue and one DataValue of one TagIndex (naming
        a tag), one Value and one Quality, each with text, no attributes, comments
        or processing instructions. Then lxml's XPath reads each of those as a
        column of strings (no Python object per element) and the values are built
        from the columns. Returns False, having mapped nothing, for anything else
        (or a value the model refuses): map each with :meth:`ordered_data`.
        With ``first``, only the first ``first`` OrderedData of the data set are
        read (a streamed data set holds later ones still being parsed).

        The data set must be schema-valid (both readers validate before they
        map, the streamed one as it parses): the shape is proven by counts over
        the XSD's content model (see :func:`_column_queries`).
        """
        if self._ds is None:
            self._open(dataset)
        specs = self._specs
        if not specs or None in specs:
            return False
        queries = self._queries if first is None else self._limited_queries

        def query(name: str) -> Any:
            return queries[name](dataset, first=first or 0)

        count = int(query("ordered"))
        if (
            count == 0
            or int(query("children")) != 2 * count
            or int(query("data_elements")) != count
            or int(query("leaves")) != 3 * count
            or int(query("value_elements")) != count
            or any(query(name) for name in ("attributes", "child_attributes", "leaf_attributes"))
        ):
            return False
        # Comments and processing instructions: one walk of the data set finds none
        # (the usual case), or else the exact queries of its OrderedData decide.
        if next(dataset.iter(etree.Comment, etree.ProcessingInstruction), None) is not None and (
            query("comments") or query("instructions")
        ):
            return False
        times, leaves = query("times"), query("leaf_texts")
        if len(times) != count or len(leaves) != 3 * count:
            return False  # an element without text, or an OrderIndex for a TimeValue
        indexes, values, qualities = leaves[0::3], leaves[1::3], leaves[2::3]
        tags = set(indexes)
        if not specs.keys() >= tags:
            return False  # a TagIndex no specification names: unmapped, the long way
        try:
            when_of = self._parsed_times(times)
            quality_of = self._checked_qualities(qualities)
            if quality_of is None:
                return False
            _VALUE_TEXTS.validate_python(values)
            whens = [when_of[text] for text in times]  # (KeyError: not a date-time here)
            checked: list[str | None] = [quality_of[quality] for quality in qualities]
            if _BUILD_VALUES:
                built = _built_values(whens, values, checked)
            else:  # pragma: no cover - RecordedValue changed shape: the constructor
                built = []
                for when, text, quality in zip(whens, values, checked, strict=True):
                    value = RecordedValue(timestamp=when, value=text, quality=quality)
                    _share_fields_set(value)
                    built.append(value)
        except (ValueError, KeyError):
            return False  # element by element, the failure names its element
        found = self._found
        if len(tags) == 1:
            found[indexes[0]].extend(built)
        else:
            for index, value in zip(indexes, built, strict=True):
                found[index].append(value)
        self._od_count += count
        return True

    def _parsed_times(self, texts: list[str]) -> dict[str, datetime]:
        """The aware date-time of each text (a naive one in the assumed zone); a text
        that is no date-time, or naive without an assumed zone, is left out."""
        known = self._times
        if len(known) > _TIMES_KEPT:
            known.clear()
        assumed = self._assumed
        for text in set(texts).difference(known):
            try:
                when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            if when.utcoffset() is None:
                if assumed is None:
                    continue
                when = when.replace(tzinfo=assumed)
            known[text] = when
        return known

    def _checked_qualities(self, qualities: list[str]) -> dict[str, str] | None:
        """Each distinct quality checked once by the model itself; None if one is refused."""
        valid = self._valid_qualities
        sample = datetime.fromisoformat("2026-01-15T08:00:00+00:00")
        for quality in set(qualities).difference(valid):
            try:
                RecordedValue(timestamp=sample, value="", quality=quality)
            except ValueError:
                return None
            valid[quality] = self._qualities.setdefault(quality, quality)
        return valid

    def ordered_data(self, dataset: etree._Element, element: etree._Element) -> None:
        """One ``OrderedData`` of ``dataset`` (every child before it already parsed)."""
        ds = self._ds if self._ds is not None else self._open(dataset)
        position = self._od_count
        self._od_count += 1
        if not self._specs:
            return  # the reference mapping reads no ordered data without a tag
        if None not in self._specs:
            values = self._plain(element)
            if values is not None:
                found = self._found
                for index, value in values:
                    found[index].append(value)
                return
        path = f"{ds.path}/OrderedData[{position}]"
        tree = _content(element, self.ordered_spec, self.release, path, self.unsupported)
        _ordered(tree, self._specs, self._found)
        self._od_paths.extend(_unconsumed(tree, path))

    def _plain(self, element: etree._Element) -> list[tuple[Any, RecordedValue]] | None:
        """The values of an OrderedData of the usual shape, or None to map it the long way.

        The usual shape: no attributes, a TimeValue with a valid date-time, and
        DataValues whose TagIndex names a tag, whose values and quality are valid
        model fields, and whose content the reference mapping reads completely.
        """
        if len(element.attrib):
            return None
        time_text: str | None = None
        data: list[etree._Element] = []
        for child in element:
            tag = child.tag
            if tag == self._data_tag:
                data.append(child)
            elif tag == self._time_tag:
                if time_text is not None or len(child.attrib) or len(child):
                    return None  # (a comment in it: the long way reads the text whole)
                time_text = child.text or ""
            elif isinstance(tag, str):
                return None
        if time_text is None:
            return None
        try:
            when = datetime.fromisoformat(time_text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.utcoffset() is None:
            if self._assumed is None:
                return None
            when = when.replace(tzinfo=self._assumed)
        specs = self._specs
        out: list[tuple[Any, RecordedValue]] = []
        for dv in data:
            if len(dv.attrib):
                return None
            index: str | None = None
            quality: str | None = None
            values: list[str] = []
            for child in dv:
                tag = child.tag
                if tag == self._value_tag:
                    if len(child.attrib) or len(child):
                        return None
                    values.append(child.text or "")
                elif tag == self._index_tag:
                    if len(child.attrib) or len(child):
                        return None
                    index = child.text or ""
                elif tag == self._quality_tag:
                    if len(child.attrib) or len(child):
                        return None
                    quality = child.text or ""
                elif isinstance(tag, str):
                    return None
            if index is None:
                tags: Any = specs
            elif index in specs:
                tags = (index,)
            else:
                tags = ()
            if not tags or not values:
                if values or quality is not None:
                    return None  # content the reference leaves unmapped
                continue
            if quality is not None:  # one string per distinct quality: less memory
                quality = self._qualities.setdefault(quality, quality)
            try:
                for tag_index in tags:
                    for text in values:
                        value = RecordedValue(timestamp=when, value=text, quality=quality)
                        _share_fields_set(value)
                        out.append((tag_index, value))
            except ValueError:
                return None  # the long way names the element and the reason
        return out

    def dataset_end(self, dataset: etree._Element) -> None:
        """The end of a ``DataSet``: its series are complete."""
        ds = self._ds if self._ds is not None else self._open(dataset)
        if self._specs:
            ds.get("OrderedData")
        found = self._found
        entry = _get(ds, "EntryID")
        series = [
            _tag_series(index, spec, found[index], entry if n == 0 else None)
            for n, (index, spec) in enumerate(self._specs.items())
        ]
        self.series.extend(series)
        if self.sources is not None:
            self.sources.extend((one, dataset) for one in series)
        self._datasets.append(_Leftovers(_unconsumed(ds, ds.path)))
        self._ds = None
        self._specs, self._found = {}, {}

    # ------------------------------------------------------------ events

    def event(self, element: etree._Element) -> None:
        """One ``Event`` of the record's ``Events``."""
        path = f"{self.path}/Events/Event[{len(self._events)}]"
        tree = _content(element, self.event_spec, self.release, path, self.unsupported)
        event = _event(tree)
        self.events.append(event)
        if self.sources is not None:
            self.sources.append((event, element))
        self._events.append(_Leftovers(_unconsumed(tree, path)))

    # ------------------------------------------------------------ the record

    def finish(self, element: etree._Element) -> tuple[BatchProductionRecord, list[str]]:
        """The record and the paths of what it does not carry (``unmapped``)."""
        tree = _content(element, self.spec, self.release, self.path, self.unsupported, self.skipped)
        tree.get("@releaseID")
        tree.get("@versionID")
        for name, tag, spec, child, done in (
            ("DataSets", self.datasets_tag, self.datasets_spec, "DataSet", self._datasets),
            ("Events", self.events_tag, self.events_spec, "Event", self._events),
        ):
            tree.get(name)
            found = element.find(tag)
            if name not in tree or found is None:
                continue
            part = _content(
                found,
                spec,
                self.release,
                f"{self.path}/{name}",
                self.unsupported,
                frozenset({child}),
            )
            part.get(child)
            if child in part or done:  # streamed: the elements mapped are gone
                dict.__setitem__(part, child, done)
            dict.__setitem__(tree, name, part)
        record = _record(tree, self.series, self.events)
        if self.sources is not None:
            self.sources.insert(0, (record, element))
        return record, self.unsupported + list(_unconsumed(tree, self.path))


def map_record(
    element: etree._Element,
    release: Release,
    sources: list[tuple[Any, etree._Element]] | None = None,
) -> tuple[BatchProductionRecord, list[str]]:
    """A record from its (whole, parsed) element, and what it does not carry.

    The same models as the reference mapping of its tree, without building the
    tree of its ordered data. ``sources`` collects the elements models were
    read from (see :attr:`RecordReader.sources`). Run inside the reading
    context (see :class:`RecordReader`).
    """
    reader = RecordReader(release, etree.QName(element).localname)
    reader.sources = sources
    for child in element:
        if child.tag == reader.datasets_tag:
            for dataset in child.iterchildren(reader.dataset_tag):
                if not reader.ordered_columns(dataset):
                    for ordered in dataset.iterchildren(reader.ordered_tag):
                        reader.ordered_data(dataset, ordered)
                reader.dataset_end(dataset)
        elif child.tag == reader.events_tag:
            for event in child.iterchildren(reader.event_tag):
                reader.event(event)
    return reader.finish(element)
