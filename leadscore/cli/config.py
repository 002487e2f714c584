"""What every command needs first: the settings (bad ones named by their variable) and Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from leadscore.settings import Settings, env_var

if TYPE_CHECKING:
    import redis.asyncio as aioredis


def load_settings() -> Settings:
    """The settings from the environment; exit status 2 naming each invalid variable."""
    try:
        return Settings()
    except ValidationError as exc:  # say which variable is wrong, by its name
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            variable = env_var(field)
            lines.append(f"  {variable}: {error['msg']} (got {error.get('input')!r})")
        typer.secho("invalid configuration:\n" + "\n".join(lines), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def redis_client(settings: Settings) -> aioredis.Redis:
    """A Redis client for a short command: two retries, then it raises."""
    from leadscore.infra.redis_store import connect

    return connect(settings.redis_url, retries=2)
