"""Issue 17 review: text split by comments, bounded error messages, codes and date-times the
models normalise, big text nodes and the parser's limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.b2mml.safexml import MAX_DEPTH, SAFE_PARSER_OPTIONS, parse_xml
from isa95.b2mml.stream import read_batch_record
from isa95.errors import (
    B2MMLError,
    DocumentContentError,
    DocumentInvalid,
    ISA95Error,
    UnsafeXMLError,
    bounded_message,
    quoted,
)

V7 = "http://www.mesa.org/xml/B2MML"
V6 = "http://www.mesa.org/xml/B2MML-V0600"


_HUGE = etree.XMLParser(huge_tree=True)  # test documents only: texts over 10 MB


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data, _HUGE), method="c14n"))


def lot(body: str, namespace: str = V7) -> bytes:
    return f'<MaterialLot xmlns="{namespace}">{body}</MaterialLot>'.encode()


# ------------------------------------------------------------ text split by comments


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ("<ID>L-<!-- x -->1</ID>", "id", "L-1"),
        ("<ID>L-<?p?>1</ID>", "id", "L-1"),
        ("<ID><!-- x -->L-1</ID>", "id", "L-1"),
        ("<ID>L-1<!-- x --></ID>", "id", "L-1"),
        ("<ID>L<!--a-->-<?b?>1<!--c--></ID>", "id", "L-1"),
        ("<ID>L</ID><Status>Rel<!---->eased</Status>", "status", "Released"),
    ],
)
def test_text_split_by_a_comment_or_instruction_is_read_whole(
    b2mml: B2MML, body: str, field: str, expected: str
) -> None:
    data = lot(body)
    document = b2mml.read(data)
    assert getattr(document.model, field) == expected
    element = "ID" if field == "id" else "Status"
    assert document.binding is not None
    assert document.binding.value(element) == expected
    assert document.binding.to_data()[element] == expected
    written = b2mml.write(document)
    assert c14n(written) == c14n(data)  # the comment is written back where it was
    assert b"<!--" in written or b"<?" in written


def test_a_quantity_split_by_a_comment_is_read_whole(b2mml: B2MML) -> None:
    data = lot(
        "<ID>L</ID><Quantity><QuantityString>12<!---->.5</QuantityString>"
        "<DataType>decimal</DataType></Quantity>"
    )
    quantity = b2mml.read(data).model.quantity
    assert quantity is not None and str(quantity.value) == "12.5"


def test_a_v0600_date_time_split_by_a_comment_is_read_whole(b2mml: B2MML) -> None:
    data = (
        f'<ProductionSchedule xmlns="{V6}"><ID>S</ID><ProductionRequest><ID>R</ID>'
        "<StartTime>2026-01-01T<!--x-->08:00:00Z</StartTime></ProductionRequest>"
        "</ProductionSchedule>"
    ).encode()
    (request,) = b2mml.read(data).model.requests
    assert request.start == datetime(2026, 1, 1, 8, tzinfo=UTC)


def test_set_text_replaces_the_whole_value_and_keeps_the_comment(b2mml: B2MML) -> None:
    document = b2mml.read(lot("<ID>L-<!-- x -->1</ID>"))
    assert document.binding is not None
    identifier = document.binding.one("ID")
    assert identifier is not None
    identifier.set_text("M-2")
    assert identifier.text == "M-2"
    assert b"<ID>M-2<!-- x --></ID>" in b2mml.write(document)


def _record(value: str) -> bytes:
    return (
        f'<BatchProductionRecord xmlns="{V7}"><ID>BPR-1</ID><EntryID>BPR-1</EntryID>'
        "<ObjectType>Batch Production Record</ObjectType>"
        "<CreationDate>2026-01-15T08:00:00Z</CreationDate><DataSets><DataSet>"
        "<EntryID>DS0</EntryID><ObjectType>Data Set</ObjectType><TagSpecification>"
        "<TagIndex>1</TagIndex><DataType>decimal</DataType><UnitOfMeasure>Cel</UnitOfMeasure>"
        "<DataSource>TT-1</DataSource></TagSpecification>"
        + "".join(
            f"<OrderedData><TimeValue>{time}</TimeValue><DataValue><TagIndex>1</TagIndex>"
            f"<Value>{value}</Value><Quality>Good</Quality></DataValue></OrderedData>"
            for time in ("2026-01-15T08:00:00Z", "2026-01-15T08:00:01Z")
        )
        + "</DataSet></DataSets></BatchProductionRecord>"
    ).encode()


def test_a_record_value_split_by_a_comment_is_read_whole_in_memory_and_streamed(
    b2mml: B2MML,
) -> None:
    data = _record("70<!--c-->.07")
    assert b2mml.validate(data) == []
    for document in (b2mml.read(data), read_batch_record(b2mml, data, chunk_bytes=61)):
        (series,) = document.model.series
        assert [v.value for v in series.values] == ["70.07", "70.07"]


def test_a_record_time_at_24_00_is_the_next_day_in_memory_and_streamed(b2mml: B2MML) -> None:
    data = _record("1").replace(b"2026-01-15T08:00:01Z", b"2026-01-15T24:00:00Z")
    for document in (b2mml.read(data), read_batch_record(b2mml, data)):
        (series,) = document.model.series
        assert series.values[1].timestamp == datetime(2026, 1, 16, tzinfo=UTC)
        assert any("24:00:00" in note for note in document.normalised)


_TEXTS = {
    "ID": "L-1",
    "Description": "Lot one, sieved",
    "Status": "Released",
    "QuantityString": "12.50",
    "UnitOfMeasure": "kg",
}
_INFORMATION = (
    f'<MaterialInformation xmlns="{V7}"><ID>MI</ID><MaterialLot><ID>{{ID}}</ID>'
    "<Description>{Description}</Description><Status>{Status}</Status>"
    "<Quantity><QuantityString>{QuantityString}</QuantityString><DataType>decimal</DataType>"
    "<UnitOfMeasure>{UnitOfMeasure}</UnitOfMeasure></Quantity></MaterialLot>"
    "</MaterialInformation>"
)
_NODES = st.sampled_from(["<!---->", "<!-- note -->", "<?sap x?>", "<?pi?>", "<!--a-b-->"])


@st.composite
def _split_texts(draw: st.DrawFn) -> dict[str, str]:
    split = {}
    for name, text in _TEXTS.items():
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=3)))
        pieces, start = [], 0
        for cut in cuts:
            pieces += [text[start:cut], draw(_NODES)]
            start = cut
        split[name] = "".join(pieces) + text[start:]
    return split


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(split=_split_texts())
def test_comments_and_instructions_anywhere_in_text_change_no_value(
    b2mml: B2MML, split: dict[str, str]
) -> None:
    plain = _INFORMATION.format(**_TEXTS).encode()
    data = _INFORMATION.format(**split).encode()
    assert b2mml.validate(data) == []
    expected = b2mml.read(plain)
    document = b2mml.read(data)
    assert document.model == expected.model
    assert document.binding is not None and expected.binding is not None
    assert document.binding.to_data() == expected.binding.to_data()
    assert c14n(b2mml.write(document)) == c14n(data)


# ------------------------------------------------------------ bounded error messages


def test_a_megabyte_identifier_gives_a_short_error(b2mml: B2MML) -> None:
    data = lot(f"<ID>{'X' * 1_000_000}</ID>")
    with pytest.raises(DocumentContentError) as raised:
        b2mml.read(data)
    message = str(raised.value)
    assert len(message) < 400
    assert "'" + "X" * 80 + "'… (1,000,000 characters)" in message
    assert "at most 256 characters" in message


def test_quoted_and_bounded_messages() -> None:
    assert quoted("short") == "'short'"
    assert quoted("y" * 81) == repr("y" * 80) + "… (81 characters)"
    long = f"value {'Z' * 5000!r} is wrong; and {'Q' * 3000!r}"
    bounded = bounded_message(long)
    assert (
        bounded
        == f"value '{'Z' * 80}…' (5,000 characters) is wrong; and '{'Q' * 80}…' (3,000 characters)"
    )
    assert len(str(ISA95Error("x" * 100_000))) < 4100  # unquoted: cut as a whole
    assert str(ISA95Error("a short message with 'quotes'")) == "a short message with 'quotes'"


# ------------------------------------------------------------ codes and date-times


def test_a_padded_status_is_trimmed_and_listed(b2mml: B2MML) -> None:
    document = b2mml.read(lot("<ID>L-1</ID><Status> Released </Status>"))
    assert document.model.status == "Released"
    assert document.normalised == ["MaterialLot/Status: ' Released ' read as 'Released'"]
    assert document.binding is not None and document.binding.value("Status") == " Released "


def _batch_list(time: str) -> bytes:
    return (
        f'<BatchList xmlns="{V7}"><BatchListEntry><ID>B</ID>'
        "<BatchListEntryType>Batch</BatchListEntryType>"
        f"<RequestedStartTime>{time}</RequestedStartTime></BatchListEntry></BatchList>"
    ).encode()


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-01-01T24:00:00Z", datetime(2026, 1, 2, tzinfo=UTC)),
        ("2026-12-31T24:00:00.000Z", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_24_00_is_the_next_day(b2mml: B2MML, written: str, expected: datetime) -> None:
    data = _batch_list(written)
    assert b2mml.validate(data) == []
    document = b2mml.read(data)
    assert document.model.entries[0].requested_start == expected
    assert document.normalised == [
        f"BatchList/BatchListEntry[0] 'B' (line 1)/RequestedStartTime: {written!r} read as "
        f"{expected.isoformat()} (the next day)"
    ]
    assert c14n(b2mml.write(document)) == c14n(data)


@pytest.mark.parametrize("written", ["10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z"])
def test_years_a_datetime_cannot_hold_are_refused_by_path(b2mml: B2MML, written: str) -> None:
    data = _batch_list(written)
    assert b2mml.validate(data) == []
    with pytest.raises(DocumentContentError, match="years 1 to 9999") as raised:
        b2mml.read(data)
    assert raised.value.path == "BatchList/BatchListEntry[0] 'B' (line 1)/RequestedStartTime"


# ------------------------------------------------------------ big text nodes and limits

_BLOB = "QUJD" * (3 * 1024 * 1024)  # 12 MiB of base64, over libxml2's 10 MB text limit


def _big_lot() -> bytes:
    return lot(
        f"<ID>L</ID><MaterialLotProperty><ID>P</ID><Value><ValueString>{_BLOB}</ValueString>"
        "<DataType>BinaryObject</DataType></Value></MaterialLotProperty>"
    )


def test_a_text_node_over_10_mb_is_read_within_the_size_cap(b2mml: B2MML) -> None:
    data = _big_lot()
    assert len(data) > 12 * 1024 * 1024
    assert parse_xml(data).getroot().tag == f"{{{V7}}}MaterialLot"
    assert b2mml.validate(data) == []
    document = b2mml.read(data, models=False)
    assert document.binding is not None
    (prop,) = document.binding.all("MaterialLotProperty")
    value = prop.one("Value")
    assert value is not None and value.value("ValueString") == _BLOB
    assert c14n(b2mml.write(document)) == c14n(data)
    with pytest.raises(DocumentContentError, match="at most 10000 characters"):
        b2mml.read(data)  # the models' own limit, named as such: the parser let it through


def test_a_streamed_record_with_a_text_node_over_10_mb_is_parsed(b2mml: B2MML) -> None:
    record = b"<ObjectType>Batch Production Record</ObjectType>"
    data = _record("1").replace(record, record + f"<Description>{_BLOB}</Description>".encode())
    assert b2mml.validate(data) == []
    for read in (lambda: b2mml.read(data), lambda: read_batch_record(b2mml, data)):
        with pytest.raises(DocumentContentError, match="at most 10000 characters"):
            read()


def _nested(depth: int, text: str = "") -> bytes:
    return (b"<a>" * depth) + text.encode() + (b"</a>" * depth)


@pytest.mark.parametrize("text", ["", _BLOB], ids=["small", "big-text"])
def test_elements_nested_deeper_than_the_limit_are_refused(text: str) -> None:
    assert MAX_DEPTH == 256
    assert parse_xml(_nested(MAX_DEPTH, text)).getroot().tag == "a"
    with pytest.raises(UnsafeXMLError, match="nested deeper than 256 levels"):
        parse_xml(_nested(MAX_DEPTH + 1, text))
    with pytest.raises(UnsafeXMLError, match="nested deeper than 256 levels"):
        parse_xml(_nested(100_000, text))


_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>"
)


@pytest.mark.parametrize(
    "data",
    [
        _LAUGHS + b"<lolz>&lol9;</lolz>",
        _LAUGHS + f'<MaterialLot xmlns="{V7}"><ID>&lol9;{_BLOB}</ID></MaterialLot>'.encode(),
        b'<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><x/>',
        b"<x>&ext;</x>",
    ],
    ids=["billion-laughs", "laughs-with-big-text", "external-dtd", "undeclared-entity"],
)
def test_dtds_and_entities_are_still_refused(b2mml: B2MML, data: bytes) -> None:
    with pytest.raises((UnsafeXMLError, DocumentInvalid)) as raised:
        parse_xml(data)
    if b"DOCTYPE" in data:
        assert isinstance(raised.value, UnsafeXMLError)
    with pytest.raises(UnsafeXMLError if b"DOCTYPE" in data else B2MMLError):
        read_batch_record(b2mml, data)


def test_a_streamed_read_refuses_deep_nesting(b2mml: B2MML) -> None:
    """Streamed, libxml2 keeps a depth limit of 2048; the schema refuses nesting first."""
    deep = _record("1").replace(
        b"<EntryID>DS0</EntryID>", b"<EntryID>DS0</EntryID>" + _nested(3000)
    )
    with pytest.raises(DocumentInvalid, match=r"depth|not expected"):
        read_batch_record(b2mml, deep)
    parser = etree.XMLPullParser(events=("end",), **SAFE_PARSER_OPTIONS)  # as streamed
    parser.feed(_nested(2048))
    parser.close()
    parser = etree.XMLPullParser(events=("end",), **SAFE_PARSER_OPTIONS)
    with pytest.raises(etree.XMLSyntaxError, match="Excessive depth"):
        parser.feed(_nested(2049))
        parser.close()


def test_a_megabyte_enumeration_value_gives_short_validation_issues(b2mml: B2MML) -> None:
    data = lot(
        "<ID>L</ID><MaterialLotProperty><ID>P</ID><Value><ValueString>1</ValueString>"
        f"<DataType>{'Q' * 1_000_000}</DataType></Value></MaterialLotProperty>"
    )
    (issue,) = b2mml.validate(data)
    assert len(issue.message) < 400 and "'" + "Q" * 80 + "…' (" in issue.message
    with pytest.raises(DocumentInvalid) as raised:
        b2mml.read(data)
    assert len(str(raised.value)) < 600


def test_a_quote_cut_off_before_its_end_is_shortened_too() -> None:
    message = "x " * 600 + "value 'abc" + "d" * 5000
    assert bounded_message(message).endswith("value 'abc" + "d" * 77 + "…' (5,003 characters)")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False).map(str),
    data=st.data(),
)
def test_a_record_with_comments_anywhere_in_its_values_reads_the_same(
    b2mml: B2MML, value: str, data: st.DataObject
) -> None:
    """In memory and streamed (column, element-wise and tree paths alike)."""
    cut = data.draw(st.integers(0, len(value)))
    split = _record(value[:cut] + data.draw(_NODES) + value[cut:])
    expected = b2mml.read(_record(value))
    assert b2mml.validate(split) == []
    for document in (b2mml.read(split), read_batch_record(b2mml, split, chunk_bytes=97)):
        assert document.model == expected.model
        assert document.unmapped == expected.unmapped
