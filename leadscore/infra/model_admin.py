"""Model management for the CLI and the API: list, show, promote and roll back versions.

A promotion or rollback moves the registry's champion pointer (the source of truth) and
then announces it on ``models.events.v1``, so every worker and API process swaps at once
(:mod:`leadscore.infra.model_events`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadscore.infra.model_events import ModelEventPublishError, publish_model_event
from leadscore.models.registry.errors import ModelNotFoundError, RegistryError
from leadscore.models.registry.manifest import find_metric
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.models import ChampionChanged, ChampionChangeType, champion_changed
from leadscore.settings import Settings

#: How many of the newest versions an error message suggests.
_SUGGESTED_VERSIONS = 5


class ModelCommandError(RuntimeError):
    """A ``leadscore models`` command cannot do what was asked; nothing was changed."""


@dataclass(frozen=True)
class ModelRow:
    """One line of ``leadscore models list``; metrics are ``None`` where the manifest has none."""

    version: str
    created_at: datetime | None
    n_rows: int | None
    roc_auc: float | None
    accuracy: float | None
    champion: bool
    problem: str | None = None  # why the manifest could not be read
    kind: str | None = None  # lead_events or table
    variant: str | None = None


@dataclass(frozen=True)
class ChampionChange:
    """What ``promote``/``rollback`` did: the pointer moved; the announcement may have failed."""

    event: ChampionChanged
    announce_error: str | None  # None: published on the model-events topic

    @property
    def changed(self) -> bool:
        return self.event.version != self.event.previous


def list_models(settings: Settings, *, segment: str | None = None) -> list[ModelRow]:
    """Every version in the registry, oldest first, marking the champion of ``segment``.

    An unreadable manifest gives a row with ``problem`` set instead of failing the list.
    """
    registry = ModelRegistry(settings.model_dir)
    # Only a promoted version is a champion here: the registry's fallback (its newest
    # version) may be a table model that no worker would use.
    champion = (
        registry.champion(segment=segment) if registry.champion_history(segment=segment) else None
    )
    rows = []
    for version in registry.list():
        try:
            manifest = registry.manifest(version)
        except (RegistryError, OSError) as exc:
            rows.append(ModelRow(version, None, None, None, None, version == champion, str(exc)))
            continue
        metrics = getattr(manifest, "metrics", None)
        rows.append(
            ModelRow(
                version=version,
                created_at=getattr(manifest, "created_at", None),
                n_rows=getattr(manifest, "n_rows", None),
                roc_auc=find_metric(metrics, "roc_auc"),
                accuracy=find_metric(metrics, "accuracy"),
                champion=version == champion,
                kind=getattr(manifest, "kind", None),
                variant=getattr(manifest, "variant", None),
            )
        )
    return rows


def show_model(settings: Settings, version: str, *, full: bool = False) -> dict[str, Any]:
    """The manifest of ``version`` as JSON values; without the reference sample unless ``full``.

    Raises:
        ModelCommandError: no such version (the message lists the newest ones).
    """
    registry = ModelRegistry(settings.model_dir)
    try:
        manifest = registry.manifest(version)
    except ModelNotFoundError as exc:
        raise ModelCommandError(_with_newest(registry, str(exc))) from exc
    data = manifest.model_dump(mode="json")
    if not full:
        data.pop("reference_sample", None)
    return data


def promote_model(
    settings: Settings, version: str, *, segment: str | None = None, reason: str | None = None
) -> ChampionChange:
    """Make ``version`` the champion of ``segment``, then announce it on the model-events topic.

    The registry pointer is changed first: it is the source of truth, and a worker
    that misses the announcement still finds the new champion at its next poll.
    Promoting the current champion changes nothing and announces it again.

    Raises:
        ModelCommandError: no such version, or it cannot be loaded (nothing changed).
        ValueError: ``segment`` is not a valid segment name.
    """
    registry = ModelRegistry(settings.model_dir)
    try:
        registry.load(version)  # refuse here what every worker would refuse
    except ModelNotFoundError as exc:
        raise ModelCommandError(_with_newest(registry, str(exc))) from exc
    except RegistryError as exc:
        raise ModelCommandError(
            f"model {version} cannot be used, so it was not promoted: {exc}"
        ) from exc
    kind = registry.manifest(version).kind
    if kind == "table" and segment is None:
        raise ModelCommandError(
            f"model {version} was trained on a table (leadscore train --data): workers cannot build "
            "its features from lead events, so it cannot be the stream's champion. Promote it in "
            "the table segment: leadscore models promote --segment table " + version
        )
    if kind != "table" and segment == "table":
        raise ModelCommandError(
            f"model {version} scores lead events; the table segment holds models for CRM tables "
            "(leadscore score). Promote it without --segment."
        )
    previous = registry.champion(segment=segment)
    registry.promote(version, segment=segment)
    return _announce(settings, "model.promoted", version, previous, segment, reason)


def rollback_model(
    settings: Settings, *, segment: str | None = None, reason: str | None = None
) -> ChampionChange:
    """Restore the previous champion of ``segment``, then announce it on the model-events topic.

    Raises:
        ModelCommandError: there is no previous champion (nothing changed).
        ValueError: ``segment`` is not a valid segment name.
    """
    registry = ModelRegistry(settings.model_dir)
    previous = registry.champion(segment=segment)
    try:
        version = registry.rollback(segment=segment)
    except RegistryError as exc:
        raise ModelCommandError(
            f"{exc}: nothing was ever promoted over the current champion ({previous}). "
            + _with_newest(registry, "To use another version, promote it")
        ) from exc
    return _announce(settings, "model.rolled_back", version, previous, segment, reason)


def _announce(
    settings: Settings,
    type: ChampionChangeType,
    version: str,
    previous: str | None,
    segment: str | None,
    reason: str | None,
) -> ChampionChange:
    event = champion_changed(
        type, version=version, previous=previous, segment=segment, reason=reason
    )
    try:
        asyncio.run(publish_model_event(settings, event))
    except ModelEventPublishError as exc:
        return ChampionChange(event, str(exc))
    return ChampionChange(event, None)


def _with_newest(registry: ModelRegistry, message: str) -> str:
    versions = registry.list()
    if not versions:
        return f"{message}. The registry {registry.root} is empty: train with `leadscore train`."
    newest = ", ".join(reversed(versions[-_SUGGESTED_VERSIONS:]))
    return f"{message}. Newest versions: {newest} (all: `leadscore models list`)."
