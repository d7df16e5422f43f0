"""A record the signature table cannot name is refused before anything is written.

``gx_signature`` keeps the record type (128 characters), id (512) and scope
(512), and the meaning (64): PostgreSQL would refuse longer text with a raw
``DataError``, SQLite would keep it. Both refuse it up front instead.
"""

from __future__ import annotations

import pytest
from identity_support import PASSWORDS
from sqlalchemy import func, select

from audit.keys import generate_private_key
from gxpmes.errors import ConfigurationError, SignatureError
from gxpmes.identity import Credentials, Meaning, SignableRecord, SignatureService
from gxpmes.identity.schema import SignatureRow


def _signatures(plant) -> int:  # type: ignore[no-untyped-def]
    with plant.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(SignatureRow)) or 0)


@pytest.mark.parametrize(
    ("field", "limit"), [("record type", 128), ("record id", 512), ("scope", 512)]
)
def test_a_record_the_table_cannot_name_is_refused_unwritten(plant, field: str, limit: int) -> None:  # type: ignore[no-untyped-def]
    def record(chars: int) -> SignableRecord:
        parts = {"record type": "batch_step", "record id": "B-001/STEP", "scope": "B-001"}
        parts[field] = "r" * chars
        return SignableRecord(parts["record type"], parts["record id"], {"x": 1}, parts["scope"])

    size, signed = plant.db.ledger.size(), _signatures(plant)
    with pytest.raises(SignatureError, match=f"has {limit + 1} characters; at most {limit}") as e:
        plant.signatures.sign(
            record(limit + 1), Meaning.PERFORMED, Credentials("op1", PASSWORDS["op1"])
        )
    assert field in str(e.value)
    assert plant.db.ledger.size() == size  # not even a refusal entry: nobody tried to sign
    assert _signatures(plant) == signed
    signature = plant.signatures.sign(
        record(limit), Meaning.PERFORMED, Credentials("op1", PASSWORDS["op1"])
    )
    assert len(getattr(signature, field.replace(" ", "_"))) == limit
    assert _signatures(plant) == signed + 1


def test_a_configured_meaning_longer_than_its_column_is_refused(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        ConfigurationError, match=r"signature meaning .* has 65 characters; at most 64"
    ):
        SignatureService(
            plant.identity, generate_private_key(), extra_meanings=frozenset({"m" * 65})
        )
    service = SignatureService(
        plant.identity, generate_private_key(), extra_meanings=frozenset({"m" * 64})
    )
    assert "m" * 64 in service.meanings
