"""Interface pinning: the chemical-potential difference of two phases from a biased run.

A two-phase system in which a flat interface can move along its normal (the box held fixed
in the interface plane, NPzT, so that the interface area is constant) has a free energy that
is linear in the number Q of molecules of one phase: G(Q) = G0 - dmu Q, with dmu = mu_other
- mu_phase the gain per molecule that joins the phase. A harmonic bias kappa/2 (Q - a)^2
holds the interface in place (the pinning of Pedersen, Hummel, Kresse, Kahl, Dellago, PRB
88, 094101 (2013)); in the biased ensemble Q is Gaussian around

    <Q> = a + dmu / kappa,      so      dmu = kappa (<Q> - a),

the mean force of the bias. Here Q is a class population of `MOLENV_CLASSIFY` (e.g. n_IV,
the sum of every molecule's form IV probability), which is smooth, so the bias has forces.

A classifier's soft count is not exactly the number of molecules of the phase: a molecule of
the bulk phase counts q_phase < 1 on average (a hot crystal's molecules are partly called
melt) and one of the other phase q_other > 0. With Q = alpha N + const, alpha = q_phase -
q_other (measured on bulk runs of both phases at the same temperature), the bias on Q is a
bias of stiffness kappa alpha^2 on N, and

    dmu = kappa alpha (<Q> - a)      per molecule (``q_per_molecule`` = alpha).

Across temperatures dmu(T) of a crystal and its melt crosses zero at the melting point of
the force field: `melting_point` fits a straight line dmu(T), weighted by the
error bars, and returns T_m with its error (Pedersen et al.'s use of the method).

The error bar comes from block averaging (Flyvbjerg and Petersen, J. Chem. Phys. 91, 461
(1989)): the standard error of the mean of blocks grows with the block length while the
blocks are correlated and levels off once they are independent; the plateau value is the
error of the mean. `block_analysis` returns the whole curve (plot it: a curve still rising
at the longest blocks means the run is too short for an honest error bar).

The start of the analysed part: a window starts where the unbiased equilibration ended, and
the interface first moves to where the bias balances dmu (hundreds of ps for a crystal that
melts layer by layer). A fixed ``discard`` leaves that drift in the mean if it is too short;
``discard=None`` finds the start of the stationary part instead (`equilibration_time`:
Chodera's rule, J. Chem. Theory Comput. 12, 1799 (2016), as pymbar implements it), and
`PinningResult.drift` compares the means of the two halves of what is kept.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.analysis import read_table

__all__ = ["BlockAnalysis", "MeltingPoint", "PinningResult", "block_analysis", "combine", "equilibration_time", "melting_point", "pinning_estimate",
           "read_pinning_run"]


@dataclass
class BlockAnalysis:
    """Standard error of the mean of a time series against block length (in samples)."""

    mean: float
    block_lengths: np.ndarray  # samples per block, doubling
    standard_errors: np.ndarray  # standard error of the mean from blocks of that length
    n_blocks: np.ndarray

    @property
    def error(self) -> float:
        """The error of the mean: the largest standard error over block lengths that leave at
        least 4 blocks (a conservative reading of the plateau)."""
        usable = self.n_blocks >= 4
        return float(self.standard_errors[usable].max()) if usable.any() else float("nan")


def block_analysis(x: np.ndarray, min_blocks: int = 4) -> BlockAnalysis:
    """Block averages of ``x`` for block lengths 1, 2, 4, ... samples while at least
    ``min_blocks`` blocks fit (the end of the series that does not fill a block is dropped)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2 * min_blocks or not np.all(np.isfinite(x)):
        raise ValueError(f"block analysis needs a finite 1-D series of at least {2 * min_blocks} samples, got shape {x.shape}")
    lengths, errors, counts = [], [], []
    length = 1
    while len(x) // length >= min_blocks:
        n = len(x) // length
        means = x[: n * length].reshape(n, length).mean(axis=1)
        lengths.append(length)
        errors.append(means.std(ddof=1) / np.sqrt(n))
        counts.append(n)
        length *= 2
    return BlockAnalysis(float(x.mean()), np.array(lengths), np.array(errors), np.array(counts))


@dataclass
class PinningResult:
    """The chemical-potential difference per molecule from one pinning run."""

    kappa: float  # bias stiffness, energy per (molecule)^2
    at: float  # bias centre, molecules
    mean_q: float  # <Q> over the analysed samples
    blocks: BlockAnalysis  # of Q
    n_samples: int
    time_range: tuple[float, float]  # of the analysed samples
    q_per_molecule: float = 1.0  # alpha: the change of Q per molecule that joins the phase
    samples: np.ndarray | None = field(default=None, repr=False)  # the analysed series of Q

    @property
    def delta_mu(self) -> float:
        """kappa alpha (<Q> - a): positive where the biased phase grows by itself (it is the
        more stable one), in the energy unit of kappa (PLUMED's: kJ/mol) per molecule."""
        return self.kappa * self.q_per_molecule * (self.mean_q - self.at)

    @property
    def delta_mu_error(self) -> float:
        return self.kappa * self.q_per_molecule * self.blocks.error

    @property
    def q_std(self) -> float:
        """Fluctuation of Q; for a well pinned interface close to sqrt(kT / kappa)."""
        return float(self.blocks.standard_errors[0] * np.sqrt(self.blocks.n_blocks[0]))

    @property
    def drift(self) -> float:
        """dmu from the second half of the analysed samples less dmu from the first half (see
        `drifting`)."""
        if self.samples is None:
            return float("nan")
        half = len(self.samples) // 2
        return self.kappa * self.q_per_molecule * float(self.samples[half:].mean() - self.samples[:half].mean())

    @property
    def drift_error(self) -> float:
        """The error of `drift`: the block errors of the two halves, each analysed alone (the
        error of the whole window would absorb a trend into its block variance)."""
        if self.samples is None:
            return float("nan")
        half = len(self.samples) // 2
        errors = [block_analysis(part).error for part in (self.samples[:half], self.samples[half:])]
        return self.kappa * self.q_per_molecule * float(np.hypot(*errors))

    @property
    def drifting(self) -> bool:
        """The halves of the window differ by more than 3 `drift_error`: the interface was
        still moving (the window is too short, or the analysis starts too early)."""
        return bool(abs(self.drift) > 3 * self.drift_error)


def equilibration_time(times: np.ndarray, q: np.ndarray) -> float:
    """The time at which the stationary part of the series ``q`` starts: the t0 that maximises
    the number of uncorrelated samples after it (Chodera, J. Chem. Theory Comput. 12, 1799
    (2016); ``pymbar.timeseries.detect_equilibration``). A series that drifts to its end is
    given a late t0 and few samples: check `PinningResult.drift` and the block curve."""
    times, q = np.asarray(times, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if times.shape != q.shape or q.ndim != 1 or len(q) < 16:
        raise ValueError(f"equilibration_time needs matching 1-D times and values, at least 16 samples, got {times.shape} and {q.shape}")
    # pymbar logs a banner about JAX and a general caution about statistical inefficiencies
    # on import: neither says anything about this series
    logger = logging.getLogger("pymbar")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from pymbar import timeseries

        # a candidate origin every len/500 samples: a second for a window of thousands of samples
        t0, _, _ = timeseries.detect_equilibration(q, fast=True, nskip=max(1, len(q) // 500))
    finally:
        logger.setLevel(level)
    return float(times[int(t0)])


def pinning_estimate(times: np.ndarray, q: np.ndarray, kappa: float, at: float, discard: float | None = 0.0,
                     q_per_molecule: float = 1.0) -> PinningResult:
    """`PinningResult` from the series ``q`` at ``times``, leaving out ``times < discard``
    (the relaxation of the interface to the bias), or with ``discard=None`` everything before
    `equilibration_time`; ``q_per_molecule``: alpha (module docstring), 1 for an exact count."""
    if not 0.0 < q_per_molecule <= 1.0:
        raise ValueError(f"q_per_molecule (the soft count of a molecule of the phase less that of one of the other) must be in (0, 1], got {q_per_molecule}")
    times, q = np.asarray(times, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if discard is None:
        discard = equilibration_time(times, q)
    keep = times >= discard
    if keep.sum() < 8:
        raise ValueError(f"only {int(keep.sum())} samples after t = {discard:g}; the run is too short for a pinning estimate")
    blocks = block_analysis(q[keep])
    return PinningResult(float(kappa), float(at), blocks.mean, blocks, int(keep.sum()), (float(times[keep][0]), float(times[keep][-1])),
                         float(q_per_molecule), q[keep])


def read_pinning_run(colvar: str | Path, column: str, kappa: float, at: float, discard: float | None = 0.0,
                     q_per_molecule: float = 1.0) -> PinningResult:
    """`pinning_estimate` from a PLUMED COLVAR file with a ``time`` column and ``column``
    (e.g. ``cls.n_IV``)."""
    table = read_table(colvar)
    return pinning_estimate(table.column("time"), table.column(column), kappa, at, discard, q_per_molecule)


def combine(values, errors) -> tuple[float, float]:
    """Inverse-variance weighted mean of independent estimates (e.g. the pinning windows at
    one temperature) and its error."""
    values, errors = np.asarray(values, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or values.shape != errors.shape or not np.all(errors > 0):
        raise ValueError("combine needs as many estimates as errors, at least one, and every error > 0")
    w = 1.0 / errors**2
    return float((w * values).sum() / w.sum()), float(1.0 / np.sqrt(w.sum()))


@dataclass
class MeltingPoint:
    """The zero of a straight line dmu(T) = c0 + c1 T fitted to pinning estimates."""

    temperature: float  # T_m = -c0 / c1
    error: float  # from the covariance of c0, c1 (first order)
    slope: float  # c1 = d dmu / dT: minus the entropy of melting per molecule at T_m (energy/K)
    intercept: float  # c0
    covariance: np.ndarray  # of (c0, c1)
    chi2: float  # of the fit: about n - 2 where the error bars are right and dmu is linear

    @property
    def entropy_of_melting(self) -> float:
        """-slope: the entropy of melting per molecule (energy/K), > 0 for a crystal that
        melts on heating."""
        return -self.slope


def melting_point(temperatures, delta_mu, errors) -> MeltingPoint:
    """T_m from dmu = mu_melt - mu_crystal (`PinningResult.delta_mu` with Q the crystal's
    count) at two or more temperatures: a straight line fitted by weighted least squares
    (weights 1/error^2; the covariance is taken from the error bars, not rescaled by chi2,
    which is returned to judge them), its zero and that zero's error to first order."""
    t, y, e = (np.asarray(x, dtype=np.float64) for x in (temperatures, delta_mu, errors))
    if t.ndim != 1 or len(t) < 2 or not (t.shape == y.shape == e.shape):
        raise ValueError(f"a melting point needs dmu at two temperatures or more, got {len(np.atleast_1d(t))}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y)) and np.all(e > 0)) or np.ptp(t) == 0:
        raise ValueError("melting_point needs finite values, errors > 0 and at least two different temperatures")
    design = np.stack([np.ones_like(t), t], axis=1) / e[:, None]
    covariance = np.linalg.inv(design.T @ design)
    c0, c1 = covariance @ design.T @ (y / e)
    if c1 == 0:
        raise ValueError("dmu does not change with temperature: no melting point")
    tm = -c0 / c1
    gradient = np.array([-1.0 / c1, c0 / c1**2])  # d tm / d (c0, c1)
    chi2 = float((((c0 + c1 * t) - y) / e) @ (((c0 + c1 * t) - y) / e))
    return MeltingPoint(float(tm), float(np.sqrt(gradient @ covariance @ gradient)), float(c1), float(c0), covariance, chi2)
