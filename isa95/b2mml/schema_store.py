"""A per-user store of MESA's B2MML schemas, filled only with files MESA published.

MESA's XSDs are not shipped with gxpmes (their licence asks for
acknowledgement, and users should get them from MESA). What gxpmes ships is
``schema_manifest.json``: the SHA-256 of every XSD of the V0701 and V0600
releases. :func:`install_schemas` copies the schemas from a folder, a zip or
an http(s) URL of a zip into :func:`user_schema_dir` — after checking every
XSD against that manifest — where :class:`isa95.b2mml.schemas.SchemaSet`
finds them without any configuration.

Hashes are taken over the file with its line ends normalised to LF, as every
XML parser does before reading it (XML 1.0 §2.11): a copy whose line ends an
unzip tool or git converted is the same schema, any other change is refused.

Regenerate the manifest from a trusted copy of MESA's releases with::

    python -m isa95.b2mml.schema_store --write-manifest DIR
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from isa95.errors import SchemaError

__all__ = [
    "DATA_DIR_ENV",
    "MANIFEST_PATH",
    "RELEASES",
    "build_manifest",
    "install_schemas",
    "installed_schema_dir",
    "load_manifest",
    "user_schema_dir",
]

DATA_DIR_ENV = "GXPMES_DATA_DIR"
MANIFEST_PATH = Path(__file__).with_name("schema_manifest.json")
RELEASES = ("V0701", "V0600")
LICENSE_NAME = "LICENSE.txt"

# Bounds for untrusted sources. MESA's two releases are ~2.5 MB of XSDs; the
# caps leave room for archives that also carry examples and documentation.
MAX_ARCHIVE_BYTES = 128 * 1024 * 1024
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 20_000
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 64 * 1024


def user_schema_dir() -> Path:
    """The per-user folder the schemas are installed into (it may not exist yet).

    ``$GXPMES_DATA_DIR/b2mml-schemas`` when that variable is set (tests,
    shared installations), else the platform's user data folder, e.g.
    ``~/.local/share/gxpmes/b2mml-schemas`` on Linux.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser() / "b2mml-schemas"
    from platformdirs import user_data_path

    return user_data_path("gxpmes", appauthor=False) / "b2mml-schemas"


def installed_schema_dir() -> Path | None:
    """:func:`user_schema_dir` when it holds at least one installed release, else None."""
    path = user_schema_dir()
    return path if any((path / release).is_dir() for release in RELEASES) else None


@cache
def load_manifest() -> Mapping[str, Mapping[str, str]]:
    """Release → (path inside the release folder → SHA-256), as shipped with gxpmes."""
    data = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    releases: dict[str, dict[str, str]] = data["releases"]
    return releases


def schema_digest(data: bytes) -> str:
    """SHA-256 of an XSD with CRLF and CR line ends read as LF, as XML parsers read them."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


def build_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a trusted copy of MESA's schemas (``directory`` holds V0701/, V0600/)."""
    root = Path(directory)
    releases: dict[str, dict[str, str]] = {}
    for release in RELEASES:
        folder = root / release
        if not folder.is_dir():
            raise SchemaError(f"{folder} is missing: the manifest needs every release")
        releases[release] = {
            path.relative_to(folder).as_posix(): schema_digest(path.read_bytes())
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.suffix.lower() == ".xsd"
        }
    return {
        "about": (
            "SHA-256 of every XSD of MESA International's B2MML releases (line ends read as "
            "LF). The schemas are not part of gxpmes; install them with "
            "`gxpmes b2mml schemas install`."
        ),
        "releases": releases,
    }


# ----------------------------------------------------------------- install


def install_schemas(source: str | Path) -> Path:
    """Install MESA's schemas from a folder, a ``.zip`` file or an http(s) URL of a zip.

    The release folders are found wherever they are inside the source (by
    name, ``V0701``/``V0600``, or by the files they hold, e.g. MESA's
    ``Schema/``). Every XSD in them must be one of MESA's, byte for byte
    (line ends aside), and every file of a release must be there; otherwise
    :class:`~isa95.errors.SchemaError` names the file and nothing changes.
    Releases the source does not hold stay as they were installed. Returns
    :func:`user_schema_dir`.
    """
    try:
        files = _collect(source)
    except OSError as exc:
        raise SchemaError(f"{source}: cannot read ({exc})") from exc
    releases = _locate_releases(files, str(source))
    verified = {
        release: _verify(release, prefix, files, str(source))
        for release, prefix in releases.items()
    }
    licence = _licence(files, releases.values())
    try:
        return _write_store(verified, licence)
    except OSError as exc:
        raise SchemaError(f"cannot install into {user_schema_dir()} ({exc})") from exc


def _collect(source: str | Path) -> dict[str, bytes]:
    """Every XSD (and licence) of the source, by POSIX path relative to the source."""
    text = str(source)
    if isinstance(source, str) and text.lower().startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="gxpmes-b2mml-") as tmp:
            archive = Path(tmp) / "schemas.zip"
            _download(text, archive)
            return _read_zip(archive, text)
    if isinstance(source, str) and "://" in text:
        raise SchemaError(f"{text}: only http:// and https:// URLs are supported")
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_dir(path)
    if path.is_file():
        return _read_zip(path, text)
    raise SchemaError(f"{text}: no such folder, zip file or URL")


def _wanted(name: str) -> bool:
    return name.lower().endswith(".xsd") or name == LICENSE_NAME


def _read_dir(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    seen = total = 0
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        seen += len(names) + len(dirs)
        if seen > MAX_ENTRIES:
            raise SchemaError(
                f"{root} holds more than {MAX_ENTRIES} entries: point at MESA's schema folder"
            )
        for name in sorted(names):
            if not _wanted(name):
                continue
            path = Path(folder, name)
            if path.stat().st_size > MAX_FILE_BYTES:
                raise SchemaError(f"{path}: larger than {MAX_FILE_BYTES} bytes, not a B2MML schema")
            data = path.read_bytes()
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise SchemaError(f"{root}: more than {MAX_TOTAL_BYTES} bytes of XSDs")
            files[path.relative_to(root).as_posix()] = data
    return files


def _safe_member(name: str, where: str) -> PurePosixPath:
    """The member's path, refused when it could land outside the extraction folder."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\x00" in name:
        raise SchemaError(f"{where}: unsafe path {name!r} in the archive (refused)")
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def _read_zip(path: Path, where: str) -> dict[str, bytes]:
    if path.stat().st_size > MAX_ARCHIVE_BYTES:
        raise SchemaError(
            f"{where}: archive larger than {MAX_ARCHIVE_BYTES} bytes (extract it and install "
            "from the folder)"
        )
    if not zipfile.is_zipfile(path):
        raise SchemaError(f"{where}: not a zip archive")
    files: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ENTRIES:
                raise SchemaError(f"{where}: more than {MAX_ENTRIES} entries in the archive")
            # Check every name first: an archive with one traversal entry is refused whole.
            safe = [(info, _safe_member(info.filename, where)) for info in members]
            for info, member in safe:
                if info.is_dir() or not _wanted(member.name):
                    continue
                data = _read_member(archive, info, f"{where}: {info.filename}")
                total += len(data)
                if total > MAX_TOTAL_BYTES:
                    raise SchemaError(f"{where}: more than {MAX_TOTAL_BYTES} bytes of XSDs")
                files[str(member)] = data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, RuntimeError) as exc:
        # RuntimeError: encrypted or unsupported members; the others: corrupt data.
        raise SchemaError(f"{where}: unreadable zip archive ({exc})") from exc
    return files


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    # The header's size can lie (zip bombs): read in chunks and stop at the cap.
    if info.file_size > MAX_FILE_BYTES:
        raise SchemaError(f"{where}: larger than {MAX_FILE_BYTES} bytes, not a B2MML schema")
    chunks: list[bytes] = []
    size = 0
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise SchemaError(f"{where}: larger than {MAX_FILE_BYTES} bytes when unpacked")
            chunks.append(chunk)
    return b"".join(chunks)


def _download(url: str, target: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "gxpmes"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_ARCHIVE_BYTES:
                raise SchemaError(
                    f"{url}: {declared} bytes exceeds the {MAX_ARCHIVE_BYTES}-byte cap"
                )
            size = 0
            with target.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    size += len(chunk)
                    if size > MAX_ARCHIVE_BYTES:
                        raise SchemaError(f"{url}: more than {MAX_ARCHIVE_BYTES} bytes (refused)")
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise SchemaError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from exc
    except (urllib.error.URLError, http.client.HTTPException, ValueError, OSError) as exc:
        # URLError: no route or refused; HTTPException: broken response;
        # ValueError: malformed URL; OSError: timeouts and resets.
        reason = getattr(exc, "reason", exc)
        raise SchemaError(f"{url}: download failed ({reason})") from exc


def _unique_names() -> dict[str, set[str]]:
    """Per release, the file names no other release has (they identify its folder)."""
    manifest = load_manifest()
    names = {release: {PurePosixPath(p).name for p in manifest[release]} for release in RELEASES}
    return {
        release: names[release] - set().union(*(names[o] for o in RELEASES if o != release))
        for release in RELEASES
    }


def _locate_releases(files: Mapping[str, bytes], where: str) -> dict[str, str]:
    """Release → folder prefix inside the source ("" for the source itself)."""
    unique = _unique_names()
    folders = {str(PurePosixPath(p).parent) for p in files}
    found: dict[str, str] = {}
    for release in RELEASES:
        candidates = sorted(
            folder
            for folder in folders
            if PurePosixPath(folder).name.upper() == release
            or any(str(PurePosixPath(folder, name)) in files for name in unique[release])
        )
        if len(candidates) > 1:
            shown = ", ".join(f"{c}/" if c != "." else "./" for c in candidates)
            raise SchemaError(f"{where}: more than one folder holds {release} schemas ({shown})")
        if candidates:
            found[release] = "" if candidates[0] == "." else candidates[0]
    if not found:
        raise SchemaError(
            f"{where}: no MESA B2MML release found (a V0701/ or V0600/ folder of XSDs)"
        )
    return found


def _inside(path: str, prefix: str) -> str | None:
    if not prefix:
        return path
    return path[len(prefix) + 1 :] if path.startswith(prefix + "/") else None


def _verify(release: str, prefix: str, files: Mapping[str, bytes], where: str) -> dict[str, bytes]:
    """The release's files, after every XSD matched the manifest and none is missing."""
    expected = load_manifest()[release]
    verified: dict[str, bytes] = {}
    for path, data in sorted(files.items()):
        relative = _inside(path, prefix)
        if relative is None or not relative.lower().endswith(".xsd"):
            continue
        shown = f"{where}: {path}"
        if relative not in expected:
            raise SchemaError(f"{shown}: not a file of MESA's B2MML {release} release (refused)")
        if schema_digest(data) != expected[relative]:
            raise SchemaError(
                f"{shown}: SHA-256 differs from MESA's published {release}/{relative} (refused)"
            )
        verified[relative] = data
    missing = sorted(set(expected) - set(verified))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        where_release = f"{prefix}/" if prefix else "the source"
        raise SchemaError(
            f"{where}: {release} release in {where_release} is incomplete: missing "
            f"{', '.join(missing[:3])}{more}"
        )
    return verified


def _licence(files: Mapping[str, bytes], prefixes: Iterable[str]) -> bytes | None:
    """MESA's licence text inside or next to a release folder, if the source has one."""
    for prefix in prefixes:
        parent = str(PurePosixPath(prefix).parent) if prefix else ""
        for folder in (prefix, "" if parent == "." else parent):
            candidate = f"{folder}/{LICENSE_NAME}" if folder else LICENSE_NAME
            if candidate in files:
                return files[candidate]
    return None


def _write_store(releases: Mapping[str, Mapping[str, bytes]], licence: bytes | None) -> Path:
    """Build the new store beside the old one, then swap them with renames."""
    store = user_schema_dir()
    store.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".b2mml-schemas-new-", dir=store.parent))
    try:
        for release, files in releases.items():
            for relative, data in files.items():
                target = staging / release / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        for release in RELEASES:
            if release not in releases and (store / release).is_dir():
                shutil.copytree(store / release, staging / release)
        if licence is not None:
            (staging / LICENSE_NAME).write_bytes(licence)
        elif (store / LICENSE_NAME).is_file():
            shutil.copy2(store / LICENSE_NAME, staging / LICENSE_NAME)
        _swap(staging, store)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return store


def _swap(staging: Path, store: Path) -> None:
    # A directory cannot replace a non-empty one in a single rename: move the
    # old store aside, move the new one in, and put the old one back on failure.
    if not store.exists():
        staging.rename(store)
        return
    old = store.with_name(f".b2mml-schemas-old-{uuid.uuid4().hex[:12]}")
    store.rename(old)
    try:
        staging.rename(store)
    except BaseException:
        old.rename(store)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m isa95.b2mml.schema_store --write-manifest DIR`` (maintainers only)."""
    parser = argparse.ArgumentParser(
        prog="python -m isa95.b2mml.schema_store",
        description="Regenerate the SHA-256 manifest of MESA's B2MML schemas.",
    )
    parser.add_argument(
        "--write-manifest",
        metavar="DIR",
        required=True,
        help="a trusted copy of MESA's schemas: the folder holding V0701/ and V0600/",
    )
    parser.add_argument(
        "--out", metavar="FILE", default=str(MANIFEST_PATH), help="default: the shipped manifest"
    )
    args = parser.parse_args(argv)
    try:
        manifest = build_manifest(args.write_manifest)
    except SchemaError as exc:
        parser.exit(2, f"error: {exc}\n")
    Path(args.out).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    counts = ", ".join(f"{r}: {len(f)} XSDs" for r, f in manifest["releases"].items())
    print(f"wrote {args.out} ({counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
