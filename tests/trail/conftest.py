"""A plant per test with one batch executed, a deviation on it, and QA's review done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ebr_support import Plant, make_plant

from gxpmes.testing import steps

B = "B-TR1"


@pytest.fixture
def plant(db_url: str) -> Iterator[Plant]:
    installation = make_plant(db_url)
    steps.batch_executed(installation, B)
    installation.state["deviation"] = installation.engine.open_deviation(
        installation.sessions["op1"], B, "temperature excursion 76 °C for 2 s"
    )
    installation.engine.investigate_deviation(
        installation.sessions["qa1"],
        installation.state["deviation"],
        investigation="PID overshoot",
        impact="none",
    )
    installation.engine.complete_review(B, installation.creds("qa1"))
    yield installation
    installation.db.close()
