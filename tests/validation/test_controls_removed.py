"""Remove each control of ``controls.py``: its proof must fail; in place, it must pass.

The cheapest mutation test there is (STYLE.md §6). Each proof runs in a
pytest subprocess so a removed control never leaks into another test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from validation.controls import CONTROLS, Control, Scenario

ROOT = Path(__file__).resolve().parents[2]


def _run(control: Control, tmp_path: Path, *, remove: bool) -> dict[str, int]:
    outcomes = tmp_path / ("removed.json" if remove else "in_place.json")
    target = (
        "features/test_features.py"
        if isinstance(control.proof, Scenario)
        else control.proof.split("::")[0]
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    command = [
        sys.executable,
        "-m",
        "pytest",
        target,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "validation.remove_control",
        "--gxp-control",
        control.name,
        "--gxp-outcomes",
        str(outcomes),
        *(["--gxp-remove"] if remove else []),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert outcomes.exists(), f"{control.name}: pytest did not run\n{done.stdout}\n{done.stderr}"
    result: dict[str, int] = json.loads(outcomes.read_text(encoding="utf-8"))
    result["exit"] = done.returncode
    result["output"] = done.stdout[-3000:]  # type: ignore[assignment]
    return result


@pytest.mark.parametrize("control", CONTROLS, ids=[c.name for c in CONTROLS])
def test_removing_the_control_fails_its_proof(control: Control, tmp_path: Path) -> None:
    in_place = _run(control, tmp_path, remove=False)
    assert in_place["selected"] >= 1, f"no test selected for {control.proof!r}"
    assert in_place["failed"] == 0 and in_place["passed"] == in_place["selected"], in_place[
        "output"
    ]
    removed = _run(control, tmp_path, remove=True)
    assert removed["selected"] == in_place["selected"]
    assert removed["failed"] >= 1, (
        f"{control.name}: its proof still passes with {control.target} removed\n"
        + str(removed["output"])
    )


def test_every_row_names_an_existing_proof() -> None:
    names = [c.name for c in CONTROLS]
    assert len(names) == len(set(names)), "control names must be unique"
    for control in CONTROLS:
        if isinstance(control.proof, Scenario):
            text = (ROOT / "features" / control.proof.feature).read_text(encoding="utf-8")
            pattern = rf"^\s*Scenario(?: Outline)?:\s*{re.escape(control.proof.name)}\s*$"
            assert re.search(pattern, text, re.M), control.proof
        else:
            path, _, name = control.proof.partition("::")
            assert re.search(
                rf"^def {re.escape(name.split('[')[0])}\(",
                (ROOT / path).read_text(encoding="utf-8"),
                re.M,
            ), control.proof


def test_every_control_has_its_row_in_part11() -> None:
    """docs/part11.md names every control of the table, so the clause map and the
    removed-control evidence cannot drift apart."""
    text = " ".join((ROOT / "docs" / "part11.md").read_text(encoding="utf-8").split())
    missing = [c.name for c in CONTROLS if c.name not in text]
    assert missing == [], f"docs/part11.md lacks the control(s): {missing}"
