"""Exception hierarchy of the isa95 package: every failure is an :class:`ISA95Error`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

QUOTED_CHARS = 80
"""Characters of an input value an error message repeats; the rest is counted, not shown."""
LONG_MESSAGE_CHARS = 1000
"""Messages longer than this have their quoted values shortened (:func:`shorten`)."""
MAX_MESSAGE_CHARS = 4000
"""No error message is longer than this (plus the count of what was cut)."""

_QUOTED = re.compile(
    rf"'[^'\n]{{{QUOTED_CHARS + 1},}}(?:'|$)|\"[^\"\n]{{{QUOTED_CHARS + 1},}}(?:\"|$)"
)
"""A quoted value longer than :data:`QUOTED_CHARS` (or one cut off before its closing
quote, as libxml2 cuts its messages)."""


def shorten(value: str, limit: int = QUOTED_CHARS) -> str:
    """``value`` as an error message quotes it: whole when short, else its first ``limit``
    characters, ``…`` and its length (``'XXXX…' (1,000,000 characters)`` for a repr)."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def quoted(value: str, limit: int = QUOTED_CHARS) -> str:
    """``repr(value)`` for an error message, shortened as :func:`shorten` does."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def _shorten_quoted(match: re.Match[str]) -> str:
    quoted = match.group(0)
    quote = quoted[0]
    length = len(quoted) - (2 if quoted.endswith(quote) else 1)
    return f"{quote}{quoted[1 : QUOTED_CHARS + 1]}…{quote} ({length:,} characters)"


def bounded_message(message: str) -> str:
    """``message`` with every quoted value longer than :data:`QUOTED_CHARS` shortened
    (when the message is long), and cut at :data:`MAX_MESSAGE_CHARS` in any case.

    Every :class:`ISA95Error` passes its message through this, so an input value
    of a megabyte never becomes a megabyte of error message.
    """
    if len(message) <= LONG_MESSAGE_CHARS:
        return message
    message = _QUOTED.sub(_shorten_quoted, message)
    return shorten(message, MAX_MESSAGE_CHARS)


class ISA95Error(Exception):
    """Base class of every error raised by :mod:`isa95`.

    Its message is bounded (:func:`bounded_message`): input values it quotes are
    shortened to their first :data:`QUOTED_CHARS` characters and their length.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*(bounded_message(a) if isinstance(a, str) else a for a in args))


class ModelError(ISA95Error, ValueError):
    """A model is inconsistent (wrong hierarchy level, unknown lot, bad limits, ...)."""


class IllegalTransition(ModelError):
    """An ISA-88 command is not allowed in the current procedural state."""


class B2MMLError(ISA95Error):
    """A B2MML document could not be read or written."""


class DocumentContentError(B2MMLError, ModelError):
    """A schema-valid document whose content does not make valid models.

    The message names the element (its path in the document and its source
    line); ``path`` and ``line`` carry the same for programs. A
    :class:`ModelError` too, because it is one: wrong in meaning, not in form.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class SchemaError(B2MMLError):
    """The B2MML schema directory is missing or unusable."""


class UnsafeXMLError(B2MMLError):
    """The input uses XML features refused for safety (DTD, entities, oversize)."""


class UnsupportedDocumentError(B2MMLError):
    """A well-formed document of a version, root or content this library does not handle."""


@dataclass(frozen=True)
class XMLIssue:
    """One problem in an XML document, located by line and element."""

    line: int | None
    element: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", bounded_message(self.message))

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "unknown line"
        return f"{where}: <{self.element}>: {self.message}"


class DocumentInvalid(B2MMLError):
    """A document is not well-formed or does not validate; ``issues`` says where."""

    def __init__(self, summary: str, issues: list[XMLIssue]) -> None:
        self.issues = issues
        detail = "; ".join(str(i) for i in issues[:5])
        more = f" (+{len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"{summary}: {detail}{more}" if issues else summary)
