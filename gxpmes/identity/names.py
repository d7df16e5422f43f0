"""User ids and printed names that identify exactly one person (21 CFR 11.100(a), 11.50).

A user id is stored NFKC-normalised (full-width ``ｏｐ１`` is ``op1``) and must be
unique *case-insensitively* and by *look*: its letters come from one script
(no Cyrillic ``а`` among Latin letters), and its skeleton — case folded, with
the Cyrillic and Greek letters that look like Latin ones mapped to them —
must differ from every existing id's. So ``QA2`` and an all-Cyrillic ``ԛа2``
are both refused next to ``qa2``.

Printed names are unique among all accounts, deactivated ones included
(compared NFKC, case-folded, whitespace collapsed). A signature's
manifestation also shows the id, but a reader of a printed batch record
identifies people by name: two "J. Smith" would make a signature ambiguous
on paper, so the name alone must be enough.
"""

from __future__ import annotations

import re
import unicodedata

from gxpmes.errors import UserError

__all__ = ["id_skeleton", "name_key", "normalise_printed_name", "normalise_user_id"]

_ID_PUNCTUATION = frozenset("._-@")

# Letters of other scripts that render like Latin letters (after case folding).
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "е": "e",
        "ѐ": "e",
        "ё": "e",
        "һ": "h",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "ԛ": "q",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "ԁ": "d",
        "ԝ": "w",
        "ү": "y",
        # Greek
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ζ": "z",
        "μ": "u",
        # digits that look like letters
        "0": "o",
        "1": "l",
    }
)


def _script(char: str) -> str:
    """The script of a letter, as the first word of its Unicode name (LATIN, CYRILLIC...)."""
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def normalise_user_id(raw: str) -> str:
    """``raw`` as stored: NFKC; :class:`UserError` unless it is a well-formed, single-script id."""
    if not isinstance(raw, str):
        raise UserError("a user id is text")
    user_id = unicodedata.normalize("NFKC", raw)
    if not user_id or len(user_id) > 64 or user_id != user_id.strip():
        raise UserError(f"invalid user id {raw!r}: 1 to 64 characters, no surrounding spaces")
    scripts = set()
    for char in user_id:
        if char.isalpha():
            scripts.add(_script(char))
        elif not (char.isdigit() and char.isascii()) and char not in _ID_PUNCTUATION:
            raise UserError(
                f"invalid user id {raw!r}: only letters, digits and . _ - @ are allowed"
            )
    if not scripts:
        raise UserError(f"invalid user id {raw!r}: it needs at least one letter")
    if len(scripts) > 1:
        raise UserError(
            f"invalid user id {raw!r}: it mixes scripts ({', '.join(sorted(scripts))}); "
            "letters that look alike would let two ids pass for one"
        )
    return user_id


def id_skeleton(user_id: str) -> str:
    """What ``user_id`` looks like: two ids with the same skeleton are one id to a reader."""
    folded = unicodedata.normalize("NFKC", user_id).casefold()
    return folded.translate(_LOOKALIKES)


def normalise_printed_name(raw: str) -> str:
    """``raw`` NFKC-normalised with inner whitespace collapsed; refused if blank."""
    if not isinstance(raw, str):
        raise UserError("a printed name is text")
    name = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", raw)).strip()
    if not name:
        raise UserError("a user needs a printed name (shown on every signature)")
    if len(name) > 256 or any(unicodedata.category(c).startswith("C") for c in name):
        raise UserError("a printed name is at most 256 printable characters")
    return name


def name_key(printed_name: str) -> str:
    """The form in which two printed names are compared for uniqueness."""
    return normalise_printed_name(printed_name).casefold()
