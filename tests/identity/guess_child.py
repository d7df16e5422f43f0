"""One password guesser in a process of its own (tests/identity/test_password_controls.py).

Reads ``{"url": ..., "user": ..., "password": ..., "go": path}`` as JSON on stdin,
waits until the file ``go`` exists (all guessers start together), makes one
password check and prints ``{"checks": n, "error": name}``: ``checks`` counts
the scrypt checks made against the account's real hash (not the decoy). Each
check is slowed down, so that every guesser is inside its check at once — the
race the lockout counter must win.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gxpmes.database import Database
from gxpmes.errors import GxpError
from gxpmes.identity import IdentityService, PasswordHasher


def main() -> None:
    command = json.loads(sys.stdin.readline())
    db = Database(command["url"], create=False)
    identity = IdentityService(db, hasher=PasswordHasher(log2_n=10))
    real_checks = 0
    original = PasswordHasher.verify

    def slow_verify(self: PasswordHasher, password: str, stored: str) -> bool:
        nonlocal real_checks
        if stored != identity._decoy:
            real_checks += 1
        time.sleep(0.3)  # a slow KDF: the window in which other guessers run
        return original(self, password, stored)

    PasswordHasher.verify = slow_verify  # type: ignore[method-assign]
    print("READY", flush=True)
    go = Path(command["go"])
    while not go.exists():
        time.sleep(0.005)
    error = None
    try:
        identity.verify_password(command["user"], command["password"], purpose="login")
    except GxpError as exc:
        error = type(exc).__name__
    finally:
        db.close()
    print(json.dumps({"checks": real_checks, "error": error}), flush=True)


if __name__ == "__main__":
    main()
