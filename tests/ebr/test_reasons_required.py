"""Changes to approved master data, roles and accounts need a reason (11.10(e), Annex 11 §9).

A missing or blank reason is refused with an error that says so, and nothing
is written: no state change and no audit entry. (Role and account changes
mark their entries ``requires_reason``; ``AuditEvent`` refuses a blank reason.)
"""

from __future__ import annotations

import pytest
from ebr_support import Plant

from audit.errors import EntryError
from gxpmes.errors import BatchError

BLANKS = ["", "   "]


@pytest.mark.parametrize("reason", BLANKS)
def test_lot_status_change_needs_a_reason(plant: Plant, reason: str) -> None:
    size = plant.db.ledger.size()
    with pytest.raises(BatchError, match="lot 'API-L1' needs a reason"):
        plant.engine.set_lot_status(plant.sessions["qa2"], "API-L1", "Rejected", reason=reason)
    assert plant.db.ledger.size() == size
    trail = plant.db.ledger.entries_for("lot", "API-L1")
    assert [e.event.new["status"] for e in trail if e.event.action == "lot.status"] == [  # type: ignore[index]
        "Released"
    ]


@pytest.mark.parametrize("reason", BLANKS)
def test_equipment_status_change_needs_a_reason(plant: Plant, reason: str) -> None:
    size = plant.db.ledger.size()
    with pytest.raises(BatchError, match="GRAN-01 needs a reason"):
        plant.engine.set_equipment_status(
            plant.sessions["sup1"], "GRAN-01", "Out of service", reason=reason
        )
    assert plant.db.ledger.size() == size


@pytest.mark.parametrize("reason", BLANKS)
def test_role_and_account_changes_refuse_a_blank_reason(plant: Plant, reason: str) -> None:
    admin = plant.admin_creds()
    size = plant.db.ledger.size()
    with pytest.raises(EntryError, match="reason must be a non-empty string"):
        plant.accounts.set_roles(admin, "op2", ["Operator", "Supervisor"], reason=reason)
    with pytest.raises(EntryError, match="reason must be a non-empty string"):
        plant.accounts.deactivate(admin, "op2", reason=reason)
    with pytest.raises(EntryError, match="reason must be a non-empty string"):
        plant.accounts.unlock(admin, "op2", reason=reason)
    assert plant.db.ledger.size() == size
    assert plant.identity.user("op2").active
    assert plant.identity.permissions(plant.identity.user("op2")) == plant.identity.permissions(
        plant.identity.user("op1")
    )


def test_a_real_reason_is_recorded(plant: Plant) -> None:
    plant.engine.set_lot_status(
        plant.sessions["qa2"], "LAC-L7", "Rejected", reason="CoA out of specification"
    )
    last = plant.db.ledger.entries_for("lot", "LAC-L7")[-1]
    assert (last.event.action, last.event.reason) == ("lot.status", "CoA out of specification")
