"""Fixtures for isa95: MESA's schemas, found as tests/shared_paths.py says (never copied here)."""

from __future__ import annotations

import pytest
from shared_paths import schemas_dir

from isa95.b2mml.documents import B2MML


@pytest.fixture(scope="session")
def b2mml() -> B2MML:
    return B2MML(schemas_dir())
