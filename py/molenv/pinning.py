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

The error bar comes from block averaging (Flyvbjerg and Petersen, J. Chem. Phys. 91, 461
(1989)): the standard error of the mean of blocks grows with the block length while the
blocks are correlated and levels off once they are independent; the plateau value is the
error of the mean. `block_analysis` returns the whole curve (plot it: a curve still rising
at the longest blocks means the run is too short for an honest error bar).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.analysis import read_table

__all__ = ["BlockAnalysis", "PinningResult", "block_analysis", "pinning_estimate", "read_pinning_run"]


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

    @property
    def delta_mu(self) -> float:
        """kappa (<Q> - a): positive where the biased phase grows by itself (it is the more
        stable one), in the energy unit of kappa (PLUMED's: kJ/mol) per molecule."""
        return self.kappa * (self.mean_q - self.at)

    @property
    def delta_mu_error(self) -> float:
        return self.kappa * self.blocks.error

    @property
    def q_std(self) -> float:
        """Fluctuation of Q; for a well pinned interface close to sqrt(kT / kappa)."""
        return float(self.blocks.standard_errors[0] * np.sqrt(self.blocks.n_blocks[0]))


def pinning_estimate(times: np.ndarray, q: np.ndarray, kappa: float, at: float, discard: float = 0.0) -> PinningResult:
    """`PinningResult` from the series ``q`` at ``times``, leaving out ``times < discard``
    (the relaxation of the interface to the bias)."""
    times, q = np.asarray(times, dtype=np.float64), np.asarray(q, dtype=np.float64)
    keep = times >= discard
    if keep.sum() < 8:
        raise ValueError(f"only {int(keep.sum())} samples after t = {discard:g}; the run is too short for a pinning estimate")
    blocks = block_analysis(q[keep])
    return PinningResult(float(kappa), float(at), blocks.mean, blocks, int(keep.sum()), (float(times[keep][0]), float(times[keep][-1])))


def read_pinning_run(colvar: str | Path, column: str, kappa: float, at: float, discard: float = 0.0) -> PinningResult:
    """`pinning_estimate` from a PLUMED COLVAR file with a ``time`` column and ``column``
    (e.g. ``cls.n_IV``)."""
    table = read_table(colvar)
    return pinning_estimate(table.column("time"), table.column(column), kappa, at, discard)
