"""A fresh plant with ERP routes per test; B2MML schemas required."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def b2mml() -> Any:
    from shared_paths import schemas_dir

    from isa95.b2mml.documents import B2MML

    return B2MML(schemas_dir())


def _plant(url: str, b2mml: Any) -> Any:
    from erp_support import route_defaults

    from gxpmes.testing.plant import build_plant

    plant = build_plant(url)
    plant.engine.erp_b2mml = b2mml
    route_defaults(plant)
    return plant


@pytest.fixture
def erp_plant(sqlite_url: str, b2mml: Any) -> Iterator[Any]:
    """A plant on SQLite whose release, weighing and completion write ERP documents."""
    plant = _plant(sqlite_url, b2mml)
    yield plant
    plant.db.close()


@pytest.fixture
def erp_plant_any(db_url: str, b2mml: Any) -> Iterator[Any]:
    """The same on SQLite and on PostgreSQL."""
    plant = _plant(db_url, b2mml)
    yield plant
    plant.db.close()
