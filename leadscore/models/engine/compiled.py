"""A trained model as plain arrays: fast scores and exact explanations, the same for every caller.

:class:`CompiledModel` is what the stream, the REST API and batch scoring load. It is
built from a fitted :class:`~leadscore.models.training.ensemble.LeadScoringEnsemble` (or a lone
member) and holds:

- every tree of every member in one :class:`~leadscore.models.engine.trees.TreeEnsemble`, with
  each member's blend weight and the Platt slope folded into its leaf values;
- the logistic regression as a linear function of ``signed_log1p`` of the features, with
  its weight and the Platt slope folded into the coefficients;
- the constant (Platt intercept, boosting init, logistic intercept).

So the model's log-odds are ``z(x) = trees(x) + linear(x)``, one pass over the trees,
no scikit-learn call. :meth:`CompiledModel.explain_log_odds` returns exact SHAP values of
``z``: path-dependent TreeSHAP of the trees plus the closed form of the linear part,
``phi_j = c_j * (g(x_j) - mean_j)`` (the logistic member standardizes its inputs, so
``mean_j`` is the training mean of ``g(x_j) = signed_log1p(x_j)``), adding up to ``z(x)``.

Score points. A score is ``100 * sigmoid(z)``. The reasons are shown in points: each
lead's log-odds SHAP values multiplied by one factor, ``100 * (p - p0) / (z - z0)``, so
they keep their signs and ratios and add up exactly to the distance between the lead's
score and the base score ``100 * sigmoid(z0)``.

Saved as ``.npz`` arrays plus JSON (:meth:`to_files`, :meth:`from_files`): loading
executes no code from the file and needs no scikit-learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leadscore.models.engine import evaluate
from leadscore.models.engine.links import sigmoid, signed_log1p
from leadscore.models.engine.trees import TreeEnsemble, from_arrays, to_arrays

__all__ = ["CompiledModel", "LinearPart", "to_points"]

#: Bump when the saved layout changes.
FORMAT_VERSION = 1
ARRAYS_FILE = "model.npz"
META_FILE = "model.json"

# Below this distance in log-odds between a row and the base value, the secant factor
# (p - p0) / (z - z0) is replaced by the tangent at the midpoint.
_SECANT_MIN_DZ = 1e-9
# Below this many rows per thread, splitting a call costs more than it saves.
_MIN_ROWS_PER_THREAD = 512


@dataclass(frozen=True, eq=False)
class LinearPart:
    """``sum_j coef[j] * (signed_log1p(x[j]) - mean[j])`` over the full feature vector."""

    coef: np.ndarray  # float64 (n_features,), zero for columns the model does not use
    mean: np.ndarray  # float64 (n_features,)

    def value(self, X: np.ndarray) -> np.ndarray:
        z: np.ndarray = (signed_log1p(X) - self.mean) @ self.coef
        return z

    def shap(self, X: np.ndarray) -> np.ndarray:
        phi: np.ndarray = (signed_log1p(X) - self.mean) * self.coef
        return phi


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """Log-odds ``z(x) = offset + trees(x) + linear(x)``; probability ``sigmoid(z)``.

    Attributes:
        feature_names: the names of the input vector's columns.
        trees: all members' trees, weights folded in (``None`` for a linear model).
        linear: the logistic member, weight folded in (``None`` for trees only).
        offset: the constant of ``z``.
        info: JSON-ready description (variant, members, weights, calibration).
    """

    feature_names: tuple[str, ...]
    trees: TreeEnsemble | None
    linear: LinearPart | None
    offset: float
    info: dict[str, Any] = field(default_factory=dict)
    #: Threads the engine may use for a call of at least ``_MIN_ROWS_PER_THREAD * 2`` rows
    #: (batch scoring of files). The stream keeps 1: it runs beside the event loop.
    n_threads: int = 1

    # --- scoring ----------------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _check(self, X: Any) -> np.ndarray:
        checked: np.ndarray = np.asarray(X, dtype=np.float64)
        if checked.ndim != 2 or checked.shape[1] != self.n_features:
            raise ValueError(
                f"expected a matrix of shape (n, {self.n_features}), got shape {checked.shape}"
            )
        return checked

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of conversion, shape (n,)."""
        X = self._check(X)
        z = np.full(X.shape[0], self.offset)
        if self.trees is not None:
            z += evaluate.predict(self.trees, X, n_threads=self._threads(len(X)))
        if self.linear is not None:
            z += self.linear.value(X)
        return z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, shape (n, 2); column 1 is the probability of conversion."""
        p1 = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p1, p1])

    def explain_log_odds(self, X: Any) -> tuple[float, np.ndarray]:
        """Exact SHAP values of the log-odds: ``(z0, phi)`` with ``z0 + phi.sum(1) == z``."""
        X = self._check(X)
        base = self.offset
        phi = np.zeros(X.shape)
        if self.trees is not None:
            tree_base, tree_phi = evaluate.shap_values(
                self.trees, X, n_threads=self._threads(len(X))
            )
            base += tree_base
            phi += tree_phi
        if self.linear is not None:
            phi += self.linear.shap(X)
        return float(base), phi

    def score_and_explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities and their reasons in score points.

        Returns:
            ``(probability (n,), base_points (n,), points (n, n_features))`` with
            ``base_points + points.sum(1) == 100 * probability`` (to ~1e-9).
        """
        z0, phi = self.explain_log_odds(X)
        z = z0 + phi.sum(axis=1)
        p = sigmoid(z)
        base_points, points = to_points(z0, z, phi)
        return p, base_points, points

    def _threads(self, rows: int) -> int:
        return max(1, min(self.n_threads, rows // _MIN_ROWS_PER_THREAD))

    # --- pickling -----------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # TreeEnsemble holds a threading.Lock (guarding its lazy SHAP plan), which
        # cannot be pickled; pickle the tree arrays instead, so a model can come back from
        # a process pool (training.train runs in one).
        trees = to_arrays(self.trees) if self.trees is not None else None
        return _unpickle, (
            self.feature_names,
            trees,
            self.linear,
            self.offset,
            self.info,
            self.n_threads,
        )

    # --- saving -------------------------------------------------------------------------

    def to_files(self, directory: Path) -> list[Path]:
        """Write ``model.npz`` and ``model.json`` into ``directory``; returns their paths."""
        directory = Path(directory)
        arrays: dict[str, np.ndarray] = {}
        tree_meta: dict[str, Any] | None = None
        if self.trees is not None:
            tree_arrays, tree_meta = to_arrays(self.trees)
            arrays.update({f"trees.{k}": v for k, v in tree_arrays.items()})
        if self.linear is not None:
            arrays["linear.coef"] = self.linear.coef
            arrays["linear.mean"] = self.linear.mean
        meta = {
            "format": FORMAT_VERSION,
            "feature_names": list(self.feature_names),
            "offset": self.offset,
            "trees": tree_meta,
            "linear": self.linear is not None,
            "info": self.info,
        }
        arrays_path, meta_path = directory / ARRAYS_FILE, directory / META_FILE
        with arrays_path.open("wb") as f:
            # numpy's default, spelt out so mypy knows **arrays cannot be allow_pickle (the
            # arrays are numeric: nothing is pickled)
            np.savez_compressed(f, allow_pickle=True, **arrays)
        meta_path.write_text(json.dumps(meta, indent=2))
        return [arrays_path, meta_path]

    @classmethod
    def from_files(cls, directory: Path) -> CompiledModel:
        """Read a model written by :meth:`to_files` (no pickles: ``allow_pickle=False``)."""
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"{directory / META_FILE} has format {meta.get('format')!r}; this leadscore "
                f"reads format {FORMAT_VERSION}"
            )
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        trees = None
        if meta["trees"] is not None:
            tree_arrays = {
                k.removeprefix("trees."): v for k, v in arrays.items() if k.startswith("trees.")
            }
            trees = from_arrays(tree_arrays, meta["trees"])
        linear = None
        if meta["linear"]:
            linear = LinearPart(coef=arrays["linear.coef"], mean=arrays["linear.mean"])
        return cls(
            feature_names=tuple(meta["feature_names"]),
            trees=trees,
            linear=linear,
            offset=float(meta["offset"]),
            info=dict(meta.get("info") or {}),
        )


def to_points(z0: float, z: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds contributions as score points that add up to ``100 * sigmoid(z)``.

    Each row is scaled by its secant ``100 * (p - p0) / (z - z0)`` (the tangent at the
    midpoint when ``z`` is within 1e-9 of ``z0``), keeping signs and ratios.

    Returns:
        ``(base_points (n,), points (n, n_features))``.

    Examples:
        >>> base, pts = to_points(0.0, np.array([np.log(3.0)]), np.array([[np.log(3.0), 0.0]]))
        >>> float(base[0]), [round(float(v), 6) for v in pts[0]]
        (50.0, [25.0, 0.0])
    """
    z = np.asarray(z, dtype=np.float64)
    p0 = float(sigmoid(z0))
    p = sigmoid(z)
    dz = z - z0
    small = np.abs(dz) < _SECANT_MIN_DZ
    mid = sigmoid(z0 + 0.5 * dz)
    factor = np.where(small, mid * (1.0 - mid), (p - p0) / np.where(small, 1.0, dz))
    return np.full(len(z), 100.0 * p0), phi * (100.0 * factor)[:, None]


def _unpickle(
    feature_names: tuple[str, ...],
    trees: tuple[dict[str, np.ndarray], dict[str, Any]] | None,
    linear: LinearPart | None,
    offset: float,
    info: dict[str, Any],
    n_threads: int = 1,
) -> CompiledModel:
    return CompiledModel(
        feature_names=feature_names,
        trees=from_arrays(*trees) if trees is not None else None,
        linear=linear,
        offset=offset,
        info=info,
        n_threads=n_threads,
    )
