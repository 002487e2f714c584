"""Standard Webhooks signing: secrets and the headers that let a receiver check a request.

Signing follows the Standard Webhooks specification (https://www.standardwebhooks.com):
the receiver gets ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed with the
bytes of the secret ``whsec_<base64>``. The stock ``standardwebhooks`` packages verify it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from leadscore.infra.webhooks.errors import WebhookSecretError

SECRET_PREFIX = "whsec_"
#: Random bytes in a generated secret (the spec allows 24-64).
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new random secret in the ``whsec_<base64>`` form (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret stands for.

    Raises:
        WebhookSecretError: not ``whsec_`` + base64 of 24-64 bytes.

    Examples:
        >>> len(secret_key(generate_secret()))
        32
    """
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(
            f"a webhook secret starts with {SECRET_PREFIX!r} (got {secret[:6]!r}...); "
            "leave it out to have one generated"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretError(
            f"the part after {SECRET_PREFIX!r} must be standard base64 (A-Z a-z 0-9 + / =)"
        ) from exc
    if not 24 <= len(key) <= 64:
        raise WebhookSecretError(
            f"a webhook secret must hold 24-64 bytes, this one holds {len(key)}"
        )
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

    Examples:
        >>> sign("whsec_" + "A" * 32, "msg_1", 1700000000, b'{"a":1}')
        'v1,HA9nSvEEuynF+mEPWgOAUWbrVA21G6kMzfOt+yEvB3I='
    """
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a webhook request carries (Standard Webhooks, plus the content type).

    Args:
        secret: the subscription's ``whsec_`` secret.
        webhook_id: the message id (the score event's id): the same on every attempt.
        timestamp: Unix seconds of this attempt (receivers refuse ones more than 5 minutes off).
        body: the exact request body.
    """
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
