"""EBR capture throughput (values/s through BatchEngine.capture) against the audit core's
append of the same value blocks, measured in the same run.

    python bench/bench_ebr.py [--values 100000] [--batch 1000] [--rounds 1] [--profile]

Capture writes the values of one call as a value block (one ``value.block``
entry per batch, the values' records as its leaves) plus one ``ebr_value_block``
index row per parameter per block (and an ``ebr_value_key`` row per value that
carries a source key; these values carry none, as a plain API capture).
Baselines, each into a fresh ledger on the same disk, one block per capture
call of the same size:

* ``append_block, same leaves``: ``Ledger.append_block`` of the very leaves
  capture stored (read back), already encoded — the ledger's own floor;
* ``append_block, encoding``: ``append_block`` of the same records as dicts
  (value a Decimal, as capture holds it), encoded by ``audit.blocks.encode_leaves``
  inside the timed part — what any caller that hands the ledger records pays;
* ``append_many, one entry per value``: capture's shape before value blocks.

The baseline ledgers sign a tree head per transaction, as the plant's ledger
that capture writes to does (``--unsigned``: without, the ledger's floor).
Prints wall-clock rates and, because the machine may be shared, the process
CPU time per value of each side (``time.process_time``; it leaves out the
time spent waiting for fsync) and the ratios (capture's rate over the
baseline's: CPU ratio = baseline CPU per value / capture CPU per value).
Rounds alternate the four, each in a fresh database. ``--profile`` prints a
cProfile (CPU-time timer) of one capture run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audit.blocks import CanonicalLeaves, encode_leaves
from audit.entry import Actor, AuditEvent, events_for_objects
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from gxpmes.ebr.engine import CapturedValue
from gxpmes.testing.plant import OT_SOURCE

COLLECTOR = Actor("svc-ot", "OT data collector")
SIGNED = True
"""Baseline ledgers sign a tree head per transaction, as the plant's ledger does."""


def _ledger(path: Path) -> Ledger:
    """A fresh baseline ledger, configured as capture's (a head signer, unless --unsigned)."""
    signer = NoteSigner("bench-heads", generate_private_key()) if SIGNED else None
    return Ledger.open(path, head_signer=signer)


def _capture(workdir: Path, count: int, batch: int, profile: bool) -> tuple[Any, ...]:
    """Capture ``count`` values in calls of ``batch``; returns rates and the leaves written."""
    from ebr_support import HEAT, make_plant

    plant = make_plant(str(workdir / "mes.db"))
    engine = plant.engine
    plant.start_batch("B-1", phases=(HEAT,))
    start = plant.clock() - timedelta(milliseconds=count)  # history, never ahead
    values = [
        CapturedValue(
            "B-1",
            f"{HEAT}/temperature",
            "GRAN01.TT-101.PV",
            Decimal(7000 + i % 400) / 100,
            "Cel",
            start + timedelta(milliseconds=i),
        )
        for i in range(count)
    ]
    chunks = [values[i : i + batch] for i in range(0, len(values), batch)]
    profiler = cProfile.Profile(time.process_time) if profile else None
    began, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    seqs = [engine.capture(chunk, source=OT_SOURCE)[0] for chunk in chunks]
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - began
    used = time.process_time() - cpu
    blocks = [
        (plant.db.ledger.entry(seq).event, CanonicalLeaves(plant.db.ledger.block_leaves(seq)))
        for seq in seqs
    ]
    plant.db.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return count / wall, used / count, blocks


def _append_blocks(workdir: Path, blocks: list[tuple[AuditEvent, CanonicalLeaves]]) -> Any:
    """``Ledger.append_block`` of the same leaves, one block per capture call."""
    count = sum(len(leaves) for _event, leaves in blocks)
    ledger = _ledger(workdir / "blocks-ledger.db")
    began, cpu = time.perf_counter(), time.process_time()
    for event, leaves in blocks:
        ledger.append_block(event, leaves)
    wall = time.perf_counter() - began
    used = time.process_time() - cpu
    ledger.close()
    return count / wall, used / count


def _append_encoding(workdir: Path, blocks: list[tuple[AuditEvent, CanonicalLeaves]]) -> Any:
    """``Ledger.append_block`` of the same records, encoded by the ledger's encoder (timed)."""
    import json

    count = sum(len(leaves) for _event, leaves in blocks)
    ledger = _ledger(workdir / "encoding-ledger.db")
    records = []
    for event, leaves in blocks:
        rows = [json.loads(leaf) for leaf in leaves]
        for row in rows:
            row["value"] = Decimal(row["value"])  # as capture holds it
        records.append((event, rows))
    began, cpu = time.perf_counter(), time.process_time()
    for event, rows in records:
        ledger.append_block(event, encode_leaves(rows))
    wall = time.perf_counter() - began
    used = time.process_time() - cpu
    ledger.close()
    return count / wall, used / count


def _append_entries(workdir: Path, blocks: list[tuple[AuditEvent, CanonicalLeaves]]) -> Any:
    """One ordinary entry per value (``append_many``): capture's shape before value blocks."""
    import json

    count = sum(len(leaves) for _event, leaves in blocks)
    ledger = _ledger(workdir / "entries-ledger.db")
    batches = [
        events_for_objects(
            COLLECTOR,
            "value.capture",
            "process_value",
            [(f"{r['batch_id']}/{r['parameter']}", r) for r in map(json.loads, leaves)],
        )
        for _event, leaves in blocks
    ]
    began, cpu = time.perf_counter(), time.process_time()
    for events in batches:
        ledger.append_many(events)
    wall = time.perf_counter() - began
    used = time.process_time() - cpu
    ledger.close()
    return count / wall, used / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="baseline ledgers without a head signer (capture's ledger signs every head)",
    )
    args = parser.parse_args()
    global SIGNED
    SIGNED = not args.unsigned
    if args.profile:
        workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ebr-"))
        _capture(workdir, args.values, args.batch, profile=True)
        return
    for round_ in range(1, args.rounds + 1):
        workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ebr-"))
        ours, ours_cpu, blocks = _capture(workdir, args.values, args.batch, profile=False)
        print(
            f"round {round_}: {args.values:,} values in calls of {args.batch} "
            f"({len(blocks)} value blocks)"
        )
        print(
            f"  {'capture via BatchEngine':34} {ours:>9,.0f} values/s   "
            f"CPU {ours_cpu * 1e6:6.1f} us/value"
        )
        for label, baseline in (
            ("append_block, same leaves", _append_blocks),
            ("append_block, encoding records", _append_encoding),
            ("append_many, one entry per value", _append_entries),
        ):
            rate, cpu = baseline(workdir, blocks)
            print(
                f"  {label:34} {rate:>9,.0f} values/s   CPU {cpu * 1e6:6.1f} us/value   "
                f"capture/this: wall {ours / rate:.2f}x, CPU {cpu / ours_cpu:.2f}x"
            )


if __name__ == "__main__":
    main()
