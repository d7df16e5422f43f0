"""Caller-supplied text against the width of the column that keeps it.

PostgreSQL refuses text longer than a ``VARCHAR(n)`` column with a raw
``DataError`` at insert, while SQLite keeps it silently: the same call would
fail on one database and pass on the other. The APIs that write caller text
into such columns check it here first, before anything is written, and raise
their own exception (``BatchError``, ``CaptureRefused``, ``SignatureError``...)
naming the field, its length and the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gxpmes.errors import GxpError

__all__ = ["chars_of", "check_length", "check_lengths", "length_refusal"]


def chars_of(limit: Any) -> int:
    """The most characters ``limit`` allows: an int, or a mapped ``String(n)`` column."""
    if isinstance(limit, int):
        return limit
    return int(limit.type.length)


def length_refusal(what: str, value: object, limit: Any) -> str | None:
    """Why ``value`` (text) does not fit ``limit`` (see :func:`chars_of`), or None.

    Anything that is not text passes: the caller's own checks say what it should be.
    """
    if not isinstance(value, str):
        return None
    most = chars_of(limit)
    if len(value) <= most:
        return None
    shown = value[:40].encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{what} {shown!r}… has {len(value)} characters; at most {most}"


def check_length(error: type[GxpError], what: str, value: object, limit: Any) -> None:
    """Raise ``error`` when text ``value`` is longer than ``limit`` allows."""
    refusal = length_refusal(what, value, limit)
    if refusal is not None:
        raise error(refusal)


def check_lengths(error: type[GxpError], fields: Iterable[tuple[str, object, Any]]) -> None:
    """:func:`check_length` of each ``(what, value, limit)``, in order: the first too long
    raises."""
    for what, value, limit in fields:
        check_length(error, what, value, limit)
