"""Child process for the compare-and-set tests: one engine call per round, on a signal.

Reads one JSON command per line on stdin::

    {"url": ..., "clock": ISO time, "key": system key hex, "op": ..., "user": ..., ...}

opens that database with its own engine, prints ``READY``, waits for a line
``GO`` (sent to every child at once) and makes the call. It prints one JSON
line: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": class name,
"kinds": [class names of its MRO], "message": ...}``, closes the database and
waits for the next command. ``QUIT`` (or end of input) ends it.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import NoteSigner
from gxpmes.database import Database
from gxpmes.ebr.engine import BatchEngine, CapturedValue
from gxpmes.identity import (
    Credentials,
    IdentityService,
    PasswordHasher,
    PasswordPolicy,
    SignatureService,
)
from gxpmes.testing.plant import HEAD_KEY_NAME, OT_SOURCE, Clock


def _call(engine: BatchEngine, command: dict[str, Any]) -> Any:
    who = Credentials(command["user"], command["password"])
    op = command["op"]
    if op == "release":
        return engine.release(command["batch"], who)
    if op == "reject":
        return engine.reject(command["batch"], who, reason=command["reason"])
    if op == "weigh":
        return engine.weigh(
            command["batch"],
            phase=command["phase"],
            material_id=command["material"],
            lot_id=command["lot"],
            actual=Decimal(command["actual"]),
            balance_id=command["balance"],
            performer=who,
        )
    if op == "approve":
        return engine.sign_recipe(command["recipe"], command["version"], "Approved", who)
    if op == "capture":  # until the stop file exists; prints CAPTURED <n> after each chunk
        stop, captured = Path(command["stop"]), 0
        while not stop.exists():
            start = engine.db.clock()  # never ahead of the server clock
            engine.capture(
                [
                    CapturedValue(
                        command["batch"],
                        command["parameter"],
                        "TT-101",
                        Decimal("70.0") + Decimal(i % 40) / 10,
                        command["unit"],
                        start + timedelta(milliseconds=i),
                    )
                    for i in range(command["size"])
                ],
                source=OT_SOURCE,
            )
            captured += command["size"]
            print(f"CAPTURED {captured}", flush=True)
        return captured
    raise ValueError(f"unknown operation {op!r}")


def _round(command: dict[str, Any]) -> dict[str, Any]:
    clock = Clock(datetime.fromisoformat(command["clock"]))
    # The plant's one key countersigns e-signatures and signs the log's tree heads.
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(command["key"]))
    db = Database(
        command["url"], clock=clock, create=False, head_signer=NoteSigner(HEAD_KEY_NAME, key)
    )
    try:
        identity = IdentityService(
            db,
            policy=PasswordPolicy(idle_timeout_minutes=240),
            hasher=PasswordHasher(log2_n=10),
        )
        engine = BatchEngine(db, identity, SignatureService(identity, key))
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "GO":
            raise SystemExit("expected GO")
        try:
            result = _call(engine, command)
        except Exception as exc:
            return {
                "ok": False,
                "error": type(exc).__name__,
                "kinds": [k.__name__ for k in type(exc).__mro__],
                "message": str(exc),
            }
        return {"ok": True, "result": result}
    finally:
        db.close()


def main() -> None:
    for line in sys.stdin:
        if line.strip() in ("", "QUIT"):
            return
        print(json.dumps(_round(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
