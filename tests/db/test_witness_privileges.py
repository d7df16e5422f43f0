"""A witness in a site's PostgreSQL database, run as the least-privilege application role.

The owner creates the witness tables (``gxpmes witness init``) before granting
(``gxpmes db grant``); the application role then witnesses, and cannot roll the
witness back: UPDATE, DELETE, TRUNCATE and dropping the guards are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from witness_support import Site, append

from audit.witness import Cosigner, Witness, WitnessStore, format_add_checkpoint
from gxpmes.cli import main
from gxpmes.privileges import app_role_problems, grant_app_role

if TYPE_CHECKING:
    from conftest import Roles

REFUSED = re.compile(r"permission denied|must be owner|append-only")


@pytest.fixture(scope="module")
def granted(roles: Roles) -> Iterator[Roles]:
    assert main(["db", "upgrade", "--db", roles.owner_url]) == 0
    assert main(["witness", "init", "--db", roles.owner_url]) == 0
    owner = create_engine(roles.owner_url)
    try:
        grant_app_role(owner, roles.app)
        assert app_role_problems(owner, roles.app) == []
    finally:
        owner.dispose()
    yield roles


def test_the_app_role_witnesses_and_cannot_roll_the_witness_back(
    granted: Roles, tmp_path: Path
) -> None:
    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=3)
    store = WitnessStore.open(granted.app_url)  # tables exist: nothing is created
    try:
        witness = Witness(
            Cosigner("w", Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)),
            store,
            [site.known_log()],
        )
        assert witness.add_checkpoint(format_add_checkpoint(0, [], site.checkpoint())).status == 200
        append(site.ledger, 2)
        request = format_add_checkpoint(3, site.prove(3), site.checkpoint())
        assert witness.add_checkpoint(request).status == 200
        for sql in (
            "UPDATE witness_checkpoint SET tree_size = 0",
            "DELETE FROM witness_checkpoint",
            "TRUNCATE witness_checkpoint",
            "DROP TRIGGER witness_checkpoint_append_only ON witness_checkpoint",
            "ALTER TABLE witness_checkpoint DISABLE TRIGGER ALL",
            "DROP TABLE witness_evidence",
        ):
            with pytest.raises(DBAPIError) as refused, store.engine.begin() as conn:
                conn.execute(text(sql))
            assert REFUSED.search(str(refused.value.orig)), sql
        state = store.get(site.ledger.origin)
        assert state is not None and state.tree_size == 5 and witness.state_problem(state) is None
    finally:
        store.close()
