"""``gxpmes audit verify`` and ``gxpmes verify`` with ``--trust FILE`` and ``--checkpoints DIR``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from anchoring_support import cut_tail
from record_support import write_public_pem

from audit.anchoring.directory import DirectorySink
from audit.anchoring.publisher import CheckpointPublisher
from audit.entry import Actor, AuditEvent
from audit.keys import load_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from gxpmes.cli import main
from gxpmes.testing.plant import HEAD_KEY_NAME, build_plant

PASS = "correct horse battery"
OP = Actor("op", "Op Erator")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A trail of 30 entries with automatic checkpoints in a folder, and its trust file."""
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    keys = tmp_path / "keys"
    assert main(["keys", "new", "--out", str(keys)]) == 0
    signer = NoteSigner("plant-heads", load_private_key(keys / "private.pem", PASS.encode()))
    db, worm = tmp_path / "trail.db", tmp_path / "worm"
    worm.mkdir()
    ledger = Ledger.open(db, head_signer=signer)
    with CheckpointPublisher(ledger, [DirectorySink(worm)], every_entries=7, every_seconds=60):
        for i in range(30):
            ledger.append(AuditEvent(OP, "capture", "v", str(i), new={"i": i}))
    ledger.close()
    trust = tmp_path / "trust.toml"
    trust.write_text('[[checkpoint_key]]\npublic_key = "keys/public.pem"\n', encoding="utf-8")
    return db, worm, trust


def test_audit_verify_against_every_checkpoint_in_a_folder(
    site: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, worm, trust = site
    args = ["audit", "verify", "--db", str(db), "--trust", str(trust), "--checkpoints", str(worm)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "INTACT: 30 entries" in out and "trusted checkpoint(s)" in out
    ledger = Ledger.open(db)
    cut_tail(ledger, 29)
    ledger.close()
    assert main([*args, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["problem"] == "truncated"


def test_trust_options_are_checked(
    site: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, worm, trust = site
    base = ["audit", "verify", "--db", str(db)]
    assert main([*base, "--checkpoints", str(worm)]) == 2
    assert "--checkpoints needs --trust" in capsys.readouterr().err
    pem = str(trust.parent / "keys" / "public.pem")
    assert main([*base, "--trust", str(trust), "--public-key", pem]) == 2
    bad = tmp_path / "bad.toml"
    for content, message in [
        ("[[checkpoint_key]]\nvkey = 'nope'\n", "malformed verifier key"),
        (
            "[checkpoints]\nrequire_timestamp = true\n[[checkpoint_key]]\n"
            "public_key = 'keys/public.pem'\n",
            "needs at least one [[tsa]]",
        ),
        (
            "[[checkpoint_key]]\npublic_key = 'keys/public.pem'\n"
            "revoked_at = 2026-01-01T00:00:00\n",
            "needs a UTC offset",
        ),
        ("[[checkpoint_key]]\npublic_key = 'keys/public.pem'\ncolour = 'red'\n", "colour"),
        ("", "lists no [[checkpoint_key]]"),
        ("not toml [", "not valid TOML"),
    ]:
        bad.write_text(content, encoding="utf-8")
        assert main([*base, "--trust", str(bad)]) == 2, content
        assert message in capsys.readouterr().err, content
    assert main([*base, "--trust", str(tmp_path / "missing.toml")]) == 2


def test_revocation_in_the_trust_file_counts(
    site: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, worm, trust = site
    trust.write_text(
        '[[checkpoint_key]]\npublic_key = "keys/public.pem"\n'
        'revoked_at = 2000-01-01T00:00:00Z\nrevocation_reason = "lost"\n',
        encoding="utf-8",
    )
    code = main(
        ["audit", "verify", "--db", str(db), "--trust", str(trust), "--checkpoints", str(worm)]
    )
    assert code == 1
    assert "lost" in capsys.readouterr().out


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("trust-record")
    plant = build_plant(str(folder / "record.db"))  # accounts, roles, signatures: a real trail
    worm = folder / "worm"
    worm.mkdir()
    # The library's own automatic checkpoints; close() signs the last one.
    plant.db.start_checkpoints([DirectorySink(worm)], every_entries=25, every_seconds=60)
    plant.db.close()
    write_public_pem(plant.public_key, folder / "system.pem")
    trust = folder / "trust.toml"
    trust.write_text(
        f'[[checkpoint_key]]\npublic_key = "system.pem"\nname = "{HEAD_KEY_NAME}"\n',
        encoding="utf-8",
    )
    return folder / "record.db", worm, trust


def test_gxpmes_verify_with_a_trust_file(
    record: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, worm, trust = record
    assert list(worm.iterdir())
    args = ["verify", "--db", str(db), "--trust", str(trust), "--checkpoints", str(worm)]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "VERIFIED" in out
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    ledger = Ledger.open(copy)
    size = ledger.size()
    cut_tail(ledger, size - 1)
    ledger.close()
    assert (
        main(["verify", "--db", str(copy), "--trust", str(trust), "--checkpoints", str(worm)]) == 1
    )
    assert "truncated" in capsys.readouterr().out.lower()
