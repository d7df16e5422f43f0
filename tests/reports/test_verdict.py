"""Three verdicts, on every page and for every signature: not checked, verified, failed.

``gxpmes report`` without a trusted key cannot check the system countersignatures
nor anchor the trail: that is "NOT VERIFIED" in amber (exit 0), never "INVALID".
With the right keys everything is "valid"; with a wrong key or a tampered
record the report is red (exit 1).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ebr_support import Plant
from pypdf import PdfReader

from audit.keys import TrustedKey, generate_private_key, write_key_pair
from audit.note import NoteSigner
from gxpmes.cli import main
from gxpmes.reports import collect_report
from gxpmes.reports.data import NOT_CHECKED

B = "B-2026-0001"
AMBER = "NOT VERIFIED — SIGNATURES NOT CHECKED: NO TRUSTED KEY GIVEN"
RED = "VERIFICATION FAILED — THIS RECORD CANNOT BE TRUSTED"


def system_key_pem(plant: Plant, path: Path) -> Path:
    """The plant's system signature key as the public.pem a QA reviewer would be given."""
    raw = plant.signatures.trusted[plant.signatures.system_key_id]
    path.write_bytes(
        Ed25519PublicKey.from_public_bytes(raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def checkpoint(plant: Plant, folder: Path) -> tuple[Path, Path]:
    """A checkpoint signed now, and the public.pem of its key."""
    key = generate_private_key()
    _private, public = write_key_pair(key, folder, b"checkpoint-passphrase")
    note = folder / "checkpoint.txt"
    note.write_text(plant.db.ledger.checkpoint(NoteSigner("gxpmes-audit", key)))
    return note, public


def report(
    plant: Plant, out: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, str, str, list[str]]:
    """``gxpmes report``: exit code, stdout, the HTML, the text of each PDF page."""
    db = str(plant.db.engine.url.database)
    code = main(["report", "--db", db, "--batch", B, "--out", str(out), *options])
    stdout = capsys.readouterr().out
    html = (out / f"{B}-batch-record.html").read_text()
    pages = [page.extract_text() for page in PdfReader(out / f"{B}-batch-record.pdf").pages]
    return code, stdout, html, pages


def markings(html: str) -> list[str]:
    """The bracketed marking after each signature in the HTML."""
    return re.findall(r'<div class="sig">.*?<span class="\w+">\[([^\]]+)\]</span></div>', html)


def test_no_key_is_amber_not_invalid(
    released: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, html, pages = report(released, tmp_path / "out", capsys)
    assert code == 0
    assert f"verification: {AMBER}" in stdout
    assert f'<div class="banner not_checked">{AMBER}</div>' in html
    signatures = markings(html)
    assert len(signatures) >= 10 and set(signatures) == {NOT_CHECKED}
    assert "INVALID" not in html and "VERIFICATION FAILED" not in html
    assert "no trusted system key given" in html
    assert len(pages) > 1
    for page in pages:
        assert AMBER in page and "INVALID" not in page
    assert "[not checked (no trusted key)]" in " ".join(pages).replace("\n", " ")


def test_right_keys_verify_every_signature(
    released: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note, checkpoint_key = checkpoint(released, tmp_path / "keys")
    options = ["--checkpoint", str(note), "--public-key", str(checkpoint_key)]
    options += ["--signature-key", str(system_key_pem(released, tmp_path / "system.pem"))]
    code, stdout, html, pages = report(released, tmp_path / "out", capsys, *options)
    assert code == 0
    assert "verification: VERIFIED" in stdout
    assert 'class="banner' not in html and "NOT VERIFIED" not in html
    signatures = markings(html)
    assert len(signatures) >= 10 and set(signatures) == {"valid"}
    text = " ".join(pages)
    assert "NOT VERIFIED" not in text and "FAILED" not in text and "INVALID" not in text
    assert "VERIFIED: INTACT" in text.replace("\n", " ")


def test_wrong_signature_key_is_red(
    released: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note, checkpoint_key = checkpoint(released, tmp_path / "keys")
    _private, stranger = write_key_pair(generate_private_key(), tmp_path / "other", b"passphrase")
    options = ["--checkpoint", str(note), "--public-key", str(checkpoint_key)]
    code, stdout, html, pages = report(
        released, tmp_path / "out", capsys, *options, "--signature-key", str(stranger)
    )
    assert code == 1
    assert f"verification: {RED}" in stdout
    assert f'<div class="banner failed">{RED}</div>' in html
    signatures = markings(html)
    assert len(signatures) >= 10 and set(signatures) == {"INVALID"}
    for page in pages:
        assert RED in page
    assert NOT_CHECKED not in html


def test_tampered_record_is_red_even_with_the_right_keys(
    released: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note, checkpoint_key = checkpoint(released, tmp_path / "keys")
    with sqlite3.connect(str(released.db.engine.url.database)) as conn:
        conn.execute("DROP TRIGGER ebr_weighing_no_update")  # someone with the owner's rights
        changed = conn.execute("UPDATE ebr_weighing SET actual = '99.999'").rowcount
    assert changed
    options = ["--checkpoint", str(note), "--public-key", str(checkpoint_key)]
    options += ["--signature-key", str(system_key_pem(released, tmp_path / "system.pem"))]
    code, stdout, html, pages = report(released, tmp_path / "out", capsys, *options)
    assert code == 1
    assert f"verification: {RED}" in stdout
    assert "INVALID" in markings(html)  # the weighing signatures no longer fit the record
    assert "record problem" in html
    for page in pages:
        assert RED in page


def test_checkpoint_without_its_key_is_a_usage_error(
    released: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note, _key = checkpoint(released, tmp_path / "keys")
    db = str(released.db.engine.url.database)
    out = str(tmp_path / "out")
    code = main(["report", "--db", db, "--batch", B, "--out", out, "--checkpoint", str(note)])
    assert code == 2
    assert "--checkpoint needs --public-key" in capsys.readouterr().err


def test_library_verdicts(released: Plant) -> None:
    """The engine that signed trusts its own key; without a checkpoint the trail is amber."""
    data = collect_report(released.engine, B)
    assert {s["status"] for s in data.signatures} == {"valid"}
    assert data.verdict == "not_checked"
    assert data.banner == "NOT VERIFIED — AUDIT TRAIL NOT CHECKED AGAINST A SIGNED CHECKPOINT"
    signer = NoteSigner("gxpmes-audit", generate_private_key())
    note = released.db.ledger.checkpoint(signer)
    data = collect_report(
        released.engine, B, checkpoint=note, trusted_keys=[TrustedKey(signer.verifier)]
    )
    assert data.verdict == "verified" and data.banner is None
