"""``gxpmes b2mml validate|read|convert`` and their exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from lxml import etree
from shared_paths import CASES, cases_dir, schemas_dir

from gxpmes.cli import main
from isa95.b2mml.documents import B2MML
from isa95.material import MaterialInformation, MaterialLot

COCOP = CASES / "cocop-biz-spec"
pytestmark = pytest.mark.needs_schemas  # skipped without them, failed with CI=true


@pytest.fixture(autouse=True)
def schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GXPMES_B2MML_SCHEMAS", str(schemas_dir()))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate(capsys: pytest.CaptureFixture[str]) -> None:
    cases_dir()
    code, out, _ = run(capsys, "b2mml", "validate", str(COCOP / "ProcessProductionSchedule.xml"))
    assert code == 0 and out.strip() == "VALID"
    code, out, _ = run(
        capsys, "b2mml", "validate", str(COCOP / "Neg_ProcessProductionSchedule_InvalidMatUse.xml")
    )
    assert code == 1 and "line 56: <MaterialUse>" in out
    code, out, _ = run(
        capsys,
        "b2mml",
        "validate",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--version",
        "V0701",
    )
    assert code == 1 and "not V0701" in out
    code, out, _ = run(
        capsys, "b2mml", "validate", str(CASES / "rwth-iat-recipeeditor" / "Wabe20_Grundrezept.xml")
    )
    assert code == 1 and "line 519" in out
    code, _, err = run(capsys, "b2mml", "validate", "/nonexistent.xml")
    assert code == 2 and "cannot read" in err
    with pytest.raises(SystemExit) as exc:
        main(["b2mml", "validate", "x.xml", "--version", "V9"])
    assert exc.value.code == 2


def test_missing_schema_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cases_dir()
    schemas = schemas_dir()
    monkeypatch.delenv("GXPMES_B2MML_SCHEMAS")
    monkeypatch.setenv("GXPMES_DATA_DIR", str(tmp_path))  # and no per-user install
    code, _, err = run(capsys, "b2mml", "validate", str(COCOP / "ProcessProductionSchedule.xml"))
    assert code == 2 and "GXPMES_B2MML_SCHEMAS" in err
    code, _, _ = run(
        capsys,
        "b2mml",
        "validate",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--schemas",
        str(schemas),
    )
    assert code == 0


def test_read_json(capsys: pytest.CaptureFixture[str]) -> None:
    cases_dir()
    code, out, _ = run(
        capsys, "b2mml", "read", str(COCOP / "ProcessProductionSchedule.xml"), "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["version"] == "V0600" and result["verb"] == "Process"
    assert result["models"][0]["requests"][0]["id"] == "my-identifier-1"
    assert result["unmapped"]
    code, _, err = run(
        capsys,
        "b2mml",
        "read",
        str(COCOP / "Neg_ProcessProductionSchedule_EndBeforeStart.xml"),
        "--json",
    )
    assert code == 2 and "before it starts" in err  # an input error, not an integrity finding
    code, _, err = run(
        capsys,
        "b2mml",
        "read",
        str(CASES / "mesa-b2mml-batchml-examples" / "cough_syrup_pmw.xml"),
        "--json",
    )
    assert code == 2 and "BatchML V02" in err
    code, out, _ = run(
        capsys,
        "b2mml",
        "read",
        str(COCOP / "ProcessProductionSchedule_DateTimeKinds.xml"),
        "--json",
        "--assume-timezone",
        "Europe/Helsinki",
    )
    assert code == 0 and "+03:00" in out
    code, _, err = run(
        capsys,
        "b2mml",
        "read",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--assume-timezone",
        "Mars/Base",
    )
    assert code == 2


def test_unsafe_input_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reading refuses it (input error: 2); validating calls it invalid (the answer: 1)."""
    evil = tmp_path / "evil.xml"
    evil.write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    )
    code, _, err = run(capsys, "b2mml", "read", str(evil), "--json")
    assert code == 2 and "DOCTYPE" in err
    code, out, _ = run(capsys, "b2mml", "validate", str(evil))
    assert code == 1 and "DOCTYPE" in out


def test_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases_dir()
    b2mml = B2MML(schemas_dir())
    source = tmp_path / "lots.xml"
    model = MaterialInformation(
        lots=[MaterialLot(id="L-1", status="Released", storage_location="WH-1")]
    )
    source.write_bytes(b2mml.write(model, version="V0701"))
    out = tmp_path / "lots-v0600.xml"
    code, _, _ = run(capsys, "b2mml", "convert", str(source), "--to", "V0600", "--out", str(out))
    assert code == 0
    document = b2mml.read(out.read_bytes())
    assert document.version == "V0600" and document.model == model
    # A real V0600 schedule lacks what V0701 requires: refused, every path listed, no file.
    code, out, _ = run(
        capsys,
        "b2mml",
        "convert",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--to",
        "V0701",
        "--out",
        str(tmp_path / "x.xml"),
    )
    assert code == 1 and out.startswith("REFUSED:")
    assert (
        "/ProcessProductionSchedule/DataArea[1]/ProductionSchedule[1]/ProductionRequest[1]"
        "/SegmentRequirement[1]/ID: required by V0701" in out
    )
    assert "--fill-ids derive" in out
    assert not (tmp_path / "x.xml").exists()
    # With --fill-ids derive, what is left is what no policy can invent.
    code, out, _ = run(
        capsys,
        "b2mml",
        "convert",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--to",
        "V0701",
        "--fill-ids",
        "derive",
        "--out",
        str(tmp_path / "x.xml"),
    )
    assert code == 1 and "SegmentRequirement[1]/ID:" not in out
    assert "ProcessSegmentID: required by V0701" not in out  # derived from its own ID
    assert "ProductionRequest[2]/SegmentRequirement: required by V0701" in out
    assert "--fill-empty minimal" in out
    # With --fill-empty minimal the schedule converts, and comes back as it was.
    v0701, back = tmp_path / "x.xml", tmp_path / "back.xml"
    code, out, _ = run(
        capsys,
        "b2mml",
        "convert",
        str(COCOP / "ProcessProductionSchedule.xml"),
        "--to",
        "V0701",
        "--fill-ids",
        "derive",
        "--fill-empty",
        "minimal",
        "--out",
        str(v0701),
    )
    assert code == 0 and b2mml.validate(v0701.read_bytes()) == []
    code, out, _ = run(capsys, "b2mml", "convert", str(v0701), "--to", "V0600", "--out", str(back))
    assert code == 0
    original = (COCOP / "ProcessProductionSchedule.xml").read_bytes()
    assert etree.tostring(etree.fromstring(back.read_bytes()), method="c14n") == etree.tostring(
        etree.fromstring(original), method="c14n"
    )


def test_convert_drop_unrepresentable_prints_every_dropped_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = "http://www.mesa.org/xml/B2MML-V0600"
    source = tmp_path / "schedule.xml"
    source.write_bytes(
        f"""<ProcessProductionSchedule xmlns="{ns}" releaseID="V0600"><ApplicationArea>\
<CreationDateTime>2026-03-01T08:00:00Z</CreationDateTime></ApplicationArea><DataArea><Process/><ProductionSchedule>\
<ID>PS</ID><ProductionRequest><ID>PR</ID><ProductProductionRuleID>R</ProductProductionRuleID>\
<Version>3</Version><SegmentRequirement><ID>SR</ID><ProcessSegmentID>P</ProcessSegmentID>\
</SegmentRequirement></ProductionRequest></ProductionSchedule></DataArea>\
</ProcessProductionSchedule>""".encode()
    )
    out_file = tmp_path / "out.xml"
    args = ["b2mml", "convert", str(source), "--to", "V0701", "--fill-ids", "derive"]
    code, out, _ = run(capsys, *args, "--out", str(out_file))
    assert code == 1 and "ProductionRequest[1]/Version[1]" in out
    code, out, _ = run(capsys, *args, "--drop-unrepresentable", "--out", str(out_file))
    assert code == 0
    assert (
        "DROPPED (no place in V0701): /ProcessProductionSchedule/DataArea[1]/ProductionSchedule[1]"
        f'/ProductionRequest[1]/Version[1]: <Version xmlns="{ns}">3</Version>' in out
    )
    assert b"<Version>" not in out_file.read_bytes()


def test_read_json_gives_general_recipe_models_and_convert_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = CASES / "rwth-iat-recipetool" / "GeneralRecipeHC.xml"
    code, out, _ = run(capsys, "b2mml", "read", str(source), "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["root"], result["noun"], result["unmapped"]) == (
        "GRecipeInformation",
        "GRecipeInformation",
        [],
    )
    (information,) = result["models"]
    recipe = information["recipes"][0]
    assert (recipe["id"], recipe["recipe_type"], recipe["life_cycle_state"]) == (
        '"GeneralRecipeHC"',
        "General",
        "Draft",
    )
    amount = recipe["formula"]["inputs"]["materials"][0]["amount"]
    assert amount == {"value": '"3/10"', "data_type": None, "unit": None, "key": None}
    operations = recipe["procedure"]["elements"]
    assert [e["element_type"] for e in operations] == ["Process Operation"] * 3
    assert result["document"]["Recipe"][0]["ID"] == '"GeneralRecipeHC"'  # values as written
    v0600 = tmp_path / "grecipe-v0600.xml"
    code, out, _ = run(
        capsys, "b2mml", "convert", str(source), "--to", "V0600", "--out", str(v0600)
    )
    assert code == 0, out
    back = tmp_path / "grecipe-v0701.xml"
    code, _, _ = run(capsys, "b2mml", "convert", str(v0600), "--to", "V0701", "--out", str(back))
    assert code == 0
    c14n = lambda data: etree.tostring(etree.fromstring(data), method="c14n")  # noqa: E731
    assert c14n(back.read_bytes()) == c14n(source.read_bytes())


def test_read_json_works_on_nouns_without_domain_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from b2mml_instances import minimal

    from isa95.b2mml.documents import release, split_root
    from isa95.b2mml.mapping import NOUNS
    from isa95.errors import B2MMLError

    bindings = release("V0701")
    root = min(  # a bare noun no domain model maps (whichever is left)
        name
        for (namespace, name) in bindings.elements
        if namespace == bindings.namespace
        and split_root("V0701", name)[1] is None
        and name not in NOUNS
        and name != "BatchInformation"
    )
    source = tmp_path / "bare.xml"
    try:
        data = minimal(bindings, root)
    except B2MMLError:
        data = minimal(bindings, root, prefix="b2mml")  # unqualified locals need a prefix
    source.write_bytes(data)
    code, out, _ = run(capsys, "b2mml", "read", str(source), "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["root"], result["models"], result["unmapped"]) == (root, [], [f"/{root}"])
    assert result["document"] is not None  # the whole document, values as written


def test_schemas_install_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = schemas_dir()
    monkeypatch.setenv("GXPMES_DATA_DIR", str(tmp_path / "data"))
    code, out, _ = run(capsys, "b2mml", "schemas", "path")
    store = tmp_path / "data" / "b2mml-schemas"
    assert code == 0 and out.strip() == str(store) and not store.exists()
    code, out, _ = run(capsys, "b2mml", "schemas", "install", "--from", str(source))
    assert code == 0 and str(store) in out
    assert (store / "V0701" / "B2MML-Common.xsd").is_file()
    # Found without --schemas or GXPMES_B2MML_SCHEMAS.
    monkeypatch.delenv("GXPMES_B2MML_SCHEMAS")
    document = tmp_path / "lots.xml"
    model = MaterialInformation(lots=[MaterialLot(id="L-1", status="Released")])
    document.write_bytes(B2MML(store).write(model, version="V0701"))
    code, out, _ = run(capsys, "b2mml", "validate", str(document))
    assert code == 0 and out.strip() == "VALID"
    # A changed schema is refused and the store stays as it was.
    tampered = tmp_path / "tampered"
    shutil.copytree(source, tampered)
    xsd = tampered / "V0701" / "B2MML-Common.xsd"
    xsd.write_bytes(xsd.read_bytes().replace(b"</xsd:schema>", b"<!-- x --></xsd:schema>"))
    code, _, err = run(capsys, "b2mml", "schemas", "install", "--from", str(tampered))
    assert code == 2 and "SHA-256" in err and len(err.splitlines()) == 1
    assert (store / "V0701" / "B2MML-Common.xsd").read_bytes() == (
        source / "V0701" / "B2MML-Common.xsd"
    ).read_bytes()
