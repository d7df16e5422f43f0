"""Trend plots of captured values against their limits (matplotlib, no display needed)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import matplotlib
import matplotlib.pyplot as plt

from gxpmes.reports.data import Series

matplotlib.use("Agg")  # no display: render to files only

__all__ = ["MAX_POINTS", "downsample", "plot"]

MAX_POINTS = 2000


def downsample(
    count: int, keep: list[int], max_points: int = MAX_POINTS, values: list[Decimal] | None = None
) -> list[int]:
    """Indexes to draw: min and max of each bucket (shape preserved), plus every index in ``keep``.

    Out-of-limit points are never dropped, however many values there are.
    """
    if count <= max_points:
        return list(range(count))
    buckets = max(1, max_points // 2)
    size = count / buckets
    chosen: set[int] = set(keep)
    for b in range(buckets):
        lo, hi = int(b * size), min(count, int((b + 1) * size))
        if lo >= hi:
            continue
        if values is None:
            chosen.update((lo, hi - 1))
        else:
            window = range(lo, hi)
            chosen.add(min(window, key=values.__getitem__))
            chosen.add(max(window, key=values.__getitem__))
    return sorted(chosen)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _days(times: list[datetime]) -> list[float]:
    """Matplotlib date numbers (days since 1970-01-01 UTC)."""
    return [(t - _EPOCH).total_seconds() / 86400 for t in times]


def plot(series: Series, fmt: str) -> bytes:
    """The trend plot of one parameter as ``svg`` or ``png`` bytes."""
    indexes = downsample(len(series.values), series.out_of_limit, values=series.values)
    times: list[datetime] = [series.times[i] for i in indexes]
    values = [float(series.values[i]) for i in indexes]
    figure, axes = plt.subplots(figsize=(7.5, 2.6), dpi=110)
    try:
        axes.plot(_days(times), values, linewidth=0.9, color="#1f5fa8", label=series.tag)
        axes.xaxis_date()
        limits = series.limits
        if limits is not None:
            for bound, style in ((limits.low, "--"), (limits.high, "--"), (limits.target, ":")):
                if bound is not None:
                    axes.axhline(float(bound), linestyle=style, linewidth=0.8, color="#666666")
        if series.out_of_limit:
            axes.scatter(
                _days([series.times[i] for i in series.out_of_limit]),
                [float(series.values[i]) for i in series.out_of_limit],
                color="#c00000",
                s=14,
                zorder=3,
                label="exception",
            )
        axes.set_title(f"{series.parameter} [{series.unit}]", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=6, loc="upper right")
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt)
        return buffer.getvalue()
    finally:
        plt.close(figure)
