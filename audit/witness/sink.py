"""Witnesses as checkpoint sinks: each automatic checkpoint is sent to a witness.

:class:`WitnessSink` implements :class:`~audit.anchoring.sink.CheckpointSink`:
the publisher hands it each checkpoint with a consistency prover, it asks the
witness for a cosignature (following the witness's 409 size answers) and
returns the cosignature line as a ``"cosignature"`` receipt, which the
publisher stores beside the checkpoint. A witness that cannot be reached is
:class:`~audit.errors.SinkUnavailable` (retried with back-off); a witness
that refuses — the log forked or was rolled back, or it does not know this
log — is :class:`~audit.errors.SinkRefused`, an alarm.

:func:`witness_report` is the verifier's side: the stored checkpoint plus its
cosignature receipts, counted against the trusted witnesses and quorum.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.anchoring.sink import PublishedCheckpoint, Receipt
from audit.errors import AnchorError, CheckpointError, SinkRefused, SinkUnavailable
from audit.witness.client import append_cosignatures, request_cosignature
from audit.witness.cosignature import CosignerVerifier, parse_cosigner_vkey
from audit.witness.errors import CosignatureError, WitnessRefused, WitnessUnavailable
from audit.witness.verify import CosignatureReport, WitnessKey, verify_cosignatures

__all__ = [
    "RECEIPT_KIND",
    "WitnessSink",
    "cosigned_with_receipts",
    "sink_from_config",
    "witness_report",
]

RECEIPT_KIND = "cosignature"


class WitnessSink:
    """Publishes checkpoints to one C2SP witness at ``url`` whose key is ``witness``."""

    def __init__(
        self,
        url: str,
        witness: CosignerVerifier,
        *,
        name: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.witness = witness
        self._name = name or f"witness:{witness.name}"
        self.timeout = timeout
        self._held: dict[str, int] = {}  # origin -> size the witness is believed to hold
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The sink's name (its receipts are stored under it)."""
        return self._name

    @property
    def kind(self) -> str:
        """Receipts are C2SP cosignature lines."""
        return RECEIPT_KIND

    def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
        """Get the witness's cosignature on ``checkpoint``."""
        try:
            note = checkpoint.note.decode("utf-8")
        except UnicodeDecodeError as exc:  # pragma: no cover - PublishedCheckpoint parsed it
            raise SinkRefused("checkpoint is not UTF-8") from exc
        with self._lock:
            held = self._held.get(checkpoint.origin, 0)
        if held > checkpoint.tree_size:
            held = 0  # let the witness say what it holds (and refuse a rollback itself)
        try:
            cosigned = request_cosignature(
                self.url,
                note,
                self.witness,
                checkpoint.prove_consistency,
                old_size=held,
                timeout=self.timeout,
            )
        except WitnessUnavailable as exc:
            raise SinkUnavailable(str(exc)) from exc
        except WitnessRefused as exc:
            if exc.size is not None:
                with self._lock:
                    self._held[checkpoint.origin] = exc.size
            raise SinkRefused(str(exc)) from exc
        except CosignatureError as exc:
            raise SinkRefused(f"witness {self.witness.name} answered badly: {exc}") from exc
        with self._lock:
            self._held[checkpoint.origin] = checkpoint.tree_size
        return Receipt(self.name, RECEIPT_KIND, cosigned.line.encode(), datetime.now(UTC))


def sink_from_config(options: Mapping[str, Any], base: Path) -> WitnessSink:
    """``kind = "witness"`` of an ``[[anchoring.sink]]`` table.

    ``url`` (the witness's submission prefix) and ``vkey`` (its cosigner key,
    ``name+id+base64``, or ``vkey_file`` relative to the configuration file)
    are required; ``name`` and ``timeout`` (seconds) are optional.
    """
    unknown = sorted(set(options) - {"kind", "url", "vkey", "vkey_file", "name", "timeout"})
    if unknown:
        raise AnchorError(f"witness sink: unknown setting(s) {', '.join(unknown)}")
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise AnchorError('witness sink needs url = "http://host:port[/prefix]"')
    if ("vkey" in options) == ("vkey_file" in options):
        raise AnchorError("witness sink needs exactly one of vkey or vkey_file (its cosigner key)")
    try:
        if "vkey" in options:
            vkey = str(options["vkey"])
        else:
            vkey = (base / str(options["vkey_file"])).read_text(encoding="utf-8")
        witness = parse_cosigner_vkey(vkey)
        timeout = float(options.get("timeout", 10.0))
    except OSError as exc:
        raise AnchorError(f"witness sink: cannot read vkey_file: {exc.strerror or exc}") from exc
    except (CheckpointError, TypeError, ValueError) as exc:
        raise AnchorError(f"witness sink: {exc}") from exc
    name = options.get("name")
    return WitnessSink(url, witness, name=str(name) if name else None, timeout=timeout)


def cosigned_with_receipts(note: str, receipts: Iterable[Receipt]) -> str:
    """``note`` with the cosignature lines of its ``"cosignature"`` receipts appended."""
    extra: list[str] = []
    for receipt in receipts:
        if receipt.kind != RECEIPT_KIND:
            continue
        try:
            line = receipt.data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not a signature line: counts for nothing
        if line.startswith("— ") and line.endswith("\n") and line.count("\n") == 1:
            extra.append(line)
    return append_cosignatures(note, extra)


def witness_report(
    note: str,
    receipts: Iterable[Receipt],
    witnesses: Sequence[CosignerVerifier | WitnessKey],
    quorum: int,
    *,
    now: datetime | None = None,
) -> CosignatureReport:
    """k-of-n check of a stored checkpoint with its stored cosignature receipts.

    Receipts come from the audit database, so they are information: a forged
    one does not verify, a deleted one lowers the count below the quorum.
    """
    try:
        return verify_cosignatures(
            cosigned_with_receipts(note, receipts), witnesses, quorum, now=now
        )
    except CosignatureError:
        raise
    except CheckpointError as exc:
        raise CosignatureError(f"stored checkpoint cannot carry cosignatures: {exc}") from exc
