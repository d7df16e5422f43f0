"""Connector fixtures: a batch in execution with its HEAT phase running, a spool, the broker."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ebr_support import HEAT, Plant, make_plant

from gxpmes.connectors.model import TagBinding, TagMap
from gxpmes.connectors.spool import Spool
from gxpmes.testing.plant import Clock

BATCH = "B-OT-1"


class WallClock(Clock):
    """The plant's clock follows real time: connectors stamp values with the real time,
    and capture refuses values ahead of the server's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Plant]:
    plant = make_plant(str(tmp_path / "mes.db"), clock=WallClock())
    plant.start_batch(BATCH, phases=(HEAT,))
    yield plant
    plant.db.close()


@pytest.fixture
def tags() -> TagMap:
    return TagMap({"GRAN01/TT-101": TagBinding(BATCH, f"{HEAT}/temperature", "Cel")})


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    yield s
    s.close()


@pytest.fixture
def broker() -> tuple[str, int]:
    """The real Mosquitto on 127.0.0.1:1883 (a failure in CI when it is missing)."""
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=2):
            pass
    except OSError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Mosquitto is required in CI but unavailable: {exc}")
        pytest.skip(f"Mosquitto unavailable: {exc}")
    return "127.0.0.1", 1883
