"""Master recipes: submission and approval with two signatures (21 CFR 211.186)."""

from __future__ import annotations

import json

from sqlalchemy import Connection, select

from audit.entry import Actor
from gxpmes.ebr.base import (
    _json,
)
from gxpmes.ebr.materials import MaterialRecords
from gxpmes.ebr.schema import (
    BatchRow,
    RecipeRow,
    StepRow,
    ValueRow,
)
from gxpmes.errors import (
    BatchError,
    GxpError,
    RecordIntegrityError,
    StateChangedError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord
from gxpmes.identity.service import Session
from gxpmes.lengths import check_lengths
from gxpmes.records import writer as projection
from gxpmes.records.signatures import approved_by_two
from isa95.recipe import Phase, Recipe


def _recipe_texts(recipe: Recipe) -> list[tuple[str, object, object]]:
    """``(what, text, column)`` of every recipe text a batch record keeps in a
    column of its own: the ids, each procedural element's path, each phase
    parameter's path (the ``parameter`` of its values and exceptions)."""
    texts: list[tuple[str, object, object]] = [
        ("recipe id", recipe.id, RecipeRow.recipe_id),
        (f"recipe {recipe.id}: version", recipe.version, RecipeRow.version),
        (f"recipe {recipe.id}: product id", recipe.product_id, BatchRow.product_id),
    ]
    for path, element in recipe.procedural_elements():
        texts.append((f"recipe {recipe.id}: procedural element path", path, StepRow.path))
        if isinstance(element, Phase):
            texts += [
                (f"recipe {recipe.id}: parameter path", f"{path}/{p.id}", ValueRow.parameter)
                for p in element.parameters
            ]
    return texts


class RecipeRecords(MaterialRecords):
    """Master recipes: submission and approval with two signatures (21 CFR 211.186)."""

    def submit_recipe(self, session: Session, recipe: Recipe) -> None:
        """Store a master recipe version as Draft (approval needs two signatures).

        An id, version, product id, procedural element path or parameter path
        longer than the batch record's column for it is refused
        (:class:`BatchError`) before anything is written.
        """
        check_lengths(BatchError, _recipe_texts(recipe))
        with self.db.transaction() as conn:
            user = self._user(conn, session, "recipe.author")
            body = _json(recipe.model_dump(mode="json"))
            projection.insert(
                conn,
                RecipeRow,
                dict(
                    recipe_id=recipe.id,
                    version=recipe.version,
                    body=body,
                    status="Draft",
                    created_at=self._ts(),
                ),
            )
            self._audit(
                conn,
                user.actor,
                "recipe.submit",
                "master_recipe",
                f"{recipe.id}/v{recipe.version}",
                new={"status": "Draft"},
            )

    def recipe_record(
        self, recipe_id: str, version: str, *, conn: Connection | None = None
    ) -> SignableRecord:
        """The signable form of a recipe version (its full content)."""
        query = select(RecipeRow).where(
            RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
        )
        if conn is None:
            with self.db.read() as reader:
                row = reader.execute(query).one_or_none()
        else:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise BatchError(f"no master recipe {recipe_id} v{version}")
        return SignableRecord(
            "master_recipe",
            f"{recipe_id}/v{version}",
            json.loads(row.body),
            f"recipe:{recipe_id}/v{version}",
        )

    def _check_recipe(self, conn: Connection, recipe_id: str, version: str) -> None:
        """The recipe row matches its trail, and if Approved, two valid signatures say so."""
        self._check_recipe_row(conn, recipe_id, version)
        status = conn.scalar(
            select(RecipeRow.status).where(
                RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
            )
        )
        if status != "Approved":
            return
        record = self.recipe_record(recipe_id, version, conn=conn)
        valid: dict[str, set[str]] = {}
        for signature in self.signatures.signatures_for(record):
            try:
                self.signatures.verify_signature(signature, record)
            except GxpError:
                continue
            valid.setdefault(str(signature.meaning), set()).add(signature.signer_id)
        if not approved_by_two(valid.get("Performed", set()), valid.get("Approved", set())):
            raise RecordIntegrityError(
                f"master recipe {recipe_id} v{version} is marked Approved but lacks valid "
                "Performed and Approved signatures by two people (211.186)"
            )

    def sign_recipe(
        self, recipe_id: str, version: str, meaning: str, credentials: Credentials
    ) -> None:
        """Prepared (Performed) by one person, Approved by another: then the recipe is Approved."""
        subject = SignableRecord("master_recipe", f"{recipe_id}/v{version}", {}, "")

        def build(conn: Connection) -> SignableRecord:
            record = self.recipe_record(recipe_id, version, conn=conn)
            status = conn.execute(
                select(RecipeRow.status).where(
                    RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
                )
            ).scalar_one()
            if status != "Draft":
                raise StateChangedError(
                    f"master recipe {recipe_id} v{version} is {status}: it is signed no more"
                )
            if meaning == Meaning.APPROVED and not any(
                s.meaning == Meaning.PERFORMED for s in self.signatures.signatures_for(record)
            ):
                raise BatchError(
                    "a master recipe is approved only after its author signed it (Performed)"
                )
            return record

        def change(conn: Connection, actor: Actor) -> None:
            if meaning != Meaning.APPROVED:
                return
            projection.update(
                conn,
                RecipeRow,
                {"recipe_id": recipe_id, "version": version},
                dict(status="Approved"),
            )
            self._audit(
                conn,
                actor,
                "recipe.approve",
                "master_recipe",
                subject.signable_id,
                old={"status": "Draft"},
                new={"status": "Approved"},
            )

        self._signed_change(credentials, meaning, subject, build, change)
