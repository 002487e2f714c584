"""The JSON examples in README.md and docs/events.md pass the code's own validation.

Every fenced ```json block is one example: an input event (checked with
``decode_event``), a score event (``LeadScored``) or a dead letter (``DeadLetter``,
whose reason must be reproducible from its own bytes). docs/events.md must also
name every event type, data field, output field, reason code and Redis key the
code has, so neither page can go stale quietly.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from leadscore.infra.redis_store import ScoreStore
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.scoring.scorer import ScoringPolicy, to_score
from leadscore.schemas import events as event_schemas
from leadscore.schemas.decode import EventKind, decode_event, kind_of
from leadscore.schemas.errors import InvalidEventError
from leadscore.schemas.events import EVENT_TYPES
from leadscore.schemas.scores import DeadLetter, LeadScored, Reason
from leadscore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EVENTS_DOC = ROOT / "docs" / "events.md"
_JSON_BLOCK = re.compile(r"^```json[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_DEFAULTS = Settings.model_fields
_TOPIC_OF_KIND = {
    EventKind.ACTIVITY: _DEFAULTS["activity_topic"].default,
    EventKind.PROFILE: _DEFAULTS["profile_topic"].default,
    EventKind.OUTCOME: _DEFAULTS["outcome_topic"].default,
}


def json_examples(path: Path) -> list[tuple[str, str, Any]]:
    """(``file:line``, text between the previous block and this one, parsed JSON) per block."""
    text = path.read_text()
    found = []
    previous_end = 0
    for match in _JSON_BLOCK.finditer(text):
        where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        try:
            value = orjson.loads(match.group(1))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"{where}: the json block is not valid JSON: {exc}") from exc
        found.append((where, text[previous_end : match.start()], value))
        previous_end = match.end()
    return found


EXAMPLES = json_examples(README) + json_examples(EVENTS_DOC)


def example_kind(example: Any) -> str:
    if isinstance(example, dict) and "specversion" in example:
        return "input"
    if isinstance(example, dict) and example.get("type") == "lead.scored":
        return "score"
    if isinstance(example, dict) and "reason_code" in example:
        return "dead_letter"
    return "unknown"


@pytest.mark.parametrize(("where", "before", "example"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_is_valid(where: str, before: str, example: Any) -> None:
    kind = example_kind(example)
    if kind == "input":
        check_input_event(where, before, example)
    elif kind == "score":
        check_score_event(where, example)
    elif kind == "dead_letter":
        check_dead_letter(where, example)
    else:
        pytest.fail(f"{where}: a json block that is no input event, score event or dead letter")


def check_input_event(where: str, before: str, example: dict[str, Any]) -> None:
    try:
        event = decode_event(orjson.dumps(example), now=datetime.now(UTC))
    except InvalidEventError as exc:
        pytest.fail(f"{where}: the example event is refused: {exc}")
    # When the text just before the example names an input topic, it must be the right one.
    named = {kind for kind, topic in _TOPIC_OF_KIND.items() if topic in before}
    if len(named) == 1:
        assert named == {kind_of(event.type)}, (
            f"{where}: the text names {_TOPIC_OF_KIND[named.pop()]} but a {event.type} event "
            f"belongs on {_TOPIC_OF_KIND[kind_of(event.type)]}"
        )


def check_score_event(where: str, example: dict[str, Any]) -> None:
    score = LeadScored.model_validate(example)
    assert re.fullmatch(r"sc_[0-9a-f]{24}", score.id), f"{where}: not a score event id: {score.id}"
    assert score.score == to_score(score.probability), f"{where}: score and probability disagree"
    policy = ScoringPolicy(grade_thresholds=_DEFAULTS["grade_thresholds"].default)
    assert score.grade == policy.grade(score.score), f"{where}: grade disagrees with the thresholds"
    if score.previous_score is not None:
        previous_grade = policy.grade(score.previous_score)
        assert score.previous_grade == previous_grade, f"{where}: previous_grade"
    assert len(score.reasons) <= _DEFAULTS["top_reasons"].default
    sizes = [abs(reason.contribution) for reason in score.reasons]
    assert sizes == sorted(sizes, reverse=True), f"{where}: reasons must be largest first"
    for reason in score.reasons:
        assert reason.feature in FEATURE_NAMES, f"{where}: {reason.feature!r} is not a feature"


def check_dead_letter(where: str, example: dict[str, Any]) -> None:
    letter = DeadLetter.model_validate(example)
    value = base64.b64decode(letter.value_b64) if letter.value_b64 is not None else None
    kind = next((k for k, topic in _TOPIC_OF_KIND.items() if topic == letter.topic), None)
    with pytest.raises(InvalidEventError) as refused:
        decode_event(value, now=letter.received_at, expected_kind=kind)
    assert (refused.value.code, refused.value.message) == (letter.reason_code, letter.reason), (
        f"{where}: decoding value_b64 gives {refused.value.code}: {refused.value.message}"
    )


def test_readme_shows_each_kind_of_input_event_and_a_score_event() -> None:
    readme = [example for where, _, example in EXAMPLES if where.startswith("README.md")]
    kinds = {kind_of(e["type"]) for e in readme if example_kind(e) == "input"}
    assert kinds == set(EventKind)
    assert any(example_kind(e) == "score" for e in readme)


def _documented(name: str) -> bool:
    return f"`{name}`" in EVENTS_DOC.read_text()


def test_events_doc_names_every_event_type_and_data_field() -> None:
    missing = [t for t in sorted(EVENT_TYPES) if not _documented(t)]
    event_models = [m for m in vars(event_schemas).values() if isinstance(m, type)]
    for model in event_models:
        if issubclass(model, BaseModel) and "data" in model.model_fields:
            data_fields = model.model_fields["data"].annotation.model_fields
            missing += [f"{model.__name__}.data.{f}" for f in data_fields if not _documented(f)]
    assert not missing, f"docs/events.md does not mention: {missing}"


def test_events_doc_names_every_output_field() -> None:
    missing = [
        f"{model.__name__}.{name}"
        for model in (LeadScored, Reason, DeadLetter)
        for name in model.model_fields
        if not (_documented(name) or _documented(f"reasons[].{name}"))
    ]
    assert not missing, f"docs/events.md does not describe: {missing}"


def _reason_codes_in_code() -> set[str]:
    decode_src = (ROOT / "leadscore" / "schemas" / "decode.py").read_text()
    codes = set(re.findall(r'InvalidEventError\(\s*"([a-z_]+)"', decode_src))
    for path in (ROOT / "leadscore").rglob("*.py"):
        codes |= set(re.findall(r'dead_letter\([^()]*?"([a-z_]+)"', path.read_text()))
    return codes


def test_events_doc_lists_every_reason_code() -> None:
    codes = _reason_codes_in_code()
    assert {"schema", "not_json", "processing_error", "scoring_error"} <= codes  # the search works
    missing = sorted(code for code in codes if f"| `{code}` |" not in EVENTS_DOC.read_text())
    assert not missing, f"reason codes missing from the table in docs/events.md: {missing}"


def test_events_doc_names_the_redis_keys() -> None:
    store = ScoreStore(None, _DEFAULTS["redis_prefix"].default)  # type: ignore[arg-type]
    lead = "<lead_id>"
    keys = (store.score_key(lead), store.leaderboard_key, store.history_key(lead), store.stats_key)
    missing = [key for key in keys if not _documented(key)]
    assert not missing, f"docs/events.md does not name the Redis keys {missing}"


def test_events_doc_names_every_feature() -> None:
    one_hot_prefixes = {name.split("=", 1)[0] for name in FEATURE_NAMES if "=" in name}
    missing = [n for n in FEATURE_NAMES if "=" not in n and not _documented(n)]
    one_hot = [f"{prefix}=<category>" for prefix in sorted(one_hot_prefixes)]
    missing += [name for name in one_hot if not _documented(name)]
    assert not missing, f"the feature table in docs/events.md lacks {missing}"
