"""A fresh plant per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ebr_support import Plant, make_plant


@pytest.fixture
def plant(db_url: str) -> Iterator[Plant]:
    installation = make_plant(db_url)
    yield installation
    installation.db.close()
