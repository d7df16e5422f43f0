"""A receiver in its own process (test_concurrent_receivers): takes one document."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from audit.note import NoteSigner
from gxpmes.cli.common import verify_only_engine
from gxpmes.database import Database
from gxpmes.erp.inbound import Receiver
from gxpmes.testing.plant import HEAD_KEY_NAME
from isa95.b2mml.documents import B2MML

url, key_file, schemas, document = sys.argv[1:5]
key = load_pem_private_key(Path(key_file).read_bytes(), password=None)
db = Database(url, create=False, head_signer=NoteSigner(HEAD_KEY_NAME, key))  # type: ignore[arg-type]
try:
    receiver = Receiver(verify_only_engine(db), B2MML(schemas))
    print(receiver.handle(Path(document).read_bytes(), "child").outcome)
finally:
    db.close()
