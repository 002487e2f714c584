"""What each API-key scope allows, and which routes' calls are audited."""

from __future__ import annotations

import pytest

from leadscore.infra.access import AUDITED_SCOPES, SCOPES, AccessError, ApiKey, check_scopes

#: scope held -> every scope it allows (the table docs/api.md shows).
ALLOWS = {
    "read": {"read"},
    "score": {"read", "score"},
    "privacy": {"read", "privacy"},
    "admin": {"read", "score", "privacy", "admin"},
}


def _key(*scopes: str, revoked: bool = False) -> ApiKey:
    return ApiKey(
        "k1", "test", scopes, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z" if revoked else None
    )


def test_the_scopes_are_the_documented_four() -> None:
    assert set(SCOPES) == set(ALLOWS)


@pytest.mark.parametrize("held", sorted(ALLOWS))
def test_each_scope_allows_exactly_what_it_implies(held: str) -> None:
    key = _key(held)
    assert {scope for scope in SCOPES if key.allows(scope)} == ALLOWS[held]


def test_privacy_reads_but_neither_scores_nor_administers() -> None:
    key = _key("privacy")
    assert key.allows("read") and key.allows("privacy")
    assert not key.allows("score") and not key.allows("admin")


def test_only_admin_and_privacy_allow_personal_data_operations() -> None:
    assert [s for s in SCOPES if _key(s).allows("privacy")] == ["privacy", "admin"]


def test_scopes_add_up_and_a_revoked_key_allows_nothing() -> None:
    both = _key("score", "privacy")
    assert {s for s in SCOPES if both.allows(s)} == {"read", "score", "privacy"}
    assert not any(_key("admin", revoked=True).allows(s) for s in SCOPES)


def test_privacy_is_a_scope_a_key_can_be_created_with() -> None:
    assert check_scopes(["privacy", "read", "privacy"]) == ("privacy", "read")
    with pytest.raises(AccessError, match="read, score, privacy, admin"):
        check_scopes(["dpo"])


def test_personal_data_calls_are_audited_like_admin_ones() -> None:
    assert AUDITED_SCOPES == {"admin", "privacy"}
