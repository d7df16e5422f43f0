"""Trust from outside the database: a TOML file naming the keys and TSAs a verifier trusts.

With a trust file, keys, revocations and checkpoints found in the audit
database are only information: an attacker with SQL access can insert a
revocation (to fail a valid trail) or delete one (to pass a forged one), so
neither counts. The file lists::

    [checkpoints]
    require_timestamp = true      # every checkpoint needs a valid RFC 3161 token

    [[checkpoint_key]]            # tree-head and checkpoint keys (repeat)
    vkey = "gxpmes-heads+1a2b3c4d+AU..."        # or: public_key = "public.pem"
    valid_from = 2026-01-01T00:00:00Z           # optional, like the two below
    revoked_at = 2026-06-01T00:00:00Z
    revocation_reason = "laptop stolen"

    [[tsa]]                       # trusted time-stamping authorities (repeat)
    name = "site-tsa"
    roots = ["tsa-root.pem"]      # paths relative to the trust file
    certificate = "tsa.pem"       # optional: pin the TSA's own certificate

    [witnesses]
    quorum = 2                    # cosignatures needed on the newest checkpoint
    [[witness]]
    vkey = "witness-b+5e6f7a8b+BE..."

A ``public_key`` without ``name`` is trusted under the names the log's own
tree heads are signed with (the name is part of the key hash; trust stays in
the key bytes). Times are TOML offset date-times; local times are refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.anchoring.tsa import TimestampAuthority, load_certificates
from audit.errors import AnchorError, CheckpointError, SigningKeyError, TrustPolicyError
from audit.keys import TrustedKey, load_public_key
from audit.note import NoteVerifier, parse_vkey

__all__ = ["TrustPolicy", "TrustedWitness", "load_trust_file", "parse_trust"]

_VALIDITY = ("valid_from", "valid_until", "revoked_at", "revocation_reason")


@dataclass(frozen=True)
class TrustedWitness:
    """A witness cosigner key (``vkey``, the C2SP cosignature/v1 form) and its validity."""

    vkey: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class _KeyEntry:
    """A checkpoint key from the file; ``name`` None means: under the heads' own names."""

    name: str | None
    public_key: bytes
    valid_from: datetime | None
    valid_until: datetime | None
    revoked_at: datetime | None
    revocation_reason: str | None


@dataclass(frozen=True)
class TrustPolicy:
    """What a verifier trusts, read from a trust file (see the module docstring)."""

    source: str
    keys: tuple[_KeyEntry, ...]
    authorities: tuple[TimestampAuthority, ...] = ()
    require_timestamp: bool = False
    witnesses: tuple[TrustedWitness, ...] = ()
    witness_quorum: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def checkpoint_keys(self, head_names: Sequence[str] = ()) -> list[TrustedKey]:
        """The trusted checkpoint/tree-head keys; nameless keys under each of ``head_names``."""
        result: list[TrustedKey] = []
        for entry in self.keys:
            names = [entry.name] if entry.name is not None else list(head_names)
            for name in names:
                result.append(
                    TrustedKey(
                        NoteVerifier(name, entry.public_key),
                        valid_from=entry.valid_from,
                        valid_until=entry.valid_until,
                        revoked_at=entry.revoked_at,
                        revocation_reason=entry.revocation_reason,
                    )
                )
        return result

    def with_witnesses(self, witnesses: Sequence[TrustedWitness], quorum: int) -> TrustPolicy:
        """A copy with other witnesses (for tests and tools)."""
        return replace(self, witnesses=tuple(witnesses), witness_quorum=quorum)


def _time(table: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TrustPolicyError(f"{where}: {key} must be a TOML date-time, not {value!r}")
    if value.utcoffset() is None:
        raise TrustPolicyError(f"{where}: {key} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    return value


def _validity(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    reason = table.get("revocation_reason")
    if reason is not None and not isinstance(reason, str):
        raise TrustPolicyError(f"{where}: revocation_reason must be text")
    found: dict[str, Any] = {k: _time(table, k, where) for k in _VALIDITY[:3]}
    found["revocation_reason"] = (
        reason
        if reason is not None
        else ("revoked in the trust file" if found["revoked_at"] is not None else None)
    )
    return found


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TrustPolicyError(f"{where}: unknown setting(s) {', '.join(unknown)}")


def _tables(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TrustPolicyError(f"[[{key}]] must be an array of tables")
    return value


def _key_entry(table: Mapping[str, Any], base: Path, where: str) -> _KeyEntry:
    _check_keys(table, {"vkey", "public_key", "name", *_VALIDITY}, where)
    validity = _validity(table, where)
    if ("vkey" in table) == ("public_key" in table):
        raise TrustPolicyError(f"{where}: give exactly one of vkey or public_key")
    if not all(isinstance(table.get(k, ""), str) for k in ("vkey", "public_key", "name")):
        raise TrustPolicyError(f"{where}: vkey, public_key and name must be text")
    if "vkey" in table:
        try:
            verifier = parse_vkey(str(table["vkey"]))
        except CheckpointError as exc:
            raise TrustPolicyError(f"{where}: {exc}") from exc
        if "name" in table and table["name"] != verifier.name:
            raise TrustPolicyError(f"{where}: name differs from the vkey's name")
        return _KeyEntry(verifier.name, verifier.public_key, **validity)
    try:
        raw = load_public_key(base / str(table["public_key"]))
    except SigningKeyError as exc:
        raise TrustPolicyError(f"{where}: {exc}") from exc
    name = table.get("name")
    if name is not None:
        try:
            NoteVerifier(str(name), raw)
        except CheckpointError as exc:
            raise TrustPolicyError(f"{where}: {exc}") from exc
    return _KeyEntry(None if name is None else str(name), raw, **validity)


def _authority(table: Mapping[str, Any], base: Path, where: str) -> TimestampAuthority:
    _check_keys(table, {"name", "roots", "intermediates", "certificate", *_VALIDITY}, where)
    roots = table.get("roots")
    intermediates = table.get("intermediates", [])
    if not isinstance(roots, list) or not roots or not all(isinstance(r, str) for r in roots):
        raise TrustPolicyError(f"{where}: roots must list at least one certificate file")
    if not isinstance(intermediates, list) or not all(isinstance(r, str) for r in intermediates):
        raise TrustPolicyError(f"{where}: intermediates must list certificate files")
    if not isinstance(table.get("certificate", ""), str) or not isinstance(
        table.get("name", ""), str
    ):
        raise TrustPolicyError(f"{where}: certificate and name must be text")
    try:
        root_certs = [c for path in roots for c in load_certificates(base / path)]
        middle = [c for p in intermediates for c in load_certificates(base / p)]
        pinned = None
        if "certificate" in table:
            pinned = load_certificates(base / str(table["certificate"]))[0]
    except AnchorError as exc:
        raise TrustPolicyError(f"{where}: {exc}") from exc
    return TimestampAuthority(
        str(table.get("name", where)),
        tuple(root_certs),
        tuple(middle),
        pinned,
        **_validity(table, where),
    )


def parse_trust(data: Mapping[str, Any], base: Path, source: str = "trust file") -> TrustPolicy:
    """A :class:`TrustPolicy` from parsed TOML; relative paths are relative to ``base``."""
    _check_keys(data, {"checkpoints", "checkpoint_key", "tsa", "witnesses", "witness"}, source)
    options = data.get("checkpoints", {})
    if not isinstance(options, dict):
        raise TrustPolicyError(f"{source}: [checkpoints] must be a table")
    _check_keys(options, {"require_timestamp"}, f"{source} [checkpoints]")
    require = options.get("require_timestamp", False)
    if not isinstance(require, bool):
        raise TrustPolicyError(f"{source}: require_timestamp must be true or false")
    keys = tuple(
        _key_entry(t, base, f"{source} [[checkpoint_key]] #{i + 1}")
        for i, t in enumerate(_tables(data, "checkpoint_key"))
    )
    if not keys:
        raise TrustPolicyError(f"{source}: lists no [[checkpoint_key]]: nothing would be trusted")
    authorities = tuple(
        _authority(t, base, f"{source} [[tsa]] #{i + 1}")
        for i, t in enumerate(_tables(data, "tsa"))
    )
    if require and not authorities:
        raise TrustPolicyError(f"{source}: require_timestamp needs at least one [[tsa]]")
    witnesses = []
    for i, table in enumerate(_tables(data, "witness")):
        where = f"{source} [[witness]] #{i + 1}"
        _check_keys(table, {"vkey", *_VALIDITY}, where)
        if not isinstance(table.get("vkey"), str):
            raise TrustPolicyError(f"{where}: vkey (the witness's cosigner key) is required")
        witnesses.append(TrustedWitness(table["vkey"], **_validity(table, where)))
    quorum_table = data.get("witnesses", {})
    if not isinstance(quorum_table, dict):
        raise TrustPolicyError(f"{source}: [witnesses] must be a table")
    _check_keys(quorum_table, {"quorum"}, f"{source} [witnesses]")
    quorum = quorum_table.get("quorum", len(witnesses))
    if not isinstance(quorum, int) or isinstance(quorum, bool) or not 0 <= quorum <= len(witnesses):
        raise TrustPolicyError(
            f"{source}: witness quorum must be a whole number from 0 to {len(witnesses)}"
        )
    return TrustPolicy(source, keys, authorities, require, tuple(witnesses), quorum)


def load_trust_file(path: str | Path) -> TrustPolicy:
    """Read and check a trust file (:class:`TrustPolicyError` naming what is wrong)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustPolicyError(f"cannot read trust file {file}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TrustPolicyError(f"trust file {file} is not valid TOML: {exc}") from exc
    return parse_trust(data, file.parent, str(file))
