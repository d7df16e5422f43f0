"""Audit completeness (21 CFR 11.10(e), Annex 11 §9): reasons by default, every GMP event.

Reasons are required by the ledger itself for changes to accounts, roles and
approved master data, whatever the calling code marks: an application
that forgets ``requires_reason`` still cannot record such a change without one.
"""

from __future__ import annotations

import pytest
from ebr_support import Plant

from audit.entry import Actor, AuditEvent
from audit.errors import EntryError
from gxpmes.database import REASON_REQUIRED_ACTIONS, Database


def test_the_default_names_accounts_roles_and_master_data(plant: Plant) -> None:
    assert {"user.roles", "user.deactivate", "user.unlock", "lot.status", "equipment.status"} <= (
        plant.db.ledger.reason_required_actions
    )
    assert plant.db.ledger.reason_required_actions == REASON_REQUIRED_ACTIONS


@pytest.mark.parametrize("action", sorted(REASON_REQUIRED_ACTIONS))
def test_an_entry_without_a_reason_is_refused_by_default(plant: Plant, action: str) -> None:
    """Even when the caller does not mark the event ``requires_reason``."""
    size = plant.db.ledger.size()
    event = AuditEvent(Actor("admin", "Alex Admin"), action, "user", "op2", new={"x": 1})
    with pytest.raises(EntryError, match="needs a reason"), plant.db.transaction() as conn:
        plant.db.audit(conn, event)
    assert plant.db.ledger.size() == size
    with plant.db.transaction() as conn:
        plant.db.audit(conn, AuditEvent(event.actor, action, "user", "op2", reason="ticket 17"))
    assert plant.db.ledger.size() == size + 1


def test_ledger_refuses_a_role_change_without_reason(plant: Plant) -> None:
    """The proof of the default (tests/validation/controls.py): one action, both databases."""
    size = plant.db.ledger.size()
    event = AuditEvent(Actor("admin", "Alex Admin"), "user.roles", "user", "op2", new={})
    with pytest.raises(EntryError, match="needs a reason"), plant.db.transaction() as conn:
        plant.db.audit(conn, event)
    assert plant.db.ledger.size() == size


def test_site_actions_are_added_never_replace_the_default(tmp_path: object) -> None:
    db = Database(f"{tmp_path}/site.db", reason_required_actions=frozenset({"sop.change"}))
    try:
        assert db.ledger.reason_required_actions == REASON_REQUIRED_ACTIONS | {"sop.change"}
    finally:
        db.close()


def test_equipment_status_entry_carries_its_reason(plant: Plant) -> None:
    plant.engine.set_equipment_status(
        plant.sessions["sup1"], "GRAN-01", "Out of service", reason="motor vibration, WO-88"
    )
    last = plant.db.ledger.entries_for("equipment", "GRAN-01")[-1]
    assert last.event.action == "equipment.status"
    assert last.event.reason == "motor vibration, WO-88"
    assert last.event.old == {"status": "Available"}
    assert last.event.new["status"] == "Out of service"  # type: ignore[index]
    assert plant.engine.equipment_log("GRAN-01")[-1]["comment"].endswith("motor vibration, WO-88")


def test_role_change_reason_is_in_the_entry(plant: Plant) -> None:
    plant.accounts.set_roles(
        plant.admin_creds(), "op2", ["Operator", "Supervisor"], reason="promoted, HR-12"
    )
    last = plant.db.ledger.entries_for("user", "op2")[-1]
    assert (last.event.action, last.event.reason) == ("user.roles", "promoted, HR-12")
    assert last.event.old == {"roles": ["Operator"]}
