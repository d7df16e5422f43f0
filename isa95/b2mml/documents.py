"""Reading and writing whole B2MML documents, with or without a transaction (BOD) wrapper."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from lxml import etree

from isa95.b2mml.binding import Node, Release
from isa95.b2mml.mapping import (
    ASSUMED_TIMEZONE,
    NORMALISED,
    NOUNS,
    Noun,
    content_errors,
    track,
    unconsumed,
)
from isa95.b2mml.mapping.trees import SOURCES, fill, from_binding, xsd_datetime
from isa95.b2mml.schemas import LEGACY_NAMESPACES, NAMESPACES, VERSION_OF, SchemaSet, parse_xml
from isa95.errors import B2MMLError, DocumentInvalid, UnsupportedDocumentError, XMLIssue

if TYPE_CHECKING:
    from isa95.b2mml.convert import Conversion


def release_of(element: etree._Element) -> str:
    """The release (``V0701``/``V0600``) of a root element, from its namespace."""
    namespace = etree.QName(element).namespace or ""
    version = VERSION_OF.get(namespace)
    if version is None:
        raise UnsupportedDocumentError(f"namespace {namespace!r} is not B2MML V0701 or V0600")
    return version


__all__ = ["B2MML", "VERBS", "ApplicationArea", "B2MMLDocument", "release", "split_root"]

VERBS = ("Process", "Sync", "Get", "Show", "Acknowledge", "Change", "Cancel", "Respond")
"""Transaction verbs of the B2MML transaction profile (Confirm is the separate ConfirmBOD)."""
ALL_VERBS = (*VERBS, "Confirm")
"""Every verb, ConfirmBOD's included (its noun is ``BOD``)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _same_parameters(of: Callable[_P, Any]) -> Callable[[Callable[..., _R]], Callable[_P, _R]]:
    """The decorated function, declared with the parameters of ``of`` (to type checkers and
    :func:`inspect.signature`) and its own return: a wrapper that passes ``*args, **kwargs``
    on to ``of`` states them once, where ``of`` is defined."""

    def declared(function: Callable[..., _R]) -> Callable[_P, _R]:
        returns = inspect.signature(function).return_annotation
        signature = inspect.signature(of).replace(return_annotation=returns)
        function.__signature__ = signature  # type: ignore[attr-defined]
        return function

    return declared


def release(version: str) -> Release:
    """The generated bindings of ``version`` (``V0701`` or ``V0600``)."""
    if version == "V0701":
        from isa95.b2mml.bindings import v0701

        return v0701.RELEASE
    if version == "V0600":
        from isa95.b2mml.bindings import v0600

        return v0600.RELEASE
    raise B2MMLError(f"unknown B2MML version {version!r} (supported: V0701, V0600)")


def split_root(version: str, root: str) -> tuple[str, str | None]:
    """``(noun, verb)`` of a root element: ``SyncMaterialLot`` → ``("MaterialLot", "Sync")``.

    A root whose type carries an ``ApplicationArea`` and a ``DataArea`` is a
    transaction (BOD); anything else is a bare noun (verb None).
    """
    bindings = release(version)
    cls = bindings.element_class(root)
    spec = cls.SPEC
    if spec.field("ApplicationArea") is not None and spec.field("DataArea") is not None:
        if root == "ConfirmBOD":
            return "BOD", "Confirm"
        for verb in ALL_VERBS:
            if root.startswith(verb):
                return root[len(verb) :], verb
    return root, None


_CONTAINERS = {"BatchInformation": ("MasterRecipe", "ControlRecipe", "BatchList")}
"""Container roots and the nouns they hold (the document's noun is the first)."""


@dataclass
class ApplicationArea:
    """The BOD header: who sent it, when, and its id."""

    creation: datetime = field(default_factory=lambda: datetime.now(UTC))
    sender: str | None = None
    receivers: list[str] = field(default_factory=list)
    bod_id: str | None = None

    def to_tree(self) -> dict[str, Any]:
        """The ApplicationArea element tree."""
        tree: dict[str, Any] = {}
        if self.sender:
            tree["Sender"] = {"LogicalID": self.sender}
        if self.receivers:
            tree["Receiver"] = [{"LogicalID": r} for r in self.receivers]
        tree["CreationDateTime"] = xsd_datetime(self.creation)
        if self.bod_id:
            tree["BODID"] = self.bod_id
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> ApplicationArea:
        """Read an ApplicationArea tree (missing time zone → refused)."""
        from isa95.b2mml.mapping import _get, _list, _parse_time, _where

        sender = tree.get("Sender") or {}
        creation = _parse_time(
            _get(tree, "CreationDateTime"), f"{_where(tree, 'ApplicationArea')}/CreationDateTime"
        )
        return cls(
            creation=creation or datetime.now(UTC),
            sender=_get(sender, "LogicalID") if isinstance(sender, dict) else None,
            receivers=[
                r for r in (_get(x, "LogicalID") for x in _list(tree, "Receiver")) if r is not None
            ],
            bod_id=_get(tree, "BODID"),
        )


@dataclass
class B2MMLDocument:
    """A document that was read: its models and everything needed to judge the read."""

    version: str
    root: str
    noun: str
    models: list[Any]
    verb: str | None = None
    application_area: ApplicationArea | None = None
    unmapped: list[str] = field(default_factory=list)
    """Paths of content present in the document that the models do not carry."""
    tree: dict[str, Any] = field(default_factory=dict)
    """The content as a plain tree (filled for nouns with a domain model; see ``binding``)."""
    normalised: list[str] = field(default_factory=list)
    """Values the models carry differently from the document (identifiers without the
    blanks around them), each ``path: 'as written' read as 'as carried'``."""
    binding: Node | None = None
    """The whole document as its generated binding: nothing read is lost here, and
    :meth:`B2MML.write` of this document gives back a C14N-equal document."""
    sources: list[tuple[Any, Node]] = field(default_factory=list, repr=False)
    """``(model, binding)`` for every model read (nested ones too): the element each
    model was filled from. See :meth:`binding_of`."""

    def binding_of(self, model: Any) -> Node | None:
        """The binding element ``model`` (a model of :attr:`models`, or one nested in
        it) was read from, or None for a model this read did not make.

        Whatever the model does not carry is reachable there — ``UserArea``
        and other extension content (``.extensions()``), elements the model has
        no field for (``.one(name)``, ``.all(name)``), values as written
        (``.value(name)``, ``.to_data()``).
        """
        for candidate, node in self.sources:
            if candidate is model:
                return node
        return None

    def payloads(self) -> list[Node]:
        """The noun elements of the document (the DataArea's, or the root itself)."""
        if self.binding is None:
            return []
        if self.verb is None:
            return [self.binding]
        data_area = self.binding.one("DataArea")
        return [] if data_area is None else data_area.all(self.noun)

    @property
    def model(self) -> Any:
        """The single model of a one-payload document."""
        if len(self.models) != 1:
            raise B2MMLError(f"document holds {len(self.models)} {self.noun} payloads, not one")
        return self.models[0]


class B2MML:
    """B2MML reader and writer bound to a folder of MESA's schemas.

    ``schemas`` is the folder holding ``V0701/`` and ``V0600/`` (default:
    ``GXPMES_B2MML_SCHEMAS``). Every document written is validated before it
    is returned; every document read is validated before it is mapped.
    """

    def __init__(self, schemas: str | Path | None = None) -> None:
        self.schemas = SchemaSet(schemas)

    # ------------------------------------------------------------ writing

    def noun_for(self, model: Any, version: str) -> Noun:
        """The noun a model is written as in ``version``."""
        for noun in NOUNS.values():
            if (
                isinstance(model, noun.model)
                and version in noun.versions
                and (noun.accepts is None or noun.accepts(model))
            ):
                return noun
        raise B2MMLError(f"no B2MML {version} document carries a {type(model).__name__}")

    def write(
        self,
        payload: Any,
        *,
        version: str = "V0701",
        verb: str | None = None,
        application_area: ApplicationArea | None = None,
        noun: str | None = None,
        validate: bool = True,
    ) -> bytes:
        """Serialise one model (or a list of models of one noun) as a B2MML document.

        Without ``verb`` the noun is the root element; with a verb the
        payloads are wrapped as ``<VerbNoun><ApplicationArea/><DataArea>``.
        ``noun`` picks an alternative noun (e.g. ``ProductionSchedule`` in V0600).
        """
        if isinstance(payload, B2MMLDocument):
            if payload.binding is None:
                raise B2MMLError("the document carries no binding to write")
            payload = payload.binding
        if isinstance(payload, Node):
            return self.write_binding(payload, validate=validate)
        models = payload if isinstance(payload, list) else [payload]
        if not models:
            raise B2MMLError("nothing to write")
        chosen = NOUNS.get(noun) if noun else self.noun_for(models[0], version)
        if chosen is None or version not in chosen.versions:
            raise B2MMLError(f"noun {noun!r} is not available in {version}")
        namespace = NAMESPACES[version]
        bindings = release(version)
        container = chosen.container(models, version) if chosen.container else None
        if verb is None and container is not None:
            root = fill(bindings.new(container[0]), container[1])
        elif verb is None:
            if len(models) != 1:
                raise B2MMLError("several payloads need a transaction verb (e.g. verb='Sync')")
            root = fill(bindings.new(chosen.name), chosen.to_tree(models[0], version))
        else:
            if verb not in VERBS:
                raise B2MMLError(f"unknown verb {verb!r}; use one of {', '.join(VERBS)}")
            name = verb + chosen.name
            if (namespace, name) not in bindings.elements:
                raise B2MMLError(f"B2MML {version} has no {name} transaction")
            area = application_area or ApplicationArea()
            root = bindings.new(name)
            tree: dict[str, Any] = {
                "ApplicationArea": area.to_tree(),
                "DataArea": {verb: {}, chosen.name: [chosen.to_tree(m, version) for m in models]},
            }
            if any(a.name == "releaseID" for a in root.SPEC.attributes):
                tree["@releaseID"] = "1.0"
            fill(root, tree)
        return self._finish(root.element, version, f"{version} {chosen.name}", validate)

    def new(self, root: str, version: str = "V0701") -> Node:
        """An empty document with root element ``root``, to fill through its binding."""
        return release(version).new(root)

    def write_binding(self, binding: Node, *, validate: bool = True) -> bytes:
        """Serialise a document held as a binding, exactly as it stands.

        Only the bytes of the whole document are produced (the root's tree,
        with the comments and processing instructions around it); nothing is
        reordered or normalised, so a document read and written again is
        C14N-equal to the input. Validated unless ``validate`` is False.
        """
        element = binding.element
        root = element.getroottree().getroot()
        if root is not element:
            raise B2MMLError(f"<{binding.tag}> is not the root of its document")
        version = release_of(element)
        data = bytes(etree.tostring(element.getroottree(), xml_declaration=True, encoding="UTF-8"))
        if validate:
            issues = self.schemas.validate(parse_xml(data), version)
            if issues:
                raise DocumentInvalid(f"{version} <{binding.tag}> is not schema-valid", issues)
        return data

    def confirm(
        self,
        original: ApplicationArea,
        *,
        version: str = "V0701",
        description: str | None = None,
        application_area: ApplicationArea | None = None,
    ) -> bytes:
        """A ConfirmBOD acknowledging receipt of the BOD described by ``original``."""
        bod: dict[str, Any] = {"OriginalApplicationArea": original.to_tree()}
        if description:
            bod["Description"] = [description]
        tree = {
            "ApplicationArea": (application_area or ApplicationArea()).to_tree(),
            "DataArea": {"Confirm": {}, "BOD": [bod]},
        }
        root = fill(release(version).new("ConfirmBOD"), tree)
        return self._finish(root.element, version, f"{version} ConfirmBOD", True)

    def _finish(self, root: etree._Element, version: str, what: str, validate: bool) -> bytes:
        """Serialise, and validate the bytes as written so errors carry real line numbers."""
        data = bytes(
            etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        )
        if validate:
            parsed = parse_xml(data)
            issues = self.schemas.validate(parsed, version)
            if issues:
                from isa95.b2mml.convert import problems_from_issues

                where = "; ".join(
                    str(p) for p in problems_from_issues(issues[:3], parsed.getroot())
                )
                raise DocumentInvalid(
                    f"the model cannot be written as a schema-valid {what} ({where})", issues
                )
        return data

    # ------------------------------------------------------------ reading

    def identify(self, tree: etree._ElementTree) -> tuple[str, str]:
        """``(version, root local name)`` of a parsed document, or a clear refusal."""
        qname = etree.QName(tree.getroot())
        namespace = qname.namespace or ""
        if namespace in LEGACY_NAMESPACES:
            raise UnsupportedDocumentError(
                f"{LEGACY_NAMESPACES[namespace]} documents are not supported "
                f"(root <{qname.localname}>); supported releases are V0701 and V0600"
            )
        version = VERSION_OF.get(namespace)
        if version is None:
            raise UnsupportedDocumentError(
                f"root <{qname.localname}> is in namespace {namespace or '(none)'!r}, "
                "which is not B2MML V0701 or V0600"
            )
        return version, qname.localname

    def validate(self, data: bytes, version: str | None = None) -> list[XMLIssue]:
        """Schema errors of a document (empty list when valid); unsafe input raises."""
        tree = parse_xml(data)
        found, _root = self.identify(tree)
        if version is not None and version != found:
            return [
                XMLIssue(
                    tree.getroot().sourceline,
                    etree.QName(tree.getroot()).localname,
                    f"document is {found}, not {version}",
                )
            ]
        return self.schemas.validate(tree, found)

    def read(
        self, data: bytes, *, assume_timezone: tzinfo | None = None, models: bool = True
    ) -> B2MMLDocument:
        """Parse safely, validate, bind, and map a document to models.

        Every global element of V0701 and V0600 is read — bare nouns, nouns in
        a transaction (``<Verb><Noun>``, ConfirmBOD) and BatchML containers —
        into ``document.binding``, which holds the whole document: writing the
        document back gives a C14N-equal one. Nouns with a domain model
        (:data:`isa95.b2mml.mapping.NOUNS`) are also mapped into
        ``document.models`` unless ``models`` is False; what those models do
        not carry is listed in ``document.unmapped`` and stays on the binding.

        Date-times without a zone are refused by the mapping unless
        ``assume_timezone`` says which zone the sender meant (an explicit,
        documented choice); the binding keeps them as written either way.

        Raises :class:`UnsafeXMLError`, :class:`DocumentInvalid` (with the
        issues' lines and elements), :class:`UnsupportedDocumentError` or
        :class:`DocumentContentError` (schema-valid but wrong in meaning, a
        :class:`ModelError`, naming the element's path and line). Nothing else
        escapes: every failure is an :class:`ISA95Error`.
        """
        tree = parse_xml(data)
        version, root = self.identify(tree)
        bindings = release(version)
        if (NAMESPACES[version], root) not in bindings.elements:
            raise UnsupportedDocumentError(
                f"{version} has no global element <{root}>: not a B2MML document"
            )
        issues = self.schemas.validate(tree, version)
        if issues:
            raise DocumentInvalid(f"{version} <{root}> does not validate", issues)
        binding = bindings.wrap(tree.getroot())
        noun_name, verb = split_root(version, root)
        if root in _CONTAINERS:
            noun_name = _CONTAINERS[root][0]
        document = B2MMLDocument(version, root, noun_name, [], verb, binding=binding)
        if not models:
            return document
        noun = NOUNS.get(noun_name)
        if noun is None or version not in noun.versions:
            # No domain model: the whole content is on the binding (and as a tree).
            document.tree = binding.to_data()
            document.unmapped = [f"/{root}" if verb is None else f"/{root}/DataArea/{noun_name}"]
            if verb is not None:
                area = binding.one("ApplicationArea")
                if area is not None:
                    token = ASSUMED_TIMEZONE.set(assume_timezone)
                    try:
                        with content_errors():
                            document.application_area = ApplicationArea.from_tree(
                                track(area.to_data(), f"{root}/ApplicationArea")
                            )
                    finally:
                        ASSUMED_TIMEZONE.reset(token)
            return document
        if root == "BatchProductionRecord":
            # Mapped element by element: no generic tree of its (bulky) ordered data;
            # document.tree is built from the binding only when first asked for.
            from isa95.b2mml.stream import map_record_document

            return map_record_document(
                document, assume_timezone, lambda: from_binding(binding, root, [])
            )
        unsupported: list[str] = []
        tracked = from_binding(binding, root, unsupported)
        tracked.get("@releaseID")
        tracked.get("@versionID")
        token = ASSUMED_TIMEZONE.set(assume_timezone)
        notes = NORMALISED.set(document.normalised)
        sources = SOURCES.set(document.sources)
        try:
            with content_errors():
                if verb is not None:
                    document.application_area = ApplicationArea.from_tree(
                        tracked.get("ApplicationArea") or {}
                    )
                    data_area = tracked.get("DataArea") or {}
                    data_area.get(verb)
                    payloads = data_area.get(noun.name) or []
                    payloads = payloads if isinstance(payloads, list) else [payloads]
                else:
                    payloads = [tracked]
                if root in _CONTAINERS:
                    document.models = [
                        NOUNS[name].from_tree(p, version)
                        for name in _CONTAINERS[root]
                        for p in tracked.get(name) or []
                    ]
                else:
                    document.models = [noun.from_tree(p, version) for p in payloads]
                if noun.from_container is not None and root in _CONTAINERS:
                    held = [m for m in document.models if isinstance(m, noun.model)]
                    noun.from_container(tracked, held, version)
        finally:
            ASSUMED_TIMEZONE.reset(token)
            NORMALISED.reset(notes)
            SOURCES.reset(sources)
        document.unmapped = unsupported + list(unconsumed(tracked, root))
        bare = verb is None and root in _CONTAINERS and noun.container is not None
        bare = bare and all(isinstance(m, noun.model) for m in document.models)
        if bare and noun.container(document.models, version) is None:  # type: ignore[misc]
            document.unmapped.insert(0, root)  # written bare, not in this root: listed
        document.tree = tracked
        return document

    def read_batch_record(
        self,
        source: Any,
        *,
        assume_timezone: tzinfo | None = None,
        max_bytes: int | None = None,
    ) -> B2MMLDocument:
        """Read a BatchProductionRecord streamed, in memory bounded by the models it yields.

        ``source`` is the document's bytes, a path or a binary stream. Same safety
        rules, validation, models, ``unmapped`` and errors as :meth:`read` (schema
        issues without line numbers), no ``binding``; ``max_bytes`` (default: the
        size cap of :meth:`read`) may be raised, memory staying bounded. See
        :mod:`isa95.b2mml.stream`.
        """
        from isa95.b2mml.stream import read_batch_record

        if max_bytes is None:
            return read_batch_record(self, source, assume_timezone=assume_timezone)
        return read_batch_record(self, source, assume_timezone=assume_timezone, max_bytes=max_bytes)

    def conversion(
        self,
        data: bytes,
        to_version: str,
        *,
        fill_ids: str | None = None,
        noun: str | None = None,
        fill_empty: str | None = None,
        drop_derived: bool = False,
        drop_unrepresentable: bool = False,
    ) -> Conversion:
        """:meth:`convert`, returning the document with the report of what the
        chosen policies filled, left out as derived, and dropped."""
        from isa95.b2mml.convert import (
            Conversion,
            ConversionRefused,
            ConversionReport,
            convert_binding,
            problems_from_issues,
        )

        document = self.read(data, models=False)
        assert document.binding is not None
        report = ConversionReport()
        if document.version == to_version and noun is None:
            return Conversion(self.write(document), report)
        target = release(to_version)
        converted = convert_binding(
            document.binding,
            target,
            fill_ids=fill_ids,
            noun=noun,
            fill_empty=fill_empty,
            drop_derived=drop_derived,
            drop_unrepresentable=drop_unrepresentable,
            report=report,
        )
        out = bytes(etree.tostring(converted.getroottree(), xml_declaration=True, encoding="UTF-8"))
        reparsed = parse_xml(out)
        issues = self.schemas.validate(reparsed, to_version)
        if issues:
            raise ConversionRefused(
                f"{document.version} <{document.root}> converted to {to_version} is not "
                "schema-valid",
                problems_from_issues(issues, reparsed.getroot()),
            )
        return Conversion(out, report)

    @_same_parameters(conversion)
    def convert(self, *args: Any, **kwargs: Any) -> bytes:
        """Convert a document to another release, keeping every value as written.

        Every noun present in both releases converts (renamed elements follow
        :data:`isa95.b2mml.convert.RENAMES`; V0600 ProductionSchedule becomes a
        V0701 OperationsSchedule and comes back as a ProductionSchedule). The
        output is always schema-valid: when the target cannot hold something,
        or needs what the source lacks, :class:`ConversionRefused` lists every
        path — unless a policy is chosen (docs/b2mml.md): ``fill_ids="derive"``
        for missing IDs and references, ``fill_empty="minimal"`` for required
        elements the source has none of, ``drop_derived`` to leave out what
        ``derive`` gives back, ``drop_unrepresentable`` to leave out what the
        target cannot hold (:meth:`conversion` returns the report listing it;
        here a :class:`ConversionWarning` names every dropped path). ``noun``
        picks the target noun (e.g. ``"ProductionSchedule"``). Converting to
        the document's own release returns it unchanged (validated).

        The parameters are :meth:`conversion`'s; this returns only the document.
        """
        import warnings

        from isa95.b2mml.convert import ConversionWarning

        result = self.conversion(*args, **kwargs)
        if result.report.dropped:
            shown = "; ".join(str(c.path) for c in result.report.dropped)
            warnings.warn(
                ConversionWarning(f"dropped, the target cannot hold them: {shown}"),
                stacklevel=2,
            )
        return result.data
