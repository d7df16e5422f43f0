"""Plain-data B2MML trees: tracked reading, and the small value types shared by all nouns."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from isa95.common import Property, Quantity
from isa95.errors import B2MMLError, DocumentContentError, ISA95Error

V0701, V0600 = "V0701", "V0600"


_M = TypeVar("_M")


QUALIFICATION_PREFIX = "QUAL:"


class Tracked(dict[str, Any]):
    """A tree dict that remembers which keys were read, and where in the document it is.

    ``path`` is the element path (``Root/Child[0]/Leaf``, indexes from 0 as in
    ``unmapped``) and ``line`` the element's source line, for error messages.
    """

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        super().__init__(data)
        self.used: set[str] = set()
        self.path = path
        line = data.get("@@line")
        self.line: int | None = line if isinstance(line, int) else None

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


def unconsumed(value: Any, path: str) -> Iterator[str]:
    """Paths of tree content no mapper read."""
    if isinstance(value, Tracked):
        for key, child in value.items():
            if key.startswith(("@xmlns", "@@")):
                continue
            child_path = f"{path}/{key}"
            if key not in value.used:
                yield child_path
            else:
                yield from unconsumed(child, child_path)
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


def _get(tree: dict[str, Any], key: str) -> Any:
    """Text of child ``key`` (None when absent). Typed Any: pydantic validates it.

    Identifiers (``ID`` and ``…ID`` elements, XSD normalizedString) may carry
    blanks around them — ERP systems pad fixed-width keys. The models' identifiers
    have none, so the blanks are dropped here and the path recorded (the
    document's ``normalised`` list); the binding keeps the value as written.
    """
    value = _text(tree.get(key))
    if value is not None and key.endswith("ID") and value != value.strip() and value.strip():
        notes = NORMALISED.get()
        if notes is not None:
            where = tree.path if isinstance(tree, Tracked) else ""
            notes.append(f"{where}/{key}: {value!r} read as {value.strip()!r}")
        return value.strip()
    return value


def _texts(tree: dict[str, Any], key: str) -> list[str]:
    return [t for t in (_text(v) for v in _list(tree, key)) if t is not None]


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == []:
        return
    tree[key] = value


def _desc(text: str | None) -> list[str] | None:
    return [text] if text else None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


ASSUMED_TIMEZONE: ContextVar[tzinfo | None] = ContextVar("assumed_timezone", default=None)
"""Zone for date-times written without one; None (the default) refuses them."""


def _parse_time(text: str | None, where: str) -> Any:
    """An aware datetime (or None); typed Any because models validate it again."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DocumentContentError(f"{where}: {text!r} is not a date-time") from exc
    if value.utcoffset() is None:
        assumed = ASSUMED_TIMEZONE.get()
        if assumed is None:
            raise DocumentContentError(
                f"{where}: {text!r} has no time zone; naive date-times are refused unless the "
                "reader is told which zone the sender meant (assume_timezone=...)"
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
        raise DocumentContentError(f"{where}: {text!r} is not a finite number")
    if not _NUMBER.fullmatch(stripped):
        raise DocumentContentError(f"{where}: {text!r} is not a {data_type} number")
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
        raise DocumentContentError(f"{where}: {text!r} is not an integer")
    return int(value)


def _quantity_tree(quantity: Quantity | None) -> list[dict[str, Any]] | None:
    if quantity is None:
        return None
    tree: dict[str, Any] = {"QuantityString": _decimal_text(quantity.value), "DataType": "decimal"}
    _put(tree, "UnitOfMeasure", quantity.unit)
    return [tree]


def _quantity(tree: dict[str, Any], where: str) -> Quantity | None:
    """The first numeric quantity of an element; non-numeric ones stay unmapped."""
    for item in _list(tree, "Quantity"):
        data_type = _get(item, "DataType") or "decimal"
        if data_type not in _NUMERIC:
            item.used.discard("QuantityString")
            continue
        text = _get(item, "QuantityString")
        if text is None or not text.strip():
            continue
        value = _decimal(text, f"{where}/Quantity", data_type)
        _get(item, "Key")
        return Quantity(value=value, unit=_get(item, "UnitOfMeasure"))
    return None


def _value_tree(value: str | None, unit: str | None, data_type: str = "string") -> dict[str, Any]:
    tree: dict[str, Any] = {"ValueString": value or "", "DataType": data_type}
    _put(tree, "UnitOfMeasure", unit)
    return tree


def _property_tree(prop: Property) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": prop.id}
    _put(tree, "Description", _desc(prop.description))
    if prop.value is not None or prop.unit is not None:
        tree["Value"] = [_value_tree(prop.value, prop.unit)]
    return tree


def _property(tree: dict[str, Any]) -> Property:
    values = _list(tree, "Value")
    value = unit = None
    if values:
        value = _get(values[0], "ValueString")
        unit = _get(values[0], "UnitOfMeasure")
        _get(values[0], "DataType")
    return Property(
        id=_get(tree, "ID") or "",
        value=value or None,
        unit=unit,
        description=_get(tree, "Description"),
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
    return place + (f" {ident!r}" if ident else "") + (f" (line {line})" if line else "")


def _describe(exc: Exception) -> str:
    """A one-line account of a model or conversion failure."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{field + ': ' if field else ''}{message}"
    return f"{type(exc).__name__}: {exc}"


def _model(build: Callable[[], _M], where: str) -> _M:
    """``build()``, with validation and conversion failures refused as naming ``where``."""
    try:
        return build()
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
