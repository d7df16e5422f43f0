"""gxpmes' trust core: a signed, append-only, independently verifiable audit trail.

Usable on its own (``import audit``); it imports nothing from ``gxpmes`` or ``isa95``.

* :mod:`audit.canonical` — RFC 8785 canonical bytes of entries
* :mod:`audit.entry` — who / what / when / why, chained by hash
* :mod:`audit.merkle` — RFC 9162 Merkle log over densely stored hashes
* :mod:`audit.blocks` — value blocks: one entry for many values, each provable on its own
* :mod:`audit.note`, :mod:`audit.checkpoint` — C2SP signed checkpoints (Ed25519)
* :mod:`audit.keys` — encrypted key files, key registry, rotation, revocation
* :mod:`audit.ledger` — append-only storage on SQLite / PostgreSQL, signed tree heads
* :mod:`audit.verify` — verification reports and stand-alone proof checks
"""

from audit.canonical import canonicalize
from audit.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEvent, Entry
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    CanonicalizationError,
    CheckpointError,
    EntryError,
    ProofError,
    SigningKeyError,
    StorageError,
)
from audit.keys import KeyRegistry, TrustedKey
from audit.ledger import BatchReceipt, BlockReceipt, ConsistencyProof, InclusionProof, Ledger
from audit.note import NoteSigner, NoteVerifier
from audit.verify import (
    Problem,
    VerificationReport,
    verify_consistency,
    verify_inclusion,
    verify_ledger,
)

__all__ = [
    "Actor",
    "AppendOnlyViolation",
    "AuditError",
    "AuditEvent",
    "BatchReceipt",
    "BlockReceipt",
    "CanonicalizationError",
    "Checkpoint",
    "CheckpointError",
    "ConsistencyProof",
    "Entry",
    "EntryError",
    "InclusionProof",
    "KeyRegistry",
    "Ledger",
    "NoteSigner",
    "NoteVerifier",
    "Problem",
    "ProofError",
    "SigningKeyError",
    "StorageError",
    "TrustedKey",
    "VerificationReport",
    "canonicalize",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_ledger",
]
