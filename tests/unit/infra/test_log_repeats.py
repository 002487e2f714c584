"""Every aiokafka logger that can repeat a line during an outage gets the repeat filter."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import aiokafka

from leadscore.infra.log_repeats import KAFKA_LOGGERS, RepeatFilter, quiet_repeats


def aiokafka_loggers() -> set[str]:
    names = set()
    for module in pkgutil.walk_packages(aiokafka.__path__, "aiokafka."):
        if ".coordinator.assignors" in module.name:  # partition assignment: no outage lines
            continue
        try:
            loaded = importlib.import_module(module.name)
        except ImportError:  # optional codecs
            continue
        for value in vars(loaded).values():
            if isinstance(value, logging.Logger) and value.name.startswith("aiokafka"):
                names.add(value.name)
    return names


def test_every_aiokafka_module_logger_is_quieted() -> None:
    missing = aiokafka_loggers() - set(KAFKA_LOGGERS)
    assert not missing, f"add to KAFKA_LOGGERS: {sorted(missing)}"


def test_a_line_from_the_fetcher_repeats_once_a_minute() -> None:
    quiet_repeats()
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    assert any(isinstance(f, RepeatFilter) for f in fetcher.filters)
    record = fetcher.makeRecord(fetcher.name, logging.ERROR, "", 0, "Failed fetch", (), None)
    passed = [all(f.filter(record) for f in fetcher.filters) for _ in range(50)]
    assert passed.count(True) == 1
