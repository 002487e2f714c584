"""The retention each of leadscore's topics gets from the settings (no broker)."""

from __future__ import annotations

from leadscore.infra.kafka.retention import DAY_MS, KEEP, _say, differences, retentions
from leadscore.settings import Settings


def test_each_topic_gets_its_settings_retention_and_zero_keeps() -> None:
    s = Settings(topic_retention_days=0.5, training_retention_days=0, dead_letter_retention_days=2)
    got = {topic: (r.ms, r.setting) for topic, r in retentions(s).items()}
    assert got == {
        s.dead_letter_topic: (2 * DAY_MS, "LEADSCORE_DEAD_LETTER_RETENTION_DAYS"),
        s.webhook_dead_letter_topic: (2 * DAY_MS, "LEADSCORE_DEAD_LETTER_RETENTION_DAYS"),
        s.scores_topic: (DAY_MS // 2, "LEADSCORE_TOPIC_RETENTION_DAYS"),
        s.features_topic: (DAY_MS // 2, "LEADSCORE_TOPIC_RETENTION_DAYS"),
        s.training_topic: (KEEP, "LEADSCORE_TRAINING_RETENTION_DAYS"),
        s.erasures_topic: (7 * DAY_MS, "LEADSCORE_ERASURES_RETENTION_DAYS"),
    }
    assert s.activity_topic not in got and s.model_events_topic not in got
    defaults = {topic: r.ms for topic, r in retentions(Settings()).items()}
    assert defaults[Settings().training_topic] == KEEP
    assert defaults[Settings().scores_topic] == 30 * DAY_MS


def test_differences_are_what_is_not_the_setting() -> None:
    s = Settings()
    stored = {
        s.scores_topic: str(30 * DAY_MS),  # as set
        s.features_topic: None,  # not reported: the broker's default
        s.training_topic: "604800000",
        s.dead_letter_topic: "soon",
        s.activity_topic: "1",  # not leadscore's to set
    }
    assert [(r.topic, v) for r, v in differences(s, stored)] == [
        (s.features_topic, None),
        (s.training_topic, "604800000"),
        (s.dead_letter_topic, "soon"),
    ]
    assert _say("-1") == "ever (retention.ms=-1)" and _say("604800000").startswith("7 days")
