"""A structural index of MESA's B2MML XSDs: which children, in which order, how many.

lxml validates documents against the XSDs but cannot tell a writer the order
of child elements, nor a reader which children repeat. This module reads the
schema files themselves (as plain, safely parsed XML) and flattens every
complex type into an ordered list of :class:`Particle` s — following
``complexContent`` extensions, named groups (including MESA's extension
groups) and ``choice`` — so one generic writer and reader serve every
document type of both releases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lxml import etree

from isa95.errors import SchemaError

__all__ = ["ComplexType", "Particle", "SchemaIndex", "load_index"]

XSD = "http://www.w3.org/2001/XMLSchema"
_X = "{" + XSD + "}"
UNBOUNDED = 1 << 30


@dataclass
class Particle:
    """One child element slot of a complex type (or a wildcard when ``name`` is None)."""

    name: str | None
    namespace: str
    type: ComplexType | None  # None: simple text content
    min_occurs: int
    max_occurs: int
    simple_type: str | None = None  # local name of the XSD simple type, if known

    @property
    def repeats(self) -> bool:
        """True when the element may occur more than once (a list in trees)."""
        return self.max_occurs > 1


@dataclass
class ComplexType:
    """A flattened complex type: ordered children, attributes, or simple content."""

    name: str
    particles: list[Particle] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    simple_content: bool = False
    resolved: bool = False

    def particle(self, name: str) -> Particle | None:
        """The child slot called ``name``."""
        index = self.__dict__.get("_by_name")
        if index is None:
            index = {}
            for particle in self.particles:
                if particle.name is not None:
                    index.setdefault(particle.name, particle)
            if self.resolved:  # types are filled while they are built: cache once complete
                self.__dict__["_by_name"] = index
        return index.get(name)

    @property
    def has_wildcard(self) -> bool:
        """True when extension content (``xsd:any``) is allowed."""
        return any(p.name is None for p in self.particles)


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _occurs(node: etree._Element, attr: str, default: int) -> int:
    value = node.get(attr)
    if value is None:
        return default
    return UNBOUNDED if value == "unbounded" else int(value)


class SchemaIndex:
    """Every global element, complex type and group of one B2MML release."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._types: dict[tuple[str, str], etree._Element] = {}
        self._groups: dict[tuple[str, str], etree._Element] = {}
        self._elements: dict[tuple[str, str], etree._Element] = {}
        self._simple: set[tuple[str, str]] = set()
        self._built: dict[tuple[str, str], ComplexType] = {}
        files = sorted(directory.glob("*.xsd"))
        if not files:
            raise SchemaError(f"no XSD files in {directory}")
        for path in files:
            if path.name.startswith("AllSchemas"):
                continue
            root = etree.parse(str(path), _safe_parser()).getroot()
            target = root.get("targetNamespace", "")
            for node in root:
                if not isinstance(node.tag, str):
                    continue
                name = node.get("name")
                if name is None:
                    continue
                key = (target, name)
                if node.tag == _X + "complexType":
                    self._types[key] = node
                elif node.tag == _X + "group":
                    self._groups[key] = node
                elif node.tag == _X + "element":
                    self._elements[key] = node
                elif node.tag == _X + "simpleType":
                    self._simple.add(key)
        self.namespaces = sorted({ns for ns, _ in self._elements})

    # ----------------------------------------------------------- lookups

    def _resolve_qname(self, node: etree._Element, qname: str) -> tuple[str, str]:
        prefix, _, local = qname.rpartition(":")
        namespace = node.nsmap.get(prefix or None)
        if namespace is None:
            raise SchemaError(f"unknown prefix in {qname!r} in {self.directory}")
        return namespace, local

    def element_type(self, namespace: str, name: str) -> ComplexType | None:
        """The complex type of global element ``name`` (None for simple elements)."""
        node = self._elements.get((namespace, name))
        if node is None:
            raise SchemaError(f"no global element {name!r} in namespace {namespace}")
        return self._element_content(node)

    def has_element(self, namespace: str, name: str) -> bool:
        """True when ``name`` is a global element of ``namespace``."""
        return (namespace, name) in self._elements

    def complex_type(self, namespace: str, name: str) -> ComplexType:
        """The flattened complex type ``name``."""
        key = (namespace, name)
        if key in self._built:
            return self._built[key]
        node = self._types.get(key)
        if node is None:
            raise SchemaError(f"no complex type {name!r}")
        built = ComplexType(name)
        self._built[key] = built  # registered first: types are recursive
        self._fill(built, node)
        built.resolved = True
        return built

    def _element_content(self, node: etree._Element) -> ComplexType | None:
        type_name = node.get("type")
        if type_name is not None:
            namespace, local = self._resolve_qname(node, type_name)
            if (namespace, local) in self._types:
                return self.complex_type(namespace, local)
            return None
        inline = node.find(_X + "complexType")
        if inline is None:
            return None
        built = ComplexType(node.get("name", "anonymous"))
        self._fill(built, inline)
        built.resolved = True
        return built

    # ---------------------------------------------------------- flattening

    def _fill(self, built: ComplexType, node: etree._Element) -> None:
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            if tag in (_X + "sequence", _X + "choice", _X + "all"):
                self._particles(built, child, 1)
            elif tag == _X + "group":
                self._group(built, child, 1)
            elif tag == _X + "attribute":
                name = child.get("name") or child.get("ref", "").rpartition(":")[2]
                built.attributes.append(name)
            elif tag in (_X + "complexContent", _X + "simpleContent"):
                simple = tag == _X + "simpleContent"
                for derivation in child:
                    if not isinstance(derivation.tag, str):
                        continue
                    base = derivation.get("base")
                    if base is not None:
                        namespace, local = self._resolve_qname(derivation, base)
                        if (namespace, local) in self._types:
                            parent = self.complex_type(namespace, local)
                            built.particles.extend(parent.particles)
                            built.attributes.extend(parent.attributes)
                            built.simple_content = built.simple_content or parent.simple_content
                    built.simple_content = built.simple_content or simple
                    self._fill(built, derivation)

    def _group(self, built: ComplexType, node: etree._Element, factor: int) -> None:
        namespace, local = self._resolve_qname(node, node.get("ref", ""))
        group = self._groups.get((namespace, local))
        if group is None:
            raise SchemaError(f"group {local!r} is not defined")
        times = factor * max(1, _occurs(node, "maxOccurs", 1))
        for child in group:
            if isinstance(child.tag, str) and child.tag in (_X + "sequence", _X + "choice"):
                self._particles(built, child, times)

    def _particles(self, built: ComplexType, node: etree._Element, factor: int) -> None:
        repeat = _occurs(node, "maxOccurs", 1)
        times = min(UNBOUNDED, factor * repeat)
        optional = node.tag == _X + "choice" or _occurs(node, "minOccurs", 1) == 0
        for child in node:
            if not isinstance(child.tag, str):
                continue
            if child.tag == _X + "element":
                built.particles.append(self._element_particle(child, times, optional))
            elif child.tag in (_X + "sequence", _X + "choice"):
                self._particles(built, child, times)
            elif child.tag == _X + "group":
                self._group(built, child, times)
            elif child.tag == _X + "any":
                built.particles.append(
                    Particle(None, child.get("namespace", "##any"), None, 0, UNBOUNDED)
                )

    def _element_particle(self, node: etree._Element, factor: int, optional: bool) -> Particle:
        max_occurs = min(UNBOUNDED, factor * _occurs(node, "maxOccurs", 1))
        min_occurs = 0 if optional else _occurs(node, "minOccurs", 1)
        ref = node.get("ref")
        if ref is not None:
            namespace, local = self._resolve_qname(node, ref)
            target = self._elements.get((namespace, local))
            if target is None:
                raise SchemaError(f"element ref {ref!r} is not defined")
            content = self._element_content(target)
            return Particle(local, namespace, content, min_occurs, max_occurs, target.get("type"))
        # Local elements are qualified with their schema document's target namespace.
        namespace = node.getroottree().getroot().get("targetNamespace", "")
        return Particle(
            node.get("name", ""),
            namespace,
            self._element_content(node),
            min_occurs,
            max_occurs,
            (node.get("type") or "").rpartition(":")[2] or None,
        )


@cache
def load_index(directory: Path) -> SchemaIndex:
    """The (cached) index of the XSDs in ``directory``."""
    return SchemaIndex(directory)
