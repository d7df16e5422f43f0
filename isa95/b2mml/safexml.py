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
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from isa95.errors import DocumentInvalid, UnsafeXMLError, XMLIssue

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_PROLOG_BYTES",
    "SAFE_PARSER_OPTIONS",
    "check_parsed",
    "parse_xml",
    "safe_parser",
]

MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
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
    "huge_tree": False,
    "remove_blank_text": False,
}
"""The lxml parser settings of every untrusted read (whole or streamed): no DTD loaded,
no entity expanded, no network, libxml2's limits on depth and text size kept."""


def safe_parser() -> etree.XMLParser:
    """An lxml parser that loads no DTD, expands no entity and opens no network connection."""
    return etree.XMLParser(**SAFE_PARSER_OPTIONS)


def parse_xml(data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> etree._ElementTree:
    """Parse untrusted XML safely: no DTD, no entities, no network, bounded size.

    Raises :class:`UnsafeXMLError` for a DOCTYPE, an oversize input or a
    prolog that cannot be checked, and :class:`DocumentInvalid` naming the
    line for input that is not well-formed.
    """
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"document of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    check_prolog(data)
    try:
        tree = etree.ElementTree(etree.fromstring(data, safe_parser()))
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid("not well-formed XML", [XMLIssue(exc.lineno, "?", exc.msg)]) from exc
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
