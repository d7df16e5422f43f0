"""Decoding OPC UA PublishResponses of scalar data changes without asyncua's generic decoder.

asyncua decodes a publish response with deserializers built from its
dataclasses: per value a DataValue, a Variant (an enum lookup for its type), a
StatusCode and two DateTimes through generic field loops — 13–15 µs of pure
Python per value, the largest single cost of the OPC UA ingest. This module
decodes the common case directly with :mod:`struct` and builds *the same
objects* (``ua.MonitoredItemNotification``, ``ua.DataValue``, ``ua.Variant``,
``ua.StatusCode``, timestamps from ``ua.win_epoch_to_datetime``) that asyncua's
``struct_from_binary(ua.PublishResponse, ...)`` builds — the tests compare both
on generated responses. Anything else (events, status changes, arrays,
strings and other non-numeric types, picoseconds, diagnostics) is left to
asyncua: the whole response is decoded again by it, so the result never
depends on which path took it.

The connector's own connection (:func:`install` with ``rows``) goes one step
further: each data-change notification decoded here is a :class:`DataChanges`
of plain rows — handle, number, variant type, status code, time ticks, one
``struct`` unpack per value — and no asyncua object is built per value at all
(one publish response of 2,000 Doubles: about 5 µs per value from bytes to
spool readings, against 15 µs through asyncua's objects). The rows carry
everything asyncua's objects do (:meth:`DataChanges.notification` builds
them; the tests compare both, and the readings and dead letters the connector
makes of each). Other asyncua clients in the process keep asyncua's decoder.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, cast

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import from_binary, nodeid_from_binary, struct_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

__all__ = ["DataChanges", "decode_publish_response", "install", "monitored_item"]

_DATA_CHANGE = ua.NodeId(cast(Any, ObjectIds.DataChangeNotification_Encoding_DefaultBinary))
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")

# Scalar variant types decoded here: type id -> (struct, VariantType).
_SCALARS: dict[int, tuple[struct.Struct, ua.VariantType]] = {
    vt.value: (struct.Struct(fmt), vt)
    for vt, fmt in (
        (ua.VariantType.Boolean, "<?"),
        (ua.VariantType.SByte, "<b"),
        (ua.VariantType.Byte, "<B"),
        (ua.VariantType.Int16, "<h"),
        (ua.VariantType.UInt16, "<H"),
        (ua.VariantType.Int32, "<i"),
        (ua.VariantType.UInt32, "<I"),
        (ua.VariantType.Int64, "<q"),
        (ua.VariantType.UInt64, "<Q"),
        (ua.VariantType.Float, "<f"),
        (ua.VariantType.Double, "<d"),
    )
}


class _Unsupported(Exception):
    """Content this decoder leaves to asyncua."""


def decode_publish_response(data: Any, *, rows: bool = False) -> Any:
    """``ua.PublishResponse`` from the message body ``data`` (an asyncua Buffer),
    equal to ``struct_from_binary(ua.PublishResponse, data)``.

    ``rows``: each data-change notification this module decodes itself is a
    :class:`DataChanges` (plain rows, no asyncua object per value) instead of a
    ``ua.DataChangeNotification``; what it leaves to asyncua is asyncua's objects."""
    whole = data.copy()
    try:
        return _publish_response(data, rows)
    except Exception:  # unsupported or malformed: asyncua decides (and raises)
        return struct_from_binary(ua.PublishResponse, whole)


class DataChanges:
    """The values of one DataChangeNotification as rows ``(client handle, value, variant
    type, status code, source time, server time)``: the value a ``bool``, ``int`` or
    ``float`` and its ``ua.VariantType`` (both None: no Value), the status code an ``int``
    (None: none sent), the times as OPC UA ``DateTime`` ticks (100 ns since 1601; None:
    not sent). :meth:`notification` gives the objects asyncua decodes them into."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[int, Any, Any, int | None, int | None, int | None]]):
        self.rows = rows

    def notification(self) -> Any:
        """``ua.DataChangeNotification``, equal to asyncua's for the same bytes."""
        return ua.DataChangeNotification(
            MonitoredItems=[monitored_item(row) for row in self.rows], DiagnosticInfos=[]
        )

    def __repr__(self) -> str:
        return f"DataChanges({len(self.rows)} values)"


def monitored_item(row: tuple[int, Any, Any, int | None, int | None, int | None]) -> Any:
    """The ``ua.MonitoredItemNotification`` asyncua decodes from a :class:`DataChanges` row."""
    handle, value, vtype, status, source, server = row
    fields: dict[str, Any] = {}
    if vtype is not None:
        fields["Value"] = ua.Variant(value, vtype)
    if status is not None:
        fields["StatusCode"] = ua.StatusCode(ua.UInt32(status))
    if source is not None:
        fields["SourceTimestamp"] = ua.win_epoch_to_datetime(source)
    if server is not None:
        fields["ServerTimestamp"] = ua.win_epoch_to_datetime(server)
    return ua.MonitoredItemNotification(ClientHandle=handle, Value=ua.DataValue(**fields))


def _publish_response(data: Any, rows: bool = False) -> Any:
    type_id = nodeid_from_binary(data)
    header = struct_from_binary(ua.ResponseHeader, data)
    subscription_id = from_binary(ua.UInt32, data)
    available = from_binary(list[ua.UInt32], data)
    more = from_binary(ua.Boolean, data)
    sequence = from_binary(ua.UInt32, data)
    publish_time = from_binary(ua.DateTime, data)
    (count,) = _I32.unpack(data.read(4))
    notifications = [_extension_object(data, rows) for _ in range(count)]
    results = from_binary(list[ua.StatusCode], data)
    diagnostics = from_binary(list[ua.DiagnosticInfo], data)
    message = ua.NotificationMessage(
        SequenceNumber=sequence, PublishTime=publish_time, NotificationData=notifications
    )
    return ua.PublishResponse(
        TypeId=type_id,
        ResponseHeader=header,
        Parameters=ua.PublishResult(
            SubscriptionId=subscription_id,
            AvailableSequenceNumbers=available,
            MoreNotifications=more,
            NotificationMessage=message,
            Results=results,
            DiagnosticInfos=diagnostics,
        ),
    )


def _extension_object(data: Any, rows: bool = False) -> Any:
    type_id = nodeid_from_binary(data)
    if type_id != _DATA_CHANGE or data.read(1)[0] != 1:
        raise _Unsupported(type_id)
    (length,) = _I32.unpack(data.read(4))
    if length < 1:
        raise _Unsupported("empty body")
    changes = DataChanges(_data_change_rows(bytes(data.read(length))))
    return changes if rows else changes.notification()


def _layout(mask: int, kind: int) -> tuple[struct.Struct, Any] | None:
    # One struct for a whole MonitoredItemNotification of this DataValue mask and variant
    # type (asyncua's field order: Value, StatusCode, SourceTimestamp, ServerTimestamp),
    # and the variant type; None: not decoded here.
    if mask & 0xF0:  # picoseconds, or bits asyncua does not know
        return None
    fmt, vtype = "<IB", None
    if mask & 1:
        scalar = _SCALARS.get(kind)
        if scalar is None:  # arrays, dimensions, strings, structures...
            return None
        fmt += "B" + scalar[0].format[1:]
        vtype = scalar[1]
    fmt += "I" * bool(mask & 2) + "q" * bool(mask & 4) + "q" * bool(mask & 8)
    return struct.Struct(fmt), vtype


# (mask << 8 | variant type id) -> (struct, variant type); a mask without a Value
# ignores the type byte: its entries are repeated for every byte value.
_LAYOUTS: dict[int, tuple[struct.Struct, Any]] = {}
for _mask in range(16):
    for _kind in range(256) if not _mask & 1 else _SCALARS:
        _found = _layout(_mask, _kind)
        if _found is not None:
            _LAYOUTS[_mask << 8 | _kind] = _found


def _data_change_rows(body: bytes) -> list[tuple[Any, ...]]:
    layouts = _LAYOUTS
    i32 = _I32.unpack_from
    (count,) = i32(body, 0)
    at = 4
    end = len(body)
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for _ in range(max(count, 0)):
        if at + 6 > end:
            raise _Unsupported("truncated")
        mask = body[at + 4]
        found = layouts.get(mask << 8 | body[at + 5])
        if found is None:
            raise _Unsupported("DataValue")
        layout, vtype = found
        fields = layout.unpack_from(body, at)
        at += layout.size
        if mask == 15:  # Value, StatusCode, both timestamps: the common cases
            append((fields[0], fields[3], vtype, fields[4], fields[5], fields[6]))
            continue
        if mask == 13:  # (a Good status left out)
            append((fields[0], fields[3], vtype, None, fields[4], fields[5]))
            continue
        n = 2
        value = None
        if mask & 1:
            value = fields[3]
            n = 4
        status = source = server = None
        if mask & 2:
            status = fields[n]
            n += 1
        if mask & 4:
            source = fields[n]
            n += 1
        if mask & 8:
            server = fields[n]
        append((fields[0], value, vtype, status, source, server))
    (diagnostics,) = i32(body, at)
    if diagnostics > 0 or at + 4 != end:
        raise _Unsupported("diagnostics or trailing bytes")
    return rows


async def _publish(link: Any, rows: bool, acks: list[Any]) -> Any:
    # asyncua's own publish call, with this module's decoder.
    request = ua.PublishRequest()
    request.Parameters.SubscriptionAcknowledgements = acks if acks else []
    data = await link._send_request(request, timeout=0)
    try:
        return decode_publish_response(data, rows=rows)
    except Exception as exc:
        raise UaStructParsingError from exc


def install(link: Any, *, rows: bool = False) -> bool:
    """Decode the publish responses of ``link`` (the asyncua client's ``uaclient``
    connection object that sends publish requests) here — with ``rows``, data changes
    as :class:`DataChanges` (only for a subscription that reads them: the connector's);
    False (asyncua's decoder stays) if it does not look like the one this was written for."""
    if not callable(getattr(link, "_send_request", None)) or not callable(
        getattr(link, "publish", None)
    ):
        return False
    link.publish = functools.partial(_publish, link, rows)
    return True
