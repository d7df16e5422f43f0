"""Waiting in tests: poll a condition up to a generous deadline, never sleep a fixed time.

The tests share a small machine with other work, so a deadline bounds how long
a failure takes to show; it is not how long anything is expected to take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEADLINE = 60.0  # seconds


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float = DEADLINE,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Return as soon as ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(interval)


async def until(
    condition: Callable[[], object],
    *,
    timeout: float = DEADLINE,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """:func:`wait_until` for coroutines: polls without blocking the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        await asyncio.sleep(interval)
