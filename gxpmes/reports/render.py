"""Render a batch record as self-contained HTML (jinja2, inline SVG) and as PDF (reportlab).

The PDF embeds its font (DejaVu Sans, shipped with matplotlib) so it prints
identically everywhere, carries the batch id and page numbers on every page,
and on every page a red warning when verification failed, or an amber one when
it could not be done in full (no trusted key or checkpoint given).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from audit.keys import TrustedKey
from gxpmes.ebr.engine import BatchEngine
from gxpmes.reports.data import ReportData, collect_report
from gxpmes.reports.filenames import report_stem
from gxpmes.reports.plots import plot

__all__ = ["render_html", "render_pdf", "render_report", "write_report"]

_TEMPLATE = Path(__file__).with_name("batch_record.html.j2")
FONT = "DejaVuSans"
# Verdict → how the seal names it, and the banner's fill and text colours (none when verified).
VERDICTS = {
    "verified": ("VERIFIED", None, None),
    "not_checked": ("NOT VERIFIED", "#f0a800", "#000000"),
    "failed": ("VERIFICATION FAILED", "#b00000", "#ffffff"),
}


def render_html(data: ReportData) -> str:
    """One self-contained HTML document (plots inline as SVG)."""
    svgs = [plot(series, "svg").decode("utf-8").split("?>", 1)[-1] for series in data.series]
    from gxpmes.reports.trail import environment, trail_macro

    return (
        environment()
        .from_string(_TEMPLATE.read_text(encoding="utf-8"))
        .render(d=data, svgs=svgs, verdicts=VERDICTS, trail_table=trail_macro())
    )


def _register_font() -> None:
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont(FONT, str(fonts / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(FONT + "-Bold", str(fonts / "DejaVuSans-Bold.ttf")))


def _cleaning(entry: dict[str, object]) -> str:
    return f"{entry['at']} {entry['by']}: {entry['comment']}"


def grid_style() -> Any:
    """The style of every table in the reports: a grey grid, the embedded font, the header
    row shaded, cells aligned at the top."""
    from reportlab.lib import colors
    from reportlab.platypus import TableStyle

    return TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("FONTNAME", (0, 0), (-1, -1), FONT),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )


def render_pdf(data: ReportData) -> bytes:
    """The report as PDF bytes."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, Spacer, Table

    _register_font()
    body = ParagraphStyle("body", fontName=FONT, bulletFontName=FONT, fontSize=8, leading=10)
    small = ParagraphStyle("small", parent=body, fontSize=7, leading=9)
    head = ParagraphStyle(
        "head", parent=body, fontName=FONT + "-Bold", fontSize=11, leading=14, spaceBefore=8
    )
    title = ParagraphStyle("title", parent=body, fontName=FONT + "-Bold", fontSize=15, leading=19)
    batch_id = data.batch["batch_id"]

    def p(text: object, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(
            escape(str(text if text is not None else "—")).replace("\n", "<br/>"), style
        )

    def table(rows: list[list[object]], widths: Sequence[float] | None = None) -> Table:
        cells = [
            [c if isinstance(c, Paragraph | Image) else p(c, small) for c in row] for row in rows
        ]
        result = Table(cells, colWidths=widths, repeatRows=1)
        result.setStyle(grid_style())
        return result

    def sigs(items: list[dict[str, object]]) -> str:
        return "\n".join(f"{s['manifestation']} [{s['marking']}]" for s in items)

    b = data.batch
    pngs = [plot(series, "png") for series in data.series]  # drawn once, used by both passes

    def make_story() -> list[object]:
        story: list[object] = [p(f"Electronic batch record {batch_id}", title), Spacer(1, 3 * mm)]
        b = data.batch
        story.append(
            table(
                [
                    ["Product", b["product_id"], "Master recipe", data.recipe_title],
                    ["Produced lot", b["lot_id"], "Status", b["status"]],
                    [
                        "Planned",
                        f"{b['planned_quantity']} {b['unit']}",
                        "Actual",
                        f"{b['actual_quantity']} {b['unit']}",
                    ],
                    ["Yield", f"{data.yield_percent} %", "Created", b["created_at"]],
                    ["Started", b["started_at"], "Executed", b["executed_at"]],
                    ["Closed", b["closed_at"], "Report made", data.generated_at.isoformat()],
                ]
            )
        )
        story += [
            p("Equipment", head),
            table(
                [["Equipment", "Last cleaning", "Use in this batch"]]
                + [
                    [
                        e["equipment_id"],
                        _cleaning(e["last_cleaning"]) if e["last_cleaning"] else "—",
                        "\n".join(f"{u['event']} {u['at']} ({u['by']})" for u in e["used"]),
                    ]
                    for e in data.equipment
                ]
            ),
        ]
        story += [
            p("Materials weighed and dispensed", head),
            table(
                [["Material", "Lot", "Target ± tol.", "Actual", "Balance", "Signatures"]]
                + [
                    [
                        w["material_id"],
                        w["lot_id"],
                        f"{w['target']} ± {w['tolerance']} {w['unit']}",
                        f"{w['actual']} {w['unit']}",
                        w["balance_id"],
                        sigs(w["signatures"]),
                    ]
                    for w in data.weighings
                ],
                [28 * mm, 22 * mm, 26 * mm, 20 * mm, 16 * mm, 68 * mm],
            ),
        ]
        story += [
            p("Procedure", head),
            table(
                [["Element", "State", "Performed / verified"]]
                + [[s["path"], s["state"], sigs(s["signatures"])] for s in data.steps],
                [55 * mm, 20 * mm, 105 * mm],
            ),
        ]
        story.append(p("Process values", head))
        for series, png in zip(data.series, pngs, strict=True):
            story.append(Image(io.BytesIO(png), width=170 * mm, height=59 * mm))
            limits = series.limits
            story.append(
                p(
                    f"{series.parameter} ({series.tag}): {len(series.values)} values, "
                    f"{len(series.out_of_limit)} exception(s)"
                    + (f"; limits {limits.low} – {limits.high} {limits.unit}" if limits else ""),
                    small,
                )
            )
        story += [
            p("Review by exception", head),
            table(
                [["Item", "Reference", "Detail", "Assessment"]]
                + [
                    [
                        r["kind"],
                        r["reference"],
                        r["detail"],
                        ("OPEN " if r["open"] else "")
                        + str(r.get("assessment") or r.get("reason") or "")
                        + ("\n" + sigs(r["signatures"]) if r["signatures"] else ""),
                    ]
                    for r in data.review
                ],
                [32 * mm, 40 * mm, 50 * mm, 58 * mm],
            ),
        ]
        story += [
            p("Deviations", head),
            table(
                [["Deviation", "Detail", "Investigation / impact", "Closure"]]
                + [
                    [
                        v["deviation_id"],
                        v["detail"],
                        f"{v.get('investigation') or ''} / {v.get('impact') or ''}",
                        sigs(v["signatures"]),
                    ]
                    for v in data.deviations
                ]
                or [["none", "", "", ""]],
                [26 * mm, 44 * mm, 50 * mm, 60 * mm],
            ),
        ]
        story += [
            p("Decision", head),
            p(
                f"{data.decision['manifestation']} [{data.decision['marking']}]"
                if data.decision
                else "No release decision yet."
            ),
        ]
        seal = data.seal
        story += [
            p("Audit trail verification seal", head),
            table(
                [
                    ["Result", f"{VERDICTS[data.verdict][0]}: {seal['summary']}"],
                    *(["Not checked", reason] for reason in seal["not_checked"]),
                    ["Log", seal["origin"]],
                    ["Tree size", seal["tree_size"]],
                    ["Root hash", seal["root"]],
                    [
                        "Checkpoint",
                        f"size {seal['checkpoint_size']}, key {seal['checkpoint_key_id']}"
                        if seal["checkpoint_key_id"]
                        else "no checkpoint given",
                    ],
                    ["Signatures", data.signature_summary],
                ],
                [30 * mm, 150 * mm],
            ),
        ]
        if data.trail is not None:
            from gxpmes.reports.trail import TRAIL_WIDTHS_MM, trail_flowables

            trail = data.trail
            story += [
                p(f"Appendix: audit trail of batch {batch_id}", head),
                p(
                    f"{len(trail.rows)} entries, read through entry {trail.through_seq}; "
                    f"content SHA-256 {trail.content_sha256}",
                    small,
                ),
            ]
            story += [
                p(
                    f"Trail review: {v.manifestation} — through entry {v.through_seq}, "
                    f"sha256 {v.content_sha256}: {v.comment}",
                    small,
                )
                for v in data.trail_reviews
            ] or [p("No review of this batch's audit trail is recorded.", small)]
            if data.trail_captures:
                story.append(p(data.trail_captures, small))
            listed = data.trail_listed or trail
            # The page is 180 mm wide here (margins 15 mm), the trail table 186 mm.
            story += trail_flowables(listed, small, [w * mm * 180 / 186 for w in TRAIL_WIDTHS_MM])

        return story

    banner = None
    if data.banner:
        _label, fill, ink = VERDICTS[data.verdict]
        assert fill is not None and ink is not None
        banner = (data.banner, fill, ink)
    return paged_pdf(
        make_story,
        title=f"Batch record {batch_id}",
        header=f"Batch record {batch_id} — {b['product_id']} — {b['status']}",
        footer=f"{batch_id}",
        margins=(15, 15, 24, 16),
        font_size=8,
        banner=banner,
    )


def paged_pdf(
    story: Callable[[], list[Any]],
    *,
    title: str,
    header: str,
    footer: str,
    margins: tuple[float, float, float, float],
    font_size: float,
    banner: tuple[str, str, str] | None = None,
) -> bytes:
    """The A4 page set-up of every report: ``story()`` built with ``title``, the embedded
    font, and on every page ``header`` at the top left, ``footer`` at the bottom left and
    "Page n of N" at the bottom right (6 mm below the text), in ``font_size`` points.

    ``margins`` are left, right, top and bottom in mm (the header and footer align with
    the left and right ones); ``banner`` is a warning's text, fill and ink colours, drawn
    bold across the text width under the header (the top margin must leave it room).
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import SimpleDocTemplate

    left, right, top, bottom = (m * mm for m in margins)
    width = A4[0] - left - right
    pages: list[int] = []

    def decorate(canvas: object, document: object) -> None:
        assert isinstance(canvas, Canvas)
        canvas.saveState()
        canvas.setFont(FONT, font_size)
        canvas.drawString(left, 287 * mm, header)
        if banner is not None:
            text, fill, ink = banner
            canvas.setFillColor(colors.HexColor(fill))
            canvas.rect(left, 278 * mm, width, 7 * mm, fill=1, stroke=0)
            canvas.setFillColor(colors.HexColor(ink))
            canvas.setFont(FONT + "-Bold", 9)
            canvas.drawCentredString(left + width / 2, 280.5 * mm, text)
            canvas.setFillColor(colors.black)
            canvas.setFont(FONT, font_size)
        page = canvas.getPageNumber()
        total = pages[0] if pages else 0
        canvas.drawRightString(
            A4[0] - right, bottom - 6 * mm, f"Page {page} of {total}" if total else f"Page {page}"
        )
        canvas.drawString(left, bottom - 6 * mm, footer)
        canvas.restoreState()

    def build(total: int) -> bytes:
        pages[:] = [total] if total else []
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=left,
            rightMargin=right,
            topMargin=top,
            bottomMargin=bottom,
            title=title,
            author="gxpmes",
            initialFontName=FONT,  # else every page opens with base-14 Helvetica (not embedded)
        )
        doc.build(story(), onFirstPage=decorate, onLaterPages=decorate)
        return buffer.getvalue()

    return built_twice(build)


def built_twice(build: Callable[[int], bytes]) -> bytes:
    """``build(total)`` run twice: the first run (total 0) counts the pages that
    "Page n of N" needs, the second prints them."""
    from pypdf import PdfReader

    first = build(0)
    return build(len(PdfReader(io.BytesIO(first)).pages))


def render_report(
    engine: BatchEngine,
    batch_id: str,
    out: Path,
    *,
    formats: Sequence[str] = ("html", "pdf"),
    checkpoint: str | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
) -> dict[str, Path]:
    """Write the report of ``batch_id`` into folder ``out``; returns format → file."""
    _check_formats(formats)
    data = collect_report(engine, batch_id, checkpoint=checkpoint, trusted_keys=trusted_keys)
    return write_report(data, out, formats=formats)


def _check_formats(formats: Sequence[str]) -> None:
    unknown = [f for f in formats if f not in ("html", "pdf")]
    if unknown:
        from gxpmes.errors import ConfigurationError

        raise ConfigurationError(f"unknown report format(s): {', '.join(unknown)} (html, pdf)")


def write_report(
    data: ReportData, out: Path, *, formats: Sequence[str] = ("html", "pdf")
) -> dict[str, Path]:
    """Write collected report ``data`` into folder ``out``; returns format → file."""
    _check_formats(formats)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    stem = report_stem(data.batch["batch_id"])  # never a path: the id may hold '/' or '..'
    if "html" in formats:
        written["html"] = out / f"{stem}-batch-record.html"
        written["html"].write_text(render_html(data), encoding="utf-8")
    if "pdf" in formats:
        written["pdf"] = out / f"{stem}-batch-record.pdf"
        written["pdf"].write_bytes(render_pdf(data))
    return written
