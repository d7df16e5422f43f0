"""Every control and the scenario (or test) that proves it — remove the control, the proof fails.

A row names a control, the place its check lives (``module:attribute.path``),
how to take it away (a function of the original returning the replacement),
and its proof: a Gherkin scenario of ``features/`` or a pytest node id.
``tests/validation/test_controls_removed.py`` runs each proof twice in a
pytest subprocess: with the control in place it must pass, with the control
removed it must fail. A proof that still passes without its control tests
something else (STYLE.md §6). See docs/validation.md for how to add a row.

Patch the name where it is *looked up*: a function imported with
``from x import f`` into another module must be patched in that module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTROLS", "Control", "Scenario", "by_name", "noop", "returns"]


@dataclass(frozen=True)
class Scenario:
    """A scenario of ``features/<feature>`` (every example of an outline)."""

    feature: str
    name: str


@dataclass(frozen=True)
class Control:
    """One control, where it lives, how to remove it and what proves it."""

    name: str
    target: str
    """``package.module:Attribute.path`` — the check to take away."""
    remove: Callable[[Any], Any]
    """Given the original attribute, returns what replaces it while the control is removed."""
    proof: Scenario | str
    """The scenario, or a pytest node id (``tests/...py::test_name``), that must then fail."""
    clause: str = ""
    """The requirement the control serves (as in ``@req:`` tags)."""


def noop(_original: Any) -> Callable[..., None]:
    """Replace a check by a function that checks nothing."""

    def removed(*_args: Any, **_kwargs: Any) -> None:
        return None

    return removed


def returns(value: Any) -> Callable[[Any], Callable[..., Any]]:
    """Replace a predicate by one that always answers ``value``."""

    def remove(_original: Any) -> Callable[..., Any]:
        def removed(*_args: Any, **_kwargs: Any) -> Any:
            return value

        return removed

    return remove


def constant(value: Any) -> Callable[[Any], Any]:
    """Replace a table (a mapping, a set) by ``value``."""
    return lambda _original: value


# ----------------------------------------------------------------- removals


def _never_idle(original: Callable[..., Any]) -> Callable[..., Any]:
    """IdentityService.active_session with the idle timeout taken away: every
    session looks as if it had just been used."""
    from sqlalchemy import update

    from audit.canonical import format_timestamp
    from gxpmes.identity.schema import SessionRow

    def active_session(self: Any, conn: Any, session: Any) -> Any:
        conn.execute(
            update(SessionRow)
            .where(SessionRow.session_id == session.key)
            .values(last_activity=format_timestamp(self._now()))
        )
        return original(self, conn, session)

    return active_session


def _no_time_floor(original: Callable[..., Any]) -> Callable[..., Any]:
    """Ledger._tail_state forgetting the tail's recorded time: no floor for the clock."""

    def tail_state(self: Any, *args: Any) -> Any:
        frontier, signable, base_size, _last_stamp = original(self, *args)
        return frontier, signable, base_size, ""

    return tail_state


CONTROLS: tuple[Control, ...] = (
    Control(
        "idle session timeout",
        "gxpmes.identity.service:IdentityService.active_session",
        _never_idle,
        Scenario("access_control.feature", "An idle session ends and needs both components again"),
        "11.200a1",
    ),
    Control(
        "separation of duties at signing",
        "gxpmes.identity.signatures:SEPARATION_OF_DUTIES",
        constant({}),
        Scenario(
            "batch_record.feature",
            "Whoever performed a step cannot release the batch, even holding the role",
        ),
        "11.200a3",
    ),
    Control(
        "password checked at every signing in a session",
        "gxpmes.identity.signatures:SignatureService._authenticate",
        lambda original: lambda self, credentials: self.identity.user(credentials.user_id),
        Scenario("signatures.feature", "Signing inside a session needs the password again"),
        "11.200a1",
    ),
    Control(
        "both components checked at signing",
        "gxpmes.identity.signatures:SignatureService._authenticate",
        lambda original: lambda self, credentials: self.identity.user(credentials.user_id),
        Scenario(
            "signatures.feature", "Signing needs the right password and a role granting the meaning"
        ),
        "11.200a",
    ),
    Control(
        "a signing meaning needs its role",
        "gxpmes.identity.service:IdentityService.permissions",
        lambda original: (
            lambda self, user: frozenset(p for perms in self.roles.values() for p in perms)
        ),
        Scenario(
            "signatures.feature", "Signing needs the right password and a role granting the meaning"
        ),
        "11.10g",
    ),
    Control(
        "reasons required by default for accounts, roles and master data",
        "gxpmes.database:REASON_REQUIRED_ACTIONS",
        constant(frozenset()),
        "tests/ebr/test_audit_completeness.py::test_ledger_refuses_a_role_change_without_reason",
        "11.10e",
    ),
    Control(
        "the ledger refuses a recorded time earlier than the tail's",
        "audit.ledger:Ledger._tail_state",
        _no_time_floor,
        "tests/audit_core/test_time_order.py::test_clock_going_back_is_refused_and_nothing_written",
        "11.10e",
    ),
    Control(
        "verification flags time going backwards",
        "audit.verify:_recorded_at",
        returns(b""),
        "tests/audit_core/test_time_order.py::test_verification_names_an_entry_recorded_earlier",
        "11.10e",
    ),
    Control(
        "key registration and revocation are audited",
        "audit.ledger:Ledger._audit_key_change",
        noop,
        "tests/audit_core/test_key_audit.py::test_register_and_revoke_are_audited_under_a_signed_head",
        "11.10e",
    ),
)


def by_name(name: str) -> Control:
    """The row called ``name``."""
    for control in CONTROLS:
        if control.name == name:
            return control
    raise KeyError(f"no control named {name!r} in tests/validation/controls.py")
