"""Fixtures for the B2MML domain-mapping tests: MESA's schemas, as shared_paths finds them."""

from __future__ import annotations

import pytest
from shared_paths import schemas_dir

from isa95.b2mml.documents import B2MML


@pytest.fixture(scope="session")
def b2mml() -> B2MML:
    return B2MML(schemas_dir())
