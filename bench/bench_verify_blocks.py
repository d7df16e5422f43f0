"""Full verification of a 14-day batch's worth of process values held in value blocks.

    python bench/bench_verify_blocks.py --values 24000000 --block 1000 --workdir DIR

Issue 16's sizing: one 14-day bioreactor batch is about 24M values. Captured
in value blocks (docs/audit.md, "Value blocks"), that batch is a log of
``values / block`` entries whose leaves are the values. The log is built
through the ledger itself (``Ledger.append_block``, a signed tree head per
block, the ledger's own pragmas), which is not what is measured; then, in the
same run:

* raw: read every stored leaf and SHA-256 it (``SHA-256(0x00 || leaf)``, the
  leaf hash), nothing else — the floor any verifier that re-hashes every value
  pays;
* ``verify_ledger``: the whole log — every entry re-hashed and chained, every
  stored interior hash and signed head checked, every block's root recomputed
  from its stored leaves.

Wall and CPU time are printed with the ratio to raw. The database is deleted
at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bench_audit import BLOCK_EVENT, HEAD_SIGNER, value_leaves

from audit.blocks import LEAF_SEPARATOR
from audit.ledger import Ledger
from audit.verify import verify_ledger


def build(path: Path, values: int, block: int) -> None:
    ledger = Ledger.open(path, head_signer=HEAD_SIGNER)
    template = value_leaves(0, block)  # the bench measures verification, not encoding
    try:
        for start in range(0, values, block):
            ledger.append_block(BLOCK_EVENT, template[: min(block, values - start)])
    finally:
        ledger.close()


def raw_pass(path: Path) -> int:
    """Read every block's leaves and hash each leaf; returns the number of leaves."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    count = 0
    sha256 = hashlib.sha256
    try:
        for (leaves,) in conn.execute("SELECT leaves FROM audit_block ORDER BY seq"):
            for leaf in bytes(leaves).split(LEAF_SEPARATOR):
                sha256(b"\x00" + leaf).digest()
                count += 1
    finally:
        conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=2_400_000)
    parser.add_argument("--block", type=int, default=1000, help="values per block")
    parser.add_argument("--workdir", help="folder for the database (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gxpmes-bench-vblocks-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"vblocks-{args.values}-{args.block}.db"
    print(f"# value-block verification bench  (cpus={os.cpu_count()}, load {os.getloadavg()})")
    try:
        if not (args.keep and path.exists()):
            started = time.perf_counter()
            build(path, args.values, args.block)
            size = sum(
                Path(f"{path}{s}").stat().st_size
                for s in ("", "-wal")
                if Path(f"{path}{s}").exists()
            )
            print(
                f"(built {args.values:,} values in blocks of {args.block:,}, {size / 1e9:.2f} GB, "
                f"in {time.perf_counter() - started:.0f} s: not measured)",
                flush=True,
            )
        wall, cpu = time.perf_counter(), time.process_time()
        leaves = raw_pass(path)
        raw_wall, raw_cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert leaves == args.values, leaves
        print(f"raw read + SHA-256 of every value  {raw_wall:8.2f} s wall  CPU {raw_cpu:.1f} s")
        ledger = Ledger.open(path, read_only=True)
        wall, cpu = time.perf_counter(), time.process_time()
        report = verify_ledger(ledger, head_keys=HEAD_SIGNER.verifier)
        full_wall, full_cpu = time.perf_counter() - wall, time.process_time() - cpu
        ledger.close()
        assert report.ok, report.summary()
        print(
            f"verify_ledger (whole log)          {full_wall:8.2f} s wall  CPU {full_cpu:.1f} s  "
            f"({args.values / full_wall:,.0f} values/s; {report.entries:,} entries, "
            f"{report.heads_checked:,} heads)  {full_wall / raw_wall:.2f}x raw wall, "
            f"{full_cpu / raw_cpu:.2f}x raw CPU"
        )
        print(f"load average after: {os.getloadavg()}")
    finally:
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
