"""State transitions are compare-and-set: of two concurrent changes exactly one wins.

Two real OS processes (``concurrency_child.py``), each with its own engine and
connections, are released together and race for the same state: release
against reject of one batch, two weighings from a lot that covers only one,
two QA approvals of one recipe version. Every round runs on a fresh copy of a
prepared database (an SQLite file copy, a PostgreSQL ``CREATE DATABASE ...
TEMPLATE``), :data:`RUNS` rounds per backend. The loser must get a clear
engine error naming what changed, leave no signature behind (its refusal is
audited instead), and the record must verify against its log.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from audit.db import open_engine
from audit.keys import TrustedKey, public_key_bytes
from audit.ledger import Ledger
from audit.note import NoteVerifier
from audit.verify import verify_ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.identity.signatures import key_id_of
from gxpmes.records.verify import RecordReport, verify_record
from gxpmes.testing.plant import (
    BALANCE,
    BLEND,
    HEAD_KEY_NAME,
    HEAT,
    MIX,
    OT_SOURCE,
    USERS,
    build_plant,
    granulation_recipe,
)
from isa95.common import Quantity

pytestmark = pytest.mark.slow

RUNS = 20
"""Rounds per scenario and backend."""
DEADLINE = 120.0
"""Seconds a child may take to answer (generous: the machine is shared)."""

PG_ADMIN_URL = os.environ.get(
    "GXPMES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CHILD = Path(__file__).with_name("concurrency_child.py")

REVIEWED_BATCH = "B-CAS-REL"
WEIGH_BATCH = "B-CAS-WEIGH"
SHORT_LOT = "API-SHORT"  # 30 kg: covers one 20 kg weighing, not two
QA3 = ("Rita Approver", "Issued-For-Rita-26!", "Approver-Three-2026!")  # name, one-time, own
PASSWORDS = {**{u: p for u, (_n, _r, p) in USERS.items()}, "qa3": QA3[2]}


# ------------------------------------------------------------ the prepared database


def _prepare(url: str) -> tuple[bytes, str, int]:
    """Build the starting state of every scenario: (system key, clock time, signatures)."""
    plant = build_plant(url)
    engine, sessions = plant.engine, plant.sessions
    plant.accounts.create_user(plant.admin_creds(), "qa3", QA3[0], ["QA Approver"], QA3[1])
    plant.identity.change_password("qa3", QA3[1], QA3[2])
    # A batch executed and reviewed, ready for QA's decision.
    plant.start_batch(REVIEWED_BATCH, phases=(HEAT, MIX, BLEND))
    plant.dispense(REVIEWED_BATCH)
    for path in (MIX, BLEND):
        engine.capture(
            [
                CapturedValue(
                    REVIEWED_BATCH, f"{path}/speed", "SC", Decimal(120), "rpm", plant.clock()
                )
            ],
            source=OT_SOURCE,
        )
    engine.capture(
        [
            CapturedValue(
                REVIEWED_BATCH,
                f"{HEAT}/temperature",
                "TT-101",
                Decimal("70.4"),
                "Cel",
                plant.clock(),
            )
        ],
        source=OT_SOURCE,
    )
    for path in (HEAT, MIX, BLEND):
        engine.complete_phase(REVIEWED_BATCH, path, plant.creds("op1"))
        engine.verify_phase(REVIEWED_BATCH, path, plant.creds("op2"))
    engine.complete_batch(sessions["op1"], REVIEWED_BATCH, Quantity(value=Decimal("98"), unit="kg"))
    engine.complete_review(REVIEWED_BATCH, plant.creds("qa1"))
    plant.review_trail(REVIEWED_BATCH)
    # A batch in execution and a released lot that holds enough for one weighing.
    for equipment_id in ("GRAN-01", "BLEND-01"):
        engine.record_cleaning(sessions["op1"], equipment_id, "cleaned per SOP-CL-01")
    plant.start_batch(WEIGH_BATCH, phases=(HEAT,))  # HEAT runs: values can be captured
    engine.receive_lot(
        sessions["sup1"],
        SHORT_LOT,
        "API-PARA",
        Quantity(value=Decimal("30"), unit="kg"),
        expires=plant.clock() + timedelta(days=365),
    )
    engine.set_lot_status(sessions["qa2"], SHORT_LOT, "Released", reason="CoA reviewed")
    # A recipe version signed by its author, waiting for QA approval.
    engine.submit_recipe(sessions["sup1"], granulation_recipe("2"))
    engine.sign_recipe("MR-GRAN", "2", "Performed", plant.creds("sup1"))
    key = plant.system_key
    assert key is not None
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    clock = plant.clock().isoformat()
    with plant.db.read() as conn:
        signatures = conn.execute(text("SELECT count(*) FROM gx_signature")).scalar_one()
    plant.db.close()
    return raw, clock, int(signatures)


@dataclass
class Template:
    """A prepared database and how to make a fresh copy of it for one round."""

    key: bytes
    clock: str
    signatures: int
    """Signatures in the prepared database."""
    copy: Callable[[], str]
    drop: Callable[[str], None]

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(Ed25519PrivateKey.from_private_bytes(self.key).public_key())

    @property
    def signature_keys(self) -> dict[str, bytes]:
        """Key id → public key: the e-signatures' system countersignature."""
        return {key_id_of(self.public_key): self.public_key}

    @property
    def head_keys(self) -> list[TrustedKey]:
        """The key the log's tree heads are signed with (entries under no head are forged)."""
        return [TrustedKey(NoteVerifier(HEAD_KEY_NAME, self.public_key))]


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def _sqlite_template(directory: Path) -> Iterator[Template]:
    source = directory / "template.db"
    key, clock, signatures = _prepare(str(source))

    def copy() -> str:
        target = directory / f"run-{uuid.uuid4().hex[:8]}.db"
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        return str(target)

    def drop(path: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)

    yield Template(key, clock, signatures, copy, drop)


def _pg_template() -> Iterator[Template]:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        _pg_unavailable(str(exc))
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    template = f"gxpmes_cas_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {template}"))
    except Exception as exc:
        admin.dispose()
        _pg_unavailable(str(exc).splitlines()[0])

    def url_of(name: str) -> str:
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def copy() -> str:
        name = f"{template}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
        return url_of(name)

    def drop(url: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)"))

    try:
        key, clock, signatures = _prepare(url_of(template))
        yield Template(key, clock, signatures, copy, drop)
    finally:
        drop(url_of(template))
        admin.dispose()


@pytest.fixture(scope="module")
def pg_template() -> Iterator[Template]:
    """The prepared database on PostgreSQL, built once per module."""
    yield from _pg_template()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Template]:
    """The prepared database on each backend, built once per module."""
    if request.param == "sqlite":
        yield from _sqlite_template(tmp_path_factory.mktemp("cas"))
    else:
        yield request.getfixturevalue("pg_template")


# ------------------------------------------------------------ the racing processes


class Child:
    """One engine process; answers are read by a thread so every wait has a deadline."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("")  # end of output: the process died or quit

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self) -> str:
        try:
            line = self.lines.get(timeout=DEADLINE)
        except queue.Empty:
            line = ""
        if not line:
            pytest.fail(f"child process gave no answer; its stderr:\n{self.log.read_text()}")
        return line

    def close(self) -> None:
        if self.process.poll() is None:
            self.send("QUIT")
            try:
                self.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[tuple[Child, Child]]:
    """Two engine processes, reused for every round of one test."""
    pair = (Child(tmp_path / "child-a.log"), Child(tmp_path / "child-b.log"))
    try:
        yield pair
    finally:
        for child in pair:
            child.close()


def race(
    children: tuple[Child, Child],
    url: str,
    template: Template,
    commands: list[dict[str, Any]],
    first: int,
) -> list[dict[str, Any]]:
    """Run ``commands[i]`` in child ``i``, released together; returns their outcomes."""
    for child, command in zip(children, commands, strict=True):
        child.send(
            json.dumps(
                {
                    "url": url,
                    "clock": template.clock,
                    "key": template.key.hex(),
                    "password": PASSWORDS[command["user"]],
                    **command,
                }
            )
        )
    for child in children:
        assert child.expect() == "READY"
    # Both are connected and waiting: the two GO lines leave microseconds apart.
    order = (children[first], children[1 - first])
    for child in order:
        child.send("GO")
    return [json.loads(child.expect()) for child in children]


def one_winner(outcomes: list[dict[str, Any]], *names: str) -> tuple[int, dict[str, Any]]:
    """The index of the only success; the loser's error must be an engine error naming ``names``."""
    winners = [i for i, o in enumerate(outcomes) if o["ok"]]
    assert len(winners) == 1, f"expected exactly one winner: {outcomes}"
    loser = outcomes[1 - winners[0]]
    assert "BatchError" in loser["kinds"], f"loser did not get an engine state error: {loser}"
    for name in names:
        assert name in loser["message"], f"loser's error does not name {name}: {loser}"
    return winners[0], loser


def check_round(
    template: Template, url: str, check: Callable[[Connection], None], refused: tuple[str, str]
) -> None:
    """Run ``check`` on the database, then the loser's audited refusal, then full verification."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            check(conn)
            signatures = conn.execute(text("SELECT count(*) FROM gx_signature")).scalar_one()
            assert signatures == template.signatures + 1, "the loser left a signature"
            refusals = conn.execute(
                text("SELECT canonical FROM audit_entry ORDER BY seq DESC LIMIT 5")
            ).scalars()
            actions = [json.loads(bytes(c)) for c in refusals]
            assert any(
                a["action"] == "signature.refused"
                and a["new"]["user_id"] == refused[0]
                and refused[1] in a["new"]["detail"]
                for a in actions
            ), "the loser's refusal is not in the audit trail"
        verified(engine, template)
    finally:
        engine.dispose()


def verified(engine: Engine, template: Template) -> RecordReport:
    """The record verified, and every entry under a tree head signed with the plant's key."""
    heads = verify_ledger(Ledger(engine, create=False), head_keys=template.head_keys)
    assert heads.ok, heads.summary()
    report = verify_record(engine, signature_keys=template.signature_keys)
    assert report.ok, "\n".join(report.lines())
    return report


def rounds(template: Template, play: Callable[[str, int], None], runs: int = RUNS) -> None:
    """``play(url, round)`` on ``runs`` fresh copies of the template."""
    for run in range(runs):
        url = template.copy()
        try:
            play(url, run)
        finally:
            template.drop(url)


# ------------------------------------------------------------ the scenarios


def decide(children: tuple[Child, Child], template: Template, url: str, run: int) -> None:
    """One round of release (qa2) against reject (qa3), checked."""
    outcomes = race(
        children,
        url,
        template,
        [
            {"op": "release", "user": "qa2", "batch": REVIEWED_BATCH},
            {"op": "reject", "user": "qa3", "batch": REVIEWED_BATCH, "reason": "OOS assay"},
        ],
        first=run % 2,
    )
    winner, _loser = one_winner(outcomes, REVIEWED_BATCH)
    status = ("Released", "Rejected")[winner]

    def check(conn: Connection) -> None:
        batch = conn.execute(
            text("SELECT status, lot_id FROM ebr_batch WHERE batch_id = :b"),
            {"b": REVIEWED_BATCH},
        ).one()
        assert batch.status == status
        lot = conn.execute(
            text("SELECT status FROM ebr_lot WHERE lot_id = :l"), {"l": batch.lot_id}
        ).scalar_one()
        assert lot == status, f"batch {status} but its lot {lot}"
        decided = conn.execute(
            text(
                "SELECT signer_id, meaning FROM gx_signature WHERE record_type = 'batch' "
                "AND record_id = :b AND meaning IN ('Released', 'Rejected')"
            ),
            {"b": REVIEWED_BATCH},
        ).all()
        assert [tuple(r) for r in decided] == [(("qa2", "qa3")[winner], status)]

    check_round(template, url, check, (("qa3", "qa2")[winner], REVIEWED_BATCH))


def test_release_against_reject(template: Template, children: tuple[Child, Child]) -> None:
    """QA2 releases while QA3 rejects: one decision, one signature, batch and lot agree."""
    rounds(template, lambda url, run: decide(children, template, url, run))


def test_release_against_reject_under_repeatable_read(
    pg_template: Template, children: tuple[Child, Child]
) -> None:
    """A server whose default isolation is REPEATABLE READ changes nothing.

    The write transaction's snapshot must not predate its wait for the lock,
    or the loser acts on the state from before the winner's commit (it then
    failed with a false integrity alarm or an append conflict).
    """
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def play(url: str, run: int) -> None:
        with admin.connect() as conn:
            conn.execute(
                text(
                    f"ALTER DATABASE {make_url(url).database} "
                    "SET default_transaction_isolation = 'repeatable read'"
                )
            )
        decide(children, pg_template, url, run)

    try:
        rounds(pg_template, play, RUNS // 2)
    finally:
        admin.dispose()


def test_weighings_from_one_short_lot(template: Template, children: tuple[Child, Child]) -> None:
    """Two weighers take 20 kg each from a 30 kg lot: one weighing, 10 kg left, never negative."""

    def weighing(user: str) -> dict[str, Any]:
        return {
            "op": "weigh",
            "user": user,
            "batch": WEIGH_BATCH,
            "material": "API-PARA",
            "lot": SHORT_LOT,
            "phase": HEAT,
            "actual": "20.000",
            "balance": BALANCE,
        }

    def play(url: str, run: int) -> None:
        outcomes = race(children, url, template, [weighing("op1"), weighing("op2")], first=run % 2)
        winner, _loser = one_winner(outcomes, SHORT_LOT)

        def check(conn: Connection) -> None:
            quantity = conn.execute(
                text("SELECT quantity FROM ebr_lot WHERE lot_id = :l"), {"l": SHORT_LOT}
            ).scalar_one()
            assert Decimal(quantity) == Decimal("10.000")
            weighings = conn.execute(
                text("SELECT weighing_id, performed_by FROM ebr_weighing WHERE lot_id = :l"),
                {"l": SHORT_LOT},
            ).all()
            assert [(w.weighing_id, w.performed_by) for w in weighings] == [
                (outcomes[winner]["result"], ("op1", "op2")[winner])
            ]
            signed = (
                conn.execute(
                    text(
                        "SELECT record_id FROM gx_signature WHERE record_type = 'weighing' "
                        "AND scope = :b"
                    ),
                    {"b": WEIGH_BATCH},
                )
                .scalars()
                .all()
            )
            assert signed == [outcomes[winner]["result"]]

        check_round(template, url, check, (("op2", "op1")[winner], SHORT_LOT))

    rounds(template, play)


def test_concurrent_recipe_approvals(template: Template, children: tuple[Child, Child]) -> None:
    """Two QA approvers sign one recipe version at once: approved once, by one of them."""

    def play(url: str, run: int) -> None:
        outcomes = race(
            children,
            url,
            template,
            [
                {"op": "approve", "user": "qa2", "recipe": "MR-GRAN", "version": "2"},
                {"op": "approve", "user": "qa3", "recipe": "MR-GRAN", "version": "2"},
            ],
            first=run % 2,
        )
        winner, _loser = one_winner(outcomes, "MR-GRAN v2")

        def check(conn: Connection) -> None:
            status = conn.execute(
                text("SELECT status FROM ebr_recipe WHERE recipe_id = 'MR-GRAN' AND version = '2'")
            ).scalar_one()
            assert status == "Approved"
            approvals = (
                conn.execute(
                    text(
                        "SELECT signer_id FROM gx_signature WHERE record_type = 'master_recipe' "
                        "AND record_id = 'MR-GRAN/v2' AND meaning = 'Approved'"
                    )
                )
                .scalars()
                .all()
            )
            assert approvals == [("qa2", "qa3")[winner]]
            approved = conn.execute(
                text("SELECT canonical FROM audit_entry ORDER BY seq")
            ).scalars()
            entries = [json.loads(bytes(c)) for c in approved]
            assert (
                sum(
                    1
                    for e in entries
                    if e["action"] == "recipe.approve" and e["object"]["id"] == "MR-GRAN/v2"
                )
                == 1
            )

        check_round(template, url, check, (("qa3", "qa2")[winner], "MR-GRAN v2"))

    rounds(template, play)


def test_verification_while_the_plant_writes(
    template: Template, children: tuple[Child, Child], tmp_path: Path
) -> None:
    """QA verifies a live database: values committed meanwhile are no false alarm.

    The replay and every table it is compared with are read in one snapshot;
    otherwise rows committed after the log was read would show as extra rows.
    Each verification starts only after the writer reported another chunk, and
    the writer keeps going while it runs.
    """
    url = template.copy()
    stop = tmp_path / "stop"
    writer = children[0]
    try:
        writer.send(
            json.dumps(
                {
                    "url": url,
                    "clock": template.clock,
                    "key": template.key.hex(),
                    "password": PASSWORDS["op1"],
                    "op": "capture",
                    "user": "op1",
                    "batch": WEIGH_BATCH,
                    "parameter": f"{HEAT}/temperature",
                    "unit": "Cel",
                    "size": 50,
                    "stop": str(stop),
                }
            )
        )
        assert writer.expect() == "READY"
        writer.send("GO")
        engine = open_engine(url)  # a writable engine: verifying must not block the writer
        try:
            seen = []
            for _run in range(5):
                progress = writer.expect()
                assert progress.startswith("CAPTURED "), progress
                seen.append(verified(engine, template).rows_checked)
            stop.touch()
            while (line := writer.expect()).startswith("CAPTURED "):
                pass
            outcome = json.loads(line)
            assert outcome["ok"], outcome
            final = verified(engine, template)
            assert seen == sorted(seen) and seen[0] < final.rows_checked
        finally:
            engine.dispose()
    finally:
        stop.touch()
        template.drop(url)
