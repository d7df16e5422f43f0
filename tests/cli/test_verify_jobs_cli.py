"""``--jobs`` of ``gxpmes verify``: the same report with any number of worker processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from record_support import build_record, sqlite_copy, write_public_pem

from audit.keys import generate_private_key
from audit.note import NoteSigner, public_key_bytes
from gxpmes.cli import main


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("verify-jobs")
    plant, record = build_record(str(folder / "record.db"))
    key = generate_private_key()
    checkpoint = folder / "checkpoint.txt"
    checkpoint.write_text(plant.db.ledger.checkpoint(NoteSigner("qa-checkpoint", key)))
    plant.db.close()
    pem = write_public_pem(public_key_bytes(key.public_key()), folder / "checkpoint.pem")
    keys = [
        a
        for i, raw in enumerate(record.signature_keys.values())
        for a in ("--signature-key", str(write_public_pem(raw, folder / f"system-{i}.pem")))
    ]
    return folder / "record.db", ["--checkpoint", str(checkpoint), "--public-key", str(pem), *keys]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("tampered", [False, True])
def test_jobs_give_the_same_report(
    installation: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tampered: bool,
) -> None:
    db, keys = installation
    if tampered:
        db = sqlite_copy(db, tmp_path / "tampered.db")
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE audit_entry SET leaf_hash = zeroblob(32) WHERE seq = 5")
        conn.close()
    outputs = [run(capsys, "verify", "--db", str(db), *keys, "--jobs", j) for j in ("1", "3")]
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == (1 if tampered else 0)
    json_outputs = [
        run(capsys, "verify", "--db", str(db), *keys, "--json", "--jobs", j) for j in ("1", "2")
    ]
    assert json_outputs[0] == json_outputs[1]


def test_jobs_below_one_are_refused(
    installation: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, keys = installation
    code, out, err = run(capsys, "verify", "--db", str(db), *keys, "--jobs", "0")
    assert code == 2 and out == ""
    assert "--jobs must be at least 1" in err


def test_audit_verify_takes_jobs_too(
    installation: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, keys = installation
    cp_keys = keys[:4]  # --checkpoint FILE --public-key PEM
    outputs = [
        run(capsys, "audit", "verify", "--db", str(db), *cp_keys, "--json", "--jobs", j)
        for j in ("1", "2")
    ]
    assert outputs[0] == outputs[1] and outputs[0][0] == 0
    code, out, err = run(capsys, "audit", "verify", "--db", str(db), "--jobs", "-1")
    assert code == 2 and out == "" and "--jobs must be at least 1" in err
