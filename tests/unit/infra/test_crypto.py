"""Data keys: sealing, opening, plain values from before, rotation, the keys file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from leadscore.infra.privacy.crypto import (
    Keyring,
    KeyringError,
    add_key,
    key_id_of,
    read_key_file,
    sealed,
)


def ring(*ids: str) -> Keyring:
    return Keyring([(kid, bytes([i + 1]) * 32) for i, kid in enumerate(ids)])


def test_a_sealed_value_opens_with_its_lead_only_and_hides_its_content() -> None:
    keys = ring("k1")
    blob = keys.seal(b'{"job":"secret title"}', b"lead-1")
    assert sealed(blob) and key_id_of(blob) == "k1" and b"secret" not in blob
    assert keys.open(blob, b"lead-1") == b'{"job":"secret title"}'
    with pytest.raises(KeyringError, match="does not open"):
        keys.open(blob, b"lead-2")  # moved under another lead
    assert keys.seal(b"x", b"a") != keys.seal(b"x", b"a"), "a fresh nonce each time"


def test_plain_values_from_before_encryption_open_as_they_are() -> None:
    assert ring("k1").open(b'{"a":1}', b"lead") == b'{"a":1}'
    off = Keyring([("k1", b"\x01" * 32)], enabled=False)
    assert off.seal(b'{"a":1}') == b'{"a":1}'


def test_rotation_seals_with_the_new_key_and_opens_with_both() -> None:
    old = ring("k1")
    blob = old.seal(b"v", b"l")
    rotated = Keyring([("k2", b"\x09" * 32), ("k1", b"\x01" * 32)])
    assert rotated.open(blob, b"l") == b"v" and key_id_of(rotated.seal(b"v", b"l")) == "k2"
    with pytest.raises(KeyringError, match="'k1', which is not among"):
        Keyring([("k2", b"\x09" * 32)]).open(blob, b"l")


def test_the_keys_file_is_made_once_and_a_new_key_goes_first(tmp_path: Path) -> None:
    path = tmp_path / "data.keys"
    first = read_key_file(path)
    assert read_key_file(path) == first and len(first) == 1 and len(first[0][1]) == 32
    assert path.stat().st_mode & 0o077 == 0
    kid = add_key(path)
    keys = read_key_file(path)
    assert [k for k, _ in keys] == [kid, first[0][0]]


def test_bad_keys_are_refused_with_a_clear_message() -> None:
    with pytest.raises(KeyringError, match="32"):
        Keyring([("k1", b"short")])
    with pytest.raises(KeyringError, match="key id"):
        Keyring([("k 1", b"\x01" * 32)])
    assert base64.b64decode(base64.b64encode(b"\x01" * 32)) == b"\x01" * 32


def test_a_cut_short_or_doubled_key_is_refused_by_name() -> None:
    blob = ring("k1").seal(b"value", b"l")
    with pytest.raises(KeyringError, match="cut short"):
        ring("k1").open(blob[:20], b"l")
    with pytest.raises(KeyringError, match="same id"):
        Keyring([("k1", b"\x01" * 32), ("k1", b"\x02" * 32)])
    assert Keyring.sealed(blob) and Keyring.key_id_of(blob) == "k1"
    assert Keyring.key_id_of(b'{"a": 1}') is None


def test_settings_errors_name_where_the_keys_came_from(tmp_path: Path) -> None:
    from leadscore.settings import Settings

    with pytest.raises(KeyringError, match="LEADSCORE_DATA_KEYS: data key 'k1' is not base64"):
        Keyring.from_settings(Settings(data_keys="k1:???"))
    path = tmp_path / "data.keys"
    path.write_text("# no key here\n")
    with pytest.raises(KeyringError, match=f"{path}: the file holds no key"):
        Keyring.from_settings(Settings(data_keys=None, keys_dir=tmp_path))
    good = base64.b64encode(b"\x03" * 32).decode()
    keys = Keyring.from_settings(Settings(data_keys=f"k2:{good}, k1:{good}", encrypt_at_rest=False))
    assert keys.key_ids == ["k2", "k1"] and not keys.enabled
