"""Test-wide hooks and fixtures: marking integration tests, unique names per test, and the
work units and their order when pytest-xdist runs the tests in parallel (``make test``)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

_INTEGRATION_DIR = Path(__file__).parent / "integration"

# Every process a test starts (worker, API, CLI) must use the same pseudonym secret; they
# may run from other directories than the key file's. Tests of the key file set their own.
os.environ.setdefault("LEADSCORE_PSEUDONYM_SECRET", "leadscore-test-suite-pseudonym-secret")
os.environ.setdefault(
    "LEADSCORE_DATA_KEYS", "ktest:" + "dGVzdC1zdWl0ZS1kYXRhLWtleS0zMi1ieXRlcy0hISE="
)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Test processes share the cores: one OpenMP (and OpenBLAS) thread each, set before
    # anything loads them. With more, scikit-learn's HistGradientBoosting spins its threads
    # against the other processes' (tests/unit/simulation/test_simulator.py's learnability
    # check took 80 s instead of 4 with three processes on two cores); its results are the
    # same with one thread. Inherited by the servers the tests start; a value already set wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Rough wall seconds of the slowest test modules and tests (serial run, 2-core box). Under
#: pytest-xdist the heaviest work units are handed out first, so that no process starts a
#: long one when the other is nearly done; everything not listed follows in collection order.
#: Only an order: a missing or stale entry makes a run slower, never different.
_ESTIMATED_S = {
    "tests/integration/test_closed_loop_inputs.py": 90,
    "tests/integration/test_retraining.py": 85,
    "tests/integration/test_api.py": 75,
    "tests/integration/test_dashboard_e2e.py": 50,
    "tests/integration/test_closed_loop.py": 45,
    "tests/integration/test_tansu_recovery.py": 42,
    "tests/integration/test_worker.py::test_sigkill_mid_stream_then_restart_ends_like_an_uninterrupted_run": 35,
    "tests/integration/test_broker_faults.py::test_broker_and_redis_killed_under_load_change_no_final_score": 80,
    "tests/integration/test_demo.py": 70,
    "tests/integration/test_broker_faults.py": 25,
    "tests/integration/test_webhooks.py": 32,
    "tests/integration/test_model_swap.py": 25,
    "tests/integration/test_worker.py::test_an_outcome_does_not_change_the_published_score": 24,
    "tests/integration/test_closed_loop_inputs.py::test_worker_examples_hold_only_what_was_known_before_the_label": 22,
    "tests/unit/simulation/test_simulator.py": 25,
    "tests/unit/test_cli.py": 18,
    "tests/unit/models/test_training.py": 18,
    "tests/unit/test_train_table.py": 16,
    "tests/integration/test_worker.py": 13,
    "tests/integration/test_stream.py::test_a_lead_event_becomes_a_score_on_the_websocket": 12,
    "tests/unit/simulation/test_shift.py": 12,
    "tests/integration/test_cli_closed_loop.py": 10,
    "tests/integration/test_api_drift.py": 10,
    "tests/integration/test_stream.py": 5,
}

#: Modules whose tests share no fixture wider than a test below the session (each starts its
#: own worker, API or agent), and single tests of that kind in modules that do: under
#: ``--dist loadscope`` each is a work unit of its own, so one module's tests can run in two
#: processes. Every other test runs in the process of its module (module-scoped fixtures are
#: built once). A test listed here that uses a module-scoped fixture would only build it twice.
_OWN_UNIT = frozenset({
    "tests/integration/test_worker.py",
    "tests/integration/test_stream.py",
    "tests/integration/test_broker_faults.py",
    "tests/integration/test_closed_loop_inputs.py::test_worker_examples_hold_only_what_was_known_before_the_label",
})  # fmt: skip


def _test_and_module(nodeid: str) -> tuple[str, str]:
    """The test's id without its parameters, and its module's path."""
    test = nodeid.split("[", 1)[0]
    return test, test.split("::", 1)[0]


def _work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, or itself (see ``_OWN_UNIT``)."""
    test, module = _test_and_module(nodeid)
    return nodeid if module in _OWN_UNIT or test in _OWN_UNIT else module


def _estimate(nodeid: str) -> float:
    test, module = _test_and_module(nodeid)
    return _ESTIMATED_S.get(test, _ESTIMATED_S.get(module, 0.0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration ``integration``: ``-m "not integration"`` works.

    In a pytest-xdist worker, also order the tests heaviest work unit first (the scheduler
    below hands units out in collection order under ``--no-loadscope-reorder``).
    """
    for item in items:
        if _INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    weight: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        unit = _work_unit(item.nodeid)
        weight[unit] = max(weight.get(unit, 0.0), _estimate(item.nodeid))
        first_seen.setdefault(unit, i)
    # A stable sort: the tests of one unit keep their order, units of equal weight too.
    items.sort(
        key=lambda item: (-weight[_work_unit(item.nodeid)], first_seen[_work_unit(item.nodeid)])
    )


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadscope``: work units by :func:`_work_unit` rather than by module.

    (``--dist loadgroup`` would do with ``xdist_group`` marks, but pytest-xdist 3.8 renames
    the marked tests in a way pytest 9 ignores, so the marks have no effect.)
    """
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return UnitScheduling(config, log)


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
