"""Child process for crash and concurrency tests: appends forever and acknowledges.

Prints ``ACK <first seq> <count> <leaf hash hex of last>`` after each append
returned, i.e. after the ledger reported it durable.
"""

from __future__ import annotations

import random
import sys

from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger


def main(url: str, worker: str, batches: int) -> None:
    ledger = Ledger.open(url)
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
        else:
            receipt = ledger.append_many(events)
            first, last_hash = receipt.first_seq, receipt.leaf_hashes[-1]
        print(f"ACK {first} {count} {last_hash.hex()}", flush=True)
        done += 1
    ledger.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
