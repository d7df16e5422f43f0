"""Database URLs are printed without their password, however the password is written."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from gxpmes.dbopen import display_url

PASSWORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
    min_size=6,
    max_size=30,
)


@given(PASSWORDS, st.booleans())
def test_password_never_printed(password: str, encoded: bool) -> None:
    written = quote(password, safe="") if encoded else password
    url = f"postgresql+psycopg://gxuser:{written}@dbhost:5432/gxdb"
    rest = "postgresql+psycopg://gxuser:***@dbhost:5432/gxdb"
    assume(written not in rest and password not in rest)
    shown = display_url(url)
    assert written not in shown and password not in shown
    assert "***" in shown and "gxuser" in shown


def test_paths_and_urls_without_password_are_unchanged() -> None:
    for text in ("nope.db", "sqlite:///data/x.db", "postgresql+psycopg://gx@h:5432/db"):
        assert display_url(text) == text
