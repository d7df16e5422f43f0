"""The gxpmes.testing plugin as a user's suite sees it: steps, fixtures, traceability matrix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def example_suite(pytester: pytest.Pytester) -> None:
    text = (DOCS / "validation.md").read_text()
    feature = re.search(r"```gherkin\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    test_module = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    pytester.makefile(".feature", release=feature)
    pytester.makepyfile(test_release=test_module)


def test_documented_user_suite_runs_and_writes_the_matrix(pytester: pytest.Pytester) -> None:
    example_suite(pytester)
    pytester.makefile(".txt", requirements="URS-042\nURS-099  # not yet covered\n")
    result = pytester.runpytest(
        "--gxp-trace=evidence", "--gxp-requirements=requirements.txt", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    matrix = json.loads((pytester.path / "evidence" / "traceability.json").read_text())
    rows = {r["requirement"]: r for r in matrix["requirements"]}
    assert rows["URS-042"]["status"] == "covered"
    assert rows["URS-042"]["scenarios"][0]["result"] == "passed"
    assert "open deviation" in rows["URS-042"]["scenarios"][0]["scenario"]
    assert rows["URS-099"]["status"] == "not covered"
    assert matrix["summary"]["flagged"] == ["URS-099"]
    assert len(matrix["results_sha256"]) == 64
    assert {"python", "gxpmes", "database", "pytest-bdd"} <= set(matrix["environment"])
    html = (pytester.path / "evidence" / "traceability.html").read_text()
    assert "URS-042" in html and "not covered" in html and matrix["results_sha256"] in html


# Plugin hooks run in reverse registration order, and entry points register in
# whatever order the environment lists them: force both orders explicitly.
PLUGIN_ORDERS = {
    # gxpmes registered first, pytest-bdd after it: pytest-bdd's tag hook would run first.
    "pytest-bdd last": ["-p", "no:gxpmes", "-p", "gxpmes.testing.plugin"],
    # pytest-bdd registered first, gxpmes (entry point) after it.
    "pytest-bdd first": ["-p", "no:pytest-bdd", "-p", "pytest_bdd.plugin"],
}


@pytest.mark.parametrize("order", sorted(PLUGIN_ORDERS))
def test_requirement_tags_collect_under_strict_markers_in_any_plugin_order(
    pytester: pytest.Pytester, order: str
) -> None:
    example_suite(pytester)
    result = pytester.runpytest(
        "--strict-markers", "--gxp-trace=evidence", "-p", "no:cacheprovider", *PLUGIN_ORDERS[order]
    )
    result.assert_outcomes(passed=1)
    assert "not found in `markers`" not in result.stdout.str()
    matrix = json.loads((pytester.path / "evidence" / "traceability.json").read_text())
    assert [r["requirement"] for r in matrix["requirements"]] == ["URS-042"]
    assert matrix["requirements"][0]["status"] == "covered"


def test_a_failing_scenario_flags_its_requirement(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".feature",
        wrong="""
Feature: A claim that is false
  @req:URS-1
  Scenario: An operator may release
    Given a fresh GxP installation
    And batch "B-1" has been executed and verified
    And batch "B-1" has been reviewed by QA
    When "op1" releases batch "B-1"
    Then the action succeeds
""",
    )
    pytester.makepyfile(test_wrong="from pytest_bdd import scenarios\nscenarios('wrong.feature')\n")
    result = pytester.runpytest("--gxp-trace=out", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    matrix = json.loads((pytester.path / "out" / "traceability.json").read_text())
    assert matrix["requirements"][0]["status"] == "FLAGGED: no passing scenario"
    assert matrix["summary"]["flagged"] == ["URS-1"]


def test_scenarios_run_on_postgresql(pytester: pytest.Pytester, pg_url: str) -> None:
    example_suite(pytester)
    server = pg_url.rsplit("/", 1)[0] + "/test"
    result = pytester.runpytest_subprocess(
        f"--gxp-db={server}", "--gxp-trace=pg", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    matrix = json.loads((pytester.path / "pg" / "traceability.json").read_text())
    assert "PostgreSQL" in matrix["environment"]["database"]
