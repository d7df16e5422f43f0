"""Plain-data B2MML trees: tracked reading, and the small value types shared by all nouns."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

from lxml import etree
from pydantic import ValidationError

from isa95.b2mml.binding import Node, Release
from isa95.b2mml.xmltext import text_of
from isa95.common import Property, Quantity
from isa95.errors import B2MMLError, DocumentContentError, ISA95Error, quoted

V0701, V0600 = "V0701", "V0600"


_M = TypeVar("_M")


QUALIFICATION_PREFIX = "QUAL:"


class Tracked(dict[str, Any]):
    """A tree dict that remembers which keys were read, and where in the document it is.

    ``path`` is the element path (``Root/Child[0]/Leaf``, indexes from 0 as in
    ``unmapped``) and ``line`` the element's source line, for error messages.
    """

    def __init__(self, data: dict[str, Any], path: str = "", node: Node | None = None) -> None:
        super().__init__(data)
        self.used: set[str] = set()
        self.path = path
        line = data.get("@@line")
        self.line: int | None = line if isinstance(line, int) else None
        self._node = node
        self._bound: tuple[etree._Element, type[Node], Release] | None = None

    @property
    def node(self) -> Node | None:
        """The binding of the element this tree was read from (None: built, not read)."""
        if self._node is None and self._bound is not None:
            element, cls, release = self._bound
            self._node = cls.bound(element, release)
        return self._node

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        _READING.set(self)
        return super().get(key, default)

    @property
    def location(self) -> str:
        """``path (line N)`` of this element."""
        return self.path + (f" (line {self.line})" if self.line is not None else "")


_READING: ContextVar[Tracked | None] = ContextVar("b2mml_reading", default=None)
"""The element a mapper read last: where an unexpected failure is reported."""


def track(value: Any, path: str = "") -> Any:
    """Wrap every dict of a tree in :class:`Tracked`, each knowing its element path."""
    if isinstance(value, dict):
        return Tracked({k: track(v, f"{path}/{k}") for k, v in value.items()}, path)
    if isinstance(value, list):
        return [track(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def from_binding(node: Node, path: str = "", unsupported: list[str] | None = None) -> Any:
    """The tracked tree of a binding, each element's :class:`Tracked` knowing its ``node``.

    The mappers read the generated bindings through this view: child names
    and which children repeat come from the binding's content model (its
    ``SPEC``), values are the text as written, and every tree keeps the
    binding it came from (``tree.node``), so a model built from it can point
    back to everything it does not carry. Children no slot names (extension
    content) are kept under ``"##any"`` as XML; where the type takes none they
    are listed in ``unsupported`` (possible only for documents not validated).
    """
    tree = _from_element(node.element, type(node), node.release, path, unsupported)
    if isinstance(tree, Tracked):
        tree._node = node
    return tree


def _from_element(
    element: etree._Element,
    cls: type[Node],
    release: Release,
    path: str,
    unsupported: list[str] | None,
) -> Any:
    spec = cls.SPEC
    attributes = (
        {
            f"@{etree.QName(k).localname}": str(v)
            for k, v in element.attrib.items()
            if not str(k).startswith(_XSI)
        }
        if len(element.attrib)
        else {}
    )
    if not spec.fields:
        text = text_of(element) or ""
        if not attributes:
            return str(text)
        simple = Tracked({"#text": str(text), **attributes}, path)
        simple._bound = (element, cls, release)
        return simple
    tree = Tracked(attributes, path)
    tree._bound = (element, cls, release)
    dict.__setitem__(tree, "@@line", element.sourceline)  # for error messages; never written
    tree.line = element.sourceline
    by_name = spec.by_name
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments and processing instructions carry no data
        namespace, _, name = tag[1:].rpartition("}") if tag[0] == "{" else ("", "", tag)
        slot = by_name.get((namespace, name))
        if slot is None:
            if spec.wildcard is not None:
                tree.setdefault("##any", []).append(etree.tostring(child, encoding="unicode"))
            elif unsupported is not None:
                unsupported.append(f"{path}/{name} (line {child.sourceline})")
            continue
        if slot.max > 1:
            items = dict.setdefault(tree, name, [])
            child_path = f"{path}/{name}[{len(items)}]"
        else:
            child_path = f"{path}/{name}"
        value = _from_element(child, release.class_of(slot.type), release, child_path, unsupported)
        if slot.max > 1:
            items.append(value)
        else:
            dict.__setitem__(tree, name, value)
    return tree


def fill(node: Node, tree: Any) -> Node:
    """Write ``tree`` into the (new, empty) binding ``node``, children in schema order.

    The counterpart of :func:`from_binding` for writing models: each key is a
    child slot of the binding's type (a list where it repeats), ``"@name"``
    an attribute, ``"#text"`` the text of a simple-content element with
    attributes, ``"##any"`` extension XML. A name the type does not have, or
    more children than ``maxOccurs``, is refused with :class:`B2MMLError`.
    ``"#sequence"``, a list of ``(name, value)`` pairs, gives the children in
    the order written instead (a repeated ``xsd:group`` — a GRecipe header's
    products — whose elements the content model alone cannot order by name).
    """
    element, spec, release = node.element, node.SPEC, node.release
    sequence = tree.get("#sequence") if isinstance(tree, dict) else None
    if sequence is not None:
        for name, item in sequence:
            slot = spec.field(name)
            if slot is None:
                raise B2MMLError(f"<{node.tag}> ({spec.name}) has no child element {name!r}")
            child = etree.SubElement(element, f"{{{slot.namespace}}}{name}")
            fill(release.class_of(slot.type).bound(child, release), item)
        return node
    if not spec.fields:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key.startswith("@"):
                    element.set(key[1:], _leaf(value))
                elif key != "#text":
                    raise B2MMLError(f"<{node.tag}> has no child {key!r}")
            text = tree.get("#text")
            if text is not None:
                element.text = _leaf(text)
        elif tree is not None:
            element.text = _leaf(tree)
        return node
    if not isinstance(tree, dict):
        raise B2MMLError(f"<{node.tag}> needs element content, got {tree!r}")
    for key, value in tree.items():
        if key.startswith("@@") or key == "##any":
            continue
        if key.startswith("@"):
            element.set(key[1:], _leaf(value))
        elif spec.field(key) is None:
            raise B2MMLError(f"<{node.tag}> ({spec.name}) has no child element {key!r}")
    done: set[str] = set()
    for slot in spec.fields:
        if slot.name == "*":
            if "*" not in done:
                done.add("*")
                for raw in tree.get("##any", []):
                    element.append(_fragment(raw))
            continue
        if slot.name in done or tree.get(slot.name) is None:
            continue  # None: absent (an optional ID the model does not have)
        done.add(slot.name)
        value = tree[slot.name]
        values = value if isinstance(value, list) else [value]
        if len(values) > slot.max:
            raise B2MMLError(f"<{slot.name}> may occur at most {slot.max} times")
        cls = release.class_of(slot.type)
        for item in values:
            child = etree.SubElement(element, f"{{{slot.namespace}}}{slot.name}")
            fill(cls.bound(child, release), item)
    return node


def _leaf(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise B2MMLError(f"tree leaf must be a string, got {type(value).__name__}: {value!r}")


def _fragment(raw: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(raw.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise B2MMLError(f"extension content is not well-formed XML: {exc}") from exc


SOURCES: ContextVar[list[tuple[Any, Node]] | None] = ContextVar("b2mml_sources", default=None)
"""Where a read collects ``(model, binding)`` pairs: each model and the element it came from."""


def _source(model: _M, tree: Any) -> _M:
    """Record that ``model`` was read from ``tree``'s binding; returns ``model``."""
    node = getattr(tree, "node", None)
    sources = SOURCES.get()
    if node is not None and sources is not None:
        sources.append((model, node))
    return model


def _unread(tree: dict[str, Any], key: str) -> None:
    """Mark ``key`` of ``tree`` as not carried by the model: it is listed in ``unmapped``."""
    if isinstance(tree, Tracked):
        tree.used.discard(key)


def unconsumed(value: Any, path: str) -> Iterator[str]:
    """Paths of tree content no mapper read."""
    if isinstance(value, Tracked):
        for key, child in value.items():
            if key.startswith(("@xmlns", "@@")):
                continue
            child_path = f"{path}/{key}"
            if key in value.used:
                yield from unconsumed(child, child_path)
            else:  # not read, or only the first of several read (see _get)
                yield child_path
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unconsumed(item, f"{path}[{index}]")


def _list(tree: dict[str, Any], key: str) -> list[Any]:
    value = tree.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("#text")
    return None if value is None else str(value)


NORMALISED: ContextVar[list[str] | None] = ContextVar("b2mml_normalised", default=None)
"""Where a read is collecting identifiers whose surrounding blanks the models drop."""


_TRIMMED_SUFFIXES = ("ID", "Type", "Status")
"""Elements whose values the models carry without surrounding blanks (identifiers, codes)."""
_TRIMMED_KEYS = frozenset({"MaterialUse", "EquipmentLevel", "Use"})


def _get(tree: dict[str, Any], key: str) -> Any:
    """Text of child ``key`` (None when absent). Typed Any: pydantic validates it.

    Identifiers (``ID`` and ``…ID`` elements, XSD normalizedString) may carry
    blanks around them — ERP systems pad fixed-width keys — and so may codes
    (``Status``, ``…Type``, ``MaterialUse``, ``EquipmentLevel``: enumerations and
    codes whose schema types collapse whitespace). The models' identifiers and
    codes have none, so the blanks are dropped here and the path recorded (the
    document's ``normalised`` list); the binding keeps the value as written.
    """
    read_before = isinstance(tree, Tracked) and key in tree.used
    raw = tree.get(key)
    if isinstance(raw, list) and len(raw) > 1 and not read_before and isinstance(tree, Tracked):
        tree.used.discard(key)  # only the first is carried: all are listed as unmapped
    value = _text(raw)
    if (
        value is not None
        and (key.endswith(_TRIMMED_SUFFIXES) or key in _TRIMMED_KEYS)
        and value != value.strip()
        and value.strip()
    ):
        notes = NORMALISED.get()
        if notes is not None:
            where = tree.path if isinstance(tree, Tracked) else ""
            notes.append(f"{where}/{key}: {quoted(value)} read as {quoted(value.strip())}")
        return value.strip()
    return value


def _texts(tree: dict[str, Any], key: str) -> list[str]:
    return [t for t in (_text(v) for v in _list(tree, key)) if t is not None]


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == []:
        return
    tree[key] = value


def _desc(text: str | None) -> list[str] | None:
    return None if text is None else [text]  # an empty Description read is written back


def xsd_datetime(value: datetime) -> str:
    """``value`` as an xsd:dateTime, UTC (a zero offset) written ``Z``.

    ``Z`` is how B2MML writers (and the documents they send) write UTC;
    ``+00:00`` means the same instant but reads as an unusual rewrite. Other
    offsets are written as they are, but one that is not a whole number of
    minutes (local mean time of old dates, ``+01:39:49`` in Helsinki before
    1921), which xsd:dateTime cannot carry, is written as the same instant in
    UTC. A naive value is written without a zone (the models refuse naive
    date-times, so that happens only for values built outside them). Lexical
    values kept from a document read are never passed through here: the
    binding writes them as they were.
    """
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        value = value.astimezone(UTC)
        offset = timedelta(0)
    text = value.isoformat()
    if offset is not None and not offset:
        return text[: -len("+00:00")] + "Z"
    return text


def _time(value: datetime | None) -> str | None:
    return None if value is None else xsd_datetime(value)


ASSUMED_TIMEZONE: ContextVar[tzinfo | None] = ContextVar("assumed_timezone", default=None)
"""Zone for date-times written without one; None (the default) refuses them."""


_END_OF_DAY = re.compile(r"(\d{4,}-\d\d-\d\d)T24:00:00(?:\.0+)?(Z|[+-]\d\d:\d\d)?")
"""xsd:dateTime's end of a day (``24:00:00``): the next day's 00:00 (XSD 1.0, 3.2.7)."""
_YEAR = re.compile(r"(-?)(\d{4,})-")


def _parse_time(text: str | None, where: str) -> Any:
    """An aware datetime (or None); typed Any because models validate it again.

    ``24:00:00`` (the end of the day, valid xsd:dateTime) is read as the next
    day's 00:00 and recorded in ``normalised``. Years after 9999 or before 1
    (valid xsd:dateTime) are refused: a Python datetime cannot hold them.
    """
    if text is None:
        return None
    stripped = text.strip()
    year = _YEAR.match(stripped)
    if year is not None and (year.group(1) or not 1 <= int(year.group(2)) <= 9999):
        raise DocumentContentError(
            f"{where}: {quoted(text)} has year {year.group(1)}{int(year.group(2))}; the models "
            "hold years 1 to 9999 only (the binding keeps the value as written)",
            path=where,
        )
    end_of_day = _END_OF_DAY.fullmatch(stripped)
    try:
        if end_of_day is not None:
            day = datetime.fromisoformat(
                f"{end_of_day.group(1)}T00:00:00{end_of_day.group(2) or ''}"
            )
            value = day + timedelta(days=1)
        else:
            value = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as exc:
        raise DocumentContentError(
            f"{where}: {quoted(text)} is not a date-time", path=where
        ) from exc
    if end_of_day is not None:
        notes = NORMALISED.get()
        if notes is not None:
            notes.append(f"{where}: {quoted(text)} read as {value.isoformat()} (the next day)")
    if value.utcoffset() is None:
        assumed = ASSUMED_TIMEZONE.get()
        if assumed is None:
            raise DocumentContentError(
                f"{where}: {quoted(text)} has no time zone; naive date-times are refused unless "
                "the reader is told which zone the sender meant (assume_timezone=...)"
            )
        value = value.replace(tzinfo=assumed)
    return value


_NUMERIC = {
    "decimal",
    "double",
    "float",
    "integer",
    "int",
    "long",
    "short",
    "Numeric",
    "Quantity",
    "Amount",
    "Measure",
    "positiveInteger",
    "negativeInteger",
    "nonNegativeInteger",
    "nonPositiveInteger",
    "unsignedInt",
    "unsignedLong",
    "unsignedShort",
    "byte",
    "unsignedByte",
}


MAX_NUMBER_CHARS = 10_000
"""Longest number carried, written out in full (xsd:decimal has no exponent)."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = {"INF", "+INF", "-INF", "NAN", "INFINITY", "+INFINITY", "-INFINITY"}


def _plain_length(value: Decimal) -> int:
    """Characters of ``value`` written without exponent, computed without writing it."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if exponent >= 0:
        return len(digits) + exponent + 1
    return max(len(digits), -exponent + 1) + 2


def _decimal_text(value: Decimal | int) -> str:
    """``value`` exactly, in xsd:decimal notation (no exponent, trailing zeros kept).

    Raises :class:`B2MMLError` for a number that is not finite or would be
    longer than :data:`MAX_NUMBER_CHARS` written out.
    """
    number = Decimal(value)  # exact for any int, no string conversion limit
    if not number.is_finite():
        raise B2MMLError(f"{value} is not a finite number; B2MML cannot carry it")
    if _plain_length(number) > MAX_NUMBER_CHARS:
        raise B2MMLError(
            f"number {str(number)[:40]}… is longer than {MAX_NUMBER_CHARS} characters written "
            "out in full (xsd:decimal has no exponent); B2MML cannot carry it"
        )
    return format(number, "f")


def _decimal(text: str, where: str, data_type: str = "decimal") -> Decimal:
    """The exact number in ``text`` (xsd:decimal or xsd:double notation), or a clear refusal."""
    stripped = text.strip()
    if stripped.upper() in _NOT_FINITE:
        raise DocumentContentError(f"{where}: {quoted(text)} is not a finite number")
    if not _NUMBER.fullmatch(stripped):
        raise DocumentContentError(f"{where}: {quoted(text)} is not a {data_type} number")
    value = Decimal(stripped)  # exact: construction never rounds
    if _plain_length(value) > MAX_NUMBER_CHARS:
        raise DocumentContentError(
            f"{where}: {stripped[:40]!r}… is longer than {MAX_NUMBER_CHARS} characters "
            "written out in full; refused rather than carried inexactly"
        )
    return value


def _integer(text: str, where: str) -> int:
    """The exact integer in ``text`` (``7``, ``+7``, ``7.0``), of any size within the limit."""
    value = _decimal(text, where, "integer")
    if value != value.to_integral_value():
        raise DocumentContentError(f"{where}: {quoted(text)} is not an integer")
    return int(value)


def _quantity_tree(quantity: Quantity | None) -> list[dict[str, Any]] | None:
    if quantity is None:
        return None
    tree: dict[str, Any] = {
        "QuantityString": _decimal_text(quantity.value),
        "DataType": quantity.data_type,
    }
    _put(tree, "UnitOfMeasure", quantity.unit)
    _put(tree, "Key", quantity.key)
    return [tree]


def _quantity(tree: dict[str, Any], where: str) -> Quantity | None:
    """The first numeric quantity of an element; non-numeric ones stay unmapped."""
    found = _quantities(tree, where, 1)
    return found[0] if found else None


def _quantities(tree: dict[str, Any], where: str, most: int | None = None) -> list[Quantity]:
    """The numeric quantities of an element (up to ``most``); others stay unmapped."""
    found: list[Quantity] = []
    for item in _list(tree, "Quantity"):
        if most is not None and len(found) >= most:
            break
        data_type = _get(item, "DataType") or "decimal"
        text = _get(item, "QuantityString") if data_type in _NUMERIC else None
        if text is None or not text.strip():  # not carried: its value and DataType listed
            item.used.discard("QuantityString")
            item.used.discard("DataType")
            continue
        value = _decimal(text, f"{where}/Quantity", data_type)
        found.append(
            _source(
                Quantity(
                    value=value,
                    unit=_get(item, "UnitOfMeasure"),
                    data_type=data_type,
                    key=_get(item, "Key"),
                ),
                item,
            )
        )
    return found


def _value_tree(
    value: str | None, unit: str | None, data_type: str | None = "string"
) -> dict[str, Any]:
    tree: dict[str, Any] = {"ValueString": value or ""}
    _put(tree, "DataType", data_type)  # None: the Value read had none
    _put(tree, "UnitOfMeasure", unit)
    return tree


def _property_tree(prop: Property) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": prop.id}
    _put(tree, "Description", _desc(prop.description))
    if prop.value is not None or prop.unit is not None or prop.data_type != "string":
        tree["Value"] = [_value_tree(prop.value, prop.unit, prop.data_type)]
    return tree


def _property(tree: dict[str, Any]) -> Property:
    values = _list(tree, "Value")
    value = unit = None
    data_type = "string"
    if values:
        value = _get(values[0], "ValueString")
        unit = _get(values[0], "UnitOfMeasure")
        data_type = _get(values[0], "DataType")  # None when absent: written without one
    return _source(
        Property(
            id=_get(tree, "ID") or "",
            value=value or None,
            unit=unit,
            description=_get(tree, "Description"),
            data_type=data_type,
        ),
        tree,
    )


def _class_tree(model: Any, property_element: str) -> dict[str, Any]:
    """A material/equipment/personnel class: ID, Description and its properties."""
    tree: dict[str, Any] = {"ID": model.id}
    _put(tree, "Description", _desc(model.description))
    _put(tree, property_element, [_property_tree(p) for p in model.properties])
    return tree


def _class_fields(tree: dict[str, Any], property_element: str) -> dict[str, Any]:
    """Constructor arguments of a class model read from its tree."""
    return {
        "id": _get(tree, "ID"),
        "description": _get(tree, "Description"),
        "properties": [_property(p) for p in _list(tree, property_element)],
    }


def _storage_tree(version: str, location: str | None) -> Any:
    if location is None:
        return None
    if version == V0701:
        return {"Location": location, "LocationType": "Equipment"}
    return location


def _storage(tree: dict[str, Any]) -> str | None:
    value = tree.get("StorageLocation")
    if isinstance(value, dict) and "Location" in value:
        value.get("LocationType")
        return _text(value.get("Location"))
    return _text(value)


def _where(tree: dict[str, Any], label: str, *id_keys: str) -> str:
    """``Path/To/Element[0] 'id' (line N)`` for error messages (``<Label>`` when untracked)."""
    ident = next((i for i in (_text(dict.get(tree, k)) for k in (*id_keys, "ID")) if i), None)
    line = dict.get(tree, "@@line")
    place = tree.path if isinstance(tree, Tracked) and tree.path else f"<{label}>"
    return place + (f" {quoted(ident)}" if ident else "") + (f" (line {line})" if line else "")


def _describe(exc: Exception) -> str:
    """A one-line account of a model or conversion failure."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{field + ': ' if field else ''}{message}"
    return f"{type(exc).__name__}: {exc}"


def _model(build: Callable[[], _M], where: str, tree: Any = None) -> _M:
    """``build()``, with validation and conversion failures refused as naming ``where``.

    With ``tree`` (the tracked tree the model is read from) the model is
    recorded as coming from that tree's binding (see :data:`SOURCES`).
    """
    try:
        return _source(build(), tree)
    except ISA95Error:
        raise
    except (ValueError, TypeError, ArithmeticError) as exc:  # pydantic's ValidationError too
        raise DocumentContentError(f"{where}: {_describe(exc)}") from exc


@contextmanager
def content_errors() -> Iterator[None]:
    """Map a document: every failure leaves as :class:`DocumentContentError` with its element.

    The mappers name the element they build; anything they did not foresee
    is reported at the element read last, so no foreign exception escapes.
    """
    token = _READING.set(None)
    try:
        yield
    except DocumentContentError as exc:
        _locate(exc)
        raise
    except ISA95Error:
        raise
    except Exception as exc:
        reading = _READING.get()
        where = reading.location if reading is not None else "document"
        error = DocumentContentError(f"{where}: cannot map this element: {_describe(exc)}")
        _locate(error)
        raise error from exc
    finally:
        _READING.reset(token)


def _locate(error: DocumentContentError) -> None:
    reading = _READING.get()
    if reading is not None and error.path is None:
        error.path, error.line = reading.path, reading.line
