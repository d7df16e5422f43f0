"""RFC 3161 time-stamps of checkpoints: a TSA sink and the token check.

The sink sends a ``TimeStampReq`` over the exact signed checkpoint note
(SHA-512 message imprint, a nonce, the TSA's certificate requested) to a
time-stamping authority by HTTP POST (RFC 3161 §3.4,
``application/timestamp-query``) and keeps the DER ``TimeStampResp`` as the
receipt. Request building, parsing and the CMS signature and certificate
chain checks are the maintained ``rfc3161-client`` package's.

:func:`check_timestamp` is what verification adds on top: the token must be
signed by a certificate that chains to a trusted root (and, when pinned, be
that TSA's certificate, with critical extendedKeyUsage timeStamping), its
imprint must be the hash of *this* note, and the checkpoint's own time line
must not be later than the TSA's ``genTime`` — a checkpoint back-dated with
a stolen key gets a token from *now*, so its claimed time is caught.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from audit.anchoring.sink import PublishedCheckpoint, Receipt
from audit.errors import AnchorError, SinkRefused, SinkUnavailable

__all__ = [
    "KIND",
    "TimestampAuthority",
    "TimestampContradiction",
    "TimestampSink",
    "check_timestamp",
    "load_certificates",
    "request_timestamp",
]

KIND = "rfc3161"
_MAX_RESPONSE = 1 << 20


class TimestampContradiction(AnchorError):
    """A token that verifies, and contradicts its checkpoint (later time line, distrusted TSA)."""


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file (or one DER certificate)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnchorError(f"cannot read certificate file {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise AnchorError(f"{path} holds no readable X.509 certificate: {exc}") from exc


@dataclass(frozen=True)
class TimestampAuthority:
    """A TSA a verifier trusts: its roots (and intermediates), optionally its pinned certificate.

    ``valid_from``/``valid_until``/``revoked_at`` bound the ``genTime`` of
    the tokens it accepts from this TSA (e.g. after its key was compromised).
    """

    name: str
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    certificate: x509.Certificate | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = field(default=None, compare=False)

    def problem_at(self, when: datetime) -> str | None:
        """Why a token of this TSA dated ``when`` must not be trusted, or None."""
        if self.revoked_at is not None and when >= self.revoked_at:
            revoked = self.revoked_at.isoformat()
            return f"TSA {self.name} revoked at {revoked}: {self.revocation_reason}"
        if self.valid_from is not None and when < self.valid_from:
            return f"TSA {self.name} not trusted before {self.valid_from.isoformat()}"
        if self.valid_until is not None and when >= self.valid_until:
            return f"TSA {self.name} not trusted from {self.valid_until.isoformat()}"
        return None


def _verify_with(
    authority: TimestampAuthority, response_der: bytes, message: bytes, nonce: int | None
) -> tuple[datetime, timedelta]:
    """Signature, chain, EKU and imprint of one token under one TSA; ``(genTime, slack)``."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(response_der)
    except ValueError as exc:
        raise AnchorError(f"not an RFC 3161 TimeStampResp: {exc}") from exc
    builder = VerifierBuilder()
    for root in authority.roots:
        builder = builder.add_root_certificate(root)
    for intermediate in authority.intermediates:
        builder = builder.add_intermediate_certificate(intermediate)
    if authority.certificate is not None:
        builder = builder.tsa_certificate(authority.certificate)
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify_message(response, message)
    except (VerificationError, ValueError) as exc:
        raise AnchorError(
            f"time-stamp token does not verify under TSA {authority.name}: {exc}"
        ) from exc
    info = response.tst_info
    gen_time = info.gen_time
    if gen_time.utcoffset() is None:  # GeneralizedTime is UTC by definition (RFC 3161 §2.4.2)
        gen_time = gen_time.replace(tzinfo=UTC)
    # The TSA vouches for genTime ± accuracy (§2.4.2); the parser also drops the
    # fraction of a second, so the latest the token can mean is one second more.
    slack = timedelta(seconds=1)
    accuracy = info.accuracy
    if accuracy is not None:
        slack += timedelta(
            seconds=accuracy.seconds or 0,
            milliseconds=accuracy.millis or 0,
            microseconds=accuracy.micros or 0,
        )
    return gen_time, slack


def check_timestamp(
    response_der: bytes,
    note: bytes,
    checkpoint_time: datetime,
    authorities: Sequence[TimestampAuthority],
    *,
    nonce: int | None = None,
) -> tuple[datetime, str]:
    """Check an RFC 3161 token over a signed checkpoint ``note``; ``(latest time, TSA name)``.

    The time returned is the latest the token vouches for: genTime plus the
    TSA's stated accuracy plus one second (the fraction the parser drops);
    the note was signed no later than that.

    The token must verify under one of ``authorities`` (signature,
    certificate chain valid at genTime, timeStamping EKU, imprint of exactly
    ``note``), that TSA must be trusted at genTime, and ``checkpoint_time``
    (the note's own time line) must not be after genTime. Raises
    :class:`TimestampContradiction` when a token verifies but contradicts the
    checkpoint, :class:`AnchorError` when it is no usable token for it.
    """
    if not authorities:
        raise AnchorError("no trusted TSA certificates to check the time-stamp token with")
    reasons = []
    for authority in authorities:
        try:
            gen_time, slack = _verify_with(authority, response_der, note, nonce)
        except AnchorError as exc:
            reasons.append(str(exc))
            continue
        problem = authority.problem_at(gen_time)
        if problem is not None:
            raise TimestampContradiction(f"time-stamp of {gen_time.isoformat()}: {problem}")
        if checkpoint_time > gen_time + slack:
            raise TimestampContradiction(
                f"checkpoint claims time {checkpoint_time.isoformat()}, later than its RFC 3161 "
                f"time-stamp {gen_time.isoformat()} by TSA {authority.name}: its time line is false"
            )
        return gen_time + slack, authority.name
    raise AnchorError("; ".join(reasons))


def request_timestamp(
    url: str, message: bytes, *, timeout: float = 10.0
) -> tuple[bytes, int | None]:
    """Ask the TSA at ``url`` to time-stamp ``message``; ``(DER TimeStampResp, nonce)``.

    Network failures and HTTP errors raise :class:`SinkUnavailable`; a
    response the TSA marks as not granted raises :class:`SinkRefused`.
    """
    from rfc3161_client import (
        HashAlgorithm,
        PKIStatus,
        TimestampRequestBuilder,
        decode_timestamp_response,
    )

    request = (
        TimestampRequestBuilder()
        .data(message)
        .hash_algorithm(HashAlgorithm.SHA512)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    http = urllib.request.Request(
        url,
        data=request.as_bytes(),
        headers={
            "Content-Type": "application/timestamp-query",
            "Accept": "application/timestamp-reply",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            body = answer.read(_MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise SinkUnavailable(f"TSA {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkUnavailable(f"TSA {url} unreachable: {reason}") from exc
    if len(body) > _MAX_RESPONSE:
        raise SinkUnavailable(f"TSA {url} sent more than {_MAX_RESPONSE} bytes")
    try:
        response = decode_timestamp_response(body)
    except ValueError as exc:
        raise SinkUnavailable(f"TSA {url} sent no TimeStampResp: {exc}") from exc
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise SinkRefused(f"TSA {url} refused the request (status {response.status})")
    return body, request.nonce


class TimestampSink:
    """Publishes each checkpoint to an RFC 3161 TSA; the receipt is the DER TimeStampResp.

    With ``authorities`` (the TSA certificates the installation trusts) the
    token is checked before it is stored, so a misconfigured or impostor TSA
    shows as a refusing sink instead of as a finding at the next audit. With
    ``directory`` the token is also written, once, as ``<checkpoint file>.tsr``
    into that folder (the directory sink's), where verification finds it.
    """

    kind = KIND

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        authorities: Sequence[TimestampAuthority] = (),
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        directory: str | Path | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise AnchorError(f"TSA URL must be http(s): {url!r}")
        self.url = url
        self._name = name or f"tsa:{url}"
        self._authorities = tuple(authorities)
        self._timeout = timeout
        self._clock = clock or (lambda: datetime.now(UTC))
        self.directory = None if directory is None else Path(directory)

    @property
    def name(self) -> str:
        """The sink's name (default ``tsa:<url>``)."""
        return self._name

    def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
        """Time-stamp the signed note; check the token when authorities are configured."""
        body, nonce = request_timestamp(self.url, checkpoint.note, timeout=self._timeout)
        if self._authorities:
            try:
                check_timestamp(
                    body, checkpoint.note, checkpoint.timestamp, self._authorities, nonce=nonce
                )
            except AnchorError as exc:
                raise SinkRefused(str(exc)) from exc
        if self.directory is not None:
            # Beside the directory sink's file, so the token travels with the checkpoint.
            from audit.anchoring.directory import checkpoint_file_name, write_once

            try:
                write_once(self.directory, checkpoint_file_name(checkpoint) + ".tsr", body)
            except OSError as exc:
                raise SinkUnavailable(
                    f"cannot write the time-stamp token into {self.directory}: {exc.strerror}"
                ) from exc
        return Receipt(self.name, self.kind, body, self._clock())
