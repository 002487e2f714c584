"""Webhook subscriptions: create, list, update, delete, test-fire, delivery log, replay (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
