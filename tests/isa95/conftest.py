"""Fixtures for isa95: MESA's schemas from ../shared (never copied into the project)."""

from __future__ import annotations

import pytest
from shared_paths import SCHEMAS

from isa95.b2mml.documents import B2MML


@pytest.fixture(scope="session")
def b2mml() -> B2MML:
    if not SCHEMAS.is_dir():
        pytest.fail(f"MESA B2MML schemas are expected at {SCHEMAS} (../shared beside the project)")
    return B2MML(SCHEMAS)
