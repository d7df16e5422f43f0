"""User ids and printed names identify one person (21 CFR 11.100(a), 11.50)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gxpmes.errors import UserError
from gxpmes.identity.names import id_skeleton, normalise_printed_name, normalise_user_id

ISSUED = "Issued-For-Test-26!"


def create(plant, user_id: str, name: str = "Someone New"):  # type: ignore[no-untyped-def]
    return plant.accounts.create_user(plant.admin_creds(), user_id, name, ["Operator"], ISSUED)


def test_ids_are_stored_nfkc(plant) -> None:  # type: ignore[no-untyped-def]
    user = create(plant, "ｏｐ７")  # full-width letters and digit
    assert user.user_id == "op7"
    assert plant.identity.user("ｏｐ７").user_id == "op7"


@pytest.mark.parametrize(
    "clash",
    [
        "QA2",  # case
        "Qa2",
        "qа2",  # Cyrillic а among Latin letters: mixed scripts
        "ԛа2",  # all Cyrillic, looks like qa2
        "ｑａ２",  # full width
    ],
)
def test_ids_that_read_as_an_existing_one_are_refused(plant, clash: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match=r"exists or existed|mixes scripts"):
        create(plant, clash)
    assert [u for u in ("QA2", "Qa2") if _exists(plant, u)] == []


def _exists(plant, user_id: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(plant.identity.user(user_id).user_id == user_id)
    except UserError:
        return False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("pаul", "mixes scripts"),  # Latin with a Cyrillic а
        ("op 9", "only letters"),
        (" op9", "surrounding spaces"),
        ("1234", "at least one letter"),
        ("x" * 65, "1 to 64"),
        ("op\u200b9", "only letters"),  # zero-width space
    ],
)
def test_malformed_ids_are_refused(plant, raw: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match=message):
        create(plant, raw)


def test_single_script_ids_of_other_scripts_are_accepted(plant) -> None:  # type: ignore[no-untyped-def]
    assert create(plant, "иван", "Иван Петров").user_id == "иван"
    assert create(plant, "müller.k", "Karl Müller").user_id == "müller.k"


def test_printed_names_are_unique(plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="already used by 'op1'"):
        create(plant, "op7", "olga  OPERATOR")  # case and spacing do not make another name
    with pytest.raises(UserError, match="printed name"):
        create(plant, "op7", "   ")
    assert create(plant, "op7", "Olga Operator-Berg").printed_name == "Olga Operator-Berg"


@given(st.text(min_size=1, max_size=20))
def test_normalised_ids_are_fixed_points_and_single_script(raw: str) -> None:
    try:
        user_id = normalise_user_id(raw)
    except UserError:
        return
    assert normalise_user_id(user_id) == user_id == unicodedata.normalize("NFKC", user_id)
    scripts = {unicodedata.name(c).split(" ")[0] for c in user_id if c.isalpha()}
    assert len(scripts) == 1
    assert id_skeleton(user_id) == id_skeleton(user_id.casefold())  # case never counts


@given(st.text(max_size=30))
def test_printed_names_normalise_or_refuse(raw: str) -> None:
    try:
        name = normalise_printed_name(raw)
    except UserError:
        return
    assert name == name.strip() and "  " not in name and normalise_printed_name(name) == name
