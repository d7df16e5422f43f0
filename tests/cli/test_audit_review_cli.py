"""``gxpmes audit review``: render a batch's or a time range's trail; record its signed review."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ebr_support import USERS, Plant, make_plant

from audit.keys import write_key_pair
from gxpmes.cli import main
from gxpmes.records.verify import verify_record
from gxpmes.testing import steps
from gxpmes.testing.plant import HEAD_KEY_NAME, Clock

PASS = "correct horse battery"
B = "B-CLI"


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plant]:
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    # Users made minutes ago: the command signs on this machine's clock, and a
    # password older than the policy's 90 days would be refused at signing.
    clock = Clock(datetime.now(UTC) - timedelta(minutes=5))
    installation = make_plant(str(tmp_path / "plant.db"), clock=clock)
    assert installation.system_key is not None
    write_key_pair(installation.system_key, tmp_path / "keys", PASS.encode())
    steps.batch_executed(installation, B)
    installation.engine.complete_review(B, installation.creds("qa1"))
    yield installation
    installation.db.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_render_then_record_then_release(
    plant: Plant,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, out = str(tmp_path / "plant.db"), tmp_path / "review"
    code, text, _ = run(capsys, "audit", "review", "--db", db, "--batch", B, "--out", str(out))
    assert code == 0
    sha = re.search(r"^sha256: ([0-9a-f]{64})$", text, re.M)
    through = re.search(r"read through entry (\d+)", text)
    assert sha and through, text
    html = (out / f"{B}-audit-trail.html").read_text(encoding="utf-8")
    assert sha.group(1) in html and "Sam Supervisor (sup1)" in html and "batch.create" in html
    assert (out / f"{B}-audit-trail.pdf").read_bytes().startswith(b"%PDF")

    record = [
        "audit", "review", "--db", db, "--batch", B, "--out", str(out), "--record",
        "--user", "qa1", "--through", through.group(1), "--comment", "no unexplained change",
        "--signature-key", str(tmp_path / "keys" / "private.pem"),
        "--head-key", str(tmp_path / "keys" / "private.pem"), "--head-key-name", HEAD_KEY_NAME,
    ]  # fmt: skip
    monkeypatch.setenv("GXPMES_PASSWORD", USERS["qa1"][2])
    code, _, err = run(capsys, *record, "--sha256", "f" * 64)
    assert code != 0 and "review what the trail holds" in err
    assert plant.engine.trail_reviews.reviews(B) == []
    code, text, _ = run(capsys, *record, "--sha256", sha.group(1))
    assert code == 0, text
    assert "recorded review ATR-" in text and "Quinn Reviewer (qa1) — Reviewed" in text
    plant.clock.now = datetime.now(UTC)  # the log's time never goes back (11.10(e))
    plant.engine.release(B, plant.creds("qa2"))
    assert plant.engine.batch(B)["status"] == "Released"
    report = verify_record(plant.db.engine, signature_keys=plant.signature_keys())
    assert report.ok, report.lines()


def test_time_range_and_filters(
    plant: Plant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = str(tmp_path / "plant.db"), tmp_path / "range"
    code, text, _ = run(
        capsys, "audit", "review", "--db", db, "--since", "2026-03-01T00:00:00Z",
        "--until", "2100-01-01T00:00:00+01:00", "--action", "user.*", "--out", str(out),
        "--format", "html",
    )  # fmt: skip
    assert code == 0, text
    files = list(out.glob("*.html"))
    assert len(files) == 1
    html = files[0].read_text(encoding="utf-8")
    assert "user.create" in html and "batch.create" not in html


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "2026-03-01T00:00:00"], "has no time zone"),
        (["--since", "yesterday", "--until", "2026-03-01T00:00:00Z"], "not an ISO 8601"),
        (["--batch", B, "--record"], "--record needs --user, --sha256, --through"),
        ([], "give --batch ID"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(
    plant: Plant,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    code, _, err = run(
        capsys, "audit", "review", "--db", str(tmp_path / "plant.db"), "--out", str(tmp_path), *args
    )
    assert code == 2 and says in err, err
