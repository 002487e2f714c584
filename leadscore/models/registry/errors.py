"""The registry's errors: a model version missing, untrusted, outdated or built for other features."""

from __future__ import annotations

__all__ = [
    "FeatureMismatchError",
    "ModelNotFoundError",
    "OutdatedModelError",
    "RegistryError",
    "UntrustedModelError",
]


class RegistryError(Exception):
    """A registry operation failed."""


class ModelNotFoundError(RegistryError, LookupError):
    """No such version (or no version at all)."""


class UntrustedModelError(RegistryError, ValueError):
    """A file of a version differs from its manifest (changed, truncated, missing, unlisted)."""


class FeatureMismatchError(RegistryError, ValueError):
    """The model was trained on another feature definition than the running code's."""


class OutdatedModelError(RegistryError, ValueError):
    """The version was written by an older leadscore in a layout this one does not read."""
