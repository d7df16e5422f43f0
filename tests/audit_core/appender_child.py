"""Child process for crash and concurrency tests: appends forever and acknowledges.

Prints ``ACK <first seq> <count> <leaf hash hex of last>`` after each append
returned, i.e. after the ledger reported it durable. With a fourth argument,
the path of an encrypted ``private.pem`` (passphrase in
``GXPMES_KEY_PASSPHRASE``), the ledger signs a tree head per transaction, and
two-entry batches go through the caller's-transaction path
(:meth:`Ledger.transaction`).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from audit.entry import Actor, AuditEvent
from audit.keys import load_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner


def main(url: str, worker: str, batches: int, head_key: str | None = None) -> None:
    signer = None
    if head_key:
        passphrase = os.environ["GXPMES_KEY_PASSPHRASE"].encode()
        signer = NoteSigner("gxpmes-heads", load_private_key(Path(head_key), passphrase))
    ledger = Ledger.open(url, head_signer=signer)
    actor = Actor(f"svc-{worker}", f"Collector {worker}")
    rng = random.Random(worker)
    done = 0
    while batches < 0 or done < batches:
        count = rng.randint(1, 40)
        events = [
            AuditEvent(actor, "capture", "value", f"{worker}/{done}/{i}", new={"w": worker, "i": i})
            for i in range(count)
        ]
        if count == 1:
            entry = ledger.append(events[0])
            first, last_hash = entry.seq, entry.leaf_hash
        elif count == 2 and signer is not None:
            with ledger.transaction() as conn:
                entries = [ledger.append(event, conn=conn) for event in events]
            first, last_hash = entries[0].seq, entries[-1].leaf_hash
        else:
            receipt = ledger.append_many(events)
            first, last_hash = receipt.first_seq, receipt.leaf_hashes[-1]
        print(f"ACK {first} {count} {last_hash.hex()}", flush=True)
        done += 1
    ledger.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
