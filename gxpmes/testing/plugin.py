"""pytest plugin (entry point ``pytest11``): fixtures, the step library and the traceability matrix.

Options:

* ``--gxp-db URL`` — run scenarios on PostgreSQL (a fresh database per
  scenario is created on that server and dropped afterwards); default: a
  fresh SQLite file per scenario.
* ``--gxp-trace DIR`` — write ``traceability.json`` and ``traceability.html``:
  requirement → scenarios → result, with the environment, the date and a
  SHA-256 of the results. A requirement without a passing scenario is flagged.
* ``--gxp-requirements FILE`` — one requirement id per line (``#`` comments):
  listed requirements that no scenario covers are flagged too.

Scenarios declare what they prove with tags: ``@req:11.10e``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import uuid
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gxpmes.testing.plant import TestPlant, build_plant

REQ_PREFIX = "req:"

# The step library is a plugin of its own, so its steps serve every suite.
pytest_plugins = (
    "gxpmes.testing.steps",
    "gxpmes.testing.steps_controls",
    "gxpmes.testing.steps_identity",
    "gxpmes.testing.steps_procedure",
    "gxpmes.testing.steps_trail",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gxpmes", "GxP validation (gxpmes.testing)")
    group.addoption("--gxp-db", default=None, help="PostgreSQL URL for scenarios (default: SQLite)")
    group.addoption("--gxp-trace", default=None, help="folder for the traceability matrix")
    group.addoption(
        "--gxp-requirements", default=None, help="file listing expected requirement ids"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(id): the requirement a scenario proves")
    config.addinivalue_line("markers", "gxp_tag(name): another Gherkin tag of the scenario")
    config.stash[_RESULTS] = {}


# tryfirst: pytest-bdd's own implementation does ``getattr(pytest.mark, tag)``,
# which fails under --strict-markers for ``req:X`` (and a ``req:X`` marker cannot
# be registered: pytest cuts ini marker lines at the first ":"). Plugins' hooks
# run in reverse registration order, and that order depends on how the
# environment lists its entry points, so only tryfirst makes ours win always.
@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Callable[..., object]) -> bool:
    """``@req:X`` → ``requirement("X")``; any other tag → ``gxp_tag(tag)`` (strict-marker safe).

    Runs before pytest-bdd's default implementation whatever the plugin order.
    """
    if tag.startswith(REQ_PREFIX):
        pytest.mark.requirement(tag[len(REQ_PREFIX) :])(function)
    else:
        pytest.mark.gxp_tag(tag)(function)
    return True


_RESULTS = pytest.StashKey[dict[str, dict[str, Any]]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    requirements = [m.args[0] for m in item.iter_markers("requirement")]
    if requirements:
        results = item.config.stash[_RESULTS]
        entry = results.setdefault(
            item.nodeid,
            {
                "nodeid": item.nodeid,
                "scenario": _scenario_name(item),
                "requirements": sorted(set(requirements)),
                "result": "passed",
            },
        )
        if report.skipped and entry["result"] == "passed":
            entry["result"] = "skipped"
        elif report.failed:
            entry["result"] = "failed"
    return report


def _scenario_name(item: pytest.Item) -> str:
    # pytest-bdd documents each scenario function as "<feature>: <scenario>".
    function = getattr(item, "function", None)
    return str(getattr(function, "__doc__", None) or item.name)


def _environment(config: pytest.Config) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    url = config.getoption("--gxp-db")
    database = "sqlite " + __import__("sqlite3").sqlite_version
    if url:
        database = "postgresql (" + url.split("@")[-1] + ")"
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(url)
            with engine.connect() as conn:
                database = str(conn.execute(text("SELECT version()")).scalar_one())
            engine.dispose()
        except Exception as exc:  # the matrix still records what was attempted
            database += f" (version unavailable: {type(exc).__name__})"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gxpmes": ver("gxpmes"),
        "pytest": ver("pytest"),
        "pytest-bdd": ver("pytest-bdd"),
        "database": database,
    }


def build_matrix(
    results: list[dict[str, Any]], expected: list[str], environment: dict[str, str]
) -> dict[str, Any]:
    """The traceability matrix as a JSON-able dict (``results`` as collected by the plugin)."""
    requirements: dict[str, list[dict[str, Any]]] = {req: [] for req in expected}
    for result in sorted(results, key=lambda r: r["nodeid"]):
        for req in result["requirements"]:
            requirements.setdefault(req, []).append(
                {
                    "scenario": result["scenario"],
                    "nodeid": result["nodeid"],
                    "result": result["result"],
                }
            )
    rows = []
    for req in sorted(requirements, key=_natural):
        scenarios = requirements[req]
        passed = sum(s["result"] == "passed" for s in scenarios)
        status = (
            "covered"
            if passed and passed == len(scenarios)
            else (
                "not covered"
                if not scenarios
                else "FLAGGED: no passing scenario"
                if not passed
                else "FLAGGED: a scenario failed"
            )
        )
        rows.append(
            {"requirement": req, "status": status, "passed": passed, "scenarios": scenarios}
        )
    digest = hashlib.sha256(
        json.dumps(sorted(results, key=lambda r: r["nodeid"]), sort_keys=True).encode()
    ).hexdigest()
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "run_id": str(uuid.uuid4()),
        "environment": environment,
        "results_sha256": digest,
        "summary": {
            "requirements": len(rows),
            "covered": sum(r["status"] == "covered" for r in rows),
            "flagged": [r["requirement"] for r in rows if r["status"] != "covered"],
            "scenarios": len(results),
        },
        "requirements": rows,
    }


def _natural(text: str) -> list[Any]:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


_TEMPLATE = Path(__file__).with_name("traceability.html.j2")


def write_matrix(matrix: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``traceability.json`` and ``traceability.html`` into ``directory``."""
    from jinja2 import Environment, select_autoescape

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "traceability.json"
    json_path.write_text(json.dumps(matrix, indent=2), encoding="utf-8")
    template = _TEMPLATE.read_text(encoding="utf-8")
    environment = Environment(autoescape=select_autoescape(default=True))
    html = environment.from_string(template).render(m=matrix)
    html_path = directory / "traceability.html"
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    trace_dir = config.getoption("--gxp-trace")
    if not trace_dir:
        return
    expected: list[str] = []
    listing = config.getoption("--gxp-requirements")
    if listing:
        for line in Path(listing).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                expected.append(line)
    matrix = build_matrix(list(config.stash[_RESULTS].values()), expected, _environment(config))
    json_path, html_path = write_matrix(matrix, Path(trace_dir))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        flagged = matrix["summary"]["flagged"]
        reporter.write_line(
            f"gxpmes traceability matrix: {json_path} and {html_path} "
            f"({matrix['summary']['covered']}/{matrix['summary']['requirements']} covered"
            + (f"; flagged: {', '.join(flagged)}" if flagged else "")
            + ")"
        )


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def gxp_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per scenario: SQLite file, or a new database on ``--gxp-db``'s server."""
    url = request.config.getoption("--gxp-db")
    if not url:
        yield str(tmp_path / "gxp.db")
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"gxp_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def gxp_plant(gxp_db_url: str) -> Iterator[TestPlant]:
    """Users of every role, clean calibrated equipment, released lots, an approved recipe."""
    plant = build_plant(gxp_db_url)
    yield plant
    plant.db.close()


@pytest.fixture
def gxp_opcua_server() -> Iterator[Any]:
    """A simulated OPC UA server with tags GRAN01.TT101 and GRAN01.SC101 (``opcua`` extra)."""
    pytest.importorskip("asyncua")
    from gxpmes.testing.simulators import OpcUaSimulator

    simulator = OpcUaSimulator(["GRAN01.TT101", "GRAN01.SC101"])
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def gxp_mqtt_publisher() -> Iterator[Any]:
    """A QoS 1 JSON publisher to the broker at 127.0.0.1:1883 (``mqtt`` extra)."""
    pytest.importorskip("paho.mqtt")
    from gxpmes.testing.simulators import MqttPublisher

    publisher = MqttPublisher()
    yield publisher
    publisher.close()
