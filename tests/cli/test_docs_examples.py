"""Code shown in the docs runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gxpmes.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"
README = DOCS.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_stdlib_only_reverification_snippet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import Actor, AuditEvent, Ledger

    ledger = Ledger.open(tmp_path / "t.db")
    ledger.append_many(
        [AuditEvent(Actor("a", "A"), "c", "x", str(i), new={"i": i}) for i in range(30)]
    )
    ledger.close()
    assert (
        main(
            [
                "audit",
                "export",
                "--db",
                str(tmp_path / "t.db"),
                "--jsonl",
                "--out",
                str(tmp_path / "trail.jsonl"),
            ]
        )
        == 0
    )
    blocks = python_blocks((DOCS / "audit.md").read_text())
    snippet = next(b for b in blocks if "trail.jsonl" in b)
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    snippet = python_blocks(README.read_text())[0]
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("INTACT: 1 entries")


def test_b2mml_guide_example_runs(tmp_path: Path) -> None:
    from shared_paths import schemas_dir

    snippet = python_blocks((DOCS / "b2mml.md").read_text())[0].replace(
        '"/opt/mesa/b2mml"', repr(str(schemas_dir()))
    )
    snippet += "\nassert document.model.lots[0].id == 'L-1' and document.verb == 'Sync'\n"
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_part11_mapping_names_tests_that_exist() -> None:
    tests_root = Path(__file__).resolve().parents[1]
    text_ = (DOCS / "part11.md").read_text()
    current_file = None
    checked = 0
    for match in re.finditer(r"`((?:[\w/]+\.py)?)(?:::(\w+))?`", text_):
        path, name = match.group(1), match.group(2)
        if path:
            current_file = tests_root / path
            assert current_file.exists(), f"{path} named in part11.md does not exist"
        if name:
            assert current_file is not None
            assert f"def {name}(" in current_file.read_text(), (
                f"{current_file.name}::{name} missing"
            )
            checked += 1
    assert checked >= 25


def test_ebr_guide_example_runs(tmp_path: Path) -> None:
    snippet = python_blocks((DOCS / "ebr.md").read_text())[0]
    snippet = snippet.replace(
        "identity = IdentityService(db)",
        "from gxpmes.identity import PasswordHasher\n"
        "identity = IdentityService(db, hasher=PasswordHasher(log2_n=10))",
    )
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
