"""Date-times written from models: UTC as ``Z`` (as B2MML writers send it), other
offsets as they are, the instant unchanged; values kept from a read stay as written
(issue 17: "``Z`` becomes ``+00:00``")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from isa95.b2mml.documents import B2MML, ApplicationArea
from isa95.b2mml.mapping.trees import xsd_datetime
from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries
from isa95.operations import (
    DataValue,
    OperationsRequest,
    OperationsSchedule,
    SegmentRequirement,
)
from isa95.personnel import Person, PersonnelInformation, Qualification

V0701_NS = "http://www.mesa.org/xml/B2MML"
# xsd:dateTime with a zone (the models carry aware date-times only)
XSD_DATETIME = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-](0\d|1[0-3]):[0-5]\d|[+-]14:00)"
)

zones = st.sampled_from(
    [
        UTC,
        timezone(timedelta(0)),
        ZoneInfo("Europe/London"),  # +00:00 in winter, +01:00 in summer
        ZoneInfo("Europe/Helsinki"),
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-8)),
        timezone(timedelta(hours=-14)),
    ]
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones
)
EXAMPLES = settings(max_examples=40, deadline=None)


def _date_times(data: bytes, names: set[str]) -> list[str]:
    return [
        e.text or ""
        for e in etree.fromstring(data).iter()
        if isinstance(e.tag, str) and etree.QName(e).localname in names
    ]


def _instant(value: datetime) -> datetime:
    """UTC wall time by the value's own offset (``==`` across zones is unequal for
    times in a daylight-saving gap or fold, PEP 495)."""
    offset = value.utcoffset()
    assert offset is not None
    return value.replace(tzinfo=None) - offset


@given(aware)
def test_xsd_datetime_is_valid_lexically_and_keeps_the_instant(value: datetime) -> None:
    text = xsd_datetime(value)
    assert XSD_DATETIME.fullmatch(text), text
    assert not text.endswith("+00:00") and not text.endswith("-00:00")
    offset = value.utcoffset()
    assert offset is not None
    whole_minutes = not offset % timedelta(minutes=1)
    # an offset xsd:dateTime cannot carry (seconds: local mean time) is written in UTC
    assert text.endswith("Z") == (offset == timedelta(0) or not whole_minutes)
    back = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert _instant(back) == _instant(value)
    assert back.utcoffset() == (offset if whole_minutes else timedelta(0))


@EXAMPLES
@given(start=aware, length=st.timedeltas(timedelta(0), timedelta(days=30)), creation=aware)
def test_models_write_utc_as_z_in_every_release(
    b2mml: B2MML, start: datetime, length: timedelta, creation: datetime
) -> None:
    schedule = OperationsSchedule(
        id="S-1",
        start=start,
        end=start + length,
        requests=[
            OperationsRequest(
                id="R-1",
                segments=[
                    SegmentRequirement(
                        id="SR-1",
                        process_segment_id="PS",
                        earliest_start=start,
                        parameters=[DataValue(id="P", value="1")],
                    )
                ],
            )
        ],
    )
    names = {"StartTime", "EndTime", "Endtime", "EarliestStartTime", "CreationDateTime"}
    for version in ("V0701", "V0600"):
        data = b2mml.write(
            schedule,
            version=version,
            verb="Process",
            application_area=ApplicationArea(creation=creation),
        )
        written = _date_times(data, names)
        assert written, version
        for text in written:
            assert not text.endswith("+00:00"), (version, text)
        values = {start, start + length, creation}
        assert set(written) == {xsd_datetime(v) for v in values}
        for value in values:
            if value.utcoffset() == timedelta(0):
                assert xsd_datetime(value).endswith("Z")
        document = b2mml.read(data)
        assert _instant(document.model.start) == _instant(start)
        assert _instant(document.model.end) == _instant(start + length)
        assert document.application_area is not None
        assert _instant(document.application_area.creation) == _instant(creation)


def test_regression_utc_from_models_is_z_not_plus_zero(b2mml: B2MML) -> None:
    """Every writer path that turns a datetime into text: schedules, performance
    times, the BOD header, batch record values and events, qualifications."""
    noon = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    record = BatchProductionRecord(
        id="BPR-1",
        creation_date=noon,
        series=[TagSeries(tag="TT-1", values=[RecordedValue(timestamp=noon, value="1.5")])],
        events=[RecordEvent(id="E-1", timestamp=noon)],
    )
    bpr = b2mml.write(record, version="V0701")
    assert bpr.count(b"2026-01-15T12:00:00Z") == 3
    persons = PersonnelInformation(
        persons=[Person(id="P-1", qualifications=[Qualification(id="GMP", valid_until=noon)])]
    )
    sync = b2mml.write(
        persons, version="V0600", verb="Sync", application_area=ApplicationArea(creation=noon)
    )
    assert sync.count(b"2026-01-15T12:00:00Z") == 2
    for data in (bpr, sync):
        assert b"+00:00" not in data
    assert b2mml.read(bpr).model == record
    assert b2mml.read(sync).model == persons


@pytest.mark.parametrize("lexical", ["2026-01-15T08:00:00+00:00", "2026-01-15T08:00:00Z"])
def test_a_value_read_is_written_back_as_it_was(b2mml: B2MML, lexical: str) -> None:
    data = (
        f'<SyncPersonnelInformation xmlns="{V0701_NS}" releaseID="1.0"><ApplicationArea>'
        f"<CreationDateTime>{lexical}</CreationDateTime></ApplicationArea><DataArea><Sync/>"
        "<PersonnelInformation><ID>PI-1</ID><Person><ID>P-1</ID></Person></PersonnelInformation>"
        "</DataArea></SyncPersonnelInformation>"
    ).encode()
    document = b2mml.read(data)
    assert document.application_area is not None
    assert document.application_area.creation == datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert f"<CreationDateTime>{lexical}</CreationDateTime>".encode() in b2mml.write(document)
