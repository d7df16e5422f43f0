"""The ``gxpmes keys`` / ``gxpmes audit`` command-line interface and its exit codes."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from audit.merkle import check_inclusion
from gxpmes.cli import main

PASS = "correct horse battery"


@pytest.fixture
def trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    db = tmp_path / "trail.db"
    ledger = Ledger.open(db)
    ledger.append_many(
        [
            AuditEvent(Actor("op", "Op Erator"), "capture", "v", str(i), new={"i": i})
            for i in range(25)
        ]
    )
    ledger.close()
    assert main(["keys", "new", "--out", str(tmp_path / "keys")]) == 0
    return db


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_checkpoint_verify_prove_export(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert (keys / "private.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    cp = tmp_path / "cp.txt"
    code, out = run(
        capsys,
        "audit",
        "checkpoint",
        "--db",
        str(trail),
        "--key",
        str(keys / "private.pem"),
        "--out",
        str(cp),
    )
    assert code == 0 and cp.read_text() == out
    assert cp.read_text().split("\n")[1] == "25"

    code, out = run(
        capsys,
        "audit",
        "verify",
        "--db",
        str(trail),
        "--checkpoint",
        str(cp),
        "--public-key",
        str(keys / "public.pem"),
        "--json",
    )
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert {"ok", "entries", "tree_size", "root", "first_bad_seq", "problem"} <= set(report)
    assert report["entries"] == report["tree_size"] == 25

    code, out = run(
        capsys,
        "audit",
        "prove",
        "--db",
        str(trail),
        "--seq",
        "7",
        "--checkpoint",
        str(cp),
        "--json",
    )
    proof = json.loads(out)
    assert code == 0 and proof["leaf_index"] == 7 and proof["tree_size"] == 25
    assert proof["root"] == report["root"]
    check_inclusion(
        [bytes.fromhex(h) for h in proof["path"]],
        25,
        bytes.fromhex(proof["root"]),
        7,
        bytes.fromhex(proof["leaf_hash"]),
    )

    code, out = run(capsys, "audit", "export", "--db", str(trail), "--jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [x["seq"] for x in lines] == list(range(25))
    for line in lines:  # anyone can re-hash with hashlib alone
        data = base64.b64decode(line["canonical"])
        assert hashlib.sha256(b"\x00" + data).hexdigest() == line["leaf_hash"]
    assert lines[7]["leaf_hash"] == proof["leaf_hash"]


def test_verify_exit_code_1_names_the_bad_entry(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(trail) as conn:
        conn.execute("DROP TRIGGER audit_entry_no_update")
        conn.execute("UPDATE audit_entry SET canonical = CAST('{}' AS BLOB) WHERE seq = 11")
    code, out = run(capsys, "audit", "verify", "--db", str(trail), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["first_bad_seq"] == 11 and report["problem"] == "hash_mismatch"
    code, out = run(capsys, "audit", "verify", "--db", str(trail))
    assert code == 1 and "seq 11" in out


def test_truncation_after_checkpoint_exit_1(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, cp = tmp_path / "keys", tmp_path / "cp.txt"
    run(
        capsys,
        "audit",
        "checkpoint",
        "--db",
        str(trail),
        "--key",
        str(keys / "private.pem"),
        "--out",
        str(cp),
    )
    with sqlite3.connect(trail) as conn:
        conn.execute("DROP TRIGGER audit_entry_no_delete")
        conn.execute("DELETE FROM audit_entry WHERE seq >= 20")
    code, out = run(
        capsys,
        "audit",
        "verify",
        "--db",
        str(trail),
        "--checkpoint",
        str(cp),
        "--public-key",
        str(keys / "public.pem"),
        "--json",
    )
    assert code == 1 and json.loads(out)["problem"] == "truncated"


def test_usage_and_io_errors_exit_2(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["audit", "verify", "--db", str(tmp_path / "missing.db")]) == 2
    assert (
        main(["audit", "verify", "--db", str(trail), "--checkpoint", str(tmp_path / "cp.txt")]) == 2
    )
    assert (
        main(
            [
                "audit",
                "verify",
                "--db",
                str(trail),
                "--checkpoint",
                str(tmp_path / "none.txt"),
                "--public-key",
                str(tmp_path / "keys" / "public.pem"),
            ]
        )
        == 2
    )
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", "wrong passphrase")
    assert (
        main(
            [
                "audit",
                "checkpoint",
                "--db",
                str(trail),
                "--key",
                str(tmp_path / "keys" / "private.pem"),
                "--out",
                str(tmp_path / "cp.txt"),
            ]
        )
        == 2
    )
    assert "wrong passphrase" in capsys.readouterr().err
    assert main(["audit", "prove", "--db", str(trail), "--seq", "99", "--json"]) == 2
    assert main(["keys", "new", "--out", str(tmp_path / "keys")]) == 2  # refuses to overwrite
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify"])
    assert exc.value.code == 2


def test_keys_list_and_revoke(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, cp = tmp_path / "keys", tmp_path / "cp.txt"
    run(
        capsys,
        "audit",
        "checkpoint",
        "--db",
        str(trail),
        "--key",
        str(keys / "private.pem"),
        "--out",
        str(cp),
    )
    code, out = run(capsys, "keys", "list", "--db", str(trail))
    listed = json.loads(out)
    assert code == 0 and len(listed) == 1 and listed[0]["revoked_at"] is None
    key_id = listed[0]["key_id"]
    assert (
        main(
            [
                "keys",
                "revoke",
                "--db",
                str(trail),
                "--key-id",
                key_id,
                "--reason",
                "lost laptop",
                "--at",
                "2020-01-01T00:00:00+00:00",
            ]
        )
        == 0
    )
    assert "revoked" in capsys.readouterr().out
    code, out = run(
        capsys,
        "audit",
        "verify",
        "--db",
        str(trail),
        "--checkpoint",
        str(cp),
        "--public-key",
        str(keys / "public.pem"),
        "--json",
    )
    assert code == 1 and json.loads(out)["problem"] == "revoked_key"
    assert (
        main(
            [
                "keys",
                "revoke",
                "--db",
                str(trail),
                "--key-id",
                key_id,
                "--reason",
                "x",
                "--at",
                "yesterday",
            ]
        )
        == 2
    )


def test_postgres_url_works_in_cli(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    ledger = Ledger.open(pg_url)
    ledger.append(AuditEvent(Actor("op", "Op"), "create", "x", "1"))
    ledger.close()
    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 0
    assert (
        main(
            [
                "audit",
                "checkpoint",
                "--db",
                pg_url,
                "--key",
                str(tmp_path / "k" / "private.pem"),
                "--out",
                str(tmp_path / "cp"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out = run(
        capsys,
        "audit",
        "verify",
        "--db",
        pg_url,
        "--checkpoint",
        str(tmp_path / "cp"),
        "--public-key",
        str(tmp_path / "k" / "public.pem"),
        "--json",
    )
    assert code == 0 and json.loads(out)["entries"] == 1
