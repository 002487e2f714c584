"""Which arm of an experiment a lead (or an account) is in: a pure function of the two ids.

Every worker and API process computes the same arm with no coordination, a lead never
changes arm while the experiment's arms stay the same, and two experiments split leads
independently of each other (the experiment id is hashed in).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b


class ArmsError(ValueError):
    """The arms of an experiment are not a valid split."""


def check_arms(arms: Sequence[tuple[str, float]]) -> None:
    """Arms need distinct names and positive weights summing to 1 (within 1e-9).

    Raises:
        ArmsError: naming what is wrong.
    """
    if len(arms) < 2:
        raise ArmsError("an experiment needs at least two arms")
    names = [name for name, _ in arms]
    if len(set(names)) != len(names):
        raise ArmsError(f"arm names must differ: {names}")
    if any(not 0 < weight <= 1 for _, weight in arms):
        raise ArmsError(f"each arm's weight must be in (0, 1]: {dict(arms)}")
    total = sum(weight for _, weight in arms)
    if abs(total - 1.0) > 1e-9:
        raise ArmsError(f"the arms' weights must sum to 1, not {total:g}")


def unit_point(experiment_id: str, unit_id: str) -> float:
    """Where ``unit_id`` falls in [0, 1) for ``experiment_id``: uniform over ids, fixed."""
    digest = blake2b(f"{experiment_id}\x00{unit_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def arm_of(experiment_id: str, unit_id: str, arms: Sequence[tuple[str, float]]) -> str:
    """The arm (name) of ``unit_id``: arms take consecutive slices of [0, 1) by weight.

    Examples:
        >>> arms = [("control", 0.5), ("challenger", 0.5)]
        >>> arm_of("ex_1", "lead-42", arms) == arm_of("ex_1", "lead-42", arms)
        True
    """
    point = unit_point(experiment_id, unit_id)
    edge = 0.0
    for name, weight in arms:
        edge += weight
        if point < edge:
            return name
    return arms[-1][0]  # rounding at the top end
