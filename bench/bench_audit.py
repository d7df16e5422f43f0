"""Audit core benchmarks, each printed as a ratio to a baseline measured in the same run.

    python bench/bench_audit.py [--entries 1000000] [--ingest 200000] [--batch 1000]

* ingest: durable batched appends of ~200-byte process-value payloads (SQLite,
  WAL, synchronous=FULL) vs raw ``sqlite3.executemany`` of the same canonical
  bytes into a plain (seq, payload) table with the same pragmas and commits;
  then the same appends with a head signer (one signed tree head per batch)
  vs without.
* verify: full verification of a log of ``--entries`` entries (built in
  batches of ``--batch``, each with its signed tree head) vs raw hashing
  (``hashlib.sha256`` of every stored entry, nothing else); then the same
  verification with the head key (every head checked) vs without.
* proofs: inclusion proof generation and verification in that log, side by
  side with pymerkle 7 (``InmemoryTree``) over the same entries.
* blocks (``--only blocks`` runs just this): value blocks — ``append_block`` of
  ``--block`` process values per entry, one durable transaction per block,
  given as canonical bytes (checked) and as records (encoded in the timed
  loop), vs raw ``sqlite3.executemany`` of the same value bytes one row per
  value, same pragmas and commit size; alternated rounds, CPU per value.
  With ``--pg-url`` (an admin URL; a fresh database is made and dropped)
  also PostgreSQL: ``--writers`` processes appending blocks into one ledger
  vs the same processes inserting the same bytes with psycopg
  ``executemany``, one row per value.

Timings are wall-clock seconds on this machine; rerun to compare. The ingest
comparison also prints process CPU time per entry (``time.process_time``),
the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.blocks import encode_leaves
from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from audit.merkle import check_inclusion
from audit.note import NoteSigner
from audit.verify import verify_ledger

# A fixed, public key, so a log built by an earlier run verifies: the bench
# measures signing and checking, not key handling.
HEAD_SIGNER = NoteSigner(
    "bench-heads", Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench-heads").digest())
)

COLLECTOR = Actor("svc-opcua", "OPC UA collector")
T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def process_values(start: int, count: int) -> list[AuditEvent]:
    """Events whose ``new`` payload is a ~200-byte process value record."""
    return [
        AuditEvent(
            COLLECTOR,
            "capture",
            "process_value",
            f"B-2026-0001/TT-{(start + i) % 64:03d}",
            new={
                "batch": "B-2026-0001",
                "phase": "GRANULATION/HEAT",
                "tag": f"PLANT1.GRAN01.TT-{(start + i) % 64:03d}.PV",
                "value": Decimal(7000 + (start + i) % 500) / 100,
                "unit": "Cel",
                "quality": "Good",
                "source_ts": T0 + timedelta(milliseconds=start + i),
            },
        )
        for i in range(count)
    ]


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def timed_ingest(path: Path, total: int, batch: int, signer: NoteSigner | None = None) -> float:
    """Entries per second of durable ``append_many`` batches into a fresh ledger."""
    ledger = Ledger.open(fresh(path), head_signer=signer)
    batches = [process_values(i, batch) for i in range(0, total, batch)]
    started, cpu = time.perf_counter(), time.process_time()
    for events in batches:
        ledger.append_many(events)
    rate = total / (time.perf_counter() - started)
    CPU_PER_ENTRY[path.name] = (time.process_time() - cpu) / total
    ledger.close()
    return rate


# Process CPU seconds per entry of the last timed run per database name: steadier than wall
# time on a shared machine (it leaves out waiting for fsync and for other processes).
CPU_PER_ENTRY: dict[str, float] = {}


def bench_ingest(workdir: Path, total: int, batch: int) -> dict[str, float]:
    ours = timed_ingest(workdir / "ingest.db", total, batch)
    ledger = Ledger.open(workdir / "ingest.db", read_only=True)
    payloads = [row[1] for row in ledger.iter_raw_rows()]
    ledger.close()
    payload_bytes = statistics.mean(len(p) for p in payloads)

    raw_name = "raw.db"
    raw = sqlite3.connect(fresh(workdir / raw_name), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    rows = [[(i + j, payloads[i + j]) for j in range(batch)] for i in range(0, total, batch)]
    started, cpu = time.perf_counter(), time.process_time()
    for chunk in rows:
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO t VALUES (?, ?)", chunk)
        raw.execute("COMMIT")
    baseline = total / (time.perf_counter() - started)
    CPU_PER_ENTRY[raw_name] = (time.process_time() - cpu) / total
    raw.close()
    return {"ours": ours, "baseline": baseline, "entry_bytes": payload_bytes}


def bench_signed_ingest(workdir: Path, total: int, batch: int, rounds: int = 3) -> dict[str, float]:
    """Ingest with and without a head signer, alternated, best of ``rounds`` each."""
    plain, signed = [], []
    for _ in range(rounds):
        plain.append(timed_ingest(workdir / "plain.db", total, batch))
        signed.append(timed_ingest(workdir / "signed.db", total, batch, HEAD_SIGNER))
    return {"plain": max(plain), "signed": max(signed)}


# ------------------------------------------------------------------ value blocks

BLOCK_EVENT = AuditEvent(
    COLLECTOR, "capture.block", "batch", "B-2026-0001", new={"phase": "GRANULATION/HEAT"}
)


def value_leaves(start: int, count: int) -> list[bytes]:
    """Canonical bytes of ``count`` process value records (the ingest bench's payloads)."""
    return list(encode_leaves(value_records(start, count)))


def value_records(start: int, count: int) -> list[dict[str, object]]:
    return [event.new for event in process_values(start, count)]


def timed_blocks(path: Path, blocks: list[list[bytes]] | list[list[dict[str, object]]]) -> float:
    """Values per second of durable ``append_block`` calls, one transaction per block."""
    ledger = Ledger.open(fresh(path))
    total = sum(len(b) for b in blocks)
    started, cpu = time.perf_counter(), time.process_time()
    for block in blocks:
        leaves = block if isinstance(block[0], bytes) else encode_leaves(block)  # type: ignore[arg-type]
        ledger.append_block(BLOCK_EVENT, leaves)  # type: ignore[arg-type]
    rate = total / (time.perf_counter() - started)
    CPU_PER_ENTRY[path.name] = (time.process_time() - cpu) / total
    ledger.close()
    return rate


def timed_raw_values(path: Path, blocks: list[list[bytes]]) -> float:
    """Raw ``executemany`` of the same value bytes, one row per value, a commit per block."""
    raw = sqlite3.connect(fresh(path), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    rows, n = [], 0
    for block in blocks:
        rows.append([(n + j, leaf) for j, leaf in enumerate(block)])
        n += len(block)
    started, cpu = time.perf_counter(), time.process_time()
    for chunk in rows:
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO t VALUES (?, ?)", chunk)
        raw.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    CPU_PER_ENTRY[path.name] = (time.process_time() - cpu) / n
    raw.close()
    return rate


def bench_blocks(workdir: Path, total: int, block: int, rounds: int) -> dict[str, list[float]]:
    """Blocks from bytes, blocks from records, raw rows: alternated, ``rounds`` each."""
    leaves = [value_leaves(i, min(block, total - i)) for i in range(0, total, block)]
    records = [value_records(i, min(block, total - i)) for i in range(0, total, block)]
    out: dict[str, list[float]] = {k: [] for k in ("bytes", "records", "raw")}
    cpu: dict[str, list[float]] = {f"{k}_cpu": [] for k in out}
    for _ in range(rounds):
        out["bytes"].append(timed_blocks(workdir / "blocks.db", leaves))
        cpu["bytes_cpu"].append(CPU_PER_ENTRY["blocks.db"])
        out["raw"].append(timed_raw_values(workdir / "raw-values.db", leaves))
        cpu["raw_cpu"].append(CPU_PER_ENTRY["raw-values.db"])
        out["records"].append(timed_blocks(workdir / "blocks-records.db", records))
        cpu["records_cpu"].append(CPU_PER_ENTRY["blocks-records.db"])
    out["leaf_bytes"] = [statistics.mean(len(x) for b in leaves for x in b)]
    return {**out, **cpu}


def _pg_block_writer(
    url: str, first: int, count: int, block: int, start: Any, cpu_out: Any
) -> None:
    ledger = Ledger.open(url)
    blocks = [
        value_leaves(i, min(block, first + count - i)) for i in range(first, first + count, block)
    ]
    start.wait()
    cpu = time.process_time()
    for leaves in blocks:
        ledger.append_block(BLOCK_EVENT, leaves)
    cpu_out.put(time.process_time() - cpu)
    ledger.close()


def _pg_raw_writer(url: str, first: int, count: int, block: int, start: Any, cpu_out: Any) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    rows = [
        [(i + j, leaf) for j, leaf in enumerate(value_leaves(i, min(block, first + count - i)))]
        for i in range(first, first + count, block)
    ]
    with psycopg.connect(conninfo) as conn:
        start.wait()
        cpu = time.process_time()
        for chunk in rows:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO raw_values VALUES (%s, %s)", chunk)
            conn.commit()
        cpu_out.put(time.process_time() - cpu)


def _pg_run(target: Any, url: str, total: int, block: int, writers: int) -> tuple[float, float]:
    """Values per second of ``writers`` processes, and their CPU seconds per value."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(writers + 1)
    cpu_out = ctx.Queue()
    share = -(-total // writers // block) * block
    procs = [
        ctx.Process(
            target=target,
            args=(url, w * share, min(share, total - w * share), block, start, cpu_out),
        )
        for w in range(writers)
        if w * share < total
    ]
    for proc in procs:
        proc.start()
    start.wait()  # the writers have built their values
    started = time.perf_counter()
    cpu = sum(cpu_out.get() for _ in procs)
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {proc.exitcode}")
    return total / (time.perf_counter() - started), cpu / total


def bench_blocks_pg(
    admin_url: str, total: int, block: int, writers: int, rounds: int
) -> dict[str, list[float]]:
    """PostgreSQL: ``writers`` processes appending blocks vs inserting rows, in fresh databases."""
    import uuid

    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    out: dict[str, list[float]] = {k: [] for k in ("ours", "raw", "ours_1")}
    cpu: dict[str, list[float]] = {f"{k}_cpu": [] for k in out}
    try:
        for _ in range(rounds):
            for kind, count in (("ours", writers), ("raw", writers), ("ours_1", 1)):
                name = f"gxpmes_bench_{uuid.uuid4().hex[:10]}"
                with admin.connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {name}"))
                url = admin.url.set(database=name).render_as_string(hide_password=False)
                try:
                    if kind == "raw":
                        engine = create_engine(url)
                        with engine.begin() as conn:
                            conn.execute(
                                text(
                                    "CREATE TABLE raw_values "
                                    "(seq BIGINT PRIMARY KEY, payload BYTEA NOT NULL)"
                                )
                            )
                        engine.dispose()
                        rate, per_value = _pg_run(_pg_raw_writer, url, total, block, count)
                    else:
                        Ledger.open(url).close()  # schema made once, before the writers start
                        rate, per_value = _pg_run(_pg_block_writer, url, total, block, count)
                    out[kind].append(rate)
                    cpu[f"{kind}_cpu"].append(per_value)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()
    return {**out, **cpu}


def report_blocks(result: dict[str, list[float]], block: int) -> None:
    best = {k: max(result[k]) for k in ("bytes", "records", "raw")}
    ratios = [b / r for b, r in zip(result["bytes"], result["raw"], strict=True)]
    rec_ratios = [b / r for b, r in zip(result["records"], result["raw"], strict=True)]
    print(
        f"blocks   {best['bytes']:>10,.0f} values/s  (append_block of {block} canonical values "
        f"of {result['leaf_bytes'][0]:.0f} B, checked; durable, a transaction per block)"
        f"   raw sqlite executemany of the same bytes {best['raw']:>10,.0f} rows/s"
        f"   ratio per round {', '.join(f'{r:.2f}' for r in ratios)}x"
    )
    print(
        f"blocks   {best['records']:>10,.0f} values/s from records (encoded in the timed loop)"
        f"   ratio per round {', '.join(f'{r:.2f}' for r in rec_ratios)}x"
    )
    cpu = {k: statistics.median(result[f"{k}_cpu"]) for k in ("bytes", "records", "raw")}
    print(
        f"blocks   CPU per value {cpu['bytes'] * 1e6:.2f} us "
        f"(from records {cpu['records'] * 1e6:.2f} us)   "
        f"raw executemany {cpu['raw'] * 1e6:.2f} us   ratio (rate by CPU time) "
        f"{cpu['raw'] / cpu['bytes']:.2f}x (from records {cpu['raw'] / cpu['records']:.2f}x)"
        "   (medians)"
    )


def build_log(path: Path, entries: int, batch: int) -> Ledger:
    if path.exists():
        old = Ledger.open(path, read_only=True)
        if not old.tree_heads():
            fresh(path)  # a log from before tree heads: rebuild it with them
        old.close()
    ledger = Ledger.open(path, head_signer=HEAD_SIGNER)
    have = ledger.size()
    for start in range(have, entries, batch):
        ledger.append_many(process_values(start, min(batch, entries - start)))
    return ledger


def bench_verify(ledger: Ledger) -> dict[str, float]:
    started = time.perf_counter()
    report = verify_ledger(ledger, head_keys=HEAD_SIGNER.verifier)
    ours = time.perf_counter() - started
    assert report.ok, report.summary()
    started = time.perf_counter()
    assert verify_ledger(ledger).ok
    without_heads = time.perf_counter() - started
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for _seq, canonical, _leaf, _tree in ledger.iter_raw_rows():
        sha256(b"\x00" + canonical).digest()
    baseline = time.perf_counter() - started
    return {
        "ours": ours,
        "baseline": baseline,
        "entries": report.entries,
        "heads": report.heads_checked,
        "without_heads": without_heads,
    }


def bench_proofs(ledger: Ledger, samples: int) -> dict[str, float]:
    size = ledger.size()
    rng = random.Random(7)
    indexes = [rng.randrange(size) for _ in range(samples)]
    started = time.perf_counter()
    proofs = [ledger.prove_inclusion(i, size) for i in indexes]
    generate = (time.perf_counter() - started) / samples
    started = time.perf_counter()
    for proof in proofs:
        check_inclusion(proof.path, proof.tree_size, proof.root, proof.leaf_index, proof.leaf_hash)
    check = (time.perf_counter() - started) / samples
    result = {
        "generate": generate,
        "verify": check,
        "path": statistics.mean(len(p.path) for p in proofs),
    }

    try:
        from pymerkle import InmemoryTree, verify_inclusion
    except ImportError:
        return result
    tree = InmemoryTree(algorithm="sha256")
    started = time.perf_counter()
    for _seq, canonical, _leaf, _tree in ledger.iter_raw_rows():
        tree.append_entry(canonical)
    result["pymerkle_build"] = time.perf_counter() - started
    assert tree.get_root(size) == proofs[0].root, "pymerkle and gxpmes disagree on the root"
    started = time.perf_counter()
    theirs = [tree.prove_inclusion(i + 1, size) for i in indexes]
    result["pymerkle_generate"] = (time.perf_counter() - started) / samples
    root = tree.get_root(size)
    started = time.perf_counter()
    for i, proof in zip(indexes, theirs, strict=True):
        verify_inclusion(tree.get_leaf(i + 1), root, proof)
    result["pymerkle_verify"] = (time.perf_counter() - started) / samples
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size for verify/proofs")
    parser.add_argument("--ingest", type=int, default=200_000, help="entries for the ingest run")
    parser.add_argument("--batch", type=int, default=1000, help="entries per append_many")
    parser.add_argument("--samples", type=int, default=1000, help="inclusion proofs to time")
    parser.add_argument("--workdir", help="folder for the databases (default: a temp dir)")
    parser.add_argument(
        "--only",
        choices=["all", "ingest", "blocks"],
        default="all",
        help="ingest: stop after the first ingest comparison; blocks: only the value blocks",
    )
    parser.add_argument("--values", type=int, default=200_000, help="values for the block runs")
    parser.add_argument("--block", type=int, default=1000, help="values per block")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of block runs")
    parser.add_argument(
        "--pg-url",
        help="PostgreSQL admin URL for the block runs (fresh databases are made and dropped), "
        "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--writers", type=int, default=4, help="PostgreSQL writer processes")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gxpmes-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# audit benchmarks  (cpus={os.cpu_count()}, workdir={workdir})")

    if args.only in ("all", "blocks"):
        report_blocks(bench_blocks(workdir, args.values, args.block, args.rounds), args.block)
        if args.pg_url:
            pg = bench_blocks_pg(args.pg_url, args.values, args.block, args.writers, args.rounds)
            ratios = [o / r for o, r in zip(pg["ours"], pg["raw"], strict=True)]
            print(
                f"blocks   PostgreSQL, {args.writers} writer processes: {max(pg['ours']):>10,.0f} "
                f"values/s (1 writer {max(pg['ours_1']):,.0f}/s)   raw psycopg executemany, "
                f"{args.writers} processes: {max(pg['raw']):>10,.0f} rows/s   ratio per round "
                f"{', '.join(f'{r:.2f}' for r in ratios)}x"
            )
            ours_cpu, raw_cpu = (statistics.median(pg[f"{k}_cpu"]) for k in ("ours", "raw"))
            print(
                f"blocks   PostgreSQL writers' CPU per value {ours_cpu * 1e6:.2f} us   raw "
                f"{raw_cpu * 1e6:.2f} us (client processes only; medians)"
            )
        if args.only == "blocks":
            return

    ingest = bench_ingest(workdir, args.ingest, args.batch)
    print(
        f"ingest   {ingest['ours']:>10,.0f} entries/s  (entry {ingest['entry_bytes']:.0f} B, "
        f"batch {args.batch}, durable)   raw sqlite executemany {ingest['baseline']:>10,.0f} rows/s"
        f"   ratio {ingest['ours'] / ingest['baseline']:.2f}x"
    )
    ours_cpu, raw_cpu = CPU_PER_ENTRY["ingest.db"], CPU_PER_ENTRY["raw.db"]
    print(
        f"ingest   CPU per entry {ours_cpu * 1e6:.1f} us   raw executemany {raw_cpu * 1e6:.1f} us"
        f"   ratio (rate by CPU time) {raw_cpu / ours_cpu:.2f}x"
    )
    if args.only == "ingest":
        return

    signed = bench_signed_ingest(workdir, args.ingest, args.batch)
    print(
        f"ingest   {signed['signed']:>10,.0f} entries/s with a signed tree head per batch"
        f"   without {signed['plain']:>10,.0f} entries/s   ratio "
        f"{signed['signed'] / signed['plain']:.2f}x   (best of 3 each, alternated)"
    )

    started = time.perf_counter()
    ledger = build_log(workdir / "log.db", args.entries, args.batch)
    print(f"(built log of {ledger.size():,} entries in {time.perf_counter() - started:.1f} s)")
    verify = bench_verify(ledger)
    print(
        f"verify   {verify['ours']:>10.2f} s for {verify['entries']:,} entries "
        f"and {verify['heads']:,} signed tree heads "
        f"({verify['entries'] / verify['ours']:,.0f}/s)   "
        f"raw read+sha256 {verify['baseline']:.2f} s"
        f"   ratio {verify['ours'] / verify['baseline']:.2f}x of raw time"
        f"   (without head checks {verify['without_heads']:.2f} s)"
    )
    proofs = bench_proofs(ledger, args.samples)
    line = (
        f"proof    generate {proofs['generate'] * 1e3:.3f} ms   "
        f"verify {proofs['verify'] * 1e3:.3f} ms"
        f"   (path {proofs['path']:.1f} hashes)"
    )
    if "pymerkle_generate" in proofs:
        line += (
            f"   pymerkle 7: generate {proofs['pymerkle_generate'] * 1e3:.3f} ms, verify "
            f"{proofs['pymerkle_verify'] * 1e3:.3f} ms (in-memory tree built in "
            f"{proofs['pymerkle_build']:.1f} s)   ratio generate "
            f"{proofs['generate'] / proofs['pymerkle_generate']:.2f}x, verify "
            f"{proofs['verify'] / proofs['pymerkle_verify']:.2f}x"
        )
    print(line)
    ledger.close()


if __name__ == "__main__":
    main()
