"""Re-verify every e-signature against the record it signs, as that record is now.

Uses the engine's own record builders (what a signer signed is defined in one
place), over a verify-only signature service that trusts only the keys given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from gxpmes.errors import GxpError
from gxpmes.records.replay import RecordProblem

__all__ = ["check_signatures"]


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
        scopes.discard(scope)
    if batch is None:
        for scope in sorted(scopes):
            for signature in signatures.signatures_in_scope(scope):
                checked += 1
                problems.append(_problem(signature, "signed record is not part of any record"))
    return checked, problems


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
