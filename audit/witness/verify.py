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

__all__ = [
    "CosignatureReport",
    "WitnessCosignature",
    "WitnessKey",
    "merge_cosigned",
    "verify_cosignatures",
]

FUTURE_SKEW = 300
"""Seconds a cosignature's time may be ahead of the verifier's clock."""


@dataclass(frozen=True)
class WitnessKey:
    """A trusted witness key with the interval in which its cosignatures count.

    A cosignature counts when its own time is in ``[valid_from, valid_until)``
    and before ``revoked_at``. (A thief of a witness key can date a cosignature
    before the revocation; a quorum of independent witnesses is the defence.)
    """

    verifier: CosignerVerifier
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None

    def problem_at(self, when: datetime) -> str | None:
        """Why a cosignature made at ``when`` does not count, or None if it does."""
        name = self.verifier.name
        if self.valid_from is not None and when < self.valid_from:
            return f"cosignature from {name} predates its key's validity"
        if self.valid_until is not None and when >= self.valid_until:
            return f"cosignature from {name} is after its key expired"
        if self.revoked_at is not None and when >= self.revoked_at:
            return f"cosignature from {name} is after its key was revoked"
        return None


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

    @property
    def first_witnessed(self) -> datetime | None:
        """The earliest valid cosignature's time: the checkpoint existed by then.

        A checkpoint whose own ``time`` line is much earlier than this was
        back-dated or held back; the signing key must have been valid then.
        """
        return min((c.time for c in self.valid), default=None)

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
    witness_keys: Sequence[CosignerVerifier | WitnessKey],
    quorum: int,
    *,
    now: datetime | None = None,
) -> CosignatureReport:
    """Check ``note``'s cosignatures by ``witness_keys`` against ``quorum``.

    Checking the log's own signature is the caller's job (the checkpoint
    verifier does it); this counts witnesses. A cosignature dated more than
    :data:`FUTURE_SKEW` seconds after ``now`` (default: the current time), or
    outside its :class:`WitnessKey`'s validity, is not counted.
    """
    distinct = {
        k.public_key if isinstance(k, CosignerVerifier) else k.verifier.public_key
        for k in witness_keys
    }
    if quorum < 0 or quorum > len(distinct):
        raise CosignatureError(
            f"a quorum of {quorum} cannot be met by {len(distinct)} distinct trusted witness keys"
        )
    text, signatures = split_note(note)
    checkpoint = parse_tlog_checkpoint(text)
    limit = (now or datetime.now(UTC)).timestamp() + FUTURE_SKEW
    valid: dict[bytes, WitnessCosignature] = {}
    problems: list[str] = []
    for key in witness_keys:
        trusted = key if isinstance(key, WitnessKey) else WitnessKey(key)
        witness = trusted.verifier
        for signature in signatures:
            # Counted per public key: the signed message does not name the witness, so
            # one key trusted under two names must not make one cosignature count twice.
            if not witness.matches(signature) or witness.public_key in valid:
                continue
            try:
                timestamp = witness.verify(text, signature)
            except CosignatureError as exc:
                problems.append(str(exc))
                continue
            if timestamp > limit:
                problems.append(f"cosignature from {witness.name} is dated in the future")
                continue
            invalid = trusted.problem_at(datetime.fromtimestamp(timestamp, UTC))
            if invalid is not None:
                problems.append(invalid)
                continue
            valid[witness.public_key] = WitnessCosignature(witness.name, witness.key_id, timestamp)
    return CosignatureReport(
        checkpoint.origin,
        checkpoint.tree_size,
        quorum,
        len(distinct),
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
