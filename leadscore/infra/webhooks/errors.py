"""Webhook configuration errors: a bad secret or a receiver URL webhooks may not go to."""

from __future__ import annotations


class WebhookError(ValueError):
    """Base of webhook configuration errors; the message says what to change."""


class WebhookSecretError(WebhookError):
    """A secret is not in the ``whsec_<base64 of 24-64 bytes>`` form."""


class WebhookUrlError(WebhookError):
    """A receiver URL is malformed or points where webhooks may not go."""
