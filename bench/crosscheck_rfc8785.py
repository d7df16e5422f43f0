"""Cross-check the compiled payload encoder against the rfc8785 package on generated values.

    python bench/crosscheck_rfc8785.py [--values 1000000] [--seed 1]

Generates flat payloads like the ones the ledger records (ASCII and non-ASCII
member names; strings drawn from every Unicode plane with the characters
encoders disagree on over-represented; integers around ±2**53; Decimals;
aware and naive datetimes; a few floats and lone surrogates) and checks, for
each payload, that the ledger's payload encoder (``audit.entry``: orjson where
it applies, the exact encoder otherwise) writes byte for byte what the
independent ``rfc8785`` package writes for the same content, and refuses
exactly what that content cannot carry. Prints how many values and payloads
were compared and how many took the compiled path; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import rfc8785

import audit.entry as entry_module
from audit.canonical import MAX_SAFE_INTEGER, canonicalize, format_timestamp
from audit.entry import _encode_payload
from audit.errors import CanonicalizationError

TRICKY = [chr(c) for c in range(0x20)] + list(
    '"\\/\x7f\x80\xa0\u2028\u2029\ud7ff\ue000\ufeff\uffff\U00010000\U0001f600\U0010ffff'
)
NAMES = ["batch_id", "parameter", "tag", "value", "unit", "source_ts", "quality", "in_limits"]
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]


def _char(rnd: random.Random) -> str:
    pick = rnd.random()
    if pick < 0.3:
        return rnd.choice(TRICKY)
    if pick < 0.6:
        return chr(rnd.randrange(0x20, 0x7F))
    if pick < 0.85:
        code = rnd.randrange(0x80, 0x10000)
        return chr(code) if not 0xD800 <= code <= 0xDFFF or rnd.random() < 0.02 else "x"
    return chr(rnd.randrange(0x10000, 0x110000))


def _text(rnd: random.Random, size: int) -> str:
    return "".join(_char(rnd) for _ in range(rnd.randrange(size)))


def _scalar(rnd: random.Random) -> Any:
    kind = rnd.randrange(10)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.random() < 0.5
    if kind == 2:
        edge = rnd.choice([0, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**63])
        return edge + rnd.randrange(-3, 4)
    if kind == 3:
        return rnd.randrange(-(10**12), 10**12)
    if kind in (4, 5):
        return _text(rnd, 16)
    if kind == 6:
        return Decimal(rnd.randrange(-(10**9), 10**9)).scaleb(-rnd.randrange(0, 8))
    if kind == 7:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rnd.getrandbits(45))
        zone = rnd.choice(ZONES)
        return moment.astimezone(zone) if rnd.random() < 0.99 else moment.replace(tzinfo=None)
    if kind == 8:
        return rnd.choice(NAMES) + _text(rnd, 3)
    return rnd.uniform(-1e6, 1e6) if rnd.random() < 0.1 else rnd.randrange(1000)


def _payload(rnd: random.Random) -> dict[str, Any]:
    size = rnd.randrange(1, 9)
    names = [rnd.choice(NAMES) if rnd.random() < 0.95 else _text(rnd, 5) for _ in range(size)]
    return {name: _scalar(rnd) for name in names}


def _plain(value: dict[str, Any]) -> dict[str, Any] | None:
    """The payload as rfc8785 input (Decimal and datetime as their text), or None if refused."""
    out = {}
    for name, item in value.items():
        if isinstance(item, Decimal):
            item = str(item)
        elif isinstance(item, datetime):
            if item.utcoffset() is None:
                return None
            item = format_timestamp(item)
        out[name] = item
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000, help="scalar values to compare")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    fallbacks = 0
    real = canonicalize

    def counting(value: Any) -> bytes:
        nonlocal fallbacks
        fallbacks += 1
        return real(value)

    setattr(entry_module, "canonicalize", counting)  # noqa: B010 - count fallbacks
    try:
        return _compare(args.values, args.seed, rnd, real, lambda: fallbacks)
    finally:
        setattr(entry_module, "canonicalize", real)  # noqa: B010


def _compare(limit: int, seed: int, rnd: random.Random, real: Any, fallbacks: Any) -> int:
    values = payloads = agreed_refusals = 0
    started = time.perf_counter()
    while values < limit:
        payload = _payload(rnd)
        values += len(payload)
        payloads += 1
        plain = _plain(payload)
        try:
            theirs = None if plain is None else rfc8785.dumps(plain)
        except (rfc8785.CanonicalizationError, rfc8785.IntegerDomainError, UnicodeError):
            theirs = None  # UnicodeError: its sort key of a lone-surrogate name
        try:
            ours: bytes | None = _encode_payload(payload).encode("utf-8")
        except CanonicalizationError:
            ours = None
        if theirs is None:
            # rfc8785 refuses 2**53 exactly, which JCS (and we) may write: check by the
            # exact encoder instead; everything else it refuses we must refuse too.
            try:
                exact: bytes | None = real(payload)
            except CanonicalizationError:
                exact = None
            if ours != exact:
                print(f"DIFFERENT on a payload rfc8785 refuses: {payload!r}: {ours!r}")
                return 1
            agreed_refusals += ours is None
            continue
        if ours != theirs:
            print(f"DIFFERENT: {payload!r}\n  ours   {ours!r}\n  rfc8785 {theirs!r}")
            return 1
    elapsed = time.perf_counter() - started
    print(
        f"crosscheck: {values:,} values in {payloads:,} payloads byte-identical to rfc8785 "
        f"{version('rfc8785')} (or refused by both: {agreed_refusals:,} payloads); "
        f"{payloads - fallbacks():,} took the compiled path, {fallbacks():,} the exact encoder; "
        f"seed {seed}, {elapsed:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
