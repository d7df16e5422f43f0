"""The features use MESA's schemas from ../shared for the B2MML export scenario."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault(
    "GXPMES_B2MML_SCHEMAS",
    str(Path(__file__).resolve().parents[2] / "shared" / "schemas" / "b2mml"),
)
