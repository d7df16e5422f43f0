"""B2MML benchmark: a BatchProductionRecord with 10,000 data values, written and
XSD-validated, read (bound only, and mapped to models) and round-tripped, each against
lxml parsing the same document (baseline in the same run).

    python bench/bench_b2mml.py [--values 10000] [--schemas DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.batchrecord import BatchProductionRecord, RecordedValue, TagSeries


def record(values: int, tags: int = 10) -> BatchProductionRecord:
    start = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    per_tag = values // tags
    return BatchProductionRecord(
        id="BPR-B-2026-0001",
        batch_id="B-2026-0001",
        material_definition_id="TAB-500",
        record_status="Released",
        creation_date=start,
        series=[
            TagSeries(
                tag=f"PLANT1.GRAN01.TT-{t:03d}.PV",
                unit="Cel",
                values=[
                    RecordedValue(
                        timestamp=start + timedelta(seconds=i),
                        value=str(Decimal(7000 + (i * 7 + t) % 500) / 100),
                        quality="Good",
                    )
                    for i in range(per_tag)
                ],
            )
            for t in range(tags)
        ],
    )


def best(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--schemas",
        default=os.environ.get(
            "GXPMES_B2MML_SCHEMAS",
            str(Path(__file__).resolve().parents[2] / "shared" / "schemas" / "b2mml"),
        ),
    )
    args = parser.parse_args()
    b2mml = B2MML(args.schemas)
    model = record(args.values)
    for version in ("V0701", "V0600"):
        data = b2mml.write(model, version=version)  # warm up: compiles the schema once
        write = best(lambda v=version: b2mml.write(model, version=v), args.repeat)
        parse = best(lambda d=data: etree.fromstring(d), args.repeat)
        read = best(lambda d=data: b2mml.read(d), args.repeat)
        bound = best(lambda d=data: b2mml.read(d, models=False), args.repeat)
        round_trip = best(
            lambda d=data: b2mml.write(b2mml.read(d, models=False), validate=False), args.repeat
        )
        print(
            f"{version}  BatchProductionRecord, {args.values:,} values, {len(data) / 1e6:.1f} MB: "
            f"lxml parse only {parse:.3f} s; ratios to it: "
            f"write+validate {write / parse:.1f}x, "
            f"read (safe parse+validate+bind) {bound / parse:.1f}x, "
            f"read+write {round_trip / parse:.1f}x, "
            f"read mapped to models {read / parse:.1f}x"
        )


if __name__ == "__main__":
    main()
