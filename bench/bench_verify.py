"""Full verification of a large audit log: one process vs several, against raw hashing.

    python bench/bench_verify.py --entries 24000000 --heads-every 1000 --workdir DIR
    python bench/bench_verify.py --workdir DIR --keep        # reuse the log built before
    python bench/bench_verify.py --entries N --workdir DIR --build-only  # build now, time later

Building is not what is measured. The log is written directly, not through
``Ledger.append_many``: each entry is encoded by the ledger's own encoder
(:func:`audit.entry.encode_entry`), its leaf and interior hashes come from the
same Merkle code the ledger uses (:func:`audit.merkle.extend_frontier`), and a
tree head signed by :func:`audit.checkpoint.sign_checkpoint` is stored every
``--heads-every`` entries, as the ledger does once per write transaction. The
rows go into the schema the ledger created (its triggers too), in large
transactions with ``synchronous=OFF``: minutes instead of the hours durable
appends of 24M entries take. The result is a log the ledger itself could have
written; the bench checks that a verification of it is INTACT, and then:

* raw: read every row through one driver cursor and SHA-256 it, nothing else
  (the floor any verifier that re-hashes every entry pays);
* ``verify_ledger(..., jobs=1)``: the single-process verifier, head checks on;
* ``verify_ledger(..., jobs=N)``: ranges of whole Merkle subtrees verified by
  ``N`` worker processes (default: every CPU), stitched by the parent.

All three run in the same process and invocation; wall time and CPU time
are printed, with ratios to the raw time. CPU time counts the workers too:
here they are started with ``spawn`` (as children of this process, whose
CPU ``getrusage(RUSAGE_CHILDREN)`` adds up once they exit) instead of the
verifier's default ``forkserver``. On a shared machine CPU time is the
steadier figure; ``CPU / cores`` is what the wall time would be on an idle
machine with perfect overlap. The database is deleted at the end unless
``--keep`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import audit.verify
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV, Actor, AuditEvent, encode_entry
from audit.ledger import Ledger
from audit.merkle import extend_frontier, frontier_root
from audit.note import NoteSigner
from audit.schema import object_key
from audit.verify import verify_ledger

# A fixed, public key, so a log built by an earlier run verifies.
HEAD_SIGNER = NoteSigner(
    "bench-heads", Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench-heads").digest())
)
COLLECTOR = Actor("svc-opcua", "OPC UA collector")
T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
TAGS = 64


def _events(start: int, count: int) -> list[AuditEvent]:
    """~200-byte process-value payloads, as ``bench_audit.py`` uses."""
    return [
        AuditEvent(
            COLLECTOR,
            "capture",
            "process_value",
            f"B-2026-0001/TT-{(start + i) % TAGS:03d}",
            new={
                "batch": "B-2026-0001",
                "phase": "GRANULATION/HEAT",
                "tag": f"PLANT1.GRAN01.TT-{(start + i) % TAGS:03d}.PV",
                "value": Decimal(7000 + (start + i) % 500) / 100,
                "unit": "Cel",
                "quality": "Good",
                "source_ts": T0 + timedelta(milliseconds=start + i),
            },
        )
        for i in range(count)
    ]


def database_files(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]


def build_log(path: Path, entries: int, heads_every: int, *, say: bool = True) -> None:
    """Write a log of ``entries`` entries with a signed head every ``heads_every`` (see above)."""
    for f in database_files(path):
        f.unlink(missing_ok=True)
    ledger = Ledger.open(path, head_signer=HEAD_SIGNER)  # schema, origin, head key registered
    origin = ledger.origin
    ledger.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    keys = {
        f"B-2026-0001/TT-{t:03d}": object_key("process_value", f"B-2026-0001/TT-{t:03d}")
        for t in range(TAGS)
    }
    frontier: list[bytes] = []
    prev = GENESIS_PREV
    sha256 = hashlib.sha256
    started = time.perf_counter()
    commit_every = max(heads_every, 100_000 // heads_every * heads_every)
    conn.execute("BEGIN")
    for start in range(0, entries, heads_every):
        count = min(heads_every, entries - start)
        recorded = T0 + timedelta(seconds=start // heads_every)
        rows = []
        n = start
        for event in _events(start, count):
            canonical = encode_entry(n, recorded, prev, event)
            leaf = sha256(b"\x00" + canonical).digest()
            if n & 1:
                interior = b"".join(extend_frontier(frontier, n, leaf))
            else:
                frontier.append(leaf)
                interior = b""
            rows.append((n, keys[event.object_id], canonical, leaf, interior))
            prev = leaf
            n += 1
        conn.executemany(
            "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        head = Checkpoint(origin, n, frontier_root(frontier), prev, recorded)
        conn.execute(
            "INSERT INTO audit_tree_head (tree_size, note) VALUES (?, ?)",
            (n, sign_checkpoint(head, HEAD_SIGNER)),
        )
        if n % commit_every == 0 or n == entries:
            conn.execute("COMMIT")
            if say and n % 1_000_000 == 0:
                rate = n / (time.perf_counter() - started)
                print(f"  built {n:,} entries ({rate:,.0f}/s)", flush=True)
            if n < entries:
                conn.execute("BEGIN")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def raw_pass(path: Path) -> int:
    """Read every row through one driver cursor and SHA-256 it: the floor."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    sha256 = hashlib.sha256
    count = 0
    cursor = conn.cursor()
    cursor.arraysize = 10_000
    for _seq, canonical, _leaf, _tree in cursor.execute(
        "SELECT seq, canonical, leaf_hash, tree_hashes FROM audit_entry ORDER BY seq"
    ):
        sha256(b"\x00" + canonical).digest()
        count += 1
    conn.close()
    return count


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, run):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = run()
    return label, time.perf_counter() - wall, cpu_seconds() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--heads-every", type=int, default=1000, help="entries per signed head")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", help="folder for the database (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument(
        "--skip-single", action="store_true", help="do not time jobs=1 (only raw and jobs=N)"
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build (and keep) the log, measure nothing: time the passes later with --keep",
    )
    args = parser.parse_args()
    args.keep = args.keep or args.build_only
    audit.verify._START_METHOD = "spawn"  # workers as children: their CPU time is counted
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gxpmes-bench-verify-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"verify-{args.entries}-{args.heads_every}.db"
    print(f"# verification bench  (cpus={os.cpu_count()}, load {os.getloadavg()})")
    try:
        if not (args.keep and path.exists()):
            started = time.perf_counter()
            build_log(path, args.entries, args.heads_every)
            size = sum(f.stat().st_size for f in database_files(path) if f.exists())
            print(
                f"(built {args.entries:,} entries, a head every {args.heads_every:,}, "
                f"{size / 1e9:.2f} GB, in {time.perf_counter() - started:.0f} s: not measured)",
                flush=True,
            )
        if args.build_only:
            return
        ledger = Ledger.open(path, read_only=True)
        results = [timed("raw read + SHA-256", lambda: raw_pass(path))]
        assert results[0][3] == args.entries, results[0][3]
        print(
            f"{results[0][0]:<28} {results[0][1]:8.2f} s wall  ({args.entries / results[0][1]:,.0f}"
            f" entries/s)  CPU {results[0][2]:.1f} s",
            flush=True,
        )
        # jobs=N first: the figure the goal is about, should a long run be cut short.
        plans = [args.jobs] if args.jobs != 1 else []
        if not args.skip_single:
            plans.append(1)
        for jobs in plans:
            cores = min(jobs, os.cpu_count() or 1)
            label, wall, cpu, report = timed(
                f"verify_ledger jobs={jobs}",
                lambda jobs=jobs: verify_ledger(ledger, head_keys=HEAD_SIGNER.verifier, jobs=jobs),
            )
            assert report.ok and report.entries == args.entries, report.summary()
            results.append((label, wall, cpu, report))
            print(
                f"{label:<28} {wall:8.2f} s wall  ({args.entries / wall:,.0f} entries/s, "
                f"{report.heads_checked:,} heads)  {wall / results[0][1]:.2f}x raw wall"
                f"  CPU {cpu:.1f} s ({cpu / results[0][2]:.2f}x raw CPU; "
                f"CPU / {cores} cores {cpu / cores:.1f} s)",
                flush=True,
            )
        ledger.close()
        if len(results) == 3:
            print(f"jobs={args.jobs} vs jobs=1: {results[2][1] / results[1][1]:.2f}x faster (wall)")
        print(f"load average after: {os.getloadavg()}")
    finally:
        if not args.keep:
            for f in database_files(path):
                f.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
