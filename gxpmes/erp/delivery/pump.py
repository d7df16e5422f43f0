"""The receiving loop: fetch, handle, acknowledge — in that order, through outages."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from gxpmes.erp.delivery import Source, TransportDown

__all__ = ["receive"]

log = logging.getLogger("gxpmes.erp")


def receive(
    receiver: Any,
    source: Source,
    *,
    follow: bool,
    stop: threading.Event | None = None,
    counts: Counter[str] | None = None,
    poll: float = 1.0,
    backoff_cap: float = 60.0,
    status: Callable[[str | None], None] | None = None,
    status_interval: float = 10.0,
    batch: int = 100,
) -> Counter[str]:
    """Take documents from ``source`` until it is empty (``follow=False``) or ``stop`` is set.

    Up to ``batch`` documents already waiting are taken together (consecutive
    confirmations commit in one transaction). A document is acknowledged only
    after its outcome is committed. Without
    ``follow`` a source that is down raises :class:`TransportDown`; with it,
    the loop backs off and tries again, as it does when the database fails
    (the document then stays at its source and comes again).
    """
    stop = stop or threading.Event()
    counts = counts if counts is not None else Counter()
    failures = 0
    down: str | None = None
    last_status = time.monotonic()
    while not stop.is_set():
        if status is not None and time.monotonic() - last_status >= status_interval:
            status(down)
            last_status = time.monotonic()
        try:
            incoming = source.fetch(poll if follow else 0.0)
            if incoming is None:
                if not follow:
                    break
                continue
            window = [incoming]  # what is queued already joins (confirmations: one transaction)
            while len(window) < batch and (more := source.fetch(0.0)) is not None:
                window.append(more)
            results = receiver.handle_many([(i.body, i.origin) for i in window])
            for item, result in zip(window, results, strict=True):
                counts[result.outcome] += 1
                source.ack(item)
            failures, down = 0, None
        except TransportDown as exc:
            source.reset()
            if not follow:
                raise
            down = str(exc)
        except Exception as exc:  # the database failed: keep the documents, retry later
            source.reset()
            if not follow:
                raise
            log.warning("inbound documents left at their source: %s", exc)
            down = f"database: {exc}"
        if down is not None:
            failures += 1
            counts["outages"] += 1
            stop.wait(min(backoff_cap, 0.5 * 2 ** min(failures, 16)))
    return counts
