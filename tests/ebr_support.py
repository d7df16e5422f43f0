"""A small plant for batch record tests: users, equipment, released lots, an approved recipe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from identity_support import Clock

from audit.keys import generate_private_key
from gxpmes.database import Database
from gxpmes.ebr.engine import BatchEngine
from gxpmes.identity import (
    Credentials,
    IdentityService,
    PasswordHasher,
    PasswordPolicy,
    Session,
    SignatureService,
)
from isa95.common import Quantity
from isa95.recipe import (
    EquipmentRequirement,
    FormulaParameter,
    Operation,
    Phase,
    Procedure,
    Recipe,
    UnitProcedure,
)

USERS = {
    "admin": ("Alex Admin", ["Administrator"], "Root-Of-Trust-26!"),
    "sup1": ("Sam Supervisor", ["Supervisor"], "Super-Visor-2026!"),
    "op1": ("Olga Operator", ["Operator"], "Operator-One-2026!"),
    "op2": ("Otto Operator", ["Operator"], "Operator-Two-2026!"),
    "qa1": ("Quinn Reviewer", ["QA Reviewer"], "Reviewer-QA-2026!"),
    "qa2": ("Petra Approver", ["QA Approver"], "Approver-QA-2026!"),
}

HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
MIX = "GRAN/UP-GRAN/OP-WET/PH-MIX"
BLEND = "GRAN/UP-BLEND/OP-BLEND/PH-BLEND"


def granulation_recipe() -> Recipe:
    temperature = FormulaParameter(
        id="temperature", target=Decimal("70"), low=Decimal("65"), high=Decimal("75"), unit="Cel"
    )
    speed = FormulaParameter(
        id="speed", target=Decimal("120"), low=Decimal("100"), high=Decimal("140"), unit="rpm"
    )
    duration = FormulaParameter(
        id="time", target=Decimal("10"), low=Decimal("8"), high=Decimal("12"), unit="min"
    )
    return Recipe(
        id="MR-GRAN",
        version="1",
        description="Wet granulation and blending of TAB-500",
        product_id="TAB-500",
        product_name="Tablet blend 500 mg",
        batch_size=Quantity(value=Decimal("100"), unit="kg"),
        formula=[
            FormulaParameter(
                id="yield", target=Decimal("98"), low=Decimal("95"), high=Decimal("101"), unit="%"
            )
        ],
        procedure=Procedure(
            id="GRAN",
            unit_procedures=[
                UnitProcedure(
                    id="UP-GRAN",
                    equipment_requirement=EquipmentRequirement(equipment_class_id="Granulator"),
                    operations=[
                        Operation(
                            id="OP-WET",
                            phases=[
                                Phase(id="PH-HEAT", parameters=[temperature]),
                                Phase(id="PH-MIX", parameters=[speed, duration]),
                            ],
                        )
                    ],
                ),
                UnitProcedure(
                    id="UP-BLEND",
                    equipment_requirement=EquipmentRequirement(equipment_class_id="Blender"),
                    operations=[
                        Operation(id="OP-BLEND", phases=[Phase(id="PH-BLEND", parameters=[speed])])
                    ],
                ),
            ],
        ),
    )


@dataclass
class Plant:
    db: Database
    identity: IdentityService
    signatures: SignatureService
    engine: BatchEngine
    clock: Clock
    sessions: dict[str, Session]

    def creds(self, user: str) -> Credentials:
        return Credentials(user, USERS[user][2])


def make_plant(url: str) -> Plant:
    clock = Clock()
    db = Database(url, clock=clock)
    identity = IdentityService(
        db, policy=PasswordPolicy(idle_timeout_minutes=240), hasher=PasswordHasher(log2_n=10)
    )
    identity.bootstrap_admin("admin", USERS["admin"][0], USERS["admin"][2])
    sessions = {"admin": identity.login("admin", USERS["admin"][2])}
    for user_id, (name, roles, password) in USERS.items():
        if user_id != "admin":
            identity.create_user(sessions["admin"], user_id, name, roles, password)
            sessions[user_id] = identity.login(user_id, password, client_tz="Europe/Berlin")
    signatures = SignatureService(identity, generate_private_key())
    engine = BatchEngine(db, identity, signatures)
    sup = sessions["sup1"]
    due = clock() + timedelta(days=180)
    for equipment_id, cls in (("GRAN-01", "Granulator"), ("BLEND-01", "Blender")):
        engine.register_equipment(
            sup, equipment_id, level="Unit", equipment_class=cls, calibration_due=due
        )
        engine.record_cleaning(
            sessions["op1"], equipment_id, "cleaned per SOP-CL-01, visually clean"
        )
    for lot_id, material in (("API-L1", "API-PARA"), ("LAC-L7", "LACTOSE")):
        engine.receive_lot(sup, lot_id, material, Quantity(value=Decimal("500"), unit="kg"))
        engine.set_lot_status(
            sessions["qa2"], lot_id, "Released", reason="CoA reviewed, tests passed"
        )
    engine.submit_recipe(sup, granulation_recipe())
    engine.sign_recipe("MR-GRAN", "1", "Performed", Credentials("sup1", USERS["sup1"][2]))
    engine.sign_recipe("MR-GRAN", "1", "Approved", Credentials("qa2", USERS["qa2"][2]))
    return Plant(db, identity, signatures, engine, clock, sessions)
