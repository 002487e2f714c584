"""The rules points table: a bad file or entry is refused with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.models.rules.config import RulesConfig, RulesConfigError


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        ("[1, 2]", "expected a JSON object at the top, got a list"),
        ('{"fit_max": 30}', r"unknown key\(s\) \['fit_max'\]"),
        ('{"fit_max_points": "40"}', "fit_max_points must be a finite number, got a string '40'"),
        ('{"fit_max_points": 50}', "must be <= 100"),
        ('{"industry_points": {"sofware": 5}}', r"industry_points: unknown key\(s\) \['sofware'\]"),
        (
            '{"engagement_points": {"demo_requests": {"points_per_unit": 5}}}',
            "engagement_points.demo_requests must have exactly the keys",
        ),
        (
            '{"engagement_points": {"meetings": {"points_per_unit": 5, "max_points": -1}}}',
            "engagement_points.meetings.max_points must be >= 0",
        ),
        (
            '{"engagement_points": {"recency_days": {"points_per_unit": 5, "max_points": 5}}}',
            r"engagement_points: unknown key\(s\) \['recency_days'\]",
        ),
        (
            '{"company_size_points": [{"min_employees": 10, "points": 3}]}',
            "must start at min_employees 1",
        ),
        (
            '{"company_size_points": [{"min_employees": 1, "points": 0},'
            ' {"min_employees": 1, "points": 2}]}',
            "strictly increasing",
        ),
        (
            '{"inactivity_points": [{"min_days": 30, "points": -10}, {"min_days": 90, "points": -5}]}',
            "never rise",
        ),
        ('{"activity_half_life_days": 0}', "activity_half_life_days must be > 0"),
    ],
)
def test_a_bad_file_names_itself_and_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(RulesConfigError, match=message) as info:
        RulesConfig.from_file(path)
    assert str(info.value).startswith(f"rules config {path}: ")


def test_a_missing_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(RulesConfigError, match="cannot read it"):
        RulesConfig.from_file(tmp_path / "absent.json")


def test_tables_built_in_code_are_validated_too() -> None:
    with pytest.raises(RulesConfigError, match="seniority_points: unknown key"):
        RulesConfig(seniority_points={"intern": 1.0})
