"""``gxpmes b2mml``: validate, read and convert B2MML documents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gxpmes.cli.common import EXIT_OK, EXIT_PROBLEM, CliError, read_bytes


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
    except B2MMLError as exc:
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

    data = read_bytes(args.file)
    zone = None
    if args.assume_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(args.assume_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CliError(f"unknown time zone {args.assume_timezone!r}") from exc
    try:
        document = _b2mml(args).read(data, assume_timezone=zone)
    except SchemaError:
        raise
    except (B2MMLError, ModelError) as exc:
        print(f"gxpmes: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
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

    data = read_bytes(args.file)
    try:
        converted = _b2mml(args).convert(data, args.to)
    except SchemaError:
        raise
    except (B2MMLError, ModelError) as exc:
        print(f"gxpmes: cannot convert {args.file}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        Path(args.out).write_bytes(converted)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.to} document to {args.out}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``b2mml validate|read|convert``."""
    b2mml = sub.add_parser("b2mml", help="B2MML documents").add_subparsers(
        dest="b2mml_command", required=True
    )
    schemas_help = "folder with MESA's V0701/ and V0600/ XSDs (default: $GXPMES_B2MML_SCHEMAS)"
    validate = b2mml.add_parser("validate", help="validate a document against MESA's XSDs")
    validate.add_argument("file")
    validate.add_argument("--version", choices=["V0701", "V0600"])
    validate.add_argument("--schemas", help=schemas_help)
    validate.set_defaults(func=cmd_b2mml_validate)
    read = b2mml.add_parser("read", help="read a document into models")
    read.add_argument("file")
    read.add_argument("--json", action="store_true")
    read.add_argument("--assume-timezone", help="IANA zone for date-times sent without one")
    read.add_argument("--schemas", help=schemas_help)
    read.set_defaults(func=cmd_b2mml_read)
    convert = b2mml.add_parser("convert", help="convert a document to another release")
    convert.add_argument("file")
    convert.add_argument("--to", required=True, choices=["V0701", "V0600"])
    convert.add_argument("--out", required=True)
    convert.add_argument("--schemas", help=schemas_help)
    convert.set_defaults(func=cmd_b2mml_convert)
