"""A batch id is data, never a path: report file names stay one portable component."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gxpmes.reports.filenames import report_stem

PORTABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def test_plain_ids_are_kept() -> None:
    assert report_stem("B-2026-0001") == "B-2026-0001"
    assert report_stem("lot_7.b") == "lot_7.b"


def test_hostile_ids_are_made_safe() -> None:
    for hostile in ("../../x", "/etc/passwd", "..", ".", "", "a/b", "a\\b", "CON", "nul.txt"):
        stem = report_stem(hostile)
        assert PORTABLE.fullmatch(stem), (hostile, stem)
        assert stem != hostile


@given(st.text(max_size=300))
def test_any_id_is_one_portable_component(batch_id: str) -> None:
    stem = report_stem(batch_id)
    assert PORTABLE.fullmatch(stem) and len(stem) <= 100
    assert "/" not in stem and "\\" not in stem and stem not in (".", "..")


@given(st.text(max_size=40), st.text(max_size=40))
def test_different_ids_never_share_a_file(a: str, b: str) -> None:
    if a != b:
        assert report_stem(a) != report_stem(b)
