"""Every edit of every record table is caught by ``verify_record`` — on SQLite and PostgreSQL.

One realistic database per backend (``record_support.build_record``: a
released batch and one in execution, rows in every projected table). For
each projected table: each column of one row changed to another value of its
type, a row deleted, a forged copy of a row inserted under a new key. On
SQLite each edit is made on a copy of the file with every trigger dropped;
on PostgreSQL in place, as the owner with the table's triggers disabled, and
undone afterwards. Verification must fail and name exactly the edited row —
the table, the key, the column for a changed cell, the audit seq of the
entry that wrote the row — and nothing else but the signatures the edit broke.
An edit left behind by an earlier test would show up as a problem on another
row, so the in-place PostgreSQL runs check their own clean-up as they go.

A changed primary-key cell is a row the log never wrote plus a row missing,
not a changed column: the key is how a row is found.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from record_support import (
    RecordDb,
    Tamper,
    build_record,
    entry_wrote,
    pg_database,
    sqlite_copy,
    tamper,
    tampering,
    verify,
    write_public_pem,
)
from sqlalchemy import Engine, text

import gxpmes.records.verify as record_verify
from audit.db import open_engine
from audit.schema import LEDGER_TABLES
from gxpmes.cli import main
from gxpmes.privileges import VERSION_TABLE
from gxpmes.records.replay import RecordProblem
from gxpmes.records.tables import NOT_PROJECTED, projected
from gxpmes.records.verify import RecordReport

pytestmark = pytest.mark.slow

TABLES = sorted(projected())


def _cases(columns: str) -> list[tuple[str, str, str | None]]:
    cases: list[tuple[str, str, str | None]] = []
    for name in TABLES:
        spec = projected()[name]
        if columns == "all":
            updated = list(spec.columns)
        else:
            # Every column kind PostgreSQL stores differently from text, plus one text column.
            updated = [
                c
                for c in spec.columns
                if c in spec.key or c in spec.boolean or c in spec.binary or c == spec.seq_column
            ]
            updated += [c for c in spec.columns if c not in updated][:1]
        cases += [(name, "update", c) for c in updated]
        cases += [(name, "delete", None), (name, "insert", None)]
    return cases


def _id(case: tuple[str, str, str | None]) -> str:
    table, action, column = case
    return f"{table}-{action}" + (f"-{column}" if column else "")


SQLITE_CASES = _cases("all")
PG_CASES = _cases("pg")


@dataclass(frozen=True)
class Built:
    record: RecordDb
    unguarded: Path | None = None  # SQLite: a copy without triggers, tampered copies start here


@pytest.fixture(scope="module")
def sqlite_record(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("record")
    plant, record = build_record(str(folder / "record.db"))
    plant.db.close()
    return Built(record, sqlite_copy(folder / "record.db", folder / "unguarded.db"))


@pytest.fixture(scope="module")
def pg_record() -> Iterator[Built]:
    with pg_database() as url:
        plant, record = build_record(url)
        plant.db.close()
        yield Built(record)


def assert_caught(report: RecordReport, change: Tamper, engine: Engine) -> None:
    """Verification failed and named exactly the changed row (and broken signatures only)."""
    assert not report.ok, f"{change.table} {change.action} {change.column}: not caught"
    assert report.ledger.ok, report.ledger.summary()  # the log itself was not touched
    on_table = [p for p in report.problems if p.table == change.table and p.kind != "signature"]
    found = {(p.key, p.column, p.kind) for p in on_table}
    assert found == change.expected, "\n".join(report.lines())
    others = [p for p in report.problems if p not in on_table]
    assert all(p.kind == "signature" for p in others), "\n".join(report.lines())
    for problem in on_table:
        if problem.kind in ("column_differs", "missing_row"):
            # The seq printed is the entry that last wrote this row.
            assert problem.seq is not None
            assert entry_wrote(engine, problem.seq, change.table, problem.key), problem
        assert change.table in problem.line() and problem.key in problem.line()
        if problem.column:
            assert problem.column in problem.line()


def _tampered_sqlite(
    built: Built, folder: Path, table: str, action: str, column: str | None
) -> tuple[Path, Tamper]:
    """A copy of the SQLite record with one edit; returns (path, what changed)."""
    assert built.unguarded is not None
    path = sqlite_copy(built.unguarded, folder / "tampered.db", drop_triggers=False)
    engine = open_engine(path)
    try:
        with tampering(engine, table) as conn:
            change = tamper(conn, projected()[table], action, column)
    finally:
        engine.dispose()
    return path, change


def test_every_projected_table_holds_rows(sqlite_record: Built) -> None:
    # A new table the scenario leaves empty would make its tamper tests vacuous.
    with sqlite3.connect(sqlite_record.record.url) as conn:
        empty = [
            t for t in TABLES if conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] == 0
        ]
    assert empty == []


def test_every_table_is_a_projection_or_accounted_for(sqlite_record: Built) -> None:
    # A table added without a decision (projected, or why not) fails here.
    with sqlite3.connect(sqlite_record.record.url) as conn:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    accounted = set(projected()) | set(NOT_PROJECTED) | set(LEDGER_TABLES) | {VERSION_TABLE}
    assert tables - accounted == set()
    assert set(projected()) <= tables


def test_untouched_sqlite_record_verifies(sqlite_record: Built, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    record = sqlite_record.record
    assert sqlite_record.unguarded is not None
    for url in (record.url, str(sqlite_record.unguarded)):
        report = verify(url, record)
        assert report.ok, "\n".join(report.lines())
        assert report.rows_checked > 0 and report.signatures_checked > 0
    pems = [
        arg
        for i, raw in enumerate(record.signature_keys.values())
        for arg in ("--signature-key", str(write_public_pem(raw, tmp_path / f"key{i}.pem")))
    ]
    assert main(["verify", "--db", record.url, *pems]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VERIFIED") and "warning" not in out, out  # heads checked too


@pytest.mark.parametrize(("table", "action", "column"), SQLITE_CASES, ids=map(_id, SQLITE_CASES))
def test_sqlite_edit_is_caught(
    sqlite_record: Built, tmp_path: Path, table: str, action: str, column: str | None
) -> None:
    path, change = _tampered_sqlite(sqlite_record, tmp_path, table, action, column)
    report = verify(str(path), sqlite_record.record)
    engine = open_engine(path, read_only=True)
    try:
        assert_caught(report, change, engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("control", "table", "column"),
    [("compare_rows", "ebr_batch", "status"), ("compare_value_rows", "ebr_value", "tag")],
)
def test_removing_the_table_comparison_lets_the_edit_through(
    sqlite_record: Built,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    control: str,
    table: str,
    column: str,
) -> None:
    # The controls this module tests (the general comparison, and the fast one
    # for process values): without them an unsigned cell changes unnoticed,
    # and assert_caught says so.
    path, change = _tampered_sqlite(sqlite_record, tmp_path, table, "update", column)

    def no_comparison(*args: object) -> Iterator[RecordProblem]:
        return iter(())

    monkeypatch.setattr(record_verify, control, no_comparison)
    report = verify(str(path), sqlite_record.record)
    assert report.ok
    engine = open_engine(path, read_only=True)
    try:
        with pytest.raises(AssertionError, match="not caught"):
            assert_caught(report, change, engine)
    finally:
        engine.dispose()


def _edit_sqlite(built: Built, folder: Path, sql: str, *params: object) -> Path:
    assert built.unguarded is not None
    path: Path = sqlite_copy(built.unguarded, folder / "edited.db", drop_triggers=False)
    with sqlite3.connect(path) as conn:
        assert conn.execute(sql, params).rowcount == 1
    conn.close()
    return path


def _signatures(path: Path | str) -> list[tuple[str, str, int, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT signature_id, meaning, audit_seq, manifest FROM gx_signature "
            "ORDER BY created_order"
        ).fetchall()
    conn.close()
    return rows


# The log's own tables: an edit is the ledger's to find (hashes, chain, Merkle
# tree, signed tree heads), except object_key — a lookup column no hash covers,
# checked against the canonical entry (its own test below). {mid}: an entry in
# the middle that stores Merkle hashes; {tail}: the last entry.
_LAST_HEAD = "(SELECT max(tree_size) FROM audit_tree_head)"
LOG_EDITS = {
    "entry-seq": "UPDATE audit_entry SET seq = seq + 1000000 WHERE seq = {mid}",
    "entry-canonical": "UPDATE audit_entry SET canonical = CAST(replace(CAST(canonical AS TEXT), "
    "'\"seq\":{mid}', '\"seq\": {mid}') AS BLOB) WHERE seq = {mid}",
    "entry-leaf_hash": "UPDATE audit_entry SET leaf_hash = zeroblob(32) WHERE seq = {mid}",
    "entry-tree_hashes": "UPDATE audit_entry SET tree_hashes = zeroblob(length(tree_hashes)) "
    "WHERE seq = {mid}",
    "entry-delete": "DELETE FROM audit_entry WHERE seq = {mid}",
    "entry-delete-tail": "DELETE FROM audit_entry WHERE seq = {tail}",
    "entry-insert-copy": "INSERT INTO audit_entry SELECT seq + 1, object_key, canonical, "
    "leaf_hash, tree_hashes FROM audit_entry WHERE seq = {tail}",
    "head-note": "UPDATE audit_tree_head SET note = replace(note, 'gxpmes', 'gxpmeX') "
    f"WHERE tree_size = {_LAST_HEAD}",
    "head-tree_size": f"UPDATE audit_tree_head SET tree_size = tree_size + 1 "
    f"WHERE tree_size = {_LAST_HEAD}",
    "head-delete-tail": f"DELETE FROM audit_tree_head WHERE tree_size = {_LAST_HEAD}",
    "head-insert-copy": "INSERT INTO audit_tree_head SELECT tree_size + 1, note "
    f"FROM audit_tree_head WHERE tree_size = {_LAST_HEAD}",
    "log_meta-value": "UPDATE audit_log_meta SET value = value || 'x'",
}


@pytest.mark.parametrize("edit", sorted(LOG_EDITS))
def test_sqlite_log_edit_is_caught(sqlite_record: Built, tmp_path: Path, edit: str) -> None:
    with sqlite3.connect(sqlite_record.record.url) as conn:
        tail = conn.execute("SELECT max(seq) FROM audit_entry").fetchone()[0]
        mid = conn.execute(
            "SELECT max(seq) FROM audit_entry WHERE seq < ? AND length(tree_hashes) >= 64",
            (tail // 2,),
        ).fetchone()[0]
    conn.close()
    path = _edit_sqlite(sqlite_record, tmp_path, LOG_EDITS[edit].format(mid=mid, tail=tail))
    report = verify(str(path), sqlite_record.record)
    assert not report.ok and not report.ledger.ok, "\n".join(report.lines())
    assert report.lines()[0].startswith("audit log: PROBLEM")


def test_edited_object_key_is_caught(sqlite_record: Built, tmp_path: Path) -> None:
    # object_key is a lookup column no hash covers: edited, it hides the entry
    # from entries_for() and so from every per-object view of the trail.
    released = _signatures(sqlite_record.record.url)[-1]
    seq = released[2]
    path = _edit_sqlite(
        sqlite_record,
        tmp_path,
        "UPDATE audit_entry SET object_key = object_key + 1 WHERE seq = ?",
        seq,
    )
    report = verify(str(path), sqlite_record.record)
    assert not report.ok and report.ledger.ok
    assert [(p.table, p.key, p.column, p.seq, p.kind) for p in report.problems] == [
        ("audit_entry", str(seq), "object_key", seq, "object_key")
    ]
    problem = report.problems[0]
    assert problem.found == problem.expected + 1


def test_edited_signature_manifest_is_caught(sqlite_record: Built, tmp_path: Path) -> None:
    signature_id, meaning, _seq, manifest = _signatures(sqlite_record.record.url)[-1]
    assert meaning == "Released"
    forged = manifest.replace('"Released"', '"Reviewed"')
    assert forged != manifest
    path = _edit_sqlite(
        sqlite_record,
        tmp_path,
        "UPDATE gx_signature SET manifest = ?, meaning = 'Reviewed' WHERE signature_id = ?",
        forged,
        signature_id,
    )
    report = verify(str(path), sqlite_record.record)
    assert not report.ok
    mine = {(p.column, p.kind) for p in report.problems if p.key == signature_id}
    assert mine == {
        ("manifest", "column_differs"),
        ("meaning", "column_differs"),
        (None, "signature"),
    }
    altered = next(p for p in report.problems if p.key == signature_id and p.kind == "signature")
    assert "manifest was altered" in str(altered.expected)


def test_signature_pointed_at_another_entry_is_caught(sqlite_record: Built, tmp_path: Path) -> None:
    # A signature row must point at the audit entry that recorded it.
    signatures = _signatures(sqlite_record.record.url)
    (signature_id, _m, own_seq, _), (_, _m2, other_seq, _) = signatures[-1], signatures[-2]
    path = _edit_sqlite(
        sqlite_record,
        tmp_path,
        "UPDATE gx_signature SET audit_seq = ? WHERE signature_id = ?",
        other_seq,
        signature_id,
    )
    report = verify(str(path), sqlite_record.record)
    assert [
        (p.table, p.key, p.column, p.kind, p.expected, p.found, p.seq) for p in report.problems
    ] == [
        ("gx_signature", signature_id, "audit_seq", "column_differs", own_seq, other_seq, own_seq)
    ]


@pytest.mark.parametrize(
    ("table", "column"), [("ebr_record_item", "content"), ("ebr_recipe", "body")]
)
def test_garbled_signed_json_is_reported_not_raised(
    sqlite_record: Built, tmp_path: Path, table: str, column: str
) -> None:
    # A signed record whose JSON no longer parses cannot be rebuilt: verification
    # must still finish and report it (it raised JSONDecodeError once).
    path = _edit_sqlite(
        sqlite_record,
        tmp_path,
        f"UPDATE {table} SET {column} = 'not json' WHERE rowid = (SELECT min(rowid) FROM {table})",
    )
    report = verify(str(path), sqlite_record.record)
    assert not report.ok
    assert any(p.table == table and p.column == column for p in report.problems)
    assert any(
        p.kind == "signature" and "cannot be checked" in str(p.expected) for p in report.problems
    )


def test_untouched_postgres_record_verifies(pg_record: Built, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    record = pg_record.record
    report = verify(record.url, record)
    assert report.ok, "\n".join(report.lines())
    pems = [
        arg
        for i, raw in enumerate(record.signature_keys.values())
        for arg in ("--signature-key", str(write_public_pem(raw, tmp_path / f"key{i}.pem")))
    ]
    assert main(["verify", "--db", record.url, "--json", *pems]) == 0
    report_json = json.loads(capsys.readouterr().out)
    assert report_json["ok"] is True and report_json["warnings"] == []


@pytest.mark.parametrize(("table", "action", "column"), PG_CASES, ids=map(_id, PG_CASES))
def test_postgres_edit_by_the_owner_is_caught(
    pg_record: Built, table: str, action: str, column: str | None
) -> None:
    url = pg_record.record.url
    engine = open_engine(url)
    try:
        with tampering(engine, table) as conn:
            change = tamper(conn, projected()[table], action, column)
        try:
            report = verify(url, pg_record.record)
        finally:
            with tampering(engine, table) as conn:
                change.undo(conn)
        assert_caught(report, change, engine)
    finally:
        engine.dispose()


def test_postgres_owner_disables_guards_at_will(pg_record: Built) -> None:
    # Why the edits above are possible at all: the owner may switch the
    # append-only triggers off (least privilege for the app role is separate).
    engine = open_engine(pg_record.record.url)
    try:
        with tampering(engine, "gx_signature") as conn:
            assert conn.execute(text("UPDATE gx_signature SET meaning = meaning")).rowcount > 0
        with pytest.raises(Exception, match="refused"), engine.begin() as conn:
            conn.execute(text("UPDATE gx_signature SET meaning = meaning"))
    finally:
        engine.dispose()
    assert verify(pg_record.record.url, pg_record.record).ok
