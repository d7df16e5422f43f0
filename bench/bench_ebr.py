"""EBR capture throughput (values/s through BatchEngine.capture) against the audit core's raw
batch-append rate of the same values, measured in the same run.

    python bench/bench_ebr.py [--values 100000] [--batch 1000]

Prints wall-clock rates and, because the machine may be shared, the process
CPU time per value of each side (``time.process_time``; it leaves out the
time spent waiting for fsync) and both ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.testing.plant import OT_SOURCE


def main() -> None:
    from ebr_support import HEAT, make_plant

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ebr-"))
    plant = make_plant(str(workdir / "mes.db"))
    engine = plant.engine
    plant.start_batch("B-1", phases=(HEAT,))
    start = plant.clock() - timedelta(milliseconds=args.values)  # history, never ahead
    values = [
        CapturedValue(
            "B-1",
            f"{HEAT}/temperature",
            "GRAN01.TT-101.PV",
            Decimal(7000 + i % 400) / 100,
            "Cel",
            start + timedelta(milliseconds=i),
        )
        for i in range(args.values)
    ]
    chunks = [values[i : i + args.batch] for i in range(0, len(values), args.batch)]
    began, cpu = time.perf_counter(), time.process_time()
    for chunk in chunks:
        engine.capture(chunk, source=OT_SOURCE)
    ours = args.values / (time.perf_counter() - began)
    ours_cpu = (time.process_time() - cpu) / args.values
    plant.db.close()

    ledger = Ledger.open(workdir / "raw-ledger.db")
    collector = Actor("svc-ot", "OT data collector")
    events = [
        [
            AuditEvent(
                collector,
                "value.capture",
                "process_value",
                f"B-1/{HEAT}/temperature",
                new={
                    "tag": v.tag,
                    "value": v.value,
                    "unit": v.unit,
                    "source_ts": v.source_ts,
                    "server_ts": v.source_ts,
                    "quality": v.quality,
                },
            )
            for v in chunk
        ]
        for chunk in chunks
    ]
    began, cpu = time.perf_counter(), time.process_time()
    for batch_events in events:
        ledger.append_many(batch_events)
    raw = args.values / (time.perf_counter() - began)
    raw_cpu = (time.process_time() - cpu) / args.values
    ledger.close()
    print(
        f"capture via BatchEngine {ours:>10,.0f} values/s   audit append_many of the same entries "
        f"{raw:>10,.0f}/s   ratio {ours / raw:.2f}x  "
        f"({args.values:,} values, batches of {args.batch})"
    )
    print(
        f"CPU per value: capture {ours_cpu * 1e6:.1f} us   append_many {raw_cpu * 1e6:.1f} us"
        f"   ratio (rate by CPU time) {raw_cpu / ours_cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
