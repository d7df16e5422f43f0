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

Only the connector's own connection uses it (:func:`install`); other asyncua
clients in the process keep asyncua's decoder.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, cast

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.ua_binary import from_binary, nodeid_from_binary, struct_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

__all__ = ["decode_publish_response", "install"]

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


def decode_publish_response(data: Any) -> Any:
    """``ua.PublishResponse`` from the message body ``data`` (an asyncua Buffer),
    equal to ``struct_from_binary(ua.PublishResponse, data)``."""
    whole = data.copy()
    try:
        return _publish_response(data)
    except Exception:  # unsupported or malformed: asyncua decides (and raises)
        return struct_from_binary(ua.PublishResponse, whole)


def _publish_response(data: Any) -> Any:
    type_id = nodeid_from_binary(data)
    header = struct_from_binary(ua.ResponseHeader, data)
    subscription_id = from_binary(ua.UInt32, data)
    available = from_binary(list[ua.UInt32], data)
    more = from_binary(ua.Boolean, data)
    sequence = from_binary(ua.UInt32, data)
    publish_time = from_binary(ua.DateTime, data)
    (count,) = _I32.unpack(data.read(4))
    notifications = [_extension_object(data) for _ in range(count)]
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


def _extension_object(data: Any) -> Any:
    type_id = nodeid_from_binary(data)
    if type_id != _DATA_CHANGE or data.read(1)[0] != 1:
        raise _Unsupported(type_id)
    (length,) = _I32.unpack(data.read(4))
    if length < 1:
        raise _Unsupported("empty body")
    return _data_change(bytes(data.read(length)))


def _data_change(body: bytes) -> Any:
    DataValue, Variant, StatusCode = ua.DataValue, ua.Variant, ua.StatusCode
    Notification = ua.MonitoredItemNotification
    to_datetime = ua.win_epoch_to_datetime
    scalars = _SCALARS
    i32, u32, i64 = _I32.unpack_from, _U32.unpack_from, _I64.unpack_from
    (count,) = i32(body, 0)
    at = 4
    items = []
    for _ in range(max(count, 0)):
        (handle,) = u32(body, at)
        mask = body[at + 4]
        at += 5
        if mask & 0xF0:  # picoseconds (asyncua's field order), or bits it does not know
            raise _Unsupported("DataValue mask")
        fields: dict[str, Any] = {}
        if mask & 1:
            kind = body[at]
            scalar = scalars.get(kind)
            if scalar is None:  # arrays, dimensions, strings, structures...
                raise _Unsupported(kind)
            unpack, vtype = scalar
            (value,) = unpack.unpack_from(body, at + 1)
            at += 1 + unpack.size
            fields["Value"] = Variant(value, vtype)
        if mask & 2:
            fields["StatusCode"] = StatusCode(u32(body, at)[0])
            at += 4
        if mask & 4:
            fields["SourceTimestamp"] = to_datetime(i64(body, at)[0])
            at += 8
        if mask & 8:
            fields["ServerTimestamp"] = to_datetime(i64(body, at)[0])
            at += 8
        items.append(Notification(ClientHandle=handle, Value=DataValue(**fields)))
    (diagnostics,) = i32(body, at)
    if diagnostics > 0 or at + 4 != len(body):
        raise _Unsupported("diagnostics or trailing bytes")
    return ua.DataChangeNotification(MonitoredItems=items, DiagnosticInfos=[])


async def _publish(link: Any, acks: list[Any]) -> Any:
    # asyncua's own publish call, with this module's decoder.
    request = ua.PublishRequest()
    request.Parameters.SubscriptionAcknowledgements = acks if acks else []
    data = await link._send_request(request, timeout=0)
    try:
        return decode_publish_response(data)
    except Exception as exc:
        raise UaStructParsingError from exc


def install(link: Any) -> bool:
    """Decode the publish responses of ``link`` (the asyncua client's ``uaclient``
    connection object that sends publish requests) here; False (asyncua's decoder stays)
    if it does not look like the one this was written for."""
    if not callable(getattr(link, "_send_request", None)) or not callable(
        getattr(link, "publish", None)
    ):
        return False
    link.publish = functools.partial(_publish, link)
    return True
