"""Personnel: classes, persons and qualifications with expiry."""

from __future__ import annotations

from pydantic import Field

from isa95.common import AwareDatetime, Identifier, Model, Property, Text

__all__ = ["Person", "PersonnelClass", "PersonnelInformation", "Qualification"]


class PersonnelClass(Model):
    """A role or trade (e.g. "Granulation operator")."""

    id: Identifier
    description: Text | None = None
    properties: list[Property] = Field(default_factory=list)


class Qualification(Model):
    """A passed qualification test (training, certification) and when it lapses."""

    id: Identifier
    description: Text | None = None
    result: Text | None = None
    valid_until: AwareDatetime | None = None

    def valid_at(self, when: AwareDatetime) -> bool:
        """True when the qualification has not lapsed at ``when``."""
        return self.valid_until is None or when < self.valid_until


class Person(Model):
    """A person with classes and qualifications."""

    id: Identifier
    name: Text | None = None
    personnel_class_ids: list[Identifier] = Field(default_factory=list)
    qualifications: list[Qualification] = Field(default_factory=list)
    properties: list[Property] = Field(default_factory=list)

    def is_qualified(self, qualification_id: str, when: AwareDatetime) -> bool:
        """True when the person holds ``qualification_id`` valid at ``when``."""
        return any(q.id == qualification_id and q.valid_at(when) for q in self.qualifications)


class PersonnelInformation(Model):
    """A B2MML PersonnelInformation payload: classes and persons."""

    id: Identifier | None = None
    description: Text | None = None
    classes: list[PersonnelClass] = Field(default_factory=list)
    persons: list[Person] = Field(default_factory=list)
