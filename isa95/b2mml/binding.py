"""Runtime of the generated B2MML bindings: typed, order-preserving views over lxml elements.

The classes in :mod:`isa95.b2mml.bindings.v0701` and ``.v0600`` are generated
from MESA's XSDs by ``python -m isa95.b2mml.generate --schemas DIR``. Each is a
:class:`Node`: a thin typed view over one lxml element. The element itself is
the storage, so a document read and written again keeps everything it held —
element order, whitespace, comments, extension content (``UserArea``, ``xsd:any``)
and every lexical value exactly as written (``2026-01-01T08:00:00Z`` stays a
string with its ``Z``; ``"PARC-0001 "`` keeps its blank). A dataclass binding
would rebuild the document from parsed values and lose those; this one never
rebuilds what it did not change.

Editing goes through :meth:`Node.add` (which inserts a child at the position
the schema demands), :meth:`Node.set_text`, :meth:`Node.set` and
:meth:`Node.remove`; the writer validates the result against the XSDs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from lxml import etree

from isa95.b2mml.xmltext import set_text_of, text_of
from isa95.errors import B2MMLError

__all__ = [
    "UNBOUNDED",
    "Attr",
    "Field",
    "Node",
    "Release",
    "Simple",
    "Spec",
    "Text",
]

UNBOUNDED = 1 << 30
N = TypeVar("N", bound="Node")


@dataclass(frozen=True)
class Simple:
    """A simple type reduced to what readers, writers and generators need."""

    base: str
    """The XSD built-in type it derives from (``string``, ``decimal``, ``dateTime`` ...)."""
    enumeration: tuple[str, ...] = ()
    """Allowed values (empty: any lexical value of ``base``); a union with a free type
    keeps its enumeration here with ``open`` set."""
    open: bool = False
    """True when values outside ``enumeration`` are also allowed (a union)."""


@dataclass(frozen=True)
class Attr:
    """An attribute of a complex type."""

    name: str
    required: bool
    simple: str
    """Key of its simple type in the release's ``SIMPLE`` table."""


@dataclass(frozen=True)
class Field:
    """One child element slot of a complex type, in schema order."""

    name: str
    """Local name; ``"*"`` for an ``xsd:any`` wildcard."""
    namespace: str
    type: str | None
    """Binding class name for element content, None for text-only content."""
    simple: str | None
    """Simple type key of text-only content."""
    min: int
    max: int
    rank: int
    """Children are kept in ascending rank; members of a repeating choice share one."""
    choice: int = 0
    """Choice group within the type (0: not in a choice)."""
    branch: int = 0
    """Branch of that choice."""
    needed: bool = False
    """True when the choice must be made (one branch present)."""
    group: int = 0
    """Optional or repeating sequence the slot belongs to (0: none): its members
    occur together, so a writer adding one must add the group's required ones."""
    group_min: int = 0
    """minOccurs of the slot inside that sequence."""


@dataclass(frozen=True)
class Spec:
    """The flattened content model of a complex type."""

    name: str
    fields: tuple[Field, ...] = ()
    attributes: tuple[Attr, ...] = ()
    text: str | None = None
    """Simple type key of the text of a simple-content type (None: element content)."""
    by_name: dict[tuple[str, str], Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for item in self.fields:
            self.by_name.setdefault((item.namespace, item.name), item)

    def field(self, name: str, namespace: str | None = None) -> Field | None:
        """The slot of child ``name`` (in ``namespace``, default: any namespace)."""
        if namespace is not None:
            return self.by_name.get((namespace, name))
        for item in self.fields:
            if item.name == name:
                return item
        return None

    @property
    def wildcard(self) -> Field | None:
        """The ``xsd:any`` slot, if the type has one."""
        return self.by_name.get(("##any", "*")) or next(
            (f for f in self.fields if f.name == "*"), None
        )


class Release:
    """Everything generated for one release: specs, classes, global elements, simple types."""

    def __init__(
        self,
        version: str,
        namespace: str,
        specs: dict[str, Spec],
        elements: dict[tuple[str, str], str | None],
        simple: dict[str, Simple],
        classes: dict[str, type[Node]],
        element_simple: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.version = version
        self.namespace = namespace
        self.specs = specs
        self.elements = elements
        self.simple = simple
        self.classes = classes
        self.element_simple = element_simple or {}
        for name, cls in classes.items():
            cls.SPEC = specs[name]

    def class_of(self, type_name: str | None) -> type[Node]:
        """The binding class of a complex type (``Text`` for text-only content)."""
        if type_name is None:
            return Text
        return self.classes[type_name]

    def element_class(self, name: str, namespace: str | None = None) -> type[Node]:
        """The binding class of global element ``name``."""
        key = (namespace or self.namespace, name)
        if key not in self.elements:
            raise B2MMLError(f"B2MML {self.version} has no global element <{name}>")
        return self.class_of(self.elements[key])

    def wrap(self, element: etree._Element) -> Node:
        """The binding of a root element of this release."""
        qname = etree.QName(element)
        return self.element_class(qname.localname, qname.namespace).bound(element, self)

    def new(self, name: str, namespace: str | None = None, prefix: str | None = None) -> Node:
        """A new, empty global element ``name`` (the root of a document being built).

        The release's namespace is the default one unless ``prefix`` is given;
        a prefix is needed only where the schema has unqualified local elements
        (V0701's InformationObject), which a default namespace cannot hold.
        """
        ns = namespace or self.namespace
        cls = self.element_class(name, ns)
        element = etree.Element(f"{{{ns}}}{name}", nsmap={prefix: self.namespace})
        return cls.bound(element, self)


class Node:
    """A typed view over one lxml element; the element holds all the data."""

    __slots__ = ("element", "release")
    SPEC: ClassVar[Spec] = Spec("(text)")

    def __init__(self, element: etree._Element, release: Release) -> None:
        self.element = element
        self.release = release

    @classmethod
    def bound(cls: type[N], element: etree._Element, release: Release) -> N:
        """``cls`` over ``element``."""
        return cls(element, release)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {etree.QName(self.element).localname}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.element is self.element

    def __hash__(self) -> int:
        return id(self.element)

    # ------------------------------------------------------------ reading

    @property
    def tag(self) -> str:
        """The element's local name."""
        return str(etree.QName(self.element).localname)

    @property
    def text(self) -> str | None:
        """The text exactly as written (None when the element has none); a comment or
        processing instruction inside it is left out, not where the value ends."""
        return text_of(self.element)

    def get(self, attribute: str) -> str | None:
        """An attribute's lexical value."""
        value = self.element.get(attribute)
        return None if value is None else str(value)

    @property
    def attributes(self) -> dict[str, str]:
        """Every attribute, keyed by its (Clark-notation) name, in document order."""
        return {str(k): str(v) for k, v in self.element.attrib.items()}

    def _child(self, child: etree._Element) -> Node | etree._Element:
        qname = etree.QName(child)
        slot = self.SPEC.field(qname.localname, qname.namespace)
        if slot is None:
            return child  # extension content: kept as raw XML
        return self.release.class_of(slot.type).bound(child, self.release)

    def children(self) -> Iterator[Node | etree._Element]:
        """Child elements in document order: bindings, or raw lxml elements for extensions."""
        for child in self.element:
            if isinstance(child.tag, str):
                yield self._child(child)

    def all(self, name: str) -> list[Node]:
        """Every child element called ``name`` (a schema slot of this type)."""
        slot = self._slot(name)
        cls = self.release.class_of(slot.type)
        tag = f"{{{slot.namespace}}}{name}"
        return [cls.bound(c, self.release) for c in self.element.iterchildren(tag)]

    def one(self, name: str) -> Node | None:
        """The child element called ``name``, or None (first one if it repeats)."""
        slot = self._slot(name)
        child = self.element.find(f"{{{slot.namespace}}}{name}")
        if child is None:
            return None
        return self.release.class_of(slot.type).bound(child, self.release)

    def value(self, name: str) -> str | None:
        """The text of child ``name`` as written, or None."""
        child = self.one(name)
        return None if child is None else child.text

    def extensions(self) -> list[etree._Element]:
        """Children the type's schema slots do not name (``xsd:any`` content)."""
        return [c for c in self.children() if isinstance(c, etree._Element)]

    def _slot(self, name: str) -> Field:
        slot = self.SPEC.field(name)
        if slot is None:
            raise B2MMLError(f"<{self.tag}> ({self.SPEC.name}) has no child element {name!r}")
        return slot

    # ------------------------------------------------------------ editing

    def set_text(self, value: str | None) -> None:
        """Set the text (stored as given: no normalisation); comments in it stay, after it."""
        set_text_of(self.element, value)

    def set(self, attribute: str, value: str | None) -> None:
        """Set (or with None remove) an attribute, as given."""
        if value is None:
            self.element.attrib.pop(attribute, None)
        else:
            self.element.set(attribute, value)

    def add(self, name: str, text: str | None = None) -> Node:
        """Append a new child ``name`` at the position the schema gives it; returns it."""
        slot = self._slot(name)
        existing = len(list(self.element.iterchildren(f"{{{slot.namespace}}}{name}")))
        if existing >= slot.max:
            raise B2MMLError(f"<{name}> may occur at most {slot.max} times in <{self.tag}>")
        if not slot.namespace and self.element.nsmap.get(None):
            raise B2MMLError(
                f"<{name}> is unqualified in <{self.tag}>, which a default namespace cannot "
                "express: build the document with a prefix (Release.new(..., prefix='b2mml'))"
            )
        child = etree.Element(f"{{{slot.namespace}}}{name}")
        position = 0
        for index, other in enumerate(self.element):
            if not isinstance(other.tag, str):
                continue
            qname = etree.QName(other)
            other_slot = self.SPEC.field(qname.localname, qname.namespace)
            rank = other_slot.rank if other_slot is not None else slot.rank
            if rank <= slot.rank:
                position = index + 1
        self.element.insert(position, child)
        if text is not None:
            child.text = text
        return self.release.class_of(slot.type).bound(child, self.release)

    def append_raw(self, xml: etree._Element) -> None:
        """Append extension content (only where the type has an ``xsd:any`` slot)."""
        if self.SPEC.wildcard is None:
            raise B2MMLError(f"<{self.tag}> ({self.SPEC.name}) takes no extension content")
        self.element.append(xml)

    def remove(self, child: Node | etree._Element) -> None:
        """Remove a child element."""
        element = child.element if isinstance(child, Node) else child
        self.element.remove(element)

    # ------------------------------------------------------------ plain data

    def to_data(self) -> Any:
        """The element as JSON-able data, in document order, values as written.

        Text-only elements without attributes become their string; others a
        dict with ``"@attr"``, ``"#text"`` and child names (a list where the
        schema lets the child repeat); extension content is under ``"##any"``
        as XML strings.
        """
        attributes = {
            f"@{etree.QName(k).localname}": str(v)
            for k, v in self.element.attrib.items()
            if not str(k).startswith("{http://www.w3.org/2001/XMLSchema-instance}")
        }
        if not self.SPEC.fields:
            if not attributes:
                return self.text or ""
            return {**attributes, "#text": self.text or ""}
        data: dict[str, Any] = dict(attributes)
        for child in self.children():
            if isinstance(child, Node):
                slot = self.SPEC.field(child.tag, etree.QName(child.element).namespace)
                value = child.to_data()
                if slot is not None and slot.max > 1:
                    data.setdefault(child.tag, []).append(value)
                else:
                    data[child.tag] = value
            else:
                data.setdefault("##any", []).append(
                    etree.tostring(child, encoding="unicode", with_tail=False)
                )
        return data


class Text(Node):
    """An element with text-only content of an XSD simple type."""

    __slots__ = ()
