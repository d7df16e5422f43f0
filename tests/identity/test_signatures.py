"""E-signatures: manifestation, record binding, two components, SoD (11.50, 11.70, 11.200)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_support import PASSWORDS
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gxpmes.errors import (
    AuthenticationError,
    PermissionDenied,
    RecordChangedError,
    SeparationOfDutiesError,
    SessionExpired,
    SignatureError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord, content_hash

STEP = SignableRecord(
    "batch_step", "B-001/GRAN/CHARGE", {"material": "API-1", "qty": "5.000 kg"}, "B-001"
)


def creds(user: str, session=None) -> Credentials:  # type: ignore[no-untyped-def]
    return Credentials(user, PASSWORDS[user], session)


def test_sign_and_verify_with_manifestation(plant) -> None:  # type: ignore[no-untyped-def]
    session = plant.identity.login("op1", PASSWORDS["op1"], client_tz="Europe/Berlin")
    signature = plant.signatures.sign(
        STEP, Meaning.PERFORMED, creds("op1", session), reason="charged"
    )
    assert signature.printed_name == "Olga Operator" and signature.meaning == "Performed"
    assert signature.manifestation == (
        "Olga Operator (op1) — Performed — 2026-03-02 09:00:00 Europe/Berlin (UTC+01:00)"
    )
    assert signature.content_hash == content_hash(STEP)
    for key in ("printed_name", "signed_at", "meaning", "time_zone", "content_hash"):
        assert f'"{key}"' in signature.manifest  # the manifestation is inside the signed data
    plant.signatures.verify_signature(signature, STEP)
    assert plant.signatures.signatures_for(STEP) == [signature]
    entry = plant.db.ledger.entries_for("batch_step", STEP.signable_id)[-1]
    assert entry.event.action == "signature.sign" and entry.event.reason == "charged"


def test_signature_bound_to_content_and_record(plant) -> None:  # type: ignore[no-untyped-def]
    signature = plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1"))
    changed = SignableRecord(
        STEP.signable_type, STEP.signable_id, {**STEP.content, "qty": "5.001 kg"}, "B-001"
    )
    with pytest.raises(SignatureError, match="changed after it was signed"):
        plant.signatures.verify_signature(signature, changed)
    other = SignableRecord("batch_step", "B-002/GRAN/CHARGE", STEP.content, "B-002")
    with pytest.raises(SignatureError, match="belongs to"):
        plant.signatures.verify_signature(signature, other)  # copied to another record


def test_edited_signature_row_fails_verification(plant) -> None:  # type: ignore[no-untyped-def]
    signature = plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1"))
    with pytest.raises(DBAPIError, match="append-only"), plant.db.engine.begin() as conn:
        conn.execute(text("UPDATE gx_signature SET meaning = 'Verified'"))
    forged = signature.manifest.replace("Olga Operator", "Otto Operator")
    tampered = type(signature)(**{**signature.__dict__, "manifest": forged})
    with pytest.raises(SignatureError, match="manifest was altered"):
        plant.signatures.verify_signature(tampered, STEP)
    bad_user_sig = type(signature)(**{**signature.__dict__, "system_key_id": "0" * 16})
    with pytest.raises(SignatureError, match="unknown system key"):
        plant.signatures.verify_signature(bad_user_sig, STEP)


def test_wrong_password_locked_and_session_rules(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthenticationError):
        plant.signatures.sign(STEP, Meaning.PERFORMED, Credentials("op1", "Wrong-Password-1!"))
    session = plant.identity.login("op1", PASSWORDS["op1"])
    with pytest.raises(AuthenticationError, match="this session's user"):
        plant.signatures.sign(
            STEP, Meaning.PERFORMED, Credentials("op2", PASSWORDS["op2"], session)
        )
    # A later signing in the same continuous session still needs the password.
    plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1", session))
    step2 = SignableRecord("batch_step", "B-001/GRAN/MIX", {"rpm": "120"}, "B-001")
    with pytest.raises(AuthenticationError):
        plant.signatures.sign(
            step2, Meaning.PERFORMED, Credentials("op1", "forgot-it-123A", session)
        )
    plant.clock.advance(minutes=20)
    with pytest.raises(SessionExpired):
        plant.signatures.sign(step2, Meaning.PERFORMED, creds("op1", session))
    assert plant.signatures.signatures_for(step2) == []
    refusals = [
        e
        for e in plant.db.ledger.entries_for("batch_step", step2.signable_id)
        if e.event.action == "signature.refused"
    ]
    assert [r.event.new["refusal"] for r in refusals] == ["AuthenticationError", "SessionExpired"]


def test_dual_signature_and_separation_of_duties(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError, match="no Performed signature"):
        plant.signatures.sign(STEP, Meaning.VERIFIED, creds("op2"))
    plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1"))
    with pytest.raises(SeparationOfDutiesError, match="cannot also sign Verified"):
        plant.signatures.sign(STEP, Meaning.VERIFIED, creds("op1"))
    plant.signatures.sign(STEP, Meaning.VERIFIED, creds("op2"))
    with pytest.raises(SignatureError, match="already signed"):
        plant.signatures.sign(STEP, Meaning.VERIFIED, creds("op2"))
    batch = SignableRecord("batch", "B-001", {"status": "Executed"}, "B-001")
    # An operator who performed in the batch cannot release it — even if later made QA.
    plant.accounts.set_roles(
        plant.admin_creds(), "op1", ["Operator", "QA Approver"], reason="promotion"
    )
    with pytest.raises(SeparationOfDutiesError, match="scope 'B-001'"):
        plant.signatures.sign(batch, Meaning.RELEASED, creds("op1"))
    signature = plant.signatures.sign(batch, Meaning.RELEASED, creds("qa2"))
    results = plant.signatures.verify_scope(
        "B-001", {("batch_step", STEP.signable_id): STEP, ("batch", "B-001"): batch}
    )
    assert [(s.meaning, problem) for s, problem in results] == [
        ("Performed", None),
        ("Verified", None),
        ("Released", None),
    ]
    assert signature.signer_id == "qa2"


def test_roles_limit_meanings_admin_cannot_sign_as_qa(plant) -> None:  # type: ignore[no-untyped-def]
    batch = SignableRecord("batch", "B-009", {"status": "Executed"}, "B-009")
    with pytest.raises(PermissionDenied, match="may not sign as 'Released'"):
        plant.signatures.sign(batch, Meaning.RELEASED, creds("admin"))
    with pytest.raises(PermissionDenied):
        plant.signatures.sign(batch, Meaning.RELEASED, creds("op2"))
    with pytest.raises(SignatureError, match="unknown signature meaning"):
        plant.signatures.sign(batch, "Blessed", creds("qa2"))


def test_record_changed_since_shown(plant) -> None:  # type: ignore[no-untyped-def]
    shown = content_hash(STEP)
    changed = SignableRecord(
        STEP.signable_type, STEP.signable_id, {**STEP.content, "qty": "6"}, "B-001"
    )
    with pytest.raises(RecordChangedError, match="changed after it was shown"):
        plant.signatures.sign(changed, Meaning.PERFORMED, creds("op1"), expected_hash=shown)
    plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1"), expected_hash=shown)


def test_digital_signature_mode_with_user_key(plant) -> None:  # type: ignore[no-untyped-def]
    public = plant.signatures.enroll_user_key("op1", PASSWORDS["op1"])
    signature = plant.signatures.sign(STEP, Meaning.PERFORMED, creds("op1"), digital=True)
    assert signature.user_public_key == public and signature.user_signature
    plant.signatures.verify_signature(signature, STEP)
    wrong = type(signature)(
        **{**signature.__dict__, "user_signature": base64.b64decode(base64.b64encode(bytes(64)))}
    )
    with pytest.raises(SignatureError, match="signer's own signature"):
        plant.signatures.verify_signature(wrong, STEP)
    with pytest.raises(SignatureError, match="no personal signing key"):
        plant.signatures.sign(STEP, Meaning.VERIFIED, creds("op2"), digital=True)


json_content = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(original=json_content, altered=json_content)
def test_signature_never_verifies_against_altered_content(plant, original, altered) -> None:  # type: ignore[no-untyped-def]
    from audit.canonical import canonicalize

    record = SignableRecord("obs", f"R-{abs(hash(repr(original))) % 10**9}", original, "")
    existing = plant.signatures.signatures_for(record)
    signature = (
        existing[0] if existing else plant.signatures.sign(record, Meaning.PERFORMED, creds("op1"))
    )
    plant.signatures.verify_signature(signature, record)
    other = SignableRecord("obs", record.signable_id, altered, "")
    if canonicalize(altered) == canonicalize(original):
        plant.signatures.verify_signature(signature, other)
    else:
        with pytest.raises(SignatureError):
            plant.signatures.verify_signature(signature, other)
