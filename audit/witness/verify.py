"""k-of-n witness cosignatures on a checkpoint (the relying party's side).

A checkpoint counts as witnessed when at least ``quorum`` distinct trusted
witnesses cosigned this exact note text. Signature lines of unknown keys are
ignored, as C2SP requires; a line that claims a trusted witness's name and
key ID but does not verify is reported (it is either corruption or forgery).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.note import split_note
from audit.witness.cosignature import CosignerVerifier
from audit.witness.errors import CosignatureError
from audit.witness.protocol import parse_tlog_checkpoint

__all__ = ["CosignatureReport", "WitnessCosignature", "merge_cosigned", "verify_cosignatures"]

FUTURE_SKEW = 300
"""Seconds a cosignature's time may be ahead of the verifier's clock."""


@dataclass(frozen=True)
class WitnessCosignature:
    """One verified cosignature: which witness, and when it cosigned."""

    name: str
    key_id: str
    timestamp: int

    @property
    def time(self) -> datetime:
        """The cosignature's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True)
class CosignatureReport:
    """Which trusted witnesses cosigned a checkpoint, and whether that meets the quorum."""

    origin: str
    tree_size: int
    quorum: int
    witnesses: int
    valid: tuple[WitnessCosignature, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when at least ``quorum`` distinct trusted witnesses cosigned."""
        return len(self.valid) >= self.quorum

    def summary(self) -> str:
        """One line for people."""
        names = ", ".join(c.name for c in self.valid) or "none"
        verdict = "met" if self.ok else "NOT met"
        text = (
            f"witness quorum {verdict}: {len(self.valid)} of {self.witnesses} trusted witnesses "
            f"cosigned {self.origin} at size {self.tree_size} (need {self.quorum}; {names})"
        )
        return text + "".join(f"; {p}" for p in self.problems)

    def as_json(self) -> dict[str, Any]:
        """JSON form for reports."""
        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "quorum": self.quorum,
            "witnesses": self.witnesses,
            "ok": self.ok,
            "valid": [
                {"name": c.name, "key_id": c.key_id, "time": c.time.isoformat()} for c in self.valid
            ],
            "problems": list(self.problems),
        }


def verify_cosignatures(
    note: str,
    witness_keys: Sequence[CosignerVerifier],
    quorum: int,
    *,
    now: datetime | None = None,
) -> CosignatureReport:
    """Check ``note``'s cosignatures by ``witness_keys`` against ``quorum``.

    Checking the log's own signature is the caller's job (the checkpoint
    verifier does it); this counts witnesses. A cosignature dated more than
    :data:`FUTURE_SKEW` seconds after ``now`` (default: the current time) is
    not counted.
    """
    if quorum < 0 or quorum > len(witness_keys):
        raise CosignatureError(
            f"a quorum of {quorum} cannot be met by {len(witness_keys)} trusted witnesses"
        )
    text, signatures = split_note(note)
    checkpoint = parse_tlog_checkpoint(text)
    limit = (now or datetime.now(UTC)).timestamp() + FUTURE_SKEW
    valid: dict[str, WitnessCosignature] = {}
    problems: list[str] = []
    for witness in witness_keys:
        for signature in signatures:
            if not witness.matches(signature) or witness.key_id in valid:
                continue
            try:
                timestamp = witness.verify(text, signature)
            except CosignatureError as exc:
                problems.append(str(exc))
                continue
            if timestamp > limit:
                problems.append(f"cosignature from {witness.name} is dated in the future")
                continue
            valid[witness.key_id] = WitnessCosignature(witness.name, witness.key_id, timestamp)
    return CosignatureReport(
        checkpoint.origin,
        checkpoint.tree_size,
        quorum,
        len(witness_keys),
        tuple(valid.values()),
        tuple(problems),
    )


def merge_cosigned(notes: Iterable[str]) -> str:
    """One note carrying every signature line of several copies of the same checkpoint.

    Raises :class:`CosignatureError` when the copies are not of one note text.
    """
    merged: str | None = None
    text: str | None = None
    seen: set[str] = set()
    for note in notes:
        body, _ = split_note(note)
        if text is None:
            text, merged = body, body + "\n"
        elif body != text:
            raise CosignatureError("cosigned copies are of different checkpoints")
        for line in note[len(body) + 1 :].splitlines(keepends=True):
            if line not in seen:
                seen.add(line)
                merged = (merged or "") + line
    if merged is None:
        raise CosignatureError("no cosigned checkpoint given")
    return merged
