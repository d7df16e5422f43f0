"""pytest plugin for ``test_controls_removed.py``'s subprocesses (not collected as tests).

``--gxp-control NAME`` selects a row of :mod:`validation.controls`: only its
proof runs; with ``--gxp-remove`` the control is taken away first (before any
test module is imported). ``--gxp-outcomes FILE`` writes how many of the
selected tests passed and failed, so the caller never has to parse output.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from validation.controls import Control, Scenario, by_name

_KEY = pytest.StashKey[dict[str, Any]]()
_STATE: list[dict[str, Any]] = []  # this process's run (pytest_runtest_logreport has no config)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gxp-controls", "remove a control, run its proof")
    group.addoption("--gxp-control", default=None, help="name of a row of validation.controls")
    group.addoption("--gxp-remove", action="store_true", help="take the control away first")
    group.addoption("--gxp-outcomes", default=None, help="write passed/failed counts here")


def resolve(target: str) -> tuple[Any, str, Any]:
    """``(owner, attribute name, current value)`` of ``module:Attr.path``."""
    module_name, _, path = target.partition(":")
    if not path:
        raise pytest.UsageError(f"control target {target!r} lacks ':attribute'")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    if not hasattr(owner, name):
        raise pytest.UsageError(f"control target {target!r}: {name!r} not found")
    # The raw attribute (a function, not a bound method; a staticmethod as declared).
    value = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ else None
    return owner, name, value if value is not None else getattr(owner, name)


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--gxp-control")
    if name is None:
        return
    control = by_name(name)
    state: dict[str, Any] = {"control": control, "passed": 0, "failed": 0, "selected": 0}
    config.stash[_KEY] = state
    _STATE.append(state)
    if config.getoption("--gxp-remove"):
        owner, attr, original = resolve(control.target)
        setattr(owner, attr, control.remove(original))


def _selected(control: Control, item: pytest.Item) -> bool:
    proof = control.proof
    if isinstance(proof, Scenario):
        doc = str(getattr(getattr(item, "function", None), "__doc__", None) or "")
        return doc.endswith(f": {proof.name}")
    return item.nodeid == proof or item.nodeid.startswith(proof + "[")


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    state = config.stash.get(_KEY, None)
    if state is None:
        return
    keep = [item for item in items if _selected(state["control"], item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
    state["selected"] = len(keep)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _STATE:
        return
    # A failure in setup or teardown fails the proof as much as one in the call.
    if report.failed:
        _STATE[-1]["failed"] += 1
    elif report.when == "call" and report.passed:
        _STATE[-1]["passed"] += 1


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    out = config.getoption("--gxp-outcomes")
    if state is None or out is None:
        return
    Path(out).write_text(
        json.dumps({k: state[k] for k in ("selected", "passed", "failed")}), encoding="utf-8"
    )
