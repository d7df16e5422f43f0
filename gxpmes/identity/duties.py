"""Separation of duties: which roles one person may not hold together, and which
signatures one person may not give on the same record or batch (21 CFR 11.10(g),
211.192, 211.186; EU GMP Annex 11 §12).

Both halves are checked twice: role conflicts when roles are granted *and* when
someone signs (a role written into the table behind the application's back
still cannot sign); signing conflicts when the signature is made, against the
signatures already in the record or scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gxpmes.errors import ConfigurationError, SeparationOfDutiesError

__all__ = ["DEFAULT_ROLE_CONFLICTS", "SIGNING_CONFLICTS", "DutyMatrix"]

DEFAULT_ROLE_CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset({"Administrator", other})
    for other in ("QA Approver", "QA Reviewer", "Operator", "Supervisor")
)
"""Role pairs nobody holds together. Whoever manages accounts could otherwise grant
himself what he needs to sign; Supervisor is included because it performs steps
and authors recipes like an Operator."""

SIGNING_CONFLICTS: Mapping[str, tuple[frozenset[str], str]] = {
    # performer ≠ verifier of the same record
    "Verified": (frozenset({"Performed"}), "record"),
    # whoever executed a batch (or authored a recipe: "Performed" on it) does not
    # review, approve, release or reject it; the reviewer is not the releaser.
    "Reviewed": (frozenset({"Performed", "Verified"}), "scope"),
    "Approved": (frozenset({"Performed", "Verified"}), "scope"),
    "Released": (frozenset({"Performed", "Verified", "Reviewed"}), "scope"),
    "Rejected": (frozenset({"Performed", "Verified"}), "scope"),
}
"""meaning → (meanings the same person must not also have signed, and where:
``"record"`` the same record, ``"scope"`` anywhere in the batch or recipe)."""


@dataclass(frozen=True)
class DutyMatrix:
    """The configurable conflict matrix of one installation.

    ``role_conflicts`` holds pairs of role names; ``signing`` maps a meaning to
    the meanings that exclude it (see :data:`SIGNING_CONFLICTS`). ``signing``
    None means the module default, looked up at each check.
    """

    role_conflicts: frozenset[frozenset[str]] = DEFAULT_ROLE_CONFLICTS
    signing: Mapping[str, tuple[frozenset[str], str]] | None = field(default=None)

    def __post_init__(self) -> None:
        for pair in self.role_conflicts:
            if len(pair) != 2:
                raise ConfigurationError(
                    f"a role conflict names two different roles, not {sorted(pair)!r}"
                )
        for meaning, (conflicts, level) in (self.signing or {}).items():
            if level not in ("record", "scope") or (meaning in conflicts and level == "scope"):
                raise ConfigurationError(f"signing conflict of {meaning!r} is malformed")

    def role_clash(self, roles: Iterable[str]) -> tuple[str, str] | None:
        """The first conflicting pair among ``roles`` (sorted), or None."""
        held = set(roles)
        for pair in sorted(self.role_conflicts, key=sorted):
            if pair <= held:
                first, second = sorted(pair)
                return first, second
        return None

    def check_roles(self, user_id: str, roles: Iterable[str], *, when: str) -> None:
        """Raise :class:`SeparationOfDutiesError` if ``roles`` hold a conflicting pair."""
        clash = self.role_clash(roles)
        if clash is not None:
            raise SeparationOfDutiesError(
                f"separation of duties: {user_id} would hold both {clash[0]!r} and "
                f"{clash[1]!r} ({when})"
            )
