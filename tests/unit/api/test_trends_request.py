"""GET /v1/trends refuses a bucket it cannot build from the stored buckets, before reading Redis."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from leadscore.api.errors import ApiError
from leadscore.api.insights import trends
from leadscore.settings import Settings


def request_with(settings: Settings) -> Any:
    ctx = SimpleNamespace(settings=settings, store=None)  # no store: it must not be reached
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(ctx=ctx)))


@pytest.mark.parametrize(
    ("stored_s", "bucket"), [(86_400, "hour"), (7200, "hour"), (2400, "hour"), (43_200, "hour")]
)
async def test_a_bucket_smaller_than_or_not_a_multiple_of_the_stored_one_is_a_422(
    stored_s: int, bucket: str
) -> None:
    settings = Settings(trends_bucket_s=stored_s)
    with pytest.raises(ApiError) as caught:
        await trends(request_with(settings), since=None, until=None, bucket=bucket, key=None)  # type: ignore[arg-type]
    assert caught.value.status == 422 and caught.value.code == "bucket_too_small"
    assert "LEADSCORE_TRENDS_BUCKET_S" in caught.value.message


def test_a_stored_bucket_that_does_not_divide_a_day_fails_at_startup() -> None:
    with pytest.raises(ValueError, match="LEADSCORE_TRENDS_BUCKET_S must divide a day"):
        Settings(trends_bucket_s=7000)
