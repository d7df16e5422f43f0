"""The compiled payload encoder writes exactly RFC 8785, or hands over to the exact encoder.

Three independent references: :func:`audit.canonical.canonicalize` (the exact
encoder), the ``rfc8785`` package (an independent RFC 8785 implementation),
and the RFC's own number table. ``bench/crosscheck_rfc8785.py`` runs the
same comparison on millions of generated payloads.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from audit.canonical import MAX_SAFE_INTEGER, canonicalize, format_timestamp, number_to_json
from audit.entry import GENESIS_PREV, Actor, AuditEvent, _encode_payload, encode_entry
from audit.errors import CanonicalizationError

# Characters where JSON encoders disagree: controls, quote and backslash, DEL,
# the JavaScript line separators, the edges of the surrogate block, non-BMP.
TRICKY = '\x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x20"\\/\x7f\x80\xa0\u2028\u2029\ud7ff\ue000\ufeff\uffff\U00010000\U0001f600\U0010ffff'  # noqa: E501
texts = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=12)
keys = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=6)
ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
integers = st.integers(-(2**64), 2**64) | st.sampled_from(
    [MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER - 1, 2**53, 0]
)
scalars = (
    st.none()
    | st.booleans()
    | integers
    | texts
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=-5))))
    | st.floats()
)
flat = st.dictionaries(ascii_keys | keys, scalars, max_size=8)


def _plain(value: Any) -> Any:
    """``value`` with Decimals and datetimes as the strings RFC 8785 input would carry."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CanonicalizationError("not finite")
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _reference(value: Any) -> bytes | None:
    """The rfc8785 package's bytes, or None where it (or our input rules) refuse the value."""
    try:
        plain = _plain(value)
    except CanonicalizationError:
        return None
    try:
        return rfc8785.dumps(plain)
    except (rfc8785.CanonicalizationError, rfc8785.IntegerDomainError, rfc8785.FloatDomainError):
        return None


@settings(max_examples=600)
@given(flat)
@example({"\U0001f600": 1, "\ufb33": 2})  # UTF-16 order differs from code point order
@example({"a": "\ud800"})  # lone surrogate
@example({"n": MAX_SAFE_INTEGER + 1})  # 2**53: written by JCS, refused by the fast path
@example({"n": 68294714393637184})  # a double whose JCS text is another integer
@example({"x": 1e21, "y": 1e-7, "z": -0.0})  # floats: ECMAScript form
@example({"t": datetime(2026, 1, 1)})
def test_fast_payload_equals_exact_encoder_and_rfc8785(value: dict[Any, Any]) -> None:
    try:
        exact = canonicalize(value)
    except CanonicalizationError as exc:
        with pytest.raises(CanonicalizationError) as caught:
            _encode_payload(value)
        assert caught.value.path == exc.path  # the same error, pointing at the same member
        return
    assert _encode_payload(value).encode("utf-8") == exact
    reference = _reference(value)
    # The rfc8785 package refuses 2**53 (an exact double JCS may write); otherwise it agrees.
    if reference is not None:
        assert reference == exact


@given(st.dictionaries(ascii_keys, st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | texts))
def test_typical_records_take_the_compiled_path(value: dict[str, Any]) -> None:
    """ASCII names, safe integers and strings without lone surrogates never fall back."""
    calls: list[object] = []
    real = canonicalize

    def spy(arg: object) -> bytes:
        calls.append(arg)
        return real(arg)

    try:
        text = _with_canonicalize(spy, value)
    except CanonicalizationError:
        assert any(_has_lone_surrogate(v) for v in value.values() if isinstance(v, str))
        return
    assert calls == []
    assert text.encode("utf-8") == canonicalize(value)


def _has_lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _with_canonicalize(replacement: Any, value: dict[str, Any]) -> str:
    import audit.entry as entry_module

    saved = canonicalize
    setattr(entry_module, "canonicalize", replacement)  # noqa: B010 - spy on the fallback
    try:
        return _encode_payload(value)
    finally:
        setattr(entry_module, "canonicalize", saved)  # noqa: B010


def test_every_character_is_escaped_and_sorted_as_rfc8785_does() -> None:
    """Every code point, in blocks: as text in a value and as member names sorted together."""
    for start in range(0, 0x110000, 0x1000):
        chars = [chr(code) for code in range(start, start + 0x1000)]
        if start == 0xD000:  # the surrogates have no UTF-8 form: refused, not written
            with pytest.raises(CanonicalizationError, match="surrogate"):
                _encode_payload({"k": chr(0xD800)})
            with pytest.raises(CanonicalizationError, match="surrogate"):
                _encode_payload({chr(0xDFFF): 0})
            chars = [c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF]
        chars += ["\U0001f600", "\ufb33", "\x7f", "\u2028"]  # mixed with other planes
        value: dict[str, Any] = {"~text": "".join(chars), **dict.fromkeys(chars, 0)}
        assert _encode_payload(value).encode("utf-8") == rfc8785.dumps(value), hex(start)


# RFC 8785 Appendix B (also in test_canonical.py): the exact encoder's number form agrees with
# the rfc8785 package on every row; the compiled path never sees a float.
@pytest.mark.parametrize(
    "bits",
    [
        "0000000000000001",
        "7fefffffffffffff",
        "4340000000000000",
        "4430000000000000",
        "44b52d02c7e14af5",
        "44b52d02c7e14af6",
        "44b52d02c7e14af7",
        "444b1ae4d6e2ef4e",
        "444b1ae4d6e2ef50",
        "3eb0c6f7a0b5ed8c",
        "3eb0c6f7a0b5ed8d",
        "41b3de4355555553",
        "becbf647612f3696",
        "43143ff3c1cb0959",
    ],
)
def test_number_table_agrees_with_rfc8785_package(bits: str) -> None:
    number = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert number_to_json(number).encode() == rfc8785.dumps(number)
    assert _encode_payload({"x": number}).encode() == rfc8785.dumps({"x": number})


@given(
    seq=st.integers(0, 2**40),
    new=flat,
    reason=st.none() | st.text(min_size=1, max_size=20).filter(str.strip),
)
def test_whole_entries_match_rfc8785_package(
    seq: int, new: dict[Any, Any], reason: str | None
) -> None:
    event = AuditEvent(
        Actor("u1", "Ann"), "value.capture", "process_value", "B/P", new=new, reason=reason
    )
    stamp = datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    try:
        ours = encode_entry(seq, stamp, GENESIS_PREV, event)
    except CanonicalizationError:
        assert _reference(new) is None or canonicalize_refuses(new)
        return
    entry = {
        "v": 1,
        "seq": seq,
        "recorded_at": format_timestamp(stamp),
        "prev": GENESIS_PREV.hex(),
        "actor": {"id": "u1", "name": "Ann"},
        "action": "value.capture",
        "object": {"type": "process_value", "id": "B/P"},
        "old": None,
        "new": new,
        "reason": reason,
        "client_tz": "UTC",
    }
    reference = _reference(entry)
    if reference is not None:
        assert ours == reference


def canonicalize_refuses(value: Any) -> bool:
    try:
        canonicalize(value)
    except CanonicalizationError:
        return True
    return False


def test_crosscheck_script_agrees_on_generated_payloads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The million-value cross-check of bench/, run here on 20,000 values."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "crosscheck_rfc8785.py"
    spec = importlib.util.spec_from_file_location("crosscheck_rfc8785", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr("sys.argv", ["crosscheck", "--values", "20000", "--seed", "7"])
    assert module.main() == 0
    out = capsys.readouterr().out
    assert "byte-identical to rfc8785" in out
    assert " took the compiled path" in out and not out.startswith("DIFFERENT")
