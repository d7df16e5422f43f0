"""``gxpmes demo`` runs end to end and leaves a verifiable trail behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from audit.keys import TrustedKey, load_public_key
from audit.ledger import Ledger
from audit.note import NoteVerifier
from audit.verify import Problem, verify_ledger


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "gxpmes.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "all checks behaved as expected" in result.stdout
    note = (out / "checkpoint.txt").read_text()
    key = TrustedKey(NoteVerifier("gxpmes-demo", load_public_key(out / "keys" / "public.pem")))
    ledger = Ledger.open(out / "audit.db", read_only=True)
    assert verify_ledger(ledger, checkpoint=note, trusted_keys=[key]).ok
    ledger.close()
    copy = Ledger.open(out / "tampered-copy.db", read_only=True)
    report = verify_ledger(copy, checkpoint=note, trusted_keys=[key])
    copy.close()
    assert report.problem is Problem.HASH_MISMATCH and report.first_bad_seq == 1500
