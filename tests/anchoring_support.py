"""A real local RFC 3161 time-stamping authority for tests, and attack helpers.

The TSA is OpenSSL's ``openssl ts -reply`` behind a small ``http.server``
handler in a thread; its CA and its certificate (extendedKeyUsage critical
timeStamping) are made here with ``cryptography``. ``tsa.down = True`` makes
it answer 503, as a TSA that is out of service does.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import text

from audit.entry import Actor, AuditEvent, encode_entry
from audit.merkle import extend_frontier, frontier_indexes, record_hash
from audit.schema import LEDGER_TABLES, object_key

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 6
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(directory: Path, common_name: str = "Test TSA Root") -> tuple[Path, Path]:
    """A self-signed CA (certificate, key) written into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


def make_tsa_cert(directory: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A TSA certificate signed by the CA: extendedKeyUsage critical timeStamping."""
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tsa.pem", directory / "tsa.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


@dataclass
class LocalTsa:
    """A running TSA: its URL, CA certificate, and a switch to take it down."""

    url: str
    directory: Path
    ca_cert: Path
    tsa_cert: Path
    down: bool = False
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, query: bytes) -> bytes:
        """``openssl ts -reply`` for one DER TimeStampReq."""
        with self._lock, tempfile.TemporaryDirectory() as work:
            query_file, reply_file = Path(work) / "q.tsq", Path(work) / "r.tsr"
            query_file.write_bytes(query)
            subprocess.run(
                [
                    "openssl",
                    "ts",
                    "-reply",
                    "-config",
                    str(self.directory / "tsa.cnf"),
                    "-queryfile",
                    str(query_file),
                    "-out",
                    str(reply_file),
                ],
                check=True,
                capture_output=True,
            )
            self.requests += 1
            return reply_file.read_bytes()


@contextmanager
def local_tsa(directory: Path) -> Iterator[LocalTsa]:
    """Run a TSA on 127.0.0.1 (a free port) until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca(directory)
    tsa_cert, _tsa_key = make_tsa_cert(directory, ca_cert, ca_key)
    (directory / "tsa.cnf").write_text(_CONFIG.format(dir=directory), encoding="utf-8")
    (directory / "tsaserial").write_text("01\n", encoding="ascii")
    holder: list[LocalTsa] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            tsa = holder[0]
            length = int(self.headers.get("Content-Length", "0"))
            query = self.rfile.read(length)
            if tsa.down or self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_response(503 if tsa.down else 415)
                self.end_headers()
                return
            body = tsa.reply(query)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(
        LocalTsa(f"http://127.0.0.1:{server.server_port}/tsr", directory, ca_cert, tsa_cert)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ----------------------------------------------------------------- attacks


def forge_tail(ledger: Any) -> int:
    """Insert the next entry by bare SQL, in perfect form (no head of the ledger's covers it)."""
    size, prev = ledger.head()
    event = AuditEvent(Actor("qa01", "Quinn Approver"), "release", "batch", "B1", new={"s": 1})
    canonical = encode_entry(size, datetime.now(UTC), prev, event)
    leaf = record_hash(canonical)
    with ledger.engine.begin() as conn:
        frontier = list(ledger.hash_reader(conn)(frontier_indexes(size)))
        interior = b"".join(extend_frontier(frontier, size, leaf))
        conn.execute(
            text(
                "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
                "VALUES (:seq, :key, :canonical, :leaf, :tree)"
            ),
            {
                "seq": size,
                "key": object_key("batch", "B1"),
                "canonical": canonical,
                "leaf": leaf,
                "tree": interior,
            },
        )
    return size


def drop_guards(ledger: Any, tables: tuple[str, ...] = LEDGER_TABLES) -> None:
    """What the database owner (or anyone with the application's SQLite file) can do."""
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "sqlite":
            names = conn.execute(
                text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, table in names:
                if table in tables:
                    conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def cut_tail(ledger: Any, keep: int) -> None:
    """Delete every entry from ``keep`` on, and the tree heads and checkpoint copies above it."""
    drop_guards(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq >= :k"), {"k": keep})
        conn.execute(text("DELETE FROM audit_tree_head WHERE tree_size > :k"), {"k": keep})
        conn.execute(
            text(
                "DELETE FROM audit_checkpoint_receipt WHERE checkpoint_id IN "
                "(SELECT id FROM audit_checkpoint WHERE tree_size > :k)"
            ),
            {"k": keep},
        )
        conn.execute(text("DELETE FROM audit_checkpoint WHERE tree_size > :k"), {"k": keep})
