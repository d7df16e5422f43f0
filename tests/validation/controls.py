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


def _reviewer_may_release(original: Any) -> Any:
    """The signing conflicts without "Reviewed" among those excluding "Released"."""
    conflicts, level = original["Released"]
    return {**original, "Released": (conflicts - {"Reviewed"}, level)}


def _in_progress_ignored(original: Callable[..., Any]) -> Callable[..., Any]:
    """IdentityService._may_check counting recorded failures only (the old race)."""

    def may_check(self: Any, failures: int, _in_progress: int) -> bool:
        return bool(original(self, failures, 0))

    return may_check


def _any_material(_original: Callable[..., Any]) -> Callable[..., Any]:
    """ProcedureRules._bom_line answering a line for any material, with any tolerance."""
    from decimal import Decimal

    from isa95.common import Quantity
    from isa95.recipe import MaterialRequirement

    def bom_line(*args: Any) -> Any:  # (engine,) recipe, phase, material id
        return MaterialRequirement(
            material_id=args[-1],
            quantity=Quantity(value=Decimal("20"), unit="kg"),
            tolerance=Decimal("1000"),
        )

    return bom_line


def _unchecked_lot(_original: Callable[..., Any]) -> Callable[..., Any]:
    """ProcedureRules._check_lot returning the lot row without checking it."""
    from sqlalchemy import select

    from gxpmes.ebr.schema import LotRow

    def check_lot(_self: Any, conn: Any, lot_id: str, *_args: Any) -> Any:
        return conn.execute(select(LotRow).where(LotRow.lot_id == lot_id)).one()

    return check_lot


def _any_capture_account(_original: Callable[..., Any]) -> Callable[..., Any]:
    """ValueCapture._capture_account accepting whatever account is named."""
    from audit.entry import Actor

    def capture_account(_self: Any, _conn: Any, source: Any) -> Any:
        return Actor(source.account_id, source.account_id), []

    return capture_account


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
        "audit.verify:_time_went_back",
        returns(False),
        "tests/audit_core/test_time_order.py::test_verification_names_an_entry_recorded_earlier",
        "11.10e",
    ),
    # ---- accounts, passwords and identity (issue 14 items 1-3)
    Control(
        "nobody changes their own account or roles",
        "gxpmes.identity.admin:refuse_own_account",
        noop,
        Scenario("account_controls.feature", "Nobody grants roles to themselves"),
        "11.10g",
    ),
    Control(
        "conflicting roles refused at grant (conflict matrix)",
        "gxpmes.identity.duties:DutyMatrix.check_roles",
        noop,
        Scenario("account_controls.feature", "Conflicting roles are refused when granted"),
        "11.10g",
    ),
    Control(
        "conflicting roles refused at signing",
        "gxpmes.identity.service:IdentityService.check_signer_roles",
        noop,
        Scenario(
            "account_controls.feature",
            "A role written into the table by SQL is caught and still cannot sign",
        ),
        "11.10g",
    ),
    Control(
        "the reviewer of a batch is not its releaser",
        "gxpmes.identity.signatures:SEPARATION_OF_DUTIES",
        _reviewer_may_release,
        Scenario("account_controls.feature", "Whoever reviewed a batch cannot also release it"),
        "211.192",
    ),
    Control(
        "an administrator's password is one-time",
        "gxpmes.identity.service:IdentityService.must_set_own_password",
        returns(False),
        Scenario(
            "account_controls.feature",
            "A password the administrator issued only serves to set one's own",
        ),
        "11.200a3",
    ),
    Control(
        "password expiry enforced at signing",
        "gxpmes.identity.service:IdentityService.password_expired",
        returns(False),
        Scenario("account_controls.feature", "An expired password signs nothing"),
        "11.300b",
    ),
    Control(
        "checks in progress count against the lockout limit",
        "gxpmes.identity.service:IdentityService._may_check",
        _in_progress_ignored,
        Scenario(
            "account_controls.feature",
            "Guesses running in parallel get no more checks than the lockout allows",
        ),
        "11.300d",
    ),
    Control(
        "user ids unique case-insensitively and by look",
        "gxpmes.identity.service:id_skeleton",
        lambda _original: lambda user_id: user_id,
        Scenario("account_controls.feature", "A user id that reads as an existing one is refused"),
        "11.100a",
    ),
    Control(
        "user ids are single-script",
        "gxpmes.identity.names:_script",
        returns("LATIN"),
        Scenario("account_controls.feature", "A user id that reads as an existing one is refused"),
        "11.100a",
    ),
    Control(
        "printed names unique among users",
        "gxpmes.identity.service:name_key",
        lambda _original: lambda _name: object(),
        Scenario("account_controls.feature", "Two people cannot share a printed name"),
        "11.50",
    ),
    Control(
        "an older password hash cost is rehashed at login",
        "gxpmes.identity.passwords:PasswordHasher.needs_rehash",
        returns(False),
        "tests/identity/test_password_controls.py::test_an_older_cost_is_rehashed_at_the_next_login",
        "11.300b",
    ),
    Control(
        "personal keys re-wrapped on password change",
        "gxpmes.identity.keywrap:rewrap",
        lambda _original: lambda wrapped, _old, _new, _hasher: wrapped,
        "tests/identity/test_password_controls.py::"
        "test_personal_keys_are_wrapped_with_scrypt_and_rewrapped_on_password_change",
        "11.300b",
    ),
    Control(
        "the same scrypt work for unknown, locked and deactivated accounts",
        "gxpmes.identity.service:IdentityService._decoy",
        constant("not-a-hash"),
        "tests/identity/test_password_controls.py::"
        "test_every_account_state_costs_one_scrypt_and_one_entry",
        "11.300d",
    ),
    Control(
        "account changes carry a verified administrator signature",
        "gxpmes.records.signatures:_check_account_changes",
        returns((0, set())),
        "tests/identity/test_account_controls.py::"
        "test_role_grants_are_signed_reasoned_audited_and_verified",
        "11.10g",
    ),
    Control(
        "release needs a recorded review of the batch's audit trail",
        "gxpmes.trail.review:TrailReviews.check_reviewed",
        noop,
        Scenario("audit_trail.feature", "Release needs a signed review of the batch's audit trail"),
        "annex11.9",
    ),
    Control(
        "a trail review is refused unless the trail gives the reviewed hash",
        "gxpmes.trail.review:TrailReviews._check_hash",
        noop,
        Scenario("audit_trail.feature", "Release needs a signed review of the batch's audit trail"),
        "annex11.9",
    ),
    Control(
        "a change after the trail review needs another review",
        "gxpmes.trail.review:TrailReviews.last_change",
        returns(-1),
        Scenario("batch_record.feature", "An open deviation blocks release"),
        "annex11.9",
    ),
    Control(
        "key registration and revocation are audited",
        "audit.ledger:Ledger._audit_key_change",
        noop,
        "tests/audit_core/test_key_audit.py::test_register_and_revoke_are_audited_under_a_signed_head",
        "11.10e",
    ),
    # ---- enforced procedure, weigh & dispense, capture identity (issue 14 items 4-6)
    Control(
        "a phase starts only after its predecessors complete",
        "gxpmes.ebr.procedure:ProcedureRules._check_start",
        noop,
        Scenario("procedure.feature", "A phase cannot start before its predecessor completes"),
        "11.10f",
    ),
    Control(
        "a procedural element starts only while its parent runs",
        "gxpmes.ebr.procedure:ProcedureRules._check_start",
        noop,
        Scenario("procedure.feature", "A phase cannot start while its operation is not running"),
        "11.10f",
    ),
    Control(
        "a phase completes only with its mandatory data",
        "gxpmes.ebr.procedure:ProcedureRules._phase_missing",
        returns([]),
        Scenario("procedure.feature", "A phase does not complete without its mandatory data"),
        "211.188b11",
    ),
    Control(
        "manual entries and IPC results signed by two people when the recipe asks",
        "gxpmes.ebr.procedure:ProcedureRules._unverified_entries",
        returns([]),
        Scenario("procedure.feature", "A manual entry needs a second person when the recipe asks"),
        "211.188b11",
    ),
    Control(
        "review and release need every phase's required signatures",
        "gxpmes.ebr.procedure:ProcedureRules._check_record_complete",
        noop,
        Scenario(
            "procedure.feature", "Review is refused while a phase lacks its Verified signature"
        ),
        "211.188b11",
    ),
    Control(
        "only bill-of-materials lines are dispensed, within tolerance",
        "gxpmes.ebr.procedure:ProcedureRules._bom_line",
        _any_material,
        Scenario(
            "procedure.feature",
            "Only materials of the bill of materials are dispensed, within tolerance",
        ),
        "211.101",
    ),
    Control(
        "dispensing on a registered balance in calibration",
        "gxpmes.ebr.procedure:ProcedureRules._check_balance",
        noop,
        Scenario("procedure.feature", "Dispensing needs a registered balance in calibration"),
        "211.101",
    ),
    Control(
        "a lot is released, unexpired and holds enough",
        "gxpmes.ebr.procedure:ProcedureRules._check_lot",
        _unchecked_lot,
        Scenario(
            "procedure.feature", "A lot is never overdrawn, and expired lots are not dispensed"
        ),
        "211.101",
    ),
    Control(
        "containers are charged while their phase runs",
        "gxpmes.ebr.procedure:ProcedureRules._check_charge",
        noop,
        Scenario(
            "procedure.feature", "Dispensed containers are charged into the unit of their phase"
        ),
        "211.101",
    ),
    Control(
        "values are captured under an authorised device account",
        "gxpmes.ebr.capture:ValueCapture._capture_account",
        _any_capture_account,
        Scenario(
            "procedure.feature", "Values are captured only under an authorised device account"
        ),
        "11.10h",
    ),
    Control(
        "captured parameters must be in the recipe",
        "gxpmes.ebr.capture:ValueCapture._phase_parameter",
        returns(object()),
        Scenario(
            "procedure.feature",
            "Unknown parameters and timestamps ahead of the server clock are refused",
        ),
        "11.10h",
    ),
    Control(
        "captured timestamps may not lie ahead of the server clock",
        "gxpmes.ebr.capture:ValueCapture._ahead_of",
        returns(False),
        Scenario(
            "procedure.feature",
            "Unknown parameters and timestamps ahead of the server clock are refused",
        ),
        "11.10h",
    ),
)


def by_name(name: str) -> Control:
    """The row called ``name``."""
    for control in CONTROLS:
        if control.name == name:
            return control
    raise KeyError(f"no control named {name!r} in tests/validation/controls.py")
