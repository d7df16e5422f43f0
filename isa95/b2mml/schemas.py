"""MESA's XSDs (never shipped with this library) and validation against them.

Safe parsing lives in :mod:`isa95.b2mml.safexml`; ``parse_xml`` is re-exported here.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from lxml import etree

from isa95.b2mml.safexml import MAX_DOCUMENT_BYTES, parse_xml, safe_parser
from isa95.b2mml.schema_store import installed_schema_dir, user_schema_dir
from isa95.b2mml.xsdindex import SchemaIndex, load_index
from isa95.errors import SchemaError, XMLIssue

__all__ = [
    "LEGACY_NAMESPACES",
    "MAX_DOCUMENT_BYTES",
    "NAMESPACES",
    "SchemaSet",
    "parse_xml",
    "schema_root",
]

NAMESPACES: dict[str, str] = {
    "V0701": "http://www.mesa.org/xml/B2MML",
    "V0600": "http://www.mesa.org/xml/B2MML-V0600",
}
VERSION_OF = {ns: version for version, ns in NAMESPACES.items()}
LEGACY_NAMESPACES = {
    "http://www.wbf.org/xml/B2MML-V0401": "B2MML V0401",
    "http://www.wbf.org/xml/B2MML-V0400": "B2MML V0400",
    "http://www.wbf.org/xml/B2MML-V0500": "B2MML V0500",
    "http://www.mesa.org/xml/B2MML-V0500": "B2MML V0500",
    "http://www.wbf.org/xml/BatchML-V02": "BatchML V02",
    "http://www.wbf.org/xml/BatchML-V0401": "BatchML V0401",
}
ENV_VAR = "GXPMES_B2MML_SCHEMAS"
_ELEMENT_IN_MESSAGE = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")


def schema_root(directory: str | Path | None = None) -> Path:
    """The folder holding ``V0701/`` and ``V0600/``.

    Looked up in this order: the argument, ``GXPMES_B2MML_SCHEMAS``, then the
    per-user store filled by ``gxpmes b2mml schemas install``
    (:func:`isa95.b2mml.schema_store.user_schema_dir`). A folder named
    explicitly that holds no release is an error, never passed over.
    """
    chosen = directory if directory is not None else os.environ.get(ENV_VAR)
    if not chosen:
        installed = installed_schema_dir()
        if installed is not None:
            return installed
        raise SchemaError(
            f"no B2MML schema directory: pass one, set {ENV_VAR} to the folder holding "
            "MESA's V0701/ and V0600/ schema folders, or install them with "
            f"`gxpmes b2mml schemas install --from DIR|ZIP|URL` (into {user_schema_dir()})"
        )
    path = Path(chosen).expanduser()
    if not (path / "V0701").is_dir() and not (path / "V0600").is_dir():
        raise SchemaError(f"{path} holds neither V0701/ nor V0600/ B2MML schemas")
    return path


def issues_from_log(log: etree._ListErrorLog) -> list[XMLIssue]:
    """Validation errors as :class:`XMLIssue` s naming line and element."""
    issues = []
    for error in log:
        match = _ELEMENT_IN_MESSAGE.search(error.message)
        issues.append(XMLIssue(error.line, match.group(1) if match else "?", error.message))
    return issues


class SchemaSet:
    """Compiled validators and structure indexes for the releases under one folder."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.root = schema_root(directory)

    def version_dir(self, version: str) -> Path:
        """The folder of one release."""
        if version not in NAMESPACES:
            raise SchemaError(f"unknown B2MML version {version!r} (supported: V0701, V0600)")
        path = self.root / version
        if not path.is_dir():
            raise SchemaError(f"no {version} schemas under {self.root}")
        return path

    def index(self, version: str) -> SchemaIndex:
        """The structure index of one release."""
        return load_index(self.version_dir(version))

    def validator(self, version: str, root_element: str) -> etree.XMLSchema:
        """The compiled XSD able to validate a document with ``root_element``."""
        return _validator(self.version_dir(version), version, root_element)

    def validate(self, tree: etree._ElementTree, version: str) -> list[XMLIssue]:
        """Validation errors of ``tree`` (empty when valid)."""
        root = etree.QName(tree.getroot()).localname
        schema = self.validator(version, root)
        if schema.validate(tree):
            return []
        return issues_from_log(schema.error_log)


def _validator(directory: Path, version: str, root_element: str) -> etree.XMLSchema:
    if version == "V0701":
        return _compiled(directory / "AllSchemas.xsd")
    # V0600's AllSchemas.xsd does not compile; use the area schema that
    # declares the root element (it includes everything it needs).
    return _compiled(_declaring_file(directory, root_element))


@cache
def _compiled(path: Path) -> etree.XMLSchema:
    """One compiled schema per file (several roots share their area's file)."""
    try:
        return etree.XMLSchema(etree.parse(str(path), safe_parser()))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise SchemaError(f"cannot compile {path}: {exc}") from exc


@cache
def _global_elements(directory: Path) -> dict[str, Path]:
    """Global element name → the (first, by name) non-aggregate V0600 file declaring it."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.xsd")):
        if path.name.startswith("AllSchemas") or "Types" in path.name:
            continue
        root = etree.parse(str(path), safe_parser()).getroot()
        for node in root.iterchildren("{http://www.w3.org/2001/XMLSchema}element"):
            name = node.get("name")
            if name is not None:
                found.setdefault(name, path)
    return found


def _declaring_file(directory: Path, root_element: str) -> Path:
    path = _global_elements(directory).get(root_element)
    if path is None:
        raise SchemaError(f"no V0600 schema declares <{root_element}>")
    return path
