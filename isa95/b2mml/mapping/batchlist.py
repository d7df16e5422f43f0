"""BatchML BatchList / BatchListEntry ↔ isa95.batchlist (same elements in V0701 and V0600).

Entry parameters (``Parameter``), the list header's ``Origin`` and
``ModificationLog``, attributes of simple values (``unitCode``, ``format``,
code-list attributes) and extension content are not in the models: they are
listed in ``unmapped`` and stay on the binding (``document.binding_of(model)``).
V0600's ``BatchListEntry/EquipmentID`` holds no identifier (MESA typed it
``BatchEquipmentIDType``: Property, Condition, Value), so ``equipment_ids`` are
written in V0701 only; V0600 refuses them rather than dropping them.
"""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.trees import (
    NORMALISED,
    V0600,
    Tracked,
    _decimal,
    _decimal_text,
    _desc,
    _get,
    _list,
    _model,
    _parse_time,
    _put,
    _text,
    _texts,
    _time,
    _where,
)
from isa95.batchlist import (
    BatchList,
    BatchListEntry,
    BatchListEntryKind,
    BatchMode,
    BatchStatus,
)
from isa95.errors import B2MMLError

_KINDS = {k.value for k in BatchListEntryKind}
_STATES = {s.value for s in BatchStatus}
_MODES = {m.value for m in BatchMode}

_TIMES = (
    ("start_condition", "StartCondition"),
    ("requested_start", "RequestedStartTime"),
    ("actual_start", "ActualStartTime"),
    ("requested_end", "RequestedEndTime"),
    ("actual_end", "ActualEndTime"),
)
_IDS = (
    ("external_id", "ExternalID"),
    ("recipe_id", "RecipeID"),
    ("recipe_version", "RecipeVersion"),
    ("batch_id", "BatchID"),
    ("lot_id", "LotID"),
    ("campaign_id", "CampaignID"),
    ("product_id", "ProductID"),
    ("order_id", "OrderID"),
)
_NUMBERS = (
    ("priority", "BatchPriority"),
    ("requested_batch_size", "RequestedBatchSize"),
    ("actual_batch_size", "ActualBatchSize"),
)
_ID_LISTS = (
    ("equipment_ids", "EquipmentID"),
    ("equipment_class_ids", "EquipmentClassID"),
    ("actual_equipment_ids", "ActualEquipmentID"),
)


# ------------------------------------------------------------------ writing


def _coded(value: str, allowed: set[str]) -> Any:
    """An enumerated value as written: itself, or ``Other`` with ``OtherValue``."""
    return value if value in allowed else {"#text": "Other", "@OtherValue": value}


def _entry_tree(entry: BatchListEntry, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {"ID": entry.id}
    _put(tree, "Description", _desc(entry.description))
    tree["BatchListEntryType"] = _coded(entry.entry_type, _KINDS)
    if entry.status is not None:
        tree["Status"] = _coded(entry.status, _STATES)
    if entry.mode is not None:
        tree["Mode"] = _coded(entry.mode, _MODES)
    for field, element in _IDS:
        _put(tree, element, getattr(entry, field))
    for field, element in _TIMES:
        _put(tree, element, _time(getattr(entry, field)))
    for field, element in _NUMBERS:
        value = getattr(entry, field)
        _put(tree, element, None if value is None else _decimal_text(value))
    _put(tree, "UnitOfMeasure", entry.unit)
    _put(tree, "Note", list(entry.notes))
    if version == V0600 and entry.equipment_ids:
        raise B2MMLError(
            f"batch list entry {entry.id!r}: V0600 cannot carry equipment_ids (its "
            "BatchListEntry/EquipmentID is a BatchEquipmentIDType of Property, Condition and "
            "Value, without an identifier); write V0701, or use actual_equipment_ids"
        )
    for field, element in _ID_LISTS:
        _put(tree, element, list(getattr(entry, field)))
    _put(tree, "BatchListEntry", [_entry_tree(e, version) for e in entry.entries])
    return tree


def _batch_list_tree(model: BatchList, version: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    header: dict[str, Any] = {}
    _put(header, "ID", model.id)
    _put(header, "Version", model.version)
    _put(header, "CreateDate", _time(model.created))
    _put(tree, "ListHeader", header or None)
    _put(tree, "Description", _desc(model.description))
    _put(tree, "BatchListEntry", [_entry_tree(e, version) for e in model.entries])
    return tree


# ------------------------------------------------------------------ reading


def _decoded(tree: dict[str, Any], key: str) -> str | None:
    """An enumerated value: the text, or for ``Other`` its ``OtherValue`` (trimmed, noted)."""
    raw = tree.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return str(raw)
    text = _text(raw)
    if text != "Other":
        return text
    other = raw.get("@OtherValue")
    if other is None or not str(other).strip():
        return text
    value = str(other)
    if value != value.strip():
        notes = NORMALISED.get()
        if notes is not None:
            where = raw.path if isinstance(raw, Tracked) else ""
            notes.append(f"{where}/@OtherValue: {value!r} read as {value.strip()!r}")
    return value.strip()


def _ident(tree: dict[str, Any], key: str) -> str | None:
    """An identifier whose name does not end in ``ID`` (``RecipeVersion``, ``Version``),
    trimmed and noted as :func:`_get` trims ``…ID`` elements."""
    value = _get(tree, key)
    if value is not None and value != value.strip() and value.strip():
        notes = NORMALISED.get()
        if notes is not None:
            where = tree.path if isinstance(tree, Tracked) else ""
            notes.append(f"{where}/{key}: {value!r} read as {value.strip()!r}")
        return str(value).strip()
    return value  # type: ignore[no-any-return]


def _ids(tree: dict[str, Any], key: str) -> list[str]:
    """Identifiers of a repeated element, each trimmed as :func:`_get` trims one."""
    found: list[str] = []
    for index, item in enumerate(_list(tree, key)):
        value = _text(item)
        if value is None:
            continue
        if value != value.strip() and value.strip():
            notes = NORMALISED.get()
            if notes is not None:
                where = tree.path if isinstance(tree, Tracked) else ""
                notes.append(f"{where}/{key}[{index}]: {value!r} read as {value.strip()!r}")
        found.append(value.strip())
    return found


def _entry_from_tree(tree: dict[str, Any], version: str) -> BatchListEntry:
    where = _where(tree, "BatchListEntry")
    fields: dict[str, Any] = {
        "id": _get(tree, "ID"),
        "description": _get(tree, "Description"),
        "entry_type": _decoded(tree, "BatchListEntryType"),
        "status": _decoded(tree, "Status"),
        "mode": _decoded(tree, "Mode"),
        "unit": _get(tree, "UnitOfMeasure"),
        "notes": _texts(tree, "Note"),
    }
    for field, element in _IDS:
        fields[field] = _ident(tree, element)
    for field, element in _TIMES:
        fields[field] = _parse_time(_get(tree, element), f"{where}/{element}")
    for field, element in _NUMBERS:
        text = _get(tree, element)
        fields[field] = None if text is None else _decimal(text, f"{where}/{element}")
    for field, element in _ID_LISTS:
        if version == V0600 and element == "EquipmentID":
            continue  # no identifier in V0600 (see _entry_tree): listed in unmapped
        fields[field] = _ids(tree, element)
    fields["entries"] = [_entry_from_tree(e, version) for e in _list(tree, "BatchListEntry")]
    return _model(lambda: BatchListEntry(**fields), where, tree)


def _batch_list_from_tree(tree: dict[str, Any], version: str) -> BatchList:
    where = _where(tree, "BatchList")
    header = tree.get("ListHeader") or {}
    created = _parse_time(_get(header, "CreateDate"), f"{where}/ListHeader/CreateDate")
    return _model(
        lambda: BatchList(
            id=_get(header, "ID"),
            version=_ident(header, "Version"),
            created=created,
            description=_get(tree, "Description"),
            entries=[_entry_from_tree(e, version) for e in _list(tree, "BatchListEntry")],
        ),
        where,
        tree,
    )
