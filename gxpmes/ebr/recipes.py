"""Master recipes: submission and approval with two signatures (21 CFR 211.186)."""

from __future__ import annotations

import json

from sqlalchemy import insert, select, update

from audit.entry import Actor
from gxpmes.ebr.base import (
    _json,
)
from gxpmes.ebr.materials import MaterialRecords
from gxpmes.ebr.schema import (
    RecipeRow,
)
from gxpmes.errors import (
    BatchError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord
from gxpmes.identity.service import Session
from isa95.recipe import Recipe


class RecipeRecords(MaterialRecords):
    """Master recipes: submission and approval with two signatures (21 CFR 211.186)."""

    def submit_recipe(self, session: Session, recipe: Recipe) -> None:
        """Store a master recipe version as Draft (approval needs two signatures)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "recipe.author")
            body = _json(recipe.model_dump(mode="json"))
            conn.execute(
                insert(RecipeRow).values(
                    recipe_id=recipe.id,
                    version=recipe.version,
                    body=body,
                    status="Draft",
                    created_at=self._ts(),
                )
            )
            self._audit(
                conn,
                user.actor,
                "recipe.submit",
                "master_recipe",
                f"{recipe.id}/v{recipe.version}",
                new={"status": "Draft"},
            )

    def recipe_record(self, recipe_id: str, version: str) -> SignableRecord:
        """The signable form of a recipe version (its full content)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(RecipeRow).where(
                    RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
                )
            ).one_or_none()
        if row is None:
            raise BatchError(f"no master recipe {recipe_id} v{version}")
        return SignableRecord(
            "master_recipe",
            f"{recipe_id}/v{version}",
            json.loads(row.body),
            f"recipe:{recipe_id}/v{version}",
        )

    def sign_recipe(
        self, recipe_id: str, version: str, meaning: str, credentials: Credentials
    ) -> None:
        """Prepared (Performed) by one person, Approved by another: then the recipe is Approved."""
        record = self.recipe_record(recipe_id, version)
        if meaning == Meaning.APPROVED and not any(
            s.meaning == Meaning.PERFORMED for s in self.signatures.signatures_for(record)
        ):
            raise BatchError(
                "a master recipe is approved only after its author signed it (Performed)"
            )
        signature = self.signatures.sign(record, meaning, credentials)
        if meaning == Meaning.APPROVED:
            with self.db.transaction() as conn:
                conn.execute(
                    update(RecipeRow)
                    .where(RecipeRow.recipe_id == recipe_id, RecipeRow.version == version)
                    .values(status="Approved")
                )
                self._audit(
                    conn,
                    Actor(signature.signer_id, signature.printed_name),
                    "recipe.approve",
                    "master_recipe",
                    record.signable_id,
                    old={"status": "Draft"},
                    new={"status": "Approved"},
                )
