"""Personal data from the command line: ``erase``, ``export`` (subject access), ``dead-letters``
and ``data-keys`` (docs/privacy.md)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from leadscore.cli.config import load_settings, redis_client

if TYPE_CHECKING:
    from leadscore.schemas.privacy import ErasureReceipt
    from leadscore.schemas.subject_access import SubjectAccessExport
    from leadscore.settings import Settings


def erase(
    lead_ids: list[str] = typer.Argument(None, help="the leads to erase", show_default=False),
    reason: str | None = typer.Option(
        None, help="why, kept on the receipt (no personal data, please: it is kept for years)"
    ),
    from_file: Path | None = typer.Option(
        None, "--from-file", help="also erase the lead ids in this file, one per line ('-': stdin)"
    ),
    timeout: float = typer.Option(300.0, help="seconds to wait for the worker(s)"),
) -> None:
    """Erase leads: their state, scores, history, activity and webhooks; tell receivers.

    Returns when the erasure is complete everywhere leadscore keeps data, and prints
    the receipt. An unknown lead fails the whole request (exit status 2); nothing is erased.
    """
    leads = list(lead_ids or [])
    if from_file is not None:
        text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text()
        leads += [line.strip() for line in text.splitlines() if line.strip()]
    if not leads:
        typer.secho("give lead ids, or --from-file", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = load_settings()
    from leadscore.infra.privacy.erasure import UnknownLeadsError

    try:
        receipt = asyncio.run(_erase(settings, leads, reason, timeout))
    except UnknownLeadsError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(receipt.model_dump_json(indent=2))
    if receipt.completed_at is None:
        typer.secho(
            f"erasure {receipt.id} not complete after {timeout:g} s ({receipt.erased} of "
            f"{receipt.leads} leads erased): is a worker running? It goes on when one is; "
            f"follow it with GET /v1/erasures/{receipt.id}",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(1)


async def _erase(
    settings: Settings, leads: list[str], reason: str | None, wait_s: float
) -> ErasureReceipt:
    from leadscore.infra.privacy.erasure import request_erasure, wait_for_erasure

    client = redis_client(settings)
    try:
        receipt = await request_erasure(settings, client, leads, requested_by="cli", reason=reason)
        return await wait_for_erasure(settings, client, receipt.id, timeout_s=wait_s)
    finally:
        await client.aclose()


def export(
    lead_id: str = typer.Argument(..., help="the lead's id, exactly as the producers send it"),
    output: Path | None = typer.Option(
        None, help="write the JSON here (readable by its owner only) instead of stdout"
    ),
) -> None:
    """Print everything leadscore holds about a lead, as JSON (subject access).

    The same document as GET /v1/leads/{id}/export, and audited like it (without the lead
    id). A lead leadscore holds nothing about: exit status 2.
    """
    from leadscore.infra.privacy.export import unknown_lead_message

    settings = load_settings()
    document = asyncio.run(_export(settings, lead_id))
    if document is None:
        typer.secho(unknown_lead_message(lead_id), fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    text = document.model_dump_json(indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    # personal data: the file is the owner's alone, whatever the umask (an old one too)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    typer.secho(f"wrote {output}", err=True)


async def _export(settings: Settings, lead_id: str) -> SubjectAccessExport | None:
    """The export, with its entry in the audit log (key ``cli``, path ``leadscore export``)."""
    from leadscore.infra.access import AuditLog
    from leadscore.infra.privacy.export import export_lead

    client = redis_client(settings)
    try:
        document = await export_lead(settings, client, lead_id)
        status, outcome = (200, "ok") if document is not None else (404, "unknown lead")
        entry = {"key_id": None, "key_name": "cli", "method": "CLI", "path": "leadscore export"}
        audit = AuditLog(client, settings.redis_prefix, settings.audit_max_entries)
        await audit.write({**entry, "status": status, "outcome": outcome})
        return document
    finally:
        await client.aclose()
