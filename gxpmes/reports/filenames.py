"""File names of reports: a batch id is data, never a path.

Batch ids are free text in the batch record (a plant may use ``B/2026/001``),
so the id is used as a file name only when it is one, in any file system;
otherwise the unsafe characters are replaced and a short hash of the exact
id keeps two different ids from sharing a file.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["report_stem"]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows refuses whatever the extension.
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


def report_stem(batch_id: str) -> str:
    """The file-name stem of ``batch_id``'s report: a single, portable path component."""
    if _SAFE.fullmatch(batch_id) and not _RESERVED.fullmatch(batch_id):
        return batch_id
    cleaned = _UNSAFE_RUN.sub("_", batch_id).strip("._-")[:80] or "batch"
    digest = hashlib.sha256(batch_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned}-{digest}"
