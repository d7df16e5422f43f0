"""``gxpmes keys``: checkpoint signing keys."""

from __future__ import annotations

import argparse
import json
import sys

from audit.entry import Actor
from audit.keys import generate_private_key
from audit.note import NoteSigner
from gxpmes.cli.common import (
    DB_HELP,
    DEFAULT_KEY_NAME,
    EXIT_OK,
    CliError,
    add_head_key_options,
    head_signer_of,
    open_ledger,
    output_folder,
    passphrase,
)


def cmd_keys_new(args: argparse.Namespace) -> int:
    from audit.keys import write_key_pair

    folder = output_folder(args.out)
    key = generate_private_key()
    private, public = write_key_pair(key, folder, passphrase(confirm=True))
    verifier = NoteSigner(args.name, key).verifier
    print(f"private key: {private}\npublic key:  {public}\nkey id:      {verifier.key_id}")
    print(f"vkey:        {verifier.vkey()}")
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.db, read_only=True)
    try:
        rows = [
            {
                "key_id": key.key_id,
                "name": key.verifier.name,
                "valid_from": key.valid_from.isoformat() if key.valid_from else None,
                "valid_until": key.valid_until.isoformat() if key.valid_until else None,
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                "revocation_reason": key.revocation_reason,
                "vkey": key.verifier.vkey(),
            }
            for key in ledger.keys.list_keys()
        ]
    finally:
        ledger.close()
    print(json.dumps(rows, indent=2))
    return EXIT_OK


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from datetime import datetime

    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise CliError(f"--at {args.at!r} is not an ISO 8601 time") from exc
        if at.utcoffset() is None:
            raise CliError("--at needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    ledger = open_ledger(args.db, read_only=False, head_signer=head_signer_of(args))
    try:
        # The command has no login: the operating-system account is the actor.
        # A log with signed heads takes no entry from a command without the head
        # key (it would read as forged), and a leaked key must still be revocable.
        audited = not ledger.needs_head_signer()
        actor = os_actor() if audited else None
        key = ledger.keys.revoke(args.key_id, reason=args.reason, at=at, actor=actor)
    finally:
        ledger.close()
    print(f"key {key.key_id} revoked at {key.revoked_at}")
    if not audited:
        print(
            f"warning: the revocation of key {key.key_id} is in the key registry (time, reason) "
            "but not in the audit trail: this log's tree heads are signed and this command "
            "holds no head key (give --head-key)",
            file=sys.stderr,
        )
    return EXIT_OK


def os_actor() -> Actor:
    """The operating-system account running the command, as an audit actor."""
    import getpass

    user = getpass.getuser()
    return Actor(f"os:{user}", f"{user} (operating-system account)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys new|list|revoke``."""
    keys = sub.add_parser(
        "keys", help="checkpoint signing keys", description="Checkpoint signing keys."
    ).add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    new = keys.add_parser(
        "new",
        help="create an Ed25519 key pair (private key encrypted)",
        description="Create an Ed25519 key pair; the private key is encrypted with the "
        "passphrase from $GXPMES_KEY_PASSPHRASE or the terminal. Existing keys are "
        "never overwritten.",
    )
    new.add_argument(
        "--out", required=True, metavar="DIR", help="folder for private.pem and public.pem"
    )
    new.add_argument(
        "--name",
        default=DEFAULT_KEY_NAME,
        help=f"key name used in signatures (default: {DEFAULT_KEY_NAME})",
    )
    new.set_defaults(func=cmd_keys_new)

    listing = keys.add_parser(
        "list",
        help="list keys registered in a ledger (JSON)",
        description="List the keys registered in a ledger, with validity and revocation, as JSON.",
    )
    listing.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    listing.set_defaults(func=cmd_keys_list)

    revoke = keys.add_parser(
        "revoke",
        help="revoke a registered key",
        description="Revoke a registered key: its signatures made at or after the "
        "revocation time no longer count.",
    )
    revoke.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    revoke.add_argument("--key-id", required=True, help="key id as `gxpmes keys list` shows it")
    revoke.add_argument("--reason", required=True, help="why the key is revoked (recorded)")
    revoke.add_argument(
        "--at", metavar="TIME", help="revocation time, ISO 8601 with a zone (default: now)"
    )
    add_head_key_options(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)
