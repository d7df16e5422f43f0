"""Value blocks attacked as someone with the database login (SQLite and PostgreSQL).

With the application's login the database refuses every change to stored
leaves and every block row but the last entry's; the owner, who can drop the
triggers, is caught by verification. The export carries the leaves, so the
standard-library check of docs/audit.md covers every value.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchoring_support import drop_guards
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit.blocks import (
    BLOCK_MISMATCH,
    BLOCK_MISSING,
    BLOCK_UNEXPECTED,
    encode_leaves,
    pack_leaves,
    scan_blocks,
)
from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_ledger
from gxpmes.cli import main

OP = Actor("svc-hist", "Historian collector")
DOCS = Path(__file__).resolve().parents[2] / "docs"


def leaves(n: int, start: int = 0) -> list[bytes]:
    return list(
        encode_leaves(
            {"tag": f"TT-{i % 3}", "value": str(i), "q": "Good"} for i in range(start, start + n)
        )
    )


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner("plant1-heads", generate_private_key())


@pytest.fixture
def ledger(db_url: str, signer: NoteSigner) -> Iterator[Ledger]:
    """Entries 0 (plain), 1 and 2 (blocks of 5), 3 (plain), 4 (block of 5)."""
    led = Ledger.open(db_url, head_signer=signer)
    led.append(AuditEvent(OP, "start", "batch", "B1"))
    led.append_blocks(
        [
            (AuditEvent(OP, "capture.block", "batch", "B1"), leaves(5)),
            (AuditEvent(OP, "capture.block", "batch", "B1"), leaves(5, 5)),
        ]
    )
    led.append(AuditEvent(OP, "note", "batch", "B1"))
    led.append_block(AuditEvent(OP, "capture.block", "batch", "B1"), leaves(5, 10))
    yield led
    led.close()


def problem(ledger: Ledger) -> tuple[str, int, str] | None:
    """The first block problem verification finds (the entries themselves are untouched).

    The pure scan and ``verify_ledger`` (as ``audit verify`` and ``gxpmes verify``
    run it) must agree.
    """
    with ledger.snapshot_blocks() as (rows, _heads, blocks):
        found = scan_blocks(rows, blocks)
    report = verify_ledger(ledger)
    if found is None:
        assert report.ok, report.summary()
    else:
        assert (report.problem, report.first_bad_seq) == (found[0], found[1]), report.summary()
        assert report.detail == found[2]
    return found


def sql(ledger: Ledger, statement: str, **params: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text(statement), params)


def blob(ledger: Ledger, seq: int) -> bytes:
    return pack_leaves(ledger.block_leaves(seq))


def test_an_untouched_log_has_no_block_problem(ledger: Ledger, signer: NoteSigner) -> None:
    assert problem(ledger) is None
    assert verify_ledger(ledger, head_keys=signer.verifier).ok


# ------------------------------------------------------ the application's login


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_block SET leaves = :b WHERE seq = 1",
        "UPDATE audit_block SET seq = 7 WHERE seq = 1",
        "DELETE FROM audit_block WHERE seq = 2",
        "DELETE FROM audit_block",
    ],
)
def test_changing_or_deleting_stored_leaves_is_refused(ledger: Ledger, statement: str) -> None:
    before = [blob(ledger, s) for s in (1, 2, 4)]
    with pytest.raises(DBAPIError, match="append-only audit table audit_block"):
        sql(ledger, statement, b=b'{"tag":"TT-0","value":"999"}')
    assert [blob(ledger, s) for s in (1, 2, 4)] == before
    assert problem(ledger) is None


def test_truncating_the_block_table_is_refused(pg_url: str, signer: NoteSigner) -> None:
    """PostgreSQL's TRUNCATE (SQLite has none: its DELETE is refused above)."""
    led = Ledger.open(pg_url, head_signer=signer)
    led.append_block(AuditEvent(OP, "capture.block", "batch", "B1"), leaves(3))
    with pytest.raises(DBAPIError, match="append-only audit table audit_block"):
        sql(led, "TRUNCATE audit_block")
    assert led.block_leaves(0) == leaves(3)
    led.close()


@pytest.mark.parametrize("seq", [0, 3, 1, 5, -1])
def test_a_block_for_another_entry_than_the_last_is_refused(ledger: Ledger, seq: int) -> None:
    with pytest.raises(DBAPIError, match="audit_block: row refused"):
        sql(ledger, "INSERT INTO audit_block (seq, leaves) VALUES (:s, :b)", s=seq, b=b"{}")
    assert problem(ledger) is None


def test_a_second_block_for_the_last_entry_is_refused(ledger: Ledger) -> None:
    with pytest.raises(DBAPIError):
        sql(ledger, "INSERT INTO audit_block (seq, leaves) VALUES (4, :b)", b=blob(ledger, 1))
    assert problem(ledger) is None


def test_a_block_for_a_plain_last_entry_is_reported(ledger: Ledger, signer: NoteSigner) -> None:
    ledger.append(AuditEvent(OP, "note", "batch", "B1"))  # entry 5: commits to no block
    sql(ledger, "INSERT INTO audit_block (seq, leaves) VALUES (5, :b)", b=blob(ledger, 1))
    found = problem(ledger)
    assert found is not None and found[:2] == (BLOCK_UNEXPECTED, 5)


def test_a_bare_block_row_does_not_stop_later_blocks(ledger: Ledger) -> None:
    """A block row slipped in for the last entry is reported, and appends go on."""
    ledger.append(AuditEvent(OP, "note", "batch", "B1"))
    sql(ledger, "INSERT INTO audit_block (seq, leaves) VALUES (5, :b)", b=b'{"x":1}')
    ledger.append_block(AuditEvent(OP, "capture.block", "batch", "B1"), leaves(2))  # entry 6
    assert ledger.block_leaves(6) == leaves(2)
    assert ledger.size() == 7
    assert problem(ledger)[:2] == (BLOCK_UNEXPECTED, 5)  # type: ignore[index]


# ------------------------------------------------- the owner (triggers dropped)


def tamper(ledger: Ledger, statement: str, **params: object) -> None:
    drop_guards(ledger)
    sql(ledger, statement, **params)


def test_an_altered_leaf_is_reported(ledger: Ledger, signer: NoteSigner) -> None:
    changed = blob(ledger, 2).replace(b'"value":"7"', b'"value":"8"')
    tamper(ledger, "UPDATE audit_block SET leaves = :b WHERE seq = 2", b=changed)
    assert problem(ledger)[:2] == (BLOCK_MISMATCH, 2)  # type: ignore[index]


@pytest.mark.parametrize(
    "edit",
    [
        lambda ls: ls[:-1],  # the last leaf removed
        lambda ls: ls[1:],  # the first removed
        lambda ls: [*ls, ls[0]],  # one added
        lambda ls: [ls[1], ls[0], *ls[2:]],  # two swapped
        lambda ls: list(reversed(ls)),  # reordered
        lambda ls: [ls[0][:-3], *ls[1:]],  # bytes cut
        lambda ls: [*ls[:-1], ls[-1] + b" "],  # bytes added
    ],
    ids=["last-removed", "first-removed", "added", "swapped", "reordered", "cut", "grown"],
)
def test_missing_extra_reordered_or_cut_leaves_are_reported(ledger: Ledger, edit: object) -> None:
    edited = pack_leaves(edit(ledger.block_leaves(1)))  # type: ignore[operator]
    tamper(ledger, "UPDATE audit_block SET leaves = :b WHERE seq = 1", b=edited)
    assert problem(ledger)[:2] == (BLOCK_MISMATCH, 1)  # type: ignore[index]


def test_two_blocks_swapped_are_reported(ledger: Ledger) -> None:
    one, two = blob(ledger, 1), blob(ledger, 2)
    drop_guards(ledger)
    sql(ledger, "UPDATE audit_block SET leaves = :b WHERE seq = 1", b=two)
    sql(ledger, "UPDATE audit_block SET leaves = :b WHERE seq = 2", b=one)
    assert problem(ledger)[:2] == (BLOCK_MISMATCH, 1)  # type: ignore[index]


def test_a_deleted_block_is_reported(ledger: Ledger) -> None:
    tamper(ledger, "DELETE FROM audit_block WHERE seq = 2")
    assert problem(ledger)[:2] == (BLOCK_MISSING, 2)  # type: ignore[index]


def test_all_blocks_deleted_are_reported(ledger: Ledger) -> None:
    tamper(ledger, "DELETE FROM audit_block")
    assert problem(ledger)[:2] == (BLOCK_MISSING, 1)  # type: ignore[index]


@pytest.mark.parametrize(("seq", "kind"), [(0, BLOCK_UNEXPECTED), (3, BLOCK_UNEXPECTED)])
def test_a_block_slipped_in_for_a_plain_entry_is_reported(
    ledger: Ledger, seq: int, kind: str
) -> None:
    tamper(
        ledger, "INSERT INTO audit_block (seq, leaves) VALUES (:s, :b)", s=seq, b=blob(ledger, 1)
    )
    assert problem(ledger)[:2] == (kind, seq)  # type: ignore[index]


def test_a_block_moved_to_another_entry_is_reported(ledger: Ledger) -> None:
    tamper(ledger, "UPDATE audit_block SET seq = 3 WHERE seq = 2")
    assert problem(ledger)[:2] == (BLOCK_MISSING, 2)  # type: ignore[index]


def test_a_block_past_the_last_entry_is_reported(ledger: Ledger) -> None:
    tamper(ledger, "INSERT INTO audit_block (seq, leaves) VALUES (9, :b)", b=blob(ledger, 1))
    assert problem(ledger)[:2] == (BLOCK_UNEXPECTED, 9)  # type: ignore[index]


# --------------------------------------------------------- the export, alone


def export(ledger: Ledger, out: Path) -> list[dict[str, object]]:
    url = ledger.engine.url.render_as_string(hide_password=False)
    if ledger.engine.dialect.name == "sqlite":
        url = str(ledger.engine.url.database)
    assert main(["audit", "export", "--db", url, "--jsonl", "--out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def stdlib_check(workdir: Path) -> subprocess.CompletedProcess[str]:
    snippet = next(
        block
        for block in (DOCS / "audit.md").read_text().split("```python\n")[1:]
        if "trail.jsonl" in block.split("```")[0]
    ).split("```")[0]
    return subprocess.run(
        [sys.executable, "-c", snippet], cwd=workdir, capture_output=True, text=True, timeout=300
    )


def test_the_stdlib_check_covers_every_value(ledger: Ledger, tmp_path: Path) -> None:
    """docs/audit.md's standard-library check, on an export with value blocks."""
    lines = export(ledger, tmp_path / "trail.jsonl")
    assert [("leaves" in line) for line in lines] == [False, True, True, False, True]
    assert base64.b64decode(str(lines[1]["leaves"])) == blob(ledger, 1)
    result = stdlib_check(tmp_path)
    assert result.returncode == 0, result.stderr

    def rewrite(seq: int, leaves_blob: bytes | None) -> None:
        edited = [dict(line) for line in lines]
        if leaves_blob is None:
            del edited[seq]["leaves"]
        else:
            edited[seq]["leaves"] = base64.b64encode(leaves_blob).decode()
        (tmp_path / "trail.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edited))

    one = base64.b64decode(str(lines[1]["leaves"]))
    for bad in (
        one.replace(b'"value":"3"', b'"value":"4"'),  # an altered value
        b"\n".join(one.split(b"\n")[:-1]),  # a value missing
        b"\n".join(reversed(one.split(b"\n"))),  # reordered
        base64.b64decode(str(lines[2]["leaves"])),  # another block's values
        None,  # the values left out of the export
    ):
        rewrite(1, bad)
        result = stdlib_check(tmp_path)
        assert result.returncode == 1 and "AssertionError" in result.stderr
    rewrite(0, one)  # values beside an entry that commits to none
    assert stdlib_check(tmp_path).returncode == 1


@pytest.mark.parametrize(
    "tamper",
    ["none", "alter", "delete", "extra-past-end", "unexpected", "cut-last"],
)
def test_parallel_verification_reports_block_problems_as_one_process_does(
    sqlite_url: str, signer: NoteSigner, tamper: str
) -> None:
    """Worker processes check the blocks of their own range (the last one past its end too)."""
    led = Ledger.open(sqlite_url, head_signer=signer)
    for i in range(7):
        led.append_many([AuditEvent(OP, "note", "batch", f"B{i}")] * 2)
        led.append_block(AuditEvent(OP, "capture.block", "batch", f"B{i}"), leaves(4, 4 * i))
    # entries 3k, 3k+1 plain, 3k+2 a block: 21 entries, ranges of 4 over two workers
    drop_guards(led)
    edits = {
        "alter": "UPDATE audit_block SET leaves = substr(leaves, 1, 40) WHERE seq = 11",
        "delete": "DELETE FROM audit_block WHERE seq = 14",
        "extra-past-end": "INSERT INTO audit_block (seq, leaves) VALUES (40, x'7b7d')",
        "unexpected": "INSERT INTO audit_block (seq, leaves) VALUES (9, x'7b7d')",
        "cut-last": "UPDATE audit_block SET leaves = substr(leaves, 1, 10) WHERE seq = 20",
    }
    if tamper in edits:
        sql(led, edits[tamper])
    single = verify_ledger(led, head_keys=signer.verifier)
    parallel = verify_ledger(led, head_keys=signer.verifier, jobs=2, range_size=4)
    assert parallel.as_json() == single.as_json()
    expected = {
        "none": None,
        "alter": (BLOCK_MISMATCH, 11),
        "delete": (BLOCK_MISSING, 14),
        "extra-past-end": (BLOCK_UNEXPECTED, 40),
        "unexpected": (BLOCK_UNEXPECTED, 9),
        "cut-last": (BLOCK_MISMATCH, 20),
    }[tamper]
    assert (None if single.ok else (single.problem, single.first_bad_seq)) == expected
    led.close()


def test_audit_verify_names_an_altered_block(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gxpmes audit verify`` (as an auditor runs it) reports a changed value, exit 1."""
    url = ledger.engine.url.render_as_string(hide_password=False)
    if ledger.engine.dialect.name == "sqlite":
        url = str(ledger.engine.url.database)
    capsys.readouterr()
    assert main(["audit", "verify", "--db", url, "--json"]) == 0
    changed = blob(ledger, 4).replace(b'"value":"12"', b'"value":"21"')
    tamper(ledger, "UPDATE audit_block SET leaves = :b WHERE seq = 4", b=changed)
    capsys.readouterr()
    assert main(["audit", "verify", "--db", url, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["problem"], report["first_bad_seq"]) == ("block_mismatch", 4)
