"""Secured connections: MQTT over TLS with passwords and client certificates (a Mosquitto
the test starts), OPC UA Basic256Sha256 Sign / SignAndEncrypt with certificates and user
authentication (an asyncua server the test starts). Certificates are made by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from broker_support import (
    AppCert,
    Mosquitto,
    Pki,
    free_port,
    make_app_cert,
    make_pki,
    password_file,
    site_config,
)
from waiting import DEADLINE, until, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.mqtt import MqttSecurity, MqttSource
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSecurity, OpcUaSource
from gxpmes.errors import ConfigurationError

BATCH = "B-OT-1"
USERS = {"gxpmes": "connector-pass-1"}


# ------------------------------------------------------------------ MQTT


class TlsBroker:
    def __init__(self, folder: Path, *, require_certificate: bool) -> None:
        self.pki: Pki = make_pki(folder / "pki")
        self.port, self.tls_port = free_port(), free_port()
        config = site_config(
            folder,
            port=self.port,
            tls_port=self.tls_port,
            pki=self.pki,
            passwd=password_file(folder, USERS),
            require_certificate=require_certificate,
        )
        self.broker = Mosquitto(config, self.port, self.tls_port).start()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    broker = TlsBroker(tmp_path / "tls", require_certificate=False)
    yield broker
    broker.broker.stop()


@pytest.fixture
def cert_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    broker = TlsBroker(tmp_path / "mtls", require_certificate=True)
    yield broker
    broker.broker.stop()


def source(spool, port: int, security: MqttSecurity, host: str = "127.0.0.1") -> MqttSource:  # type: ignore[no-untyped-def]
    mqtt_source = MqttSource(
        spool,
        host=host,
        port=port,
        topics=["plant/#"],
        client_id=f"gx-{uuid.uuid4().hex[:8]}",
        clean_session=True,
        security=security,
    )
    mqtt_source.start()
    return mqtt_source


def refused(mqtt_source: MqttSource, *counters: str) -> None:
    """The connection is refused (counted), and never established."""
    try:
        wait_until(
            lambda: any(mqtt_source.counts[c] >= 1 for c in counters), what=f"{counters} counted"
        )
        assert not mqtt_source.connected.is_set()
    finally:
        mqtt_source.stop()


def test_mqtt_over_tls_with_password(spool, tls_broker) -> None:  # type: ignore[no-untyped-def]
    good = MqttSecurity(ca_file=tls_broker.pki.ca, username="gxpmes", password=USERS["gxpmes"])
    ok = source(spool, tls_broker.tls_port, good)
    try:
        assert ok.connected.wait(DEADLINE)
    finally:
        ok.stop()
    wrong_password = MqttSecurity(ca_file=tls_broker.pki.ca, username="gxpmes", password="guess")
    refused(source(spool, tls_broker.tls_port, wrong_password), "connection_refused")
    no_password = MqttSecurity(ca_file=tls_broker.pki.ca)
    refused(source(spool, tls_broker.tls_port, no_password), "connection_refused")


def test_mqtt_verifies_the_broker_certificate(spool, tls_broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    impostor_ca = make_pki(tmp_path / "other").ca  # a CA that did not sign the broker's cert
    security = MqttSecurity(ca_file=impostor_ca, username="gxpmes", password=USERS["gxpmes"])
    refused(source(spool, tls_broker.tls_port, security), "connection_errors")
    # The right CA, but a name the certificate does not carry.
    security = MqttSecurity(ca_file=tls_broker.pki.ca, username="gxpmes", password=USERS["gxpmes"])
    refused(source(spool, tls_broker.tls_port, security, host="127.0.0.2"), "connection_errors")


def test_mqtt_client_certificate(spool, cert_broker) -> None:  # type: ignore[no-untyped-def]
    pki = cert_broker.pki
    with_cert = MqttSecurity(
        ca_file=pki.ca,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
        username="gxpmes",
        password=USERS["gxpmes"],
    )
    ok = source(spool, cert_broker.tls_port, with_cert)
    try:
        assert ok.connected.wait(DEADLINE)
    finally:
        ok.stop()
    without = MqttSecurity(ca_file=pki.ca, username="gxpmes", password=USERS["gxpmes"])
    # TLS 1.3: the broker refuses the missing certificate after the handshake completed.
    refused(source(spool, cert_broker.tls_port, without), "connection_errors", "disconnects")


def test_unsafe_mqtt_settings_are_refused(spool, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="without TLS"):
        MqttSource(spool, security=MqttSecurity(username="u", password="p"))
    with pytest.raises(ConfigurationError, match="needs TLS"):
        MqttSource(spool, security=MqttSecurity(cert_file=tmp_path, key_file=tmp_path))
    with pytest.raises(ConfigurationError, match="both"):
        MqttSource(spool, security=MqttSecurity(ca_file=tmp_path, cert_file=tmp_path))
    # Explicitly allowed on a trusted network:
    MqttSource(spool, security=MqttSecurity(username="u", password="p", allow_plain_password=True))


# ------------------------------------------------------------------ OPC UA

SERVER_URI = "urn:gxpmes:test:opcua-server"
CLIENT_URI = "urn:gxpmes:test:connector"
OPC_USER, OPC_PASSWORD = "gxpmes", "opc-pass-1"


class PasswordUsers(UserManager):
    """One user name and password; everyone else is refused."""

    def get_user(  # type: ignore[override]
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username == OPC_USER and password == OPC_PASSWORD:
            return User(role=UserRole.User, name=username)
        return None


async def secure_server(port: int, server_cert: AppCert, trusted: AppCert) -> tuple[Server, Any]:
    server = Server(user_manager=PasswordUsers())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/gxpmes/")
    await server.set_application_uri(SERVER_URI)
    server.set_security_policy(
        [
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ]
    )
    server.set_identity_tokens([ua.UserNameIdentityToken])
    await server.load_certificate(str(server_cert.cert))
    await server.load_private_key(str(server_cert.key))

    async def only_trusted(certificate: Any, _app: Any) -> None:
        from asyncua.crypto import uacrypto

        if uacrypto.der_from_x509(certificate) != trusted.der:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)

    server.set_certificate_validator(only_trusted)
    index = await server.register_namespace("urn:gxpmes:test")
    plant = await server.nodes.objects.add_object(index, "GRAN01")
    variable = await plant.add_variable(ua.NodeId("GRAN01.TT101", index), "TT101", 70.0)
    await server.start()
    return server, variable


@pytest.fixture
def opc_certs(tmp_path: Path) -> dict[str, AppCert]:
    folder = tmp_path / "opc"
    return {
        "server": make_app_cert(folder, "server", SERVER_URI),
        "client": make_app_cert(folder, "client", CLIENT_URI),
        "stranger": make_app_cert(folder, "stranger", CLIENT_URI),
        "fake_server": make_app_cert(folder, "fake-server", SERVER_URI),
    }


def opc_security(certs: dict[str, AppCert], mode: str, **changes: Any) -> OpcUaSecurity:
    settings: dict[str, Any] = {
        "policy": "Basic256Sha256",
        "mode": mode,
        "certificate": certs["client"].cert,
        "private_key": certs["client"].key,
        "server_certificate": certs["server"].cert,
        "application_uri": CLIENT_URI,
        "username": OPC_USER,
        "password": OPC_PASSWORD,
    }
    settings.update(changes)
    return OpcUaSecurity(**settings)


BASIC256SHA256 = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"


def server_sessions(server: Server) -> list[tuple[str, str, str | None, str | None]]:
    """What the server itself holds for each client connection: the secure channel's policy
    URI and message security mode, the session's user and state (asyncua's server side)."""
    held = []
    for protocol in server.bserver.clients:
        processor = protocol.processor
        policy = processor._connection.security_policy
        session = getattr(processor, "session", None)
        held.append(
            (
                policy.URI,
                ua.MessageSecurityMode(policy.Mode).name,
                getattr(getattr(session, "user", None), "name", None),
                session.state.name if session is not None else None,
            )
        )
    return held


async def attempt(
    port: int,
    node_id: str,
    security: OpcUaSecurity,
    spool: Any,
    server: Server | None = None,
    held: list[Any] | None = None,
) -> OpcUaSource:
    """Run a source until it receives a value or has failed to connect once; with
    ``server``, what the server holds for the session is put in ``held`` meanwhile."""
    opc = OpcUaSource(
        spool,
        f"opc.tcp://127.0.0.1:{port}/gxpmes/",
        [OpcUaNode(node_id, "GRAN01/TT-101")],
        publishing_interval_ms=50,
        security=security,
    )
    task = asyncio.create_task(opc.run())
    try:
        await until(
            lambda: opc.counts["received"] >= 1 or opc.counts["connection_errors"] >= 1,
            what="a value or a refusal",
        )
        if server is not None and held is not None:
            held.extend(server_sessions(server))
    finally:
        opc.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, DEADLINE)
    return opc


REFUSALS = [
    # (what is wrong, settings changed, the reason the connector must report)
    ("wrong password", {"password": "guess"}, "(BadUserAccessDenied)"),
    (
        "anonymous, which the server does not offer",
        {"username": None, "password": None},
        "(BadIdentityTokenRejected)",
    ),
    (
        "a client certificate the server does not trust",
        {"stranger": True},
        "(BadCertificateUntrusted)",
    ),
    (
        "a pinned server certificate the server does not hold",
        {"server_certificate": "fake_server"},
        "TimeoutError (no answer to the secure channel request",
    ),
]


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
def test_opcua_basic256sha256_with_user_authentication(
    running, tags, spool, opc_certs, mode: str
) -> None:  # type: ignore[no-untyped-def]
    def changed(changes: dict[str, Any]) -> dict[str, Any]:
        if changes.pop("stranger", False):
            changes.update(
                certificate=opc_certs["stranger"].cert, private_key=opc_certs["stranger"].key
            )
        if "server_certificate" in changes:
            changes["server_certificate"] = opc_certs[changes["server_certificate"]].cert
        return changes

    held: list[Any] = []

    async def scenario() -> list[OpcUaSource]:
        port = free_port()
        server, variable = await secure_server(port, opc_certs["server"], opc_certs["client"])
        node = variable.nodeid.to_string()
        try:
            await variable.write_value(
                ua.DataValue(
                    ua.Variant(71.5, ua.VariantType.Double), SourceTimestamp=datetime.now(UTC)
                )
            )
            security = opc_security(opc_certs, mode)
            results = [await attempt(port, node, security, spool, server, held)]
            for _what, changes, _reason in REFUSALS:
                security = opc_security(opc_certs, mode, **changed(dict(changes)))
                results.append(await attempt(port, node, security, spool))
            return results
        finally:
            await server.stop()

    good, *bad = asyncio.run(scenario())
    assert good.counts["received"] >= 1 and good.counts["connection_errors"] == 0
    # The channel is the one configured, as the connector negotiated it and as the server
    # holds it, and the session is activated for the configured user.
    assert good.channel == (BASIC256SHA256, mode) and good.last_error is None
    assert held == [(BASIC256SHA256, mode, OPC_USER, "Activated")]
    # Each refusal for its own reason, before any session could be used.
    for (what, _changes, reason), result in zip(REFUSALS, bad, strict=True):
        assert result.counts["received"] == 0 and result.counts["connects"] == 0, what
        assert result.counts["connection_errors"] >= 1, what
        assert result.last_error is not None and result.last_error.startswith("connect: "), what
        assert reason in result.last_error, f"{what}: {result.last_error}"
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert "71.5" in [v["value"] for v in running.engine.values(BATCH)]


def test_unsafe_opcua_settings_are_refused(spool, opc_certs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="server_certificate"):
        OpcUaSource(
            spool,
            "opc.tcp://x/",
            [],
            security=opc_security(opc_certs, "Sign", server_certificate=None),
        )
    with pytest.raises(ConfigurationError, match="unsecured"):
        OpcUaSource(spool, "opc.tcp://x/", [], security=OpcUaSecurity(username="u", password="p"))
    with pytest.raises(ConfigurationError, match="Sign or SignAndEncrypt"):
        OpcUaSource(spool, "opc.tcp://x/", [], security=opc_security(opc_certs, "None"))
    with pytest.raises(ConfigurationError, match="Basic256Sha256"):
        OpcUaSource(spool, "opc.tcp://x/", [], security=OpcUaSecurity(policy="Basic128Rsa15"))
