"""``gxpmes demo`` runs a whole batch end to end and leaves verifiable output behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared_paths import schemas_dir

from audit.ledger import Ledger
from gxpmes.cli import main
from isa95.b2mml.documents import B2MML


def test_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    schemas = schemas_dir()
    out = tmp_path / "demo"
    env = dict(os.environ, GXPMES_B2MML_SCHEMAS=str(schemas))
    result = subprocess.run(
        [sys.executable, "-m", "gxpmes.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks behaved as expected" in result.stdout
    assert "release refused as it must be" in result.stdout
    assert "Released" in result.stdout and "Europe/Berlin" in result.stdout
    for name in (
        "gxpmes-demo.db",
        "checkpoint.txt",
        "keys/public.pem",
        "B-2026-0001-BatchProductionRecord.xml",
        "B-2026-0001-OperationsPerformance.xml",
    ):
        assert (out / name).exists(), name
    # The last lines name only files the demo really wrote.
    listed = next(line for line in result.stdout.splitlines() if "] output in " in line)
    names = listed.split(": ", 1)[1].split(", ")
    assert "B-2026-0001-BatchProductionRecord.xml" in names and "checkpoint.txt" in names
    assert [n for n in names if not (out / n.rstrip("/")).exists()] == []

    # QA re-verifies the demo's trail independently, with the CLI.
    code = main(
        [
            "audit",
            "verify",
            "--db",
            str(out / "gxpmes-demo.db"),
            "--checkpoint",
            str(out / "checkpoint.txt"),
            "--public-key",
            str(out / "keys" / "public.pem"),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and report["entries"] > 100
    # The demo's 901 captured values are leaves of value blocks (one entry per capture call).
    ledger = Ledger.open(out / "gxpmes-demo.db", read_only=True)
    try:
        blocks = [s for s, _blob in ledger.iter_blocks()]
        assert sum(len(ledger.block_leaves(s)) for s in blocks) == 901
    finally:
        ledger.close()
    code = main(
        [
            "audit",
            "verify",
            "--db",
            str(out / "tampered-copy.db"),
            "--checkpoint",
            str(out / "checkpoint.txt"),
            "--public-key",
            str(out / "keys" / "public.pem"),
            "--json",
        ]
    )
    assert code == 1 and json.loads(capsys.readouterr().out)["problem"] == "hash_mismatch"

    b2mml = B2MML(schemas)
    record = b2mml.read((out / "B-2026-0001-BatchProductionRecord.xml").read_bytes()).model
    assert sum(len(s.values) for s in record.series) == 901


def test_db_upgrade_command(tmp_path: Path, pg_url: str) -> None:
    assert main(["db", "upgrade", "--db", str(tmp_path / "fresh.db")]) == 0
    assert main(["db", "upgrade", "--db", str(tmp_path / "fresh.db")]) == 0  # idempotent
    assert main(["db", "upgrade", "--db", pg_url]) == 0
    from gxpmes.database import Database, schema_revision

    db = Database(pg_url)
    with db.read() as conn:
        from sqlalchemy import text

        stored = conn.execute(text("SELECT version_num FROM gx_alembic_version")).scalar_one()
    assert (stored, stored) == schema_revision(db.engine)  # at the newest migration
    db.close()
