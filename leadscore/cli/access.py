"""``leadscore keys`` and ``leadscore audit``: API keys (create, list, revoke) and the audit log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import typer

from leadscore.cli.config import load_settings, redis_client

if TYPE_CHECKING:
    from leadscore.infra.access import ApiKey

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="who uses it, e.g. 'crm-sync' or 'dashboard'"),
    scope: list[str] = typer.Option(
        ["read"],
        help="read, score (includes read), privacy (erase, export; includes read) or admin "
        "(includes all); repeatable",
    ),
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from leadscore.infra.access import AccessError, KeyStore

    settings = load_settings()

    async def create() -> tuple[str, ApiKey]:
        client = redis_client(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).create(name, scope)
        finally:
            await client.aclose()

    try:
        key, record = asyncio.run(create())
    except AccessError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(key)
    typer.secho(
        f"key {record.id} ({', '.join(record.scopes)}) for {record.name!r}: store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key's id, name, scopes and whether it is revoked (never the keys themselves)."""
    from leadscore.infra.access import KeyStore

    settings = load_settings()

    async def read() -> list[ApiKey]:
        client = redis_client(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).list()
        finally:
            await client.aclose()

    rows = asyncio.run(read())
    if not rows:
        typer.echo("no API keys yet: leadscore keys create --name NAME --scope read")
    for key in rows:
        state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.name:<24} {','.join(key.scopes):<16} created {key.created_at}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="the key's id (leadscore keys list)"),
) -> None:
    """Revoke a key: refused everywhere within LEADSCORE_API_KEY_CACHE_S seconds."""
    from leadscore.infra.access import AccessError, KeyStore

    settings = load_settings()

    async def revoke() -> ApiKey:
        client = redis_client(settings)
        try:
            return await KeyStore(client, settings.redis_prefix).revoke(key_id)
        finally:
            await client.aclose()

    try:
        record = asyncio.run(revoke())
    except AccessError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id} ({record.name})")


def audit(limit: int = typer.Option(50, help="entries to show, newest first")) -> None:
    """The audit log of admin and personal-data calls: who, what, when, outcome."""
    from leadscore.infra.access import AuditLog

    settings = load_settings()

    async def read() -> list[dict[str, Any]]:
        client = redis_client(settings)
        try:
            return await AuditLog(client, settings.redis_prefix).read(limit)
        finally:
            await client.aclose()

    for entry in asyncio.run(read()):
        who = entry.get("key_name") or "(no valid key)"
        typer.echo(
            f"{entry['at']}  {who:<20} {entry['method']:<6} {entry['path']:<40} {entry['status']}  {entry['outcome']}"
        )
