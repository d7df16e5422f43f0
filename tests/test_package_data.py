"""Every file of the three import packages is shipped in the wheel.

Reads ``pyproject.toml`` the way setuptools does (``packages.find`` with
namespace packages, ``package-data`` globs relative to each package) and checks
that each tracked file under ``audit/``, ``isa95/`` and ``gxpmes/`` is either a
module of a discovered package or matched by a package-data pattern. A file
missing here is a ``FileNotFoundError`` for every user of an installed wheel
(the batch record template once was). ``.ci/run`` checks the built wheel too.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("audit", "isa95", "gxpmes")


def _source_files() -> set[str]:
    """Tracked files (git), or every file but caches when this is not a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *TOP_LEVEL],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        found = set()
        for top in TOP_LEVEL:
            for path in (ROOT / top).rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    found.add(path.relative_to(ROOT).as_posix())
        return found
    return {name for name in listed.decode().split("\0") if name}


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        config: dict[str, Any] = tomllib.load(handle)["tool"]["setuptools"]
    return config


def _packages(config: dict[str, Any]) -> dict[str, Path]:
    """Package name → directory, as ``packages.find`` discovers them."""
    find = config["packages"]["find"]
    namespaces = find.get("namespaces", True)
    packages = {}
    for top in TOP_LEVEL:
        for directory in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if "__pycache__" in directory.parts:
                continue
            name = ".".join(directory.relative_to(ROOT).parts)
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in find["include"]):
                continue
            if namespaces or (directory / "__init__.py").is_file():
                packages[name] = directory
    return packages


def _shipped(config: dict[str, Any], packages: dict[str, Path]) -> set[str]:
    shipped = set()
    for directory in packages.values():
        shipped |= {p.relative_to(ROOT).as_posix() for p in directory.glob("*.py")}
    for key, patterns in config.get("package-data", {}).items():
        targets = packages.values() if key in ("*", "") else [packages[key]]
        for directory in targets:
            for pattern in patterns:
                for match in glob.glob(os.path.join(directory, pattern), recursive=True):
                    if Path(match).is_file():
                        shipped.add(Path(match).relative_to(ROOT).as_posix())
    return shipped


def test_every_package_file_is_in_the_wheel() -> None:
    config = _config()
    packages = _packages(config)
    source = _source_files()
    assert any(name.endswith(".j2") for name in source)  # the check sees data files at all
    missing = sorted(source - _shipped(config, packages))
    assert not missing, f"not matched by [tool.setuptools.package-data]: {missing}"


def test_the_check_notices_a_missing_pattern() -> None:
    config = _config()
    config["package-data"] = {
        key: [p for p in patterns if p != "*.j2"]
        for key, patterns in config.get("package-data", {}).items()
    }
    missing = _source_files() - _shipped(config, _packages(config))
    assert "gxpmes/reports/batch_record.html.j2" in missing
