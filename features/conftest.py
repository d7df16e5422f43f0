"""The B2MML export scenario needs MESA's schemas, found as tests/shared_paths.py says.

Without them that scenario is skipped with the reason (failed with ``CI=true``);
every other scenario runs regardless.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shared_paths import ENV_VAR, find_schemas, schemas_dir

_found = find_schemas()
if _found is not None:
    os.environ.setdefault(ENV_VAR, str(_found))


def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    if any("as B2MML" in step.name for step in scenario.steps):
        schemas_dir()
