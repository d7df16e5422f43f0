"""EBR capture throughput (values/s through BatchEngine.capture) against the audit core's
append of the same value blocks, measured in the same run.

    python bench/bench_ebr.py [--values 100000] [--batch 1000] [--rounds 1] [--profile]

Capture writes the values of one call as a value block (one ``value.block``
entry per batch, the values' records as its leaves) plus one ``ebr_value`` row
per value. The baseline appends the very same leaves (the bytes capture
stored, read back) with ``Ledger.append_block``, one block per call of the
same size, into a fresh ledger on the same disk; a second baseline appends one
ordinary entry per value (``append_many``), the shape capture wrote before
value blocks. Prints wall-clock rates and, because the machine may be shared,
the process CPU time per value of each side (``time.process_time``; it
leaves out the time spent waiting for fsync) and the ratios. Rounds alternate
the three, each in a fresh database. ``--profile`` prints a cProfile (CPU-time
timer) of one capture run instead.
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

from audit.blocks import CanonicalLeaves
from audit.entry import Actor, AuditEvent, events_for_objects
from audit.ledger import Ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.testing.plant import OT_SOURCE

COLLECTOR = Actor("svc-ot", "OT data collector")


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
    ledger = Ledger.open(workdir / "blocks-ledger.db")
    began, cpu = time.perf_counter(), time.process_time()
    for event, leaves in blocks:
        ledger.append_block(event, leaves)
    wall = time.perf_counter() - began
    used = time.process_time() - cpu
    ledger.close()
    return count / wall, used / count


def _append_entries(workdir: Path, blocks: list[tuple[AuditEvent, CanonicalLeaves]]) -> Any:
    """One ordinary entry per value (``append_many``): capture's shape before value blocks."""
    import json

    count = sum(len(leaves) for _event, leaves in blocks)
    ledger = Ledger.open(workdir / "entries-ledger.db")
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
    args = parser.parse_args()
    if args.profile:
        workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ebr-"))
        _capture(workdir, args.values, args.batch, profile=True)
        return
    for round_ in range(1, args.rounds + 1):
        workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ebr-"))
        ours, ours_cpu, blocks = _capture(workdir, args.values, args.batch, profile=False)
        raw, raw_cpu = _append_blocks(workdir, blocks)
        old, old_cpu = _append_entries(workdir, blocks)
        print(
            f"round {round_}: {args.values:,} values in calls of {args.batch} "
            f"({len(blocks)} value blocks)"
        )
        print(
            f"  capture via BatchEngine   {ours:>10,.0f} values/s   "
            f"CPU {ours_cpu * 1e6:6.1f} us/value"
        )
        print(
            f"  append_block, same leaves {raw:>10,.0f} values/s   "
            f"CPU {raw_cpu * 1e6:6.1f} us/value"
            f"   capture/append_block: wall {ours / raw:.2f}x, CPU {raw_cpu / ours_cpu:.2f}x"
        )
        print(
            f"  append_many, one entry per value {old:>10,.0f} values/s   CPU "
            f"{old_cpu * 1e6:6.1f} us/value   capture/append_many: wall {ours / old:.2f}x, "
            f"CPU {old_cpu / ours_cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
