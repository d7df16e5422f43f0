"""The per-user schema store: installs only MESA's files, from a folder, a zip or a URL.

The mechanics run on a small stand-in manifest (so they need no MESA files);
the last tests check the shipped manifest against MESA's real schemas.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from shared_paths import schemas_dir

from isa95.b2mml import schema_store
from isa95.b2mml.schema_store import (
    build_manifest,
    install_schemas,
    load_manifest,
    user_schema_dir,
)
from isa95.b2mml.schemas import schema_root
from isa95.errors import SchemaError

# Stand-in releases: names shaped like MESA's (each release has names of its own).
FAKE = {
    "V0701": {
        "AllSchemas.xsd": b"<xsd:schema><!-- V0701 all --></xsd:schema>\n",
        "B2MML-Common.xsd": b"<xsd:schema><!-- V0701 common --></xsd:schema>\n",
    },
    "V0600": {
        "AllSchemas.xsd": b"<xsd:schema><!-- V0600 all --></xsd:schema>\n",
        "B2MML-V0600-Common.xsd": b"<xsd:schema><!-- V0600 common --></xsd:schema>\n",
    },
}
LICENSE = b"Copyright MESA International\n"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing is written to the real home; no schema folder comes from the environment."""
    monkeypatch.setenv("GXPMES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GXPMES_B2MML_SCHEMAS", raising=False)
    return tmp_path / "data"


@pytest.fixture
def fake_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = {
        release: {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        for release, files in FAKE.items()
    }
    monkeypatch.setattr(schema_store, "load_manifest", lambda: manifest)


def write_source(root: Path, layout: dict[str, str] | None = None) -> Path:
    """Both releases under ``root``; ``layout`` renames release folders (MESA ships ``Schema/``)."""
    layout = layout or {"V0701": "V0701", "V0600": "V0600"}
    for release, folder in layout.items():
        for name, data in FAKE[release].items():
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (root / folder / "README.md").write_text("not a schema, ignored\n")
    (root / "LICENSE.txt").write_bytes(LICENSE)
    return root


def zip_folder(folder: Path, archive: Path, prefix: str = "b2mml/") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def assert_installed(store: Path, releases: tuple[str, ...] = ("V0701", "V0600")) -> None:
    assert store == user_schema_dir()
    for release in releases:
        for name, data in FAKE[release].items():
            assert (store / release / name).read_bytes() == data
        assert not (store / release / "README.md").exists()
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".b2mml-schemas")]


def test_user_dir_follows_the_data_dir_variable(data_dir: Path) -> None:
    assert user_schema_dir() == data_dir / "b2mml-schemas"


def test_user_dir_defaults_to_the_platform_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from platformdirs import user_data_path

    monkeypatch.delenv("GXPMES_DATA_DIR")
    expected = user_data_path("gxpmes", appauthor=False) / "b2mml-schemas"
    assert user_schema_dir() == expected


def test_install_from_a_folder(fake_manifest: None, tmp_path: Path) -> None:
    store = install_schemas(write_source(tmp_path / "src"))
    assert_installed(store)
    assert (store / "LICENSE.txt").read_bytes() == LICENSE


def test_release_folders_are_found_by_their_files(fake_manifest: None, tmp_path: Path) -> None:
    layout = {"V0701": "B2MML-BatchML-master/Schema", "V0600": "old/B2MML-V0600-Schemas"}
    store = install_schemas(str(write_source(tmp_path / "src", layout)))
    assert_installed(store)


def test_install_from_a_zip(fake_manifest: None, tmp_path: Path) -> None:
    archive = zip_folder(write_source(tmp_path / "src"), tmp_path / "b2mml.zip")
    assert_installed(install_schemas(archive))


def test_install_from_a_url(fake_manifest: None, tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    zip_folder(write_source(tmp_path / "src"), served / "b2mml.zip")
    with LocalServer(served) as base:
        assert_installed(install_schemas(f"{base}/b2mml.zip"))
        with pytest.raises(SchemaError, match="HTTP 404"):
            install_schemas(f"{base}/missing.zip")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer:
    """A local HTTP server on an ephemeral port of 127.0.0.1, serving one folder."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_converted_line_ends_are_the_same_schema(fake_manifest: None, tmp_path: Path) -> None:
    source = write_source(tmp_path / "src")
    path = source / "V0701" / "B2MML-Common.xsd"
    crlf = path.read_bytes().replace(b"\n", b"\r\n")
    path.write_bytes(crlf)
    store = install_schemas(source)
    assert (store / "V0701" / "B2MML-Common.xsd").read_bytes() == crlf


def test_a_tampered_schema_is_refused_and_nothing_changes(
    fake_manifest: None, tmp_path: Path
) -> None:
    store = install_schemas(write_source(tmp_path / "good"))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    bad = write_source(tmp_path / "bad")
    (bad / "V0600" / "B2MML-V0600-Common.xsd").write_bytes(b"<xsd:schema><!-- evil -->")
    with pytest.raises(SchemaError, match=r"V0600/B2MML-V0600-Common\.xsd: SHA-256 differs"):
        install_schemas(bad)
    with pytest.raises(SchemaError, match=r"V0600/B2MML-V0600-Common\.xsd: SHA-256 differs"):
        install_schemas(zip_folder(bad, tmp_path / "bad.zip"))
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    assert_installed(store)


def test_an_unknown_schema_is_refused(fake_manifest: None, tmp_path: Path) -> None:
    source = write_source(tmp_path / "src")
    (source / "V0701" / "B2MML-Extra.xsd").write_bytes(b"<xsd:schema/>")
    with pytest.raises(SchemaError, match=r"V0701/B2MML-Extra\.xsd: not a file of MESA's"):
        install_schemas(source)
    assert not user_schema_dir().exists()


def test_an_incomplete_release_is_refused(fake_manifest: None, tmp_path: Path) -> None:
    source = write_source(tmp_path / "src")
    (source / "V0701" / "AllSchemas.xsd").unlink()
    with pytest.raises(SchemaError, match=r"V0701 release in V0701/ is incomplete: missing Al"):
        install_schemas(source)
    assert not user_schema_dir().exists()


def test_releases_install_one_at_a_time(fake_manifest: None, tmp_path: Path) -> None:
    only_v0701 = write_source(tmp_path / "a", {"V0701": "V0701"})
    only_v0600 = write_source(tmp_path / "b", {"V0600": "V0600"})
    install_schemas(only_v0701)
    assert not (user_schema_dir() / "V0600").exists()
    assert_installed(install_schemas(only_v0600))  # V0701 stays


def test_a_source_without_schemas_is_refused(fake_manifest: None, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match="no MESA B2MML release found"):
        install_schemas(tmp_path / "empty")
    with pytest.raises(SchemaError, match="no such folder, zip file or URL"):
        install_schemas(tmp_path / "nowhere")
    with pytest.raises(SchemaError, match="only http:// and https://"):
        install_schemas("ftp://example.org/b2mml.zip")


def test_a_file_that_is_not_a_zip_is_refused(fake_manifest: None, tmp_path: Path) -> None:
    fake = tmp_path / "b2mml.zip"
    fake.write_bytes(b"<html>download page, not the archive</html>")
    with pytest.raises(SchemaError, match="not a zip archive"):
        install_schemas(fake)


@pytest.mark.parametrize(
    "name", ["../evil.xsd", "b2mml/../../evil.xsd", "/tmp/evil.xsd", "..\\evil.xsd", "C:evil.xsd"]
)
def test_a_zip_with_a_path_outside_the_folder_is_refused(
    fake_manifest: None, tmp_path: Path, name: str
) -> None:
    archive = zip_folder(write_source(tmp_path / "src"), tmp_path / "b2mml.zip")
    with zipfile.ZipFile(archive, "a") as out:
        out.writestr(name, b"<xsd:schema/>")
    with pytest.raises(SchemaError, match=r"unsafe path .* in the archive"):
        install_schemas(archive)
    assert not user_schema_dir().exists()
    assert not list(tmp_path.rglob("evil.xsd"))


def test_an_oversized_member_is_refused(
    fake_manifest: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = zip_folder(write_source(tmp_path / "src"), tmp_path / "b2mml.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as out:
        out.writestr("b2mml/V0701/bomb.xsd", b" " * 100_000)  # compresses to ~100 bytes
    monkeypatch.setattr(schema_store, "MAX_FILE_BYTES", 10_000)
    with pytest.raises(SchemaError, match=r"bomb\.xsd: larger than 10000 bytes"):
        install_schemas(archive)


def test_without_any_schemas_the_error_says_how_to_install(data_dir: Path) -> None:
    with pytest.raises(SchemaError, match=r"gxpmes b2mml schemas install --from DIR\|ZIP\|URL"):
        schema_root()


# ----------------------------------------------------- MESA's real schemas


@pytest.fixture(scope="module")
def mesa() -> Path:
    """MESA's schemas, resolved before ``data_dir`` hides any per-user install."""
    return schemas_dir()


@pytest.mark.needs_schemas
def test_the_shipped_manifest_matches_mesas_schemas(mesa: Path) -> None:
    manifest = build_manifest(mesa)
    assert manifest["releases"] == load_manifest()
    assert {release: len(files) for release, files in load_manifest().items()} == {
        "V0701": 39,
        "V0600": 38,
    }


@pytest.mark.needs_schemas
def test_installed_schemas_are_found_without_configuration(mesa: Path, tmp_path: Path) -> None:
    from isa95.b2mml.documents import B2MML
    from isa95.material import MaterialInformation, MaterialLot

    source = tmp_path / "mesa"
    shutil.copytree(mesa, source)
    store = install_schemas(zip_folder(source, tmp_path / "mesa.zip", prefix="B2MML/"))
    assert schema_root() == store  # neither an argument nor GXPMES_B2MML_SCHEMAS
    b2mml = B2MML()
    assert b2mml.schemas.root == store
    model = MaterialInformation(lots=[MaterialLot(id="L-1", status="Released")])
    assert b2mml.read(b2mml.write(model, version="V0600")).model == model
