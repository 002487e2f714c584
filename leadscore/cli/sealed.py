"""What is sealed at rest: ``leadscore dead-letters`` and ``leadscore data-keys`` (docs/privacy.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from leadscore.cli.config import load_settings, redis_client

if TYPE_CHECKING:
    from leadscore.settings import Settings


def dead_letters(
    limit: int = typer.Option(100, min=1, help="the newest this many"),
    since: str | None = typer.Option(
        None, help="only those refused at or after this time (ISO 8601; UTC if no zone)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON object a line"),
) -> None:
    """Print the refused input records (leads.dead-letter.v1), opened, oldest first.

    Dead letters are sealed with keys that live LEADSCORE_DEAD_LETTER_RETENTION_DAYS and
    go when their lead is erased; a letter whose key is gone prints as expired or erased.
    The topic is read from its start, with no consumer group (nothing is committed).
    """
    from leadscore.infra.privacy.crypto import KeyringError

    after = None
    if since is not None:
        try:
            after = datetime.fromisoformat(since)
        except ValueError as exc:
            typer.secho(f"--since: not an ISO 8601 time: {since!r}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from exc
        after = after if after.tzinfo else after.replace(tzinfo=UTC)
    settings = load_settings()
    try:
        rows = asyncio.run(_dead_letters(settings, limit, after))
    except KeyringError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    import orjson

    for row in rows:
        typer.echo(orjson.dumps(row).decode() if as_json else _text(row))
    opened = sum(1 for row in rows if row["record"] is not None)
    typer.secho(
        f"{len(rows)} dead letters: {opened} opened, {len(rows) - opened} expired or erased",
        err=True,
    )


async def _dead_letters(settings: Settings, limit: int, since: datetime | None) -> list[Any]:
    import base64

    from leadscore.infra.kafka.client import read_topic
    from leadscore.infra.privacy.crypto import Keyring
    from leadscore.infra.privacy.dead_letters import DeadLetterKeys
    from leadscore.schemas.scores import DeadLetter

    letters = [
        DeadLetter.model_validate_json(value)
        for value in await read_topic(settings, settings.dead_letter_topic)
    ]
    letters = [letter for letter in letters if since is None or letter.received_at >= since]
    letters = sorted(letters, key=lambda letter: letter.received_at)[-limit:]
    client = redis_client(settings)
    try:
        keys = DeadLetterKeys(
            client,
            settings.redis_prefix,
            settings.dead_letter_retention_days * 86_400,
            keyring=Keyring.from_settings(settings),
        )
        opened = await keys.open(letters)
    finally:
        await client.aclose()
    rows = []
    for letter, plain in zip(letters, opened, strict=True):
        row = letter.model_dump(mode="json", exclude={"key_b64", "value_b64", "sealed"})
        if plain is None:
            row.update(
                reason=None, key=None, record=None, note="expired or erased: its key is gone"
            )
        else:
            raw_key = base64.b64decode(plain.key_b64) if plain.key_b64 else None
            raw = base64.b64decode(plain.value_b64) if plain.value_b64 else b""
            row.update(
                reason=plain.reason,
                key=raw_key.decode(errors="replace") if raw_key is not None else None,
                record=raw.decode(errors="replace"),
            )
        rows.append(row)
    return rows


def _text(row: dict[str, Any]) -> str:
    where = f"{row['topic']}[{row['partition']}]@{row['offset']}"
    head = f"{row['received_at']}  {where}  {row['reason_code']}"
    if row["record"] is None:
        return f"{head}: expired or erased (its key is gone)"
    return f"{head}: {row['reason']}\n  key:    {row['key']}\n  record: {row['record']}"


data_keys_app = typer.Typer(
    help="Data keys that seal lead states, activity and dead-letter keys at rest.",
    no_args_is_help=True,
)


@data_keys_app.command("new")
def data_keys_new() -> None:
    """Put a fresh data key first in keys_dir/data.keys; the old ones stay, to open.

    Restart the API and workers to seal with it, then run `leadscore data-keys reseal`.
    """
    from leadscore.infra.privacy.crypto import DATA_KEYS_FILE, add_key

    settings = load_settings()
    if settings.data_keys:
        typer.secho(
            "LEADSCORE_DATA_KEYS is set: add the new key at its front there (kid:base64)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    kid = add_key(settings.keys_dir / DATA_KEYS_FILE)
    typer.echo(f"data key {kid} is now current in {settings.keys_dir / DATA_KEYS_FILE}")
    typer.echo(
        "restart the API and the workers (they read the keys at start), then run "
        "`leadscore data-keys reseal`"
    )


@data_keys_app.command("reseal")
def data_keys_reseal() -> None:
    """Seal every lead state, activity entry and dead-letter key in Redis with the current key.

    Safe while workers run (each write is a compare-and-set); says at the end whether any
    value in Redis still uses another key.
    """
    from leadscore.infra.privacy.crypto import Keyring, KeyringError
    from leadscore.infra.privacy.reseal import ResealReport, reseal, summary

    settings = load_settings()

    async def run() -> ResealReport:
        client = redis_client(settings)
        try:
            return await reseal(client, settings.redis_prefix, Keyring.from_settings(settings))
        finally:
            await client.aclose()

    try:
        report = asyncio.run(run())
    except (KeyringError, ValueError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    for line in summary(report):
        typer.echo(line)
    if report.old_keys_left:
        raise typer.Exit(1)
