"""Link functions between probabilities and log-odds, shared by training and the engine."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["logit", "sigmoid", "signed_log1p"]

# Leaf probabilities are clipped to [eps, 1 - eps] before the logit (only matters with
# rf_smoothing=0 and a pure leaf).
_EPS = 1e-12


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``: tames heavy-tailed counts for the linear member.

    Examples:
        >>> signed_log1p(np.array([-3.0, 0.0, np.e - 1]))
        array([-1.38629436,  0.        ,  1.        ])
    """
    signed: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return signed


def sigmoid(z: Any) -> Any:
    """The logistic function, for scalars and arrays; tanh form: no overflow warnings.

    Examples:
        >>> float(sigmoid(0.0)), round(float(sigmoid(800.0)), 6)
        (0.5, 1.0)
    """
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def logit(p: Any) -> Any:
    """``log(p / (1 - p))``, with ``p`` clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)
