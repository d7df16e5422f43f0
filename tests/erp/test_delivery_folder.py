"""Drop folders: atomic files in outbox order, resends in place, outages, confirmations in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from erp_support import confirmation, outbox, release_batch

from gxpmes.cli import main
from gxpmes.erp.delivery import folder as folder_module
from gxpmes.erp.delivery import open_source, open_transport
from gxpmes.erp.delivery.pump import receive
from gxpmes.erp.delivery.sender import Policy, Sender
from gxpmes.erp.inbound import Receiver

B = "B-DIR-1"


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_documents_land_whole_and_in_order(erp_plant: Any, tmp_path: Path) -> None:
    release_batch(erp_plant, B)
    out = tmp_path / "to-erp"
    out.mkdir()
    assert Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once() == 5
    rows = outbox(erp_plant.db, B)
    names = files(out)
    assert names == [f"{r['position']:012d}-{r['message_id']}.xml" for r in rows]
    for name, row in zip(names, rows, strict=True):
        assert (out / name).read_text(encoding="utf-8") == row["body"]
    assert {r["status"] for r in rows} == {"sent"}


def test_a_crash_mid_write_leaves_no_partial_file(
    erp_plant: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    release_batch(erp_plant, B)
    out = tmp_path / "to-erp"
    out.mkdir()

    def power_cut(*args: Any) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(folder_module.os, "replace", power_cut)
    sender = Sender(erp_plant.db, open_transport(f"dir:{out}"), Policy(backoff=0.0))
    assert sender.run_once() == 0
    assert not [n for n in files(out) if not n.startswith(".")]  # no visible partial document
    assert outbox(erp_plant.db, B)[0]["attempts"] == 1
    monkeypatch.undo()
    assert sender.run_once() == 5
    assert len([n for n in files(out) if n.endswith(".xml") and not n.startswith(".")]) == 5


def test_missing_folder_is_an_outage_then_recovers(erp_plant: Any, tmp_path: Path) -> None:
    release_batch(erp_plant, B)
    out = tmp_path / "share"
    sender = Sender(erp_plant.db, open_transport(f"dir:{out}"), Policy(backoff=0.0))
    assert sender.run_once() == 0 and sender.down is not None
    assert [r["status"] for r in outbox(erp_plant.db, B)] == ["pending"] * 5
    out.mkdir()
    assert sender.run_once() == 5


def test_resend_after_a_crash_rewrites_the_same_file(
    erp_plant: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    release_batch(erp_plant, B)
    out = tmp_path / "to-erp"
    out.mkdir()
    from gxpmes.erp.delivery import sender as sender_module

    monkeypatch.setattr(
        sender_module, "mark_sent", lambda *a: (_ for _ in ()).throw(OSError("kill"))
    )
    with pytest.raises(OSError):
        Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once()
    before = files(out)
    monkeypatch.undo()
    assert Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once() == 5
    assert files(out) == before  # the same five files: deduplicated by name and content


def test_confirmations_from_a_folder(erp_plant: Any, tmp_path: Path) -> None:
    release_batch(erp_plant, B)
    out, inbox = tmp_path / "to-erp", tmp_path / "from-erp"
    out.mkdir()
    inbox.mkdir()
    Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once()
    for n, row in enumerate(outbox(erp_plant.db, B)):
        (inbox / f"{n:03d}.xml").write_bytes(confirmation(row["message_id"]))
    (inbox / ".partial.xml.tmp").write_bytes(b"<half")  # a writer's temporary file: ignored
    counts = receive(
        Receiver(erp_plant.engine, erp_plant.engine.erp_b2mml),
        open_source(f"dir:{inbox}"),
        follow=False,
    )
    assert counts["confirmation"] == 5 and counts["invalid"] == 0
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"delivered"}
    assert files(inbox) == [".partial.xml.tmp", "processed"]


def test_cli_route_send_receive_status(
    erp_plant: Any, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    from audit.keys import write_key_pair
    from gxpmes.testing.plant import HEAD_KEY_NAME

    release_batch(erp_plant, B)
    private, _ = write_key_pair(erp_plant.system_key, tmp_path / "keys", b"pass-phrase")
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", "pass-phrase")
    db = erp_plant.db.engine.url.render_as_string(hide_password=False)
    head = ["--head-key", str(private), "--head-key-name", HEAD_KEY_NAME]
    out, inbox = tmp_path / "to-erp", tmp_path / "from-erp"
    out.mkdir()
    inbox.mkdir()
    reason = ["--reason", "release documents only, change CC-7"]
    assert (
        main(
            ["erp", "route", "--db", db, "batch.released", "BatchProductionRecord", *reason, *head]
        )
        == 0
    )
    assert main(["erp", "send", "--db", db, "--to", f"dir:{out}", "--once", *head]) == 0
    assert "5 awaiting confirmation" in capsys.readouterr().out
    for n, name in enumerate(files(out)):
        message_id = name.split("-", 1)[1].removesuffix(".xml")
        (inbox / f"{n:03d}.xml").write_bytes(confirmation(message_id))
    # The schemas the tests use (../shared or GXPMES_B2MML_SCHEMAS), given as a user would.
    from shared_paths import schemas_dir

    schemas = ["--schemas", str(schemas_dir())]
    receive = ["erp", "receive", "--db", db, "--from", f"dir:{inbox}", "--once", *schemas]
    assert main([*receive, *head]) == 0
    assert "5 confirmations" in capsys.readouterr().out
    assert main(["erp", "status", "--db", db, "--batch", B]) == 0
    assert "delivered: 5" in capsys.readouterr().out
    # Usage errors are one line and exit 2.
    assert main(["erp", "send", "--db", db, "--to", f"dir:{out}", *head]) == 2
    assert main(["erp", "send", "--db", db, "--to", "ftp://x", "--once", *head]) == 2
    assert main(["erp", "route", "--db", db, "batch.started", *reason, *head]) == 2
    err = capsys.readouterr().err
    assert "--once and --follow" in err and "neither amqp" in err and "unknown event" in err
    assert os.environ["GXPMES_KEY_PASSPHRASE"] == "pass-phrase"


def test_an_erp_problem_shows_in_review_but_does_not_block_it(erp_plant: Any) -> None:
    """ERP rejects a consumption posting before review: QA sees it, and may still decide."""
    from erp_support import execute_batch

    from gxpmes.erp.bod import Confirmation
    from gxpmes.erp.confirmations import apply_confirmation

    execute_batch(erp_plant, B)
    consumption = outbox(erp_plant.db, B)[0]
    with erp_plant.db.transaction() as conn:
        apply_confirmation(
            erp_plant.db,
            conn,
            Confirmation("C-9", (consumption["message_id"],), False, ("lot API-L1 blocked",)),
        )
    items = [i for i in erp_plant.engine.review_by_exception(B) if i.kind.startswith("erp:")]
    assert [(i.kind, i.open) for i in items] == [("erp:rejected", True)]
    assert "lot API-L1 blocked" in items[0].detail
    erp_plant.engine.complete_review(B, erp_plant.creds("qa1"))
    assert erp_plant.engine.batch(B)["status"] == "Reviewed"


def test_a_rejected_document_is_resent_unchanged(
    erp_plant: Any, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    from audit.keys import write_key_pair
    from gxpmes.testing.plant import HEAD_KEY_NAME

    release_batch(erp_plant, B)
    out, inbox = tmp_path / "to-erp", tmp_path / "from-erp"
    out.mkdir()
    inbox.mkdir()
    Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once()
    first = outbox(erp_plant.db, B)[0]
    (inbox / "1.xml").write_bytes(confirmation(first["message_id"], "Rejected", "period closed"))
    receive(
        Receiver(erp_plant.engine, erp_plant.engine.erp_b2mml),
        open_source(f"dir:{inbox}"),
        follow=False,
    )
    assert outbox(erp_plant.db, B)[0]["status"] == "rejected"
    private, _ = write_key_pair(erp_plant.system_key, tmp_path / "keys", b"pass-phrase")
    monkeypatch.setenv("GXPMES_KEY_PASSPHRASE", "pass-phrase")
    db = erp_plant.db.engine.url.render_as_string(hide_password=False)
    head = ["--head-key", str(private), "--head-key-name", HEAD_KEY_NAME]
    resend = ["erp", "resend", "--db", db, "--message", first["message_id"], *head]
    assert main([*resend, "--reason", "FI period 12 opened"]) == 0
    assert "rejected → pending" in capsys.readouterr().out
    assert main([*resend, "--reason", "again"]) == 2  # pending now: refused
    for name in files(out):
        (out / name).unlink()
    assert main(["erp", "send", "--db", db, "--to", f"dir:{out}", "--once", *head]) == 0
    (only,) = files(out)
    assert (out / only).read_text(encoding="utf-8") == first["body"]  # same document, same BOD ID
    trail = erp_plant.db.ledger.entries_for("batch", B)
    assert [e.event.reason for e in trail if e.event.action == "erp.resend"] == [
        "FI period 12 opened"
    ]


def test_a_database_failure_leaves_the_window_at_its_source(erp_plant: Any, tmp_path: Path) -> None:
    release_batch(erp_plant, B)
    out, inbox = tmp_path / "to-erp", tmp_path / "from-erp"
    out.mkdir()
    inbox.mkdir()
    Sender(erp_plant.db, open_transport(f"dir:{out}")).run_once()
    for n, row in enumerate(outbox(erp_plant.db, B)):
        (inbox / f"{n:03d}.xml").write_bytes(confirmation(row["message_id"]))
    receiver = Receiver(erp_plant.engine, erp_plant.engine.erp_b2mml)
    source = open_source(f"dir:{inbox}")
    real = receiver.handle_many

    def database_down(items: Any) -> Any:
        raise OSError("server closed the connection")

    receiver.handle_many = database_down  # type: ignore[method-assign]
    with pytest.raises(OSError):
        receive(receiver, source, follow=False)
    assert len([n for n in files(inbox) if n.endswith(".xml")]) == 5  # nothing acknowledged
    receiver.handle_many = real  # type: ignore[method-assign]
    counts = receive(receiver, source, follow=False)  # the same source, after the failure
    assert counts["confirmation"] == 5
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"delivered"}
