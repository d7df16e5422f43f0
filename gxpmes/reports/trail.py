"""The audit trail of a scope as a reviewer reads it: HTML (jinja2) and PDF (reportlab).

Rows come from :func:`gxpmes.trail.collect_trail`: who (printed name and id),
when (the client's zone and UTC), what (action and object, rows written),
old → new, why and the signature meaning. The HTML is a function of the rows
alone, so the same scope read through the same entry renders the same file;
its header carries the SHA-256 a reviewer records (:mod:`gxpmes.trail`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, select_autoescape

from gxpmes.reports.filenames import report_stem
from gxpmes.trail.review import RecordedReview, TrailRow, TrailView

__all__ = ["render_trail_html", "render_trail_pdf", "show", "trail_stem", "write_trail"]

_TEMPLATE = Path(__file__).with_name("audit_trail.html.j2")


def show(value: Any) -> str:
    """A value of an entry as compact JSON (``—`` for none)."""
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def environment() -> Environment:
    """The jinja2 environment both trail renderings use."""
    env = Environment(autoescape=select_autoescape(default=True))
    env.globals["show"] = show
    return env


def trail_macro() -> Any:
    """The ``trail_table`` macro, for templates that append a trail (the batch record)."""
    template = environment().from_string(_TEMPLATE.read_text(encoding="utf-8"))
    return getattr(template.make_module({"standalone": False}), "trail_table")  # noqa: B009


def render_trail_html(view: TrailView, reviews: Sequence[RecordedReview] = ()) -> str:
    """One self-contained HTML document of the trail of ``view``."""
    template = environment().from_string(_TEMPLATE.read_text(encoding="utf-8"))
    return template.render(t=view, reviews=list(reviews), standalone=True)


def _cells(row: TrailRow) -> list[str]:
    what = f"{row.action}\n{row.object_type} {row.object_id}"
    if row.rows_written:
        what += "\n" + ", ".join(row.rows_written)
    values = (f"{show(row.old)} → " if row.old is not None else "") + show(row.new)
    return [
        str(row.seq),
        f"{row.local_time}\n{row.recorded_at}",
        f"{row.printed_name} ({row.actor_id})",
        what,
        values,
        row.reason or "",
        row.meaning or "",
    ]


def trail_flowables(view: TrailView, style: Any, widths: Sequence[float]) -> list[Any]:
    """The trail as a reportlab table (for this PDF and the batch record's appendix)."""
    from reportlab.platypus import Paragraph, Table

    from gxpmes.reports.render import grid_style

    def p(text: str) -> Paragraph:
        return Paragraph(escape(text).replace("\n", "<br/>"), style)

    header = ["#", "When (client zone; UTC)", "Who", "What", "Old → new", "Why", "Signature"]
    rows = [[p(c) for c in header]] + [[p(c) for c in _cells(row)] for row in view.rows]
    if not view.rows:
        rows.append([p("no entries in this scope")] + [p("")] * 6)
    table = Table(rows, colWidths=list(widths), repeatRows=1)
    table.setStyle(grid_style())
    return [table]


TRAIL_WIDTHS_MM = (9, 32, 25, 34, 48, 20, 18)
"""Column widths (mm) of the trail table on A4 portrait, margins 12 mm."""


def render_trail_pdf(view: TrailView, reviews: Sequence[RecordedReview] = ()) -> bytes:
    """The trail of ``view`` as PDF bytes (embedded font, scope and page numbers on every page)."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer

    from gxpmes.reports.render import FONT, _register_font, paged_pdf

    _register_font()
    small = ParagraphStyle("small", fontName=FONT, fontSize=6.5, leading=8)
    body = ParagraphStyle("body", fontName=FONT, fontSize=8, leading=10)
    title = ParagraphStyle("title", fontName=FONT + "-Bold", fontSize=13, leading=17)
    label = view.scope.describe()

    def story() -> list[Any]:
        items: list[Any] = [
            Paragraph(escape(f"Audit trail review — {label}"), title),
            Spacer(1, 2 * mm),
            Paragraph(
                escape(
                    f"Log {view.origin}; read through entry {view.through_seq}; "
                    f"{len(view.rows)} entries in scope."
                ),
                body,
            ),
            Paragraph(escape(f"Content SHA-256: {view.content_sha256}"), body),
            Spacer(1, 3 * mm),
        ]
        items += trail_flowables(view, small, [w * mm for w in TRAIL_WIDTHS_MM])
        for review in reviews:
            items.append(
                Paragraph(
                    escape(
                        f"{review.manifestation} — through entry {review.through_seq}, "
                        f"sha256 {review.content_sha256}: {review.comment}"
                    ),
                    body,
                )
            )
        return items

    return paged_pdf(
        story,
        title=f"Audit trail {label}",
        header=f"Audit trail — {label}",
        footer=f"sha256 {view.content_sha256}",
        margins=(12, 12, 18, 14),
        font_size=7,
    )


def trail_stem(view: TrailView) -> str:
    """File-name stem of a trail rendering: the batch, or a hash of the scope."""
    if view.scope.batch_id is not None and view.scope.complete:
        return f"{report_stem(view.scope.batch_id)}-audit-trail"
    digest = hashlib.sha256(json.dumps(view.scope.as_json(), sort_keys=True).encode()).hexdigest()
    name = view.scope.batch_id or "range"
    return f"{report_stem(name)}-audit-trail-{digest[:10]}"


def write_trail(
    view: TrailView,
    out: Path,
    *,
    formats: Sequence[str] = ("html", "pdf"),
    reviews: Sequence[RecordedReview] = (),
) -> dict[str, Path]:
    """Write the trail of ``view`` into folder ``out``; returns format → file."""
    from gxpmes.reports.render import _check_formats

    _check_formats(formats)
    out.mkdir(parents=True, exist_ok=True)
    stem = trail_stem(view)
    written: dict[str, Path] = {}
    if "html" in formats:
        written["html"] = out / f"{stem}.html"
        written["html"].write_text(render_trail_html(view, reviews), encoding="utf-8")
    if "pdf" in formats:
        written["pdf"] = out / f"{stem}.pdf"
        written["pdf"].write_bytes(render_trail_pdf(view, reviews))
    return written
