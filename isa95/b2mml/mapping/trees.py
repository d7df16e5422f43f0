"""Plain-data B2MML trees: tracked reading, and the small value types shared by all nouns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import ValidationError

from isa95.common import Property, Quantity
from isa95.errors import ModelError

V0701, V0600 = "V0701", "V0600"


_M = TypeVar("_M")


QUALIFICATION_PREFIX = "QUAL:"


class Tracked(dict[str, Any]):
    """A tree dict that remembers which keys were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return super().get(key, default)


def track(value: Any) -> Any:
    """Wrap every dict of a tree in :class:`Tracked`."""
    if isinstance(value, dict):
        return Tracked({k: track(v) for k, v in value.items()})
    if isinstance(value, list):
        return [track(v) for v in value]
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


def _get(tree: dict[str, Any], key: str) -> Any:
    """Text of child ``key`` (None when absent). Typed Any: pydantic validates it."""
    return _text(tree.get(key))


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
        raise ModelError(f"{where}: {text!r} is not a date-time") from exc
    if value.utcoffset() is None:
        assumed = ASSUMED_TIMEZONE.get()
        if assumed is None:
            raise ModelError(
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


def _quantity_tree(quantity: Quantity | None) -> list[dict[str, Any]] | None:
    if quantity is None:
        return None
    tree: dict[str, Any] = {"QuantityString": str(quantity.value), "DataType": "decimal"}
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
        try:
            value = Decimal(text.strip())
        except InvalidOperation as exc:
            raise ModelError(f"{where}/Quantity: {text!r} is not a {data_type} number") from exc
        if not value.is_finite():
            raise ModelError(f"{where}/Quantity: {text!r} is not a finite number")
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
    """``Label 'id' (line N)`` for error messages."""
    ident = next((i for i in (_text(dict.get(tree, k)) for k in (*id_keys, "ID")) if i), None)
    line = dict.get(tree, "@@line")
    return f"<{label}>" + (f" {ident!r}" if ident else "") + (f" (line {line})" if line else "")


def _model(build: Callable[[], _M], where: str) -> _M:
    try:
        return build()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ModelError(f"{where}: {field + ': ' if field else ''}{message}") from exc
