"""A released batch to report on (SQLite; storage is tested on both databases elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ebr_support import Plant, make_plant


@pytest.fixture
def released(tmp_path: Path) -> Iterator[Plant]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ebr"))
    from test_batch_record import test_full_batch_end_to_end  # the full flow, released at the end

    plant = make_plant(str(tmp_path / "report.db"))
    test_full_batch_end_to_end(plant)
    yield plant
    plant.db.close()
