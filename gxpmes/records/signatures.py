"""Re-verify every e-signature against the record it signs, as that record is now.

Uses the engine's own record builders (what a signer signed is defined in one
place), over a verify-only signature service that trusts only the keys given.

Then the other way round: every state that only a signed action can reach —
an assessed exception, a closed deviation, a reviewed, released or rejected
batch, an approved recipe, a change of someone's account — must carry a valid
signature of that meaning (an account change: ``Authorised`` by the
administrator the change names). A
state and its log entry can be forged together (a tail entry laundered under
a later signed head); a signature cannot, without the system key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from gxpmes.errors import GxpError
from gxpmes.records.replay import RecordProblem

__all__ = ["approved_by_two", "check_signatures"]


def check_signatures(
    engine: Engine, signature_keys: dict[str, bytes], batch: str | None
) -> tuple[int, list[RecordProblem]]:
    """``(signatures checked, problems)`` for one batch, or for every batch and recipe."""
    from gxpmes.database import Database
    from gxpmes.ebr.engine import BatchEngine
    from gxpmes.ebr.schema import BatchRow, RecipeRow
    from gxpmes.identity import IdentityService, SignatureService
    from gxpmes.identity.schema import SignatureRow

    db = Database.over(engine)
    identity = IdentityService(db)
    signatures = SignatureService(identity, None, trusted_system_keys=signature_keys)
    ebr = BatchEngine(db, identity, signatures)
    problems: list[RecordProblem] = []
    checked = 0
    valid: set[tuple[str, str, str, str]] = set()  # (record type, id, meaning, signer)
    with engine.connect() as conn:
        batches = (
            [batch]
            if batch is not None
            else list(conn.scalars(select(BatchRow.batch_id).order_by(BatchRow.batch_id)))
        )
        recipes = conn.execute(select(RecipeRow.recipe_id, RecipeRow.version)).all()
        scopes = set(conn.scalars(select(SignatureRow.scope).distinct()))
    for batch_id in batches:
        for signature, problem in _guarded(
            problems, batch_id, functools.partial(ebr.verify_batch_signatures, batch_id)
        ):
            checked += 1
            if problem is not None:
                problems.append(_problem(signature, problem))
            else:
                valid.add(_signed(signature))
        scopes.discard(batch_id)
    for recipe_id, version in recipes:
        scope = f"recipe:{recipe_id}/v{version}"

        def recipe_results(r: str = recipe_id, v: str = version) -> list[tuple[Any, str | None]]:
            record = ebr.recipe_record(r, v)
            return signatures.verify_scope(
                record.signable_scope, {(record.signable_type, record.signable_id): record}
            )

        for signature, problem in _guarded(problems, scope, recipe_results):
            checked += 1
            if problem is not None:
                problems.append(_problem(signature, problem))
            else:
                valid.add(_signed(signature))
        scopes.discard(scope)
    if batch is None:
        # Reviews of the trail by time range: signed outside any batch or recipe.
        from gxpmes.trail.review import RANGE_SCOPE, TrailReviews

        for signature, problem in _guarded(
            problems,
            RANGE_SCOPE,
            lambda: TrailReviews(db, signatures).verify_signatures(RANGE_SCOPE),
        ):
            checked += 1
            if problem is not None:
                problems.append(_problem(signature, problem))
            else:
                valid.add(_signed(signature))
        scopes.discard(RANGE_SCOPE)
    if batch is None:
        account_scopes = _check_account_changes(engine, signatures, problems, valid)
        checked += account_scopes[0]
        scopes -= account_scopes[1]
        for scope in sorted(scopes):
            for signature in signatures.signatures_in_scope(scope):
                checked += 1
                problems.append(_problem(signature, "signed record is not part of any record"))
    with engine.connect() as conn:
        problems.extend(_unsigned_states(conn, batch, valid))
    return checked, problems


def _check_account_changes(
    engine: Engine,
    signatures: Any,
    problems: list[RecordProblem],
    valid: set[tuple[str, str, str, str]],
) -> tuple[int, set[str]]:
    """Each ``gx_account_change`` row needs a valid ``Authorised`` signature by its
    administrator; returns ``(signatures checked, scopes covered)``."""
    from gxpmes.identity.admin import ACCOUNT_CHANGE, account_change_record
    from gxpmes.identity.schema import AccountChangeRow

    with engine.connect() as conn:
        rows = conn.execute(select(AccountChangeRow)).all()
    checked, scopes = 0, set()
    by_scope: dict[str, dict[tuple[str, str], Any]] = {}
    for row in rows:
        try:
            record = account_change_record(row)
        except (ValueError, TypeError) as exc:
            problems.append(_missing(ACCOUNT_CHANGE, str(row.change_id), f"unreadable: {exc}"))
            continue
        by_scope.setdefault(record.signable_scope, {})[
            (record.signable_type, record.signable_id)
        ] = record
    for scope, records in sorted(by_scope.items()):
        scopes.add(scope)
        for signature, problem in _guarded(
            problems, scope, functools.partial(signatures.verify_scope, scope, records)
        ):
            checked += 1
            if problem is not None:
                problems.append(_problem(signature, problem))
            else:
                valid.add(_signed(signature))
    signers: dict[str, set[str]] = {}
    for record_type, record_id, meaning, signer in valid:
        if record_type == ACCOUNT_CHANGE and meaning == "Authorised":
            signers.setdefault(record_id, set()).add(signer)
    for row in rows:
        if str(row.changed_by) not in signers.get(str(row.change_id), set()):
            problems.append(
                _missing(
                    ACCOUNT_CHANGE,
                    str(row.change_id),
                    f"gx_account_change says {row.changed_by} made {row.action} of "
                    f"{row.user_id}; no valid Authorised signature by them is on it",
                )
            )
    return checked, scopes


def _signed(signature: Any) -> tuple[str, str, str, str]:
    return (
        str(signature.record_type),
        str(signature.record_id),
        str(signature.meaning),
        str(signature.signer_id),
    )


def _unsigned_states(
    conn: Connection, batch: str | None, valid: set[tuple[str, str, str, str]]
) -> list[RecordProblem]:
    """States that need a signature of some meaning and have no valid one.

    ``valid`` holds the signatures that verified. Cells are read as stored
    (``text()``: no type processing), so a flag tampered into text still
    counts as set; the table comparison names the cell itself.
    """
    signers: dict[tuple[str, str, str], set[str]] = {}
    for record_type, record_id, meaning, signer in valid:
        signers.setdefault((record_type, record_id, meaning), set()).add(signer)
    where, params = ("WHERE batch_id = :b", {"b": batch}) if batch is not None else ("", {})
    needs: list[tuple[str, str, str, str]] = []  # (table, record type, record id, meaning)
    for exception_id, assessed in conn.execute(
        text(f"SELECT exception_id, assessed FROM ebr_exception {where}"), params
    ):
        if assessed not in (None, 0, False):
            needs.append(("ebr_exception", "batch_exception", exception_id, "Reviewed"))
    for deviation_id, status in conn.execute(
        text(f"SELECT deviation_id, status FROM ebr_deviation {where}"), params
    ):
        if status == "closed":
            needs.append(("ebr_deviation", "deviation", deviation_id, "Approved"))
    for batch_id, status in conn.execute(
        text(f"SELECT batch_id, status FROM ebr_batch {where}"), params
    ):
        for meaning in _BATCH_MEANINGS.get(status, ()):
            needs.append(("ebr_batch", "batch", batch_id, meaning))
    problems = [
        _missing(
            record_type,
            record_id,
            f"{table} says {record_type} {record_id} was signed {meaning}; "
            "no valid signature of that meaning is on it",
        )
        for table, record_type, record_id, meaning in needs
        if not signers.get((record_type, record_id, meaning))
    ]
    for recipe_id, version, status in conn.execute(
        text("SELECT recipe_id, version, status FROM ebr_recipe")
    ):
        if status != "Approved":
            continue
        object_id = f"{recipe_id}/v{version}"
        if not approved_by_two(
            signers.get(("master_recipe", object_id, "Performed"), set()),
            signers.get(("master_recipe", object_id, "Approved"), set()),
        ):
            problems.append(
                _missing(
                    "master_recipe",
                    object_id,
                    f"ebr_recipe says master recipe {object_id} is Approved; it lacks valid "
                    "Performed and Approved signatures by two people",
                )
            )
    return problems


def approved_by_two(performed: set[str], approved: set[str]) -> bool:
    """211.186: a master recipe is Approved only when signed Performed and Approved by two people.

    ``performed`` and ``approved`` are the signers of valid signatures of each meaning.
    """
    return bool(performed) and bool(approved - performed)


def _missing(record_type: str, record_id: str, detail: str) -> RecordProblem:
    """A signature the record's state requires and that is not there (or does not verify)."""
    return RecordProblem(
        "gx_signature", f"{record_type} {record_id}", None, None, "signature", detail
    )


# Batch status → the signatures (on the batch record) that only reach it.
_BATCH_MEANINGS: dict[str, tuple[str, ...]] = {
    "Reviewed": ("Reviewed",),
    "Released": ("Reviewed", "Released"),
    "Rejected": ("Rejected",),
}


def _guarded(
    problems: list[RecordProblem],
    scope: str,
    results: Callable[[], list[tuple[Any, str | None]]],
) -> list[tuple[Any, str | None]]:
    """``results()``, or none and a problem when a signed record cannot be rebuilt.

    A record whose row was deleted, re-keyed or garbled (JSON that no longer
    parses) cannot be built to check its signatures against; verification
    reports that instead of stopping (the table comparison names the row).
    """
    try:
        return results()
    except (GxpError, ValueError, TypeError) as exc:  # TypeError: text where bytes belong
        problems.append(
            RecordProblem(
                "gx_signature",
                scope,
                None,
                None,
                "signature",
                f"signatures of {scope} cannot be checked: {exc}",
            )
        )
        return []


def _problem(signature: object, detail: str) -> RecordProblem:
    return RecordProblem(
        "gx_signature",
        str(getattr(signature, "signature_id", "?")),
        None,
        None,
        "signature",
        detail,
        None,
    )
