"""The human-readable batch record: content, seal, every-page markings, fonts, rendering."""

from __future__ import annotations

import re
import sqlite3
import statistics
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from ebr_support import HEAT, Plant, make_plant
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from audit.keys import TrustedKey, generate_private_key
from audit.note import NoteSigner
from gxpmes.ebr.engine import CapturedValue
from gxpmes.reports import collect_report, render_report
from gxpmes.reports.plots import MAX_POINTS, downsample
from gxpmes.testing.plant import OT_SOURCE

B = "B-2026-0001"


def pdf_pages(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_report_content_and_seal(released: Plant, tmp_path: Path) -> None:
    signer = NoteSigner("audit-key", generate_private_key())
    note = released.db.ledger.checkpoint(signer)
    written = render_report(
        released.engine,
        B,
        tmp_path / "out",
        checkpoint=note,
        trusted_keys=[TrustedKey(signer.verifier)],
    )
    data = collect_report(
        released.engine, B, checkpoint=note, trusted_keys=[TrustedKey(signer.verifier)]
    )
    pages = pdf_pages(written["pdf"])
    text = normalised(" ".join(pages))
    for signature in data.signatures:  # every manifestation, as printed on paper
        assert normalised(signature["manifestation"]) in text, signature["manifestation"]
    for item in data.review:
        if item["kind"].startswith("exception"):
            assert normalised(item["detail"]) in text
    assert "VERIFIED" in text and data.seal["root"] in text.replace(" ", "")
    assert f"key {signer.verifier.key_id}" in text
    assert data.verdict == "verified" and "FAILED" not in text and "NOT VERIFIED" not in text
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page and B in page

    html = written["html"].read_text()
    assert "<svg" in html and "VERIFIED" in html
    assert not re.search(r"<(img|script|link)[^>]+(src|href)=", html)  # self-contained
    for signature in data.signatures:
        assert signature["manifestation"] in html


def test_fonts_are_embedded_and_pages_render(released: Plant, tmp_path: Path) -> None:
    pdf = render_report(released.engine, B, tmp_path, formats=["pdf"])["pdf"]
    reader = PdfReader(pdf)
    fonts = {}
    for page in reader.pages:
        # Fonts actually used by text operators ("/F2+0 8 Tf"), not merely declared.
        used = set(re.findall(rb"/([^\s/]+) [\d.]+ Tf", page.get_contents().get_data()))
        resources = page["/Resources"]["/Font"]
        for name in used:
            font = resources["/" + name.decode()].get_object()
            descriptor = (
                font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
                if "/DescendantFonts" in font
                else font.get("/FontDescriptor")
            )
            fonts[font["/BaseFont"]] = (
                descriptor is not None and "/FontFile2" in descriptor.get_object()
            )
    assert fonts and all(fonts.values()), fonts
    document = pdfium.PdfDocument(str(pdf))
    try:
        for index in range(len(document)):
            image = document[index].render(scale=0.5).to_pil().convert("L")
            pixels = list(image.tobytes())
            assert statistics.pstdev(pixels) > 10, f"page {index + 1} is blank"
            assert min(pixels) < 60  # there is ink on the page
    finally:
        document.close()


def test_failed_verification_is_shown_on_every_page(released: Plant, tmp_path: Path) -> None:
    db_file = Path(str(released.db.engine.url.database))
    with sqlite3.connect(db_file) as conn:
        conn.execute("DROP TRIGGER audit_entry_no_update")
        conn.execute("UPDATE audit_entry SET canonical = CAST('{}' AS BLOB) WHERE seq = 40")
    pdf = render_report(released.engine, B, tmp_path, formats=["pdf", "html"])
    pages = pdf_pages(pdf["pdf"])
    assert len(pages) > 1
    for page in pages:
        assert "VERIFICATION FAILED — THIS RECORD CANNOT BE TRUSTED" in page
    assert "hash_mismatch" in " ".join(pages)
    assert "VERIFICATION FAILED — THIS RECORD CANNOT BE TRUSTED" in pdf["html"].read_text()


def test_unknown_format_is_refused(released: Plant, tmp_path: Path) -> None:
    from gxpmes.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="docx"):
        render_report(released.engine, B, tmp_path, formats=["docx"])


@given(st.integers(0, 50_000), st.lists(st.integers(0, 49_999), max_size=50), st.integers(10, 3000))
def test_downsampling_keeps_every_exception(count: int, keep: list[int], max_points: int) -> None:
    keep = sorted({k for k in keep if k < count})
    values = [Decimal(i % 97) for i in range(count)]
    chosen = downsample(count, keep, max_points, values)
    assert set(keep) <= set(chosen)
    assert chosen == sorted(set(chosen)) and all(0 <= i < count for i in chosen)
    if count <= max_points:
        assert chosen == list(range(count))
    else:
        assert len(chosen) <= max_points + len(keep) + 2


@pytest.mark.slow
def test_large_batch_renders_with_downsampled_plots(tmp_path: Path) -> None:
    plant = make_plant(str(tmp_path / "big.db"))
    engine = plant.engine
    plant.start_batch("B-BIG", phases=(HEAT,))
    start = plant.clock() - timedelta(hours=3)  # plant history: never ahead of the server
    spikes = {13_337, 64_000, 99_999}
    values = [
        CapturedValue(
            "B-BIG",
            f"{HEAT}/temperature",
            "TT-101",
            Decimal("80.0") if i in spikes else Decimal(6800 + i % 300) / 100,
            "Cel",
            start + timedelta(milliseconds=100 * i),
        )
        for i in range(100_000)
    ]
    for chunk in range(0, len(values), 5000):
        engine.capture(values[chunk : chunk + 5000], source=OT_SOURCE)
    data = collect_report(engine, "B-BIG")
    series = data.series[0]
    assert len(series.values) == 100_000 and set(series.out_of_limit) == spikes
    # The appendix lists the trail without the captures (the plot shows them) and says so.
    assert data.trail is not None and data.trail_listed is not None
    # Captured in value blocks: one entry per capture call of 5,000 values.
    blocks = [r for r in data.trail.rows if r.action == "value.block"]
    assert len(blocks) == 20 and sum(r.new["values"] for r in blocks) == 100_000
    assert not any(r.action in ("value.block", "value.capture") for r in data.trail_listed.rows)
    assert data.trail_listed.rows and (
        "100000 captured process values in 20 capture entries"
    ) in str(data.trail_captures)
    drawn = downsample(len(series.values), series.out_of_limit, values=series.values)
    assert set(series.out_of_limit) <= set(drawn) and len(drawn) <= MAX_POINTS + len(spikes) + 2
    written = render_report(engine, "B-BIG", tmp_path / "big", formats=["pdf", "html"])
    assert written["pdf"].stat().st_size < 5_000_000
    assert "100000 values, 3 exception(s)" in normalised(" ".join(pdf_pages(written["pdf"])))
    plant.db.close()


def test_report_cli(released: Plant, tmp_path: Path) -> None:
    from gxpmes.cli import main

    db_file = str(released.db.engine.url.database)
    assert (
        main(
            [
                "report",
                "--db",
                db_file,
                "--batch",
                B,
                "--out",
                str(tmp_path / "cli"),
                "--format",
                "html",
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / f"{B}-batch-record.html").exists()
    assert (
        main(["report", "--db", str(tmp_path / "none.db"), "--batch", B, "--out", str(tmp_path)])
        == 2
    )
    assert main(["report", "--db", db_file, "--batch", "NOPE", "--out", str(tmp_path)]) == 2
