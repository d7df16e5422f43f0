"""Where ../shared (beside the project) is: MESA's schemas and third-party B2MML cases."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCHEMAS = SHARED / "schemas" / "b2mml"
CASES = SHARED / "b2mml-cases"
