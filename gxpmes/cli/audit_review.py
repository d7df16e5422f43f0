"""``gxpmes audit review``: render a scope of the audit trail, and record its signed review."""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import datetime
from pathlib import Path

from gxpmes.cli.common import (
    DB_HELP,
    EXIT_OK,
    CliError,
    add_head_key_options,
    head_signer_of,
    open_database,
    optional_dependency,
    output_folder,
    passphrase,
)

PASSWORD_ENV = "GXPMES_PASSWORD"


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"{option} {text!r} is not an ISO 8601 time") from exc
    if value.utcoffset() is None:
        raise CliError(f"{option} {text!r} has no time zone (add Z or +01:00)")
    return value


def _password(user: str) -> str:
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    return getpass.getpass(f"Password of {user}: ")


def cmd_audit_review(args: argparse.Namespace) -> int:
    from gxpmes.errors import ConfigurationError
    from gxpmes.trail import TrailScope, collect_trail

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    if args.batch is None and (since is None or until is None):
        raise CliError("give --batch ID, or --since T and --until T")
    try:
        scope = TrailScope(
            batch_id=args.batch, since=since, until=until, actor=args.actor, action=args.action
        )
    except ConfigurationError as exc:
        raise CliError(str(exc)) from exc
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if args.record:
        missing = [
            option
            for option, value in (
                ("--user", args.user),
                ("--sha256", args.sha256),
                ("--through", args.through),
                ("--comment", args.comment),
                ("--signature-key", args.signature_key),
            )
            if value is None
        ]
        if missing:
            raise CliError(f"--record needs {', '.join(missing)}")
    out = output_folder(args.out)
    db = open_database(args.db, read_only=not args.record, head_signer=head_signer_of(args))
    try:
        from gxpmes.identity import Credentials, IdentityService, SignatureService
        from gxpmes.trail import TrailReviews

        identity = IdentityService(db)
        key = None
        if args.record:
            from audit.keys import load_private_key

            key = load_private_key(Path(args.signature_key), passphrase(confirm=False))
        reviews = TrailReviews(db, SignatureService(identity, key))
        view = collect_trail(db, scope, through_seq=args.through)
        if args.record:
            review = reviews.record(
                scope,
                args.through,
                args.sha256,
                Credentials(args.user, _password(args.user)),
                comment=args.comment,
            )
            print(f"recorded review {review.review_id}: {review.manifestation}")
        recorded = reviews.reviews(scope.batch_id)
        with optional_dependency("reports"):
            from gxpmes.reports.trail import write_trail

            written = write_trail(
                view,
                out,
                formats=formats,
                reviews=[r for r in recorded if r.scope == scope],
            )
    finally:
        db.close()
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    print(f"scope: {scope.describe()}")
    print(f"entries: {len(view.rows)} (read through entry {view.through_seq})")
    print(f"sha256: {view.content_sha256}")
    if not args.record:
        print(
            "record the review after reading it: add --record --through "
            f"{view.through_seq} --sha256 {view.content_sha256} --user ID --comment TEXT "
            "--signature-key PEM"
        )
    return EXIT_OK


def register(audit_cmd: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit review`` to the ``audit`` group."""
    review = audit_cmd.add_parser(
        "review",
        help="render a scope of the audit trail readably; record its signed review",
        description="Write the audit trail of one batch, or of a time range, as HTML and PDF "
        "(who with printed name, when with time zone, what, old → new values, why, signature "
        "meaning), with the SHA-256 of exactly that content. After reading it, a QA reviewer "
        "records the review with --record: an e-signature (meaning Reviewed) over the scope, "
        "the entry number and the SHA-256, refused unless the trail still gives that SHA-256. "
        "Release of a batch needs a recorded review of its whole trail (EU GMP Annex 11 §9). "
        f"The reviewer's password comes from {PASSWORD_ENV} or the terminal.",
    )
    review.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    review.add_argument("--batch", metavar="ID", help="the trail of this batch")
    review.add_argument("--since", metavar="TIME", help="from this time (ISO 8601 with zone)")
    review.add_argument("--until", metavar="TIME", help="before this time (ISO 8601 with zone)")
    review.add_argument("--actor", metavar="USER", help="only entries by this user id")
    review.add_argument(
        "--action", metavar="ACTION", help="only this action (a pattern such as 'user.*')"
    )
    review.add_argument("--out", required=True, metavar="DIR", help="output folder")
    review.add_argument(
        "--format", default="html,pdf", help="html, pdf or html,pdf (default: html,pdf)"
    )
    review.add_argument(
        "--through",
        type=int,
        metavar="SEQ",
        help="read the trail through this entry number (default: the whole log now)",
    )
    review.add_argument(
        "--record", action="store_true", help="record the signed review of this scope"
    )
    review.add_argument("--user", metavar="ID", help="the reviewer's user id (with --record)")
    review.add_argument(
        "--sha256", metavar="HEX", help="SHA-256 of the trail as read (with --record)"
    )
    review.add_argument("--comment", metavar="TEXT", help="what the review found (with --record)")
    review.add_argument(
        "--signature-key",
        metavar="PEM",
        help="encrypted private.pem of the installation's system signature key (with --record; "
        "passphrase from GXPMES_KEY_PASSPHRASE or the terminal)",
    )
    add_head_key_options(review)
    review.set_defaults(func=cmd_audit_review)
