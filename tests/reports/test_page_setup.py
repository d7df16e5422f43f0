"""The page set-up the batch record and the trail share: each its own margins, header and footer."""

from __future__ import annotations

import io

from ebr_support import Plant
from pypdf import PageObject, PdfReader

from gxpmes.reports import collect_report
from gxpmes.reports.render import render_pdf
from gxpmes.reports.trail import render_trail_pdf
from gxpmes.trail.review import TrailScope, collect_trail

B = "B-2026-0001"
MM = 72 / 25.4


def runs_of(page: PageObject) -> dict[str, tuple[float, float]]:
    """A page's text runs with where they start (in mm from the bottom left)."""
    runs: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        if text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            runs.setdefault(text.strip(), (round(x / MM, 1), round(y / MM, 1)))

    page.extract_text(visitor_text=visit)
    return runs


def placed(pdf: bytes) -> list[dict[str, tuple[float, float]]]:
    return [runs_of(page) for page in PdfReader(io.BytesIO(pdf)).pages]


def test_trail_pages_carry_scope_hash_and_numbers_in_its_margins(released: Plant) -> None:
    view = collect_trail(released.db, TrailScope(batch_id=B))
    pages = placed(render_trail_pdf(view))
    assert len(pages) > 1
    for number, runs in enumerate(pages, start=1):
        assert runs[f"Audit trail — batch {B}"] == (12.0, 287.0)
        assert runs[f"sha256 {view.content_sha256}"] == (12.0, 8.0)
        x, y = runs[f"Page {number} of {len(pages)}"]
        assert y == 8.0 and 170 < x < 198  # right-aligned on the 12 mm margin
        assert not any(text.startswith("NOT VERIFIED") for text in runs)


def test_batch_record_pages_carry_batch_banner_and_numbers_in_its_margins(
    released: Plant,
) -> None:
    data = collect_report(released.engine, B)
    assert data.banner and data.banner.startswith("NOT VERIFIED")  # no trusted key given
    b = data.batch
    pages = placed(render_pdf(data))
    assert len(pages) > 1
    for number, runs in enumerate(pages, start=1):
        assert runs[f"Batch record {B} — {b['product_id']} — {b['status']}"] == (15.0, 287.0)
        assert runs[B] == (15.0, 10.0)
        x, y = runs[f"Page {number} of {len(pages)}"]
        assert y == 10.0 and 170 < x < 195  # right-aligned on the 15 mm margin
        x, y = runs[data.banner]
        assert y == 280.5 and 15 < x < 105  # centred on the page, between the margins
