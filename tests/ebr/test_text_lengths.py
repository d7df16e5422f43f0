"""Text longer than its column holds is refused up front, the same on both databases.

PostgreSQL refuses text longer than a ``VARCHAR(n)`` with a raw ``DataError``;
SQLite stores it. Each API that writes caller text into such a column refuses
it first with the library's own exception naming the field, its length and
the limit, and writes nothing (no row, no audit entry); text exactly at the
limit is recorded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from ebr_support import BLEND, HEAT, MIX, Plant, granulation_recipe
from sqlalchemy import func, select

from audit.entry import Actor
from gxpmes.ebr.engine import CapturedValue
from gxpmes.ebr.planning import (
    MaterialDefinitionRow,
    PlannedBatch,
    PlannedBatchRow,
    define_material,
    plan_batch,
)
from gxpmes.ebr.planning import receive_lot as erp_receive_lot
from gxpmes.ebr.procedure import BATCH_ID_CHARS
from gxpmes.ebr.schema import (
    BatchRow,
    EquipmentRow,
    ExceptionRow,
    LotRow,
    RecipeRow,
    RecordItemRow,
    ValueRow,
    WeighingRow,
)
from gxpmes.errors import BatchError, CaptureRefused, DispenseRefused, GxpError
from gxpmes.testing.plant import BALANCE, OT_SOURCE
from isa95.common import Quantity
from isa95.recipe import Recipe

ERP = Actor("svc-erp", "ERP interface")
NUMBER = "1." + "0" * 62  # 64 characters, the width of every quantity column


def _count(plant: Plant, model: Any) -> int:
    with plant.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def _refused(
    plant: Plant, error: type[GxpError], field: str, length: int, limit: int, *models: Any
) -> Iterator[None]:
    """The block raises ``error`` naming ``field``, ``length`` and ``limit``; no entry is
    appended and no row of ``models`` is added."""
    size = plant.db.ledger.size()
    counts = [_count(plant, m) for m in models]
    with pytest.raises(error) as raised:
        yield
    message = str(raised.value)
    assert field in message and f"has {length} characters; at most {limit}" in message, message
    assert plant.db.ledger.size() == size
    assert [_count(plant, m) for m in models] == counts


def _lot(plant: Plant, lot_id: str = "L-NEW", **change: Any) -> None:
    args: dict[str, Any] = {
        "lot_id": lot_id,
        "material_id": "API-PARA",
        "quantity": Quantity(value=Decimal("5"), unit="kg"),
    }
    args.update(change)
    plant.engine.receive_lot(plant.sessions["sup1"], **args)


# ------------------------------------------------------------------ lots

LOT_FIELDS = {"lot id": 128, "material id": 128, "status": 32, "unit": 16, "quantity": 64}


def _lot_change(field: str, text: str) -> dict[str, Any]:
    if field == "lot id":
        return {"lot_id": text}
    if field == "material id":
        return {"material_id": text}
    if field == "status":
        return {"status": text}
    if field == "unit":
        return {"quantity": Quantity(value=Decimal("5"), unit=text)}
    return {"quantity": Quantity(value=Decimal(text), unit="kg")}


def _text(field: str, length: int) -> str:
    if field == "quantity":
        return "1." + "0" * (length - 2)
    return "x" * length


@pytest.mark.parametrize("field", sorted(LOT_FIELDS))
def test_receive_lot_refuses_over_long_text_and_keeps_it_at_the_limit(
    plant: Plant, field: str
) -> None:
    limit = LOT_FIELDS[field]
    with _refused(plant, BatchError, field, limit + 1, limit, LotRow):
        _lot(plant, **_lot_change(field, _text(field, limit + 1)))
    text = _text(field, limit)
    _lot(plant, **{"lot_id": "L-EDGE", **_lot_change(field, text)})
    with plant.db.read() as conn:
        rows = conn.execute(select(LotRow).where(LotRow.lot_id.notin_(["API-L1", "LAC-L7"]))).all()
    (row,) = rows
    stored = {"lot id": row.lot_id, "material id": row.material_id, "status": row.status}
    stored |= {"unit": row.unit, "quantity": row.quantity}
    assert stored[field] == text


def test_lot_status_longer_than_its_column_is_refused(plant: Plant) -> None:
    with _refused(plant, BatchError, "status", 33, 32, LotRow):
        plant.engine.set_lot_status(plant.sessions["qa2"], "API-L1", "S" * 33, reason="test")
    assert plant.engine.where_used("API-L1") == []
    plant.engine.set_lot_status(plant.sessions["qa2"], "API-L1", "S" * 32, reason="test")
    with plant.db.read() as conn:
        status = conn.scalar(select(LotRow.status).where(LotRow.lot_id == "API-L1"))
    assert status == "S" * 32


# ------------------------------------------------------------- equipment


@pytest.mark.parametrize(("field", "limit"), [("equipment id", 128), ("level", 32), ("class", 128)])
def test_register_equipment_refuses_over_long_text(plant: Plant, field: str, limit: int) -> None:
    def register(text: str, equipment_id: str) -> None:
        args = {"level": "Unit", "equipment_class": "Granulator"}
        if field == "level":
            args["level"] = text
        elif field == "class":
            args["equipment_class"] = text
        else:
            equipment_id = text
        plant.engine.register_equipment(
            plant.sessions["sup1"],
            equipment_id,
            calibration_due=plant.clock() + timedelta(days=30),
            **args,
        )

    with _refused(plant, BatchError, field, limit + 1, limit, EquipmentRow):
        register("e" * (limit + 1), "GRAN-02")
    register("e" * limit, "GRAN-02")
    assert _count(plant, EquipmentRow) == 4


def test_a_calibration_date_whose_text_the_record_cannot_hold_is_refused(plant: Plant) -> None:
    """An offset with seconds and microseconds: 42 characters of ISO text, the column 40."""
    odd = timezone(timedelta(hours=1, seconds=1, microseconds=1))
    due = (plant.clock() + timedelta(days=30)).astimezone(odd)
    sup = plant.sessions["sup1"]
    with _refused(plant, BatchError, "calibration due", 42, 40, EquipmentRow):
        plant.engine.register_equipment(
            sup, "GRAN-02", level="Unit", equipment_class="Granulator", calibration_due=due
        )
    with _refused(plant, BatchError, "calibration due", 42, 40, EquipmentRow):
        plant.engine.record_maintenance(sup, "GRAN-01", "calibrated", calibration_due=due)
    assert [e["event"] for e in plant.engine.equipment_log("GRAN-01")] == ["registered", "cleaning"]
    # The longest ISO text that fits (none has 36 to 41 characters): a fraction and
    # an offset with seconds.
    at_limit = datetime(2026, 6, 1, 9, 0, 0, 500000, timezone(timedelta(hours=1, seconds=1)))
    assert len(at_limit.isoformat()) == 35
    plant.engine.record_maintenance(sup, "GRAN-01", "calibrated", calibration_due=at_limit)
    assert plant.engine.equipment_log("GRAN-01")[-1]["event"] == "maintenance"


def test_a_calibration_date_must_be_an_aware_datetime(plant: Plant) -> None:
    """A naive date cannot be compared with the batch's clock (create_batch raised a raw
    TypeError later); it is refused up front, and nothing is written."""
    sup = plant.sessions["sup1"]
    naive = (plant.clock() + timedelta(days=30)).replace(tzinfo=None)
    for due in (naive, "2027-01-01T00:00:00+00:00"):
        with pytest.raises(BatchError, match=r"calibration due .* not a timezone-aware datetime"):
            plant.engine.register_equipment(
                sup, "GRAN-02", level="Unit", equipment_class="Granulator", calibration_due=due
            )
        with pytest.raises(BatchError, match=r"calibration due .* not a timezone-aware datetime"):
            plant.engine.record_maintenance(sup, "GRAN-01", "calibrated", calibration_due=due)
    assert _count(plant, EquipmentRow) == 3
    assert [e["event"] for e in plant.engine.equipment_log("GRAN-01")] == ["registered", "cleaning"]


# ---------------------------------------------------------------- recipes


def _long_recipe(op_chars: int, phase_chars: int | None = None, param_chars: int = 4) -> Recipe:
    """The granulation recipe with a long operation id (and phase id, parameter id)."""
    recipe = granulation_recipe(version="2")
    assert recipe.procedure is not None
    operation = recipe.procedure.unit_procedures[0].operations[0]
    operation.id = "O" * op_chars
    mix = operation.phases[1]
    if phase_chars is not None:
        mix.id = "P" * phase_chars
    mix.parameters[1].id = "t" * param_chars
    return recipe


@pytest.mark.parametrize(
    ("change", "field", "length", "limit"),
    [
        ({"id": "R" * 129}, "recipe id", 129, 128),
        ({"version": "9" * 33}, "version", 33, 32),
        ({"product_id": "P" * 129}, "product id", 129, 128),
    ],
)
def test_submit_recipe_refuses_over_long_ids(
    plant: Plant, change: dict[str, str], field: str, length: int, limit: int
) -> None:
    recipe = granulation_recipe(version="2").model_copy(update=change)
    with _refused(plant, BatchError, field, length, limit, RecipeRow):
        plant.engine.submit_recipe(plant.sessions["sup1"], recipe)
    at_limit = {k: v[:limit] for k, v in change.items()}
    plant.engine.submit_recipe(
        plant.sessions["sup1"], granulation_recipe(version="2").model_copy(update=at_limit)
    )
    assert _count(plant, RecipeRow) == 2


def test_submit_recipe_refuses_paths_the_record_cannot_hold(plant: Plant) -> None:
    # GRAN/UP-GRAN/ (13) + 250 + /P… (251): a phase path of 514 characters.
    with _refused(plant, BatchError, "procedural element path", 514, 512, RecipeRow):
        plant.engine.submit_recipe(plant.sessions["sup1"], _long_recipe(250, 250))
    # GRAN/UP-GRAN/ (13) + 250 + /PH-MIX/ (8) + 242: a parameter path of 513.
    with _refused(plant, BatchError, "parameter path", 513, 512, RecipeRow):
        plant.engine.submit_recipe(plant.sessions["sup1"], _long_recipe(250, param_chars=242))
    plant.engine.submit_recipe(plant.sessions["sup1"], _long_recipe(250, param_chars=241))
    assert _count(plant, RecipeRow) == 2


# ---------------------------------------------------------------- batches


def _create(plant: Plant, batch_id: str, **change: Any) -> None:
    args: dict[str, Any] = {
        "recipe_id": "MR-GRAN",
        "version": "1",
        "lot_id": "P-LOT",
        "planned": Quantity(value=Decimal("100"), unit="kg"),
        "equipment": ["GRAN-01", "BLEND-01"],
    }
    args.update(change)
    plant.engine.create_batch(plant.sessions["sup1"], batch_id, **args)


@pytest.mark.parametrize(
    ("field", "change", "length", "limit"),
    [
        ("batch id", {}, BATCH_ID_CHARS + 1, BATCH_ID_CHARS),
        ("lot id", {"lot_id": "L" * 129}, 129, 128),
        ("unit", {"planned": Quantity(value=Decimal("100"), unit="k" * 17)}, 17, 16),
        ("planned quantity", {"planned": Quantity(value=Decimal(NUMBER + "0"))}, 65, 64),
    ],
)
def test_create_batch_refuses_over_long_text(
    plant: Plant, field: str, change: dict[str, Any], length: int, limit: int
) -> None:
    batch_id = "B" * length if field == "batch id" else "B-1"
    with _refused(plant, BatchError, field, length, limit, BatchRow):
        _create(plant, batch_id, **change)
    assert _count(plant, BatchRow) == 0


def test_a_batch_id_at_the_limit_is_weighed_and_charged(plant: Plant) -> None:
    """52 characters: its weighing and charge ids (batch id + /CH- + 8 hex) fill 64."""
    batch_id = "B" * BATCH_ID_CHARS
    plant.start_batch(batch_id, phases=(HEAT,))
    weighings = plant.dispense(batch_id)
    assert max(len(w) for w in weighings) <= 64
    assert len(plant.engine.charges(batch_id)) == 2


def test_create_batch_refuses_element_ids_a_signature_cannot_name(plant: Plant) -> None:
    # Paths of up to 512 characters (a parameter path at 512): the recipe is accepted,
    # but batch id + "/" + phase path exceeds gx_signature.record_id for a long batch id.
    sup = plant.sessions["sup1"]
    recipe = _long_recipe(250, phase_chars=240)  # phase path 13 + 250 + 1 + 240 = 504
    plant.engine.submit_recipe(sup, recipe)
    plant.engine.sign_recipe("MR-GRAN", "2", "Performed", plant.creds("sup1"))
    plant.engine.sign_recipe("MR-GRAN", "2", "Approved", plant.creds("qa2"))
    with _refused(plant, BatchError, "signed element id", 512 + 1, 512, BatchRow):
        _create(plant, "B" * 8, version="2")  # 8 + 1 + 504 = 513
    _create(plant, "B" * 7, version="2")
    assert _count(plant, BatchRow) == 1


def test_record_item_refuses_an_over_long_item_id(plant: Plant) -> None:
    plant.start_batch("B-1", phases=(HEAT,))
    op1 = plant.sessions["op1"]
    with _refused(plant, BatchError, "sample id", 129, 128, RecordItemRow):
        plant.engine.record_item(op1, "B-1", "sample", "S" * 129, {"amount": "50 g"})
    plant.engine.record_item(op1, "B-1", "sample", "S" * 128, {"amount": "50 g"})
    assert [i["item_id"] for i in plant.engine.record_items("B-1")] == ["S" * 128]


def _run_to_completion(plant: Plant, batch_id: str) -> None:
    plant.start_batch(batch_id, phases=(HEAT,))
    plant.dispense(batch_id)
    engine, now = plant.engine, plant.clock()
    for path, parameter, unit, reading in (
        (HEAT, "temperature", "Cel", "70"),
        (MIX, "speed", "rpm", "120"),
        (BLEND, "speed", "rpm", "120"),
    ):
        if path != HEAT:
            engine.command(plant.sessions["op1"], batch_id, path, "Start")
        engine.capture(
            [CapturedValue(batch_id, f"{path}/{parameter}", "T", Decimal(reading), unit, now)],
            source=OT_SOURCE,
        )
        engine.complete_phase(batch_id, path, plant.creds("op1"))
        engine.verify_phase(batch_id, path, plant.creds("op2"))


def test_complete_batch_refuses_an_actual_quantity_with_too_many_digits(plant: Plant) -> None:
    _run_to_completion(plant, "B-1")
    op1 = plant.sessions["op1"]
    too_long = Quantity(value=Decimal("97." + "0" * 62), unit="kg")  # 65 characters
    with _refused(plant, BatchError, "actual quantity", 65, 64, LotRow):
        plant.engine.complete_batch(op1, "B-1", too_long)
    assert plant.engine.batch("B-1")["actual_quantity"] is None
    plant.engine.complete_batch(op1, "B-1", Quantity(value=Decimal("97." + "0" * 61), unit="kg"))
    assert plant.engine.batch("B-1")["actual_quantity"] == "97." + "0" * 61


# ------------------------------------------------------------ dispensing


@pytest.mark.parametrize(
    ("field", "length", "limit"), [("weighed quantity", 65, 64), ("container id", 129, 128)]
)
def test_weigh_refuses_over_long_text(plant: Plant, field: str, length: int, limit: int) -> None:
    plant.start_batch("B-1", phases=(HEAT,))

    def weigh(chars: int) -> str:
        actual, container = Decimal("20.000"), None
        if field == "weighed quantity":
            actual = Decimal("20." + "0" * (chars - 3))
        else:
            container = "C" * chars
        return plant.engine.weigh(
            "B-1",
            phase=HEAT,
            material_id="API-PARA",
            lot_id="API-L1",
            actual=actual,
            balance_id=BALANCE,
            performer=plant.creds("op1"),
            container_id=container,
        )

    with _refused(plant, DispenseRefused, field, length, limit, WeighingRow):
        weigh(length)
    weighing = weigh(limit)
    (row,) = plant.engine.weighings("B-1")
    assert row["weighing_id"] == weighing
    assert len(row["actual" if field == "weighed quantity" else "container_id"]) == limit


# ---------------------------------------------------------- manual entry


def test_manual_entry_refuses_a_unit_its_row_cannot_hold(plant: Plant) -> None:
    """16 characters: a captured value may carry 256 (it is a leaf, not a row)."""
    plant.start_batch("B-1", phases=(HEAT,))

    def enter(unit: str) -> int:
        value = CapturedValue(
            "B-1", f"{HEAT}/temperature", "HANDHELD", Decimal("70.1"), unit, plant.clock()
        )
        return plant.engine.manual_entry(plant.sessions["op1"], value, reason="handheld probe")

    with _refused(plant, CaptureRefused, "unit", 17, 16, ValueRow):
        enter("u" * 17)
    assert plant.engine.values("B-1") == []
    enter("u" * 16)
    (value,) = plant.engine.values("B-1")
    assert value["unit"] == "u" * 16 and value["manual"]


def test_report_data_quality_refuses_a_parameter_its_exception_cannot_reference(
    plant: Plant,
) -> None:
    plant.start_batch("B-1", phases=(HEAT,))
    too_long = f"{HEAT}/" + "p" * (512 - len(HEAT))  # 513 characters
    with _refused(plant, BatchError, "parameter", 513, 512, ExceptionRow):
        plant.engine.report_data_quality("B-1", too_long, "malformed payload")
    plant.engine.report_data_quality("B-1", too_long[:512], "malformed payload")
    with plant.db.read() as conn:
        (reference,) = conn.execute(select(ExceptionRow.reference)).scalars().all()
    assert reference == too_long[:512]


# ------------------------------------------------- ERP orders, materials, lots


def _planned(**change: Any) -> PlannedBatch:
    fields: dict[str, Any] = {
        "order_id": "PO-1",
        "product_id": "TAB-500",
        "recipe_id": "MR-GRAN",
        "quantity": Decimal("100"),
        "unit": "kg",
        "lot_id": "P-LOT",
    }
    fields.update(change)
    return PlannedBatch(**fields)


def _in_transaction(plant: Plant, write: Callable[[Any], str]) -> str:
    with plant.db.transaction() as conn:
        return write(conn)


@pytest.mark.parametrize(
    ("field", "key", "limit"),
    [
        ("order id", "order_id", 128),
        ("lot id", "lot_id", 128),
        ("unit", "unit", 16),
        ("quantity", "quantity", 64),
    ],
)
def test_plan_batch_refuses_over_long_text(plant: Plant, field: str, key: str, limit: int) -> None:
    def plan(chars: int) -> str:
        text = _text(field, chars)
        order = _planned(**{key: Decimal(text) if key == "quantity" else text})
        return _in_transaction(
            plant,
            lambda conn: plan_batch(plant.engine, conn, ERP, order, source="BOD 1", replace=True),
        )

    with _refused(plant, BatchError, field, limit + 1, limit, PlannedBatchRow):
        plan(limit + 1)
    assert plan(limit) == "added"
    assert _count(plant, PlannedBatchRow) == 1


def test_define_material_and_receive_lot_refuse_over_long_text(plant: Plant) -> None:
    def define(material_id: str) -> str:
        return _in_transaction(
            plant,
            lambda conn: define_material(
                plant.engine,
                conn,
                ERP,
                material_id,
                description=None,
                classes=[],
                properties=[],
                source="BOD 1",
            ),
        )

    def receive(lot_id: str = "L-ERP", quantity: str = "5", unit: str = "kg") -> str:
        return _in_transaction(
            plant,
            lambda conn: erp_receive_lot(
                plant.engine, conn, ERP, lot_id, "M" * 128, Decimal(quantity), unit, source="BOD 1"
            ),
        )

    with _refused(plant, BatchError, "material id", 129, 128, MaterialDefinitionRow):
        define("M" * 129)
    assert define("M" * 128) == "added"
    for field, kwargs, limit in (
        ("lot id", lambda n: {"lot_id": "L" * n}, 128),
        ("quantity", lambda n: {"quantity": _text("quantity", n)}, 64),
        ("unit", lambda n: {"unit": "k" * n}, 16),
    ):
        with _refused(plant, BatchError, field, limit + 1, limit, LotRow):
            receive(**kwargs(limit + 1))
        assert receive(**{"lot_id": f"L-{field}", **kwargs(limit)}) == "added"
