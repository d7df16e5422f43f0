"""Generic B2MML element trees, written and read in schema order.

A *tree* is the plain-data form of an element's content:

* a ``dict`` whose keys are child element names (local names) and whose
  values are a ``str`` (simple content), a nested ``dict`` (complex content)
  or, for children that may repeat, a ``list`` of those;
* ``"@name"`` keys hold attributes, ``"#text"`` the text of an element with
  simple content *and* attributes;
* ``"##any"`` holds extension elements (``xsd:any``) as serialised XML.

:func:`build` emits children in the order the XSD demands (from
:mod:`isa95.b2mml.xsdindex`); :func:`read` turns an element back into a tree
and records anything the schema does not describe instead of dropping it.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from isa95.b2mml.xmltext import text_of
from isa95.b2mml.xsdindex import ComplexType
from isa95.errors import B2MMLError

__all__ = ["Tree", "build", "read"]

Tree = dict[str, Any]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise B2MMLError(f"tree leaf must be a string, got {type(value).__name__}: {value!r}")


def build(element: etree._Element, ctype: ComplexType | None, tree: Any) -> etree._Element:
    """Fill ``element`` from ``tree`` following ``ctype``; returns ``element``."""
    if ctype is None or ctype.simple_content:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key.startswith("@"):
                    element.set(key[1:], _text(value))
                elif key != "#text":
                    raise B2MMLError(f"<{etree.QName(element).localname}> has no child {key!r}")
            text = tree.get("#text")
            if text is not None:
                element.text = _text(text)
        elif tree is not None:
            element.text = _text(tree)
        return element
    if not isinstance(tree, dict):
        raise B2MMLError(f"<{etree.QName(element).localname}> needs element content, got {tree!r}")
    unknown = [
        k for k in tree if not k.startswith("@") and k != "##any" and ctype.particle(k) is None
    ]
    tree = {k: v for k, v in tree.items() if not k.startswith("@@")}
    if unknown:
        raise B2MMLError(
            f"<{etree.QName(element).localname}> ({ctype.name}) has no child element {unknown[0]!r}"
        )
    for key, value in tree.items():
        if key.startswith("@"):
            element.set(key[1:], _text(value))
    for particle in ctype.particles:
        if particle.name is None:
            for raw in tree.get("##any", []):
                element.append(_parse_fragment(raw))
            continue
        if particle.name not in tree:
            continue
        value = tree[particle.name]
        values = value if isinstance(value, list) else [value]
        if len(values) > particle.max_occurs:
            raise B2MMLError(f"<{particle.name}> may occur at most {particle.max_occurs} times")
        for item in values:
            child = etree.SubElement(element, f"{{{particle.namespace}}}{particle.name}")
            build(child, particle.type, item)
    return element


def _parse_fragment(raw: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(raw.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise B2MMLError(f"extension content is not well-formed XML: {exc}") from exc


def read(
    element: etree._Element, ctype: ComplexType | None, unsupported: list[str], path: str
) -> Any:
    """The tree of ``element`` read according to ``ctype``.

    Children the schema does not know (possible only where validation was
    skipped) are reported in ``unsupported`` as ``path (line N)``.
    """
    attributes = (
        {
            f"@{etree.QName(k).localname}": v
            for k, v in element.attrib.items()
            if not k.startswith("{http://www.w3.org/2001/XMLSchema-instance}")
        }
        if len(element.attrib)
        else {}
    )
    if ctype is None or ctype.simple_content:
        text = text_of(element) or ""
        if attributes:
            return {"#text": text, **attributes}
        return text
    tree: Tree = dict(attributes)
    tree["@@line"] = element.sourceline  # for error messages; never written back
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions carry no data
        namespace, _, name = tag[1:].rpartition("}") if tag[0] == "{" else ("", "", tag)
        particle = ctype.particle(name)
        child_path = f"{path}/{name}"
        if particle is None or particle.namespace != namespace:
            if ctype.has_wildcard:
                tree.setdefault("##any", []).append(etree.tostring(child, encoding="unicode"))
            else:
                unsupported.append(f"{child_path} (line {child.sourceline})")
            continue
        value = read(child, particle.type, unsupported, child_path)
        if particle.repeats:
            tree.setdefault(name, []).append(value)
        else:
            tree[name] = value
    return tree
