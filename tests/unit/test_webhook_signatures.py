"""Webhook signatures made by the reference implementations verify; anything else
(one byte changed, a wrong secret, a stale or future timestamp, a malformed header)
is refused with a reason that names no secret."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time

import pytest
import stripe
from multidict import CIMultiDict
from standardwebhooks import Webhook

from actions_server.webhooks.verify import SignatureRefused, VerifySpec, verify

BODY = b'{"id": "evt_123", "type": "invoice.paid", "data": {"amount": 1200}}'
STANDARD_SECRET = "whsec_" + base64.b64encode(b"a standard webhooks secret!").decode()
OTHER_STANDARD = "whsec_" + base64.b64encode(b"the next secret in rotation").decode()
STRIPE_SECRET = "whsec_test_stripe_0123456789"
GITHUB_SECRET = "It's a Secret to Everybody"


def standard_headers(
    secret: str, *, at: float, body: bytes = BODY, msg: str = "msg_1"
) -> CIMultiDict[str]:
    stamp = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    signature = Webhook(secret).sign(msg, stamp, body.decode())
    return CIMultiDict(
        {"webhook-id": msg, "webhook-timestamp": str(int(at)), "webhook-signature": signature}
    )


def stripe_headers(secret: str, *, at: float, body: bytes = BODY) -> CIMultiDict[str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, int(at))
    return CIMultiDict({"Stripe-Signature": header})


STANDARD = VerifySpec(scheme="standard", secrets=(STANDARD_SECRET,))
STRIPE = VerifySpec(scheme="stripe", secrets=(STRIPE_SECRET,))
GITHUB = VerifySpec(scheme="github", secrets=(GITHUB_SECRET,))


def test_standard_webhooks_reference_signatures_verify() -> None:
    now = time.time()
    verified = verify(STANDARD, standard_headers(STANDARD_SECRET, at=now), BODY, now)
    assert (verified.delivery_id, verified.timestamp) == ("msg_1", int(now))


def test_stripe_reference_signatures_verify_and_name_the_event() -> None:
    now = time.time()
    verified = verify(STRIPE, stripe_headers(STRIPE_SECRET, at=now), BODY, now)
    assert verified.delivery_id == "evt_123"


def test_github_fixture_verifies() -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    headers = CIMultiDict(
        {
            "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        }
    )
    verified = verify(GITHUB, headers, b"Hello, World!", time.time())
    assert verified.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_any_of_several_secrets_verifies_a_rotation() -> None:
    now = time.time()
    rotating = VerifySpec(scheme="standard", secrets=(OTHER_STANDARD, STANDARD_SECRET))
    assert verify(rotating, standard_headers(STANDARD_SECRET, at=now), BODY, now)
    # The sender signs with both during its rotation: any one that matches will do.
    headers = standard_headers(OTHER_STANDARD, at=now)
    headers["webhook-signature"] = "v1,bm90IGEgcmVhbCBzaWduYXR1cmU= " + headers["webhook-signature"]
    assert verify(rotating, headers, BODY, now)


@pytest.mark.parametrize(
    ("spec", "sign"),
    [
        (STANDARD, lambda at, body: standard_headers(STANDARD_SECRET, at=at, body=body)),
        (STRIPE, lambda at, body: stripe_headers(STRIPE_SECRET, at=at, body=body)),
    ],
    ids=["standard", "stripe"],
)
def test_refusals(spec: VerifySpec, sign) -> None:
    now = time.time()
    changed = BODY.replace(b"1200", b"1201")
    cases = {
        "one byte changed": (sign(now, BODY), changed),
        "six minutes old": (sign(now - 360, BODY), BODY),
        "six minutes ahead": (sign(now + 360, BODY), BODY),
    }
    for case, (headers, body) in cases.items():
        with pytest.raises(SignatureRefused) as refused:
            verify(spec, headers, body, now)
        reason = refused.value.reason
        assert STANDARD_SECRET not in reason, case
        assert STRIPE_SECRET not in reason, case
    wrong = VerifySpec(scheme=spec.scheme, secrets=(OTHER_STANDARD,))
    with pytest.raises(SignatureRefused):
        verify(wrong, sign(now, BODY), BODY, now)


@pytest.mark.parametrize(
    ("spec", "headers"),
    [
        (STANDARD, {}),
        (STANDARD, {"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,x"}),
        (STANDARD, {"webhook-id": "m", "webhook-timestamp": "١٢٣", "webhook-signature": "v1,x"}),
        (STANDARD, {"webhook-id": "m", "webhook-timestamp": "NOW", "webhook-signature": "v2,abc"}),
        (STRIPE, {"Stripe-Signature": "garbage"}),
        (STRIPE, {"Stripe-Signature": "t=1,v1=zz"}),
        (GITHUB, {"X-Hub-Signature-256": "sha1=abc"}),
        (GITHUB, {"X-Hub-Signature-256": "sha256=not hex"}),
    ],
)
def test_malformed_headers_are_refused_not_errors(spec: VerifySpec, headers: dict) -> None:
    with pytest.raises(SignatureRefused):
        verify(spec, CIMultiDict(headers), BODY, time.time())


def test_the_hmac_scheme_takes_header_algorithm_encoding_and_prefix() -> None:
    spec = VerifySpec(
        scheme="hmac",
        secrets=("s3cret",),
        header="X-Signature",
        algorithm="sha512",
        encoding="base64",
        prefix="sha512=",
        id_header="X-Delivery",
    )
    digest = hmac.new(b"s3cret", BODY, hashlib.sha512).digest()
    headers = CIMultiDict(
        {"X-Signature": "sha512=" + base64.b64encode(digest).decode(), "X-Delivery": "d-1"}
    )
    assert verify(spec, headers, BODY, time.time()).delivery_id == "d-1"
    with pytest.raises(SignatureRefused):
        verify(spec, headers, BODY + b" ", time.time())
