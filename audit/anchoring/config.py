"""Sinks and intervals from a configuration table (the ``[anchoring]`` table of a TOML file).

::

    [anchoring]
    every_entries = 10000          # a checkpoint at the latest after this many entries
    every_seconds = 1.0            # ... or this many seconds after the log grew
    retry_max = 60                 # longest back-off between attempts at a down sink

    [[anchoring.sink]]
    kind = "directory"
    path = "/mnt/worm/checkpoints"      # relative paths: relative to the configuration file

    [[anchoring.sink]]
    kind = "rfc3161"
    url = "http://tsa.example.com/tsr"
    roots = ["tsa-root.pem"]            # check each token before storing it (optional)
    directory = "/mnt/worm/checkpoints" # also write <checkpoint file>.tsr there (optional)

    [[anchoring.sink]]
    kind = "witness"                    # see audit.witness

Each ``kind`` names a factory ``sink_from_config(options, base) -> CheckpointSink``
in the module :data:`SINK_FACTORIES` gives, imported when first used; an
optional ``name`` setting names the sink (its receipts are stored under it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from audit.anchoring.directory import DirectorySink
from audit.anchoring.publisher import (
    DEFAULT_EVERY_ENTRIES,
    DEFAULT_EVERY_SECONDS,
    CheckpointPublisher,
)
from audit.anchoring.sink import CheckpointSink
from audit.anchoring.tsa import TimestampAuthority, TimestampSink, load_certificates
from audit.errors import AnchorError
from audit.ledger import Ledger
from audit.note import NoteSigner

__all__ = ["SINK_FACTORIES", "publisher_from_config", "sinks_from_config"]

SINK_FACTORIES: dict[str, str] = {
    "directory": "audit.anchoring.config:directory_sink",
    "rfc3161": "audit.anchoring.config:tsa_sink",
    "witness": "audit.witness.sink:sink_from_config",
}
"""Sink kind → ``module:function`` building it from its options and the config's folder."""

SinkFactory = Callable[[Mapping[str, Any], Path], CheckpointSink]


def _path(options: Mapping[str, Any], key: str, base: Path) -> Path:
    value = options.get(key)
    if not isinstance(value, str) or not value:
        raise AnchorError(f'checkpoint sink {options.get("kind")!r} needs {key} = "..."')
    return base / value


def directory_sink(options: Mapping[str, Any], base: Path) -> CheckpointSink:
    """``kind = "directory"``: ``path`` (required), ``name``."""
    path = _path(options, "path", base)
    return DirectorySink(path, name=options.get("name") or f"directory:{path}")


def tsa_sink(options: Mapping[str, Any], base: Path) -> CheckpointSink:
    """``kind = "rfc3161"``: ``url`` (required), ``roots``, ``directory``, ``timeout``, ``name``."""
    url = options.get("url")
    if not isinstance(url, str):
        raise AnchorError('checkpoint sink "rfc3161" needs url = "http://..."')
    roots = [c for p in options.get("roots", []) for c in load_certificates(base / str(p))]
    authorities = [TimestampAuthority(url, tuple(roots))] if roots else []
    directory = _path(options, "directory", base) if "directory" in options else None
    return TimestampSink(
        url,
        name=options.get("name"),
        authorities=authorities,
        timeout=float(options.get("timeout", 10.0)),
        directory=directory,
    )


def _factory(kind: str) -> SinkFactory:
    target = SINK_FACTORIES.get(kind)
    if target is None:
        raise AnchorError(
            f"unknown checkpoint sink kind {kind!r} (known: {', '.join(sorted(SINK_FACTORIES))})"
        )
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory: SinkFactory = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise AnchorError(f"checkpoint sink kind {kind!r} is not available: {exc}") from exc
    return factory


def sinks_from_config(table: Mapping[str, Any], base: Path) -> list[CheckpointSink]:
    """The sinks of an ``[anchoring]`` table's ``[[anchoring.sink]]`` entries."""
    entries = table.get("sink", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnchorError("[[anchoring.sink]] must be an array of tables")
    sinks = []
    for entry in entries:
        factory = _factory(str(entry.get("kind")))
        try:
            sinks.append(factory(entry, base))
        except (TypeError, ValueError) as exc:  # a setting of the wrong type
            raise AnchorError(f"checkpoint sink {entry.get('kind')!r}: {exc}") from exc
    return sinks


def publisher_from_config(
    ledger: Ledger, table: Mapping[str, Any], base: Path, *, signer: NoteSigner | None = None
) -> CheckpointPublisher:
    """A (not yet started) publisher for ``ledger`` configured by an ``[anchoring]`` table."""
    unknown = sorted(set(table) - {"every_entries", "every_seconds", "retry_max", "sink"})
    if unknown:
        raise AnchorError(f"[anchoring]: unknown setting(s) {', '.join(unknown)}")
    try:
        every_entries = int(table.get("every_entries", DEFAULT_EVERY_ENTRIES))
        every_seconds = float(table.get("every_seconds", DEFAULT_EVERY_SECONDS))
        retry_max = float(table.get("retry_max", 60.0))
    except (TypeError, ValueError) as exc:
        raise AnchorError(f"[anchoring]: intervals must be numbers: {exc}") from exc
    return CheckpointPublisher(
        ledger,
        sinks_from_config(table, base),
        signer=signer,
        every_entries=every_entries,
        every_seconds=every_seconds,
        retry_max=retry_max,
    )
