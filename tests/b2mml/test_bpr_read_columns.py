"""BatchProductionRecords of the usual, uniform shape are read as columns: each
deviation from that shape a schema-valid document can hold (one OrderedData at a
time) gives the same models, unmapped paths and refusals as the reference mapping
of the whole tree, in memory and streamed (issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isa95.b2mml.documents import B2MML
from isa95.b2mml.mapping import batchrecord
from isa95.b2mml.mapping.batchrecord import _bpr_from_tree
from isa95.b2mml.mapping.trees import (
    ASSUMED_TIMEZONE,
    NORMALISED,
    content_errors,
    track,
    unconsumed,
)
from isa95.b2mml.safexml import parse_xml
from isa95.b2mml.schemas import NAMESPACES
from isa95.b2mml.stream import read_batch_record
from isa95.b2mml.tree import read as read_tree
from isa95.batchrecord import RecordedValue
from isa95.errors import ISA95Error

VERSIONS = ("V0701", "V0600")

DEVIATIONS = (
    "none",
    "order_index_for_time",  # OrderIndex instead of TimeValue (both optional)
    "order_index_and_time",
    "no_time",
    "no_tag_index",  # a value of every tag
    "no_quality",
    "two_values",
    "two_data_values",
    "unknown_tag",  # a TagIndex no specification names: unmapped
    "empty_value",
    "carriage_return",  # &#13;: a character the model refuses
    "long_value",  # longer than the model's 10,000 characters
    "padded_quality",  # " Good": no identifier
    "naive_time",
    "seven_digit_fraction",
    "midnight_24",  # 24:00:00 is a valid xsd:dateTime, not a Python one: the long way
    "quality_attribute",
    "index_attribute",
    "time_attribute",
    "comment_inside",
    "instruction_inside",
    "split_value",  # a comment inside a Value: its value is the text around it
    "split_time",
    "comment_in_header",  # outside the OrderedData: the columns still apply
)


def _ordered(i: int, index: str, deviation: str, zone: str) -> str:
    seconds = f"{i % 60:02d}"
    time_text = f"2026-01-15T08:{i // 60 % 60:02d}:{seconds}{zone}"
    value = f"{i}.5"
    quality = "<Quality>Good</Quality>" if i % 3 else "<Quality>Bad</Quality>"
    tag_index = f"<TagIndex>{index}</TagIndex>"
    time_element = f"<TimeValue>{time_text}</TimeValue>"
    extra = ""
    if deviation == "order_index_for_time":
        time_element = f"<OrderIndex>{i}</OrderIndex>"
    elif deviation == "order_index_and_time":
        time_element = f"<OrderIndex>{i}</OrderIndex>{time_element}"
    elif deviation == "no_time":
        time_element = ""
    elif deviation == "no_tag_index":
        tag_index = ""
    elif deviation == "no_quality":
        quality = ""
    elif deviation == "two_values":
        value = f"{value}</Value><Value>{i}.6"
    elif deviation == "two_data_values":
        extra = f"<DataValue><TagIndex>{index}</TagIndex><Value>x</Value>{quality}</DataValue>"
    elif deviation == "unknown_tag":
        tag_index = "<TagIndex>9</TagIndex>"
    elif deviation == "empty_value":
        value = ""
    elif deviation == "carriage_return":
        value = "a&#13;b"
    elif deviation == "long_value":
        value = "x" * 10_001
    elif deviation == "padded_quality":
        quality = "<Quality> Good</Quality>"
    elif deviation == "naive_time":
        time_element = f"<TimeValue>2026-01-15T09:00:{seconds}</TimeValue>"
    elif deviation == "seven_digit_fraction":
        time_element = f"<TimeValue>2026-01-15T09:00:{seconds}.1234567Z</TimeValue>"
    elif deviation == "midnight_24":
        time_element = "<TimeValue>2026-01-15T24:00:00Z</TimeValue>"
    elif deviation == "quality_attribute":
        quality = '<Quality schemeID="S">Good</Quality>'
    elif deviation == "index_attribute":
        tag_index = f'<TagIndex format="n">{index}</TagIndex>'
    elif deviation == "time_attribute":
        time_element = f'<TimeValue format="x">{time_text}</TimeValue>'
    elif deviation == "comment_inside":
        quality = f"<!-- c -->{quality}"
    elif deviation == "instruction_inside":
        value = f"{value}<?pi x?>"
    elif deviation == "split_value":
        value = f"{i}<!-- c -->.5"
    elif deviation == "split_time":
        minute = f"{i // 60 % 60:02d}"
        time_element = f"<TimeValue>2026-01-15T08:<?pi x?>{minute}:{seconds}{zone}</TimeValue>"
    return (
        f"<OrderedData>{time_element}<DataValue>{tag_index}<Value>{value}</Value>"
        f"{quality}</DataValue>{extra}</OrderedData>\n"
    )


def document(
    version: str, rows: int, tags: int, where: int, deviation: str, zone: str, also: str = "none"
) -> bytes:
    """A record of ``tags`` data sets of two tags with ``rows`` (at least 2) OrderedData
    each, by turns of either tag; OrderedData ``where`` of the first data set deviates
    (and, with ``also``, its last OrderedData deviates so too)."""
    data_sets = []
    for t in range(tags):
        header = "<!-- header -->" if "comment_in_header" in (deviation, also) and t == 0 else ""
        specs = "".join(
            f"<TagSpecification><TagIndex>{n}</TagIndex><DataType>decimal</DataType>"
            f"<UnitOfMeasure>Cel</UnitOfMeasure><DataSource>TT-{t}-{n}</DataSource>"
            "</TagSpecification>"
            for n in (1, 2)
        )
        deviations = {rows - 1: also, where: deviation} if t == 0 else {}
        ordered = "".join(
            _ordered(i, str(1 + i % 2), deviations.get(i, "none"), zone) for i in range(rows)
        )
        data_sets.append(
            f"<DataSet><EntryID>DS{t}</EntryID><ObjectType>Data Set</ObjectType>{header}"
            f"{specs}{ordered}</DataSet>\n"
        )
    return (
        f'<?xml version="1.0"?>\n<BatchProductionRecord xmlns="{NAMESPACES[version]}">'
        "<ID>BPR-1</ID><EntryID>BPR-1</EntryID><ObjectType>Batch Production Record</ObjectType>"
        f"<CreationDate>2026-01-15T08:00:00Z</CreationDate><DataSets>\n{''.join(data_sets)}"
        "</DataSets></BatchProductionRecord>"
    ).encode()


def reference(b2mml: B2MML, data: bytes, zone: Any) -> Any:
    """The whole document as one generic tree, mapped by the reference mapping."""
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
    except ISA95Error as exc:
        return type(exc), str(exc)
    finally:
        ASSUMED_TIMEZONE.reset(zone_token)
        NORMALISED.reset(notes_token)
    return model, unsupported + list(unconsumed(tracked, root)), notes


def outcome(read: Any) -> Any:
    try:
        document = read()
    except ISA95Error as exc:
        return type(exc), str(exc)
    return document.model, document.unmapped, document.normalised


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deviation=st.sampled_from(DEVIATIONS),
    also=st.sampled_from(DEVIATIONS),
    rows=st.integers(2, 7),
    where=st.integers(0, 6),
    zone=st.sampled_from(["Z", "+02:00", "-05:30"]),
    assume=st.sampled_from([None, timezone(timedelta(hours=1))]),
    chunk=st.sampled_from([97, 1 << 16]),
)
def test_every_deviation_reads_as_the_reference_reads_it(
    b2mml: B2MML,
    version: str,
    deviation: str,
    also: str,
    rows: int,
    where: int,
    zone: str,
    assume: Any,
    chunk: int,
) -> None:
    data = document(version, rows, 2, min(where, rows - 2), deviation, zone, also)
    assert b2mml.validate(data) == []
    expected = reference(b2mml, data, assume)
    assert outcome(lambda: b2mml.read(data, assume_timezone=assume)) == expected
    streamed = outcome(
        lambda: read_batch_record(b2mml, data, assume_timezone=assume, chunk_bytes=chunk)
    )
    assert streamed == expected


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("deviation", "also"),
    [
        ("no_quality", "two_values"),  # as many leaves as uniform ones, one Value more
        ("no_tag_index", "two_values"),
        ("no_time", "two_data_values"),  # as many children, one DataValue more
        ("no_time", "order_index_and_time"),  # as many children, one TimeValue fewer
        ("empty_value", "two_values"),
        ("order_index_for_time", "none"),
    ],
)
def test_deviations_that_balance_each_other_are_not_taken_for_uniform(
    b2mml: B2MML, version: str, deviation: str, also: str
) -> None:
    for where in (0, 1, 2):
        data = document(version, 4, 2, where, deviation, "Z", also)
        assert b2mml.validate(data) == []
        expected = reference(b2mml, data, None)
        assert outcome(lambda d=data: b2mml.read(d)) == expected
        assert outcome(lambda d=data: read_batch_record(b2mml, d, chunk_bytes=61)) == expected


@pytest.mark.parametrize(
    ("deviation", "element", "reason"),
    [
        ("carriage_return", "DataValue", "U+000D"),
        ("long_value", "DataValue", "10000"),
        ("padded_quality", "DataValue", "whitespace"),
        ("naive_time", "TimeValue", "no time zone"),
    ],
)
def test_a_value_the_model_refuses_is_named_by_its_element(
    b2mml: B2MML, deviation: str, element: str, reason: str
) -> None:
    data = document("V0701", 3, 2, 1, deviation, "Z")
    assert b2mml.validate(data) == []
    for read in (lambda: b2mml.read(data), lambda: read_batch_record(b2mml, data)):
        with pytest.raises(ISA95Error) as raised:
            read()
        message = str(raised.value)
        assert "BatchProductionRecord/DataSets/DataSet[0]/OrderedData[1]" in message
        assert "(line 4)" in message and element in message and reason in message


def test_uniform_records_are_read_as_columns(b2mml: B2MML, monkeypatch: Any) -> None:
    """The uniform shape takes the column path (else this suite proves nothing about it)."""
    data = document("V0600", 5, 3, 0, "none", "+02:00")
    taken: list[bool] = []
    columns = batchrecord.RecordReader.ordered_columns

    def spy(self: Any, *args: Any, **kwargs: Any) -> bool:
        taken.append(columns(self, *args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(batchrecord.RecordReader, "ordered_columns", spy)
    model = b2mml.read(data).model
    assert taken == [True, True, True]
    assert [len(s.values) for s in model.series] == [3, 2] * 3
    values = [v for s in model.series for v in s.values]
    assert values[0].timestamp == datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
    assert {v.quality for v in values} == {"Good", "Bad"}


def test_values_built_from_columns_are_the_models_own(b2mml: B2MML) -> None:
    """Values built in place equal the constructor's, field by field and in pydantic's
    own bookkeeping, and stay validated on assignment."""
    assert batchrecord._BUILD_VALUES
    when = datetime(2026, 1, 15, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    (built,) = batchrecord._built_values([when], ["1.5"], ["Good"])
    made = RecordedValue(timestamp=when, value="1.5", quality="Good")
    assert built == made
    assert built.__getstate__()["__dict__"] == made.__getstate__()["__dict__"]
    assert built.model_fields_set == made.model_fields_set
    assert built.model_dump() == made.model_dump()
    assert RecordedValue.model_validate(built.model_dump()) == built
    with pytest.raises(ValueError):
        built.quality = " padded"
    data = document("V0701", 4, 1, 0, "none", "Z")
    read = b2mml.read(data).model.series[1].values
    assert len(read) == 2
    assert [RecordedValue(**v.model_dump()) for v in read] == read
