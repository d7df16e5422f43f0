"""Tables of the electronic batch record (EBR) engine."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from gxpmes.identity.schema import AppBase

__all__ = [
    "EBR_APPEND_ONLY",
    "BatchRow",
    "ChargeRow",
    "DeviationRow",
    "EquipmentLogRow",
    "EquipmentRow",
    "ExceptionRow",
    "GenealogyRow",
    "LotRow",
    "RecipeRow",
    "RecordItemRow",
    "RejectRow",
    "StepRow",
    "ValueBlockRow",
    "ValueKeyRow",
    "ValueRow",
    "WeighingRow",
]

_ID = BigInteger().with_variant(Integer, "sqlite")


class RecipeRow(AppBase):
    """A master recipe version; usable for batches only once approved."""

    __tablename__ = "ebr_recipe"

    recipe_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[str] = mapped_column(Text)  # RFC 8785 JSON of the isa95 Recipe
    status: Mapped[str] = mapped_column(String(16))  # Draft | Approved
    created_at: Mapped[str] = mapped_column(String(40))


class EquipmentRow(AppBase):
    """Equipment as the EBR sees it: status, cleaning and calibration (211.67, 211.68)."""

    __tablename__ = "ebr_equipment"

    equipment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    level: Mapped[str] = mapped_column(String(32))
    equipment_class: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))  # Available | In use | Out of service
    clean: Mapped[bool] = mapped_column(Boolean)
    cleaned_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    calibration_due: Mapped[str] = mapped_column(String(40))
    current_batch: Mapped[str | None] = mapped_column(String(128), nullable=True)


class EquipmentLogRow(AppBase):
    """Equipment logbook (211.182): use, cleaning, maintenance, status changes. Append-only."""

    __tablename__ = "ebr_equipment_log"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    equipment_id: Mapped[str] = mapped_column(String(128), index=True)
    event: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[str] = mapped_column(String(40))
    by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text)


class LotRow(AppBase):
    """A material lot with status and remaining quantity."""

    __tablename__ = "ebr_lot"

    lot_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    material_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))  # Quarantine | Released | Rejected
    quantity: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    # Expiry (or retest) date: no dispensing from the lot from then on.
    expires_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class BatchRow(AppBase):
    """A batch and its record's lifecycle state."""

    __tablename__ = "ebr_batch"

    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    recipe_id: Mapped[str] = mapped_column(String(128))
    recipe_version: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[str] = mapped_column(String(128))
    lot_id: Mapped[str] = mapped_column(String(128))
    planned_quantity: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    actual_quantity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    equipment: Mapped[str] = mapped_column(Text)  # JSON list of equipment ids
    status: Mapped[str] = mapped_column(String(32))
    procedure_state: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    executed_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    closed_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class StepRow(AppBase):
    """A procedural element of a batch (unit procedure, operation, phase) and its ISA-88 state."""

    __tablename__ = "ebr_step"

    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    equipment_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ValueRow(AppBase):
    """A process value that is an audit entry of its own: a manual entry (and a value
    captured before value blocks), ``leaf`` 0; its entry ``seq`` makes it tamper-evident.

    Captured values have no row here: each is leaf ``leaf`` of its value block
    ``seq`` (read from the block's leaves), found through :class:`ValueBlockRow`.
    """

    __tablename__ = "ebr_value"

    seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    leaf: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    batch_id: Mapped[str] = mapped_column(String(128))
    parameter: Mapped[str] = mapped_column(String(512))
    tag: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    source_ts: Mapped[str] = mapped_column(String(40))
    server_ts: Mapped[str] = mapped_column(String(40))
    quality: Mapped[str] = mapped_column(String(16))
    manual: Mapped[bool] = mapped_column(Boolean)
    in_limits: Mapped[bool] = mapped_column(Boolean)
    # The source's own identity of the value (connector dedup key): a value
    # delivered twice by the plant side is recorded once.
    source_key: Mapped[str | None] = mapped_column(String(512), nullable=True)

    __table_args__ = (
        Index("ix_ebr_value_batch", "batch_id", "parameter"),
        # Partial: only values that carry a key (from connectors) are indexed,
        # so API captures without one pay nothing for it.
        Index(
            "ux_ebr_value_source_key",
            "source_key",
            unique=True,
            sqlite_where=text("source_key IS NOT NULL"),
            postgresql_where=text("source_key IS NOT NULL"),
        ),
        # SQLite: the rows are the (seq, leaf) B-tree itself, no second one for the key.
        {"sqlite_with_rowid": False},
    )


class ValueBlockRow(AppBase):
    """One parameter's values in one value block: the index of captured values. Append-only.

    A capture call writes one ``value.block`` entry per batch; this row says
    that block ``seq`` holds ``count`` values of ``parameter`` (leaves
    ``first_leaf`` … ``last_leaf``, the last one's server time kept for stale
    checks). The values themselves are the block's leaves (the RFC 8785
    records the entry commits to), read from the log, never copied.
    """

    __tablename__ = "ebr_value_block"

    seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    parameter: Mapped[str] = mapped_column(String(512), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128))
    count: Mapped[int] = mapped_column(Integer)
    first_leaf: Mapped[int] = mapped_column(Integer)
    last_leaf: Mapped[int] = mapped_column(Integer)
    last_server_ts: Mapped[str] = mapped_column(String(40))

    __table_args__ = (
        Index("ix_ebr_value_block_batch", "batch_id", "parameter", "seq"),
        {"sqlite_with_rowid": False},
    )


class ValueKeyRow(AppBase):
    """The source key of a recorded value (connector dedup key) and which value it is.

    Only values that carry a key have a row; the primary key makes a second
    recording of one key impossible, whichever process tries. Append-only.
    """

    __tablename__ = "ebr_value_key"

    source_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    seq: Mapped[int] = mapped_column(_ID)
    leaf: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = ({"sqlite_with_rowid": False},)


class WeighingRow(AppBase):
    """Material weighed/dispensed into a batch (211.101), verified by a second person."""

    __tablename__ = "ebr_weighing"

    weighing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), index=True)
    material_id: Mapped[str] = mapped_column(String(128))
    lot_id: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(64))
    tolerance: Mapped[str] = mapped_column(String(64))
    actual: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    balance_id: Mapped[str] = mapped_column(String(128))
    performed_by: Mapped[str] = mapped_column(String(64))
    weighed_at: Mapped[str] = mapped_column(String(40))
    # The phase whose bill-of-materials line this dispenses, and the container it went into.
    phase: Mapped[str | None] = mapped_column(String(512), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ChargeRow(AppBase):
    """A dispensed container charged into the unit of a phase (211.101(c)). Append-only."""

    __tablename__ = "ebr_charge"

    charge_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), index=True)
    phase: Mapped[str] = mapped_column(String(512))
    # Indexed, not unique: "charged once" is checked under the write lock, and a forged
    # second row must reach verification (which names it), not fail at insert.
    weighing_id: Mapped[str] = mapped_column(String(64), index=True)
    container_id: Mapped[str] = mapped_column(String(128))
    equipment_id: Mapped[str] = mapped_column(String(128))
    charged_by: Mapped[str] = mapped_column(String(64))
    charged_at: Mapped[str] = mapped_column(String(40))


class ExceptionRow(AppBase):
    """An exception to review: out-of-limit, bad quality, stale data, manual entry, change."""

    __tablename__ = "ebr_exception"

    exception_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(512))
    raised_at: Mapped[str] = mapped_column(String(40))
    assessed: Mapped[bool] = mapped_column(Boolean, default=False)
    assessment: Mapped[str | None] = mapped_column(Text, nullable=True)


class DeviationRow(AppBase):
    """A deviation: open › investigated › closed, with impact assessment (211.192)."""

    __tablename__ = "ebr_deviation"

    deviation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), index=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    opened_by: Mapped[str] = mapped_column(String(64))
    investigation: Mapped[str | None] = mapped_column(Text, nullable=True)
    impact: Mapped[str | None] = mapped_column(Text, nullable=True)
    closure: Mapped[str | None] = mapped_column(Text, nullable=True)


class GenealogyRow(AppBase):
    """Consumed lot → produced lot, for where-used / where-from queries. Append-only."""

    __tablename__ = "ebr_genealogy"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    consumed_lot: Mapped[str] = mapped_column(String(128), index=True)
    produced_lot: Mapped[str] = mapped_column(String(128), index=True)
    quantity: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str] = mapped_column(String(128))


class RecordItemRow(AppBase):
    """Samples taken, labels issued and in-process control results (211.188(b)). Append-only."""

    __tablename__ = "ebr_record_item"

    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # sample | label | ipc
    content: Mapped[str] = mapped_column(Text)  # RFC 8785 JSON
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[str] = mapped_column(String(40))


class RejectRow(AppBase):
    """Plant input a connector refused (dead letter): kept, with why and from where. Append-only.

    The raw payload is kept up to :data:`gxpmes.connectors.rejects.MAX_KEPT` bytes;
    its full size and SHA-256 are kept always, so an oversized poison message
    is still identified.
    """

    __tablename__ = "ebr_ot_reject"

    reject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[str] = mapped_column(String(40))
    connector: Mapped[str] = mapped_column(String(128))  # the connector's configured identity
    client_id: Mapped[str] = mapped_column(String(256))  # MQTT client id / OPC UA client
    origin: Mapped[str] = mapped_column(String(512))  # MQTT topic, OPC UA node, publisher
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(String(256), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    payload_size: Mapped[int] = mapped_column(Integer)
    payload_sha256: Mapped[str] = mapped_column(String(64))


EBR_APPEND_ONLY = (
    "ebr_equipment_log",
    "ebr_value",
    "ebr_value_block",
    "ebr_value_key",
    "ebr_weighing",
    "ebr_genealogy",
    "ebr_record_item",
    "ebr_charge",
    "ebr_ot_reject",
)
