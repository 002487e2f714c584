"""The statistics of an experiment's result that stay valid when people look every day.

A fixed-sample z-test read at every look is wrong: looking five times with the 1.96
threshold makes a false positive about 14 % likely instead of 5 %. This module uses a
mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh, "Always
valid inference", 2017) on the difference of two conversion rates, with the normal
approximation: its p-value and confidence interval hold at every look, however many.

- :func:`always_valid` — the test at one look, given the arms' counts so far;
- :func:`sample_size` — outcomes per arm a fixed test would need (for planning);
- :func:`wilson` — one arm's conversion rate with its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm


def wilson(conversions: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a conversion rate; ``(0, 1)`` with no outcomes.

    Examples:
        >>> [round(x, 3) for x in wilson(20, 100)]
        [0.133, 0.289]
    """
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(1 - alpha / 2))
    p = conversions / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sample_size(
    base_rate: float, min_effect: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Outcomes per arm for a two-sided fixed test of ``base_rate`` vs ``base_rate +
    min_effect`` (absolute), at ``alpha`` and ``power``.

    Examples:
        >>> sample_size(0.10, 0.03)
        1774
    """
    if not 0 < base_rate < 1 or not 0 < base_rate + min_effect < 1 or min_effect == 0:
        raise ValueError("rates must lie in (0, 1) and the effect must not be 0")
    p1, p2 = base_rate, base_rate + min_effect
    mean = (p1 + p2) / 2
    z_a, z_b = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    n = (
        z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / min_effect**2
    return math.ceil(n)


@dataclass(frozen=True, slots=True)
class Look:
    """The test at one look.

    Attributes:
        difference: challenger rate minus control rate.
        p_value: always-valid p-value of "no difference" at this look (not yet the
            running minimum over looks: :class:`SequentialTest` keeps that).
        low, high: the always-valid confidence interval of the difference.
    """

    difference: float
    p_value: float
    low: float
    high: float


def always_valid(
    control: tuple[int, int], challenger: tuple[int, int], tau: float, alpha: float = 0.05
) -> Look:
    """mSPRT of equal conversion rates, mixing over N(0, ``tau``²) differences.

    ``control`` and ``challenger`` are (conversions, outcomes). ``tau`` is the effect size
    the test is tuned to find fastest (the planned minimum effect is a good choice).
    """
    (ca, na), (cb, nb) = control, challenger
    if na == 0 or nb == 0:
        return Look(0.0, 1.0, -1.0, 1.0)
    pa, pb = ca / na, cb / nb
    # variance of the difference; a floor keeps it positive when a rate is 0 or 1
    v = max(pa * (1 - pa) / na + pb * (1 - pb) / nb, 0.25 / (na * na) + 0.25 / (nb * nb))
    t2 = tau * tau
    d = pb - pa
    log_lr = 0.5 * math.log(v / (v + t2)) + d * d * t2 / (2 * v * (v + t2))
    p_value = 1.0 if log_lr <= 0 else min(1.0, math.exp(-log_lr))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    return Look(d, p_value, max(-1.0, d - half), min(1.0, d + half))


class SequentialTest:
    """An experiment's test over its looks: the p-value only goes down, the interval only
    narrows (running minimum and intersection), as always-valid inference allows."""

    def __init__(self, tau: float, alpha: float = 0.05) -> None:
        self.tau = tau
        self.alpha = alpha
        self.p_value = 1.0
        self.low, self.high = -1.0, 1.0

    def look(self, control: tuple[int, int], challenger: tuple[int, int]) -> Look:
        now = always_valid(control, challenger, self.tau, self.alpha)
        self.p_value = min(self.p_value, now.p_value)
        self.low, self.high = max(self.low, now.low), min(self.high, now.high)
        return Look(now.difference, self.p_value, self.low, self.high)

    @property
    def decided(self) -> bool:
        return self.p_value <= self.alpha
