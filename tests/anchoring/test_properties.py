"""Properties: the log against any set of outside checkpoints; the trust-file parser."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from audit.anchoring.trust import parse_trust
from audit.checkpoint import Checkpoint
from audit.entry import GENESIS_PREV, Actor, AuditEvent, encode_entry
from audit.errors import TrustPolicyError
from audit.merkle import extend_frontier, frontier_root, record_hash
from audit.verify import Problem, RowTuple, verify_rows

OP = Actor("op", "Op")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORIGIN = "example.org/log"


def build(tags: list[str]) -> tuple[list[RowTuple], list[Checkpoint]]:
    """Rows of a log with one entry per tag, and the checkpoint at every size."""
    rows: list[RowTuple] = []
    checkpoints = [Checkpoint(ORIGIN, 0, frontier_root([]), GENESIS_PREV, T0)]
    frontier: list[bytes] = []
    prev = GENESIS_PREV
    for seq, tag in enumerate(tags):
        event = AuditEvent(OP, "capture", "v", tag)
        canonical = encode_entry(seq, T0 + timedelta(seconds=seq), prev, event)
        leaf = record_hash(canonical)
        interior = b"".join(extend_frontier(frontier, seq, leaf))
        rows.append((seq, canonical, leaf, interior))
        prev = leaf
        checkpoints.append(Checkpoint(ORIGIN, seq + 1, frontier_root(frontier), leaf, T0))
    return rows, checkpoints


logs = st.lists(st.sampled_from("abc"), min_size=1, max_size=40)


@given(logs, st.data())
def test_log_is_checked_against_every_anchor(tags: list[str], data: st.DataObject) -> None:
    rows, checkpoints = build(tags)
    sizes = data.draw(st.lists(st.integers(0, len(tags)), max_size=6))
    anchors = [(f"cp{s}", checkpoints[s]) for s in sizes]
    report = verify_rows(rows, origin=ORIGIN, anchors=anchors)
    assert report.ok and report.checkpoints_checked == sum(1 for s in sizes if s > 0)
    # Cut the log: caught exactly when an anchor vouches for more than is left.
    keep = data.draw(st.integers(0, len(tags)))
    cut = verify_rows(rows[:keep], origin=ORIGIN, anchors=anchors)
    assert cut.ok == (max(sizes, default=0) <= keep)
    if not cut.ok:
        assert cut.problem is Problem.TRUNCATED


@given(logs, st.data())
def test_a_rewrite_is_caught_by_any_anchor_above_the_common_prefix(
    tags: list[str], data: st.DataObject
) -> None:
    _rows, checkpoints = build(tags)
    prefix = data.draw(st.integers(0, len(tags) - 1))
    forged_tags = [*tags[:prefix], *("x" + t for t in tags[prefix:])]
    forged, _ = build(forged_tags)
    sizes = data.draw(st.lists(st.integers(1, len(tags)), min_size=1, max_size=6))
    report = verify_rows(forged, origin=ORIGIN, anchors=[(f"{s}", checkpoints[s]) for s in sizes])
    assert report.ok == all(s <= prefix for s in sizes)
    if not report.ok:
        assert report.problem is Problem.CHECKPOINT_INCONSISTENT


settings = st.sampled_from(
    [
        "vkey",
        "public_key",
        "name",
        "valid_from",
        "valid_until",
        "revoked_at",
        "revocation_reason",
        "roots",
        "intermediates",
        "certificate",
        "quorum",
        "require_timestamp",
    ]
)
toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=12)
    | st.datetimes(timezones=st.just(UTC) | st.none()),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["checkpoints", "checkpoint_key", "tsa", "witnesses", "witness", "x"])


@given(st.dictionaries(keys, toml_values, max_size=5))
def test_trust_parser_refuses_anything_malformed_with_its_own_error(data: dict[str, Any]) -> None:
    data = {k: v for k, v in data.items() if v is not None}
    with contextlib.suppress(TrustPolicyError):
        parse_trust(data, Path("/nonexistent"), "fuzz")


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["kind", "path", "url", "roots", "timeout", "directory", "name"]),
            toml_values,
            max_size=5,
        ),
        max_size=3,
    )
)
def test_sink_configuration_refuses_anything_malformed_with_its_own_error(
    entries: list[dict[str, Any]],
) -> None:
    from audit.anchoring.config import sinks_from_config
    from audit.errors import AnchorError

    with contextlib.suppress(AnchorError):
        sinks_from_config({"sink": entries}, Path("/nonexistent"))
