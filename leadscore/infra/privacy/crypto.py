"""Data keys: what seals the lead state and activity at rest (AES-256-GCM).

Keys come from ``LEADSCORE_DATA_KEYS`` (``kid:base64key,kid:base64key``; the first seals,
all open), else from ``keys_dir/data.keys`` (lines ``kid base64key``, the first current),
made with one fresh key on first start. A sealed value is::

    0x00 'S' len(kid) kid nonce(12) ciphertext+tag(16)

0x00 marks a sealed value (JSON, what every value was before, never starts with it) and
'S' is the envelope's version. A value that does not start with 0x00 'S' was written
before encryption was on, and is returned as it is: an upgrade needs no migration, and
turning encryption on or off needs none either. Every value is sealed with its lead as
associated data, so a value copied under another lead's key does not open.

Rotation (docs/privacy.md): ``leadscore data-keys new`` puts a fresh key first (values
are sealed with it from the next start of each process); ``leadscore data-keys reseal``
seals Redis's values again with it; the worker's table values are sealed again as their
leads are written. An old key may go once nothing uses it.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadscore.settings import Settings

DATA_KEYS_FILE = "data.keys"
_MAGIC = b"\x00S"


class KeyringError(RuntimeError):
    """The keys are malformed, or a value was sealed with a key that is not given."""


_NONCE = 12
_TAG = 16


def sealed(blob: bytes) -> bool:
    """Whether ``blob`` is a sealed value (else: plain, written before encryption)."""
    return blob[:2] == _MAGIC


def key_id_of(blob: bytes) -> str | None:
    """The id of the key that sealed ``blob``; ``None`` for a plain value."""
    return _parse(blob)[0] if sealed(blob) else None


def _parse(blob: bytes) -> tuple[str, bytes, bytes]:
    """(key id, nonce, ciphertext+tag) of a sealed value."""
    n = blob[2] if len(blob) > 2 else 0
    start = 3 + n
    if n == 0 or len(blob) < start + _NONCE + _TAG:
        raise KeyringError(f"a sealed value is cut short ({len(blob)} bytes)")
    kid = blob[3:start].decode(errors="replace")
    return kid, blob[start : start + _NONCE], blob[start + _NONCE :]


class Keyring:
    """Seals with the current key, opens with any (see the module docstring)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, enabled: bool = True) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        for kid, key in keys:
            if not kid or len(kid) > 32 or not kid.isascii() or ":" in kid or " " in kid:
                raise KeyringError(f"a key id must be 1-32 ASCII characters: {kid!r}")
            if len(key) != 32:
                raise KeyringError(f"key {kid!r} has {len(key)} bytes; AES-256 needs 32")
        ids = [kid for kid, _ in keys]
        if len(set(ids)) != len(ids):
            raise KeyringError(f"two data keys have the same id: {ids}")
        self.current_id = keys[0][0]
        self.enabled = enabled
        self._aead = {kid: AESGCM(key) for kid, key in keys}
        self._head = _MAGIC + bytes([len(self.current_id)]) + self.current_id.encode()

    @property
    def key_ids(self) -> list[str]:
        return list(self._aead)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The deployment's keys (``LEADSCORE_DATA_KEYS``, else the keys file).

        The keys are read even with ``encrypt_at_rest`` off: values sealed before still open.

        Raises:
            KeyringError: the keys are malformed; the message names where they came from.
        """
        if settings.data_keys:
            where = "LEADSCORE_DATA_KEYS"
            try:
                keys = parse_keys(settings.data_keys.split(","), separator=":")
                return cls(keys, enabled=settings.encrypt_at_rest)
            except KeyringError as exc:
                raise KeyringError(f"{where}: {exc} (expected 'kid:base64,...')") from exc
        path = settings.keys_dir / DATA_KEYS_FILE
        try:
            return cls(read_key_file(path), enabled=settings.encrypt_at_rest)
        except KeyringError as exc:
            raise KeyringError(f"{path}: {exc} (expected lines 'kid base64')") from exc

    # The envelope's tests, here too so a holder of a keyring needs no other import.
    @staticmethod
    def sealed(blob: bytes) -> bool:
        """Whether ``blob`` is sealed (see :func:`sealed`)."""
        return sealed(blob)

    @staticmethod
    def key_id_of(blob: bytes) -> str | None:
        """The id of the key that sealed ``blob`` (see :func:`key_id_of`)."""
        return key_id_of(blob)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """``plaintext`` sealed with the current key (as is when encryption is off)."""
        if not self.enabled:
            return plaintext
        nonce = os.urandom(_NONCE)
        return self._head + nonce + self._aead[self.current_id].encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        """The plaintext of ``blob`` (a plain value is returned as it is).

        Raises:
            KeyringError: sealed with a key this keyring does not have, or altered (or
                moved under another lead).
        """
        if not sealed(blob):
            return blob
        kid, nonce, body = _parse(blob)
        aead = self._aead.get(kid)
        if aead is None:
            raise KeyringError(
                f"a value was sealed with data key {kid!r}, which is not among the keys given "
                f"({', '.join(self._aead)}); give it in LEADSCORE_DATA_KEYS or the keys file"
            )
        try:
            return aead.decrypt(nonce, body, aad)
        except InvalidTag as exc:
            raise KeyringError(
                f"a value sealed with key {kid!r} does not open: altered or moved"
            ) from exc


def parse_keys(items: Iterable[str], *, separator: str) -> list[tuple[str, bytes]]:
    """(key id, key) of each ``kid<separator>base64`` item; blanks and ``#`` lines skipped."""
    keys = []
    for item in items:
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        kid, _, text = item.partition(separator)
        try:
            keys.append((kid.strip(), base64.b64decode(text.strip(), validate=True)))
        except ValueError as exc:
            raise KeyringError(f"data key {kid.strip()!r} is not base64") from exc
    return keys


def new_key_line() -> str:
    """A fresh key as a line of the keys file."""
    return f"k{secrets.token_hex(4)} {base64.b64encode(secrets.token_bytes(32)).decode()}"


def read_key_file(path: Path) -> list[tuple[str, bytes]]:
    """The keys in ``path`` (made with one fresh key, atomically, if it is missing)."""
    if not path.exists():
        # Linked into place, not renamed: if another process made it first, theirs wins
        # and both use the same key (as keys.secret_file does for the pseudonym secret).
        _write_private(path, new_key_line() + "\n", replace=False)
    keys = parse_keys(path.read_text().splitlines(), separator=" ")
    if not keys:
        raise KeyringError("the file holds no key")
    return keys


def add_key(path: Path) -> str:
    """Put a fresh key first in the keys file (the old ones stay, to open); its id."""
    lines = path.read_text().splitlines() if path.exists() else []
    line = new_key_line()
    _write_private(path, "\n".join([line, *lines]) + "\n", replace=True)
    return line.split(" ", 1)[0]


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write ``path`` (mode 0600) whole or not at all: a temporary file, synced, then moved
    into place (``replace``) or linked there unless the file exists meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
