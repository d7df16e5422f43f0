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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from isa95.b2mml.binding import Node, Release, Spec
from isa95.b2mml.xmltext import text_of
from isa95.errors import B2MMLError, XMLIssue

__all__ = [
    "EXTENSION_NAMESPACES",
    "FILL_EMPTY_POLICIES",
    "FILL_POLICIES",
    "RENAMES",
    "SOURCE_PI",
    "Conversion",
    "ConversionChange",
    "ConversionProblem",
    "ConversionRefused",
    "ConversionReport",
    "ConversionWarning",
    "convert_binding",
]

XSI_SCHEMA_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"

SOURCE_PI = "b2mml-source"
"""Target of the processing instruction recording a renamed noun of the source."""

FILL_POLICIES = ("derive",)
"""``derive``: a required ``ID`` the source lacks is ``<B>/<Name>.<n>/…/<Name>.<n>``:
``B`` the ID of the nearest enclosing element that has one (in the source, or
derived for it), then one ``<Name>.<n>`` step (its name in the converted
document, position among its same-named siblings) for every element from there
down to the element itself; with no enclosing ID (up to ``DataArea``) the steps
alone. A required reference (``OperationsDefinitionID``, ``OperationsSegmentID``,
``ProcessSegmentID``) the source lacks is taken from the nearest enclosing
element that names one (a V0600 request's ProductProductionRuleID is its
OperationsDefinitionID), else it is ``<own ID>/<Name>``
(``PR-1/SegmentRequirement.2/ProcessSegmentID``)."""

FILL_EMPTY_POLICIES = ("minimal",)
"""``minimal``: a required child element of which the source has none (a V0701
OperationsRequest needs a SegmentRequirement, an OperationsSchedule an
OperationsRequest) is made as the smallest element the target accepts, its
required content derived as ``derive`` does (so it needs ``fill_ids="derive"``)."""

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


@dataclass(frozen=True)
class ConversionChange:
    """One element or attribute a chosen policy added or dropped."""

    path: str
    """Path in the document it was added to (filled) or taken from (dropped)."""
    value: str
    """The element as XML (or the attribute's value)."""

    def __str__(self) -> str:
        return f"{self.path}: {self.value}"


@dataclass
class ConversionReport:
    """What the chosen policies changed: nothing a policy does goes unlisted."""

    filled: list[ConversionChange] = field(default_factory=list)
    """Elements ``fill_ids``/``fill_empty`` added (paths in the converted document)."""
    restored: list[ConversionChange] = field(default_factory=list)
    """Elements left out because they are exactly what the fill rules derive
    (an earlier conversion's record, or ``drop_derived``): converting forward
    with ``fill_ids="derive"`` gives them back."""
    hints: list[ConversionChange] = field(default_factory=list)
    """``xsi:schemaLocation`` values whose pairs naming the source release's schemas
    were left out (a conversion back restores them as written)."""
    dropped: list[ConversionChange] = field(default_factory=list)
    """Content the target cannot hold, left out under ``drop_unrepresentable``:
    this is lost in the converted document."""


@dataclass(frozen=True)
class Conversion:
    """A converted document and what the chosen policies did to it."""

    data: bytes
    report: ConversionReport


class ConversionWarning(UserWarning):
    """Content was dropped under ``drop_unrepresentable`` (the report lists it)."""


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


_OWN_REFERENCES = ("ProcessSegmentID", "OperationsDefinitionID", "OperationsSegmentID")
"""Required references ``derive`` makes from the element's own ID when no enclosing
element names one (``<own ID>/<Name>``)."""


class _Converter:
    def __init__(
        self,
        source: Release,
        target: Release,
        fill_ids: str | None,
        *,
        fill_empty: str | None = None,
        drop_derived: bool = False,
        drop_unrepresentable: bool = False,
    ) -> None:
        self.source = source
        self.target = target
        self.fill_ids = fill_ids
        self.fill_empty = fill_empty
        self.drop_derived = drop_derived
        self.drop_unrepresentable = drop_unrepresentable
        self.renames = _rename_table(source.version, target.version)
        self.problems: list[ConversionProblem] = []
        self.report = ConversionReport()
        self.derived: list[etree._Element] = []
        """Elements the fill policy made (recorded so converting back drops them)."""
        self.recorded: set[etree._Element] = set()
        """Source elements an earlier conversion's record lists as derived."""
        self.skip: set[etree._Element] = set()
        """Source elements left out as derived: not content of the sender."""
        self.ids: dict[etree._Element, str] = {}
        """IDs derived for source elements (so that their descendants build on them)."""
        self.source_ids: set[str] = set()
        """Every ID of the source, stripped (a derived ID must not repeat one)."""
        self.synthetic: set[etree._Element] = set()
        """Minimal elements ``fill_empty`` added to the source walk."""
        self.names: dict[etree._Element, str] = {}
        """The target name of each source element converted (derived IDs use them)."""
        self.location_record: str | None = None
        """The source's ``xsi:schemaLocation`` when pairs of it were left out."""
        self.namespaces = {
            source.namespace: target.namespace,
            EXTENSION_NAMESPACES[source.version]: EXTENSION_NAMESPACES[target.version],
        }

    def schema_location(self, out: etree._Element, value: str, path: str) -> None:
        """Keep the ``xsi:schemaLocation`` pairs that do not name the source release's
        schemas (a wrong hint is worse than none); those are listed in the report and
        recorded, so that converting back restores the attribute as written."""
        kept = _locations_without(value, set(self.namespaces))
        if kept is None:
            out.set(XSI_SCHEMA_LOCATION, value)
            return
        self.report.hints.append(ConversionChange(f"{path}/@xsi:schemaLocation", value))
        self.location_record = value
        if kept:
            out.set(XSI_SCHEMA_LOCATION, kept)

    def name_in_target(self, element: etree._Element) -> str:
        """The name a source element has in the converted document."""
        return self.names.get(element) or _local(element)

    def id_of(self, element: etree._Element) -> str | None:
        """A source element's ID (stripped), or the one derived for it."""
        own = _id_text(element)
        return own if own is not None else self.ids.get(element)

    def unrepresentable(self, path: str, node: etree._Element | str, problem: str) -> None:
        """Content the target cannot hold: refused, or dropped and reported."""
        if self.drop_unrepresentable:
            value = node if isinstance(node, str) else _xml(node)
            self.report.dropped.append(ConversionChange(path, value))
        else:
            self.problems.append(ConversionProblem(path, problem))

    def mark_derived(
        self, source: etree._Element, spec: Spec, target_spec: Spec, path: str
    ) -> None:
        """Leave out children of ``source`` that hold exactly what the fill rules give
        (and the target does not require: those are converted)."""
        counts: dict[str, int] = {}
        for child in source:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            local = str(qname.localname)
            counts[local] = counts.get(local, 0) + 1
            slot = spec.field(local, qname.namespace)
            if child in self.recorded:
                drop = self.redundant(child) or (slot is not None and self.placeholder(child, slot))
            elif self.drop_derived and slot is not None and slot.min >= 1:
                drop = self.redundant(child) or self.placeholder(child, slot)
            else:
                drop = False
            if drop and target_spec.fields:
                name = self.target_name(local, target_spec)
                kept = None if name is None else target_spec.field(name)
                drop = kept is None or kept.min == 0
            if drop:
                self.skip.add(child)
                self.report.restored.append(
                    ConversionChange(f"{path}/{local}[{counts[local]}]", _xml(child))
                )

    def redundant(self, element: etree._Element) -> bool:
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
            return text == _id_path(parent, _local, _id_text)
        if name.endswith("ID"):
            enclosing = _ancestor_value(parent.getparent(), name)
            if enclosing is not None:
                return text == enclosing
            own = _id_text(parent)
            return name in _OWN_REFERENCES and own is not None and text == f"{own}/{name}"
        return False

    def placeholder(self, element: etree._Element, slot: Any) -> bool:
        """True when ``element`` is the minimal element ``fill_empty`` makes: the only
        one of its name, nothing but required children, each derived."""
        parent = element.getparent()
        if slot.type is None or slot.min < 1 or parent is None or len(element.attrib):
            return False
        if (element.text or "").strip() or len(element) == 0:
            return False
        same = [c for c in parent if isinstance(c.tag, str) and c.tag == element.tag]
        if same != [element]:
            return False
        spec = self.source.class_of(slot.type).SPEC
        names = []
        for child in element:
            if not isinstance(child.tag, str):
                if isinstance(child, etree._Comment | etree._ProcessingInstruction):
                    return False
                continue
            if (child.tail or "").strip():
                return False
            qname = etree.QName(child)
            sub = spec.field(qname.localname, qname.namespace)
            if sub is None or sub.min < 1:
                return False
            if not (self.redundant(child) or self.placeholder(child, sub)):
                return False
            names.append(qname.localname)
        required = [f.name for f in spec.fields if f.min >= 1 and f.name != "*"]
        return sorted(names) == sorted(required)

    def plan(
        self,
        source: etree._Element,
        source_spec: Spec,
        target_spec: Spec,
        path: str,
        inherited: dict[str, tuple[str, str | None]],
    ) -> dict[str, str]:
        """Values the fill policies give the target's required children the source lacks
        (before the children are walked, so that they build on them)."""
        present: set[str] = set()
        for child in source:
            if isinstance(child.tag, str) and child not in self.skip:
                name = self.target_name(etree.QName(child).localname, target_spec)
                if name is not None:
                    present.add(name)
        fills: dict[str, str] = {}
        for slot in target_spec.fields:
            if slot.name == "*" or slot.min == 0 or slot.name in present:
                continue
            if slot.name == "ID" and self.fill_ids == "derive" and slot.type is not None:
                value = _id_path(source, self.name_in_target, self.id_of)
                if value in self.source_ids:
                    self.problems.append(
                        ConversionProblem(
                            f"{path}/ID", f"the derived ID {value!r} is an ID of the source"
                        )
                    )
                elif value in self.ids.values():
                    self.problems.append(
                        ConversionProblem(
                            f"{path}/ID",
                            f"the derived ID {value!r} is not unique (the enclosing ID is not)",
                        )
                    )
                self.ids[source] = value
                fills["ID"] = value
            elif slot.name.endswith("ID") and self.fill_ids == "derive" and slot.type is not None:
                if slot.name in inherited:
                    value = inherited[slot.name][0]
                else:
                    own = self.id_of(source)
                    if slot.name not in _OWN_REFERENCES or own is None:
                        continue
                    value = f"{own}/{slot.name}"
                fills[slot.name] = value
                inherited[slot.name] = (value, None)
            elif self.fill_empty == "minimal" and slot.type is not None:
                base = slot.name[: -len("Child")] if slot.name.endswith("Child") else slot.name
                origin = self.renames_back().get(base, base)
                origin_slot = source_spec.field(origin)
                if origin_slot is None or origin_slot.type is None:
                    continue
                made = etree.SubElement(
                    source,
                    f"{{{origin_slot.namespace}}}{origin}" if origin_slot.namespace else origin,
                )
                self.synthetic.add(made)
        return fills

    def renames_back(self) -> dict[str, str]:
        return {v: k for k, v in self.renames.items()}

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
        # V0701 names a parameter after its owner (ProcessSegment/ProcessSegmentParameter),
        # V0600 calls it Parameter.
        owner = spec.name.removesuffix("Type")
        if name == "Parameter":
            candidates.append(f"{owner}Parameter")
        elif name == f"{owner}Parameter":
            candidates.append("Parameter")
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
            if name == XSI_SCHEMA_LOCATION and source.getparent() is None:
                self.schema_location(out, value, path)
            elif name.startswith("{"):
                out.set(name, value)  # xsi:, xml: and foreign attributes keep their names
            elif name in allowed:
                out.set(name, value)
            else:
                self.unrepresentable(
                    f"{path}/@{name}", value, f"no attribute {name!r} in the target"
                )
        out.text = source.text
        self.names[source] = str(etree.QName(target_tag).localname)
        self.mark_derived(source, source_spec, target_spec, path)
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
            self.check_value(text_of(source), target_spec.text, path)
            for node in source:  # comments and instructions in the value, with their tails
                if not isinstance(node.tag, str):
                    out.append(copy.copy(node))
            return out
        counts: dict[str, int] = {}
        pending: list[Any] = []
        ranked: list[tuple[int, list[Any]]] = []
        for child in source:  # references the children may inherit (fill policy "derive")
            if isinstance(child.tag, str) and len(child) == 0:
                local = etree.QName(child).localname
                if local != "ID" and local.endswith("ID"):
                    target_local = self.renames.get(local, local)
                    inherited[target_local] = (text_of(child) or "", f"{path}/{local}")
        fills = self.plan(source, source_spec, target_spec, path, inherited)
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
                    self.unrepresentable(
                        child_path, child, "the target takes no extension content here"
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
                self.unrepresentable(
                    child_path,
                    child,
                    f"<{local}> cannot be represented in {self.target.version} "
                    f"<{etree.QName(out).localname}> ({target_spec.name})",
                )
                continue
            if local == "Version" and (
                (source_spec.field("ProductProductionRuleID") is None)
                != (target_spec.field("ProductProductionRuleID") is None)
            ):
                # V0600's request Version is the version of its ProductProductionRuleID;
                # V0701's is the request's own, and V0701 keeps no rule version there.
                self.unrepresentable(
                    child_path,
                    child,
                    "a V0600 request's Version is its product production rule's version, "
                    "a V0701 request's Version its own; the other release has no place "
                    "for it",
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
            if child in self.synthetic:
                self.derived.append(converted)
            ranked.append((target_slot.rank, [*pending, converted]))
            pending = []
        for made in [c for c in source if c in self.synthetic]:
            source.remove(made)
        self.required(out, target_spec, ranked, path, fills)
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
                    self.unrepresentable(
                        sub_path,
                        sub,
                        f"<{sub_name}> of a ProductionParameter has no "
                        f"place in a {self.target.version} SegmentParameter",
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
        spec: Spec,
        ranked: list[tuple[int, list[Any]]],
        path: str,
        fills: dict[str, str],
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
            if slot.name in fills:
                created = etree.Element(f"{{{slot.namespace}}}{slot.name}")
                created.text = fills[slot.name]
                ranked.append((slot.rank, [created]))
                self.derived.append(created)
                continue
            if slot.name == "ID" or slot.name.endswith("ID"):
                hint = " (use fill_ids='derive' / --fill-ids derive)"
            elif slot.type is not None:
                hint = " (use fill_empty='minimal' / --fill-empty minimal)"
            else:
                hint = ""
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
    fill_empty: str | None = None,
    drop_derived: bool = False,
    drop_unrepresentable: bool = False,
    report: ConversionReport | None = None,
) -> etree._Element:
    """The root element of ``binding``'s document converted to ``target``'s release.

    Raises :class:`ConversionRefused` listing every path the target cannot
    take or needs filled, unless a policy was chosen for it: ``fill_ids``
    (:data:`FILL_POLICIES`), ``fill_empty`` (:data:`FILL_EMPTY_POLICIES`),
    ``drop_derived`` (leave out what ``derive`` gives back exactly, without an
    earlier conversion's record) and ``drop_unrepresentable`` (leave out what
    the target cannot hold). What the policies did is added to ``report``.
    The result is not yet validated (the caller does).
    """
    if fill_ids is not None and fill_ids not in FILL_POLICIES:
        raise B2MMLError(f"unknown fill policy {fill_ids!r} (known: {', '.join(FILL_POLICIES)})")
    if fill_empty is not None and fill_empty not in FILL_EMPTY_POLICIES:
        raise B2MMLError(
            f"unknown fill_empty policy {fill_empty!r} (known: {', '.join(FILL_EMPTY_POLICIES)})"
        )
    source = binding.release
    element = binding.element
    root = etree.QName(element).localname
    restored = noun
    derived: list[str] = []
    location: str | None = None
    for sibling in element.itersiblings(preceding=True):
        if isinstance(sibling, etree._ProcessingInstruction) and sibling.target == SOURCE_PI:
            restored = restored or sibling.get("noun")
            derived = (sibling.get("derived") or "").split()
            location = sibling.get("schemaLocation")
    target_root = _target_root(source, target, root, restored)
    converter = _Converter(
        source,
        target,
        fill_ids,
        fill_empty=fill_empty,
        drop_derived=drop_derived,
        drop_unrepresentable=drop_unrepresentable,
    )
    # Only what is redundant is dropped: the record could be forged by a sender, so
    # an element listed as derived must be exactly what derivation gives.
    converter.recorded = {e for e in (_find(element, p) for p in derived) if e is not None}
    converter.source_ids = {
        (text_of(e) or "").strip()
        for e in element.iter()
        if isinstance(e.tag, str) and etree.QName(e).localname == "ID"
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
    target_namespaces = {target.namespace, EXTENSION_NAMESPACES[target.version]}
    if location is not None and (_locations_without(location, target_namespaces) or "") == (
        element.get(XSI_SCHEMA_LOCATION) or ""
    ):
        out.set(XSI_SCHEMA_LOCATION, location)  # the record's pairs name this target
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
    record = converter.location_record
    if record is not None and '"' not in record and "?>" not in record:
        marks.append(f'schemaLocation="{record}"')
    if marks:
        out.addprevious(etree.ProcessingInstruction(SOURCE_PI, " ".join(marks)))
    if report is not None:
        report.filled += [ConversionChange(_path(e), _xml(e)) for e in converter.derived]
        report.restored += converter.report.restored
        report.dropped += converter.report.dropped
        report.hints += converter.report.hints
    return tree.getroot()


def _id_text(element: etree._Element) -> str | None:
    """The stripped text of ``element``'s ID child (None without one)."""
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == "ID":
            return (text_of(child) or "").strip()
    return None


def _id_path(
    owner: etree._Element,
    name_of: Callable[[etree._Element], str],
    id_of: Callable[[etree._Element], str | None],
) -> str:
    """The ID ``derive`` gives ``owner``: ``<enclosing ID>/<Name>.<n>/…`` (see FILL_POLICIES)."""
    steps: list[str] = []
    node = owner
    while True:
        parent = node.getparent()
        same = (
            [node]
            if parent is None
            else [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
        )
        steps.append(f"{name_of(node)}.{same.index(node) + 1}")
        if parent is None or etree.QName(parent).localname == "DataArea":
            return "/".join(reversed(steps))
        base = id_of(parent)
        if base is not None:
            return "/".join([base, *reversed(steps)])
        node = parent


def _locations_without(value: str, namespaces: set[str]) -> str | None:
    """``value`` (an xsi:schemaLocation) without the pairs naming ``namespaces``;
    None when it names none of them."""
    tokens = value.split()
    pairs = [tokens[i : i + 2] for i in range(0, len(tokens), 2)]
    kept = [pair for pair in pairs if pair[0] not in namespaces]
    if len(kept) == len(pairs):
        return None
    return " ".join(" ".join(pair) for pair in kept)


def _local(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


def _xml(element: etree._Element) -> str:
    copied = copy.deepcopy(element)
    copied.tail = None
    return str(etree.tostring(copied, encoding="unicode"))


def _ancestor_value(element: etree._Element | None, name: str) -> str | None:
    """Text of the nearest ``name`` child of ``element`` or of one of its ancestors."""
    while element is not None:
        for child in element:
            if isinstance(child.tag, str) and etree.QName(child).localname == name:
                return text_of(child) or ""
        element = element.getparent()
    return None


def _own_id(element: etree._Element) -> str | None:
    """The ID of the element ``element`` belongs to (its parent's ID child)."""
    parent = element.getparent()
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == "ID":
            return text_of(child) or ""
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
