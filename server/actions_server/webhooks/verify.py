"""Webhook signatures, checked on the raw request bytes: pure functions of the
headers, the body, the secrets and the time.

Schemes:
- `standard` (Standard Webhooks v1): `webhook-id`, `webhook-timestamp`,
  `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
  several separated by spaces during a rotation); secrets are `whsec_` + base64.
- `stripe`: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">`
  (several `v1` during a rotation); the secret is used as is. The delivery id is
  the event's `id` in the body.
- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; the
  delivery id is `X-GitHub-Delivery`. GitHub sends no timestamp.
- `hmac`: a configurable header, algorithm (sha256, sha512), encoding (hex,
  base64) and prefix, optionally a delivery-id header, for everything else.

Every comparison is constant time, any of several secrets may match (rotation),
and a timestamp is refused when too old or too far in the future. A refusal
says why (for the log) and never contains a secret or an expected signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

SCHEMES = ("standard", "stripe", "github", "hmac")
ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
ENCODINGS = ("hex", "base64")
MAX_SIGNATURES = 10  # signatures in one header considered (rotation needs two or three)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifySpec:
    """A webhook trigger's `verify:` block."""

    scheme: str
    secrets: tuple[str, ...]
    tolerance_seconds: float = 300.0
    header: str | None = None  # hmac: where the signature is
    algorithm: str = "sha256"  # hmac
    encoding: str = "hex"  # hmac
    prefix: str = ""  # hmac: e.g. "sha256="
    id_header: str | None = None  # hmac: where the delivery id is, if anywhere


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """What a verified delivery says about itself."""

    delivery_id: str | None
    timestamp: int | None = None


class SignatureRefused(Exception):
    """The request is not from the holder of a secret (or is stale); `reason` is for
    the log and names no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify(spec: VerifySpec, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
    """Check `body` against `headers` for `spec`; raise SignatureRefused if it fails.

    `headers` must look names up case-insensitively (aiohttp's CIMultiDict does).
    """
    if spec.scheme == "standard":
        return _standard(spec, headers, body, now)
    if spec.scheme == "stripe":
        return _stripe(spec, headers, body, now)
    if spec.scheme == "github":
        return _github(spec, headers, body)
    if spec.scheme == "hmac":
        return _hmac(spec, headers, body)
    raise ValueError(f"unknown webhook scheme {spec.scheme!r}")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureRefused(f"no {name} header")
    return value


def _timestamp(text: str, now: float, tolerance: float) -> int:
    if not text.isascii() or not text.strip().isdigit() or len(text.strip()) > 12:
        raise SignatureRefused("the timestamp is not a whole number of seconds")
    stamp = int(text.strip())
    if stamp < now - tolerance:
        raise SignatureRefused(f"the timestamp is {int(now - stamp)} s old")
    if stamp > now + tolerance:
        raise SignatureRefused(f"the timestamp is {int(stamp - now)} s in the future")
    return stamp


def _matches(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    """Whether any given signature equals any expected one (each compare constant time)."""
    found = False
    for signature in given[:MAX_SIGNATURES]:
        for candidate in expected:
            found |= hmac.compare_digest(candidate, signature)
    return found


def _mac(secret: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret, message, ALGORITHMS[algorithm]).digest()


def _standard(spec: VerifySpec, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
    delivery = _header(headers, "webhook-id")
    stamp = _timestamp(_header(headers, "webhook-timestamp"), now, spec.tolerance_seconds)
    given = []
    for part in _header(headers, "webhook-signature").split(" "):
        version, _, encoded = part.partition(",")
        if version == "v1":
            try:
                given.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
    if not given:
        raise SignatureRefused("webhook-signature has no v1 signature")
    message = f"{delivery}.{stamp}.".encode() + body
    expected = [_mac(standard_key(secret), message) for secret in spec.secrets]
    if not _matches(expected, given):
        raise SignatureRefused("no v1 signature matches a configured secret")
    return Verified(delivery_id=delivery, timestamp=stamp)


def standard_key(secret: str) -> bytes:
    """A Standard Webhooks secret (`whsec_` + base64) as the HMAC key it encodes."""
    encoded = secret.removeprefix("whsec_")
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def _stripe(spec: VerifySpec, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
    stamp_text, given = "", []
    for item in _header(headers, "Stripe-Signature").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            stamp_text = value
        elif key == "v1":
            try:
                given.append(bytes.fromhex(value))
            except ValueError:
                continue
    if not stamp_text:
        raise SignatureRefused("Stripe-Signature has no timestamp (t=)")
    stamp = _timestamp(stamp_text, now, spec.tolerance_seconds)
    if not given:
        raise SignatureRefused("Stripe-Signature has no v1 signature")
    message = f"{stamp}.".encode() + body
    expected = [_mac(secret.encode(), message) for secret in spec.secrets]
    if not _matches(expected, given):
        raise SignatureRefused("no v1 signature matches a configured secret")
    return Verified(delivery_id=_event_id(body), timestamp=stamp)


def _event_id(body: bytes) -> str | None:
    """Stripe names each event in its body (`"id": "evt_…"`); retries repeat it."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = event.get("id") if isinstance(event, dict) else None
    return found if isinstance(found, str) and found else None


def _github(spec: VerifySpec, headers: Mapping[str, str], body: bytes) -> Verified:
    header = _header(headers, "X-Hub-Signature-256")
    if not header.startswith("sha256="):
        raise SignatureRefused("X-Hub-Signature-256 does not start with sha256=")
    try:
        given = bytes.fromhex(header.removeprefix("sha256="))
    except ValueError:
        raise SignatureRefused("X-Hub-Signature-256 is not hex") from None
    expected = [_mac(secret.encode(), body) for secret in spec.secrets]
    if not _matches(expected, [given]):
        raise SignatureRefused("the signature matches no configured secret")
    return Verified(delivery_id=headers.get("X-GitHub-Delivery") or None)


def _hmac(spec: VerifySpec, headers: Mapping[str, str], body: bytes) -> Verified:
    assert spec.header is not None  # the loader requires it for this scheme
    header = _header(headers, spec.header)
    if not header.startswith(spec.prefix):
        raise SignatureRefused(f"{spec.header} does not start with {spec.prefix!r}")
    encoded = header.removeprefix(spec.prefix).strip()
    try:
        if spec.encoding == "hex":
            given = bytes.fromhex(encoded)
        else:
            given = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        raise SignatureRefused(f"{spec.header} is not {spec.encoding}") from None
    expected = [_mac(secret.encode(), body, spec.algorithm) for secret in spec.secrets]
    if not _matches(expected, [given]):
        raise SignatureRefused("the signature matches no configured secret")
    delivery = headers.get(spec.id_header) if spec.id_header else None
    return Verified(delivery_id=delivery or None)
