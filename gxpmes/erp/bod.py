"""The BOD envelope: headers, ConfirmBOD with an outcome, confirmations read back.

An adapter beside :mod:`isa95.b2mml.documents`, for what its public API does
not carry (yet): ``B2MML.confirm`` writes a ConfirmBOD without an outcome,
``B2MML.read`` maps nouns but not ConfirmBOD / Acknowledge outcomes, and
``Process|Sync MaterialDefinition`` / ``MaterialLot`` (nouns of their own in
the transaction profile) are not among its nouns. Everything here parses
with the library's safe parser and is schema-validated through
``B2MML.validate`` before anything is read from it.

Outcome of a confirmation, as ERP middleware writes it (OAGIS 9 practice):
``DataArea/Confirm|Acknowledge/ResponseCriteria/ResponseExpression/@actionCode``
or ``.../ChangeStatus/Code`` — ``Accepted`` (or ``Modified``) accepts;
``Rejected``, ``Error``, ``Failure`` reject. A ConfirmBOD with no outcome at all
confirms receipt (accepted). The reason text is every ``Description`` and
``Note`` of the ``BOD`` and ``ChangeStatus`` elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from audit.canonical import format_timestamp
from isa95.b2mml.documents import B2MML
from isa95.b2mml.safexml import parse_xml
from isa95.errors import B2MMLError, DocumentInvalid, UnsupportedDocumentError

__all__ = [
    "NAMESPACES",
    "Confirmation",
    "Header",
    "confirm_bod",
    "header_of",
    "material_information",
    "read_confirmation",
]

NAMESPACES = {
    "V0701": "http://www.mesa.org/xml/B2MML",
    "V0600": "http://www.mesa.org/xml/B2MML-V0600",
}
_VERSION_OF = {v: k for k, v in NAMESPACES.items()}
_ACCEPT = {"accepted", "modified", "success", "ok"}
_REJECT = {"rejected", "error", "failure", "failed"}


@dataclass(frozen=True)
class Header:
    """Root, release and ApplicationArea of a parsed BOD."""

    root: str
    version: str
    bod_id: str | None
    sender: str | None
    creation: str | None


@dataclass(frozen=True)
class Confirmation:
    """What a ConfirmBOD or Acknowledge* says about the BODs it answers."""

    bod_id: str | None
    originals: tuple[str, ...]
    accepted: bool
    reasons: tuple[str, ...]


def _local(element: Any) -> str:
    return str(etree.QName(element).localname) if isinstance(element.tag, str) else ""


def _child(element: Any, name: str) -> Any:
    for child in element:
        if _local(child) == name:
            return child
    return None


def _children(element: Any, name: str) -> list[Any]:
    return [c for c in element if _local(c) == name]


def _text(element: Any) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return text or None


def _area(area: Any) -> tuple[str | None, str | None, str | None]:
    if area is None:
        return None, None, None
    sender = _child(area, "Sender")
    return (
        _text(_child(area, "BODID")),
        _text(_child(sender, "LogicalID")) if sender is not None else None,
        _text(_child(area, "CreationDateTime")),
    )


def header_of(tree: Any) -> Header:
    """Root, release and ApplicationArea of a document parsed by the safe parser."""
    root = tree.getroot()
    qname = etree.QName(root)
    version = _VERSION_OF.get(qname.namespace or "")
    if version is None:
        raise UnsupportedDocumentError(
            f"root <{qname.localname}> is not in a B2MML V0701 or V0600 namespace"
        )
    bod_id, sender, creation = _area(_child(root, "ApplicationArea"))
    return Header(str(qname.localname), version, bod_id, sender, creation)


def _sub(parent: Any, namespace: str, name: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if text is not None:
        element.text = text
    return element


def _write_area(
    parent: Any, namespace: str, name: str, bod_id: str | None, sender: str | None, creation: str
) -> None:
    area = _sub(parent, namespace, name)
    if sender:
        _sub(_sub(area, namespace, "Sender"), namespace, "LogicalID", sender)
    _sub(area, namespace, "CreationDateTime", creation)
    if bod_id:
        _sub(area, namespace, "BODID", bod_id)


def confirm_bod(
    b2mml: B2MML,
    original: Header | None,
    *,
    accepted: bool,
    reasons: list[str],
    bod_id: str,
    sender: str,
    created: datetime,
    version: str = "V0701",
) -> bytes:
    """A schema-valid ConfirmBOD answering ``original`` (None: a BOD we could not read)."""
    namespace = NAMESPACES[version]
    outcome = "Accepted" if accepted else "Rejected"
    root = etree.Element(f"{{{namespace}}}ConfirmBOD", nsmap={None: namespace})
    _write_area(root, namespace, "ApplicationArea", bod_id, sender, format_timestamp(created))
    data = _sub(root, namespace, "DataArea")
    confirm = _sub(data, namespace, "Confirm")
    criteria = _sub(confirm, namespace, "ResponseCriteria")
    expression = _sub(criteria, namespace, "ResponseExpression", outcome)
    expression.set("actionCode", outcome)
    status = _sub(criteria, namespace, "ChangeStatus")
    _sub(status, namespace, "Code", outcome)
    if reasons:  # one Description here (V0600 allows one); each reason in BOD below
        _sub(status, namespace, "Description", "; ".join(reasons)[:4000])
    bod = _sub(data, namespace, "BOD")
    if original is not None:
        _write_area(
            bod,
            namespace,
            "OriginalApplicationArea",
            original.bod_id,
            original.sender,
            original.creation or format_timestamp(created),
        )
    for reason in reasons or [f"{outcome}"]:
        _sub(bod, namespace, "Description", reason[:4000])
    data_bytes = bytes(
        etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    )
    issues = b2mml.validate(data_bytes, version)
    if issues:
        raise DocumentInvalid("generated ConfirmBOD is not schema-valid", issues)
    return data_bytes


def _outcome(words: list[str]) -> bool | None:
    for word in words:
        lowered = word.strip().lower()
        if lowered in _REJECT:
            return False
        if lowered in _ACCEPT:
            return True
    return None


def read_confirmation(tree: Any) -> Confirmation:
    """The answer a (validated) ConfirmBOD or Acknowledge<Noun> carries."""
    header = header_of(tree)
    root = tree.getroot()
    data = _child(root, "DataArea")
    if data is None:
        raise B2MMLError(f"<{header.root}> has no DataArea")
    verb = _child(data, "Confirm") if header.root == "ConfirmBOD" else _child(data, "Acknowledge")
    if verb is None:
        raise B2MMLError(f"<{header.root}> is neither a ConfirmBOD nor an Acknowledge")
    originals: list[str] = []
    reasons: list[str] = []
    words: list[str] = []
    bod_id, _, _ = _area(_child(verb, "OriginalApplicationArea"))
    if bod_id:
        originals.append(bod_id)
    for criteria in _children(verb, "ResponseCriteria"):
        expression = _child(criteria, "ResponseExpression")
        if expression is not None and expression.get("actionCode"):
            words.append(str(expression.get("actionCode")))
        status = _child(criteria, "ChangeStatus")
        if status is not None:
            code = _text(_child(status, "Code"))
            if code:
                words.append(code)
            for name in ("Description", "Reason"):
                reasons += [t for t in (_text(e) for e in _children(status, name)) if t]
    for bod in _children(data, "BOD"):
        original, _, _ = _area(_child(bod, "OriginalApplicationArea"))
        if original and original not in originals:
            originals.append(original)
        for name in ("Description", "Note"):
            reasons += [t for t in (_text(e) for e in _children(bod, name)) if t]
    if not originals:
        raise B2MMLError(f"<{header.root}> names no original BOD (OriginalApplicationArea/BODID)")
    outcome = _outcome(words)
    if outcome is None and header.root != "ConfirmBOD":
        raise B2MMLError(f"<{header.root}> carries no outcome (ResponseExpression/@actionCode)")
    unique = tuple(dict.fromkeys(reasons))
    return Confirmation(header.bod_id, tuple(originals), outcome is not False, unique)


def material_information(b2mml: B2MML, tree: Any, header: Header) -> Any:
    """The models of a validated ``Process|Sync MaterialDefinition|MaterialLot`` BOD.

    The payload elements are re-rooted under a bare ``MaterialInformation``
    (same types, same order as the schema: definitions before lots) and read
    through ``B2MML.read``, so the library's mapping and checks apply.
    """
    namespace = NAMESPACES[header.version]
    data = _child(tree.getroot(), "DataArea")
    wrapper = etree.Element(f"{{{namespace}}}MaterialInformation", nsmap={None: namespace})
    payload = [c for c in data if _local(c) in ("MaterialDefinition", "MaterialLot")]
    payload.sort(key=lambda c: _local(c) != "MaterialDefinition")
    for child in payload:
        wrapper.append(parse_xml(etree.tostring(child)).getroot())
    return b2mml.read(bytes(etree.tostring(wrapper, xml_declaration=True, encoding="UTF-8"))).model
