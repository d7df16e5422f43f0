"""Every code block of README.md and docs/*.md runs as written.

* A ```python block runs as a script (``python -c``) in a fresh temporary
  working directory.
* A shell block (```bash, ```sh, ```shell) runs its ``gxpmes …`` command lines
  (a trailing backslash continues a line), in order, in a fresh temporary
  working directory; each must exit 0. Other lines — making a virtualenv,
  ``pip install``, the test command, server administration — are not run.
* Each run sees ``GXPMES_B2MML_SCHEMAS`` pointing at MESA's schemas when the
  tests find them (``../shared/schemas/b2mml`` beside the project, …; see
  tests/shared_paths.py), ``GXPMES_KEY_PASSPHRASE``, and this interpreter's
  ``gxpmes`` first on ``PATH``.

An HTML comment on the line before a block's fence changes that — keep these
rare:

* ``<!-- setup: COMMAND -->`` runs the shell COMMAND first in the block's
  directory, for the files the text says come from elsewhere (e.g.
  ``gxpmes demo``);
* ``<!-- run-by: tests/PATH.py::test_name -->`` the block needs inputs only a
  test can make; that test runs it (checked here: it exists and reads the
  document);
* ``<!-- not-run: REASON -->`` the block cannot run here (e.g. it needs a
  remote server); REASON says why.

Untagged blocks (synopses, output, diagrams) and data (json, toml, gherkin)
are not code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from shared_paths import find_schemas, schemas_dir

from gxpmes.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SHELLS = ("bash", "sh", "shell")
DEADLINE = 900  # seconds for one block: bounds a hang, never an expected duration
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_DIRECTIVE = re.compile(r"^<!--\s*(setup|run-by|not-run):\s*(.*?)\s*-->$")


@dataclass
class Block:
    """One fenced code block and the directives above it."""

    path: Path
    line: int
    language: str
    code: str
    directives: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with the ``<!-- … -->`` directives just above it."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start())  # index of the fence line
        directives: dict[str, list[str]] = {}
        above = line - 1
        while above >= 0 and (directive := _DIRECTIVE.match(lines[above].strip())):
            directives.setdefault(directive.group(1), []).insert(0, directive.group(2))
            above -= 1
        found.append(Block(path, line + 1, match.group(1), match.group(2), directives))
    return found


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def code_blocks() -> list[Block]:
    return [b for doc in documents() for b in blocks(doc) if b.language in ("python", *SHELLS)]


def gxpmes_lines(code: str) -> list[str]:
    """The ``gxpmes …`` command lines of a shell block, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.split("\n") if re.match(r"gxpmes(\s|$)", line.strip())]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["GXPMES_KEY_PASSPHRASE"] = "docs-example-passphrase"
    schemas = find_schemas()
    if schemas is not None:
        env["GXPMES_B2MML_SCHEMAS"] = str(schemas)
    return env


def run(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, (
        f"{what} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result


def shell(command: str, cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-c", f"set -eo pipefail\n{command}"], cwd, what)


@pytest.mark.parametrize("block", code_blocks(), ids=lambda b: b.name)
def test_code_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if "not-run" in block.directives:
        reason = " ".join(block.directives["not-run"])
        assert len(reason) > 10, f"{block.name}: say why the block is not run"
        return
    if "run-by" in block.directives:
        for target in block.directives["run-by"]:
            test_file, _, test_name = target.partition("::")
            source = (ROOT / test_file).read_text(encoding="utf-8")
            assert f"def {test_name}(" in source, f"{block.name}: {target} does not exist"
            assert block.path.name in source, f"{target} does not read {block.path.name}"
        return
    setup = block.directives.get("setup", [])
    if re.search("b2mml", block.code + " ".join(setup), re.I):
        schemas_dir()  # MESA's schemas: skipped without them, failed under CI
    for command in setup:
        shell(command, tmp_path, f"{block.name} setup `{command}`")
    if block.language == "python":
        run([sys.executable, "-c", block.code], tmp_path, block.name)
        return
    commands = gxpmes_lines(block.code)
    if not commands:
        # Installation and administration lines only: nothing of ours to run.
        assert not setup, f"{block.name}: setup for a block that runs nothing"
        return
    for command in commands:
        shell(command, tmp_path, f"{block.name} `{command}`")


def test_the_block_finder_sees_every_kind() -> None:
    """Guards the parser: a regex that found nothing would pass every block test."""
    found = code_blocks()
    names = {b.name for b in found}
    assert any(b.language == "python" for b in found) and any(b.language in SHELLS for b in found)
    assert any(n.startswith("README.md:") for n in names)
    assert any(b.directives.get("setup") for b in found)
    assert all(set(b.directives) <= {"setup", "run-by", "not-run"} for b in found)
    report = next(b for b in found if "gxpmes report" in b.code and b.path == README)
    assert gxpmes_lines(report.code)[0].endswith("--public-key gxpmes-demo/keys/public.pem")


def test_a_failing_block_fails(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="exited 1"):
        run([sys.executable, "-c", "raise SystemExit(1)"], tmp_path, "a failing block")
    with pytest.raises(AssertionError, match="exited 2"):
        shell("gxpmes report --db nope.db --batch B --out o", tmp_path, "a failing line")


def test_stdlib_only_reverification_snippet(tmp_path: Path) -> None:
    """docs/audit.md's standard-library check, on a trail exported by the CLI."""
    from audit import Actor, AuditEvent, Ledger

    ledger = Ledger.open(tmp_path / "t.db")
    ledger.append_many(
        [AuditEvent(Actor("a", "A"), "c", "x", str(i), new={"i": i}) for i in range(30)]
    )
    ledger.close()
    export = ["audit", "export", "--db", str(tmp_path / "t.db"), "--jsonl"]
    assert main([*export, "--out", str(tmp_path / "trail.jsonl")]) == 0
    snippet = next(b.code for b in blocks(DOCS / "audit.md") if "trail.jsonl" in b.code)
    run([sys.executable, "-c", snippet], tmp_path, "audit.md standard-library check")
    lines = (tmp_path / "trail.jsonl").read_text().splitlines()
    entry = json.loads(lines[7])
    entry["canonical"] = json.loads(lines[8])["canonical"]  # entry 8's bytes at seq 7
    lines[7] = json.dumps(entry)
    (tmp_path / "trail.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(AssertionError, match="exited 1"):
        run([sys.executable, "-c", snippet], tmp_path, "the check on an edited trail")


def test_readme_quickstart_prints_intact(tmp_path: Path) -> None:
    snippet = next(b.code for b in blocks(README) if b.language == "python")
    result = run([sys.executable, "-c", snippet], tmp_path, "README quickstart")
    assert result.stdout.startswith("INTACT: 1 entries")


def test_readme_extras_match_pyproject() -> None:
    """Each extra is named in README's list with every package it installs."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    text = README.read_text().split("## Optional extras", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"`([\w-]+)`\s*\(([^)]*)\)", " ".join(text.split())))
    assert set(listed) == set(extras), "README's extras differ from pyproject's"
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)  # type: ignore[union-attr]
            if name == "gxpmes":
                continue  # gxpmes[...]: another extra, named by its own entry
            assert name in listed[extra], f"README's `{extra}` omits {name}"


def test_ebr_guide_names_every_migration() -> None:
    versions = sorted((ROOT / "gxpmes" / "migrations" / "versions").glob("[0-9]*_*.py"))
    text = " ".join((DOCS / "ebr.md").read_text().split())
    sentence = text.split("The schema is managed with Alembic", 1)[1].split(". ", 1)[0]
    assert versions
    for version in versions:
        number, title = version.stem.split("_", 1)
        assert f"{number} {title.replace('_', ' ')}" in sentence, f"ebr.md omits {version.name}"


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
