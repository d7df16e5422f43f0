"""Cost of automatic checkpoints on ingest, as a ratio measured in one run.

    python bench/bench_anchoring.py [--ingest 200000] [--batch 1000] [--rounds 3]
                                    [--every-seconds 1.0]

Durable batched appends (SQLite, WAL, synchronous=FULL, a signed tree head per
batch — the production setting) of ~200-byte process values, with and without
a :class:`~audit.anchoring.publisher.CheckpointPublisher` signing a checkpoint
every ``--every-seconds`` (and every 10,000 entries) and publishing it to a
write-once directory sink (fsync'd file and folder, receipt stored in the
database). Rounds alternate; the best of each is compared. The TSA and witness
sinks are network round trips on the sink thread and cost ingest no more than
the directory sink does; they are left out so the figure is this machine's.

Target (issue 15): the ratio anchored / plain is at least 0.95.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_audit import HEAD_SIGNER, fresh, process_values

from audit.anchoring.directory import DirectorySink
from audit.anchoring.publisher import CheckpointPublisher
from audit.ledger import Ledger


def timed(
    path: Path, total: int, batch: int, anchor_to: Path | None, every_seconds: float
) -> tuple[float, int, int]:
    """``(entries/s, checkpoints published, largest lag seen)`` of one ingest run."""
    ledger = Ledger.open(fresh(path), head_signer=HEAD_SIGNER)
    batches = [process_values(i, batch) for i in range(0, total, batch)]
    publisher = None
    if anchor_to is not None:
        for old in anchor_to.iterdir():
            old.chmod(0o644)
            old.unlink()
        publisher = CheckpointPublisher(
            ledger, [DirectorySink(anchor_to)], every_seconds=every_seconds
        )
        publisher.start()
    lag = 0
    started = time.perf_counter()
    for events in batches:
        ledger.append_many(events)
        if publisher is not None:
            lag = max(lag, publisher.status()[0].lag_entries)
    rate = total / (time.perf_counter() - started)
    published = 0
    if publisher is not None:
        publisher.stop(final_checkpoint=False)
        published = sum(1 for _ in anchor_to.iterdir()) if anchor_to else 0
    ledger.close()
    return rate, published, lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every-seconds", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sink = workdir / "worm"
        sink.mkdir()
        plain, anchored = [], []
        for _ in range(args.rounds):
            plain.append(timed(workdir / "plain.db", args.ingest, args.batch, None, 1.0))
            anchored.append(
                timed(workdir / "anchored.db", args.ingest, args.batch, sink, args.every_seconds)
            )
    best_plain = max(r for r, _p, _l in plain)
    best = max(anchored)
    seconds = args.ingest / best[0]
    print(
        f"ingest {args.ingest:,} entries in batches of {args.batch:,}, best of {args.rounds}:\n"
        f"  plain (head signer)          {best_plain:>10,.0f} entries/s\n"
        f"  checkpoints every {args.every_seconds:g} s      {best[0]:>10,.0f} entries/s   "
        f"ratio {best[0] / best_plain:.3f}  ({best[1]} checkpoints in {seconds:.1f} s, "
        f"largest sink lag {best[2]:,} entries)"
    )


if __name__ == "__main__":
    main()
