"""Building blocks shared by every ISA-95 model: identifiers, text, quantities, properties."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from isa95.errors import ModelError

__all__ = [
    "AwareDatetime",
    "Identifier",
    "Model",
    "Property",
    "Quantity",
    "Text",
    "check_interval",
]

# Characters XML 1.0 cannot carry, plus CR (XML parsers turn it into LF).
_NOT_XML = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: str) -> str:
    bad = _NOT_XML.search(value)
    if bad:
        raise ValueError(f"character U+{ord(bad.group()):04X} cannot be carried in XML")
    return value


def _identifier(value: str) -> str:
    _xml_text(value)
    if not value or value != value.strip():
        raise ValueError(f"identifier {value!r} is empty or has surrounding whitespace")
    return value


Identifier = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_identifier)]
"""A non-empty identifier without surrounding whitespace that XML can carry."""

Text = Annotated[str, Field(max_length=10_000), AfterValidator(_xml_text)]
"""Free text that XML can carry."""


class Model(BaseModel):
    """Base of all isa95 models: strict about unknown fields, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Quantity(Model):
    """An exact quantity with its unit of measure (never a float)."""

    value: Decimal
    unit: Annotated[str, Field(max_length=64), AfterValidator(_xml_text)] | None = None
    data_type: Identifier = "decimal"
    """The B2MML DataType it was written with (``decimal``, ``integer``, ``double`` …)."""
    key: Identifier | None = None
    """The B2MML Quantity's Key (which of several quantities this is), if any."""

    @field_validator("value", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("quantities must be Decimal or str, never float (binary rounding)")
        return value

    @model_validator(mode="after")
    def _finite(self) -> Quantity:
        if not self.value.is_finite():
            raise ValueError(f"quantity {self.value} is not a finite number")
        return self


class Property(Model):
    """A named property value, optionally with a unit (equipment, material, personnel...)."""

    id: Identifier
    value: Text | None = None
    unit: Annotated[str, Field(max_length=64), AfterValidator(_xml_text)] | None = None
    description: Text | None = None
    data_type: Identifier | None = "string"
    """The B2MML DataType of ``value`` as written (``string``, ``integer``, ``dateTime`` …);
    None: the Value has no DataType (the writer writes none)."""


def check_interval(start: AwareDatetime | None, end: AwareDatetime | None, what: str) -> None:
    """Refuse an interval that ends before it starts."""
    if start is not None and end is not None and end < start:
        raise ModelError(f"{what} ends ({end.isoformat()}) before it starts ({start.isoformat()})")
