"""Reading BatchProductionRecords in bounded memory: streamed, validated, mapped, let go.

A batch production record is mostly process data — ``DataSets/DataSet/OrderedData``
elements by the hundred thousand. :func:`read_batch_record` parses one from a
file, a binary stream or bytes with lxml's pull parser under the same rules as
every other read (:mod:`isa95.b2mml.safexml`: the prolog scanned for a DOCTYPE
before the parser sees a byte, no DTD, no entities, no network, libxml2's
limits, a size cap counted as the bytes arrive), validates it against MESA's
XSD *while* it is parsed (libxml2's streaming validator), maps each
``DataSet`` and ``Event`` as soon as it is complete and the ``OrderedData``
in batches of :data:`BATCH`
(:class:`~isa95.b2mml.mapping.batchrecord.RecordReader`), and clears them, so
the parsed tree never holds more than the record's header, one batch and the
element being read. What it returns are the same models, ``unmapped`` and
``normalised`` as :meth:`B2MML.read <isa95.b2mml.documents.B2MML.read>` of the
same bytes; it keeps no binding (nothing of the document is held), so a
streamed record cannot be written back as read.

:func:`map_record_document` is the in-memory counterpart used by
``B2MML.read``: the same element-wise mapping over a parsed tree, without
building the generic tree of the ordered data (built only if asked for).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import tzinfo
from typing import IO, Any

from lxml import etree

from isa95.b2mml.binding import Node, Release
from isa95.b2mml.documents import B2MML, B2MMLDocument, release
from isa95.b2mml.mapping.batchrecord import RECORD_KEYS, RecordReader, map_record
from isa95.b2mml.mapping.trees import ASSUMED_TIMEZONE, NORMALISED, content_errors
from isa95.b2mml.safexml import (
    MAX_DOCUMENT_BYTES,
    MAX_PROLOG_BYTES,
    SAFE_PARSER_OPTIONS,
    check_parsed,
    check_prolog,
)
from isa95.b2mml.schemas import NAMESPACES, issues_from_log
from isa95.errors import (
    B2MMLError,
    DocumentInvalid,
    ISA95Error,
    UnsafeXMLError,
    UnsupportedDocumentError,
    XMLIssue,
)

__all__ = ["CHUNK_BYTES", "Source", "map_record_document", "read_batch_record"]

RECORD = "BatchProductionRecord"
CHUNK_BYTES = 1 << 16
BATCH = 1000
"""OrderedData held before they are mapped together (and let go)."""
"""Bytes handed to the parser at a time."""

Source = bytes | bytearray | str | os.PathLike[str] | IO[bytes]
"""What a streamed read takes: the document's bytes, a file's path, or a binary stream."""


class _RecordDocument(B2MMLDocument):
    """A record read in memory whose plain ``tree`` is built only when asked for."""

    _tree_factory: Callable[[], Any] | None = None

    @property
    def tree(self) -> Any:
        """The content as a plain tree (built on first use: the mapping does not need it)."""
        built = self.__dict__.get("_tree")
        if not built and self._tree_factory is not None:
            built = self.__dict__["_tree"] = self._tree_factory()
            self._tree_factory = None
        return built if built is not None else {}

    @tree.setter
    def tree(self, value: Any) -> None:
        self.__dict__["_tree"] = value


def map_record_document(
    document: B2MMLDocument,
    assume_timezone: tzinfo | None,
    tree: Callable[[], Any],
) -> B2MMLDocument:
    """Map the bound, validated BatchProductionRecord ``document`` into its model.

    ``tree`` builds the generic plain tree of the document, which ``document.tree``
    gives when first used. Raises :class:`DocumentContentError` as ``B2MML.read`` does.
    """
    if document.binding is None:
        raise B2MMLError("the document carries no binding to map")
    result = _RecordDocument(**{f.name: getattr(document, f.name) for f in fields(document)})
    result._tree_factory = tree
    token = ASSUMED_TIMEZONE.set(assume_timezone)
    notes = NORMALISED.set(result.normalised)
    bindings = release(document.version)
    elements: list[tuple[Any, etree._Element]] = []
    try:
        with content_errors():
            model, unmapped = map_record(document.binding.element, bindings, elements)
    finally:
        ASSUMED_TIMEZONE.reset(token)
        NORMALISED.reset(notes)
    result.models = [model]
    result.unmapped = unmapped
    result.sources = [(one, _bound(element, bindings)) for one, element in elements]
    return result


def _bound(element: etree._Element, bindings: Release) -> Node:
    """The binding of an element of a record (the record itself, a DataSet or an Event)."""
    parent = element.getparent()
    if parent is None:
        return bindings.wrap(element)
    qname = etree.QName(element)
    spec = _bound(parent, bindings).SPEC
    slot = spec.field(qname.localname, qname.namespace)
    return bindings.class_of(slot.type if slot is not None else None).bound(element, bindings)


# ---------------------------------------------------------------- input


def _chunks(source: Source, max_bytes: int, chunk: int) -> Iterator[bytes]:
    """The document in pieces, refused as soon as it passes ``max_bytes``."""
    if isinstance(source, bytes | bytearray):
        if len(source) > max_bytes:
            raise UnsafeXMLError(
                f"document of {len(source)} bytes exceeds the {max_bytes}-byte limit"
            )
        for start in range(0, len(source), chunk):
            yield bytes(source[start : start + chunk])
        return
    if isinstance(source, str | os.PathLike):
        try:
            size = os.path.getsize(source)
            stream: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise B2MMLError(f"cannot read {os.fspath(source)!r}: {exc.strerror}") from exc
        if size > max_bytes:
            stream.close()
            raise UnsafeXMLError(f"document of {size} bytes exceeds the {max_bytes}-byte limit")
        with stream:
            yield from _read(stream, max_bytes, chunk)
        return
    yield from _read(source, max_bytes, chunk)


def _read(stream: IO[bytes], max_bytes: int, chunk: int) -> Iterator[bytes]:
    total = 0
    while True:
        try:
            piece = stream.read(chunk)
        except OSError as exc:
            raise B2MMLError(f"cannot read the document: {exc}") from exc
        if not piece:
            return
        total += len(piece)
        if total > max_bytes:
            raise UnsafeXMLError(f"document of more than {max_bytes} bytes exceeds the limit")
        yield bytes(piece)


def _head(chunks: Iterator[bytes]) -> list[bytes]:
    """The first pieces, at least ``MAX_PROLOG_BYTES + 1`` bytes of them (or all)."""
    pieces: list[bytes] = []
    size = 0
    for piece in chunks:
        pieces.append(piece)
        size += len(piece)
        if size > MAX_PROLOG_BYTES:
            break
    return pieces


def _not_well_formed(exc: etree.XMLSyntaxError) -> DocumentInvalid:
    return DocumentInvalid("not well-formed XML", [XMLIssue(exc.lineno, "?", exc.msg)])


def _root_of(pieces: list[bytes], chunks: Iterator[bytes]) -> etree._Element:
    """The root element, parsed from as few pieces as it takes (appended to ``pieces``)."""
    parser = etree.XMLPullParser(events=("start",), **SAFE_PARSER_OPTIONS)
    fed = 0
    try:
        while True:
            while fed < len(pieces):
                current = pieces[fed]
                fed += 1
                for start in range(0, len(current), 4096):  # the root starts early
                    parser.feed(current[start : start + 4096])
                    for _event, element in parser.read_events():
                        return element
            piece = next(chunks, None)
            if piece is None:
                parser.close()
                raise DocumentInvalid("not well-formed XML", [XMLIssue(None, "?", "no root")])
            pieces.append(piece)
    except etree.XMLSyntaxError as exc:
        raise _not_well_formed(exc) from exc
    except (etree.LxmlError, ValueError) as exc:
        raise DocumentInvalid("not well-formed XML", [XMLIssue(None, "?", str(exc))]) from exc


# ---------------------------------------------------------------- reading


def read_batch_record(
    b2mml: B2MML,
    source: Source,
    *,
    assume_timezone: tzinfo | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
) -> B2MMLDocument:
    """Read a BatchProductionRecord streamed: validated and mapped in bounded memory.

    ``source`` is the document's bytes, a path, or a binary stream (read to its
    end, not closed). The result has ``models == [record]``, ``unmapped`` and
    ``normalised`` as :meth:`B2MML.read` gives them, and no ``binding``.

    Raises what ``B2MML.read`` raises, with one difference: libxml2's
    streaming validator reports no line numbers, so the issues of a
    :class:`DocumentInvalid` name element and message only. A document that
    is not a BatchProductionRecord is refused (:class:`UnsupportedDocumentError`).
    Content wrong in meaning is reported only once the whole document has
    validated (an invalid document is refused as invalid first, as in memory);
    when a document has several such faults, the first in document order is
    the one reported.
    """
    etree.clear_error_log()  # the issues reported are this document's only
    chunks = _chunks(source, max_bytes, chunk_bytes)
    pieces = _head(chunks)
    check_prolog(b"".join(pieces)[: MAX_PROLOG_BYTES + 1])
    first = _root_of(pieces, chunks)
    version, root = b2mml.identify(first.getroottree())
    bindings = release(version)
    if (NAMESPACES[version], root) not in bindings.elements:
        raise UnsupportedDocumentError(
            f"{version} has no global element <{root}>: not a B2MML document"
        )
    if root != RECORD:
        raise UnsupportedDocumentError(
            f"only BatchProductionRecord documents are read streamed, not <{root}>: use B2MML.read"
        )
    schema = b2mml.schemas.validator(version, root)
    document = B2MMLDocument(version, root, RECORD, [])
    token = ASSUMED_TIMEZONE.set(assume_timezone)
    notes = NORMALISED.set(document.normalised)
    try:
        walker = _Walker(RecordReader(bindings, root))
        parser = etree.XMLPullParser(
            events=("end",), tag=sorted(walker.tags), schema=schema, **SAFE_PARSER_OPTIONS
        )
        try:
            for piece in pieces:
                parser.feed(piece)
                walker.walk(parser.read_events())
            del pieces[:]
            for piece in chunks:
                parser.feed(piece)
                walker.walk(parser.read_events())
            top = parser.close()
            walker.walk(parser.read_events())
        except etree.XMLSyntaxError as exc:
            raise _invalid(exc, version, root) from exc
        except (etree.LxmlError, ValueError) as exc:
            raise DocumentInvalid("not well-formed XML", [XMLIssue(None, "?", str(exc))]) from exc
        check_parsed(top.getroottree())
        if walker.failure is not None:
            raise walker.failure
        if walker.result is None:  # pragma: no cover - close() returned the root
            raise DocumentInvalid("not well-formed XML", [XMLIssue(None, RECORD, "no end")])
        model, unmapped = walker.result
    finally:
        ASSUMED_TIMEZONE.reset(token)
        NORMALISED.reset(notes)
    document.models = [model]
    document.unmapped = unmapped
    return document


def _invalid(exc: etree.XMLSyntaxError, version: str, root: str) -> DocumentInvalid:
    """The parser's well-formedness error, or else the streaming validator's issues."""
    log = exc.error_log
    broken = log.filter_domains(etree.ErrorDomains.PARSER).filter_from_errors()
    if broken:
        first = broken[0]
        return DocumentInvalid("not well-formed XML", [XMLIssue(first.line, "?", first.message)])
    invalid = log.filter_domains(etree.ErrorDomains.SCHEMASV)
    if invalid:
        issues = [
            XMLIssue(issue.line or None, issue.element, issue.message)
            for issue in issues_from_log(invalid)
        ]
        return DocumentInvalid(f"{version} <{root}> does not validate", issues)
    return _not_well_formed(exc)


class _Walker:
    """Feeds a :class:`RecordReader` from parse events and clears what it has read.

    Only the ends of elements that may repeat (and of the record's children)
    are reported by the parser, which keeps the events few: one per
    ``OrderedData``, none for its content. Each ``DataSet`` and ``Event`` of the
    record is mapped and let go at its end, its ``OrderedData`` by batches of
    :data:`BATCH` (mapped together, as columns where uniform); so is every
    repeating element inside a child of the record the mapping does not read
    (that child itself is emptied at its end). After a mapping failure the rest
    of the document is still parsed (and validated), not mapped.
    """

    def __init__(self, reader: RecordReader) -> None:
        self.reader = reader
        self.batch: list[etree._Element] = []
        """OrderedData of the current data set that ended but are not mapped yet."""
        self.failure: ISA95Error | None = None
        self.result: Any = None
        self.root: etree._Element | None = None
        release = reader.release
        namespace = release.namespace
        self.kept = {f"{{{namespace}}}{name}" for name in RECORD_KEYS}
        self.kept |= {reader.datasets_tag, reader.events_tag}
        repeating = {
            f"{{{slot.namespace}}}{slot.name}" if slot.namespace else slot.name
            for spec in release.specs.values()
            for slot in spec.fields
            if slot.max > 1 and slot.name != "*"
        }
        repeating -= {f"{{{namespace}}}DataValue", f"{{{namespace}}}Value"}  # inside OrderedData
        children = {f"{{{namespace}}}{slot.name}" for slot in reader.spec.fields}
        self.tags = repeating | children | {f"{{{namespace}}}{RECORD}"}

    def walk(self, events: Iterator[tuple[str, Any]]) -> None:
        """Map and let go what ``events`` report (an iterator: left where a mapping fails)."""
        if self.failure is None:
            try:
                with content_errors():
                    self._walk(events, True)
                return
            except ISA95Error as exc:
                self.failure = exc  # reported once the document is known to be valid
                self.batch = []
        self._walk(events, False)

    def _flush(self, dataset: etree._Element) -> None:
        """Map the OrderedData that ended (as columns if uniform) and let them go.

        They are the data set's first OrderedData: the parser may already have
        added later ones, whose ends have not been reported yet.
        """
        batch = self.batch
        if not batch:
            return
        self.batch = []
        reader = self.reader
        reader.open(dataset)
        if not reader.ordered_columns(dataset, len(batch)):
            for ordered in batch:
                reader.ordered_data(dataset, ordered)
        for ordered in batch:
            ordered.clear()
            dataset.remove(ordered)

    def _walk(self, events: Iterator[tuple[str, Any]], mapping: bool) -> None:
        reader = self.reader
        for _event, element in events:
            root = self.root
            if root is None:
                root = self.root = element.getroottree().getroot()
            parent = element.getparent()
            if parent is None:
                if mapping:
                    self.result = reader.finish(element)
                continue
            if parent is root:
                if element.tag not in self.kept:
                    element.clear()  # its name and place stay: reported as unmapped
                continue
            tag = element.tag
            above = parent.getparent()
            if tag == reader.ordered_tag and parent.tag == reader.dataset_tag:
                if above is not None and above.getparent() is root:
                    if not mapping:
                        element.clear()
                        parent.remove(element)
                    else:
                        self.batch.append(element)
                        if len(self.batch) >= BATCH:
                            self._flush(parent)
                    continue
            elif above is root:
                if tag == reader.dataset_tag and parent.tag == reader.datasets_tag:
                    if mapping:
                        self._flush(element)
                        reader.dataset_end(element)
                    element.clear()
                    parent.remove(element)
                    continue
                if tag == reader.event_tag and parent.tag == reader.events_tag:
                    if mapping:
                        reader.event(element)
                    element.clear()
                    parent.remove(element)
                    continue
            child = parent
            while above is not None and above is not root:
                child, above = above, above.getparent()
            if child.tag not in self.kept:  # inside content the mapping does not read
                element.clear()
                parent.remove(element)
