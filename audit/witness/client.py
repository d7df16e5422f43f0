"""Asking a witness for a cosignature (the log's side of C2SP tlog-witness).

:func:`add_checkpoint` sends one request. :func:`request_cosignature` is what a
log runs: it starts from the size it believes the witness holds (0 if it has
no idea), and when the witness answers 409 with its own size it proves
consistency from *that* size and asks again, as the spec intends. The answer
is checked against the witness's key: only a valid cosignature of this exact
checkpoint comes back.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audit.errors import AuditError, CheckpointError, ProofError
from audit.note import split_note
from audit.witness.cosignature import CosignerVerifier
from audit.witness.errors import CosignatureError, WitnessRefused, WitnessUnavailable
from audit.witness.protocol import (
    ADD_CHECKPOINT_PATH,
    SIZE_CONTENT_TYPE,
    format_add_checkpoint,
    parse_size_answer,
    parse_tlog_checkpoint,
)

__all__ = [
    "Cosigned",
    "WitnessView",
    "add_checkpoint",
    "append_cosignatures",
    "probe_witness",
    "request_cosignature",
]

MAX_ANSWER_BYTES = 64 * 1024
ProofSource = Callable[[int], Sequence[bytes]]
"""Gives the consistency proof from an old tree size to the checkpoint's size."""


def add_checkpoint(
    url: str, old_size: int, proof: Sequence[bytes], note: str, *, timeout: float = 10.0
) -> str:
    """POST one add-checkpoint request; returns the witness's signature lines.

    Raises :class:`WitnessRefused` for a 4xx answer (``size`` set on a 409 with
    the witness's size) and :class:`WitnessUnavailable` when the witness cannot
    be reached or fails (5xx).
    """
    body = format_add_checkpoint(old_size, proof, note)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessUnavailable(f"witness URL {url!r} is not an http(s) URL")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    path = parts.path.rstrip("/") + ADD_CHECKPOINT_PATH
    try:
        connection.request("POST", path, body, {"Content-Type": "text/plain; charset=utf-8"})
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER_BYTES + 1)
        content_type = response.getheader("Content-Type", "")
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise WitnessUnavailable(f"witness {url} unreachable: {exc}") from exc
    finally:
        connection.close()
    if len(answer) > MAX_ANSWER_BYTES:
        raise WitnessUnavailable(f"witness {url} answered with more than {MAX_ANSWER_BYTES} bytes")
    if status == 200:
        try:
            return answer.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WitnessUnavailable(f"witness {url} answered with non-UTF-8 text") from exc
    detail = answer[:200].decode("utf-8", "replace").strip()
    if status == 409 and content_type.split(";")[0].strip() == SIZE_CONTENT_TYPE:
        try:
            size = parse_size_answer(answer)
        except CheckpointError as exc:
            raise WitnessUnavailable(f"witness {url} sent a malformed size: {exc}") from exc
        raise WitnessRefused(f"witness {url} holds size {size}, not {old_size}", 409, size)
    if 400 <= status < 500:
        raise WitnessRefused(f"witness {url} refused the checkpoint ({status}): {detail}", status)
    raise WitnessUnavailable(f"witness {url} failed ({status}): {detail}")


@dataclass(frozen=True)
class Cosigned:
    """A witness's cosignature on a checkpoint."""

    witness: CosignerVerifier
    line: str
    timestamp: int
    old_size: int


def _cosignature_from(text: str, lines: str, witness: CosignerVerifier) -> tuple[str, int]:
    """The line of ``witness``'s valid cosignature among the answer's ``lines``."""
    try:
        _, signatures = split_note(text + "\n" + lines)
    except CheckpointError as exc:
        raise CosignatureError(f"witness {witness.name} answered malformed lines: {exc}") from exc
    for signature, line in zip(signatures, lines.splitlines(keepends=True), strict=True):
        if witness.matches(signature):
            return line, witness.verify(text, signature)
    raise CosignatureError(f"the answer holds no cosignature by witness {witness.name}")


def request_cosignature(
    url: str,
    note: str,
    witness: CosignerVerifier,
    prove: ProofSource,
    *,
    old_size: int = 0,
    timeout: float = 10.0,
    attempts: int = 3,
) -> Cosigned:
    """Get ``witness``'s cosignature on ``note``, following 409 answers with new proofs.

    ``prove(size)`` returns the consistency proof from ``size`` to the
    checkpoint (empty for size 0 or the checkpoint's own size). A witness that
    holds a larger size than the checkpoint cannot cosign it (the log was
    rolled back, or the witness saw a fork): that :class:`WitnessRefused` is
    raised as it came.
    """
    text, _ = split_note(note)
    tree_size = parse_tlog_checkpoint(text).tree_size
    size = old_size
    for _attempt in range(attempts):
        try:
            proof = list(prove(size)) if 0 < size < tree_size else []
        except ProofError as exc:
            raise WitnessRefused(
                f"cannot prove size {size} to {tree_size}: {exc}", 409, size
            ) from exc
        try:
            lines = add_checkpoint(url, size, proof, note, timeout=timeout)
        except WitnessRefused as refused:
            if refused.status != 409 or refused.size is None or refused.size == size:
                raise
            if refused.size > tree_size:
                raise WitnessRefused(
                    f"witness {url} already cosigned size {refused.size}, larger than this "
                    f"checkpoint's {tree_size}: the log was rolled back or forked",
                    409,
                    refused.size,
                ) from refused
            size = refused.size
            continue
        line, timestamp = _cosignature_from(text, lines, witness)
        return Cosigned(witness, line, timestamp, size)
    raise WitnessRefused(f"witness {url} kept changing its size; gave up", 409, size)


def append_cosignatures(note: str, lines: Sequence[str]) -> str:
    """``note`` with cosignature lines added (each once), as a cosigned checkpoint."""
    text, _ = split_note(note)
    present = set(note[len(text) + 1 :].splitlines(keepends=True))
    extra = [line for line in lines if line not in present]
    for line in extra:
        if not line.endswith("\n"):
            raise AuditError("a signature line ends with a newline")
        present.add(line)
    return note + "".join(extra)


@dataclass(frozen=True)
class WitnessView:
    """What a witness holds for a log, compared with one checkpoint of it.

    ``size`` is the size of the latest checkpoint the witness cosigned (0 if
    none); ``fork`` is True when it cosigned another root at this very size.
    """

    size: int
    checkpoint_size: int
    fork: bool = False

    @property
    def behind(self) -> bool:
        """True when the witness saw more of the log than this checkpoint holds.

        For the newest checkpoint of a log, that means entries were removed or
        the log was rolled back after the witness saw them.
        """
        return self.size > self.checkpoint_size

    def describe(self) -> str:
        """One line for people."""
        if self.fork:
            return f"the witness cosigned another root at size {self.checkpoint_size}: a fork"
        if self.behind:
            return (
                f"the witness holds size {self.size}, beyond this checkpoint's "
                f"{self.checkpoint_size}: the log lost entries the witness saw"
            )
        return f"the witness holds size {self.size} (checkpoint: {self.checkpoint_size})"


def probe_witness(url: str, note: str, *, timeout: float = 10.0) -> WitnessView:
    """Ask a witness which size it holds for ``note``'s log, changing nothing.

    The spec has no read API, but its add-checkpoint answers tell: the
    checkpoint is sent with its own size as the old size, so a witness that
    holds another size answers 409 with it, one that holds this checkpoint
    cosigns it again (state unchanged), and one that holds another root at
    this size answers 409 without a size — a fork.
    """
    text, _ = split_note(note)
    size = parse_tlog_checkpoint(text).tree_size
    try:
        add_checkpoint(url, size, [], note, timeout=timeout)
    except WitnessRefused as refused:
        if refused.status != 409:
            raise
        if refused.size is None:
            return WitnessView(size, size, fork=True)
        return WitnessView(refused.size, size)
    return WitnessView(size, size)
