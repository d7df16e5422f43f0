"""Conversion between B2MML V0600 and V0701, on the generated bindings.

The conversion walks the source document with the source release's content
model and builds the target document with the target's (both generated from
MESA's XSDs), renaming what the releases name differently (:data:`RENAMES`,
the table in docs/b2mml.md) and putting children in the order the target
schema demands. Text and attribute values are copied exactly as written, so
a date-time without a zone converts without being interpreted.

Nothing is dropped or invented silently: content the target cannot hold, and
content the target requires but the source lacks, make the conversion refuse
with a :class:`ConversionRefused` listing every such path — unless the caller
chose a policy for it (``fill_ids="derive"``). The result is validated against
the target's XSDs before it is returned.

ISA-95:2013 renamed the production-only objects of V0600 to operations objects
in V0701 (ProductionSchedule → OperationsSchedule, product segment →
operations segment). A V0600 ProductionSchedule therefore becomes a V0701
OperationsSchedule; the converter marks such a document with the processing
instruction ``<?b2mml-source noun="ProductionSchedule"?>`` so that converting
it back restores the original noun (``noun=`` overrides the choice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lxml import etree

from isa95.b2mml.binding import Node, Release, Spec
from isa95.errors import B2MMLError, XMLIssue

__all__ = [
    "EXTENSION_NAMESPACES",
    "FILL_POLICIES",
    "RENAMES",
    "SOURCE_PI",
    "ConversionProblem",
    "ConversionRefused",
    "convert_binding",
]

SOURCE_PI = "b2mml-source"
"""Target of the processing instruction recording a renamed noun of the source."""

FILL_POLICIES = ("derive",)
"""``derive``: a required ``ID`` the source lacks is made from the nearest
ancestor's ID, the element's name and its position (``S-1/OperationsRequest.2``);
a required reference (``OperationsDefinitionID``, ``OperationsSegmentID`` ...) the
source lacks is taken from the nearest enclosing element that names one (a V0600
request's ProductProductionRuleID is its OperationsDefinitionID)."""

EXTENSION_NAMESPACES = {
    "V0600": "http://www.mesa.org/xml/B2MML-V0600-AllExtensions",
    "V0701": "http://www.mesa.org/xml/B2MML-AllExtensions",
}

# V0600 name → V0701 name (ISA-95:2013 terms). Applied to element names where the
# target type has no element of the source's name; the reverse applies V0701 → V0600.
RENAMES: dict[str, str] = {
    "ProductionSchedule": "OperationsSchedule",
    "ProductionRequest": "OperationsRequest",
    "ProductionResponse": "OperationsResponse",
    "ProductionPerformance": "OperationsPerformance",
    "ProductionCapability": "OperationsCapability",
    "ProductionParameter": "SegmentParameter",
    "ProductDefinition": "OperationsDefinition",
    "ProductInformation": "OperationsDefinitionInformation",
    "ProductSegment": "OperationsSegment",
    "ProductSegmentID": "OperationsSegmentID",
    "ProductProductionRuleID": "OperationsDefinitionID",
    "ProductionScheduleID": "OperationsScheduleID",
    "ProductionRequestID": "OperationsRequestID",
}
"""Renamed elements, V0600 → V0701. Besides these, V0701 names a child of the same
kind as its parent ``<Name>Child`` (nested SegmentRequirement → SegmentRequirementChild)."""

_VERBS = ("Process", "Sync", "Get", "Show", "Acknowledge", "Change", "Cancel", "Respond")


@dataclass(frozen=True)
class ConversionProblem:
    """One reason a conversion cannot be made as asked."""

    path: str
    """XPath-like path in the source document (1-based positions)."""
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class ConversionRefused(B2MMLError):
    """The target release cannot hold the document as it is; ``problems`` lists every path."""

    def __init__(self, summary: str, problems: list[ConversionProblem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{summary}: {shown}{more}")


def _rename_table(source: str, target: str) -> dict[str, str]:
    if (source, target) == ("V0600", "V0701"):
        return dict(RENAMES)
    if (source, target) == ("V0701", "V0600"):
        return {v: k for k, v in RENAMES.items()}
    return {}


class _Converter:
    def __init__(self, source: Release, target: Release, fill_ids: str | None) -> None:
        self.source = source
        self.target = target
        self.fill_ids = fill_ids
        self.renames = _rename_table(source.version, target.version)
        self.problems: list[ConversionProblem] = []
        self.derived: list[etree._Element] = []
        """Elements the fill policy made (recorded so converting back drops them)."""
        self.skip: set[etree._Element] = set()
        """Source elements an earlier conversion derived: not content of the sender."""
        self.namespaces = {
            source.namespace: target.namespace,
            EXTENSION_NAMESPACES[source.version]: EXTENSION_NAMESPACES[target.version],
        }

    def target_name(self, name: str, spec: Spec) -> str | None:
        """The target element name for source child ``name`` under a target type ``spec``."""
        candidates = [name]
        if name in self.renames:
            candidates.append(self.renames[name])
        if self.target.version == "V0701":
            candidates += [c + "Child" for c in list(candidates)]
        elif name.endswith("Child"):
            base = name[: -len("Child")]
            candidates += [base, self.renames.get(base, base)]
        for candidate in candidates:
            if spec.field(candidate) is not None:
                return candidate
        return None

    def namespace(self, namespace: str | None) -> str | None:
        if namespace is None:
            return None
        return self.namespaces.get(namespace, namespace)

    def element(
        self,
        source: etree._Element,
        source_spec: Spec,
        target_tag: str,
        target_spec: Spec,
        path: str,
        nsmap: dict[str | None, str] | None = None,
        inherited: dict[str, tuple[str, str | None]] | None = None,
    ) -> etree._Element:
        inherited = dict(inherited or {})
        out = etree.Element(target_tag, nsmap=nsmap) if nsmap is not None else None
        if out is None:
            out = etree.Element(target_tag)
        allowed = {a.name for a in target_spec.attributes}
        for key, value in source.attrib.items():
            name = str(key)
            if name.startswith("{"):
                out.set(name, value)  # xsi:, xml: and foreign attributes keep their names
            elif name in allowed:
                out.set(name, value)
            else:
                self.problems.append(
                    ConversionProblem(f"{path}/@{name}", f"no attribute {name!r} in the target")
                )
        out.text = source.text
        if not target_spec.fields and source_spec.fields:
            if source_spec.field("EquipmentElementLevel") is not None:
                self.collapse_level(source, out, path)
            else:
                self.collapse_location(source, out, source_spec, path)
            return out
        if not source_spec.fields and target_spec.field("LocationType") is not None:
            self.expand_location(source, out, target_spec)
            return out
        if not source_spec.fields and target_spec.field("EquipmentElementLevel") is not None:
            self.expand_level(source, out, target_spec, path)
            return out
        if not source_spec.fields and target_spec.fields:
            self.problems.append(
                ConversionProblem(path, f"text cannot become {target_spec.name} content")
            )
            return out
        if not target_spec.fields:
            self.check_value(out.text, target_spec.text, path)
            return out
        counts: dict[str, int] = {}
        pending: list[Any] = []
        ranked: list[tuple[int, list[Any]]] = []
        for child in source:  # references the children may inherit (fill policy "derive")
            if isinstance(child.tag, str) and len(child) == 0:
                local = etree.QName(child).localname
                if local != "ID" and local.endswith("ID"):
                    target_local = self.renames.get(local, local)
                    inherited[target_local] = (child.text or "", f"{path}/{local}")
        for child in source:
            if child in self.skip:
                continue
            if not isinstance(child.tag, str):
                pending.append(copy.copy(child))
                continue
            qname = etree.QName(child)
            local = qname.localname
            counts[local] = counts.get(local, 0) + 1
            child_path = f"{path}/{local}[{counts[local]}]"
            slot = source_spec.field(local, qname.namespace)
            if slot is None:  # extension content (xsd:any): copied as it is
                wildcard = target_spec.wildcard
                if wildcard is None:
                    self.problems.append(
                        ConversionProblem(child_path, "the target takes no extension content here")
                    )
                    continue
                converted = copy.deepcopy(child)
                ranked.append((wildcard.rank, [*pending, converted]))
                pending = []
                continue
            if self.parameters(child, local, slot.type, target_spec, child_path, ranked, pending):
                pending = []
                continue
            new_name = self.target_name(local, target_spec)
            target_slot = None if new_name is None else target_spec.field(new_name)
            if new_name is None or target_slot is None:
                self.problems.append(
                    ConversionProblem(
                        child_path,
                        f"<{local}> cannot be represented in {self.target.version} "
                        f"<{etree.QName(out).localname}> ({target_spec.name})",
                    )
                )
                continue
            child_source_spec = self.source.class_of(slot.type).SPEC
            child_target_spec = self.target.class_of(target_slot.type).SPEC
            if slot.type is None:
                child_source_spec = Spec("(text)", text=slot.simple)
            if target_slot.type is None:
                child_target_spec = Spec("(text)", text=target_slot.simple)
            converted = self.element(
                child,
                child_source_spec,
                f"{{{target_slot.namespace}}}{new_name}" if target_slot.namespace else new_name,
                child_target_spec,
                child_path,
                inherited=inherited,
            )
            converted.tail = child.tail
            ranked.append((target_slot.rank, [*pending, converted]))
            pending = []
        self.required(out, source, target_spec, ranked, path, inherited)
        ranked.sort(key=lambda item: item[0])  # stable: same-rank children keep their order
        for _, nodes in ranked:
            for node in nodes:
                out.append(node)
        for node in pending:
            out.append(node)
        return out

    def collapse_location(
        self, source: etree._Element, out: etree._Element, spec: Spec, path: str
    ) -> None:
        """V0701 ``<Location>X</Location><LocationType>Equipment</LocationType>`` is V0600's
        text ``X``: V0600 holds a storage location only as an equipment hierarchy scope."""
        elements = [c for c in source if isinstance(c.tag, str) and c not in self.skip]
        names = [etree.QName(c).localname for c in elements]
        kinds = [c for c in elements if etree.QName(c).localname == "LocationType"]
        if (
            spec.field("LocationType") is None
            or names not in (["Location", "LocationType"], ["Location"])
            or any((k.text or "").strip() != "Equipment" for k in kinds)
            or len(elements[0].attrib)
            or len(source.attrib)
        ):
            self.problems.append(
                ConversionProblem(
                    path,
                    f"{self.target.version} holds only an equipment location here, as text "
                    "(a Location with LocationType Equipment, nothing else)",
                )
            )
            return
        out.text = elements[0].text

    def collapse_level(self, source: etree._Element, out: etree._Element, path: str) -> None:
        """V0600 ``EquipmentLevel{EquipmentID=<own ID>, EquipmentElementLevel=L}`` is V0701's
        ``EquipmentLevel`` text ``L`` (the EquipmentID names the equipment itself)."""
        elements = [c for c in source if isinstance(c.tag, str) and c not in self.skip]
        names = [etree.QName(c).localname for c in elements]
        own = _own_id(source)
        if (
            names not in (["EquipmentID", "EquipmentElementLevel"], ["EquipmentElementLevel"])
            or (len(elements) == 2 and (elements[0].text or "") != own)
            or any(len(c.attrib) for c in elements)
        ):
            self.problems.append(
                ConversionProblem(
                    path,
                    f"{self.target.version} holds only the equipment's own level here, as text "
                    "(an EquipmentID naming the equipment itself and its EquipmentElementLevel)",
                )
            )
            return
        out.text = elements[-1].text

    def expand_level(
        self, source: etree._Element, out: etree._Element, spec: Spec, path: str
    ) -> None:
        """V0701's level text as V0600's hierarchy scope naming the equipment itself."""
        own = _own_id(source)
        id_slot = spec.field("EquipmentID")
        level_slot = spec.field("EquipmentElementLevel")
        assert id_slot is not None and level_slot is not None
        if own is None:
            self.problems.append(ConversionProblem(path, "no equipment ID to scope the level by"))
            return
        out.text = None
        equipment = etree.SubElement(out, f"{{{id_slot.namespace}}}EquipmentID")
        equipment.text = own
        level = etree.SubElement(out, f"{{{level_slot.namespace}}}EquipmentElementLevel")
        level.text = source.text
        self.derived.append(equipment)

    def expand_location(self, source: etree._Element, out: etree._Element, spec: Spec) -> None:
        """V0600's text storage location as V0701's Location + LocationType ``Equipment``."""
        out.text = None
        location_slot = spec.field("Location")
        kind_slot = spec.field("LocationType")
        assert location_slot is not None and kind_slot is not None
        location = etree.SubElement(out, f"{{{location_slot.namespace}}}Location")
        location.text = source.text
        kind = etree.SubElement(out, f"{{{kind_slot.namespace}}}LocationType")
        kind.text = "Equipment"
        self.derived.append(kind)

    def parameters(
        self,
        child: etree._Element,
        local: str,
        source_type: str | None,
        target_spec: Spec,
        path: str,
        ranked: list[tuple[int, list[Any]]],
        pending: list[Any],
    ) -> bool:
        """V0600 ``ProductionParameter`` wraps ``Parameter`` s; V0701 has ``SegmentParameter`` s.

        A V0600 ProductionParameter holds at most one Parameter (and optional
        segment IDs, which V0701 cannot hold here): V0600 → V0701 unwraps it into a
        SegmentParameter, V0701 → V0600 wraps each SegmentParameter into one.
        Returns True when ``child`` was handled here.
        """
        if source_type is None:
            return False
        if (
            local == "ProductionParameter"
            and target_spec.field("ProductionParameter") is None
            and (target_slot := target_spec.field("SegmentParameter")) is not None
            and target_slot.type is not None
        ):
            wrapper_spec = self.source.specs[source_type]
            first = True
            counts: dict[str, int] = {}
            for sub in child:
                if not isinstance(sub.tag, str):
                    continue
                sub_name = str(etree.QName(sub).localname)
                counts[sub_name] = counts.get(sub_name, 0) + 1
                sub_path = f"{path}/{sub_name}[{counts[sub_name]}]"
                sub_slot = wrapper_spec.field(sub_name)
                if sub_name != "Parameter" or sub_slot is None or sub_slot.type is None:
                    self.problems.append(
                        ConversionProblem(
                            sub_path,
                            f"<{sub_name}> of a ProductionParameter has no "
                            f"place in a {self.target.version} SegmentParameter",
                        )
                    )
                    continue
                converted = self.element(
                    sub,
                    self.source.specs[sub_slot.type],
                    f"{{{target_slot.namespace}}}SegmentParameter",
                    self.target.specs[target_slot.type],
                    sub_path,
                )
                converted.tail = child.tail
                ranked.append((target_slot.rank, [*(pending if first else []), converted]))
                first = False
            if first:
                self.problems.append(
                    ConversionProblem(
                        path,
                        "a ProductionParameter without a Parameter has no "
                        f"place in {self.target.version}",
                    )
                )
            return True
        if (
            local == "SegmentParameter"
            and target_spec.field("SegmentParameter") is None
            and (wrapper_slot := target_spec.field("ProductionParameter")) is not None
            and wrapper_slot.type is not None
        ):
            inner = self.target.specs[wrapper_slot.type].field("Parameter")
            if inner is None or inner.type is None:
                return False
            converted = self.element(
                child,
                self.source.specs[source_type],
                f"{{{inner.namespace}}}Parameter",
                self.target.specs[inner.type],
                path,
            )
            wrapper = etree.Element(f"{{{wrapper_slot.namespace}}}ProductionParameter")
            wrapper.append(converted)
            wrapper.tail = child.tail
            ranked.append((wrapper_slot.rank, [*pending, wrapper]))
            return True
        return False

    def required(
        self,
        out: etree._Element,
        source: etree._Element,
        spec: Spec,
        ranked: list[tuple[int, list[Any]]],
        path: str,
        inherited: dict[str, tuple[str, str | None]],
    ) -> None:
        present: dict[str, int] = {}
        for _, nodes in ranked:
            for node in nodes:
                if isinstance(node.tag, str):
                    local = etree.QName(node).localname
                    present[local] = present.get(local, 0) + 1
        for slot in spec.fields:
            if slot.name == "*":
                continue
            if slot.max < present.get(slot.name, 0):
                self.problems.append(
                    ConversionProblem(
                        f"{path}/{slot.name}",
                        f"{present[slot.name]} occurrences, the target allows {slot.max}",
                    )
                )
            if slot.min == 0 or present.get(slot.name, 0) >= slot.min:
                continue
            if slot.name == "ID" and self.fill_ids == "derive" and slot.type is not None:
                created = etree.Element(f"{{{slot.namespace}}}ID")
                created.text = self.derive_id(source, path)
                ranked.append((slot.rank, [created]))
                self.derived.append(created)
                continue
            if self.fill_ids == "derive" and slot.name in inherited and slot.type is not None:
                created = etree.Element(f"{{{slot.namespace}}}{slot.name}")
                created.text = inherited[slot.name][0]
                ranked.append((slot.rank, [created]))
                self.derived.append(created)
                continue
            derivable = slot.name == "ID" or slot.name in inherited
            hint = " (use fill_ids='derive' / --fill-ids derive)" if derivable else ""
            self.problems.append(
                ConversionProblem(
                    f"{path}/{slot.name}",
                    f"required by {self.target.version} ({spec.name}), absent in the source{hint}",
                )
            )
        for attr in spec.attributes:
            if attr.required and out.get(attr.name) is None:
                self.problems.append(
                    ConversionProblem(
                        f"{path}/@{attr.name}",
                        f"attribute required by {self.target.version}, absent in the source",
                    )
                )

    def derive_id(self, source: etree._Element, path: str) -> str:
        """``<nearest ancestor ID>/<Name>.<position>``: stable for the same document."""
        position = path.rsplit("[", 1)[-1].rstrip("]") if path.endswith("]") else "1"
        name = etree.QName(source).localname
        ancestor = source.getparent()
        while ancestor is not None:
            for child in ancestor:
                if isinstance(child.tag, str) and etree.QName(child).localname == "ID":
                    return f"{(child.text or '').strip()}/{name}.{position}"
            ancestor = ancestor.getparent()
        return f"{name}.{position}"

    def check_value(self, text: str | None, simple: str | None, path: str) -> None:
        if simple is None:
            return
        spec = self.target.simple.get(simple)
        if spec is None or not spec.enumeration or spec.open:
            return
        value = text or ""
        if value not in spec.enumeration and value.strip() not in spec.enumeration:
            self.problems.append(
                ConversionProblem(
                    path,
                    f"value {value!r} is not allowed in {self.target.version} "
                    f"(allowed: {', '.join(spec.enumeration)})",
                )
            )


def _target_root(source: Release, target: Release, root: str, noun: str | None) -> str:
    renames = _rename_table(source.version, target.version)
    verb = next((v for v in _VERBS if root.startswith(v) and root[len(v) :]), "")
    bare = root[len(verb) :] if verb else root
    if verb and (source.namespace, bare) not in source.elements:
        verb, bare = "", root
    candidates = [noun] if noun else [bare, renames.get(bare, bare)]
    for candidate in candidates:
        if candidate and (target.namespace, verb + candidate) in target.elements:
            return verb + candidate
    wanted = verb + (noun or renames.get(bare, bare))
    raise ConversionRefused(
        f"cannot convert <{root}> to {target.version}",
        [ConversionProblem(f"/{root}", f"{target.version} has no <{wanted}> document")],
    )


def convert_binding(
    binding: Node,
    target: Release,
    *,
    fill_ids: str | None = None,
    noun: str | None = None,
) -> etree._Element:
    """The root element of ``binding``'s document converted to ``target``'s release.

    Raises :class:`ConversionRefused` listing every path the target cannot
    take or needs filled. The result is not yet validated (the caller does).
    """
    if fill_ids is not None and fill_ids not in FILL_POLICIES:
        raise B2MMLError(f"unknown fill policy {fill_ids!r} (known: {', '.join(FILL_POLICIES)})")
    source = binding.release
    element = binding.element
    root = etree.QName(element).localname
    restored = noun
    derived: list[str] = []
    for sibling in element.itersiblings(preceding=True):
        if isinstance(sibling, etree._ProcessingInstruction) and sibling.target == SOURCE_PI:
            restored = restored or sibling.get("noun")
            derived = (sibling.get("derived") or "").split()
    target_root = _target_root(source, target, root, restored)
    converter = _Converter(source, target, fill_ids)
    # Only what is redundant is dropped: the record could be forged by a sender, so
    # an element listed as derived must be exactly what derivation gives.
    converter.skip = {
        e for e in (_find(element, p) for p in derived) if e is not None and _redundant(e)
    }
    nsmap = {
        prefix: converter.namespace(uri) or uri for prefix, uri in element.nsmap.items() if uri
    }
    out = converter.element(
        element,
        binding.SPEC,
        f"{{{target.namespace}}}{target_root}",
        target.element_class(target_root).SPEC,
        f"/{root}",
        nsmap=nsmap,
    )
    if converter.problems:
        raise ConversionRefused(
            f"{source.version} <{root}> cannot be converted to {target.version} as it is",
            converter.problems,
        )
    tree = etree.ElementTree(out)
    for sibling in reversed(list(element.itersiblings(preceding=True))):
        if isinstance(sibling, etree._ProcessingInstruction) and sibling.target == SOURCE_PI:
            continue
        out.addprevious(copy.copy(sibling))
    for sibling in reversed(list(element.itersiblings())):
        out.addnext(copy.copy(sibling))
    source_noun = _noun_of(root)
    target_noun = _noun_of(target_root)
    marks = []
    if (
        source_noun != target_noun
        and (source.namespace, source_noun) in source.elements
        and (target.namespace, source_noun) not in target.elements
    ):
        marks.append(f'noun="{source_noun}"')
    if converter.derived:
        marks.append(f'derived="{" ".join(_path(e) for e in converter.derived)}"')
    if marks:
        out.addprevious(etree.ProcessingInstruction(SOURCE_PI, " ".join(marks)))
    return tree.getroot()


def _redundant(element: etree._Element) -> bool:
    """True when ``element`` holds only what the fill rules derive from the rest."""
    if len(element) or len(element.attrib):
        return False
    name = etree.QName(element).localname
    text = element.text or ""
    parent = element.getparent()
    if parent is None:
        return False
    if name == "LocationType":
        return text == "Equipment"
    if name == "EquipmentID":
        return text == _own_id(parent)
    if name == "ID":
        ancestor = _ancestor_value(parent.getparent(), "ID")
        prefix = "" if ancestor is None else ancestor.strip() + "/"
        rest = text[len(prefix) :] if text.startswith(prefix) else None
        word, dot, number = (rest or "").rpartition(".")
        return bool(rest) and dot == "." and word.isidentifier() and number.isdigit()
    if name.endswith("ID"):
        return text == _ancestor_value(parent.getparent(), name)
    return False


def _ancestor_value(element: etree._Element | None, name: str) -> str | None:
    """Text of the nearest ``name`` child of ``element`` or of one of its ancestors."""
    while element is not None:
        for child in element:
            if isinstance(child.tag, str) and etree.QName(child).localname == name:
                return str(child.text or "")
        element = element.getparent()
    return None


def _own_id(element: etree._Element) -> str | None:
    """The ID of the element ``element`` belongs to (its parent's ID child)."""
    parent = element.getparent()
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == "ID":
            return str(child.text or "")
    return None


def _find(root: etree._Element, path: str) -> etree._Element | None:
    """The element at a path made by :func:`_path` (None if there is none)."""
    steps = path.strip("/").split("/")
    if not steps or etree.QName(root).localname != steps[0]:
        return None
    node = root
    for step in steps[1:]:
        name, _, position = step.partition("[")
        index = int(position.rstrip("]") or "1") - 1
        same = [c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name]
        if index >= len(same):
            return None
        node = same[index]
    return node


def _noun_of(root: str) -> str:
    for verb in _VERBS:
        if root.startswith(verb) and len(root) > len(verb):
            return root[len(verb) :]
    return root


def problems_from_issues(issues: list[XMLIssue], tree: etree._Element) -> list[ConversionProblem]:
    """Validation issues of a converted document as problems with element paths."""
    lines: dict[int, str] = {}
    for element in tree.iter():
        if isinstance(element.tag, str) and element.sourceline is not None:
            lines.setdefault(element.sourceline, _path(element))
    return [
        ConversionProblem(lines.get(issue.line or -1, f"line {issue.line}"), issue.message)
        for issue in issues
    ]


def _path(element: etree._Element) -> str:
    parts = []
    node: etree._Element | None = element
    while node is not None:
        local = etree.QName(node).localname
        parent = node.getparent()
        if parent is None:
            parts.append(local)
        else:
            same = [
                c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == local
            ]
            parts.append(f"{local}[{same.index(node) + 1}]")
        node = parent
    return "/" + "/".join(reversed(parts))
