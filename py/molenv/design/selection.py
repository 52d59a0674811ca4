"""The symmetry-function parameters of a design: a candidate pool per kind, then greedy
forward selection on held-out accuracy of a fast classifier.

Pool (`PoolSettings`, for a cutoff rc and the chosen vectors):

- S1: Gaussians at Rs from the closest centre-centre distance seen (rounded down to the
  grid) to rc in steps of ``radial_step``, each with every eta of ``radial_etas``;
- S2: kappa from ``kappa_step`` to ``radial_kappa_max`` (1/A) in steps of ``kappa_step``;
- S3: per vector, cos_theta_s on ``angular_points`` points spread evenly over [-1, 1],
  each with every eta of ``angular_etas``; for a sign-invariant vector (S3 of cos^2 theta)
  the same points over [0, 1] with 4 x the etas (the same Gaussians relative to the range);
- S4: per vector, kappa from ``kappa_step`` to ``angular_kappa_max`` in steps of ``kappa_step``.

Every function of the pool is computed by `molenv.descriptors.compute_descriptors` (the
one definition, the numbers MOLENV_CLASSIFY computes) for every sampled frame.

Selection (`forward_selection`): starting from no functions, each step adds the pool
function that most improves a fast linear classifier (`Discriminant`: shrunk linear
discriminant analysis on features standardised with the fitting samples' mean and spread,
thousands of fits a second) fitted on the fitting samples and scored on the held-out
samples: first by macro F1 (rounded to 1e-4), then by log loss. It stops at ``max_functions``, or, once ``min_functions`` are chosen,
when the best addition gains less than ``min_gain`` in macro F1 and lowers the log loss by
less than the fraction ``min_loss_gain``. The log loss keeps the selection going after
the F1 saturates: a wider margin between forms on the held-out frames is what carries a
classifier to warmer (test) crystals. Ties go to the function earlier in the pool, so the
selection is a deterministic function of the samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from molenv.descriptors import SymmetryFunction

__all__ = ["PoolSettings", "SelectionSettings", "Step", "candidate_pool", "forward_selection", "Discriminant", "fit_score", "function_label"]


@dataclass(frozen=True)
class PoolSettings:
    radial_step: float = 0.5  # A between S1 centres
    radial_etas: tuple[float, ...] = (0.5, 2.0, 8.0)  # 1/A^2
    kappa_step: float = 0.5  # S2 in 1/A, S4 dimensionless
    radial_kappa_max: float = 8.0
    angular_points: int = 9  # S3 cos_theta_s on [-1, 1]
    angular_etas: tuple[float, ...] = (1.0, 4.0, 16.0)
    angular_kappa_max: float = 9.0


@dataclass(frozen=True)
class SelectionSettings:
    max_functions: int = 24  # as many as the published specs
    min_functions: int = 8
    min_gain: float = 0.002  # macro F1
    min_loss_gain: float = 0.05  # relative log-loss decrease
    shrinkage: float = 0.05  # of the discriminant's covariance towards the identity
    c: float = 1.0  # inverse L2 strength of the logistic regression that checks the result
    max_samples: int = 3000  # molecules per part (fitting / held-out), stratified by form


@dataclass
class Step:
    """One step of the forward selection: the function added and the held-out scores after it."""

    function: SymmetryFunction
    macro_f1: float
    micro_f1: float
    log_loss: float


def function_label(sf: SymmetryFunction) -> str:
    names = {"S1": ("Rs", "eta"), "S2": ("kappa",), "S3": ("cos_theta_s", "eta"), "S4": ("kappa",)}[sf.kind]
    vector = f"(v{sf.vector})" if sf.vector else ""
    return f"{sf.kind}{vector} " + ", ".join(f"{n}={p:g}" for n, p in zip(names, sf.params))


def _grid(start: float, stop: float, step: float) -> list[float]:
    n = int(math.floor((stop - start) / step + 1e-9))
    return [round(start + k * step, 6) for k in range(n + 1)]


def candidate_pool(settings: PoolSettings, rc: float, closest: float, n_vectors: int, sign_invariant=()) -> list[SymmetryFunction]:
    """The pool of candidate functions (module docstring), in kind order S1, S2, S3, S4;
    `sign_invariant`: the 1-based vectors whose S3/S4 take cos^2."""
    s = settings
    first = math.floor(closest / s.radial_step) * s.radial_step
    pool = [SymmetryFunction("S1", None, (rs, eta)) for rs in _grid(first, rc, s.radial_step) for eta in s.radial_etas]
    pool += [SymmetryFunction("S2", None, (k,)) for k in _grid(s.kappa_step, s.radial_kappa_max, s.kappa_step)]
    for v in range(1, n_vectors + 1):
        low, scale = (0.0, 4.0) if v in sign_invariant else (-1.0, 1.0)  # cos^2 in [0, 1]: half the range, 4 x eta
        cosines = [round(x, 6) for x in np.linspace(low, 1.0, s.angular_points)]
        pool += [SymmetryFunction("S3", v, (cs, scale * eta)) for cs in cosines for eta in s.angular_etas]
    for v in range(1, n_vectors + 1):
        pool += [SymmetryFunction("S4", v, (k,)) for k in _grid(s.kappa_step, s.angular_kappa_max, s.kappa_step)]
    return pool


def stratified_subsample(labels: np.ndarray, at_most: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: at most `at_most` rows in all, the same share of every class."""
    if len(labels) <= at_most:
        return np.arange(len(labels))
    classes = np.unique(labels)
    per = max(1, at_most // len(classes))
    rows = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    return np.sort(np.concatenate(rows))


class Discriminant:
    """Shrunk linear discriminant analysis on standardised features, set up once for a whole
    pool so that the model of any subset of its columns costs one small linear solve.

    Class means and the pooled within-class covariance S of the fitting rows; a subset's
    model uses the sub-blocks, with S shrunk towards the identity, (1 - shrinkage) S +
    shrinkage I (the features are standardised, so I is the scale of S); equal priors (the
    rows are stratified by form). Scores on the held-out rows: macro F1, micro F1 and the
    log loss of the softmax of the discriminants (probabilities clipped at ``EPS``).
    """

    EPS = 1e-6

    def __init__(self, x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, y_held: np.ndarray, shrinkage: float = 0.05):
        self.classes = np.unique(np.concatenate([y_fit, y_held]))
        index = {c: k for k, c in enumerate(self.classes)}
        self.y_fit = np.array([index[c] for c in y_fit])
        self.y_held = np.array([index[c] for c in y_held])
        self.means = np.stack([x_fit[self.y_fit == k].mean(axis=0) if np.any(self.y_fit == k) else np.zeros(x_fit.shape[1])
                               for k in range(len(self.classes))])
        centred = x_fit - self.means[self.y_fit]
        self.covariance = centred.T @ centred / max(len(x_fit) - len(self.classes), 1)
        self.x_held = x_held
        self.shrinkage = shrinkage

    def score(self, columns) -> tuple[float, float, float]:
        """(macro F1, micro F1, log loss) on the held-out rows of the model of `columns`."""
        cols = np.asarray(columns)
        s = (1 - self.shrinkage) * self.covariance[np.ix_(cols, cols)] + self.shrinkage * np.eye(len(cols))
        mu = self.means[:, cols]
        w = np.linalg.solve(s, mu.T)  # (k, C)
        d = self.x_held[:, cols] @ w - 0.5 * np.einsum("ck,kc->c", mu, w)
        d -= d.max(axis=1, keepdims=True)
        p = np.exp(d)
        p /= p.sum(axis=1, keepdims=True)
        pred = p.argmax(axis=1)
        truth = self.y_held
        loss = max(0.0, float(-np.mean(np.log(np.clip(p[np.arange(len(truth)), truth], self.EPS, 1.0)))))
        f1 = []
        for k in range(len(self.classes)):
            tp = np.sum((pred == k) & (truth == k))
            denominator = np.sum(pred == k) + np.sum(truth == k)
            f1.append(2 * tp / denominator if denominator else 0.0)
        return float(np.mean(f1)), float(np.mean(pred == truth)), loss


def fit_score(x_fit, y_fit, x_held, y_held, classes, c: float = 1.0) -> tuple[float, float, float]:
    """(macro F1, micro F1, log loss) on the held-out rows of a scikit-learn logistic
    regression (L2, inverse strength `c`) fitted on the fitting rows (features already
    standardised): the check of a finished design, too slow for the selection's thousands of fits."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, log_loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, max_iter=300).fit(x_fit, y_fit)
    p = model.predict_proba(x_held)
    pred = model.classes_[p.argmax(axis=1)]
    return (float(f1_score(y_held, pred, labels=classes, average="macro", zero_division=0)), float(np.mean(pred == y_held)),
            float(log_loss(y_held, p, labels=model.classes_)))


def standardise(x_fit: np.ndarray, x_held: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both parts scaled by the fitting part's mean and standard deviation; and which
    columns vary at all (a constant column carries nothing)."""
    mean, std = x_fit.mean(axis=0), x_fit.std(axis=0)
    varies = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    std = np.where(varies, std, 1.0)
    return (x_fit - mean) / std, (x_held - mean) / std, varies


@dataclass
class Selection:
    steps: list[Step] = field(default_factory=list)
    stopped_by: str = ""

    @property
    def functions(self) -> list[SymmetryFunction]:
        return [s.function for s in self.steps]


def forward_selection(pool: list[SymmetryFunction], x_fit, y_fit, x_held, y_held, settings: SelectionSettings, progress: bool = True,
                      log=print) -> Selection:
    """Greedy forward selection of columns of the pool features (module docstring)."""
    from tqdm import tqdm

    x_fit, x_held, varies = standardise(x_fit, x_held)
    model = Discriminant(x_fit, y_fit, x_held, y_held, settings.shrinkage)
    remaining = [k for k in range(len(pool)) if varies[k]]
    chosen: list[int] = []
    out = Selection()
    best_prev = None
    with tqdm(total=settings.max_functions, desc="select", unit="function", disable=not progress) as bar:
        while remaining and len(chosen) < settings.max_functions:
            best = None
            for k in remaining:
                macro, micro, loss = model.score(chosen + [k])
                key = (round(macro, 4), -loss)
                if best is None or key > best[0]:
                    best = (key, k, macro, micro, loss)
            _, k, macro, micro, loss = best
            if best_prev is not None and len(chosen) >= settings.min_functions:
                gain, loss_gain = macro - best_prev[0], (best_prev[1] - loss) / max(best_prev[1], 1e-12)
                if gain < settings.min_gain and loss_gain < settings.min_loss_gain:
                    out.stopped_by = (f"gain below threshold: the best addition ({function_label(pool[k])}) gains {gain:+.4f} macro F1 "
                                      f"(threshold {settings.min_gain:g}) and lowers the log loss by {100 * loss_gain:.1f} % (threshold "
                                      f"{100 * settings.min_loss_gain:g} %)")
                    break
            chosen.append(k)
            remaining.remove(k)
            out.steps.append(Step(pool[k], macro, micro, loss))
            best_prev = (macro, loss)
            bar.update(1)
            bar.set_postfix_str(f"macro F1 {macro:.4f}, log loss {loss:.1e}")
    if not out.stopped_by:
        out.stopped_by = f"cap of {settings.max_functions} functions" if len(chosen) == settings.max_functions else "pool exhausted"
    return out
