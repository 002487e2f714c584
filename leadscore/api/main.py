"""The ASGI entry point: ``uvicorn --factory leadscore.api.main:app`` (what ``leadscore api`` runs)."""

from __future__ import annotations

from fastapi import FastAPI

from leadscore.api.app import create_app
from leadscore.settings import Settings


def app() -> FastAPI:
    """The API app configured from the environment (each uvicorn worker builds its own)."""
    return create_app(Settings())
