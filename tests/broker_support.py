"""Test brokers and certificates: Mosquitto instances the tests start themselves.

Each instance runs the shipped example configuration (docs/examples/mosquitto-gxpmes.conf)
with only its site-specific lines replaced — ports (free ones), the persistence
directory, password file, ACL file (a copy of docs/examples/mosquitto-gxpmes.acl) and
certificates (made here with ``cryptography``) —
so the settings a site is told to use are the settings tested.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "mosquitto-gxpmes.conf"
EXAMPLE_ACL = EXAMPLE.with_suffix(".acl")
"""The ACL the example configuration names (users gxpmes, plc, edge01)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    """The path of ``name``; a failure in CI when missing, a skip elsewhere."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} not installed")
    return path


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Pki:
    """A test CA with a server and a client certificate (PEM files in ``folder``)."""

    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None = None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
    key_usage: x509.KeyUsage | None = None,
) -> x509.Certificate:
    """A certificate for ``subject`` (self-signed without ``issuer``)."""
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(folder: Path, name: str = "gxpmes test CA") -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = certificate(name, ca_key, ca=True)
    issuer = (ca.subject, ca_key)
    server_key, client_key = _key(), _key()
    server = certificate(
        "localhost",
        server_key,
        issuer,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client = certificate(
        "gxpmes-connector", client_key, issuer, usage=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    return Pki(
        folder,
        _write_cert(ca, folder / "ca.pem"),
        _write_cert(server, folder / "server.pem"),
        _write_key(server_key, folder / "server.key"),
        _write_cert(client, folder / "client.pem"),
        _write_key(client_key, folder / "client.key"),
    )


# ------------------------------------------------------------------ Mosquitto


def site_config(
    folder: Path,
    *,
    port: int,
    tls_port: int,
    pki: Pki,
    passwd: Path,
    require_certificate: bool = False,
    text: str | None = None,
    acl: str | None = None,
) -> Path:
    """The example configuration with this site's ports, directories and files; the broker
    applies the example ACL (or ``acl``, the text of another)."""
    persistence = folder / "persistence"
    persistence.mkdir(parents=True, exist_ok=True)
    acl_file = folder / "acl"
    acl_file.write_text(
        acl if acl is not None else EXAMPLE_ACL.read_text(encoding="utf-8"), encoding="utf-8"
    )
    replaced = {
        "acl_file": f"acl_file {acl_file}",
        "persistence_location": f"persistence_location {persistence}/",
        "password_file": f"password_file {passwd}",
        "cafile": f"cafile {pki.ca}",
        "certfile": f"certfile {pki.server_cert}",
        "keyfile": f"keyfile {pki.server_key}",
    }
    lines = []
    for line in (text if text is not None else EXAMPLE.read_text(encoding="utf-8")).splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            if require_certificate and line.startswith("# require_certificate"):
                lines.append("require_certificate true")
            continue
        if words[0] == "listener" and words[1] == "1883":
            line = f"listener {port} 127.0.0.1"
        elif words[0] == "listener" and words[1] == "8883":
            line = f"listener {tls_port} 127.0.0.1"
        elif words[0] in replaced:
            line = replaced[words[0]]
        lines.append(line)
    if os.geteuid() == 0:
        lines.insert(
            0, "user root"
        )  # read the test's private files instead of dropping to 'mosquitto'
    path = folder / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def password_file(folder: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (hashed by mosquitto_passwd)."""
    tool = require_binary("mosquitto_passwd")
    path = folder / "passwd"
    path.write_text("", encoding="utf-8")
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    return path


class Mosquitto:
    """A broker process on free ports, stopped (and waited for) by :meth:`stop`."""

    def __init__(self, config: Path, port: int, tls_port: int) -> None:
        self.config, self.port, self.tls_port = config, port, tls_port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "mosquitto.log"

    def start(self) -> Mosquitto:
        binary = require_binary("mosquitto")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()  # never leave a half-started broker behind
                    raise AssertionError("mosquitto did not listen within 30 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.process = None


# ------------------------------------------------------------------ OPC UA certificates


@dataclass(frozen=True)
class AppCert:
    """An OPC UA application instance certificate (DER) and its key (PEM)."""

    uri: str
    cert: Path
    key: Path
    der: bytes


def make_app_cert(folder: Path, name: str, uri: str) -> AppCert:
    """A self-signed application instance certificate whose subjectAltName carries ``uri``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = _key()
    cert = certificate(
        name,
        key,
        sans=[
            x509.UniformResourceIdentifier(uri),
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        key_usage=x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=True,
            data_encipherment=True,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    (folder / f"{name}.der").write_bytes(der)
    return AppCert(uri, folder / f"{name}.der", _write_key(key, folder / f"{name}-key.pem"), der)
