"""Generate the typed B2MML bindings from MESA's XSDs.

    python -m isa95.b2mml.generate --schemas DIR [--out isa95/b2mml/bindings]

``DIR`` holds MESA's ``V0701/`` and ``V0600/`` folders. The output is one
module per release (``v0701.py``, ``v0600.py``): a :class:`~isa95.b2mml.binding.Node`
subclass per complex type with a typed property per child element, the
flattened content models (``SPECS``), the global elements and the simple
types. Generation is deterministic: the same schemas give byte-identical
modules (a test checks the committed ones).

The XSDs are read as data (safely: no DTD, entities or network). Complex types
are flattened through ``complexContent``/``simpleContent`` derivation, named
groups and nested sequences; ``choice`` groups are kept as numbered groups and
branches so random-instance generators and writers know what excludes what.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from isa95.errors import SchemaError

__all__ = ["generate_release", "main"]

XSD = "http://www.w3.org/2001/XMLSchema"
_X = "{" + XSD + "}"
UNBOUNDED = 1 << 30
NAMESPACES = {
    "V0701": "http://www.mesa.org/xml/B2MML",
    "V0600": "http://www.mesa.org/xml/B2MML-V0600",
}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )


def _occurs(node: etree._Element, attr: str, default: int) -> int:
    value = node.get(attr)
    if value is None:
        return default
    return UNBOUNDED if value.strip() == "unbounded" else int(value)


@dataclass
class _Field:
    name: str
    namespace: str
    type: str | None
    simple: str | None
    min: int
    max: int
    rank: int
    choice: int = 0
    branch: int = 0
    needed: bool = False
    group: int = 0
    group_min: int = 0


@dataclass
class _Type:
    name: str
    fields: list[_Field] = field(default_factory=list)
    attributes: list[tuple[str, bool, str]] = field(default_factory=list)
    text: str | None = None
    doc: str = ""


@dataclass
class _Simple:
    base: str
    enumeration: tuple[str, ...] = ()
    open: bool = False


class _Schemas:
    """The XSD components of one release, keyed by (namespace, name)."""

    def __init__(self, directory: Path, namespace: str) -> None:
        self.directory = directory
        self.namespace = namespace  # of chameleon files (no targetNamespace), e.g. CoreComponents
        self.types: dict[tuple[str, str], etree._Element] = {}
        self.simples: dict[tuple[str, str], etree._Element] = {}
        self.groups: dict[tuple[str, str], etree._Element] = {}
        self.attribute_groups: dict[tuple[str, str], etree._Element] = {}
        self.elements: dict[tuple[str, str], etree._Element] = {}
        files = sorted(p for p in directory.glob("*.xsd") if not p.name.startswith("AllSchemas"))
        if not files:
            raise SchemaError(f"no XSD files in {directory}")
        tables = {
            "complexType": self.types,
            "simpleType": self.simples,
            "group": self.groups,
            "attributeGroup": self.attribute_groups,
            "element": self.elements,
        }
        for path in files:
            root = etree.parse(str(path), _parser()).getroot()
            target = root.get("targetNamespace") or namespace
            for node in root:
                if not isinstance(node.tag, str) or node.get("name") is None:
                    continue
                table = tables.get(etree.QName(node).localname)
                if table is not None:
                    table.setdefault((target, node.get("name", "")), node)

    def qname(self, node: etree._Element, value: str) -> tuple[str, str]:
        prefix, _, local = value.strip().rpartition(":")
        namespace = node.nsmap.get(prefix or None)
        if namespace is None and not prefix:
            namespace = self.namespace
        if namespace is None:
            raise SchemaError(f"unknown prefix in {value!r} in {self.directory}")
        return namespace, local


class _Generator:
    def __init__(self, schemas: _Schemas) -> None:
        self.s = schemas
        self.types: dict[str, _Type] = {}
        self.type_names: dict[tuple[str, str], str] = {}
        self.simple: dict[str, _Simple] = {}
        self.simple_names: dict[tuple[str, str], str] = {}
        taken: set[str] = set()
        for namespace, name in sorted(self.s.types):
            self.type_names[(namespace, name)] = self._unique(name, taken)
        simple_taken: set[str] = set()
        for namespace, name in sorted(self.s.simples):
            self.simple_names[(namespace, name)] = self._unique(name, simple_taken)
        self.taken = taken
        self._sequence: list[int] = []
        self._sequences = 0

    @staticmethod
    def _unique(name: str, taken: set[str]) -> str:
        candidate = name if not keyword.iskeyword(name) else name + "_"
        number = 2
        while candidate in taken:
            candidate = f"{name}{number}"
            number += 1
        taken.add(candidate)
        return candidate

    # ------------------------------------------------------------- simple types

    def simple_key(self, node: etree._Element, qname: str) -> str:
        namespace, local = self.s.qname(node, qname)
        if namespace == XSD:
            self.simple.setdefault(local, _Simple(local))
            return local
        key = self.simple_names.get((namespace, local))
        if key is None:
            raise SchemaError(f"simple type {qname!r} is not defined")
        if key not in self.simple:
            self.simple[key] = _Simple("string")  # placeholder against cycles
            self.simple[key] = self._simple_of(self.s.simples[(namespace, local)])
        return key

    def _resolve(self, key: str) -> _Simple:
        return self.simple[key]

    def _simple_of(self, node: etree._Element) -> _Simple:
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = etree.QName(child).localname
            if tag == "restriction":
                base = self._simple_base(child)
                values = tuple(e.get("value", "") for e in child.iterchildren(_X + "enumeration"))
                return _Simple(base.base, values or base.enumeration, base.open and not values)
            if tag == "union":
                members = [
                    self._resolve(self.simple_key(child, m))
                    for m in (child.get("memberTypes") or "").split()
                ]
                members += [self._simple_of(n) for n in child.iterchildren(_X + "simpleType")]
                closed = [m for m in members if m.enumeration]
                free = [m for m in members if not m.enumeration]
                values = tuple(v for m in closed for v in m.enumeration)
                base_type = free[0].base if free else (closed[0].base if closed else "string")
                return _Simple(base_type, values, bool(free))
            if tag == "list":
                return _Simple("string")
        return _Simple("string")

    def _simple_base(self, restriction: etree._Element) -> _Simple:
        base = restriction.get("base")
        if base is not None:
            return self._resolve(self.simple_key(restriction, base))
        inline = restriction.find(_X + "simpleType")
        return self._simple_of(inline) if inline is not None else _Simple("string")

    # ------------------------------------------------------------ complex types

    def type_name(self, node: etree._Element, qname: str) -> str | None:
        """Binding class name of a named type, or None when it is simple."""
        namespace, local = self.s.qname(node, qname)
        if (namespace, local) in self.s.types:
            name = self.type_names[(namespace, local)]
            if name not in self.types:
                self._build(name, self.s.types[(namespace, local)])
            return name
        return None

    def _build(self, name: str, node: etree._Element) -> _Type:
        built = _Type(name)
        self.types[name] = built  # registered first: types are recursive
        outer = (self._sequence, self._sequences)
        self._sequence, self._sequences = [], 0
        doc = node.find(f"{_X}annotation/{_X}documentation")
        if doc is not None and doc.text:
            built.doc = " ".join(doc.text.split())[:300]
        self._content(built, node, counter=[0, 0])
        self._sequence, self._sequences = outer
        return built

    def _anonymous(self, owner: str, element: str, node: etree._Element) -> str:
        name = self._unique(f"{owner}_{element}", self.taken)
        self._build(name, node)
        return name

    def _content(self, built: _Type, node: etree._Element, counter: list[int]) -> None:
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = etree.QName(child).localname
            if tag in ("sequence", "choice", "all", "group"):
                self._particle(built, child, 1, False, (0, 0), counter)
            elif tag == "attribute":
                self._attribute(built, child)
            elif tag == "attributeGroup":
                group = self.s.attribute_groups.get(self.s.qname(child, child.get("ref", "")))
                if group is None:
                    raise SchemaError(f"attribute group {child.get('ref')!r} is not defined")
                self._content(built, group, counter)
            elif tag == "anyAttribute":
                continue
            elif tag in ("complexContent", "simpleContent"):
                for derivation in child:
                    if not isinstance(derivation.tag, str):
                        continue
                    self._derive(built, derivation, tag == "simpleContent", counter)

    def _derive(
        self, built: _Type, derivation: etree._Element, simple: bool, counter: list[int]
    ) -> None:
        kind = etree.QName(derivation).localname
        base = derivation.get("base", "")
        namespace, local = self.s.qname(derivation, base)
        if (namespace, local) in self.s.types:
            parent_name = self.type_name(derivation, base)
            parent = self.types[parent_name or ""]
            built.attributes.extend(parent.attributes)
            built.text = parent.text
            if kind == "extension" or simple:
                built.fields.extend(_Field(**vars(f)) for f in parent.fields)
                counter[0] = max([counter[0]] + [f.rank + 1 for f in parent.fields])
                counter[1] = max([counter[1]] + [f.choice for f in parent.fields])
        elif simple:
            built.text = self.simple_key(derivation, base)
        if simple and kind == "restriction":
            values = tuple(e.get("value", "") for e in derivation.iterchildren(_X + "enumeration"))
            if values:
                base_simple = self.simple.get(built.text or "string", _Simple("string"))
                key = f"{built.name}.text"
                self.simple[key] = _Simple(base_simple.base, values)
                built.text = key
        if kind == "restriction" and not simple:
            built.attributes = [a for a in built.attributes if a[0] not in _declared(derivation)]
        else:
            built.attributes = [a for a in built.attributes if a[0] not in _declared(derivation)]
        self._content(built, derivation, counter)

    def _attribute(self, built: _Type, node: etree._Element) -> None:
        ref = node.get("ref")
        name = node.get("name") or (ref or "").rpartition(":")[2]
        if node.get("use") == "prohibited":
            built.attributes = [a for a in built.attributes if a[0] != name]
            return
        type_ = node.get("type")
        if type_ is not None:
            simple = self.simple_key(node, type_)
        else:
            inline = node.find(_X + "simpleType")
            simple = "string"
            if inline is not None:
                simple = f"{built.name}@{name}"
                self.simple[simple] = self._simple_of(inline)
        built.attributes = [a for a in built.attributes if a[0] != name]
        built.attributes.append((name, node.get("use") == "required", simple))

    def _particle(
        self,
        built: _Type,
        node: etree._Element,
        factor: int,
        optional: bool,
        choice: tuple[int, int],
        counter: list[int],
    ) -> None:
        tag = etree.QName(node).localname
        times = min(UNBOUNDED, factor * _occurs(node, "maxOccurs", 1))
        optional = optional or _occurs(node, "minOccurs", 1) == 0
        if tag in ("group", "sequence", "all") and (
            _occurs(node, "minOccurs", 1) == 0 or _occurs(node, "maxOccurs", 1) > 1
        ):
            # An optional or repeating sequence: its members come together (or not at all).
            self._sequences += 1
            self._sequence.append(self._sequences)
            try:
                self._particle_body(built, node, tag, times, optional, choice, counter)
            finally:
                self._sequence.pop()
            return
        self._particle_body(built, node, tag, times, optional, choice, counter)

    def _particle_body(
        self,
        built: _Type,
        node: etree._Element,
        tag: str,
        times: int,
        optional: bool,
        choice: tuple[int, int],
        counter: list[int],
    ) -> None:
        if tag == "group":
            group = self.s.groups.get(self.s.qname(node, node.get("ref", "")))
            if group is None:
                raise SchemaError(f"group {node.get('ref')!r} is not defined")
            for child in group:
                if isinstance(child.tag, str) and etree.QName(child).localname in (
                    "sequence",
                    "choice",
                    "all",
                ):
                    self._particle(built, child, times, optional, choice, counter)
            return
        if tag in ("sequence", "all"):
            for child in node:
                if isinstance(child.tag, str):
                    self._particle(built, child, times, optional, choice, counter)
            return
        if tag == "choice":
            needed = not optional
            shared_rank = times > 1
            if choice == (0, 0):
                counter[1] += 1
                group_id = counter[1]
            else:
                group_id = 0  # nested choice: its branches stay in the outer branch
            start_rank = counter[0]
            branch = 0
            for child in node:
                if not isinstance(child.tag, str):
                    continue
                branch += 1
                inner = (group_id, branch) if group_id else choice
                if shared_rank:
                    counter[0] = start_rank
                first = len(built.fields)
                self._particle(built, child, times, True, inner, counter)
                if needed and group_id:
                    for item in built.fields[first:]:
                        item.needed = True
            if shared_rank:
                counter[0] = start_rank + 1
            return
        if tag == "any":
            built.fields.append(_Field("*", "##any", None, None, 0, UNBOUNDED, counter[0], *choice))
            counter[0] += 1
            return
        if tag != "element":
            return
        max_occurs = min(UNBOUNDED, times * _occurs(node, "maxOccurs", 1))
        min_occurs = 0 if optional else _occurs(node, "minOccurs", 1)
        ref = node.get("ref")
        if ref is not None:
            namespace, local = self.s.qname(node, ref)
            target = self.s.elements.get((namespace, local))
            if target is None:
                raise SchemaError(f"element ref {ref!r} is not defined")
            type_, simple = self._element_type(built.name, local, target)
        else:
            schema = node.getroottree().getroot()
            namespace = schema.get("targetNamespace") or self.s.namespace
            form = node.get("form") or schema.get("elementFormDefault") or "unqualified"
            if form.strip() != "qualified":
                namespace = ""  # e.g. V0701's InformationObject.xsd: local elements unqualified
            local = node.get("name", "")
            type_, simple = self._element_type(built.name, local, node)
        item = _Field(local, namespace, type_, simple, min_occurs, max_occurs, counter[0], *choice)
        if self._sequence:
            item.group = self._sequence[-1]
            item.group_min = _occurs(node, "minOccurs", 1)
        built.fields.append(item)
        counter[0] += 1

    def _element_type(
        self, owner: str, name: str, node: etree._Element
    ) -> tuple[str | None, str | None]:
        type_ = node.get("type")
        if type_ is not None:
            complex_name = self.type_name(node, type_)
            if complex_name is not None:
                return complex_name, None
            return None, self.simple_key(node, type_)
        inline = node.find(_X + "complexType")
        if inline is not None:
            return self._anonymous(owner, name, inline), None
        inline_simple = node.find(_X + "simpleType")
        if inline_simple is not None:
            key = f"{owner}.{name}"
            self.simple[key] = self._simple_of(inline_simple)
            return None, key
        return None, "string"

    def run(self) -> tuple[dict[tuple[str, str], str | None], dict[tuple[str, str], str]]:
        for (namespace, local), node in sorted(self.s.types.items()):
            name = self.type_names[(namespace, local)]
            if name not in self.types:
                self._build(name, node)
        elements: dict[tuple[str, str], str | None] = {}
        element_simple: dict[tuple[str, str], str] = {}
        for (namespace, local), node in sorted(self.s.elements.items()):
            type_, simple = self._element_type("Element", local, node)
            elements[(namespace, local)] = type_
            if simple is not None:
                element_simple[(namespace, local)] = simple
        return elements, element_simple


def _declared(node: etree._Element) -> set[str]:
    return {a.get("name", "") for a in node.iterchildren(_X + "attribute")}


def _lit(value: object) -> str:
    return repr(value)


def _py_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def generate_release(directory: str | Path, version: str) -> str:
    """The source of the binding module of one release (``directory`` is its XSD folder)."""
    if version not in NAMESPACES:
        raise SchemaError(f"unknown B2MML version {version!r}")
    generator = _Generator(_Schemas(Path(directory), NAMESPACES[version]))
    elements, element_simple = generator.run()
    namespace = NAMESPACES[version]
    lines = [
        f'"""Typed bindings of MESA B2MML {version}, generated from its XSDs. Do not edit.',
        "",
        "Regenerate with ``python -m isa95.b2mml.generate --schemas DIR`` (DIR holds",
        "MESA's V0701/ and V0600/); see docs/b2mml.md. Every class is a typed view over an",
        "lxml element (:mod:`isa95.b2mml.binding`); properties return child bindings,",
        "lists for children that may repeat.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import cast",
        "",
        "from isa95.b2mml.binding import Attr, Field, Node, Release, Simple, Spec, Text",
        "",
        f"VERSION = {version!r}",
        f"NAMESPACE = {namespace!r}",
        "",
        "SIMPLE: dict[str, Simple] = {",
    ]
    for key in sorted(generator.simple):
        s = generator.simple[key]
        args = [_lit(s.base)]
        if s.enumeration:
            args.append(_lit(s.enumeration))
        if s.open:
            args.append("open=True")
        lines.append(f"    {key!r}: Simple({', '.join(args)}),")
    lines += ["}", ""]
    aliases: set[str] = set()
    for name in sorted(generator.types):
        built = generator.types[name]
        lines += ["", f"class {name}(Node):"]
        doc = built.doc.replace("\\", "\\\\").replace('"""', "'''")
        lines.append(f'    """{doc}"""' if doc else f'    """{name}."""')
        lines += ["", "    __slots__ = ()"]
        seen: set[str] = set()
        names = {f.name for f in built.fields}
        for f in built.fields:
            if f.name == "*" or f.name in seen:
                continue
            seen.add(f.name)
            cls = f.type or "Text"
            if cls in names:  # a property named like a type hides that type in the class
                aliases.add(cls)
                cls = "_" + cls
            lines.append("")
            lines.append("    @property")
            if f.max > 1:
                lines.append(f"    def {_py_name(f.name)}(self) -> list[{cls}]:")
                lines.append(f'        return cast("list[{cls}]", self.all({f.name!r}))')
            else:
                lines.append(f"    def {_py_name(f.name)}(self) -> {cls} | None:")
                lines.append(f'        return cast("{cls} | None", self.one({f.name!r}))')
    lines.append("")
    for name in sorted(aliases):
        lines += ["", f"_{name} = {name}"]
    lines += ["", "", "SPECS: dict[str, Spec] = {"]
    for name in sorted(generator.types):
        built = generator.types[name]
        parts = [repr(name)]
        if built.fields:
            parts.append("fields=(" + "".join(_field(f) + ", " for f in built.fields) + ")")
        if built.attributes:
            attrs = "".join(f"Attr({n!r}, {r!r}, {s!r}), " for n, r, s in built.attributes)
            parts.append(f"attributes=({attrs})")
        if built.text is not None:
            parts.append(f"text={built.text!r}")
        lines.append(f"    {name!r}: Spec({', '.join(parts)}),")
    lines += ["}", "", "ELEMENTS: dict[tuple[str, str], str | None] = {"]
    for element_key in sorted(elements):
        lines.append(f"    {element_key!r}: {elements[element_key]!r},")
    lines += ["}", "", "ELEMENT_SIMPLE: dict[tuple[str, str], str] = {"]
    for element_key in sorted(element_simple):
        lines.append(f"    {element_key!r}: {element_simple[element_key]!r},")
    lines += ["}", "", "CLASSES: dict[str, type[Node]] = {"]
    for name in sorted(generator.types):
        lines.append(f"    {name!r}: {name},")
    lines += [
        "}",
        "",
        "RELEASE = Release(VERSION, NAMESPACE, SPECS, ELEMENTS, SIMPLE, CLASSES, ELEMENT_SIMPLE)",
        "",
        '__all__ = ["CLASSES", "ELEMENTS", "NAMESPACE", "RELEASE", "SIMPLE", "SPECS", "Text"]',
        "",
    ]
    return "\n".join(lines)


def _field(f: _Field) -> str:
    args = [repr(f.name), repr(f.namespace), repr(f.type), repr(f.simple), str(f.min), str(f.max)]
    args.append(str(f.rank))
    if f.choice:
        args += [str(f.choice), str(f.branch)]
        if f.needed or f.group:
            args.append(str(f.needed))
    if f.group:
        if not f.choice:
            args += ["0", "0", "False"]
        args += [str(f.group), str(f.group_min)]
    return f"Field({', '.join(args)})"


def write_bindings(schemas: str | Path, out: str | Path, versions: Iterable[str]) -> list[Path]:
    """Generate the modules for ``versions`` into ``out``; returns the files written."""
    written = []
    for version in versions:
        source = generate_release(Path(schemas) / version, version)
        path = Path(out) / f"{version.lower()}.py"
        path.write_text(source, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the binding modules."""
    parser = argparse.ArgumentParser(description="Generate the B2MML bindings from MESA's XSDs.")
    parser.add_argument(
        "--schemas", required=True, metavar="DIR", help="folder holding V0701/ and V0600/"
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).with_name("bindings")),
        metavar="DIR",
        help="output folder (default: the package's bindings/)",
    )
    args = parser.parse_args(argv)
    for path in write_bindings(args.schemas, args.out, NAMESPACES):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
