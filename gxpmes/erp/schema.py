"""Tables of the ERP exchange; every one is a projection of the audit log.

* ``erp_route`` — which GMP event writes which documents (configuration, audited).
* ``erp_outbox`` — every outbound document, written in the transaction of the
  event that caused it; append-only: a document is never changed once written.
* ``erp_delivery`` — each document's delivery state (pending › sent ›
  delivered | rejected | unconfirmed), attempts and the last error.
* ``erp_exception`` — a delivery that keeps failing, a rejection by ERP, a
  missing confirmation: shown in the batch's review until resolved.
* ``erp_inbound`` — every inbound BOD taken, by BOD ID (redelivery is a no-op),
  with the outcome that was confirmed; append-only.
* ``erp_reject`` — inbound bytes that were not a document we take (invalid,
  hostile, unknown), kept with the reason; append-only.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import gxpmes.ebr.planning  # noqa: F401  (planned batches and materials are registered with these)
from gxpmes.identity.schema import AppBase

__all__ = [
    "ERP_APPEND_ONLY",
    "DeliveryRow",
    "ErpExceptionRow",
    "InboundRow",
    "OutboxRow",
    "RejectRow",
    "RouteRow",
]

_INT = BigInteger().with_variant(Integer, "sqlite")

ERP_APPEND_ONLY = ("erp_outbox", "erp_inbound", "erp_reject")


class RouteRow(AppBase):
    """Which documents a GMP event writes to the outbox."""

    __tablename__ = "erp_route"

    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    documents: Mapped[str] = mapped_column(Text)  # comma-separated document kinds
    version: Mapped[str] = mapped_column(String(8))  # V0701 | V0600
    sender: Mapped[str] = mapped_column(String(128))  # our LogicalID in ApplicationArea
    confirm: Mapped[bool] = mapped_column(Boolean)  # ERP answers each with a ConfirmBOD
    changed_at: Mapped[str] = mapped_column(String(40))


class OutboxRow(AppBase):
    """One outbound document, exactly as it is (re)sent. Append-only."""

    __tablename__ = "erp_outbox"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # = BOD ID
    position: Mapped[int] = mapped_column(_INT, index=True)  # global order (under the write lock)
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    event: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(String(64))  # kind, e.g. BatchProductionRecord
    root: Mapped[str] = mapped_column(String(64))  # XML root, e.g. ProcessOperationsPerformance
    version: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    confirm: Mapped[bool] = mapped_column(Boolean)
    correlation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[str] = mapped_column(String(40))


class DeliveryRow(AppBase):
    """Where one outbound document stands."""

    __tablename__ = "erp_delivery"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    destination: Mapped[str | None] = mapped_column(String(512), nullable=True)
    sent_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    confirmed_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    confirm_bod_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exception_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ErpExceptionRow(AppBase):
    """A problem of the ERP exchange that a person must look at."""

    __tablename__ = "erp_exception"

    exception_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))  # delivery_failed | rejected | unconfirmed
    detail: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[str] = mapped_column(String(40))
    resolved: Mapped[bool] = mapped_column(Boolean)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class InboundRow(AppBase):
    """An inbound BOD that was taken (accepted or refused with a ConfirmBOD). Append-only."""

    __tablename__ = "erp_inbound"

    bod_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    root: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))  # Accepted | Rejected
    detail: Mapped[str] = mapped_column(Text)
    reply_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)


class RejectRow(AppBase):
    """Inbound bytes refused as a document (dead letter). Append-only.

    Keyed by the SHA-256 of the bytes, so a redelivered poison message is
    kept once; at most :data:`gxpmes.erp.inbound.MAX_KEPT` bytes are kept.
    """

    __tablename__ = "erp_reject"

    reject_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the bytes
    received_at: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(_INT)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reply_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
