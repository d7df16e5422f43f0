"""``gxpmes verify``: exit codes, one line per problem, ``--json`` and ``--batch``.

The database is ``record_support.build_record``'s (a released batch and one
in execution) with a signed checkpoint kept beside it, as QA would hold it.
Tampered copies are SQLite copies with the triggers dropped. The audit seq a
problem line must name is found here independently: the last entry whose row
images wrote that row.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from record_support import (
    IN_EXECUTION_BATCH,
    RELEASED_BATCH,
    build_record,
    sqlite_copy,
    write_public_pem,
)

from audit.keys import generate_private_key
from audit.note import NoteSigner, public_key_bytes
from gxpmes.cli import main


@dataclass(frozen=True)
class Installation:
    db: Path
    checkpoint: Path
    checkpoint_key: Path  # public.pem of the checkpoint key
    signature_keys: list[Path]  # public.pem of the system signature key(s)

    def args(self, db: Path | str | None = None) -> list[str]:
        keys = [a for k in self.signature_keys for a in ("--signature-key", str(k))]
        return [
            "verify",
            "--db",
            str(db or self.db),
            "--checkpoint",
            str(self.checkpoint),
            "--public-key",
            str(self.checkpoint_key),
            *keys,
        ]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    folder = tmp_path_factory.mktemp("verify-cli")
    plant, record = build_record(str(folder / "record.db"))
    key = generate_private_key()
    checkpoint = folder / "checkpoint.txt"
    checkpoint.write_text(plant.db.ledger.checkpoint(NoteSigner("qa-checkpoint", key)))
    plant.db.close()
    return Installation(
        folder / "record.db",
        checkpoint,
        write_public_pem(public_key_bytes(key.public_key()), folder / "checkpoint.pem"),
        [
            write_public_pem(raw, folder / f"system-{i}.pem")
            for i, raw in enumerate(record.signature_keys.values())
        ],
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def tampered(installation: Installation, folder: Path, *statements: str) -> Path:
    """A copy of the installation's database with ``statements`` applied (no triggers)."""
    path: Path = sqlite_copy(installation.db, folder / "tampered.db")
    with sqlite3.connect(path) as conn:
        for sql in statements:
            assert conn.execute(sql).rowcount == 1, sql
    conn.close()
    return path


def last_writer(db: Path, table: str, key: str) -> int:
    """The seq of the last audit entry carrying an image (or removal) of ``table`` ``key``."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, canonical FROM audit_entry ORDER BY seq").fetchall()
    conn.close()
    found: int | None = None
    for seq, canonical in rows:
        new = json.loads(bytes(canonical))["new"]
        images = new.get("rows", []) if isinstance(new, dict) else []
        for item in images:
            row = item.get("row") or item.get("deleted") or {}
            if item["table"] == table and key in (str(v) for v in row.values()):
                found = seq
    assert found is not None, f"no entry wrote {table} {key}"
    return found


def one(db: Path, sql: str) -> Any:
    with sqlite3.connect(db) as conn:
        value = conn.execute(sql).fetchone()[0]
    conn.close()
    return value


def test_intact_database_exits_0(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *installation.args())
    assert code == 0, "\n".join(out)
    assert out[0].startswith("VERIFIED: ") and "signatures agree with the log" in out[0]
    assert out[1:] == []  # no problem, and no check left undone (no warning)
    assert "Traceback" not in err


def test_tampered_copy_exits_1_with_one_line_per_problem(
    installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exception_id = one(installation.db, "SELECT min(exception_id) FROM ebr_exception")
    # The batch's last value block: its index row says how many values it holds.
    value_seq = one(
        installation.db,
        f"SELECT max(seq) FROM ebr_value_block WHERE batch_id = '{IN_EXECUTION_BATCH}'",
    )
    parameter = one(
        installation.db, f"SELECT min(parameter) FROM ebr_value_block WHERE seq = {value_seq}"
    )
    count = one(
        installation.db,
        f"SELECT count FROM ebr_value_block WHERE seq = {value_seq} AND parameter = '{parameter}'",
    )
    db = tampered(
        installation,
        tmp_path,
        f"UPDATE ebr_batch SET status = 'Rejected' WHERE batch_id = '{RELEASED_BATCH}'",
        f"DELETE FROM ebr_exception WHERE exception_id = '{exception_id}'",
        f"UPDATE ebr_value_block SET count = count + 1 "
        f"WHERE seq = {value_seq} AND parameter = '{parameter}'",
    )
    code, out, err = run(capsys, *installation.args(db))
    assert code == 1 and "Traceback" not in err
    problems = out[1:]
    assert out[0] == f"FAILED: {len(problems)} problem(s)"

    status_seq = last_writer(installation.db, "ebr_batch", RELEASED_BATCH)
    assert (
        f"ebr_batch {RELEASED_BATCH} column status: expected 'Released', found 'Rejected' "
        f"(audit seq {status_seq})" in problems
    )
    exception_seq = last_writer(installation.db, "ebr_exception", exception_id)
    assert any(
        line.startswith(f"ebr_exception {exception_id}: missing row")
        and line.endswith(f"(audit seq {exception_seq})")
        for line in problems
    ), problems
    assert (
        f"ebr_value_block {value_seq}/{parameter} column count: expected {count}, "
        f"found {count + 1} (audit seq {value_seq})" in problems
    )
    # Every other line is a signature the edits broke (the deleted exception and
    # the changed status are in what QA signed), each naming its signature row.
    rest = [
        line
        for line in problems
        if not line.startswith(("ebr_batch ", "ebr_exception ", "ebr_value_block "))
    ]
    assert rest and all(line.startswith("gx_signature ") for line in rest), rest


def test_json_report(
    installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *installation.args(), "--json")
    report = json.loads("\n".join(out))
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert report["ledger"]["ok"] is True and report["ledger"]["entries"] > 0

    db = tampered(
        installation, tmp_path, "UPDATE ebr_lot SET quantity = '9999' WHERE lot_id = 'LAC-L7'"
    )
    code, out, _ = run(capsys, *installation.args(db), "--json")
    report = json.loads("\n".join(out))
    assert code == 1
    assert {"ok", "ledger", "problems"} <= set(report)
    assert report["ok"] is False and report["ledger"]["ok"] is True
    assert report["problems"] == [
        {
            "table": "ebr_lot",
            "key": "LAC-L7",
            "column": "quantity",
            "seq": last_writer(installation.db, "ebr_lot", "LAC-L7"),
            "kind": "column_differs",
            "expected": one(
                installation.db, "SELECT quantity FROM ebr_lot WHERE lot_id = 'LAC-L7'"
            ),
            "found": "9999",
        }
    ]


def test_batch_option_limits_the_record_check_to_one_batch(
    installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The batch's last value block: its index row keeps its last value's server time.
    value_seq = one(
        installation.db,
        f"SELECT max(seq) FROM ebr_value_block WHERE batch_id = '{IN_EXECUTION_BATCH}'",
    )
    parameter = one(
        installation.db, f"SELECT min(parameter) FROM ebr_value_block WHERE seq = {value_seq}"
    )
    db = tampered(
        installation,
        tmp_path,
        f"UPDATE ebr_batch SET closed_at = NULL WHERE batch_id = '{RELEASED_BATCH}'",
        f"UPDATE ebr_value_block SET last_server_ts = '2000-01-01T00:00:00.000000Z' "
        f"WHERE seq = {value_seq} AND parameter = '{parameter}'",
        "UPDATE ebr_equipment SET status = 'Available' WHERE equipment_id = 'GRAN-01'",
    )

    def problems(*extra: str) -> set[tuple[str, str, str | None]]:
        code, out, _ = run(capsys, *installation.args(db), "--json", *extra)
        report = json.loads("\n".join(out))
        assert code == 1 and report["batch"] == (extra[1] if extra else None)
        return {(p["table"], p["key"], p["column"]) for p in report["problems"]}

    batch_row = ("ebr_batch", RELEASED_BATCH, "closed_at")
    value_row = ("ebr_value_block", f"{value_seq}/{parameter}", "last_server_ts")
    equipment = ("ebr_equipment", "GRAN-01", "status")  # master data: checked with every batch
    assert {batch_row, value_row, equipment} <= problems()
    assert problems("--batch", RELEASED_BATCH) == {batch_row, equipment}
    assert problems("--batch", IN_EXECUTION_BATCH) == {value_row, equipment}

    code, out, _ = run(capsys, *installation.args(), "--batch", IN_EXECUTION_BATCH)
    assert code == 0 and f"(batch {IN_EXECUTION_BATCH})" in out[0]


def test_edited_log_is_named_first(
    installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tampered(
        installation,
        tmp_path,
        "UPDATE audit_entry SET canonical = CAST(replace(CAST(canonical AS TEXT), "
        "'\"Released\"', '\"Rejected\"') AS BLOB) "
        f"WHERE seq = {last_writer(installation.db, 'ebr_batch', RELEASED_BATCH)}",
    )
    code, out, _ = run(capsys, *installation.args(db))
    assert code == 1
    assert out[1].startswith("audit log: ") and "hash" in out[1]


@pytest.mark.parametrize("kind", ["missing", "not sqlite", "folder"])
def test_unusable_database_exits_2_with_one_line(
    installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    db = tmp_path / "record.db"
    if kind == "not sqlite":
        db.write_text("these are not the pages of a database\n" * 100)
    elif kind == "folder":
        db.mkdir()
    code, out, err = run(capsys, *installation.args(db))
    assert code == 2 and out == []
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gxpmes: error: ") and str(db) in lines[0], err
    assert "Traceback" not in err
    assert not (kind == "missing" and db.exists())  # verification never creates a database
