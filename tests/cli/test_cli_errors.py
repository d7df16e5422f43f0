"""Every user error of the command line: one line on stderr, the right exit code, no traceback.

Exit codes: 0 success, 1 a check found an integrity problem, 2 a usage, input,
file, database or connection error. Most cases run ``python -m gxpmes`` in a
subprocess, so a traceback printed by the interpreter or a broken pipe at exit
would show; the rest call ``main`` in-process, where a leaked exception fails
the test just as surely. Commands that only read or sign must never create a
database: the cases naming a missing database check it is still missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key, write_key_pair
from audit.ledger import Ledger
from gxpmes.cli import main
from gxpmes.database import Database

PASS = "correct horse battery"
PG_NO_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/nosuchdb"
PG_DOWN = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/gxpmes"  # nothing listens on 1
CONFIG = """
[[tags]]
tag = "T1"
batch = "B-1"
parameter = "P/temperature"
unit = "Cel"

[mqtt]
host = "127.0.0.1"
port = 1
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the files the cases name (relative paths resolve in it)."""
    root = tmp_path_factory.mktemp("cli-errors")
    ledger = Ledger.open(root / "trail.db")
    ledger.append_many(
        [
            AuditEvent(Actor("op", "Op Erator"), "capture", "v", str(i), new={"x": "v" * 300})
            for i in range(1500)  # ~1 MB exported: more than any pipe buffer holds
        ]
    )
    ledger.close()
    Database(root / "app.db").close()
    write_key_pair(generate_private_key(), root / "keys", PASS.encode())
    (root / "notadb.db").write_text("this is a text file, not SQLite\n")
    (root / "empty.db").write_bytes(b"")
    for name, offset in (("header.db", 16), ("malformed.db", 100)):
        shutil.copy(root / "trail.db", root / name)
        with open(root / name, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\xff" * 64)
    shutil.copy(root / "trail.db", root / "tampered.db")
    with sqlite3.connect(root / "tampered.db") as conn:
        conn.execute("DROP TRIGGER audit_entry_no_update")
        conn.execute("UPDATE audit_entry SET canonical = CAST('{}' AS BLOB) WHERE seq = 3")
    (root / "adir").mkdir()
    (root / "afile").write_text("an ordinary file\n")
    (root / "binary.bin").write_bytes(b"\xff\xfe\x00\x81 not text")
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "bad.toml").write_text("[[tags]\nthis is not TOML")
    (root / "good.toml").write_text(CONFIG)
    (root / "doc.xml").write_text('<?xml version="1.0"?><MaterialInformation/>')
    (root / "no-data").mkdir()
    return root


@dataclass(frozen=True)
class Case:
    """One bad invocation and what it must do."""

    name: str
    args: tuple[str, ...]
    code: int = 2
    says: str = ""  # stderr contains this
    not_created: tuple[str, ...] = ()  # paths that must not exist afterwards
    hides: str = ""  # stderr must not contain this (a password)
    subprocess: bool = True
    env: dict[str, str] = field(default_factory=dict)


KEY = ("--key", "keys/private.pem")
CP = ("--checkpoint",)
PUB = ("--public-key", "keys/public.pem")

CASES = [
    # --- a mistyped SQLite path never becomes a new database
    Case("verify-missing", ("audit", "verify", "--db", "nope.db"), says="no database at nope.db",
         not_created=("nope.db",)),
    Case("checkpoint-missing", ("audit", "checkpoint", "--db", "nope.db", *KEY, "--out", "cp.txt"),
         says="gxpmes db upgrade", not_created=("nope.db", "cp.txt")),
    Case("revoke-missing", ("keys", "revoke", "--db", "nope.db", "--key-id", "k", "--reason", "r"),
         says="no database at nope.db", not_created=("nope.db",)),
    Case("keys-list-missing", ("keys", "list", "--db", "nope.db"), not_created=("nope.db",),
         subprocess=False),
    Case("export-missing", ("audit", "export", "--db", "nope.db", "--jsonl"),
         not_created=("nope.db",), subprocess=False),
    Case("prove-missing", ("audit", "prove", "--db", "nope.db", "--seq", "0"),
         not_created=("nope.db",), subprocess=False),
    Case("report-missing", ("report", "--db", "nope.db", "--batch", "B-1", "--out", "rep-m"),
         not_created=("nope.db", "rep-m")),
    Case("connect-missing", ("connect", "--config", "good.toml", "--db", "nope.db"),
         not_created=("nope.db",)),
    Case("verify-missing-url", ("audit", "verify", "--db", "sqlite:///nope-url.db"),
         not_created=("nope-url.db",)),
    Case("top-verify-missing", ("verify", "--db", "nope.db"), not_created=("nope.db",),
         subprocess=False),
    # --- files that are not (usable) databases
    Case("verify-not-sqlite", ("audit", "verify", "--db", "notadb.db"),
         says="notadb.db is not an SQLite database"),
    Case("report-not-sqlite", ("report", "--db", "notadb.db", "--batch", "B-1", "--out", "rep-n"),
         says="not an SQLite database", not_created=("rep-n",)),
    Case("checkpoint-not-sqlite",
         ("audit", "checkpoint", "--db", "notadb.db", *KEY, "--out", "cp.txt"),
         not_created=("cp.txt",), subprocess=False),
    Case("verify-header-corrupt", ("audit", "verify", "--db", "header.db"),
         says="not an SQLite database"),
    Case("verify-malformed", ("audit", "verify", "--db", "malformed.db"), says="malformed"),
    Case("verify-empty-file", ("audit", "verify", "--db", "empty.db"), says="no audit ledger"),
    Case("report-ledger-only", ("report", "--db", "trail.db", "--batch", "B-1", "--out", "rep-l"),
         says="holds no gxpmes schema"),
    Case("verify-folder-as-db", ("audit", "verify", "--db", "adir"), says="adir is a folder"),
    Case("upgrade-folder-as-db", ("db", "upgrade", "--db", "adir"), says="is a folder"),
    Case("upgrade-missing-folder", ("db", "upgrade", "--db", "no/such/folder/x.db"),
         says="does not exist", not_created=("no",)),
    # --- URLs, drivers and servers
    Case("unsupported-dialect", ("audit", "verify", "--db", "mysql://me:pw-mysql@host/db"),
         says="unsupported database 'mysql'", hides="pw-mysql"),
    Case("unknown-driver", ("audit", "verify", "--db", "postgresql+nosuchdriver://127.0.0.1/x"),
         says="unknown database driver"),
    Case("not-a-url", ("audit", "verify", "--db", "::not a url://x"), says="not a database URL",
         subprocess=False),
    Case("pg-wrong-database", ("audit", "verify", "--db", PG_NO_DB), says="nosuchdb"),
    Case("pg-report-wrong-database",
         ("report", "--db", PG_NO_DB, "--batch", "B-1", "--out", "rep-p"), says="nosuchdb"),
    Case("pg-server-down", ("audit", "verify", "--db", PG_DOWN), says="cannot open database",
         hides="s3cret-pw"),
    Case("pg-upgrade-server-down", ("db", "upgrade", "--db", PG_DOWN), hides="s3cret-pw"),
    Case("pg-bad-host",
         ("keys", "list", "--db", "postgresql+psycopg://postgres@no-such-host.invalid/x"),
         says="no-such-host.invalid"),
    # --- output paths
    Case("keys-new-out-is-file", ("keys", "new", "--out", "afile"), says="afile is a file"),
    Case("report-out-is-file", ("report", "--db", "app.db", "--batch", "B-1", "--out", "afile"),
         says="afile is a file"),
    Case("demo-out-is-file", ("demo", "--out", "afile"), says="afile is a file"),
    Case("checkpoint-out-is-folder",
         ("audit", "checkpoint", "--db", "trail.db", *KEY, "--out", "adir"), says="is a folder"),
    Case("export-out-is-folder",
         ("audit", "export", "--db", "trail.db", "--jsonl", "--out", "adir"), says="is a folder"),
    Case("export-out-no-folder",
         ("audit", "export", "--db", "trail.db", "--jsonl", "--out", "nodir/x.jsonl"),
         says="does not exist", subprocess=False),
    Case("convert-out-is-folder",
         ("b2mml", "convert", "doc.xml", "--to", "V0600", "--out", "adir"), says="is a folder"),
    # --- input files
    Case("checkpoint-not-utf8",
         ("audit", "verify", "--db", "trail.db", *CP, "binary.bin", *PUB), says="not UTF-8"),
    Case("checkpoint-is-folder", ("audit", "verify", "--db", "trail.db", *CP, "adir", *PUB),
         says="cannot read adir", subprocess=False),
    Case("checkpoint-missing-file",
         ("audit", "verify", "--db", "trail.db", *CP, "none.txt", *PUB), subprocess=False),
    Case("private-key-missing",
         ("audit", "checkpoint", "--db", "trail.db", "--key", "none.pem", "--out", "cp.txt"),
         not_created=("cp.txt",), subprocess=False),
    Case("private-key-not-pem",
         ("audit", "checkpoint", "--db", "trail.db", "--key", "afile", "--out", "cp.txt"),
         not_created=("cp.txt",)),
    Case("public-key-not-pem",
         ("report", "--db", "app.db", "--batch", "B-1", "--out", "rep-k", "--public-key", "afile"),
         subprocess=False),
    Case("b2mml-file-is-folder", ("b2mml", "validate", "adir"), says="cannot read adir"),
    Case("b2mml-file-missing", ("b2mml", "read", "none.xml"), subprocess=False),
    Case("connect-config-folder", ("connect", "--config", "adir", "--db", "app.db")),
    Case("connect-config-not-toml", ("connect", "--config", "bad.toml", "--db", "app.db"),
         subprocess=False),
    # --- B2MML schemas
    Case("schemas-is-file", ("b2mml", "validate", "doc.xml", "--schemas", "afile")),
    Case("schemas-empty-folder", ("b2mml", "read", "doc.xml", "--schemas", "adir"),
         says="adir", subprocess=False),
    Case("demo-schemas-wrong", ("demo", "--out", "demo-out", "--schemas", "adir"),
         says="holds no V0701", not_created=("demo-out",)),
    Case("demo-schemas-is-file", ("demo", "--out", "demo-out2", "--schemas", "afile"),
         says="not a folder", not_created=("demo-out2",), subprocess=False),
    Case("no-schemas-anywhere", ("b2mml", "validate", "doc.xml"), says="schemas install",
         env={"GXPMES_DATA_DIR": "no-data"}),
    Case("schemas-install-nowhere", ("b2mml", "schemas", "install", "--from", "nowhere"),
         env={"GXPMES_DATA_DIR": "no-data"}),
    Case("schemas-install-not-zip", ("b2mml", "schemas", "install", "--from", "afile"),
         env={"GXPMES_DATA_DIR": "no-data"}, subprocess=False),
    # --- batch ids are never paths
    Case("hostile-batch-id",
         ("report", "--db", "app.db", "--batch", "../../x", "--out", "rep-h", "--format", "html"),
         says="../../x", not_created=("../../x-batch-record.html", "../x-batch-record.html")),
    # --- usage
    Case("missing-required-option", ("audit", "verify"), says="--db"),
    Case("unknown-command", ("frobnicate",), subprocess=False),
    Case("bad-int", ("audit", "prove", "--db", "trail.db", "--seq", "x"), subprocess=False),
    Case("seq-out-of-range", ("audit", "prove", "--db", "trail.db", "--seq", "99999")),
    Case("revoke-bad-time",
         ("keys", "revoke", "--db", "trail.db", "--key-id", "k", "--reason", "r", "--at", "soon"),
         subprocess=False),
    Case("bad-time-zone", ("b2mml", "read", "doc.xml", "--assume-timezone", "Mars/Base"),
         says="Mars/Base", subprocess=False),
    Case("checkpoint-without-key", ("audit", "verify", "--db", "trail.db", *CP, "notes.txt"),
         says="go together", subprocess=False),
    # --- an integrity problem alone is exit 1 (JSON: nothing on stderr)
    Case("tampered-trail", ("audit", "verify", "--db", "tampered.db", "--json"), code=1),
    # a file given as the signed checkpoint that is none does not verify: a finding too
    Case("checkpoint-garbled",
         ("audit", "verify", "--db", "trail.db", *CP, "notes.txt", *PUB, "--json"), code=1,
         subprocess=False),
]  # fmt: skip


def run_cli(
    case: Case, world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Exit code and stderr of ``case``, in a subprocess or in-process."""
    env = {k: str(world / v) if k == "GXPMES_DATA_DIR" else v for k, v in case.env.items()}
    if case.subprocess:
        full_env = dict(os.environ, GXPMES_KEY_PASSPHRASE=PASS, **env)
        full_env.pop("GXPMES_B2MML_SCHEMAS", None)
        result = subprocess.run(
            [sys.executable, "-m", "gxpmes", *case.args],
            cwd=world,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.returncode, result.stderr
    monkeypatch.chdir(world)
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    monkeypatch.delenv("GXPMES_B2MML_SCHEMAS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(list(case.args))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
    assert sum(c.subprocess for c in CASES) >= len(CASES) // 2


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_invocation(
    case: Case, world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(case, world, monkeypatch, capsys)
    assert "Traceback" not in err, err
    assert code == case.code, err
    lines = err.splitlines()
    if case.code == 2:
        assert len(lines) == 1 and lines[0].startswith("gxpmes: error: "), err
    else:
        assert lines == [], err
    assert case.says in err
    if case.hides:
        assert case.hides not in err
    for path in case.not_created:
        assert not (world / path).exists(), f"{path} was created"


def test_without_the_existence_check_sqlite_would_create_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control behind the ``*-missing`` cases: remove it and the file appears."""
    import gxpmes.dbopen

    monkeypatch.setattr(gxpmes.dbopen, "require_database", lambda *_a, **_k: None)
    assert main(["keys", "revoke", "--db", str(tmp_path / "nope.db"), "--key-id", "k",
                 "--reason", "r"]) == 2  # fmt: skip
    assert (tmp_path / "nope.db").exists()


def test_database_failure_mid_command_is_one_line(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    def server_gone(*_args: object) -> None:
        raise OperationalError(
            "SELECT 1", {}, Exception("server closed the connection\nunexpectedly")
        )

    monkeypatch.setattr(Ledger, "iter_raw_rows", server_gone)
    assert main(["audit", "export", "--db", str(world / "trail.db"), "--jsonl"]) == 2
    err = capsys.readouterr().err
    assert err == "gxpmes: error: database failure: server closed the connection unexpectedly\n"

    def bug(*_args: object) -> None:
        raise ProgrammingError("SELECT nonsense", {}, Exception("syntax error"))

    monkeypatch.setattr(Ledger, "iter_raw_rows", bug)
    with pytest.raises(ProgrammingError):  # a bug keeps its traceback
        main(["audit", "export", "--db", str(world / "trail.db"), "--jsonl"])


def test_report_without_the_reports_extra_says_what_to_install(world: Path) -> None:
    hide_matplotlib = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from gxpmes.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_matplotlib, "report", "--db", "app.db", "--batch", "B-1",
         "--out", "rep-x"],
        cwd=world, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "gxpmes: error: this command needs matplotlib, which is not installed: "
        "pip install 'gxpmes[reports]'\n"
    )


# ------------------------------------------------------------- PostgreSQL


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "verify"),
        ("audit", "checkpoint", "--key", "keys/private.pem", "--out", "cp-pg.txt"),
        ("keys", "revoke", "--key-id", "k", "--reason", "r"),
        ("keys", "list"),
        ("report", "--batch", "B-1", "--out", "rep-pg"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_read_and_sign_commands_create_no_tables_on_postgres(
    args: tuple[str, ...],
    pg_url: str,
    world: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(world)
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", PASS)
    insert = 2 if args[0] != "report" else 1
    command = [*args[:insert], "--db", pg_url, *args[insert:]]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "gxpmes db upgrade" in err, err
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_db_upgrade_masks_the_password(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The test server trusts local connections, so any password is accepted.
    with_password = pg_url.replace("postgres@", "postgres:hunter2-secret@", 1)
    assert with_password != pg_url
    assert main(["db", "upgrade", "--db", with_password]) == 0
    out = capsys.readouterr().out
    assert "hunter2-secret" not in out and "postgres:***@" in out


# ------------------------------------------------------------- SIGPIPE


def _closed_pipe_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run gxpmes with stdout a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "gxpmes", *args],
            cwd=cwd,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "export", "--db", "trail.db", "--jsonl"],
        ["audit", "prove", "--db", "trail.db", "--seq", "5", "--json"],
        ["audit", "prove", "--db", "trail.db", "--seq", "5"],
        ["audit", "verify", "--db", "trail.db", "--json"],
        ["keys", "list", "--db", "trail.db"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_closed_pipe_is_quiet(args: list[str], world: Path) -> None:
    result = _closed_pipe_run(args, world)
    assert result.returncode == 2 and result.stderr == "", result.stderr


def test_help_into_closed_pipe(world: Path) -> None:
    # argparse drops a help text nobody reads and exits 0; nothing may reach stderr.
    result = _closed_pipe_run(["--help"], world)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_pipeline_into_head(world: Path) -> None:
    """``gxpmes audit export --jsonl | head -c1``: head stops reading after one byte."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "gxpmes", "audit", "export", "--db", "trail.db", "--jsonl"],
        cwd=world,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stderr is not None
    head = subprocess.run(["head", "-c1"], stdin=writer.stdout, capture_output=True, timeout=120)
    writer.stdout.close()  # only head holds the read end now
    err = writer.stderr.read().decode()
    assert writer.wait(timeout=120) == 2, err
    assert head.stdout == b"{" and err == ""


def test_b2mml_read_json_into_closed_pipe(tmp_path: Path) -> None:
    from shared_paths import schemas_dir

    from isa95.b2mml.documents import B2MML
    from isa95.material import MaterialInformation, MaterialLot

    schemas = schemas_dir()
    document = tmp_path / "lots.xml"
    lots = [MaterialLot(id=f"L-{i}", status="Released") for i in range(400)]
    document.write_bytes(B2MML(schemas).write(MaterialInformation(lots=lots), version="V0701"))
    result = _closed_pipe_run(
        ["b2mml", "read", str(document), "--json", "--schemas", str(schemas)], tmp_path
    )
    assert result.returncode == 2 and result.stderr == "", result.stderr


# ------------------------------------------------------------- what works


def test_version_and_module_entry_point(world: Path) -> None:
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "gxpmes", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == f"gxpmes {version('gxpmes')}"
    result = subprocess.run(
        [sys.executable, "-m", "gxpmes", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stderr == ""
    for expected in (
        "exit codes:",
        "GXPMES_B2MML_SCHEMAS",
        "GXPMES_KEY_PASSPHRASE",
        "GXPMES_DATA_DIR",
        "postgresql+psycopg://user:pass@host:port/db",
    ):
        assert expected in result.stdout, expected
    assert "``" not in result.stdout  # plain text, no reStructuredText


def _all_parsers(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _all_parsers(child, (*prefix, name))


def test_every_option_has_help() -> None:
    from gxpmes.cli import build_parser

    missing = [
        f"gxpmes {' '.join(path)} {action.dest}"
        for path, parser in _all_parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_hostile_batch_id_is_written_inside_out(tmp_path: Path) -> None:
    """A batch whose id is ``../../x`` exists: its report still lands inside --out."""
    from ebr_support import make_plant

    plant = make_plant(str(tmp_path / "plant.db"))
    plant.start_batch("../../x")
    plant.db.close()
    out = tmp_path / "a" / "b" / "rep"
    code = main(
        ["report", "--db", str(tmp_path / "plant.db"), "--batch", "../../x", "--out", str(out),
         "--format", "html"]
    )  # fmt: skip
    assert code == 0
    written = [p for p in tmp_path.rglob("*.html")]
    assert len(written) == 1 and written[0].parent == out, written
