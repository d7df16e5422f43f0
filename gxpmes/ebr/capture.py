"""OT value capture: limits, quality, timestamps, exceptions, stale data, manual entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, func, select

from audit.blocks import CanonicalLeaves, LeafProof
from audit.canonical import format_timestamp
from audit.db import fetch_one
from audit.entry import MAX_BLOCK_LEAVES, Actor, AuditEvent
from gxpmes.ebr.base import (
    _ACTIVE,
    _CAPTURED_FIELDS,
    _KEY_TYPES,
    CAPTURE_PERMISSION,
    IN_EXECUTION,
    QUALITIES,
    CapturedColumns,
    CapturedValue,
    CaptureSource,
)
from gxpmes.ebr.recipes import RecipeRecords
from gxpmes.ebr.schema import (
    BatchRow,
    ExceptionRow,
    StepRow,
    ValueBlockRow,
    ValueKeyRow,
    ValueRow,
)
from gxpmes.errors import BatchError, CaptureRefused, RecordIntegrityError
from gxpmes.identity.schema import UserRow
from gxpmes.identity.service import Session, _user
from gxpmes.lengths import check_length, length_refusal
from gxpmes.records.images import (
    BLOCK_ACTION,
    INDEX_COLUMNS,
    KEY_COLUMNS,
    VALUE_ACTIONS,
    VALUE_COLUMNS,
    ValueLeaves,
    _json,
    block_index_rows,
    block_value_rows,
    key_row,
    value_leaf,
    value_name,
    value_row,
)
from isa95.errors import ModelError
from isa95.recipe import FormulaParameter, Phase, Recipe

_VALUE_CHARS: int = ValueRow.__table__.c.value.type.length  # type: ignore[attr-defined]
_CLIENT_ID_CHARS = 256
_OBJECT_ID_CHARS = 512  # an audit entry's object id (audit.entry)
MANUAL_ACTION = "value.manual"
BLOCK_OBJECT = "value_block"
"""Object type of value-block entries; the object id is the batch."""
_UTC_Z = orjson.OPT_UTC_Z
_dumps = orjson.dumps
_QUALITY_SET = frozenset(QUALITIES)
_TIME_TYPES = frozenset({datetime, type(None)})
_FIELD_GETTERS = tuple(map(attrgetter, _CAPTURED_FIELDS))
"""One getter per CapturedValue field, in the order of CapturedColumns' columns."""
_TZINFO = attrgetter("tzinfo")
_TEXT_CHARS = 256  # a tag or unit (ebr_value.tag holds 256)
_KEY_CHARS = 512  # a source key (ebr_value_key.source_key holds 512)
_KEY_LOOKUP = 500  # source keys looked up per statement (SQLite allows 32,766 parameters)


class _BatchState(NamedTuple):
    """What capture reads of a batch row."""

    batch_id: str
    status: str
    recipe_id: str
    recipe_version: str


def _stamp_texts(moments: Sequence[datetime]) -> list[str | None]:
    """:func:`format_timestamp` of each time (None for a naive one), in one compiled call.

    orjson writes a time at UTC offset 0 as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (27
    characters, as :func:`format_timestamp`) unless its microseconds are 0; any
    other text (no fraction, another offset, naive) is redone one by one, and so
    is the whole list if an item is not exactly a datetime (a subclass...).
    """
    if set(map(type, moments)) != {datetime}:  # anything else: one by one
        return [_utc_text(m) for m in moments]
    written = _dumps(moments, option=_UTC_Z)[2:-2].decode("ascii").split('","')
    if len(written) != len(moments):  # pragma: no cover - orjson writes one string each
        return [_utc_text(m) for m in moments]
    if set(map(_TZINFO, moments)) != {UTC}:
        # orjson ignores the sub-second part of an offset (+00:00:00.5 is written as
        # the wall time with Z): such times are redone one by one.
        for i, moment in enumerate(moments):
            offset = moment.utcoffset()
            if offset is not None and offset.microseconds:
                written[i] = _utc_text(moment) or ""
    texts: list[str | None] = list(written)
    if set(map(len, written)) == {27}:  # 27 characters: only a UTC time with a fraction
        return texts
    for i, text in enumerate(texts):
        if text is None or len(text) != 27 or text[26] != "Z":
            texts[i] = _utc_text(moments[i])
    return texts


def _first_unrecorded(keys: Sequence[str | None], recorded: set[str]) -> list[int]:
    """Positions of the values to record: no key, or a key neither in ``recorded`` nor
    carried by an earlier value of the call."""
    seen: set[str] = set()
    fresh = []
    for i, key in enumerate(keys):
        if key and type(key) is str:  # any other key is refused by the checks that follow
            if key in recorded or key in seen:
                continue
            seen.add(key)
        fresh.append(i)
    return fresh


def _utc_text(moment: datetime) -> str | None:
    """:func:`format_timestamp` of a time, None for a naive one (or anything but a
    datetime), "" for one whose UTC time is out of range (year 1 at a positive offset)."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        return None
    try:
        return format_timestamp(moment)
    except OverflowError:
        return ""


def _time_refusal(value: CapturedValue) -> str:
    """Why a value's times, one of them not aware, cannot be recorded."""
    for name, moment in (("source", value.source_ts), ("server", value.server_ts)):
        if moment is not None and not isinstance(moment, datetime):
            return f"{name} time {_shown(repr(moment))} is not a datetime"
    if value.source_ts is None:
        return "source time None is not a datetime"
    return "naive timestamp"


def _names_refusal(value: CapturedValue) -> str | None:
    """Why a value's batch id or parameter cannot even be looked up (not text), or None."""
    if isinstance(value.batch_id, str) and isinstance(value.parameter, str):
        return None
    return (
        f"{_shown(str(value.tag))} → batch {_shown(repr(value.batch_id))}, parameter "
        f"{_shown(repr(value.parameter))}: a batch id and a parameter are text"
    )


def _refused_object(batch_id: object) -> str:
    """The object id a refusal is audited under: the batch id given, or (when an audit
    entry cannot name it: empty, too long, not text, a lone surrogate) its repr."""
    if (
        isinstance(batch_id, str)
        and batch_id.strip()
        and len(batch_id) <= _OBJECT_ID_CHARS
        and _encodable(batch_id)
    ):
        return batch_id
    return _shown_all(repr(batch_id))[:_OBJECT_ID_CHARS]


def _encodable(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown_all(text: str) -> str:
    """``text`` with lone surrogates escaped (an audit entry cannot hold them)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(text: str) -> str:
    """Text for a message or an audit entry: at most 40 characters, lone surrogates
    escaped (they have no UTF-8 form)."""
    return text[:40].encode("utf-8", "backslashreplace").decode("utf-8")


def _text_refusal(value: CapturedValue) -> str | None:
    """Why a value's tag, unit or source key cannot be recorded, or None.

    Tag and unit: at most 256 characters; the source key: None (no key) or
    1 to 512 characters; none with a lone surrogate (no UTF-8 form, so no
    RFC 8785 form either). An empty key is refused, not read as "no key": the
    record would not say what was delivered.
    """
    for name, text, most in (
        ("tag", value.tag, _TEXT_CHARS),
        ("unit", value.unit, _TEXT_CHARS),
        ("source key", value.source_key, _KEY_CHARS),
    ):
        if text is None and name == "source key":
            continue
        if not isinstance(text, str):
            return f"{name} {text!r} is not text"
        if name == "source key" and not text:
            return "source key is empty (None for a value without a key)"
        if len(text) > most:
            return f"{name} {_shown(text)!r}… has {len(text)} characters; at most {most}"
        if not _encodable(text):
            return f"{name} {_shown(text)!r} contains a lone surrogate (no UTF-8 form)"
    return None


class _Series:
    """What the values of one batch parameter share in a capture: its limits, the
    JSON text its leaves share, and its row of the value block being built."""

    __slots__ = ("block", "entry", "head", "high", "limits", "low", "middle", "tails", "unit")

    def __init__(self, limits: FormulaParameter | None, head: str, parameter_text: str) -> None:
        self.limits = limits
        self.low = None if limits is None else limits.low
        self.high = None if limits is None else limits.high
        self.unit = None if limits is None else (limits.unit or None)
        self.head = head  # {"account":…,"batch_id":…,"client_id":…,"in_limits":
        # quality → ,"parameter":…,"quality":…,"server_ts":"
        self.middle = {
            q: f',"parameter":{parameter_text},"quality":"{q}","server_ts":"' for q in QUALITIES
        }
        self.tails: dict[tuple[str, str], str] = {}  # (tag, unit) → "tag":…,"unit":…,"value":"
        self.block: _Block | None = None
        self.entry: list[Any] = []


class _Block:
    """One value block being built: its batch, leaves, index rows and key rows."""

    __slots__ = ("batch_id", "index", "keys", "leaves", "position")

    def __init__(self, batch_id: str, position: int) -> None:
        self.batch_id = batch_id
        self.position = position
        self.leaves: list[bytes] = []
        # parameter → [count, first leaf, last leaf, last server time]
        self.index: dict[str, list[Any]] = {}
        self.keys: list[tuple[str, int]] = []  # (source key, leaf)


def _expect_key(
    problems: list[str], expected: dict[Any, tuple[Any, ...]], row: tuple[Any, ...]
) -> None:
    """Expect key row ``row`` (:data:`KEY_COLUMNS`); a source key two values of the log
    carry (a redelivery recorded again after its key row was removed) is a problem."""
    earlier = expected.get(row[0])
    if earlier is not None:
        first, again = sorted((earlier[1:3], row[1:3]))
        problems.append(
            f"source key {row[0]!r} is carried by values {value_name(*first)} and "
            f"{value_name(*again)}: a source key is recorded once"
        )
    expected[row[0]] = row


class ValueCapture(RecipeRecords):
    """OT value capture: limits, quality, timestamps, exceptions, stale data, manual entries."""

    def _limits(self, recipe: Recipe, parameter: str) -> FormulaParameter | None:
        try:
            return recipe.parameter(parameter)
        except ModelError:  # a parameter without limits in the recipe
            return None

    @staticmethod
    def _ahead_of(source_ts: datetime, server_ts: datetime | None, latest: datetime) -> bool:
        """A source or server time lies after ``latest`` (server clock + skew).

        The one check of every capture path (value by value, and column-wise for the
        latest times of a call), so that removing it is seen by its proof.
        """
        return source_ts > latest or (server_ts is not None and server_ts > latest)

    @staticmethod
    def _phase_parameter(recipe: Recipe, path: str) -> FormulaParameter | None:
        """The parameter ``path`` (``proc/up/op/phase/param``) of a phase, or None."""
        head, _, name = path.rpartition("/")
        for element_path, element in recipe.procedural_elements():
            if element_path == head and isinstance(element, Phase):
                return next((p for p in element.parameters if p.id == name), None)
        return None

    def capture(self, values: Sequence[CapturedValue], *, source: CaptureSource) -> list[int]:
        """Record process values in bulk; returns each value's audit sequence number.

        The values of one call are written as value blocks: one ``value.block``
        entry per batch, committing to the RFC 9162 Merkle root of its values'
        records (the block's leaves, in the order given); value ``i`` of a
        batch in this call is ``ebr_value`` row ``(seq, i)`` and is proved on
        its own by :meth:`prove_value`. Every value's seq is its block's.

        ``source`` identifies who delivers them: a service or device account
        whose roles grant :data:`~gxpmes.ebr.base.CAPTURE_PERMISSION` (the
        block entry is written under that account; the block and each value's
        record carry ``source.client_id``, and each record the account). The
        account row is checked against its audit trail before it is trusted.

        All or nothing: if any value is refused (unknown, inactive, locked or
        unauthorised account; batch not executing; phase not active; parameter
        not in the recipe; a batch id or parameter that is not text; a time
        that is not a datetime, or naive; a source or server time more than
        ``future_skew`` ahead of this server's clock; unknown quality) none is
        written, the refusal is audited, and :class:`CaptureRefused` says why.
        Out-of-limit and non-Good values are recorded *and* raise exceptions
        for review.
        """
        if not values:
            return []
        server_now = self._now()
        with self.db.transaction() as conn:
            actor, refused = self._capture_account(conn, source)
            if not refused:
                values = self._not_yet_recorded(conn, values)
                if not values:
                    return []
                assert actor is not None
                prepared = self._plain_blocks(conn, values, server_now, actor, source.client_id)
                refused, blocks, block_of, exceptions = prepared or self._prepare_blocks(
                    conn, values, server_now, actor, source.client_id
                )
                if not refused:
                    return self._write_blocks(
                        conn, blocks, block_of, exceptions, actor, source.client_id
                    )
        with self.db.transaction() as conn:
            self._audit(
                conn,
                actor or self.collector,
                "capture.refused",
                "batch",
                _refused_object(values[0].batch_id),
                new={
                    "count": len(values),
                    "problems": [_shown_all(p) for p in refused[:20]],
                    "account": _shown_all(str(source.account_id)),
                    "client_id": _shown_all(str(source.client_id)[:_CLIENT_ID_CHARS]),
                },
            )
        raise CaptureRefused(
            f"{len(refused)} of {len(values)} values refused, none written: "
            + "; ".join(refused[:5])
        )

    def _capture_account(
        self, conn: Connection, source: CaptureSource
    ) -> tuple[Actor | None, list[str]]:
        """The actor values are recorded under, or why ``source`` may not capture."""
        if not isinstance(source, CaptureSource):
            return None, [f"capture needs a CaptureSource, not {type(source).__name__}"]
        client = source.client_id
        if (
            not isinstance(client, str)
            or not client.strip()
            or len(client) > _CLIENT_ID_CHARS
            or not client.isprintable()
        ):
            return None, [f"client id {str(client)[:40]!r} is blank, too long or not printable"]
        row = self.identity._row(conn, source.account_id)
        if row is None:
            return None, [f"no account {source.account_id!r}"]
        image = tuple(row)
        if self._capture_accounts.get(source.account_id) != image:
            # Trusted once per row image: a role granted by SQL is not a grant.
            try:
                self._check_against_log(
                    conn,
                    self.db.ledger.entries_for("user", row.user_id),
                    {"gx_user": UserRow.user_id == row.user_id},
                )
            except RecordIntegrityError as exc:
                return None, [f"account {row.user_id!r}: {exc}"]
            self._capture_accounts[source.account_id] = image
        user = _user(row)
        if not user.active or user.locked:
            state = "deactivated" if not user.active else "locked"
            return None, [f"account {user.user_id!r} is {state}"]
        if CAPTURE_PERMISSION not in self.identity.permissions(user):
            return None, [
                f"account {user.user_id!r} lacks permission {CAPTURE_PERMISSION!r} "
                "(a service or device account, e.g. role 'OT Device')"
            ]
        return user.actor, []

    def _not_yet_recorded(
        self, conn: Connection, values: Sequence[CapturedValue]
    ) -> Sequence[CapturedValue]:
        """Drop values whose source key is already recorded (redelivered by the plant side)."""
        # Exactly CapturedColumns (whose tuples cannot change): a subclass may answer
        # its columns and its items differently, and any other sequence may yield
        # other values on a second pass, so it is read once, as a list.
        columns = values if type(values) is CapturedColumns else None
        if columns is not None:
            keys = [k for k in columns.source_key if k]
        else:
            values = list(values)
            keys = [v.source_key for v in values if v.source_key]
        if not keys:
            return values
        if set(map(type, keys)) != {str} or not "".join(keys).isascii():
            # Only keys the database can hold are looked up: the others (not text,
            # a lone surrogate) are refused by the checks that follow.
            keys = [k for k in keys if type(k) is str and _encodable(k)]
        # Under the write lock (taken first by the transaction): a key recorded by
        # another process's capture has committed, or that capture has not begun.
        # Driver-level SQL: an expanding IN of SQLAlchemy renders each of the 500
        # parameters in Python per call, which cost more than capture's own work.
        recorded: set[str] = set()
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for start in range(0, len(keys), _KEY_LOOKUP):
                chunk = keys[start : start + _KEY_LOOKUP]
                cursor.execute(
                    "SELECT source_key FROM ebr_value_key "
                    f"WHERE source_key IN ({','.join([mark] * len(chunk))})",
                    chunk,
                )
                recorded.update(row[0] for row in cursor.fetchall())
        finally:
            cursor.close()
        if not recorded and len(set(keys)) == len(keys):
            return values  # the usual call: every key new, none repeated
        if columns is not None:
            return columns.picked(_first_unrecorded(columns.source_key, recorded))
        return [values[i] for i in _first_unrecorded([v.source_key for v in values], recorded)]

    def _check_capture(
        self, conn: Connection, values: Sequence[CapturedValue], server_now: datetime
    ) -> tuple[list[str], dict[str, Any]]:
        problems: list[str] = []
        contexts: dict[str, Any] = {}
        # What values of one batch parameter share (batch, phase, recipe) is checked once
        # per parameter: None when it may take values, else why not.
        shared: dict[tuple[str, str], str | None] = {}
        latest = server_now + self.future_skew
        for value in values:
            pkey = (value.batch_id, value.parameter)
            if (untyped := _names_refusal(value)) is not None:
                problems.append(untyped)
                continue
            if pkey in shared:
                refusal = shared[pkey]
            else:
                refusal = shared[pkey] = self._parameter_refusal(conn, contexts, *pkey)
            if refusal is not None:
                problems.append(f"{value.tag} → {value.batch_id}/{value.parameter}: {refusal}")
                continue
            # Each time's text once: None (naive, not a datetime) or "" (out of range).
            stamps = [_utc_text(value.source_ts)]
            if value.server_ts is not None:
                stamps.append(_utc_text(value.server_ts))
            if value.quality not in QUALITIES:
                refusal = f"quality {value.quality!r} is not Good, Uncertain or Bad"
            elif None in stamps:
                refusal = _time_refusal(value)
            elif "" in stamps:
                refusal = "timestamp out of range: its UTC time is before year 1"
            elif self._ahead_of(value.source_ts, value.server_ts, latest):
                ahead = max(value.source_ts, value.server_ts or value.source_ts)
                refusal = (
                    f"timestamp {format_timestamp(ahead)} is more than "
                    f"{self.future_skew} ahead of the server clock {format_timestamp(server_now)}"
                )
            elif not isinstance(value.value, Decimal):
                refusal = f"value {value.value!r} is not a Decimal (or int)"
            elif not value.value.is_finite():
                refusal = f"value {value.value} is not finite"
            elif len(text := str(value.value)) > _VALUE_CHARS:  # refused, never rounded
                refusal = (
                    f"value {text[:20]}… has {len(text)} characters; "
                    f"a value row holds at most {_VALUE_CHARS} characters"
                )
            else:
                refusal = _text_refusal(value)
            if refusal is not None:
                problems.append(
                    f"{_shown(str(value.tag))} → {value.batch_id}/{value.parameter}: {refusal}"
                )
        return problems, contexts

    def _plain_blocks(
        self,
        conn: Connection,
        values: Sequence[CapturedValue],
        server_now: datetime,
        actor: Actor,
        client_id: str,
    ) -> tuple[list[str], list[_Block], list[int], list[tuple[CapturedValue, str, str]]] | None:
        """:meth:`_prepare_blocks` column by column, for a call of plain values; else None.

        Plain: every parameter may take values, every value is a finite Decimal
        of at most 64 characters, a known quality, aware times not ahead of the
        clock, text tags and units, text or no source keys. Each check runs
        over a whole column in compiled code (``map``, ``set``, ``max``), each
        time column is written by one orjson call, and each leaf by one
        f-string of texts made once per parameter, tag and unit. Anything
        else (a refusal above all) returns None, and :meth:`_prepare_blocks`
        checks value by value and says why: it is the reference this path is
        tested against (same leaves, index, keys and exceptions).
        """
        count = len(values)
        held: tuple[Sequence[Any], ...]
        if type(values) is CapturedColumns:  # held as columns: read as they are
            held = values.columns()
        else:
            held = tuple(list(map(field, values)) for field in _FIELD_GETTERS)
        (
            batch_ids,
            parameters,
            tags,
            numbers,
            units,
            source_ts,
            server_ts,
            qualities,
            keys,
        ) = held
        if (
            set(map(type, numbers)) != {Decimal}
            or set(map(type, qualities)) != {str}  # before set(qualities): a list is no key
            or not set(qualities) <= _QUALITY_SET
            or set(map(type, batch_ids)) | set(map(type, parameters)) != {str}
            # a datetime subclass (it may compare as it likes): the exact path's plain time
            or set(map(type, source_ts)) != {datetime}
            or not set(map(type, server_ts)) <= _TIME_TYPES
            or set(map(type, tags)) | set(map(type, units)) != {str}
            or not set(map(type, keys)) <= _KEY_TYPES
            or not all(map(Decimal.is_finite, numbers))
        ):
            return None
        digits = list(map(str, numbers))
        if max(map(len, digits)) > _VALUE_CHARS:
            return None
        if max(map(len, tags)) > _TEXT_CHARS or max(map(len, units)) > _TEXT_CHARS:
            return None
        sources = _stamp_texts(source_ts)
        if None in sources or "" in sources:
            return None
        given = [t for t in server_ts if t is not None]
        server_text = format_timestamp(server_now)
        if not given:
            servers: list[str | None] = [server_text] * count
        else:
            servers = _stamp_texts([server_now if t is None else t for t in server_ts])
            if None in servers or "" in servers:
                return None
        # Only aware times are compared (a naive one cannot be: the exact path refuses it).
        latest = server_now + self.future_skew
        if self._ahead_of(max(source_ts), max(given, default=None), latest):
            return None
        leaves = ValueLeaves(actor.user_id, client_id)
        text = leaves.text
        contexts: dict[str, Any] = {}
        shared: dict[tuple[str, str], _Series] = {}
        for batch_id, parameter in dict.fromkeys(zip(batch_ids, parameters, strict=True)):
            if self._parameter_refusal(conn, contexts, batch_id, parameter) is not None:
                return None
            shared[(batch_id, parameter)] = _Series(
                self._limits(contexts[batch_id][1], parameter),
                leaves.head(batch_id),
                text(parameter),
            )
        series = list(map(shared.__getitem__, zip(batch_ids, parameters, strict=True)))
        try:
            tails = {
                pair: f'"tag":{text(pair[0])},"unit":{text(pair[1])},"value":"'
                for pair in set(zip(tags, units, strict=True))
            }
            present = [k for k in keys if k is not None] if keys.count(None) != count else []
            if present and ("" in present or max(map(len, present)) > _KEY_CHARS):
                return None  # an empty or too long key: the exact path refuses it
            joined = "".join(present)
            if not present:
                key_texts = ["null"] * count
            elif (
                joined.isascii() and joined.isprintable() and not ('"' in joined or "\\" in joined)
            ):
                key_texts = ["null" if k is None else f'"{k}"' for k in keys]
            else:  # something to escape: the compiled encoder, key by key
                key_texts = ["null" if k is None else _json(k) for k in keys]
        except TypeError:  # the compiled encoder refused a string: the exact path
            return None
        only = next(iter(shared.values())) if len(shared) == 1 else None
        if all(s.limits is None for s in shared.values()) or (
            only is not None  # one parameter: its limits against the extremes (compiled)
            and (only.low is None or min(numbers) >= only.low)
            and (only.high is None or max(numbers) <= only.high)
            and (only.unit is None or set(units) == {only.unit})
        ):
            in_limits = [True] * count
        else:
            in_limits = [
                (s.low is None or n >= s.low)
                and (s.high is None or n <= s.high)
                and (s.unit is None or s.unit == u)
                for s, n, u in zip(series, numbers, units, strict=True)
            ]
        if (
            only is not None
            and len(tails) == 1
            and len(set(qualities)) == 1
            and len(set(in_limits)) == 1
            and len(set(servers)) == 1
        ):
            # One parameter, tag, unit, quality, limit verdict and server time (a
            # historian's usual call): everything but the key, source time and
            # number is one text.
            (tail,) = tails.values()
            start = (
                f"{only.head}{'true' if in_limits[0] else 'false'}{only.middle[qualities[0]]}"
                f'{servers[0]}","source_key":'
            )
            out = [
                f'{start}{key},"source_ts":"{source}",{tail}{d}"}}'.encode()
                for key, source, d in zip(key_texts, sources, digits, strict=True)
            ]
        else:
            out = [
                f"{s.head}{'true' if ok else 'false'}{s.middle[q]}{server}"
                f'","source_key":{key},"source_ts":"{source}",{tails[tag, unit]}{d}"}}'.encode()
                for s, ok, q, server, key, source, tag, unit, d in zip(
                    series,
                    in_limits,
                    qualities,
                    servers,
                    key_texts,
                    sources,
                    tags,
                    units,
                    digits,
                    strict=True,
                )
            ]
        # Blocks: one per batch in the order of first appearance, of at most
        # MAX_BLOCK_LEAVES values each (as the value-by-value path cuts them).
        blocks: list[_Block] = []
        if len(shared) == 1 or len(set(batch_ids)) == 1:
            spans = [
                list(range(start, min(start + MAX_BLOCK_LEAVES, count)))
                for start in range(0, count, MAX_BLOCK_LEAVES)
            ]
            batches = [batch_ids[0]] * len(spans)
        else:
            spans, batches = [], []
            open_span: dict[str, list[int]] = {}
            for i, batch_id in enumerate(batch_ids):
                span = open_span.get(batch_id)
                if span is None or len(span) >= MAX_BLOCK_LEAVES:
                    span = open_span[batch_id] = []
                    spans.append(span)
                    batches.append(batch_id)
                span.append(i)
        block_of = [0] * count
        for position, (batch_id, span) in enumerate(zip(batches, spans, strict=True)):
            block = _Block(batch_id, position)
            blocks.append(block)
            if len(span) == count:
                block.leaves = out
                names, times, marks = parameters, servers, keys
            else:
                block.leaves = [out[i] for i in span]
                names = [parameters[i] for i in span]
                times = [servers[i] for i in span]
                marks = [keys[i] for i in span]
                for i in span:
                    block_of[i] = position
            if only is not None:  # one parameter: first, last and count are the span's
                block.index = {names[0]: [len(names), 0, len(names) - 1, times[-1]]}
            else:
                counts = Counter(names)
                last = {p: i for i, p in enumerate(names)}
                first = {p: i for i, p in reversed(list(enumerate(names)))}
                block.index = {p: [counts[p], first[p], last[p], times[last[p]]] for p in first}
            if present:
                block.keys = [(k, i) for i, k in enumerate(marks) if k is not None]
        exceptions: list[tuple[CapturedValue, str, str]] = []
        if not all(in_limits) or set(qualities) != {"Good"}:
            for i, (s, ok, q) in enumerate(zip(series, in_limits, qualities, strict=True)):
                if ok and q == "Good":
                    continue
                value = values[i]  # built only for a value that raises an exception
                if not ok:
                    limits = s.limits
                    exceptions.append(
                        (
                            value,
                            "out_of_limit",
                            f"{value.tag} = {value.value} {value.unit} outside "
                            f"[{limits.low if limits else ''}, "
                            f"{limits.high if limits else ''}] "
                            f"{limits.unit if limits else ''}".strip(),
                        )
                    )
                if q != "Good":
                    exceptions.append((value, "bad_quality", f"{value.tag} quality {q}"))
        return [], blocks, block_of, exceptions

    def _prepare_blocks(
        self,
        conn: Connection,
        values: Sequence[CapturedValue],
        server_now: datetime,
        actor: Actor,
        client_id: str,
    ) -> tuple[list[str], list[_Block], list[int], list[tuple[CapturedValue, str, str]]]:
        """Check every value and write its leaf, in one pass: the capture hot path.

        The checks are :meth:`_check_capture`'s: what a batch parameter shares
        (batch, phase, recipe, limits) once per parameter, per value the quality,
        the times and the number. Each leaf is written from its parameter's
        template (:class:`~gxpmes.records.images.ValueLeaves`' rules, inlined):
        the same bytes as :func:`~gxpmes.records.images.value_leaf` of the record.
        Returns the problems (nothing is to be written if there is one), the value
        blocks (one per batch, in the order given; a new one after
        :data:`MAX_BLOCK_LEAVES`), each value's block, and the exceptions to raise.
        """
        problems: list[str] = []
        contexts: dict[str, Any] = {}
        shared: dict[tuple[str, str], _Series | str] = {}
        blocks: list[_Block] = []
        open_block: dict[str, _Block] = {}
        block_of: list[int] = []
        exceptions: list[tuple[CapturedValue, str, str]] = []
        latest = server_now + self.future_skew
        server_text = format_timestamp(server_now)
        leaves = ValueLeaves(actor.user_id, client_id)
        text = leaves.text
        sources = _stamp_texts([v.source_ts for v in values])
        if any(v.server_ts is not None for v in values):
            servers = _stamp_texts(
                [server_now if v.server_ts is None else v.server_ts for v in values]
            )
        else:
            servers = [server_text] * len(values)
        limit = MAX_BLOCK_LEAVES
        for value, source, server in zip(values, sources, servers, strict=True):
            batch_id = value.batch_id
            parameter = value.parameter
            if (untyped := _names_refusal(value)) is not None:
                problems.append(untyped)
                continue
            series = shared.get((batch_id, parameter))
            if series is None:
                refusal = self._parameter_refusal(conn, contexts, batch_id, parameter)
                series = shared[(batch_id, parameter)] = (
                    _Series(
                        self._limits(contexts[batch_id][1], parameter),
                        leaves.head(batch_id),
                        text(parameter),
                    )
                    if refusal is None
                    else refusal
                )
            if type(series) is str:
                problems.append(f"{value.tag} → {batch_id}/{parameter}: {series}")
                continue
            assert isinstance(series, _Series)
            number = value.value
            quality = value.quality
            middle = series.middle.get(quality) if isinstance(quality, str) else None
            refusal = None
            if middle is None:
                refusal = f"quality {quality!r} is not Good, Uncertain or Bad"
            elif source is None or server is None:
                refusal = _time_refusal(value)
            elif not source or not server:
                refusal = "timestamp out of range: its UTC time is before year 1"
            elif self._ahead_of(value.source_ts, value.server_ts, latest):
                ahead = max(value.source_ts, value.server_ts or value.source_ts)
                refusal = (
                    f"timestamp {format_timestamp(ahead)} is more than "
                    f"{self.future_skew} ahead of the server clock {server_text}"
                )
            elif not isinstance(number, Decimal):
                refusal = f"value {number!r} is not a Decimal (or int)"
            elif not number.is_finite():
                refusal = f"value {number} is not finite"
            elif len(digits := str(number)) > _VALUE_CHARS:  # refused, never rounded
                refusal = (
                    f"value {digits[:20]}… has {len(digits)} characters; "
                    f"a value row holds at most {_VALUE_CHARS} characters"
                )
            else:
                refusal = _text_refusal(value)
            if refusal is not None:
                problems.append(f"{_shown(str(value.tag))} → {batch_id}/{parameter}: {refusal}")
                continue
            if problems:
                continue  # nothing will be written: only look for further refusals
            low, high, unit = series.low, series.high, series.unit
            in_limits = (
                (low is None or number >= low)
                and (high is None or number <= high)
                and (unit is None or unit == value.unit)
            )
            block = open_block.get(batch_id)
            if block is None or len(block.leaves) >= limit:
                block = open_block[batch_id] = _Block(batch_id, len(blocks))
                blocks.append(block)
            index = len(block.leaves)
            source_key = value.source_key
            try:
                tail = series.tails.get((value.tag, value.unit))
                if tail is None:
                    tail = series.tails[(value.tag, value.unit)] = (
                        f'"tag":{text(value.tag)},"unit":{text(value.unit)},"value":"'
                    )
                if type(number) is not Decimal:
                    raise TypeError  # a subclass: its str() is not trusted here
                leaf = (
                    f"{series.head}{'true' if in_limits else 'false'}{middle}{server}"
                    f'","source_key":{"null" if source_key is None else text(source_key)},'
                    f'"source_ts":"{source}",{tail}{digits}"}}'
                ).encode()
            except TypeError:  # the compiled encoder refused a string: the exact path
                leaf = value_leaf(
                    {
                        "batch_id": batch_id,
                        "parameter": parameter,
                        "tag": value.tag,
                        "value": number,
                        "unit": value.unit,
                        "source_ts": source,
                        "server_ts": server,
                        "quality": quality,
                        "in_limits": in_limits,
                        "source_key": source_key,
                        "client_id": client_id,
                        "account": actor.user_id,
                    }
                )
            block.leaves.append(leaf)
            block_of.append(block.position)
            if series.block is block:
                entry = series.entry
                entry[0] += 1
                entry[2] = index
                entry[3] = server
            else:
                series.block = block
                series.entry = block.index[parameter] = [1, index, index, server]
            if source_key is not None:
                block.keys.append((source_key, index))
            if not in_limits:
                limits = series.limits
                exceptions.append(
                    (
                        value,
                        "out_of_limit",
                        f"{value.tag} = {number} {value.unit} outside "
                        f"[{limits.low if limits else ''}, {limits.high if limits else ''}] "
                        f"{limits.unit if limits else ''}".strip(),
                    )
                )
            if quality != "Good":
                exceptions.append((value, "bad_quality", f"{value.tag} quality {quality}"))
        return problems, blocks, block_of, exceptions

    def _write_blocks(
        self,
        conn: Connection,
        blocks: list[_Block],
        block_of: list[int],
        exceptions: list[tuple[CapturedValue, str, str]],
        actor: Actor,
        client_id: str,
    ) -> list[int]:
        """Append the value blocks (one ``append_blocks``), their index and key rows
        (as :func:`~gxpmes.records.images.block_row_changes` projects them from the
        leaves), and the exceptions; returns each value's block seq."""
        receipts = self.db.ledger.append_blocks(
            [
                (
                    AuditEvent(
                        actor,
                        BLOCK_ACTION,
                        BLOCK_OBJECT,
                        block.batch_id,
                        new={
                            "batch_id": block.batch_id,
                            "client_id": client_id,
                            "values": len(block.leaves),
                        },
                    ),
                    CanonicalLeaves(block.leaves),
                )
                for block in blocks
            ],
            conn=conn,
        )
        index_rows: list[tuple[Any, ...]] = []
        key_rows: list[tuple[Any, ...]] = []
        seqs = []
        for block, receipt in zip(blocks, receipts, strict=True):
            seq = receipt.seq
            seqs.append(seq)
            batch_id = block.batch_id
            index_rows += [
                (seq, parameter, batch_id, *entry) for parameter, entry in block.index.items()
            ]
            key_rows += [(key, seq, leaf, batch_id) for key, leaf in block.keys]
        # Driver-level executemany, as the ledger does: this is the capture hot path.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self._insert_sql(conn, "ebr_value_block", INDEX_COLUMNS), index_rows)
            if key_rows:
                cursor.executemany(self._insert_sql(conn, "ebr_value_key", KEY_COLUMNS), key_rows)
        finally:
            cursor.close()
        for value, kind, detail in exceptions:
            self._raise_exception(conn, value.batch_id, kind, detail, f"{value.parameter}")
        return [seqs[index] for index in block_of]

    def _parameter_refusal(
        self, conn: Connection, contexts: dict[str, Any], batch_id: str, parameter: str
    ) -> str | None:
        """Why no value of ``parameter`` in batch ``batch_id`` may be captured now, or None."""
        if not (_encodable(batch_id) and _encodable(parameter)):  # the driver cannot send it
            return "the batch id or parameter contains a lone surrogate (no UTF-8 form)"
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        if batch_id not in contexts:
            # Plain SQL: once per batch per call, on the capture hot path.
            stored = fetch_one(
                conn,
                "SELECT batch_id, status, recipe_id, recipe_version FROM ebr_batch "
                f"WHERE batch_id = {mark}",
                (batch_id,),
            )
            batch = None if stored is None else _BatchState(*stored)
            recipe = None
            if batch is not None:
                # A recipe version never changes once loaded (checked against its
                # trail then): the engine's copy, without reading its row again.
                recipe = self._recipes.get((batch.recipe_id, batch.recipe_version))
                if recipe is None:
                    recipe = self.recipe(batch.recipe_id, batch.recipe_version)[0]
            contexts[batch_id] = None if batch is None else (batch, recipe)
        context = contexts[batch_id]
        if context is None:
            return "no such batch"
        batch, recipe = context
        if batch.status != IN_EXECUTION:
            return f"batch is {batch.status}, not In execution"
        phase = parameter.rsplit("/", 1)[0]
        step = fetch_one(
            conn,
            f"SELECT state FROM ebr_step WHERE batch_id = {mark} AND path = {mark}",
            (batch_id, phase),
        )
        state = None if step is None else step[0]
        if state is None:
            return f"no phase {phase!r} in this batch"
        known = (batch.recipe_id, batch.recipe_version, parameter)
        found = self._recipe_parameters.get(known)
        if found is None:
            found = self._recipe_parameters[known] = (
                self._phase_parameter(recipe, parameter) is not None
            )
        if not found:
            return f"the recipe has no parameter {parameter!r}"
        if state not in _ACTIVE:
            return f"phase is {state}"
        return None

    def _write_manual(
        self,
        conn: Connection,
        value: CapturedValue,
        contexts: dict[str, Any],
        server_now: datetime,
        *,
        actor: Actor,
        reason: str,
    ) -> int:
        """Write a checked manual entry: an audit entry of its own (signed, referenced by
        seq) and its ``ebr_value`` row (and ``ebr_value_key`` row); returns its seq."""
        limits = self._limits(contexts[value.batch_id][1], value.parameter)
        in_limits = limits is None or limits.within_limits(value.value)
        if limits is not None and limits.unit and limits.unit != value.unit:
            in_limits = False
        record = {
            "batch_id": value.batch_id,
            "parameter": value.parameter,
            "tag": value.tag,
            "value": value.value,
            "unit": value.unit,
            "source_ts": format_timestamp(value.source_ts),
            "server_ts": format_timestamp(server_now)
            if value.server_ts is None
            else format_timestamp(value.server_ts),
            "quality": value.quality,
            "in_limits": in_limits,
            "source_key": value.source_key,
        }
        event = AuditEvent(
            actor,
            MANUAL_ACTION,
            "process_value",
            f"{value.batch_id}/{value.parameter}",
            new=record,
            reason=reason,
        )
        seq = self.db.ledger.append(event, conn=conn).seq
        row = value_row(seq, MANUAL_ACTION, record)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._insert_sql(conn, "ebr_value", VALUE_COLUMNS), row)
            if row[12] is not None:
                cursor.execute(self._insert_sql(conn, "ebr_value_key", KEY_COLUMNS), key_row(row))
        finally:
            cursor.close()
        if not in_limits:
            self._raise_exception(
                conn,
                value.batch_id,
                "out_of_limit",
                f"{value.tag} = {value.value} {value.unit} outside "
                f"[{limits.low if limits else ''}, {limits.high if limits else ''}] "
                f"{limits.unit if limits else ''}".strip(),
                value.parameter,
            )
        if value.quality != "Good":
            self._raise_exception(
                conn,
                value.batch_id,
                "bad_quality",
                f"{value.tag} quality {value.quality}",
                value.parameter,
            )
        self._raise_exception(
            conn,
            value.batch_id,
            "manual_entry",
            f"{value.tag} = {value.value} entered by hand: {reason}",
            value.parameter,
        )
        return seq

    @staticmethod
    def _insert_sql(conn: Connection, table: str, columns: Sequence[str]) -> str:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})"
        )

    def report_data_quality(self, batch_id: str, parameter: str, detail: str) -> None:
        """Input for a batch parameter was refused before capture (malformed, non-finite...).

        While the batch executes this is a ``data_quality`` exception for review;
        otherwise it is recorded in the audit trail only. A parameter longer than
        an exception's reference holds (512) is refused (:class:`BatchError`).
        """
        check_length(BatchError, "parameter", parameter, ExceptionRow.reference)
        with self.db.transaction() as conn:
            batch = conn.execute(
                select(BatchRow.status).where(BatchRow.batch_id == batch_id)
            ).first()
            if batch is not None and batch.status == IN_EXECUTION:
                self._raise_exception(conn, batch_id, "data_quality", detail, parameter)
            else:
                self._audit(
                    conn,
                    self.collector,
                    "capture.refused",
                    "batch",
                    batch_id,
                    new={"parameter": parameter, "detail": detail},
                )

    def manual_entry(self, session: Session, value: CapturedValue, *, reason: str) -> int:
        """A value typed in by a person (e.g. a handheld reading); always an exception to review.

        Refused (:class:`CaptureRefused`, nothing written) for what :meth:`capture`
        refuses, and for a unit longer than the value row's column holds (16
        characters: a manual entry is a row of its own, a captured value a leaf).
        """
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.capture")
            problems, contexts = self._check_capture(conn, [value], self._now())
            if not problems and (unit := length_refusal("unit", value.unit, ValueRow.unit)):
                problems.append(f"{value.tag} → {value.batch_id}/{value.parameter}: {unit}")
            if problems:
                raise CaptureRefused("; ".join(problems))
            return self._write_manual(
                conn, value, contexts, self._now(), actor=user.actor, reason=reason
            )

    def check_stale(self, batch_id: str) -> list[str]:
        """Raise a ``stale`` exception for each limited parameter of an active phase
        with no value within ``stale_after``; returns the parameters found stale."""
        now = self._now()
        stale = []
        with self.db.transaction() as conn:
            batch = self._open_batch(conn, batch_id, IN_EXECUTION)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            active = {
                r.path
                for r in conn.execute(
                    select(StepRow).where(StepRow.batch_id == batch_id, StepRow.kind == "Phase")
                ).all()
                if r.state == "Running"
            }
            for path, element in recipe.procedural_elements():
                if path not in active or not isinstance(element, Phase):
                    continue
                for parameter in element.parameters:
                    full = f"{path}/{parameter.id}"
                    last = self._last_value_time(conn, batch_id, full)
                    if last is None or now - datetime.fromisoformat(last) > self.stale_after:
                        self._raise_exception(
                            conn,
                            batch_id,
                            "stale",
                            f"no value for {full} within {self.stale_after}",
                            full,
                        )
                        stale.append(full)
        return stale

    @staticmethod
    def _last_value_time(conn: Connection, batch_id: str, parameter: str) -> str | None:
        """Server time of the parameter's last recorded value (highest seq, then leaf):
        from the block index (its last leaf's time) or an entry of its own."""
        newest = []
        block = conn.execute(
            select(ValueBlockRow.seq, ValueBlockRow.last_leaf, ValueBlockRow.last_server_ts)
            .where(ValueBlockRow.batch_id == batch_id, ValueBlockRow.parameter == parameter)
            .order_by(ValueBlockRow.seq.desc())
            .limit(1)
        ).first()
        if block is not None:
            newest.append(tuple(block))
        own = conn.execute(
            select(ValueRow.seq, ValueRow.leaf, ValueRow.server_ts)
            .where(ValueRow.batch_id == batch_id, ValueRow.parameter == parameter)
            .order_by(ValueRow.seq.desc(), ValueRow.leaf.desc())
            .limit(1)
        ).first()
        if own is not None:
            newest.append(tuple(own))
        return str(max(newest)[2]) if newest else None

    def verify_values(self, batch_id: str) -> list[str]:
        """Compare the batch's value rows and value index with the log; returns the
        discrepancies.

        The log holds every value: the leaves of the batch's value blocks and the
        entries of manual entries. A manual entry's ``ebr_value`` row changed,
        deleted or added, and an ``ebr_value_block`` row (which block holds which
        parameter's values) or ``ebr_value_key`` row (a source key's value)
        changed, deleted or added, no longer matches what the log says. Entries
        and leaves themselves are protected by the ledger's own verification.
        Values are named ``seq/leaf``, index rows ``seq`` and parameter.
        """
        problems: list[str] = []
        ledger = self.db.ledger
        expected_index: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        expected_keys: dict[Any, tuple[Any, ...]] = {}
        expected: dict[tuple[int, int], Any] = {}
        for entry in ledger.entries_for(BLOCK_OBJECT, batch_id):
            if entry.event.action == BLOCK_ACTION:
                rows = block_value_rows(entry.seq, ledger.block_leaves(entry.seq))
                index, keys = block_index_rows(entry.seq, rows)
                expected_index.update(((r[0], r[1]), r) for r in index)
                for r in keys:
                    _expect_key(problems, expected_keys, r)
        batch = self.batch(batch_id)
        recipe, _ = self.recipe(batch["recipe_id"], batch["recipe_version"])
        parameters = [
            f"{path}/{p.id}"
            for path, element in recipe.procedural_elements()
            if isinstance(element, Phase)
            for p in element.parameters
        ]
        for parameter in parameters:
            for entry in ledger.entries_for("process_value", f"{batch_id}/{parameter}"):
                if entry.event.action in VALUE_ACTIONS:
                    expected[(entry.seq, 0)] = entry.event.new
                    row = value_row(entry.seq, entry.event.action, entry.event.new)
                    if row[12] is not None:
                        _expect_key(problems, expected_keys, key_row(row))
        with self.db.read() as conn:
            own = [
                dict(zip(VALUE_COLUMNS, r, strict=True))
                for r in conn.execute(
                    select(*(ValueRow.__table__.c[c] for c in VALUE_COLUMNS)).where(
                        ValueRow.batch_id == batch_id
                    )
                )
            ]
            index_found = {
                (r[0], r[1]): tuple(r)
                for r in conn.execute(
                    select(*(ValueBlockRow.__table__.c[c] for c in INDEX_COLUMNS)).where(
                        ValueBlockRow.batch_id == batch_id
                    )
                )
            }
            keys_found = {
                r[0]: tuple(r)
                for r in conn.execute(
                    select(*(ValueKeyRow.__table__.c[c] for c in KEY_COLUMNS)).where(
                        ValueKeyRow.batch_id == batch_id
                    )
                )
            }
        stored = {(v["seq"], v["leaf"]): v for v in own}
        for key in sorted(expected):
            new = expected[key]
            found = stored.pop(key, None)
            name = value_name(*key)
            if found is None:
                problems.append(f"value {name} ({new['tag']}) is missing from the record")
            elif (found["value"], found["tag"], found["quality"]) != (
                str(new["value"]),
                new["tag"],
                new["quality"],
            ):
                problems.append(
                    f"value {name} ({new['tag']}) differs from its audit entry: "
                    f"{found['value']} vs {new['value']}"
                )
        for key, found in stored.items():
            problems.append(f"value {value_name(*key)} ({found['tag']}) has no audit entry")
        for key, want in sorted(expected_index.items()):
            got = index_found.pop(key, None)
            name = f"value block {key[0]} ({key[1]})"
            if got is None:
                problems.append(f"{name} is missing from the value index")
            elif got != want:
                problems.append(f"{name} differs from its block's leaves: {got} vs {want}")
        for key in sorted(index_found):
            problems.append(f"value block {key[0]} ({key[1]}) in the value index has no block")
        for source_key, want in sorted(expected_keys.items(), key=lambda item: str(item[0])):
            got = keys_found.pop(source_key, None)
            if got is None:
                problems.append(f"source key {source_key!r} is missing from the record")
            elif got != want:
                problems.append(f"source key {source_key!r} differs from the log: {got} vs {want}")
        for source_key in sorted(keys_found, key=str):
            problems.append(f"source key {source_key!r} names no value of the log")
        return problems

    def prove_value(self, seq: int, leaf: int = 0, tree_size: int | None = None) -> LeafProof:
        """The proof that captured value ``(seq, leaf)`` is in the log.

        The value's record (the leaf's RFC 8785 bytes), its path to the root of
        value block ``seq``, and that entry's RFC 9162 inclusion proof in the log
        of ``tree_size`` entries (default: now): checked by
        :func:`audit.blocks.check_leaf_proof` from the proof, the block entry's
        bytes and a signed tree head alone. A manual entry is an entry of its own:
        prove it with :meth:`audit.ledger.Ledger.prove_inclusion`.
        """
        with self.db.read() as conn:
            own = conn.execute(
                select(ValueRow.seq).where(ValueRow.seq == seq, ValueRow.leaf == leaf)
            ).first()
            block = conn.execute(
                select(func.max(ValueBlockRow.last_leaf)).where(ValueBlockRow.seq == seq)
            ).scalar()
        if own is not None:
            action = self.db.ledger.entry(seq).event.action
            raise BatchError(
                f"value {value_name(seq, leaf)} is audit entry {seq} of its own "
                f"({action}): prove it with the log's inclusion proof"
            )
        if block is None or not 0 <= leaf <= block:
            raise BatchError(f"no captured value {value_name(seq, leaf)}")
        return self.db.ledger.prove_leaf(seq, leaf, tree_size=tree_size)
