"""Exception hierarchy of the isa95 package: every failure is an :class:`ISA95Error`."""

from __future__ import annotations

from dataclasses import dataclass


class ISA95Error(Exception):
    """Base class of every error raised by :mod:`isa95`."""


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
