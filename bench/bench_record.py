"""Record verification (``gxpmes verify``) of one batch with many captured values, against
ledger-only verification (``audit verify``) of the same database, measured in the same run.

    python bench/bench_record.py [--values 1000000] [--chunk 10000] [--out-of-limit 12]
                                 [--db PATH] [--profile]

The database holds one batch executed end to end: its procedural elements,
weighings, ``--values`` process values captured through ``BatchEngine.capture``
in chunks of ``--chunk`` (``--out-of-limit`` of them outside the recipe's
limits, each raising an exception that QA assesses with a signature), phase
signatures, the review and the release. ``--db PATH`` keeps the database (and
its system key, in ``PATH.key``) and reuses it on the next run, so repeated
measurements skip the build. ``--profile`` adds a cProfile of record
verification.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.db import open_engine
from audit.keys import public_key_bytes
from audit.ledger import Ledger
from audit.verify import verify_ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.identity.signatures import key_id_of
from gxpmes.records.signatures import check_signatures
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import BALANCE, BLEND, HEAT, MIX, OT_SOURCE, TestPlant, build_plant
from isa95.common import Quantity

T = TypeVar("T")
BATCH = "B-BENCH-0001"
# (parameter, tag, unit, low, high): the recipe's limits, see gxpmes.testing.plant
PARAMETERS = (
    (f"{HEAT}/temperature", "GRAN01.TT-101.PV", "Cel", 65, 75),
    (f"{MIX}/speed", "GRAN01.SC-101.PV", "rpm", 100, 140),
    (f"{MIX}/time", "GRAN01.TM-101.PV", "min", 8, 12),
    (f"{BLEND}/speed", "BLEND01.SC-201.PV", "rpm", 100, 140),
)


def _weigh(plant: TestPlant, material: str, lot: str, target: str, actual: str) -> str:
    del target  # the bill of materials sets it
    return plant.engine.weigh(
        BATCH,
        phase=HEAT,
        material_id=material,
        lot_id=lot,
        actual=Decimal(actual),
        balance_id=BALANCE,
        performer=plant.creds("op1"),
    )


def build(path: Path, values: int, chunk: int, out_of_limit: int) -> None:
    """Execute, review and release one batch holding ``values`` captured values."""
    began = time.perf_counter()
    plant = build_plant(str(path))
    engine = plant.engine
    plant.start_batch(BATCH, phases=(HEAT, MIX, BLEND))
    for weighing in (
        _weigh(plant, "API-PARA", "API-L1", "20.000", "20.010"),
        _weigh(plant, "LACTOSE", "LAC-L7", "78.000", "78.020"),
    ):
        engine.verify_weighing(weighing, plant.creds("op2"))
        engine.charge(BATCH, weighing, plant.creds("op1"))
    start = plant.clock()
    every = max(1, values // out_of_limit) if out_of_limit else 0
    for first in range(0, values, chunk):
        batch = []
        for i in range(first, min(first + chunk, values)):
            parameter, tag, unit, low, high = PARAMETERS[i % len(PARAMETERS)]
            number = Decimal(low * 100 + (i * 37) % ((high - low) * 100)) / 100
            if every and i % every == every - 1:
                number = Decimal(high + 1 + i % 3)  # out of limit: an exception for review
            batch.append(
                CapturedValue(
                    BATCH, parameter, tag, number, unit, start + timedelta(milliseconds=i)
                )
            )
        engine.capture(batch, source=OT_SOURCE)
        plant.clock.advance(seconds=chunk / 1000)
        done = first + len(batch)
        if done % (chunk * 10) == 0 or done == values:
            rate = done / (time.perf_counter() - began)
            print(f"  captured {done:,} values ({rate:,.0f}/s overall)", flush=True)
    for path_ in (HEAT, MIX, BLEND):
        engine.complete_phase(BATCH, path_, plant.creds("op1"))
        engine.verify_phase(BATCH, path_, plant.creds("op2"))
    engine.complete_batch(plant.sessions["op1"], BATCH, Quantity(value=Decimal("98"), unit="kg"))
    items = [i for i in engine.review_by_exception(BATCH) if i.kind.startswith("exception")]
    for item in items:
        engine.assess_exception(item.item_id, plant.creds("qa1"), comment="no impact, within PAR")
    engine.complete_review(BATCH, plant.creds("qa1"))
    plant.review_trail(BATCH)
    engine.release(BATCH, plant.creds("qa2"))
    key = plant.signatures._key
    assert key is not None
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    Path(f"{path}.key").write_text(raw.hex())
    plant.db.close()
    print(
        f"built {path}: {values:,} values, {len(items)} exceptions assessed, released "
        f"in {time.perf_counter() - began:.0f} s",
        flush=True,
    )


def _timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """``(result, wall seconds, CPU seconds of this process)``: on a shared machine the
    CPU time is the steadier figure (the wall time includes waiting for a core)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, load average {load:.1f} at start"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--out-of-limit", type=int, default=12)
    parser.add_argument("--db", type=Path, help="keep the database here (reused if present)")
    parser.add_argument("--profile", action="store_true", help="cProfile record verification")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="gxpmes-bench-record-")) / "mes.db"
    if not path.exists():
        build(path, args.values, args.chunk, args.out_of_limit)
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(Path(f"{path}.key").read_text()))
    public = public_key_bytes(key.public_key())
    signature_keys = {key_id_of(public): public}
    print(_machine(), flush=True)

    engine = open_engine(path, read_only=True)
    try:
        ledger_report, ledger_wall, ledger_cpu = _timed(
            lambda: verify_ledger(Ledger(engine, create=False))
        )
        assert ledger_report.ok, ledger_report.summary()
        # The signature part alone, to say where the record's time goes.
        (checked, problems), sig_wall, sig_cpu = _timed(
            lambda: check_signatures(engine, signature_keys, None)
        )
        assert not problems, problems[:3]
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        report, record_wall, record_cpu = _timed(
            lambda: verify_record(engine, signature_keys=signature_keys)
        )
        if profiler is not None:
            profiler.disable()
        assert report.ok, "\n".join(report.lines())
    finally:
        engine.dispose()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    rest_wall = record_wall - ledger_wall - sig_wall
    rest_cpu = record_cpu - ledger_cpu - sig_cpu
    print(
        f"{'':40}{'wall s':>9}{'CPU s':>9}\n"
        f"{'ledger only (audit verify)':40}{ledger_wall:9.2f}{ledger_cpu:9.2f}"
        f"  {ledger_report.entries:,} entries\n"
        f"{'whole record (gxpmes verify)':40}{record_wall:9.2f}{record_cpu:9.2f}"
        f"  {report.rows_checked:,} rows, {report.signatures_checked} signatures\n"
        f"{'  of which signatures (measured alone)':40}{sig_wall:9.2f}{sig_cpu:9.2f}"
        f"  {checked} signatures\n"
        f"{'  of which replay + table comparison':40}{rest_wall:9.2f}{rest_cpu:9.2f}"
        f"  (record - ledger - signatures)\n"
        f"{'ratio record / ledger':40}"
        f"{record_wall / ledger_wall:8.2f}x{record_cpu / ledger_cpu:8.2f}x"
        f"  goal: whole record < 15 s for 1,000,000 values"
    )


if __name__ == "__main__":
    main()
