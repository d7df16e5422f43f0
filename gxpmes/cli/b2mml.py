"""``gxpmes b2mml``: validate, read and convert B2MML documents; install MESA's schemas."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gxpmes.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    SCHEMAS_HELP,
    CliError,
    output_file,
    read_bytes,
    write_file,
)


def _b2mml(args: argparse.Namespace) -> Any:
    from isa95.b2mml.documents import B2MML

    return B2MML(args.schemas)


def cmd_b2mml_validate(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, SchemaError

    data = read_bytes(args.file)
    processor = _b2mml(args)
    try:
        issues = processor.validate(data, args.version)
    except SchemaError:
        raise
    except B2MMLError as exc:  # not well-formed, unsafe, or not B2MML: the check's answer
        print(f"INVALID: {exc}")
        return EXIT_PROBLEM
    if issues:
        print(f"INVALID: {len(issues)} error(s)")
        for issue in issues:
            print(f"  {issue}")
        return EXIT_PROBLEM
    print("VALID")
    return EXIT_OK


def cmd_b2mml_read(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, ModelError, SchemaError

    data = b"" if args.stream else read_bytes(args.file)
    zone = None
    if args.assume_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(args.assume_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CliError(f"unknown time zone {args.assume_timezone!r}") from exc
    try:
        if args.stream:  # a BatchProductionRecord, in bounded memory (no "document" below)
            document = _b2mml(args).read_batch_record(args.file, assume_timezone=zone)
        else:
            document = _b2mml(args).read(data, assume_timezone=zone)
    except SchemaError:
        raise
    except (B2MMLError, ModelError) as exc:
        raise CliError(f"cannot read {args.file}: {exc}") from exc
    result = {
        "version": document.version,
        "root": document.root,
        "noun": document.noun,
        "verb": document.verb,
        "application_area": None
        if document.application_area is None
        else {
            "creation": document.application_area.creation.isoformat(),
            "sender": document.application_area.sender,
            "receivers": document.application_area.receivers,
            "bod_id": document.application_area.bod_id,
        },
        "models": [m.model_dump(mode="json") for m in document.models],
        "unmapped": document.unmapped,
        # The whole document as read (values as written): nothing is missing here.
        "document": None if document.binding is None else document.binding.to_data(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{document.version} {document.root}: {len(document.models)} {document.noun}")
        for path in document.unmapped:
            print(f"  not carried by the model: {path}")
    return EXIT_OK


def cmd_b2mml_convert(args: argparse.Namespace) -> int:
    from isa95.errors import B2MMLError, ModelError, SchemaError

    out = output_file(args.out)
    data = read_bytes(args.file)
    from isa95.b2mml.convert import ConversionRefused

    try:
        result = _b2mml(args).conversion(
            data,
            args.to,
            fill_ids=args.fill_ids,
            noun=args.noun,
            fill_empty=args.fill_empty,
            drop_derived=args.drop_derived,
            drop_unrepresentable=args.drop_unrepresentable,
        )
    except SchemaError:
        raise
    except ConversionRefused as exc:
        print(f"REFUSED: {len(exc.problems)} path(s) cannot be converted to {args.to}")
        for problem in exc.problems:
            print(f"  {problem}")
        return EXIT_PROBLEM
    except (B2MMLError, ModelError) as exc:
        raise CliError(f"cannot convert {args.file}: {exc}") from exc
    write_file(out, result.data)
    for change in result.report.restored:
        print(f"LEFT OUT (derived, --fill-ids derive gives it back): {change}")
    for change in result.report.hints:
        print(f"LEFT OUT (schema location of the source release): {change}")
    for change in result.report.dropped:
        print(f"DROPPED (no place in {args.to}): {change}")
    print(f"wrote {args.to} document to {args.out}")
    return EXIT_OK


def cmd_schemas_install(args: argparse.Namespace) -> int:
    from isa95.b2mml.schema_store import install_schemas

    folder = install_schemas(args.source)
    print(f"B2MML schemas installed in {folder}")
    return EXIT_OK


def cmd_schemas_path(args: argparse.Namespace) -> int:
    from isa95.b2mml.schema_store import user_schema_dir

    print(user_schema_dir())
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``b2mml validate|read|convert`` and ``b2mml schemas install|path``."""
    b2mml = sub.add_parser(
        "b2mml",
        help="B2MML documents and MESA's schemas",
        description="Validate, read and convert B2MML documents (V0701, V0600); install "
        "MESA's schemas, which gxpmes does not ship.",
    ).add_subparsers(dest="b2mml_command", required=True, metavar="COMMAND")

    validate = b2mml.add_parser(
        "validate",
        help="validate a document against MESA's XSDs (exit 1 if invalid)",
        description="Validate a document against MESA's XSDs; exit code 1 when it is invalid.",
    )
    validate.add_argument("file", help="the B2MML document")
    validate.add_argument(
        "--version",
        choices=["V0701", "V0600"],
        help="release the document must be (default: the one its namespace names)",
    )
    validate.add_argument("--schemas", metavar="DIR", help=SCHEMAS_HELP)
    validate.set_defaults(func=cmd_b2mml_validate)

    read = b2mml.add_parser(
        "read", help="read a document into models", description="Read a document into models."
    )
    read.add_argument("file", help="the B2MML document")
    read.add_argument("--json", action="store_true", help="print the models as JSON")
    read.add_argument(
        "--assume-timezone",
        metavar="ZONE",
        help="IANA zone for date-times sent without one (default: refuse them)",
    )
    read.add_argument(
        "--stream",
        action="store_true",
        help="read a BatchProductionRecord streamed: memory bounded by its models, not the "
        "document (validated while parsed; --json then has no whole-document 'document')",
    )
    read.add_argument("--schemas", metavar="DIR", help=SCHEMAS_HELP)
    read.set_defaults(func=cmd_b2mml_read)

    convert = b2mml.add_parser(
        "convert",
        help="convert a document to another release",
        description="Convert a document to another release, values as written. Refused, with "
        "every path listed (exit 1), when the target cannot hold something or needs what the "
        "source lacks.",
    )
    convert.add_argument("file", help="the B2MML document")
    convert.add_argument(
        "--to", required=True, choices=["V0701", "V0600"], help="release to convert to"
    )
    convert.add_argument("--out", required=True, metavar="FILE", help="file to write")
    convert.add_argument(
        "--fill-ids",
        choices=["derive"],
        help="derive required IDs the source lacks from the enclosing ID, and required "
        "references (e.g. OperationsDefinitionID) from the enclosing element's",
    )
    convert.add_argument(
        "--fill-empty",
        choices=["minimal"],
        help="make a required element the source has none of (a request's segment "
        "requirement) as the smallest one, its content derived (with --fill-ids derive)",
    )
    convert.add_argument(
        "--drop-derived",
        action="store_true",
        help="leave out IDs, references and elements that are exactly what --fill-ids "
        "derive gives back (lossless), also without an earlier conversion's record",
    )
    convert.add_argument(
        "--drop-unrepresentable",
        action="store_true",
        help="leave out what the target release cannot hold instead of refusing; "
        "every dropped path and value is printed",
    )
    convert.add_argument(
        "--noun",
        metavar="NOUN",
        help="target noun where the releases differ (e.g. ProductionSchedule for V0600)",
    )
    convert.add_argument("--schemas", metavar="DIR", help=SCHEMAS_HELP)
    convert.set_defaults(func=cmd_b2mml_convert)

    schemas = b2mml.add_parser(
        "schemas",
        help="install MESA's B2MML schemas for this user",
        description="MESA's XSDs are not shipped with gxpmes: install them once per user.",
    ).add_subparsers(dest="schemas_command", required=True, metavar="COMMAND")
    install = schemas.add_parser(
        "install",
        help="check MESA's XSDs against the shipped SHA-256 list and install them",
        description="Copy MESA's V0701/ and V0600/ XSDs into this user's data folder after "
        "checking each against the SHA-256 list gxpmes ships; B2MML commands then find them "
        "without --schemas.",
    )
    install.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SOURCE",
        help="a folder, a .zip file or an http(s) URL of a .zip holding MESA's schemas",
    )
    install.set_defaults(func=cmd_schemas_install)
    path = schemas.add_parser(
        "path",
        help="print the folder the schemas are installed in",
        description="Print the folder `gxpmes b2mml schemas install` fills.",
    )
    path.set_defaults(func=cmd_schemas_path)
