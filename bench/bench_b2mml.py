"""B2MML benchmark: a BatchProductionRecord with 10,000 data values, written and
XSD-validated, read (bound only, mapped to models, streamed) and round-tripped, each
as a ratio to lxml parsing the same bytes in the same run (CPU time, best of --repeat).
With --memory-mb N, a generated N MB record is read streamed in a child process and its
peak memory (VmHWM) compared with the document's size.

    python bench/bench_b2mml.py [--values 10000] [--schemas DIR] [--repeat 5]
                                [--memory-mb 200] [--memory-mode stream|memory]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.b2mml.mapping.trees import xsd_datetime
from isa95.b2mml.schemas import NAMESPACES
from isa95.b2mml.stream import read_batch_record
from isa95.batchrecord import BatchProductionRecord, RecordedValue, TagSeries

START = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def _value(i: int, t: int) -> str:
    return str(Decimal(7000 + (i * 7 + t) % 500) / 100)


def record(values: int, tags: int = 10) -> BatchProductionRecord:
    per_tag = values // tags
    return BatchProductionRecord(
        id="BPR-B-2026-0001",
        batch_id="B-2026-0001",
        material_definition_id="TAB-500",
        record_status="Released",
        creation_date=START,
        series=[
            TagSeries(
                tag=f"PLANT1.GRAN01.TT-{t:03d}.PV",
                unit="Cel",
                values=[
                    RecordedValue(
                        timestamp=START + timedelta(seconds=i),
                        value=_value(i, t),
                        quality="Good",
                    )
                    for i in range(per_tag)
                ],
            )
            for t in range(tags)
        ],
    )


def record_xml(values: int, version: str, tags: int = 10) -> Iterator[bytes]:
    """The bytes ``B2MML.write(record(values, tags), version=...)`` gives, generated
    piece by piece (checked against the writer in main), for documents too big to build."""
    yield (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f'<BatchProductionRecord xmlns="{NAMESPACES[version]}">\n'
        "  <ID>BPR-B-2026-0001</ID>\n  <EntryID>BPR-B-2026-0001</EntryID>\n"
        "  <ObjectType>Batch Production Record</ObjectType>\n"
        f"  <CreationDate>{xsd_datetime(START)}</CreationDate>\n"
        "  <BatchID>B-2026-0001</BatchID>\n"
        "  <MaterialDefinitionID>TAB-500</MaterialDefinitionID>\n"
        "  <RecordStatus>Released</RecordStatus>\n  <DataSets>\n"
    ).encode()
    per_tag = values // tags
    for t in range(tags):
        yield (
            "    <DataSet>\n"
            f"      <EntryID>BPR-B-2026-0001/DS{t}</EntryID>\n"
            "      <ObjectType>Data Set</ObjectType>\n      <TagSpecification>\n"
            "        <TagIndex>1</TagIndex>\n        <DataType>decimal</DataType>\n"
            "        <UnitOfMeasure>Cel</UnitOfMeasure>\n"
            f"        <DataSource>PLANT1.GRAN01.TT-{t:03d}.PV</DataSource>\n"
            "      </TagSpecification>\n"
        ).encode()
        for first in range(0, per_tag, 1000):
            yield "".join(
                "      <OrderedData>\n"
                f"        <TimeValue>{xsd_datetime(START + timedelta(seconds=i))}</TimeValue>\n"
                "        <DataValue>\n          <TagIndex>1</TagIndex>\n"
                f"          <Value>{_value(i, t)}</Value>\n"
                "          <Quality>Good</Quality>\n        </DataValue>\n"
                "      </OrderedData>\n"
                for i in range(first, min(first + 1000, per_tag))
            ).encode()
        yield b"    </DataSet>\n"
    yield b"  </DataSets>\n</BatchProductionRecord>\n"


def best(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Least CPU time (time.process_time) of ``repeat`` runs: the machine is shared."""
    timings = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        timings.append(time.process_time() - started)
    return min(timings)


_CHILD = r"""
import sys, time
from isa95.b2mml.documents import B2MML
from isa95.b2mml.stream import read_batch_record

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM")

schemas, path, warm, mode = sys.argv[1:5]
b2mml = B2MML(schemas)
read_batch_record(b2mml, warm)
with open(warm, "rb") as handle:
    b2mml.read(handle.read())
before = peak()
started = time.process_time()
if mode == "stream":
    document = read_batch_record(b2mml, path)
else:
    with open(path, "rb") as handle:
        document = b2mml.read(handle.read())
cpu = time.process_time() - started
print(before, peak(), cpu, sum(len(s.values) for s in document.model.series))
"""


def memory(schemas: str, megabytes: int, mode: str, version: str = "V0701") -> None:
    """Peak memory of reading a generated record of about ``megabytes`` MB, in a child."""
    folder = Path(tempfile.mkdtemp(prefix="bench-b2mml-"))
    try:
        values = megabytes * 1_000_000 // 237 // 10 * 10  # ≈ 237 bytes per value
        path, warm = folder / "record.xml", folder / "warm.xml"
        with path.open("wb") as out:
            for piece in record_xml(values, version):
                out.write(piece)
        warm.write_bytes(b"".join(record_xml(100, version)))
        size = path.stat().st_size
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, schemas, str(path), str(warm), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        before, peak, cpu, read = result.stdout.split()
        grown = int(peak) - int(before)
        print(
            f"{version}  {mode} read of a {size / 1e6:.0f} MB BatchProductionRecord "
            f"({int(read):,} values) in a child process: CPU {float(cpu):.1f} s; peak memory "
            f"(VmHWM) grew by {grown / 1e6:.0f} MB = {grown / size:.2f}x the document "
            f"(whole process {int(peak) / 1e6:.0f} MB = {int(peak) / size:.2f}x; "
            f"{int(before) / 1e6:.0f} MB before the read)"
        )
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-mb", type=int, default=0, help="also measure memory (slow)")
    parser.add_argument("--memory-mode", choices=("stream", "memory"), default="stream")
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
        if b"".join(record_xml(args.values, version)) != data:
            raise SystemExit("record_xml no longer matches the writer's output")
        streamed = read_batch_record(b2mml, data)
        if streamed.models != b2mml.read(data).models:
            raise SystemExit("the streamed read differs from the in-memory read")
        parse = best(lambda d=data: etree.fromstring(d), args.repeat)
        write = best(lambda v=version: b2mml.write(model, version=v), args.repeat)
        read = best(lambda d=data: b2mml.read(d), args.repeat)
        bound = best(lambda d=data: b2mml.read(d, models=False), args.repeat)
        stream = best(lambda d=data: read_batch_record(b2mml, d), args.repeat)
        round_trip = best(
            lambda d=data: b2mml.write(b2mml.read(d, models=False), validate=False), args.repeat
        )
        print(
            f"{version}  BatchProductionRecord, {args.values:,} values, {len(data) / 1e6:.1f} MB: "
            f"lxml parse only {parse:.3f} s CPU; ratios to it: "
            f"read mapped to models {read / parse:.1f}x ({read:.3f} s), "
            f"read (safe parse+validate+bind) {bound / parse:.1f}x ({bound:.3f} s), "
            f"streamed read to models {stream / parse:.1f}x ({stream:.3f} s), "
            f"read+write {round_trip / parse:.1f}x, "
            f"write+validate {write / parse:.1f}x"
        )
    if args.memory_mb:
        memory(args.schemas, args.memory_mb, args.memory_mode)


if __name__ == "__main__":
    main()
