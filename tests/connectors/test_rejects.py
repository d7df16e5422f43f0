"""Dead letters: refused input is kept in the audited rejects table, never blocks the spool.

Also the checks that refuse it: Sparkplug timestamps (range, future), alias 0,
sequence gaps (Sparkplug and JSON publishers), payloads that try to choose
another tag than their topic's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, DBAPIError

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.jsonpayload import decode_json_message
from gxpmes.connectors.model import (
    MAX_KEPT,
    DeadLetter,
    DecodeError,
    Problem,
    Reading,
    TagBinding,
    safe_text,
)
from gxpmes.connectors.mqtt import PublisherSequences
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.sparkplug import (
    DOUBLE,
    MAX_MILLIS,
    Metric,
    Payload,
    SparkplugSession,
    encode_payload,
)
from gxpmes.ebr.schema import RejectRow
from gxpmes.records.verify import verify_record

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def now() -> datetime:
    return datetime.now(UTC)


def letter(reason: str, tag: str | None = None, payload: bytes = b"x", **kw: str) -> DeadLetter:
    return DeadLetter.of(Problem(reason, f"{reason} detail", tag, **kw), "plant/x", payload, now())


def exceptions(plant, kind: str = "exception:data_quality") -> list[str]:  # type: ignore[no-untyped-def]
    return [i.detail for i in plant.engine.review_by_exception(BATCH) if i.kind == kind]


def test_dead_letters_are_recorded_audited_and_bounded(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    poison = b"\x00\xff" * 5000  # 10,000 bytes, not UTF-8
    spool.reject(letter("malformed", "GRAN01/TT-101", poison))
    spool.reject(letter("unknown_tag", "NOT-MAPPED"))
    spool.reject(DeadLetter.of(Problem("malformed", "bad \x00 \ud800 text"), "t/\x01", b"", now()))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot, connector="line-1")
    forwarder.forward_once()
    assert spool.rejected() == [] and forwarder.counts["rejects_recorded"] == 3
    with running.db.read() as conn:
        rows = {r.reason + (r.tag or ""): r for r in conn.execute(select(RejectRow)).all()}
    kept = rows["malformedGRAN01/TT-101"]
    assert kept.payload == poison[:MAX_KEPT] and kept.payload_size == len(poison)
    assert kept.batch_id == BATCH and kept.connector == "line-1"
    assert kept.client_id == running.ot.client_id
    assert rows["unknown_tagNOT-MAPPED"].batch_id is None
    assert "\\x00" in rows["malformed"].detail and "\\ud800" in rows["malformed"].detail
    # Only the mapped tag's reject is a data-quality exception on the batch.
    assert len(exceptions(running)) == 1
    assert rejects_by_reason(running.db) == {"malformed": 2, "unknown_tag": 1}
    entries = running.db.ledger.entries_for("ot_connector", "line-1")
    assert [e.event.action for e in entries] == ["connector.reject"]
    assert entries[0].event.actor.user_id == running.ot.account_id
    assert entries[0].event.new["count"] == 3


def test_a_reject_is_written_once_even_if_the_spool_forgot_nothing(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    dead = letter("malformed", "GRAN01/TT-101")
    spool.reject(dead)
    spool.reject(dead)  # as after a crash between the record's commit and the spool clean-up
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert rejects_by_reason(running.db) == {"malformed": 1}


def test_verify_catches_an_edited_or_deleted_reject(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    spool.reject(letter("malformed", "GRAN01/TT-101", b"poison"))
    spool.reject(letter("wrong_type", "GRAN01/TT-101", b"other"))
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()

    def problems() -> set[tuple[str, str | None, str]]:
        report = verify_record(running.db.engine)
        return {(p.table, p.column, p.kind) for p in report.problems if p.table == "ebr_ot_reject"}

    assert problems() == set()
    with running.db.engine.begin() as conn:  # someone with the database login drops the guards
        names = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='ebr_ot_reject'")
        ).scalars()
        for name in list(names):
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        conn.execute(
            text("UPDATE ebr_ot_reject SET reason = 'duplicate' WHERE reason = 'malformed'")
        )
    assert ("ebr_ot_reject", "reason", "column_differs") in problems()
    with running.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ebr_ot_reject WHERE reason = 'wrong_type'"))
    assert ("ebr_ot_reject", None, "missing_row") in problems()


def test_the_rejects_table_is_append_only(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    spool.reject(letter("malformed", "GRAN01/TT-101"))
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    for statement in ("UPDATE ebr_ot_reject SET reason = 'x'", "DELETE FROM ebr_ot_reject"):
        with pytest.raises(DBAPIError, match="append-only"), running.db.engine.begin() as conn:
            conn.execute(text(statement))


def test_a_value_the_database_cannot_take_becomes_a_dead_letter(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=10)
    spool.put(
        [
            Reading("GRAN01/TT-101", Decimal("70.5"), t0, dedup_key="a"),
            Reading("GRAN01/TT-101", Decimal("66.6"), t0 + timedelta(seconds=1), dedup_key="b"),
            Reading("GRAN01/TT-101", Decimal("71.5"), t0 + timedelta(seconds=2), dedup_key="c"),
        ]
    )
    real = running.engine.capture

    def capture(values, source):  # type: ignore[no-untyped-def]
        if any(v.value == Decimal("66.6") for v in values):
            raise DataError("INSERT", {}, Exception("value out of range for the column"))
        return real(values, source=source)

    running.engine.capture = capture
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 2
    forwarder.forward_once()  # records the dead letter made on the way
    assert len(spool) == 0
    assert [v["value"] for v in running.engine.values(BATCH)] == ["70.5", "71.5"]
    assert rejects_by_reason(running.db) == {"unrecordable": 1}
    assert any("unrecordable" in d for d in exceptions(running))


def test_a_sequence_gap_is_an_exception_on_every_batch_the_node_feeds(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    tags.bind("G1/EDGE/GRAN01/TT-101", TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
    spool.reject(letter("sequence_gap", None, scope="G1/EDGE/"))
    spool.reject(letter("sequence_gap", None, scope="OTHER/NODE/"))  # feeds no batch
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert len(exceptions(running)) == 1 and "sequence_gap" in exceptions(running)[0]
    assert rejects_by_reason(running.db) == {"sequence_gap": 2}


# ------------------------------------------------------------------ Sparkplug checks


def spb(seq: int, metrics: list[Metric], ts: int | None = None) -> bytes:
    ms = ts if ts is not None else int(now().timestamp() * 1000)
    return encode_payload(Payload(timestamp=ms, seq=seq, metrics=metrics))


def born(session: SparkplugSession, alias: int = 0) -> int:
    ms = int(now().timestamp() * 1000)
    session.handle_message("spBv1.0/G/NBIRTH/N", spb(0, []), now())
    out = session.handle_message(
        "spBv1.0/G/DBIRTH/N/D",
        spb(1, [Metric(name="T", alias=alias, timestamp=ms, datatype=DOUBLE, value=1.0)]),
        now(),
    )
    assert not out.rebirth and not out.problems
    return ms


def test_sparkplug_alias_zero_is_an_alias() -> None:
    session = SparkplugSession()
    ms = born(session, alias=0)
    out = session.handle_message(
        "spBv1.0/G/DDATA/N/D",
        spb(2, [Metric(alias=0, timestamp=ms + 1, datatype=DOUBLE, value=2.5)]),
        now(),
    )
    assert not out.rebirth and not out.problems
    assert [(r.tag, str(r.value)) for r in out.readings] == [("G/N/D/T", "2.5")]


@pytest.mark.parametrize(
    ("millis", "reason"),
    [
        (2**63 - 1, "bad_timestamp"),
        (MAX_MILLIS + 1, "bad_timestamp"),
        (int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000), "future_timestamp"),
    ],
)
def test_sparkplug_timestamps_are_checked_like_json(millis: int, reason: str) -> None:
    session = SparkplugSession()
    ms = born(session)
    out = session.handle_message(
        "spBv1.0/G/DDATA/N/D",
        spb(
            2,
            [
                Metric(alias=0, timestamp=millis, datatype=DOUBLE, value=9.0),
                Metric(name="U", timestamp=ms, datatype=DOUBLE, value=3.0),  # a good one
            ],
        ),
        now(),
    )
    assert [p.reason for p in out.problems] == [reason]
    assert out.problems[0].tag == "G/N/D/T"
    assert [r.tag for r in out.readings] == ["G/N/D/U"]  # the other metric is a value of its own


def test_sparkplug_sequence_gaps_survive_a_restart_and_redelivery_is_no_gap(spool) -> None:  # type: ignore[no-untyped-def]
    session = SparkplugSession(spool)
    ms = born(session)
    data = spb(2, [Metric(alias=0, timestamp=ms, datatype=DOUBLE, value=2.0)])
    assert not session.handle_message("spBv1.0/G/DDATA/N/D", data, now()).problems
    assert not session.handle_message("spBv1.0/G/DDATA/N/D", data, now()).problems  # again
    restarted = SparkplugSession(spool)  # the connector restarts: state comes from the spool
    out = restarted.handle_message(
        "spBv1.0/G/DDATA/N/D",
        spb(7, [Metric(alias=0, timestamp=ms + 5, datatype=DOUBLE, value=3.0)]),
        now(),
    )
    assert [(p.reason, p.scope) for p in out.problems] == [("sequence_gap", "G/N/")]
    assert "4 message(s) lost" in out.problems[0].detail and out.rebirth
    assert [r.tag for r in out.readings] == ["G/N/D/T"]  # known alias after the restart
    wrapped = restarted.handle_message(
        "spBv1.0/G/DDATA/N/D",
        spb(8, [Metric(alias=0, timestamp=ms + 6, datatype=DOUBLE, value=3.5)]),
        now(),
    )
    assert not wrapped.problems


def test_unknown_alias_is_kept_not_dropped() -> None:
    session = SparkplugSession()
    ms = born(session)
    out = session.handle_message(
        "spBv1.0/G/DDATA/N/D",
        spb(2, [Metric(alias=41, timestamp=ms, datatype=DOUBLE, value=2.0)]),
        now(),
    )
    assert out.rebirth and [p.reason for p in out.problems] == ["unknown_alias"]


# ------------------------------------------------------------------ JSON checks


def reading(tag: str | None = None, **extra: object) -> bytes:
    item: dict[str, object] = {"value": 70.1, "ts": now().isoformat(), **extra}
    if tag is not None:
        item["tag"] = tag
    return json.dumps(item).encode()


def test_a_payload_cannot_choose_another_tag_than_its_topic() -> None:
    with pytest.raises(DecodeError) as refused:
        decode_json_message(
            reading("GRAN01/TT-101"), now(), default_tag="plant/other", payload_tag=False
        )
    assert refused.value.reason == "tag_override" and refused.value.tag == "plant/other"
    same = decode_json_message(reading("T1"), now(), default_tag="T1", payload_tag=False)
    assert [r.tag for r in same.readings] == ["T1"]
    topic_only = decode_json_message(reading(), now(), default_tag="T1", payload_tag=False)
    assert [r.tag for r in topic_only.readings] == ["T1"]
    allowed = decode_json_message(reading("T2"), now(), default_tag="T1", payload_tag=True)
    assert [r.tag for r in allowed.readings] == ["T2"]


def test_a_huge_integer_is_refused_not_raised() -> None:
    with pytest.raises(DecodeError) as refused:
        decode_json_message(
            b'{"tag": "T", "value": ' + b"9" * 5000 + b', "ts": "2026-01-01T00:00:00Z"}', now()
        )
    assert refused.value.reason == "malformed"
    with pytest.raises(DecodeError) as long_text:
        decode_json_message(reading("T", value="1" * 65), now())
    assert long_text.value.reason == "too_long"


@pytest.mark.parametrize("tag", ["a\x00b", "\ud800", "x" * 257, " ", "tab\there"])
def test_tags_a_row_cannot_hold_are_refused(tag: str) -> None:
    with pytest.raises(DecodeError):
        decode_json_message(
            json.dumps({"tag": tag, "value": 1, "ts": now().isoformat()}).encode(), now()
        )


SEQS = [(1, False), (2, False), (2, True), (3, False), (7, False), (8, False), (2, False)]


def test_json_publisher_sequence_gaps(spool) -> None:  # type: ignore[no-untyped-def]
    message = decode_json_message(
        json.dumps(
            [
                {"value": 1, "ts": now().isoformat(), "seq": 5},
                {"value": 2, "ts": now().isoformat(), "seq": 6, "publisher": "PLC-7"},
            ]
        ).encode(),
        now(),
        default_tag="T",
        publisher="plant/T",
    )
    assert message.sequence == [("plant/T", 5, "T"), ("PLC-7", 6, "T")]
    sequences = PublisherSequences(spool)
    steps = [sequences.step("P", s, redelivered=r) for s, r in SEQS]
    assert [(x.lost, x.restarted) for x in steps] == [
        (0, False),  # 1: the first seen starts the count
        (0, False),
        (0, False),  # 2 again, spooled before: a redelivery
        (0, False),
        (3, False),  # 4, 5, 6 lost
        (0, False),
        (2, True),  # back to 2 with new readings: a restart, 0 and 1 lost
    ]
    spool.set_state(PublisherSequences.key("P"), "8")
    assert PublisherSequences(spool).step("P", 10).lost == 1  # remembered across a restart
    with pytest.raises(DecodeError):
        decode_json_message(reading("T", seq="7"), now())


def test_a_dead_letter_the_database_refuses_is_kept_in_minimal_form(  # type: ignore[no-untyped-def]
    running, tags, spool, monkeypatch
) -> None:
    import gxpmes.connectors.forwarder as forwarder_module

    real = forwarder_module.record_rejects

    def picky(db, letters, *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(letter.payload == b"refused by the database" for letter in letters):
            raise DataError("INSERT", {}, Exception("invalid byte sequence"))
        return real(db, letters, *args, **kwargs)

    monkeypatch.setattr(forwarder_module, "record_rejects", picky)
    spool.reject(letter("malformed", "GRAN01/TT-101", b"refused by the database"))
    spool.reject(letter("wrong_type", "GRAN01/TT-101", b"fine"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()  # neither blocks the spool nor the other letter
    assert spool.rejected() == [] and forwarder.counts["rejects_recorded"] == 2
    with running.db.read() as conn:
        rows = {r.reason: r for r in conn.execute(select(RejectRow)).all()}
    assert rows["wrong_type"].payload == b"fine"
    assert rows["malformed"].payload == b"" and "minimal form" in rows["malformed"].detail
    assert rows["malformed"].payload_size == len(b"refused by the database")


def test_a_flood_of_dead_letters_does_not_starve_good_values(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    for i in range(1100):
        spool.reject(letter("malformed", None, f"flood {i}".encode()))
    t0 = now() - timedelta(seconds=5)
    spool.put([Reading("GRAN01/TT-101", Decimal("70.5"), t0, dedup_key="good")])
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 1  # the good value is not behind the whole flood
    assert 0 < spool.rejected_count() <= 100
    forwarder.forward_once()
    assert spool.rejected_count() == 0 and rejects_by_reason(running.db) == {"malformed": 1100}


def _safe_text_reference(value: object, limit: int) -> str:
    """The rule, character by character (what safe_text did before its fast path)."""
    text = value if isinstance(value, str) else str(value)
    text = text[: limit * 2].encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]


@given(st.one_of(st.text(), st.binary(), st.integers()), st.integers(min_value=0, max_value=50))
def test_safe_text_escapes_as_the_character_rule_does(value: object, limit: int) -> None:
    assert safe_text(value, limit) == _safe_text_reference(value, limit)
