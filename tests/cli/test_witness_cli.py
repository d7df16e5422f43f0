"""``gxpmes witness serve`` as its own process: site B's gxpmes witnesses site A's log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_support import append

from audit.ledger import Ledger
from gxpmes.cli import main

PASS = "correct horse battery"


def keys_new(capsys: pytest.CaptureFixture[str], folder: Path, name: str) -> str:
    assert main(["keys", "new", "--out", str(folder), "--name", name]) == 0
    out = capsys.readouterr().out
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("vkey:"))


@pytest.fixture
def sites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path, count in ((a, 6), (b, 2)):
        ledger = Ledger.open(path)
        append(ledger, count)
        ledger.close()
    log_vkey = keys_new(capsys, tmp_path / "a-keys", "site-a.example/audit")
    (tmp_path / "a.vkey").write_text(log_vkey + "\n")
    keys_new(capsys, tmp_path / "b-witness", "site-b.example/witness")
    assert main(
        ["witness", "vkey", "--public-key", str(tmp_path / "b-witness" / "public.pem"),
         "--name", "site-b.example/witness"]
    ) == 0  # fmt: skip
    witness_vkey = capsys.readouterr().out.strip()
    ledger = Ledger.open(a)
    origin = ledger.origin
    ledger.close()
    return {"a": str(a), "b": str(b), "origin": origin, "witness": witness_vkey}


@pytest.fixture
def witness_process(tmp_path: Path, sites: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Site B's gxpmes serving as witness of site A's log, on a free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gxpmes", "witness", "serve", "--db", sites["b"],
         "--key", str(tmp_path / "b-witness" / "private.pem"),
         "--name", "site-b.example/witness", "--listen", "127.0.0.1:0",
         "--log", f"{sites['origin']}={tmp_path / 'a.vkey'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GXPMES_KEY_PASSPHRASE": PASS},
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    try:
        assert " listening on http://" in first, first + (
            process.stderr.read() if process.stderr else ""
        )
        url = first.split(" listening on ")[1].strip()
        vkey = process.stdout.readline().split("vkey: ")[1].strip()
        yield url, vkey
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_site_b_witnesses_site_a_through_the_cli(
    tmp_path: Path,
    sites: dict[str, str],
    witness_process: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, served_vkey = witness_process
    assert served_vkey == sites["witness"]
    key = str(tmp_path / "a-keys" / "private.pem")
    checkpoint = ["audit", "checkpoint", "--db", sites["a"], "--key", key]
    checkpoint += ["--name", "site-a.example/audit"]
    assert run(capsys, *checkpoint, "--out", str(tmp_path / "cp1"))[0] == 0
    submit = ["witness", "submit", "--db", sites["a"], "--url", url, "--witness", sites["witness"]]
    code, out, _ = run(
        capsys, *submit, "--checkpoint", str(tmp_path / "cp1"), "--out", str(tmp_path / "w1")
    )
    assert code == 0 and "— site-b.example/witness " in out
    check = ["witness", "check", "--witness", sites["witness"]]
    code, out, _ = run(capsys, *check, "--checkpoint", str(tmp_path / "w1"), "--quorum", "1")
    assert code == 0 and "quorum met: 1 of 1" in out
    # A second trusted witness that did not cosign: 1 of 2 does not meet a quorum of 2.
    other = keys_new(capsys, tmp_path / "c-witness", "site-c.example/witness")
    assert main(
        ["witness", "vkey", "--public-key", str(tmp_path / "c-witness" / "public.pem"),
         "--name", "site-c.example/witness"]
    ) == 0  # fmt: skip
    other = capsys.readouterr().out.strip()
    code, out, _ = run(
        capsys, *check, "--witness", other, "--checkpoint", str(tmp_path / "w1"), "--quorum", "2"
    )
    assert code == 1 and "NOT met: 1 of 2" in out
    code, out, _ = run(capsys, "witness", "status", "--db", sites["a"], "--url", url)
    assert code == 0 and "holds size 6" in out and "not behind" in out
    # A copy of the database as it is now: the restore an attacker will use.
    shutil.copy(sites["a"], tmp_path / "a-old.db")
    # The log grows; the witness tells its size (409) and the next submission proves from it.
    ledger = Ledger.open(sites["a"])
    append(ledger, 7)
    ledger.close()
    assert run(capsys, *checkpoint, "--out", str(tmp_path / "cp2"))[0] == 0
    code, out, _ = run(capsys, *submit, "--checkpoint", str(tmp_path / "cp2"))
    assert code == 0
    # Offering the older checkpoint again (a rollback) is refused: exit 1, says why.
    code, _, err = run(capsys, *submit, "--checkpoint", str(tmp_path / "cp1"))
    assert code == 1 and "rolled back" in err
    # The database restored from the old copy verifies on its own, but the witness saw 13.
    code, out, err = run(
        capsys, "witness", "status", "--db", str(tmp_path / "a-old.db"), "--url", url
    )
    assert code == 1 and "holds size 13" in out and "entries were removed" in err


def test_serve_refuses_bad_options(
    tmp_path: Path, sites: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["witness", "serve", "--db", sites["b"], "--name", "w"]
    base += ["--key", str(tmp_path / "b-witness" / "private.pem")]
    for extra, message in [
        ([], "at least one --log"),
        (["--log", "no-equals-sign"], "ORIGIN=KEYFILE"),
        (["--log", f"o={tmp_path / 'missing.vkey'}"], "cannot read"),
        (["--log", f"o={tmp_path / 'a.vkey'}", "--listen", "nowhere"], "HOST:PORT"),
    ]:
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and message in err, err
    code, _, err = run(
        capsys, "witness", "serve", "--db", str(tmp_path / "none.db"), "--name", "w",
        "--key", str(tmp_path / "b-witness" / "private.pem"), "--log", f"o={tmp_path / 'a.vkey'}",
    )  # fmt: skip
    assert code == 2 and "no database" in err
    assert run(capsys, "witness", "init", "--db", str(tmp_path / "w.db"))[0] == 0
    assert (tmp_path / "w.db").exists()


def test_audit_verify_with_a_trust_file_requires_the_witness_quorum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from witness_support import Site, running_witness

    from audit.anchoring.publisher import CheckpointPublisher
    from audit.keys import generate_private_key
    from audit.witness import Cosigner, CosignerVerifier
    from audit.witness.sink import WitnessSink

    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=5, heads=True)
    log_vkey = site.signer.verifier.vkey()
    absent = CosignerVerifier("site-c.example/witness", bytes(range(32)))
    with running_witness(tmp_path / "b.db", "site-b.example/witness", [site.known_log()]) as (
        server,
        witness,
    ):
        key = witness.cosigner.verifier
        with CheckpointPublisher(
            site.ledger, [WitnessSink(server.url, key)], signer=site.signer, every_seconds=3600
        ) as publisher:
            publisher.checkpoint_now()
            assert publisher.flush(60)
    site.ledger.close()

    def trust(quorum: int, *witnesses: CosignerVerifier) -> str:
        path = tmp_path / f"trust-{quorum}-{len(witnesses)}.toml"
        rows = "".join(f'[[witness]]\nvkey = "{w.vkey()}"\n' for w in witnesses)
        path.write_text(
            f'[[checkpoint_key]]\nvkey = "{log_vkey}"\n[witnesses]\nquorum = {quorum}\n{rows}'
        )
        return str(path)

    verify = ["audit", "verify", "--db", str(tmp_path / "a.db"), "--trust"]
    code, out, err = run(capsys, *verify, trust(1, key))
    assert code == 0, out + err
    code, out, err = run(capsys, *verify, trust(2, key, absent))
    assert code == 1 and "1 valid witness cosignature(s)" in out + err
    # A cosignature by a key the trust file does not list counts for nothing.
    stranger = Cosigner("site-b.example/witness", generate_private_key()).verifier
    code, out, err = run(capsys, *verify, trust(1, stranger))
    assert code == 1 and "0 valid witness cosignature(s)" in out + err
