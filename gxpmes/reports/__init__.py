"""Human-readable batch record (21 CFR 11.10(b)): a self-contained HTML file and a PDF."""

from gxpmes.reports.data import ReportData, collect_report
from gxpmes.reports.render import render_report, write_report

__all__ = ["ReportData", "collect_report", "render_report", "write_report"]
