"""A ready-made installation for validation tests: users of every role, a clean and
calibrated granulator and blender, released lots and an approved master recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.keys import TrustedKey, generate_private_key
from audit.note import NoteSigner, NoteVerifier, public_key_bytes
from gxpmes.database import Database
from gxpmes.ebr.engine import BatchEngine, CaptureSource
from gxpmes.identity import (
    AccountAdministration,
    Credentials,
    IdentityService,
    PasswordHasher,
    PasswordPolicy,
    Session,
    SignatureService,
)
from gxpmes.identity.signatures import key_id_of
from isa95.common import Quantity
from isa95.recipe import (
    EquipmentRequirement,
    FormulaParameter,
    MaterialRequirement,
    Operation,
    Phase,
    Procedure,
    Recipe,
    UnitProcedure,
)

__all__ = [
    "BALANCE",
    "BLEND",
    "BOM",
    "HEAT",
    "MIX",
    "OT_SOURCE",
    "USERS",
    "Clock",
    "TestPlant",
    "build_plant",
    "granulation_recipe",
]

USERS: dict[str, tuple[str, list[str], str]] = {
    "admin": ("Alex Admin", ["Administrator"], "Root-Of-Trust-26!"),
    "sup1": ("Sam Supervisor", ["Supervisor"], "Super-Visor-2026!"),
    "op1": ("Olga Operator", ["Operator"], "Operator-One-2026!"),
    "op2": ("Otto Operator", ["Operator"], "Operator-Two-2026!"),
    "qa1": ("Quinn Reviewer", ["QA Reviewer"], "Reviewer-QA-2026!"),
    "qa2": ("Petra Approver", ["QA Approver"], "Approver-QA-2026!"),
    "svc-ot": ("OT data collector", ["OT Device"], "Device-OT-Collect-2026!"),
}
"""Test users: id → (printed name, roles, password). Test data only."""

HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
MIX = "GRAN/UP-GRAN/OP-WET/PH-MIX"
BLEND = "GRAN/UP-BLEND/OP-BLEND/PH-BLEND"

OT_SOURCE = CaptureSource("svc-ot", "test-connector")
"""The test plant's OT connector identity: its device account and client id."""

ISSUED_PASSWORD = "Issued-Once-By-IT-26!"
"""The one-time password the administrator gives every test user; each sets their own."""

TEST_LOG2_N = 10
"""scrypt cost of test installations: n=2**10 (1 MiB, about 1 ms) instead of the
production default n=2**17 (128 MiB, hundreds of ms), so the suite's thousands of
password checks stay fast. Set explicitly here, never a library default; a test
proves the default is OWASP's."""

HEAD_KEY_NAME = "gxpmes-test"
"""Key name of a test plant's tree heads and checkpoints."""


class Clock:
    """A settable clock, so timeouts and expiry are tested without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        """Move time forward (``minutes=16``, ``days=2``...)."""
        self.now += timedelta(**kwargs)


BALANCE = "BAL-01"
"""The plant's registered, calibrated balance."""

BOM: dict[str, tuple[str, str, str]] = {
    "API-PARA": ("API-L1", "20.000", "0.100"),
    "LACTOSE": ("LAC-L7", "78.000", "0.100"),
}
"""Material → (released lot, quantity kg, tolerance kg): PH-HEAT's bill of materials."""


def granulation_recipe(version: str = "1", *, ordered: bool = False) -> Recipe:
    """Wet granulation (heat, mix) and blending, with limits on every parameter.

    Mandatory data: PH-HEAT dispenses and charges its bill of materials
    (:data:`BOM`); each phase needs a value of its first parameter and is
    signed Performed and Verified. ``ordered`` adds the order MIX after HEAT
    and blending after granulation (without it the phases are parallel branches).
    """

    def p(name: str, target: str, low: str, high: str, unit: str) -> FormulaParameter:
        return FormulaParameter(
            id=name, target=Decimal(target), low=Decimal(low), high=Decimal(high), unit=unit
        )

    return Recipe(
        id="MR-GRAN",
        version=version,
        description="Wet granulation and blending of TAB-500",
        product_id="TAB-500",
        product_name="Tablet blend 500 mg",
        batch_size=Quantity(value=Decimal("100"), unit="kg"),
        formula=[p("yield", "98", "95", "101", "%")],
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
                                Phase(
                                    id="PH-HEAT",
                                    parameters=[p("temperature", "70", "65", "75", "Cel")],
                                    required=["temperature"],
                                    materials=[
                                        MaterialRequirement(
                                            material_id=material,
                                            quantity=Quantity(value=Decimal(q), unit="kg"),
                                            tolerance=Decimal(tolerance),
                                        )
                                        for material, (_lot, q, tolerance) in BOM.items()
                                    ],
                                    signatures=["Performed", "Verified"],
                                ),
                                Phase(
                                    id="PH-MIX",
                                    parameters=[
                                        p("speed", "120", "100", "140", "rpm"),
                                        p("time", "10", "8", "12", "min"),
                                    ],
                                    required=["speed"],
                                    after=["PH-HEAT"] if ordered else [],
                                    signatures=["Performed", "Verified"],
                                ),
                            ],
                        )
                    ],
                ),
                UnitProcedure(
                    id="UP-BLEND",
                    after=["UP-GRAN"] if ordered else [],
                    equipment_requirement=EquipmentRequirement(equipment_class_id="Blender"),
                    operations=[
                        Operation(
                            id="OP-BLEND",
                            phases=[
                                Phase(
                                    id="PH-BLEND",
                                    parameters=[p("speed", "120", "100", "140", "rpm")],
                                    required=["speed"],
                                    signatures=["Performed", "Verified"],
                                )
                            ],
                        )
                    ],
                ),
            ],
        ),
    )


@dataclass
class TestPlant:
    """Everything a scenario needs, plus a scratch dict for its state."""

    __test__ = False  # not a pytest test class

    db: Database
    identity: IdentityService
    signatures: SignatureService
    engine: BatchEngine
    clock: Clock
    sessions: dict[str, Session]
    state: dict[str, Any] = field(default_factory=dict)
    system_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    """The installation's key: countersigns e-signatures and signs tree heads."""

    @property
    def public_key(self) -> bytes:
        """The raw public key of :attr:`system_key`."""
        assert self.system_key is not None
        return public_key_bytes(self.system_key.public_key())

    def trusted_keys(self) -> list[TrustedKey]:
        """The tree-head / checkpoint keys a verifier of this plant trusts."""
        return [TrustedKey(NoteVerifier(HEAD_KEY_NAME, self.public_key))]

    def signature_keys(self) -> dict[str, bytes]:
        """Key id → public key, for re-verifying e-signatures."""
        return {key_id_of(self.public_key): self.public_key}

    @property
    def ot(self) -> CaptureSource:
        """The identity the plant's OT connector captures values under."""
        return OT_SOURCE

    @property
    def accounts(self) -> AccountAdministration:
        """Signed account administration of this installation."""
        return AccountAdministration(self.signatures)

    def admin_creds(self, user: str = "admin") -> Credentials:
        """An administrator's signature components, in their session."""
        return Credentials(user, USERS[user][2], self.sessions[user])

    def creds(self, user: str, password: str | None = None) -> Credentials:
        """Both signature components of a test user (optionally a wrong password)."""
        return Credentials(user, USERS[user][2] if password is None else password)

    def session(self, user: str) -> Session:
        """The user's session, logging in again if it ended."""
        return self.sessions[user]

    def start_batch(self, batch_id: str, *, phases: tuple[str, ...] = ()) -> None:
        """Create ``batch_id`` from the approved recipe, start it with its unit procedures
        and operations running, then start ``phases`` (paths such as :data:`HEAT`)."""
        self.engine.create_batch(
            self.sessions["sup1"],
            batch_id,
            recipe_id="MR-GRAN",
            version="1",
            lot_id=f"{batch_id}-LOT",
            planned=Quantity(value=Decimal("100"), unit="kg"),
            equipment=["GRAN-01", "BLEND-01"],
        )
        operator = self.sessions["op1"]
        self.engine.start_batch(operator, batch_id)
        for path in (
            "GRAN/UP-GRAN",
            "GRAN/UP-GRAN/OP-WET",
            "GRAN/UP-BLEND",
            "GRAN/UP-BLEND/OP-BLEND",
            *phases,
        ):
            self.engine.command(operator, batch_id, path, "Start")

    def dispense(
        self,
        batch_id: str,
        *,
        phase: str = HEAT,
        weigher: str = "op1",
        checker: str = "op2",
        charge: bool = True,
    ) -> list[str]:
        """Dispense :data:`BOM` for ``phase`` on :data:`BALANCE` (exact targets), have
        each weighing verified, and, if ``charge``, charge the containers (the phase
        must be Running then). Returns the weighing ids."""
        weighings = []
        for material, (lot, quantity, _tolerance) in BOM.items():
            weighing = self.engine.weigh(
                batch_id,
                phase=phase,
                material_id=material,
                lot_id=lot,
                actual=Decimal(quantity),
                balance_id=BALANCE,
                performer=self.creds(weigher),
            )
            self.engine.verify_weighing(weighing, self.creds(checker))
            if charge:
                self.engine.charge(batch_id, weighing, self.creds(weigher))
            weighings.append(weighing)
        return weighings

    def relogin(self, user: str) -> Session:
        """Start a fresh session for ``user``."""
        self.sessions[user] = self.identity.login(user, USERS[user][2], client_tz="Europe/Berlin")
        return self.sessions[user]

    def review_trail(self, batch_id: str, reviewer: str = "qa1") -> Any:
        """``reviewer`` records a signed review of the batch's whole audit trail as it is
        now (release needs one that covers every change: :mod:`gxpmes.trail`)."""
        from gxpmes.trail import TrailScope, collect_trail

        view = collect_trail(self.db, TrailScope(batch_id=batch_id))
        return self.engine.trail_reviews.record(
            view.scope,
            view.through_seq,
            view.content_sha256,
            self.creds(reviewer),
            comment="audit trail reviewed: no unexplained change",
        )


def build_plant(
    url: str,
    *,
    hasher: PasswordHasher | None = None,
    clock: Callable[[], datetime] | None = None,
    sign_heads: bool = True,
) -> TestPlant:
    """Create the installation on a fresh database at ``url``.

    The installation's system key countersigns e-signatures and, unless
    ``sign_heads`` is false, signs every tree head of the log (``HEAD_KEY_NAME``).
    """
    the_clock = clock if isinstance(clock, Clock) else Clock()
    system_key = generate_private_key()
    head_signer = NoteSigner(HEAD_KEY_NAME, system_key) if sign_heads else None
    db = Database(url, clock=the_clock, head_signer=head_signer)
    identity = IdentityService(
        db,
        policy=PasswordPolicy(idle_timeout_minutes=240),
        hasher=hasher or PasswordHasher(log2_n=TEST_LOG2_N),
    )
    signatures = SignatureService(identity, system_key)
    accounts = AccountAdministration(signatures)
    identity.bootstrap_admin("admin", USERS["admin"][0], USERS["admin"][2])
    sessions = {"admin": identity.login("admin", USERS["admin"][2])}
    admin = Credentials("admin", USERS["admin"][2], sessions["admin"])
    for user_id, (name, roles, password) in USERS.items():
        if user_id != "admin":
            # The administrator issues a one-time password; the user sets their own.
            accounts.create_user(admin, user_id, name, roles, ISSUED_PASSWORD)
            identity.change_password(user_id, ISSUED_PASSWORD, password)
            sessions[user_id] = identity.login(user_id, password, client_tz="Europe/Berlin")
    engine = BatchEngine(db, identity, signatures)
    sup = sessions["sup1"]
    due = the_clock() + timedelta(days=180)
    for equipment_id, cls in (("GRAN-01", "Granulator"), ("BLEND-01", "Blender")):
        engine.register_equipment(
            sup, equipment_id, level="Unit", equipment_class=cls, calibration_due=due
        )
        engine.record_cleaning(
            sessions["op1"], equipment_id, "cleaned per SOP-CL-01, visually clean"
        )
    engine.register_equipment(
        sup, BALANCE, level="Equipment Module", equipment_class="Balance", calibration_due=due
    )
    for lot_id, material in (("API-L1", "API-PARA"), ("LAC-L7", "LACTOSE")):
        engine.receive_lot(
            sup,
            lot_id,
            material,
            Quantity(value=Decimal("500"), unit="kg"),
            expires=the_clock() + timedelta(days=365),
        )
        engine.set_lot_status(
            sessions["qa2"], lot_id, "Released", reason="CoA reviewed, tests passed"
        )
    engine.submit_recipe(sup, granulation_recipe())
    engine.sign_recipe("MR-GRAN", "1", "Performed", Credentials("sup1", USERS["sup1"][2]))
    engine.sign_recipe("MR-GRAN", "1", "Approved", Credentials("qa2", USERS["qa2"][2]))
    return TestPlant(db, identity, signatures, engine, the_clock, sessions, system_key=system_key)
