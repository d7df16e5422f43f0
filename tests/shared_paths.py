"""Where the tests find MESA's schemas and the third-party B2MML cases.

Schemas, in this order: ``GXPMES_B2MML_SCHEMAS``; ``../shared/schemas/b2mml``
beside the project; the per-user install (``gxpmes b2mml schemas install``).
Cases: ``../shared/b2mml-cases``. A test that needs them and finds none is
skipped with one reason saying how to get them — but with ``CI=true`` it
fails: CI must never pass by skipping a check. Mark a module with
``needs_schemas`` / ``needs_cases`` (or use the ``b2mml`` fixture), or call
:func:`schemas_dir` / :func:`cases_dir` in the test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from isa95.b2mml.schema_store import installed_schema_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SCHEMAS = SHARED / "schemas" / "b2mml"  # the ../shared copy only: tests call schemas_dir()
CASES = SHARED / "b2mml-cases"
ENV_VAR = "GXPMES_B2MML_SCHEMAS"
RELEASES = ("V0701", "V0600")

SCHEMAS_MISSING = (
    "MESA's B2MML schemas not found: install them with "
    "`gxpmes b2mml schemas install --from DIR|ZIP|URL`, or set GXPMES_B2MML_SCHEMAS "
    "to the folder holding V0701/ and V0600/"
)
CASES_MISSING = (
    "third-party B2MML cases not found: they are read from ../shared/b2mml-cases beside the project"
)


def _complete(path: Path) -> bool:
    return all((path / release).is_dir() for release in RELEASES)


def find_schemas() -> Path | None:
    """The schema folder the tests use, or None when there is none."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    for candidate in (SCHEMAS, installed_schema_dir()):
        if candidate is not None and _complete(candidate):
            return candidate
    return None


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required with CI=true)")
    pytest.skip(reason)


def schemas_dir() -> Path:
    """MESA's schemas (V0701/ and V0600/); skips the test when absent (fails under CI)."""
    found = find_schemas()
    if found is None:
        _unavailable(SCHEMAS_MISSING)
    if not _complete(found):
        # Named explicitly but wrong: a configuration error, never a skip.
        pytest.fail(f"{ENV_VAR}={found} does not hold both V0701/ and V0600/")
    return found


def check_needs(item: pytest.Item) -> None:
    """Skip (or, in CI, fail) an item that needs what is absent, before its fixtures run.

    Items needing the schemas: marked ``needs_schemas`` or using the ``b2mml``
    fixture; the cases: marked ``needs_cases``. Raised here rather than in a
    fixture, every skip has this module as its location, so ``-ra`` folds
    them into one line per reason.
    """
    if item.get_closest_marker("needs_schemas") or "b2mml" in getattr(item, "fixturenames", ()):
        schemas_dir()
    if item.get_closest_marker("needs_cases"):
        cases_dir()


def cases_dir() -> Path:
    """The third-party B2MML cases; skips the test when absent (fails under CI)."""
    if not CASES.is_dir():
        _unavailable(CASES_MISSING)
    return CASES
