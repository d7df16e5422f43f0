"""Parsing untrusted XML safely: no DTD, no entities, no network, bounded size.

A DOCTYPE is how entity-expansion and external-DTD attacks start, so the
prolog (everything before the root element) is scanned *before* the parser
sees the bytes and any DOCTYPE is refused. The scan reads the prolog in every
decoding the parser could choose — the byte-order mark or the UTF-16/UTF-32
pattern of the first bytes (XML 1.0 appendix F), an ASCII-compatible reading,
and the encoding named in the XML declaration — and refuses when any of them
shows a DOCTYPE. Every step of the scan moves forward, so it ends on any
input; what it cannot judge (an unterminated comment, say) is left to the
parser, which reports it as not well-formed. libxml2's own limits and a check
of the parsed tree stay behind the scan as a second line.

Big text nodes (a base64 attachment in a ``ValueString``) are read within the
size cap: libxml2 refuses a text node over 10 MB unless told to lift its
limits (``huge_tree``), which also lifts its depth limit (256 → 2048). So a
document is parsed first with libxml2's limits; only one that hits a size
limit is parsed again with them lifted, and then checked for elements nested
deeper than :data:`MAX_DEPTH` by this module. Streamed reads lift the limits
from the start (their bytes cannot be read twice); libxml2 keeps their depth
at 2048 and the streaming validator refuses what the schema does not allow.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from isa95.errors import DocumentInvalid, UnsafeXMLError, XMLIssue

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_PROLOG_BYTES",
    "SAFE_PARSER_OPTIONS",
    "check_parsed",
    "parse_xml",
    "safe_parser",
]

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 256
"""Deepest element nesting read in memory (libxml2's own limit, kept when it is lifted)."""
MAX_PROLOG_BYTES = 1024 * 1024
"""Bytes scanned before the root element; a longer prolog is refused."""

_DOCTYPE_REFUSED = "documents with a DOCTYPE are refused (no DTDs or entities allowed)"

# (leading bytes, codec, whether they are a byte-order mark to skip), longest first.
_SIGNATURES: tuple[tuple[bytes, str, bool], ...] = (
    (b"\xff\xfe\x00\x00", "utf-32-le", True),
    (b"\x00\x00\xfe\xff", "utf-32-be", True),
    (b"\x3c\x00\x00\x00", "utf-32-le", False),
    (b"\x00\x00\x00\x3c", "utf-32-be", False),
    (b"\x3c\x00\x3f\x00", "utf-16-le", False),
    (b"\x00\x3c\x00\x3f", "utf-16-be", False),
    (b"\x4c\x6f\xa7\x94", "cp037", False),  # EBCDIC "<?xm"
    (b"\xef\xbb\xbf", "utf-8", True),
    (b"\xff\xfe", "utf-16-le", True),
    (b"\xfe\xff", "utf-16-be", True),
)
# Bytes per character of the prolog's (ASCII) markup in each detected codec.
_WIDTH = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}
# The XML declaration, after a BOM read as UTF-16/32 (\ufeff) or as latin-1 (ï»¿).
_DECLARED_ENCODING = re.compile(
    r"""(?:\ufeff|\xef\xbb\xbf)?<\?xml\s[^>]{0,200}?\bencoding\s*=\s*"""
    r"""["']([A-Za-z][A-Za-z0-9._-]{0,39})["']"""  # XML 1.0 EncName
)


SAFE_PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": True,
    "remove_blank_text": False,
}
"""The lxml parser settings of every untrusted streamed read: no DTD loaded, no entity
expanded, no network; libxml2's size limits lifted (the size cap bounds the input, and
libxml2 keeps a depth limit of 2048)."""

_LIMITED_OPTIONS = {**SAFE_PARSER_OPTIONS, "huge_tree": False}


def safe_parser(*, huge: bool = False) -> etree.XMLParser:
    """An lxml parser that loads no DTD, expands no entity and opens no network connection;
    with libxml2's limits on depth (256) and text size (10 MB) unless ``huge``."""
    return etree.XMLParser(**(SAFE_PARSER_OPTIONS if huge else _LIMITED_OPTIONS))


def _too_big(exc: etree.XMLSyntaxError) -> bool:
    """Whether libxml2 refused a size, which lifting its limits allows (not a depth)."""
    message = exc.msg or ""
    if "depth" in message:
        return False
    return "XML_PARSE_HUGE" in message or "too big" in message or "too long" in message


def _too_deep(exc: etree.XMLSyntaxError) -> UnsafeXMLError | None:
    if "Excessive depth" not in (exc.msg or ""):
        return None
    return UnsafeXMLError(
        f"elements nested deeper than {MAX_DEPTH} levels are refused (line {exc.lineno})"
    )


def check_depth(root: etree._Element, max_depth: int = MAX_DEPTH) -> None:
    """Refuse (:class:`UnsafeXMLError`) a tree with elements nested deeper than ``max_depth``."""
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            depth += 1
            if depth > max_depth:
                raise UnsafeXMLError(
                    f"elements nested deeper than {max_depth} levels are refused "
                    f"(line {element.sourceline})"
                )
        else:
            depth -= 1


def _parse(data: bytes, huge: bool) -> etree._Element:
    try:
        return etree.fromstring(data, safe_parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        deep = _too_deep(exc)
        if deep is not None:
            raise deep from exc
        if not huge and _too_big(exc):
            root = _parse(data, huge=True)
            check_depth(root)
            return root
        raise DocumentInvalid("not well-formed XML", [XMLIssue(exc.lineno, "?", exc.msg)]) from exc


def parse_xml(data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> etree._ElementTree:
    """Parse untrusted XML safely: no DTD, no entities, no network, bounded size.

    Raises :class:`UnsafeXMLError` for a DOCTYPE, an oversize input, elements
    nested deeper than :data:`MAX_DEPTH` or a prolog that cannot be checked, and
    :class:`DocumentInvalid` naming the line for input that is not well-formed.
    A text node of any size within the cap is read (see the module's docstring).
    """
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"document of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    check_prolog(data)
    try:
        tree = etree.ElementTree(_parse(data, huge=False))
    except (etree.LxmlError, ValueError) as exc:  # e.g. an encoding libxml2 cannot convert
        raise DocumentInvalid("not well-formed XML", [XMLIssue(None, "?", str(exc))]) from exc
    check_parsed(tree)
    for node in tree.iter(etree.Entity):  # filtered by lxml: no Python object per element
        raise UnsafeXMLError(f"entity reference {node.text!r} refused (line {node.sourceline})")
    return tree


def check_parsed(tree: etree._ElementTree) -> None:
    """The second line behind the prolog scan: a parsed document with a DTD is refused."""
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXMLError(_DOCTYPE_REFUSED)


def check_prolog(data: bytes) -> None:
    """Refuse a document whose prolog declares a DOCTYPE, in any decoding the parser could use.

    Raises :class:`UnsafeXMLError`; returns quietly for anything else,
    including input that is not well-formed (the parser reports that).
    """
    head = data[:MAX_PROLOG_BYTES]
    primary = _detected_codec(head)
    text = _decode(head, primary)
    views = [text] if primary == "latin-1" else [text, _decode(head, "latin-1")]
    declared = _declared_codec(text)
    if declared is not None:
        # libxml2 switches to the declared encoding right after the attribute's
        # closing quote, so that is where this view starts.
        codec, end = declared
        views.append(_decode(head[end * _WIDTH.get(primary, 1) :], codec))
    for index, view in enumerate(views):
        outcome = _scan_prolog(view)
        if outcome == "doctype":
            raise UnsafeXMLError(_DOCTYPE_REFUSED)
        if outcome == "unfinished" and index == 0 and len(data) > len(head):
            raise UnsafeXMLError(
                f"the prolog (before the root element) is longer than {MAX_PROLOG_BYTES} bytes"
            )


def _detected_codec(head: bytes) -> str:
    """The codec the first bytes announce; ``latin-1`` stands for every ASCII-compatible one.

    Reading bytes as latin-1 keeps ``<``, ``!``, ``?``, ``-`` and ASCII
    letters where UTF-8 and the ISO-8859 / Windows code pages put them.
    """
    for signature, codec, _bom in _SIGNATURES:
        if head.startswith(signature):
            return "latin-1" if codec == "utf-8" else codec
    return "latin-1"


def _declared_codec(text: str) -> tuple[str, int] | None:
    """The Python codec of the encoding the XML declaration names, and where its name ends.

    An encoding Python does not know cannot be checked for a DOCTYPE, so it is
    refused. A name that is not an XML EncName is left to the parser to reject.
    """
    match = _DECLARED_ENCODING.match(text)
    if match is None:
        return None
    name = match.group(1)
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise UnsafeXMLError(
            f"the document declares encoding {name!r}, which this reader does not support"
        ) from None
    if codec in ("utf-8", "ascii", "iso8859-1"):
        return None  # the latin-1 view already shows its markup byte for byte
    return codec, match.end()


def _decode(head: bytes, codec: str) -> str:
    return head.decode(codec, errors="replace")


def _scan_prolog(text: str) -> str:
    """``"doctype"``, ``"clean"`` (the root element or something else starts), or ``"unfinished"``.

    Every branch moves ``position`` past what it read, so the loop ends on any text.
    """
    position = 0
    while True:
        start = text.find("<", position)
        if start < 0:
            return "unfinished"
        if text.startswith("<?", start):
            end = text.find("?>", start + 2)
            if end < 0:
                return "unfinished"
            position = end + 2
        elif text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            if end < 0:
                return "unfinished"
            position = end + 3
        elif text.startswith("<!", start):
            # Markup declarations and CDATA are not allowed in a prolog; only a
            # DOCTYPE matters here (case-folded: refuse even the malformed spelling).
            return "doctype" if text[start + 2 : start + 9].upper() == "DOCTYPE" else "clean"
        else:
            return "clean"  # the root element starts: no DOCTYPE can follow
