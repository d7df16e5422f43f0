"""Material: classes, definitions, lots and sublots, and lot genealogy."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from pydantic import Field

from isa95.common import Identifier, Model, Property, Quantity, Text
from isa95.errors import ModelError

__all__ = [
    "Genealogy",
    "GenealogyLink",
    "MaterialClass",
    "MaterialDefinition",
    "MaterialInformation",
    "MaterialLot",
    "MaterialSubLot",
]


class MaterialClass(Model):
    """A class of materials (e.g. "Excipient")."""

    id: Identifier
    description: Text | None = None
    properties: list[Property] = Field(default_factory=list)


class MaterialDefinition(Model):
    """A material (e.g. "Lactose monohydrate 200 mesh") and the classes it belongs to."""

    id: Identifier
    description: Text | None = None
    material_class_ids: list[Identifier] = Field(default_factory=list)
    properties: list[Property] = Field(default_factory=list)


class MaterialSubLot(Model):
    """A uniquely identifiable part of a lot (container, drum, pallet)."""

    id: Identifier
    description: Text | None = None
    status: Identifier | None = None
    storage_location: Identifier | None = None
    quantity: Quantity | None = None


class MaterialLot(Model):
    """An amount of one material with a status (e.g. Quarantine, Released, Rejected)."""

    id: Identifier
    material_definition_id: Identifier | None = None
    description: Text | None = None
    status: Identifier | None = None
    storage_location: Identifier | None = None
    quantity: Quantity | None = None
    properties: list[Property] = Field(default_factory=list)
    sublots: list[MaterialSubLot] = Field(default_factory=list)


class GenealogyLink(Model):
    """``quantity`` of lot ``consumed`` went into lot ``produced``."""

    consumed: Identifier
    produced: Identifier
    quantity: Quantity | None = None


class Genealogy:
    """Lot genealogy as a directed acyclic graph, queryable both ways across levels.

    ``where_used`` answers a recall question (which products contain this
    lot?), ``where_from`` a root-cause question (what went into this lot?).
    """

    def __init__(self, links: Iterable[GenealogyLink] = ()) -> None:
        self._down: dict[str, list[GenealogyLink]] = {}
        self._up: dict[str, list[GenealogyLink]] = {}
        for link in links:
            self.add(link)

    def add(self, link: GenealogyLink) -> None:
        """Record a consumption; a link that would close a cycle is refused."""
        if link.consumed == link.produced:
            raise ModelError(f"lot {link.consumed!r} cannot be consumed into itself")
        if link.consumed in self.where_used(link.produced):
            raise ModelError(
                f"lot {link.produced!r} already went into {link.consumed!r}: "
                "recording the reverse would make a cycle"
            )
        self._down.setdefault(link.consumed, []).append(link)
        self._up.setdefault(link.produced, []).append(link)

    @property
    def links(self) -> list[GenealogyLink]:
        """Every recorded link."""
        return [link for links in self._down.values() for link in links]

    def _walk(
        self, start: str, edges: dict[str, list[GenealogyLink]], down: bool, depth: int | None
    ) -> list[str]:
        seen: dict[str, None] = {}
        queue: deque[tuple[str, int]] = deque([(start, 0)])
        while queue:
            lot, level = queue.popleft()
            if depth is not None and level >= depth:
                continue
            for link in edges.get(lot, []):
                nxt = link.produced if down else link.consumed
                if nxt not in seen:
                    seen[nxt] = None
                    queue.append((nxt, level + 1))
        return list(seen)

    def where_used(self, lot: str, depth: int | None = None) -> list[str]:
        """Lots that ``lot`` went into, directly or (up to ``depth`` levels) indirectly."""
        return self._walk(lot, self._down, True, depth)

    def where_from(self, lot: str, depth: int | None = None) -> list[str]:
        """Lots that went into ``lot``, directly or (up to ``depth`` levels) indirectly."""
        return self._walk(lot, self._up, False, depth)


class MaterialInformation(Model):
    """A B2MML MaterialInformation payload: classes, definitions and lots."""

    id: Identifier | None = None
    description: Text | None = None
    classes: list[MaterialClass] = Field(default_factory=list)
    definitions: list[MaterialDefinition] = Field(default_factory=list)
    lots: list[MaterialLot] = Field(default_factory=list)
