"""Mutated B2MML documents: every read ends within 2 s with a document or an ISA95Error.

Seeds are the real documents in ../shared/b2mml-cases (when present) and
documents our own writer produces from hypothesis models, so the test runs
without ../shared too. Mutations are the ones that broke readers before:
byte flips, truncation, inserted comment / PI / CDATA openers and entity
references, huge numbers, emptied and deleted elements, deleted closing tags.

Each read runs in a worker process with a deadline: a hang kills the worker
and fails the test instead of hanging the run.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa95_strategies import ALL
from shared_paths import CASES

from isa95.b2mml.documents import B2MML
from isa95.errors import ISA95Error

DEADLINE_SECONDS = 2.0
WORKER_START_SECONDS = 120.0  # import, schema compilation and warm-up under a busy CI machine

# The worker reads length-prefixed documents on stdin and answers each with
# "ok", "isa95 <class>" or "foreign" plus the traceback, length-prefixed on stdout.
_WORKER = r"""
import sys, traceback
out, sys.stdout = sys.stdout.buffer, sys.stderr
from isa95.b2mml.documents import B2MML
from isa95.errors import ISA95Error
from isa95.errors import ISA95Error
b2mml = B2MML(sys.argv[1])
from isa95.b2mml.documents import release
release("V0701"), release("V0600")  # the generated bindings load once, before the deadline
def answer(reply):
    out.write(len(reply).to_bytes(8, "big") + reply)
    out.flush()
answer(b"ready")
while True:
    header = sys.stdin.buffer.read(8)
    if len(header) < 8:
        break
    data = sys.stdin.buffer.read(int.from_bytes(header, "big"))
    try:
        document = b2mml.read(data)
        reply = f"ok {document.noun}".encode()
    except ISA95Error as exc:
        reply = f"isa95 {type(exc).__name__}".encode()
    except BaseException:
        reply = b"foreign\n" + traceback.format_exc().encode()
    answer(reply)
"""


class ReaderWorker:
    """A child process reading documents with B2MML.read, one at a time, under a deadline."""

    def __init__(self, schemas: Path, code: str = _WORKER) -> None:
        self.schemas = schemas
        self.code = code
        self.process: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[bytes | None] = queue.Queue()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.code, str(self.schemas)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.replies = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(
            target=_pump, args=(self.process.stdout, self.replies), daemon=True
        ).start()
        ready = self._reply(WORKER_START_SECONDS)
        assert ready == b"ready", f"reader worker did not start: {ready!r}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def read(self, data: bytes, timeout: float = DEADLINE_SECONDS) -> str:
        """The worker's verdict on ``data``; a missed deadline restarts it and raises."""
        if self.process is None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(len(data).to_bytes(8, "big") + data)
        self.process.stdin.flush()
        reply = self._reply(timeout)
        if reply is None:
            died = self.process.poll()
            self.stop()
            if died is not None:
                raise AssertionError(f"the reader process died (exit {died}) on {data!r}")
            raise AssertionError(f"B2MML.read did not finish within {timeout} s: {data!r}")
        return reply.decode("utf-8", errors="replace")

    def _reply(self, timeout: float) -> bytes | None:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return None


def _pump(stream: BinaryIO, replies: queue.Queue[bytes | None]) -> None:
    """Move the worker's length-prefixed replies into ``replies`` until it exits."""
    while True:
        header = stream.read(8)
        if len(header) < 8:
            replies.put(None)
            return
        replies.put(stream.read(int.from_bytes(header, "big")))


@pytest.fixture(scope="module")
def worker(b2mml: B2MML) -> Iterator[ReaderWorker]:
    reader = ReaderWorker(b2mml.schemas.root)
    reader.start()
    yield reader
    reader.stop()


def shared_cases() -> list[bytes]:
    """The real third-party documents, or none when ../shared is absent."""
    return [p.read_bytes() for p in sorted(CASES.rglob("*.xml"))] if CASES.is_dir() else []


# ------------------------------------------------------------------ mutations

_TOKENS = [
    b"<!--",
    b"-->",
    b"<?",
    b"?>",
    b"<?xml",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE x>",
    b"<!",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&undefined;",
    b"<",
    b">",
    b"</",
    b'"',
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"9" * 5000,
    b"68294714393637184",
]
_PROLOG_TOKENS = [
    b"<!--",
    b"<!-- x",
    b"-->",
    b"<?",
    b"<?pi",
    b"?>",
    b"<![CDATA[",
    b"<!DOCTYPE",
    b"<!",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
]
_VALUES = [
    b"",
    b" ",
    b"9" * 5000,
    b"-" + b"9" * 400,
    b"1E+999999999",
    b"1e-999999999",
    b"NaN",
    b"-INF",
    b"0.0000000000000000000000000001",
    b"68294714393637184",
    b"2026-02-30T00:00:00Z",
    b"9999-12-31T23:59:59+14:00",
    b"0001-01-01T00:00:00-14:00",
    b"2026-01-01T00:00:00",
    b"Other",
    b"x" * 1000,
]
# Text-level mutations keep documents schema-valid more often, so they reach the mapping.
_KINDS = [
    "prolog",
    "flip",
    "truncate",
    "insert",
    "delete",
    "drop-close",
    *["value", "empty", "transplant", "drop-leaf", "dup"] * 3,
]
_LEAF = re.compile(rb"<([A-Za-z][\w.-]*)(\s[^<>]*)?>([^<>]*)</\1\s*>")
_CLOSING = re.compile(rb"</[^<>]*>")
_ROOT = re.compile(rb"<[A-Za-z]")


@st.composite
def mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one mutation applied."""
    n = len(data)
    # Half the positions fall in the prolog, where the pre-parse scan works.
    position = draw(st.integers(0, n) | st.integers(0, min(n, 80)))
    kind = draw(st.sampled_from(_KINDS))
    if kind == "flip" and n:
        index = min(position, n - 1)
        byte = data[index] ^ draw(st.integers(1, 255))
        return data[:index] + bytes([byte]) + data[index + 1 :]
    if kind == "prolog":  # just before the root element, or anywhere before it
        root = _ROOT.search(data)
        end = root.start() if root else n
        where = draw(st.just(end) | st.integers(0, end))
        return data[:where] + draw(st.sampled_from(_PROLOG_TOKENS)) + data[where:]
    if kind == "truncate":
        return data[:position]
    if kind == "insert":
        token = draw(st.sampled_from(_TOKENS) | st.binary(min_size=1, max_size=8))
        return data[:position] + token + data[position:]
    if kind == "delete":
        return data[:position] + data[position + draw(st.integers(1, 64)) :]
    leaves = list(_LEAF.finditer(data))
    if kind in ("value", "empty", "transplant", "drop-leaf", "dup") and leaves:
        leaf = draw(st.sampled_from(leaves))
        if kind in ("value", "empty", "transplant"):
            if kind == "value":
                value = draw(st.sampled_from(_VALUES))
            elif kind == "transplant":  # another element's text: valid XML, often wrong type
                value = draw(st.sampled_from(leaves)).group(3)
            else:
                value = b""
            return data[: leaf.start(3)] + value + data[leaf.end(3) :]
        if kind == "drop-leaf":
            return data[: leaf.start()] + data[leaf.end() :]
        return data[: leaf.end()] + leaf.group() + data[leaf.end() :]
    closings = list(_CLOSING.finditer(data))
    if kind == "drop-close" and closings:
        closing = draw(st.sampled_from(closings))
        return data[: closing.start()] + data[closing.end() :]
    return data


@st.composite
def mutated(draw: st.DrawFn, seed: st.SearchStrategy[bytes]) -> bytes:
    """A seed document with one to four mutations."""
    data = draw(seed)
    for _ in range(draw(st.integers(1, 4))):
        data = draw(mutation(data))
    return data


def written_documents(b2mml: B2MML) -> st.SearchStrategy[bytes]:
    """Documents our writer produces from hypothesis models, in both releases."""

    def write(args: tuple[Any, str, str | None]) -> bytes:
        model, version, verb = args
        try:
            return b2mml.write(model, version=version, verb=verb)
        except ISA95Error:  # e.g. a BatchProductionRecord verb missing in one release
            return b2mml.write(model, version=version)

    return st.tuples(
        st.one_of(*ALL.values()),
        st.sampled_from(["V0701", "V0600"]),
        st.sampled_from([None, "Sync", "Process"]),
    ).map(write)


def seeds(b2mml: B2MML) -> st.SearchStrategy[bytes]:
    cases = shared_cases()
    written = written_documents(b2mml)
    return st.one_of(st.sampled_from(cases), written) if cases else written


# ---------------------------------------------------------------------- tests


def check(worker: ReaderWorker, data: bytes) -> str:
    verdict = worker.read(data)
    assert verdict.startswith(("ok", "isa95")), f"foreign exception for {data!r}:\n{verdict}"
    return verdict


@pytest.mark.needs_cases
def test_every_shared_case_reads_or_is_refused(worker: ReaderWorker) -> None:
    cases = shared_cases()
    assert cases
    for data in cases:
        check(worker, data)


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?>\n<!-- unterminated',
        b'<?xml version="1.0"',
        b"<?xml",
        b"<!--",
        b"<!-->",
        b"<![CDATA[",
        b"<!DOC",
        b"\xef\xbb\xbf<!--",
        b"\xff\xfe<\x00!\x00-\x00-\x00",
        b"\xfe\xff\x00<\x00?",
        b"",
    ],
)
def test_truncated_prologs_end_with_an_isa95_error(worker: ReaderWorker, data: bytes) -> None:
    assert check(worker, data).startswith("isa95")


def test_mutated_documents_never_hang_or_leak(b2mml: B2MML, worker: ReaderWorker) -> None:
    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(seeds(b2mml)))
    def run(data: bytes) -> None:
        check(worker, data)

    run()


def test_the_deadline_catches_a_hang(b2mml: B2MML) -> None:
    """The harness itself: a worker that never answers fails the read instead of hanging."""
    never_answers = _WORKER.replace(
        "    data = sys.stdin", "    __import__('time').sleep(3600)\n    data = sys.stdin"
    )
    assert never_answers != _WORKER
    reader = ReaderWorker(b2mml.schemas.root, never_answers)
    reader.start()
    with pytest.raises(AssertionError, match="did not finish within"):
        reader.read(b"<a/>", timeout=0.5)
    assert reader.process is None  # killed, not left running
