"""A connector's ingest process: the source's half of ``gxpmes connect`` on a core of its own.

The source (MQTT, OPC UA) receives, decodes, validates and spools in its own
process, with no database connection; the runner forwards from the spool and
captures on the other core. This module holds what both sources share: the
runner's handle on the process (reports over a pipe, restart, stop) and the
rule that the process dies with the runner.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gxpmes.connectors.ingest")

__all__ = ["IngestProcess", "die_with_parent", "send_report"]


def die_with_parent() -> None:
    """Linux: this process is killed when the runner dies (a SIGKILLed connector must not
    leave its MQTT half connected, competing with the next one for the session)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent watch below still applies
        pass


def send_report(report: Any, message: dict[str, Any]) -> bool:
    """Send ``message`` on the ``report`` pipe; False (nothing raised) once the runner is
    gone — a SIGKILLed runner's pipe is closed, which is no error of this process."""
    try:
        report.send(message)
    except (BrokenPipeError, EOFError, OSError):
        return False
    return True


class IngestProcess:
    """The runner's handle on a connector's ingest process.

    Subclasses name the process's ``target`` (a module-level function taking
    ``options, report pipe, stop event, parent pid, report interval``) and its
    ``label``. Offers what the runner's status needs of a source: ``counts``,
    ``broker_dropped``, ``connected``; reads the process's reports as they come
    and starts it again should it die (``ingest_restarts``).
    """

    label = "connector"
    """Names the process in its name and the log."""
    target: Callable[..., None]

    def __init__(self, options: dict[str, Any], *, report_interval: float = 0.5) -> None:
        import multiprocessing

        self.options = options
        self.report_interval = report_interval
        self._context = multiprocessing.get_context("spawn")
        self._base: Counter[str] = Counter()  # counters of earlier processes
        self._last: dict[str, Any] = {}
        self.cpu = 0.0
        """CPU seconds the ingest process used (as of its last report)."""
        self.broker_dropped: int | None = None
        self.connected = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._process: Any = None
        self._watch: threading.Thread | None = None

    @property
    def _slug(self) -> str:
        return self.label.lower().replace(" ", "")

    def start(self) -> None:
        """Start the ingest process and a thread that restarts it should it die."""
        self._spawn()
        self._watch = threading.Thread(
            target=self._watchdog, name=f"{self._slug}-ingest-watch", daemon=True
        )
        self._watch.start()

    def _spawn(self) -> None:
        receive, send = self._context.Pipe(duplex=False)
        self._stop = self._context.Event()
        self._receive = receive
        self._process = self._context.Process(
            target=type(self).target,
            args=(self.options, send, self._stop, os.getpid(), self.report_interval),
            name=f"gxpmes-{self._slug}-ingest",
            daemon=True,
        )
        self._process.start()
        send.close()

    def _watchdog(self) -> None:
        # Reads the reports as they come (a full pipe would block the process) and
        # starts the process again should it die.
        while not self._stopping:
            self._poll(0.2)
            if self._stopping or self._process.is_alive():
                continue
            self._poll()
            with self._lock:
                self._base.update(self._last.get("counts", {}))
                self._base["ingest_restarts"] += 1
                self._last = {}
            log.error(
                "the %s ingest process exited (%s); restarting", self.label, self._process.exitcode
            )
            time.sleep(1.0)
            if not self._stopping:
                self._spawn()

    def _poll(self, wait: float = 0.0) -> None:
        try:
            if wait and not self._receive.poll(wait):  # waiting without holding the lock
                return
        except (EOFError, OSError):
            return
        with self._lock:
            try:
                while self._receive.poll():
                    message = self._receive.recv()
                    if "error" in message:
                        log.error("%s ingest process: %s", self.label, message["error"])
                        continue
                    self._last = message
            except (EOFError, OSError):
                pass
            last = self._last
        if last:
            self.broker_dropped = last.get("broker_dropped")
            self.cpu = float(last.get("cpu", self.cpu))
            if last.get("connected"):
                self.connected.set()
            else:
                self.connected.clear()

    @property
    def counts(self) -> Counter[str]:
        """The ingest process's counters (received, duplicates, rejects, errors...)."""
        self._poll()
        with self._lock:
            total = Counter(self._base)
            total.update(self._last.get("counts", {}))
        return total

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the process to spool and acknowledge what arrived, disconnect and exit."""
        self._stopping = True
        if self._process is None:
            return
        self._stop.set()
        if self._watch is not None:
            self._watch.join(5)
        deadline = time.monotonic() + timeout
        while self._process.is_alive() and time.monotonic() < deadline:
            self._poll(0.1)  # keep reading: the process sends a last report before it exits
        self._process.join(1)
        if self._process.is_alive():
            log.error("the %s ingest process did not stop in %.0f s; killed", self.label, timeout)
            self._process.kill()
            self._process.join(5)
            with self._lock:
                self._base["ingest_kills"] += 1
        self._poll()
