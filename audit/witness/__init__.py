"""C2SP transparency-log witnesses for the audit trail.

* :mod:`~audit.witness.cosignature` — Ed25519 ``cosignature/v1`` lines (tlog-cosignature);
* :mod:`~audit.witness.protocol` — the ``add-checkpoint`` wire format (tlog-witness);
* :mod:`~audit.witness.state` — the witness's per-log state, moved by compare-and-set;
* :mod:`~audit.witness.witness` and :mod:`~audit.witness.server` — the witness and its
  HTTP server;
* :mod:`~audit.witness.client` — a log asking a witness for a cosignature;
* :mod:`~audit.witness.verify` — k-of-n cosignature verification.

A witness run by another site keeps the latest checkpoint of this site's log it
has seen and cosigns only checkpoints consistent with it, so a log rewritten or
cut back after a checkpoint was witnessed can no longer gather cosignatures,
and its older cosigned checkpoints prove what it held.
"""

from __future__ import annotations

from audit.witness.client import (
    Cosigned,
    WitnessView,
    add_checkpoint,
    append_cosignatures,
    probe_witness,
    request_cosignature,
)
from audit.witness.cosignature import Cosigner, CosignerVerifier, parse_cosigner_vkey
from audit.witness.errors import (
    CosignatureError,
    WitnessError,
    WitnessRefused,
    WitnessUnavailable,
)
from audit.witness.protocol import (
    AddCheckpointRequest,
    TlogCheckpoint,
    format_add_checkpoint,
    parse_add_checkpoint,
    parse_tlog_checkpoint,
)
from audit.witness.server import WitnessServer, serve_in_thread
from audit.witness.state import LogState, WitnessStore
from audit.witness.verify import (
    CosignatureReport,
    WitnessCosignature,
    merge_cosigned,
    verify_cosignatures,
)
from audit.witness.witness import KnownLog, LogKey, Witness, WitnessAnswer

__all__ = [
    "AddCheckpointRequest",
    "CosignatureError",
    "CosignatureReport",
    "Cosigned",
    "Cosigner",
    "CosignerVerifier",
    "KnownLog",
    "LogKey",
    "LogState",
    "TlogCheckpoint",
    "Witness",
    "WitnessAnswer",
    "WitnessCosignature",
    "WitnessError",
    "WitnessRefused",
    "WitnessServer",
    "WitnessStore",
    "WitnessUnavailable",
    "WitnessView",
    "add_checkpoint",
    "append_cosignatures",
    "format_add_checkpoint",
    "merge_cosigned",
    "parse_add_checkpoint",
    "parse_cosigner_vkey",
    "parse_tlog_checkpoint",
    "probe_witness",
    "request_cosignature",
    "serve_in_thread",
    "verify_cosignatures",
]
