"""Random schema-valid B2MML instances of any global element, built from the generated bindings.

Built through the bindings' own editing API (``Node.add`` places each child
where the schema wants it), so these strategies exercise the writer too.
Lexical variety is deliberate: trailing blanks in IDs, ``Z`` and offsets and
naive date-times, decimals with leading zeros, comments and indentation — a
lossless reader must give all of it back.
"""

from __future__ import annotations

from typing import Any

from hypothesis import reject
from hypothesis import strategies as st
from lxml import etree

from isa95.b2mml.binding import UNBOUNDED, Field, Node, Release
from isa95.errors import B2MMLError

_WORD = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.", min_size=1, max_size=8
)
_LEXICAL: dict[str, st.SearchStrategy[str]] = {
    "string": st.one_of(
        _WORD,
        _WORD.map(lambda w: f" {w}  x\t"),
        st.text(alphabet="äöü€&<>'\" ", min_size=0, max_size=5),
    ),
    "normalizedString": st.one_of(
        _WORD, _WORD.map(lambda w: w + " "), _WORD.map(lambda w: " " + w)
    ),
    "token": _WORD,
    "decimal": st.sampled_from(["0", "012.50", "-3.14", "1e0"[:1], "+7", "100.000", ".5"]),
    "dateTime": st.sampled_from(
        [
            "2026-01-15T08:00:00Z",
            "2026-01-15T08:00:00.125+02:00",
            "2026-01-15T08:00:00",
            "1999-12-31T23:59:59-05:00",
        ]
    ),
    "duration": st.sampled_from(["PT1H30M", "P1D", "-PT0.5S", "P0Y"]),
    "boolean": st.sampled_from(["true", "false"]),
    "anyURI": st.sampled_from(["urn:x:1", "https://example.org/a?b=c", ""]),
    "language": st.sampled_from(["en", "de-CH"]),
    "base64Binary": st.sampled_from(["", "AAEC", "aGVsbG8="]),
}


def _lexical(release: Release, simple: str | None) -> st.SearchStrategy[str]:
    if simple is None:
        return _LEXICAL["string"]
    spec = release.simple.get(simple)
    base = spec.base if spec is not None else simple
    if spec is not None and spec.enumeration:
        if simple.endswith(".text") or "IndicatorType" in simple:
            return st.sampled_from(spec.enumeration)
        return st.sampled_from(spec.enumeration)
    if base == "boolean" and simple == "IndicatorType":
        return st.sampled_from(["true", "false"])
    return _LEXICAL.get(base, _LEXICAL["string"])


def _count(draw: st.DrawFn, slot: Field, depth: int, forced: bool) -> int:
    low = max(slot.min, 1 if forced else 0)
    if depth > 4:
        return low
    high = min(slot.max, low + (2 if depth < 3 else 1), UNBOUNDED)
    return draw(st.integers(low, high))


def _fill(draw: st.DrawFn, node: Node, depth: int) -> None:
    release = node.release
    spec = node.SPEC
    for attr in spec.attributes:
        if attr.required or (depth < 4 and draw(st.booleans())):
            node.set(attr.name, draw(_lexical(release, attr.simple)))
    if not spec.fields:
        node.set_text(draw(_lexical(release, spec.text)))
        return
    chosen: dict[int, int] = {}
    for slot in spec.fields:
        if slot.choice and slot.choice not in chosen:
            branches = sorted({f.branch for f in spec.fields if f.choice == slot.choice})
            chosen[slot.choice] = draw(st.sampled_from(branches))
    present: dict[int, bool] = {}
    for slot in spec.fields:
        if slot.group and slot.group not in present:
            present[slot.group] = depth < 4 and draw(st.booleans())
    for slot in spec.fields:
        if slot.name == "*":
            continue  # strict wildcards need declared elements; comments stand in below
        if slot.group and not slot.choice:
            # an optional/repeating sequence: all of its required members, once, or nothing
            if present[slot.group]:
                for _ in range(max(slot.group_min, draw(st.integers(0, 1)))):
                    _child(draw, node, slot, depth)
            continue
        forced = False
        if slot.choice:
            if chosen[slot.choice] != slot.branch:
                continue
            forced = True
        for _ in range(_count(draw, slot, depth, forced)):
            _child(draw, node, slot, depth)
    if spec.wildcard is not None and draw(st.booleans()):
        node.element.append(etree.Comment(" extension point "))


def _child(draw: st.DrawFn, node: Node, slot: Field, depth: int) -> None:
    child = node.add(slot.name)
    if child.SPEC.fields or child.SPEC.attributes or child.SPEC.text:
        _fill(draw, child, depth + 1)
    else:
        child.set_text(draw(_lexical(node.release, slot.simple)))


def _indent(draw: st.DrawFn, element: etree._Element) -> None:
    if draw(st.booleans()):
        etree.indent(element, space=draw(st.sampled_from(["  ", "\t", " "])))


@st.composite
def instance(draw: st.DrawFn, release: Release, root: str | None = None) -> bytes:
    """A schema-valid document whose root is ``root`` (default: any global element)."""
    if root is None:
        names = sorted(
            name for (ns, name), type_ in release.elements.items() if ns == release.namespace
        )
        root = draw(st.sampled_from(names))
    node = release.new(root, prefix=draw(st.sampled_from([None, "b"])))
    if node.SPEC.fields or node.SPEC.attributes or node.SPEC.text:
        try:
            _fill(draw, node, 0)
        except B2MMLError:
            # unqualified local elements (V0701 InformationObject) need a prefixed root
            reject()
    else:
        simple = release.element_simple.get((release.namespace, root))
        node.set_text(draw(_lexical(release, simple)))
    _indent(draw, node.element)
    data: Any = etree.tostring(node.element, xml_declaration=True, encoding="UTF-8")
    return bytes(data)


def minimal(release: Release, root: str, prefix: str | None = None) -> bytes:
    """The smallest instance of ``root``: required children and attributes only."""

    def fill(node: Node) -> None:
        spec = node.SPEC
        for attr in spec.attributes:
            if attr.required:
                node.set(attr.name, "1.0")
        if not spec.fields:
            node.set_text(_first(release, spec.text))
            return
        done: set[int] = set()
        for slot in spec.fields:
            if slot.name == "*" or (slot.choice and slot.choice in done):
                continue
            if slot.choice and slot.needed:
                done.add(slot.choice)
                child = node.add(slot.name)
                if child.SPEC.fields or child.SPEC.attributes or child.SPEC.text:
                    fill(child)
                else:
                    child.set_text(_first(release, slot.simple))
                continue
            if slot.min == 0:
                continue
            for _ in range(slot.min):
                child = node.add(slot.name)
                if child.SPEC.fields or child.SPEC.attributes or child.SPEC.text:
                    fill(child)
                else:
                    child.set_text(_first(release, slot.simple))

    node = release.new(root, prefix=prefix)
    fill(node)
    return bytes(etree.tostring(node.element, xml_declaration=True, encoding="UTF-8"))


def _first(release: Release, simple: str | None) -> str:
    spec = release.simple.get(simple or "string")
    if spec is not None and spec.enumeration:
        return spec.enumeration[0]
    base = spec.base if spec is not None else "string"
    return {
        "dateTime": "2026-01-15T08:00:00Z",
        "decimal": "1",
        "duration": "PT1H",
        "boolean": "true",
        "anyURI": "urn:x",
        "language": "en",
        "base64Binary": "",
    }.get(base, "x")
