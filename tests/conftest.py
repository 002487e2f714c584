"""Test-wide hooks and fixtures: marking integration tests, unique names per test."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration ``integration``: ``-m "not integration"`` works."""
    for item in items:
        if _INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def name_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix unique to this test, for its topics, consumer groups and Redis keys.

    Only letters, digits, ``-`` and a final ``.``: legal in Kafka topic names (which
    should not mix ``.`` and ``_``) and free of Redis glob characters. For example
    ``t-test-roundtrip-1a2b3c4d.``, giving the topic
    ``t-test-roundtrip-1a2b3c4d.leads.activity.v1``.
    """
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"t-{test}-{uuid.uuid4().hex[:8]}."
