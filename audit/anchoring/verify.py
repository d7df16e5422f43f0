"""Verification anchored outside the database: a trust file and every checkpoint given.

:func:`verify_anchored` checks a ledger with trust taken only from a
:class:`~audit.anchoring.trust.TrustPolicy`:

* tree heads must be signed by the file's checkpoint keys, valid at their
  time under the file's validity and revocations (the database's key
  registry and revocations are ignored — reported as information only);
* every checkpoint *given* (files, a checkpoint directory such as the
  directory sink's) must be signed by a trusted key valid at its time; with
  RFC 3161 tokens (``<file>.tsr`` beside it, or receipts in the database)
  each token must verify under a trusted TSA, cover exactly that note, be
  no earlier than the checkpoint's own time, and the key must still be valid
  at the TSA's time — so a key revoked at T cannot sign a checkpoint
  "dated" before T after the fact; ``require_timestamp`` makes the token
  mandatory: a checkpoint without one is not used (a warning), and when no
  checkpoint given has one verification fails. A given checkpoint that fails
  any other check — or whose token contradicts it — fails verification.
* the log must hold every trusted checkpoint's size with its root and chain
  head (consistency with *each*, not only the newest);
* the checkpoint copies kept in the database are checked too: a copy that
  is trusted (as above) must be consistent like the rest; an untrusted copy
  is reported as information (anyone with SQL access can insert one);
* with witnesses in the trust file, the newest trusted checkpoint must carry
  at least ``quorum`` cosignatures (in the note, ``<file>.cosig`` beside it,
  or cosignature receipts in the database).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from audit.anchoring.directory import read_checkpoint_dir
from audit.anchoring.store import StoredCheckpoint, stored_checkpoints
from audit.anchoring.trust import TrustPolicy
from audit.anchoring.tsa import KIND as TSA_KIND
from audit.anchoring.tsa import TimestampContradiction, check_timestamp
from audit.checkpoint import Checkpoint, OpenedCheckpoint, open_checkpoint
from audit.errors import AnchorError, AuditError, CheckpointError
from audit.keys import TrustedKey
from audit.ledger import Ledger
from audit.note import split_note
from audit.verify import (
    Problem,
    VerificationReport,
    check_checkpoint_signature,
    verify_rows,
)

__all__ = ["GivenCheckpoint", "collect_checkpoints", "verify_anchored"]

COSIGNATURE_KIND = "cosignature"
_NO_TOKEN = "no valid RFC 3161 time-stamp token"


@dataclass
class GivenCheckpoint:
    """A checkpoint handed to verification, with the evidence found beside it."""

    source: str
    note: str
    tokens: list[bytes] = field(default_factory=list)
    cosignatures: list[str] = field(default_factory=list)
    external: bool = True


def collect_checkpoints(
    files: Sequence[str | Path] = (), directories: Sequence[str | Path] = ()
) -> list[GivenCheckpoint]:
    """Checkpoints from files and checkpoint directories, with ``.tsr`` and ``.cosig`` beside."""
    given: list[GivenCheckpoint] = []
    paths: list[tuple[str, Path, str]] = []
    for directory in directories:
        for name, note in read_checkpoint_dir(directory):
            paths.append((f"{Path(directory) / name}", Path(directory) / name, note))
    for file in files:
        path = Path(file)
        try:
            paths.append((str(path), path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"cannot read checkpoint file {path}: {exc}") from exc
    for source, path, note in paths:
        item = GivenCheckpoint(source, note)
        token = path.with_name(path.name + ".tsr")
        cosig = path.with_name(path.name + ".cosig")
        try:
            if token.exists():
                item.tokens.append(token.read_bytes())
            if cosig.exists():
                item.cosignatures.append(cosig.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"cannot read the evidence beside {path}: {exc}") from exc
        given.append(item)
    return given


def _head_names(ledger: Ledger) -> list[str]:
    names: list[str] = []
    for _size, note in ledger.iter_tree_heads():
        try:
            signatures = split_note(note)[1]
        except CheckpointError:
            continue
        names.extend(s.name for s in signatures if s.name not in names)
    return names


def _trust_checkpoint(
    item: GivenCheckpoint, keys: Sequence[TrustedKey], policy: TrustPolicy
) -> tuple[OpenedCheckpoint | None, str, datetime | None]:
    """``(opened, "", TSA time)`` if ``item`` is trusted, else ``(None, why, None)``."""
    try:
        opened = open_checkpoint(item.note)
    except CheckpointError as exc:
        return None, f"malformed: {exc}", None
    problem, detail, key_id = check_checkpoint_signature(opened, keys)
    if problem is not None:
        return None, f"{problem}: {detail}", None
    # The token covers the note as the log signed it; a copy may carry cosignatures since.
    text = opened.text
    first = item.note[len(text) + 1 :].split("\n", 1)[0]
    stamped = dict.fromkeys([item.note.encode("utf-8"), f"{text}\n{first}\n".encode()])
    key = next(k for k in keys if k.key_id == key_id)
    # A token that does not verify (another note, an untrusted TSA, junk someone put in
    # the database) is no evidence and is passed over; one that verifies and contradicts
    # the checkpoint (a later time line; the key not valid at the TSA's time) fails it.
    unusable = []
    stamped_at: datetime | None = None
    for token in item.tokens:
        for candidate in stamped:
            try:
                gen_time, _tsa = check_timestamp(
                    token, candidate, opened.checkpoint.timestamp, policy.authorities
                )
            except TimestampContradiction as exc:
                return None, f"RFC 3161 token: {exc}", None
            except AnchorError as exc:
                unusable.append(str(exc))
                continue
            late = key.problem_at(gen_time)
            if late is not None:
                return None, f"time-stamped at {gen_time.isoformat()}, when {late}", None
            stamped_at = gen_time if stamped_at is None else min(stamped_at, gen_time)
    if stamped_at is not None:
        return opened, "", stamped_at
    if policy.require_timestamp:
        why = "; ".join(dict.fromkeys(unusable)) if unusable else "none found"
        return (
            None,
            f"{_NO_TOKEN} (the trust file requires one): {why}",
            None,
        )
    return opened, "", None


def _from_database(stored: StoredCheckpoint) -> GivenCheckpoint:
    item = GivenCheckpoint(f"database checkpoint #{stored.id}", stored.note, external=False)
    for receipt in stored.receipts:
        if receipt.kind == TSA_KIND:
            item.tokens.append(receipt.data)
        elif receipt.kind == COSIGNATURE_KIND:
            item.cosignatures.append(receipt.data.decode("utf-8", "replace"))
    return item


def _parses(note: str) -> bool:
    try:
        split_note(note)
    except CheckpointError:
        return False
    return True


def _with_evidence(item: GivenCheckpoint, by_note: dict[str, GivenCheckpoint]) -> GivenCheckpoint:
    """``item`` with the tokens and cosignatures the database holds for the same note text."""
    if not _parses(item.note):
        return item
    found = by_note.get(split_note(item.note)[0])
    if found is None:
        return item
    return GivenCheckpoint(
        item.source,
        item.note,
        [*item.tokens, *(t for t in found.tokens if t not in item.tokens)],
        [*item.cosignatures, *(c for c in found.cosignatures if c not in item.cosignatures)],
        item.external,
    )


def _witness_problem(
    newest: GivenCheckpoint, same_note: Sequence[GivenCheckpoint], policy: TrustPolicy
) -> str | None:
    """Why the newest checkpoint lacks the witness quorum, or None."""
    from audit.witness.cosignature import parse_cosigner_vkey
    from audit.witness.verify import verify_cosignatures

    text, _signatures = split_note(newest.note)
    lines = newest.note[len(text) + 1 :]
    for item in same_note:
        lines += item.note[len(split_note(item.note)[0]) + 1 :]
        for extra in item.cosignatures:
            lines += extra if extra.endswith("\n") else extra + "\n"
    merged = text + "\n" + "".join(dict.fromkeys(lines.splitlines(keepends=True)))
    trusted = [parse_cosigner_vkey(w.vkey) for w in policy.witnesses]
    try:
        report = verify_cosignatures(merged, trusted, 0)
    except AuditError as exc:
        return f"cosignatures of {newest.source} cannot be read: {exc}"
    by_id = {v.key_id: w for v, w in zip(trusted, policy.witnesses, strict=True)}
    counted = []
    for cosignature in report.valid:
        witness = by_id[cosignature.key_id]
        when = cosignature.time
        if witness.revoked_at is not None and when >= witness.revoked_at:
            continue
        if witness.valid_from is not None and when < witness.valid_from:
            continue
        if witness.valid_until is not None and when >= witness.valid_until:
            continue
        counted.append(cosignature.name)
    if len(counted) >= policy.witness_quorum:
        return None
    return (
        f"the newest checkpoint ({newest.source}, size {report.tree_size}) carries "
        f"{len(counted)} valid witness cosignature(s), the trust file requires "
        f"{policy.witness_quorum}"
    )


def verify_anchored(
    ledger: Ledger,
    policy: TrustPolicy,
    *,
    given: Sequence[GivenCheckpoint] = (),
    progress: Callable[[int], None] | None = None,
    deep: bool = False,
) -> VerificationReport:
    """Verify ``ledger`` with trust from ``policy`` against every checkpoint in ``given``.

    Returns the usual :class:`~audit.verify.VerificationReport`;
    ``checkpoints_checked`` counts the trusted checkpoints the log was found
    consistent with, ``warnings`` carries the information that did not count
    (untrusted database copies, the database's own revocations).
    """
    # A key given without a name is trusted under the names the log's heads and the
    # given checkpoints are signed with: the name is part of the key hash.
    names = _head_names(ledger)
    for item in given:
        try:
            names.extend(s.name for s in split_note(item.note)[1] if s.name not in names)
        except CheckpointError:
            continue  # reported when the checkpoint itself is checked
    keys = policy.checkpoint_keys(names or ["gxpmes"])
    warnings: list[str] = []
    anchors: list[tuple[str, Checkpoint]] = []
    trusted_items: list[tuple[GivenCheckpoint, Checkpoint]] = []

    def failed(problem: Problem, detail: str) -> VerificationReport:
        return VerificationReport(
            ok=False,
            entries=0,
            tree_size=0,
            root="",
            problem=problem,
            detail=detail,
            warnings=warnings,
        )

    stored = stored_checkpoints(ledger.engine)
    # Tokens and cosignatures are signed by their TSA or witness: whichever copy holds
    # them, they are evidence for the same note.
    by_note: dict[str, GivenCheckpoint] = {}
    for copy in stored:
        evidence = _from_database(copy)
        known = by_note.setdefault(split_note(copy.note)[0] if _parses(copy.note) else "", evidence)
        if known is not evidence:
            known.tokens.extend(evidence.tokens)
            known.cosignatures.extend(evidence.cosignatures)
    given = [_with_evidence(item, by_note) for item in given]
    unstamped: list[str] = []
    for item in given:
        opened, why, _when = _trust_checkpoint(item, keys, policy)
        if opened is None and why.startswith(_NO_TOKEN):
            # No evidence either way (the TSA sink skips checkpoints while it catches up):
            # not used as an anchor, and it vouches for nothing.
            unstamped.append(f"checkpoint {item.source} not used: {why}")
            continue
        if opened is None:
            kind = (
                Problem.CHECKPOINT_MALFORMED if why.startswith("malformed") else Problem.UNKNOWN_KEY
            )
            if "revoked" in why or "expired" in why or "not valid before" in why:
                kind = Problem.REVOKED_KEY
            return failed(kind, f"checkpoint {item.source} is not trusted: {why}")
        anchors.append((item.source, opened.checkpoint))
        trusted_items.append((item, opened.checkpoint))
    if unstamped and not trusted_items:
        return failed(
            Problem.UNKNOWN_KEY,
            "no checkpoint given carries a valid RFC 3161 time-stamp token, which the trust "
            f"file requires; {unstamped[0]}",
        )
    warnings.extend(unstamped)
    checked_notes = {item.note for item, _cp in trusted_items}
    for copy in stored:
        if copy.note in checked_notes:
            continue  # the same note as a checkpoint given from outside: checked already
        item = _from_database(copy)
        opened, why, _when = _trust_checkpoint(item, keys, policy)
        if opened is None:
            warnings.append(f"{item.source} (size {copy.tree_size}) not used: {why}")
            continue
        anchors.append((item.source, opened.checkpoint))
        trusted_items.append((item, opened.checkpoint))
    revoked_in_db = [k for k in ledger.keys.list_keys() if k.revoked_at is not None]
    for key in revoked_in_db:
        warnings.append(
            f"the database records key {key.key_id} as revoked at {key.revoked_at}; "
            "only the trust file's revocations count"
        )
    if policy.witness_quorum > 0:
        if not trusted_items:
            return failed(
                Problem.UNKNOWN_KEY,
                "the trust file requires witness cosignatures but no trusted checkpoint was given",
            )
        newest_item, _newest = max(trusted_items, key=lambda t: t[1].tree_size)
        body = newest_item.note[: len(split_note(newest_item.note)[0])]
        same = [i for i, _c in trusted_items if i.note.startswith(body)]
        problem = _witness_problem(newest_item, same, policy)
        if problem is not None:
            return failed(Problem.UNKNOWN_KEY, problem)
    with ledger.snapshot_blocks() as (rows, heads, blocks):
        report = verify_rows(
            rows,
            trusted_keys=keys,
            origin=ledger.origin,
            progress=progress,
            deep=deep,
            heads=heads,
            head_keys=keys,
            anchors=anchors,
            blocks=blocks,
        )
    report.warnings.extend(warnings)
    return report
