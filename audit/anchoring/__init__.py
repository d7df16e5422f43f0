"""Anchoring the audit log outside its database: automatic checkpoints and their sinks.

The log is tamper-evident only up to the last checkpoint kept where the
attacker cannot write. This package makes keeping them routine, the way
Certificate Transparency logs, sigstore and Go's checksum database do:

* the ledger signs a C2SP checkpoint every N entries or T seconds
  (:mod:`audit.anchoring.publisher`) and stores it in ``audit_checkpoint``;
* a background thread hands each one to the configured **sinks**
  (:class:`~audit.anchoring.sink.CheckpointSink`): a write-once directory
  (:mod:`audit.anchoring.directory`), an RFC 3161 time-stamping authority
  (:mod:`audit.anchoring.tsa`), C2SP witnesses (:mod:`audit.witness`);
* each sink returns a :class:`~audit.anchoring.sink.Receipt`, stored in
  ``audit_checkpoint_receipt`` (:mod:`audit.anchoring.store`);
* a sink that is down is retried with back-off and never blocks an append;
  its lag (entries and seconds behind the newest checkpoint) is reported;
* verification takes its trusted keys and TSA certificates from a trust
  file (:mod:`audit.anchoring.trust`), never from the database, and checks
  the log against every checkpoint it is given.

The sink contract is stated in :mod:`audit.anchoring.sink`.
"""

from audit.anchoring.sink import CheckpointSink, ConsistencyProver, PublishedCheckpoint, Receipt
from audit.anchoring.store import (
    StoredCheckpoint,
    record_checkpoint,
    record_receipt,
    stored_checkpoints,
)

__all__ = [
    "CheckpointSink",
    "ConsistencyProver",
    "PublishedCheckpoint",
    "Receipt",
    "StoredCheckpoint",
    "record_checkpoint",
    "record_receipt",
    "stored_checkpoints",
]
