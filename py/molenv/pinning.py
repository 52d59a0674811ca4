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
error bars, and returns T_m with its error (Pedersen et al.'s use of the method). With the
enthalpy of melting dh from bulk runs of the two phases (`enthalpy_of_melting`), dmu at a
single temperature gives T_m too (`melting_point_from_enthalpy`, Gibbs-Helmholtz).

A flat crystal face moves a layer at a time: G(N) then has a part periodic in the layer, and a
window's mean force depends on where in a layer it holds the front. `layer_periodic_fit` takes
dmu as the constant of a fit of several windows' mean forces periodic in one layer (umbrella
integration over a period). Windows that are short against the interface's own relaxation
also remember where they started: approach each centre from both sides (docs/applications.md);
`hysteresis` compares the windows that share a centre.

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
`PinningResult.drift` compares the means of the two halves of what is kept. `relaxation` fits
the approach as an overdamped front, Q(t) = Q_inf + (Q_0 - Q_inf) exp(-t/tau): tau is the
time scale a window must exceed several times over (it grows as kappa falls: the bias is the
restoring force), and Q_inf where the window tends to.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from molenv.analysis import read_table

__all__ = ["BlockAnalysis", "LayerFit", "MeltingPoint", "PinningResult", "PinningWindow", "Relaxation", "relaxation", "average_windows", "block_analysis", "bulk_enthalpy_of_melting", "describe", "describe_summary", "equilibration_time", "layer_periodic_fit",
           "enthalpy_of_melting", "hysteresis", "melting_point", "melting_point_from_enthalpy", "mean_melting_point", "melting_point_estimates", "pinning_estimate", "plot_layer_fit", "plot_melting_point", "plot_summary_layer_fit", "plot_windows", "read_pinning_run", "read_window", "scan_tag", "summary",
           "window_summary"]


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
        half = 0 if self.samples is None else len(self.samples) // 2
        if half < 8:  # too short for block errors of its halves: not judged
            return float("nan")
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
    return read_window(colvar, column, kappa, at, discard, q_per_molecule).result


def average_windows(values, errors) -> tuple[float, float, bool]:
    """dmu of one temperature from windows at different bias centres a: their plain mean, its
    error, and whether the windows agree within their errors.

    They are estimates of one number only where the front moves freely. A front in a crystal
    face moves layer by layer, and a soft count Q can also change without the front moving (a
    bias on it can disorder the crystal a little instead): then the mean force at a centre
    depends on the centre (urea form I / melt at 360 K, kappa 0.2: a = 150 gave -0.98 and a =
    134, half a layer away, about 0 kJ/mol per molecule, docs/applications.md). Centres spread evenly across one layer then average what is
    periodic in the front's position, and an inverse-variance mean would follow the least
    noisy window instead. The error is the statistical one, sqrt(sum e^2) / n, or, where the
    windows disagree beyond it (the chi2 of their scatter about the mean above its 99th
    percentile), the standard error of their mean, sd / sqrt(n), whichever is
    larger."""
    from scipy.stats import chi2 as chi2_distribution

    values, errors = np.asarray(values, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or values.shape != errors.shape or not np.all(errors > 0):
        raise ValueError("average_windows needs as many estimates as errors, at least one, and every error > 0")
    n, mean = len(values), float(values.mean())
    error = float(np.sqrt((errors**2).sum()) / n)
    if n == 1:
        return mean, error, True
    consistent = bool(((values - mean) ** 2 / errors**2).sum() <= chi2_distribution.ppf(0.99, n - 1))
    return mean, error if consistent else max(error, float(values.std(ddof=1) / np.sqrt(n))), consistent


@dataclass
class LayerFit:
    """dmu from windows spread across one crystal layer: the mean forces fitted as dmu plus a
    Fourier series periodic in the front's position (`layer_periodic_fit`)."""

    delta_mu: float  # the constant term: the mean force averaged over a whole layer
    error: float
    period: float  # molecules per layer
    harmonics: int
    coefficients: np.ndarray  # cos and sin coefficients of harmonics 1..H (energy per molecule)
    chi2: float  # of the fit, for n - 1 - 2H degrees of freedom
    degrees_of_freedom: int
    largest_gap: float  # the widest stretch of the layer (fraction of it) with no window's <N>

    def force(self, n) -> np.ndarray:
        """The fitted mean force kappa alpha (<Q> - a) at n molecules."""
        return _fourier_design(np.asarray(n, dtype=np.float64), self.period, self.harmonics) @ np.r_[self.delta_mu, self.coefficients]

    @classmethod
    def from_dict(cls, d: dict) -> LayerFit:
        """The fit back from `as_dict`'s JSON."""
        return cls(d["delta_mu_kJ_mol"], d["delta_mu_error_kJ_mol"], d["period_molecules"], d["harmonics"], np.asarray(d["coefficients_kJ_mol"]),
                   d["chi2"], d["degrees_of_freedom"], d["largest_gap"])

    def as_dict(self) -> dict:
        return {"delta_mu_kJ_mol": self.delta_mu, "delta_mu_error_kJ_mol": self.error, "period_molecules": self.period,
                "harmonics": self.harmonics, "coefficients_kJ_mol": self.coefficients.tolist(), "chi2": self.chi2,
                "degrees_of_freedom": self.degrees_of_freedom, "largest_gap": self.largest_gap}


def _fourier_design(n: np.ndarray, period: float, harmonics: int) -> np.ndarray:
    phase = 2 * np.pi * n / period
    columns = [np.ones_like(n)]
    for k in range(1, harmonics + 1):
        columns += [np.cos(k * phase), np.sin(k * phase)]
    return np.stack(columns, axis=-1)


def layer_periodic_fit(molecules, forces, errors, period: float, harmonics: int = 2) -> LayerFit:
    """dmu from pinning windows whose mean force depends on the bias centre because the front
    moves through a crystal face layer by layer.

    The free energy of the two-phase box in the number N of crystal molecules is then
    G(N) = G0 - dmu N + p(N), with p periodic in N with the molecules of one layer (``period``;
    with two interfaces still that period: either one can take the next layer). A window's
    mean force is kappa alpha (<Q> - a) = dmu - <p'(N)>, so the windows' forces (``forces``,
    ``errors``: each window's `PinningResult.delta_mu` and its error) at their mean N
    (``molecules``: <Q> / alpha) are fitted, weighted, by dmu + sum_k c_k cos(2 pi k N / L) +
    s_k sin(2 pi k N / L), k = 1..``harmonics``: the constant term is the force averaged
    over a whole layer, dmu. This is umbrella integration (Kastner and Thiel, J. Chem. Phys.
    123, 144104 (2005)) over one period, with p'(<N>) for <p'(N)> (windows narrow against a
    layer: a stiff bias). It needs windows spread across the layer, 2 + 2 harmonics of them at
    least; `largest_gap` says how much of the layer no window covers (above 1/(2 harmonics) the
    fit extrapolates). The error is the fit's, scaled by sqrt(chi2/dof) where chi2 exceeds the
    degrees of freedom (a periodic part with more harmonics, or windows too short)."""
    n, f, e = (np.asarray(x, dtype=np.float64) for x in (molecules, forces, errors))
    if n.ndim != 1 or not (n.shape == f.shape == e.shape) or not np.all(e > 0) or not np.all(np.isfinite(np.r_[n, f])):
        raise ValueError("layer_periodic_fit needs as many finite positions, forces and errors (> 0) as windows")
    if not period > 0 or harmonics < 1:
        raise ValueError(f"layer_periodic_fit needs a period > 0 and at least one harmonic, got {period} and {harmonics}")
    if len(n) < 2 + 2 * harmonics:
        raise ValueError(f"{len(n)} windows for {1 + 2 * harmonics} parameters: a layer fit with {harmonics} harmonic(s) needs "
                         f"{2 + 2 * harmonics} windows or more across the layer")
    design = _fourier_design(n, period, harmonics) / e[:, None]
    covariance = np.linalg.inv(design.T @ design)
    parameters = covariance @ design.T @ (f / e)
    residuals = design @ parameters - f / e
    chi2, dof = float(residuals @ residuals), len(n) - len(parameters)
    error = float(np.sqrt(covariance[0, 0] * max(1.0, chi2 / dof)))
    phases = np.sort(np.mod(n, period) / period)
    gaps = np.diff(np.r_[phases, phases[0] + 1])
    return LayerFit(float(parameters[0]), error, float(period), harmonics, parameters[1:], chi2, dof, float(gaps.max()))


@dataclass
class MeltingPoint:
    """The zero of a straight line dmu(T) = c0 + c1 T fitted to pinning estimates."""

    temperature: float  # T_m = -c0 / c1
    error: float  # from the covariance of c0, c1 (first order)
    slope: float  # c1 = d dmu / dT: minus the entropy of melting per molecule at T_m (energy/K)
    intercept: float  # c0
    covariance: np.ndarray  # of (c0, c1)
    chi2: float  # of the fit: about n - 2 where the error bars are right and dmu is linear
    temperatures: np.ndarray = field(default=None, repr=False)  # the fitted points
    delta_mu: np.ndarray = field(default=None, repr=False)
    errors: np.ndarray = field(default=None, repr=False)

    @property
    def entropy_of_melting(self) -> float:
        """-slope: the entropy of melting per molecule (energy/K), > 0 for a crystal that
        melts on heating."""
        return -self.slope

    def as_dict(self) -> dict:
        """The points and the fit (energies in kJ/mol, the entropy in J/mol/K), for JSON."""
        return {"temperatures": self.temperatures.tolist(), "delta_mu_kJ_mol": self.delta_mu.tolist(), "errors_kJ_mol": self.errors.tolist(),
                "melting_point_K": self.temperature, "melting_point_error_K": self.error,
                "entropy_of_melting_J_mol_K": 1000 * self.entropy_of_melting, "chi2": self.chi2}

    def report(self, stable: str = "dmu") -> str:
        """The points and T_m, a line each."""
        lines = [f"{t:g} K: {stable} = {y:+.3f} +- {e:.3f} kJ/mol per molecule" for t, y, e in zip(self.temperatures, self.delta_mu, self.errors)]
        lines.append(f"melting point T_m = {self.temperature:.1f} +- {self.error:.1f} K (entropy of melting {1000 * self.entropy_of_melting:.1f} "
                     f"J/mol/K per molecule, chi2 {self.chi2:.2f} for {len(self.temperatures) - 2} degrees of freedom)")
        return "\n".join(lines)


def melting_point(temperatures, delta_mu, errors) -> MeltingPoint:
    """T_m from dmu = mu_melt - mu_crystal (`PinningResult.delta_mu` with Q the crystal's
    count) at two or more temperatures: a straight line fitted by weighted least squares
    (weights 1/error^2; the covariance is taken from the error bars, not rescaled by chi2,
    which is returned to judge them), its zero and that zero's error to first order."""
    t, y, e = (np.asarray(x, dtype=np.float64) for x in (temperatures, delta_mu, errors))
    order = np.argsort(t, kind="stable") if t.ndim == 1 else slice(None)
    t, y, e = t[order], y[order], e[order]
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
    return MeltingPoint(float(tm), float(np.sqrt(gradient @ covariance @ gradient)), float(c1), float(c0), covariance, chi2, t, y, e)


def enthalpy_of_melting(crystal_energy, n_crystal: int, melt_energy, n_melt: int) -> tuple[float, float]:
    """dh = h_melt - h_crystal per molecule at one temperature, with its error: from the
    potential energies of the whole system (series, e.g. `molenv.simulate.md.read_log`) of a
    bulk crystal run of ``n_crystal`` molecules and a bulk melt run of ``n_melt`` at that
    temperature and 1 bar. The kinetic energies are equal at equal temperature and p dv is
    about 1e-4 kJ/mol per molecule at 1 bar, so dh is the difference of the mean potential
    energies per molecule. The error: the block-analysis errors of both means in quadrature."""
    if n_crystal <= 0 or n_melt <= 0:
        raise ValueError(f"enthalpy_of_melting needs the molecule counts, got {n_crystal} and {n_melt}")
    crystal, melt = (block_analysis(np.asarray(e, dtype=np.float64) / n) for e, n in ((crystal_energy, n_crystal), (melt_energy, n_melt)))
    return melt.mean - crystal.mean, float(np.hypot(crystal.error, melt.error))


def bulk_enthalpy_of_melting(crystal_run: str | Path, melt_run: str | Path, stage: str = "production") -> tuple[float, float]:
    """`enthalpy_of_melting` from two finished `molenv simulate` run directories at the same
    temperature and pressure, a bulk crystal and a bulk melt: the potential energies their
    run.log reports in ``stage`` (`molenv.simulate.md.read_log`), the molecule counts from their
    summary.json."""
    import json

    from molenv.simulate.md import read_log

    series = []
    for run in (Path(crystal_run), Path(melt_run)):
        if not (run / "summary.json").is_file():
            raise FileNotFoundError(f"{run}: not a finished `molenv simulate` run (no summary.json)")
        energy = read_log(run, stage)["potential_energy"]
        if len(energy) < 8:
            raise ValueError(f"{run}: {len(energy)} energies logged in stage {stage!r}; the enthalpy of melting needs 8 or more "
                             "(a longer production, or a shorter --report-interval)")
        series += [energy, json.loads((run / "summary.json").read_text())["n_molecules"]]
    return enthalpy_of_melting(*series)


def mean_melting_point(melting_points, errors) -> tuple[float, float, float]:
    """The inverse-variance mean of independent T_m estimates (`melting_point_from_enthalpy` at
    several temperatures), its error, and the chi2 of their scatter about it (about n - 1 where
    they agree: a larger one says dmu or dh is off at some temperature)."""
    t, e = np.asarray(melting_points, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0 or t.shape != e.shape or not np.all(e > 0):
        raise ValueError("mean_melting_point needs as many estimates as errors, at least one, and every error > 0")
    w = 1 / e**2
    mean = float((w * t).sum() / w.sum())
    return mean, float(1 / np.sqrt(w.sum())), float((w * (t - mean) ** 2).sum())


def melting_point_from_enthalpy(temperature: float, delta_mu: float, error: float, delta_h: float, delta_h_error: float) -> tuple[float, float]:
    """T_m and its error from dmu = mu_melt - mu_crystal at one temperature T and the enthalpy of
    melting dh there: Gibbs-Helmholtz, d(dmu/T)/dT = -dh/T^2, integrated from T to T_m (where
    dmu = 0) with dh constant, gives dmu/T = dh (1/T - 1/T_m), so T_m = T / (1 - dmu/dh).
    Neglecting the change of dh between T and T_m (the heat capacity of melting) is a small
    error for T_m tens of K away; the straight line of `melting_point` needs dmu at two
    temperatures or more instead, and the two are a check on each other. The error: first
    order in the errors of dmu and dh."""
    if not delta_h > 0 or not temperature > 0:
        raise ValueError(f"melting_point_from_enthalpy needs T > 0 and an enthalpy of melting > 0, got T = {temperature}, dh = {delta_h}")
    ratio = delta_mu / delta_h
    if ratio >= 1:
        raise ValueError(f"dmu = {delta_mu:.3g} >= dh = {delta_h:.3g}: no melting point above 0 K on this line")
    tm = temperature / (1 - ratio)
    d_mu, d_h = tm / (1 - ratio) / delta_h, -tm / (1 - ratio) * delta_mu / delta_h**2
    return float(tm), float(np.hypot(d_mu * error, d_h * delta_h_error))


def melting_point_estimates(summaries: list[dict], stable: str = "dmu = mu_melt - mu_crystal") -> tuple[MeltingPoint | None, dict, str]:
    """Every T_m the `summary` of several temperatures gives: the zero of the line through
    dmu(T) (`melting_point`, two temperatures or more) and the mean of the single-temperature
    T_m of the summaries with an enthalpy of melting (`mean_melting_point`, one or more).
    Returns the line's fit (None with fewer than two temperatures), the JSON of both and a
    report of a line or more each."""
    rows = sorted((float(s["temperature"]), float(s["delta_mu_kJ_mol"]), float(s["delta_mu_error_kJ_mol"])) for s in summaries)
    single = sorted((float(s["temperature"]), float(s["melting_point_K"]), float(s["melting_point_error_K"]), float(s["enthalpy_of_melting_kJ_mol"]))
                    for s in summaries if "melting_point_K" in s)
    if len(rows) < 2 and not single:
        raise ValueError(f"a melting point needs dmu at two temperatures or more, or at one with the enthalpy of melting; got {len(rows)} "
                         "temperature(s) and no enthalpy")
    fit, result, lines = None, {}, []
    if len(rows) >= 2:
        fit = melting_point(*zip(*rows))
        result = fit.as_dict()
        lines.append(fit.report(stable))
    else:
        lines += [f"{t:g} K: {stable} = {y:+.3f} +- {e:.3f} kJ/mol per molecule" for t, y, e in rows]
    if single:
        mean, error, chi2 = mean_melting_point([r[1] for r in single], [r[2] for r in single])
        result["from_enthalpy"] = {"temperatures": [r[0] for r in single], "melting_points_K": [r[1] for r in single],
                                   "errors_K": [r[2] for r in single], "enthalpies_of_melting_kJ_mol": [r[3] for r in single],
                                   "melting_point_K": mean, "melting_point_error_K": error, "chi2": chi2}
        lines += [f"from {t:g} K and the enthalpy of melting there ({dh:.2f} kJ/mol): T_m = {tm:.1f} +- {e:.1f} K" for t, tm, e, dh in single]
        lines.append(f"melting point from the enthalpy of melting: T_m = {mean:.1f} +- {error:.1f} K (the mean of {len(single)}"
                     + (f", chi2 {chi2:.2f} for {len(single) - 1} degrees of freedom)" if len(single) > 1 else ")"))
    return fit, result, "\n".join(lines)


# ----------------------------------------------------------------------------- windows

@dataclass
class Relaxation:
    """The approach of a window's count to its pinned mean, fitted as an overdamped front:
    Q(t) = limit + (start - limit) exp(-t / tau). The errors are the fit's (white noise), so
    too small for a correlated series: read tau as the window's time scale, not as a result."""

    tau: float  # ps
    tau_error: float
    limit: float  # the count the window tends to
    limit_error: float
    start: float

    def curve(self, t: np.ndarray) -> np.ndarray:
        """The fitted Q at ``t`` ps after the window's first sample."""
        return self.limit + (self.start - self.limit) * np.exp(-np.asarray(t, dtype=np.float64) / self.tau)


def relaxation(times: np.ndarray, q: np.ndarray) -> Relaxation | None:
    """`Relaxation` fitted to the whole series by least squares (scipy's curve_fit), or None
    where no relaxation is seen: the fit fails, or tau comes out longer than ten times the
    window (a straight drift, the window far shorter than its relaxation time)."""
    from scipy.optimize import curve_fit

    times, q = np.asarray(times, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if len(q) < 16:
        return None
    t = times - times[0]
    span = float(t[-1])
    if span <= 0:
        return None

    def model(x, limit, start, tau):
        return Relaxation(tau, 0.0, limit, 0.0, start).curve(x)

    guess = (float(q[-max(1, len(q) // 5):].mean()), float(q[: max(1, len(q) // 50)].mean()), span / 3)
    try:
        values, covariance = curve_fit(model, t, q, p0=guess, bounds=([-np.inf, -np.inf, 1e-6 * span], [np.inf, np.inf, 10 * span]),
                                       maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    limit, start, tau = (float(v) for v in values)
    errors = np.sqrt(np.diag(covariance))
    if not np.all(np.isfinite(errors)) or tau >= 0.99 * 10 * span:
        return None
    return Relaxation(tau, float(errors[2]), limit, float(errors[0]), start)


@dataclass
class PinningWindow:
    """One biased run: its bias (a, kappa on `column`), its whole series and its estimate."""

    name: str  # e.g. the COLVAR's path or pin-<a>
    column: str  # the biased count, e.g. cls.n_I
    times: np.ndarray  # ps
    values: np.ndarray  # the count
    result: PinningResult

    @cached_property
    def relaxation(self) -> Relaxation | None:
        """The exponential approach of the whole series (`relaxation`)."""
        return relaxation(self.times, self.values)

    @property
    def duration(self) -> float:
        """ps from the first sample to the last."""
        return float(self.times[-1] - self.times[0])


def read_window(colvar: str | Path, column: str, kappa: float, at: float, discard: float | None = None,
                q_per_molecule: float = 1.0, name: str | None = None) -> PinningWindow:
    """A `PinningWindow` from a PLUMED COLVAR with a ``time`` column and ``column``; ``discard``
    None: from `equilibration_time` on."""
    table = read_table(colvar)
    if column not in table.names:
        raise ValueError(f"{colvar}: no column {column!r} (columns: {' '.join(table.names)})")
    times, values = table.column("time"), table.column(column)
    return PinningWindow(name or str(colvar), column, times, values, pinning_estimate(times, values, kappa, at, discard, q_per_molecule))


def hysteresis(windows: list[PinningWindow]) -> list[dict]:
    """The windows that share a bias centre a (the same centre approached from both sides, e.g.
    scans down and up a layer, `scripts/pinning.py run --chain --tag`), centre by centre: their
    mean forces and the gap between the largest and the smallest, with its error. Windows that
    are long against the interface's relaxation agree; a gap beyond 3 errors says they remember
    where they started, and then neither force is the equilibrium one (their mean is the
    estimate, the half gap its error, as for hysteresis in thermodynamic integration)."""
    by_centre: dict[float, list[PinningWindow]] = {}
    for w in windows:
        by_centre.setdefault(w.result.at, []).append(w)
    rows = []
    for at, group in sorted(by_centre.items()):
        if len(group) < 2:
            continue
        forces = [w.result.delta_mu for w in group]
        low, high = group[int(np.argmin(forces))].result, group[int(np.argmax(forces))].result
        gap, error = high.delta_mu - low.delta_mu, float(np.hypot(high.delta_mu_error, low.delta_mu_error))
        rows.append({"at": at, "windows": [w.name for w in group], "forces_kJ_mol": forces, "gap_kJ_mol": gap, "gap_error_kJ_mol": error,
                     "agree": bool(gap <= 3 * error)})
    return rows


def window_summary(window: PinningWindow) -> dict:
    """The numbers of one window, as `summary` writes them."""
    r = window.result
    return {"name": window.name, "column": window.column, "at": r.at, "kappa": r.kappa, "alpha": r.q_per_molecule, "mean_q": r.mean_q,
            "q_std": r.q_std, "delta_mu_kJ_mol": r.delta_mu, "delta_mu_error_kJ_mol": r.delta_mu_error, "samples": r.n_samples,
            "time_ps": list(r.time_range), "drift_kJ_mol": r.drift,
            # null where the window is too short to judge (JSON has no NaN)
            "drift_error_kJ_mol": r.drift_error if np.isfinite(r.drift_error) else None, "drifting": r.drifting,
            "relaxation": _relaxation_summary(window)}


def _relaxation_summary(window: PinningWindow) -> dict | None:
    fit, r = window.relaxation, window.result
    if fit is None:
        return None
    return {"tau_ps": fit.tau, "tau_error_ps": fit.tau_error, "limit": fit.limit, "limit_error": fit.limit_error,
            "window_in_tau": window.duration / fit.tau,
            "delta_mu_from_limit_kJ_mol": r.kappa * r.q_per_molecule * (fit.limit - r.at)}


def scan_tag(name: str) -> str:
    """The scan a window belongs to, from its name ...pin-<a>-<tag>... (`scripts/pinning.py run
    --tag`, e.g. down or up), or '' for an untagged window."""
    match = re.search(r"pin-\d+-([A-Za-z]\w*)", name)
    return match.group(1) if match else ""


def _layer_fit(windows: list[PinningWindow], layer: float) -> LayerFit:
    # as many harmonics as the windows allow, up to 2 (4 windows: 1, 6 or more: 2)
    return layer_periodic_fit([w.result.mean_q / w.result.q_per_molecule for w in windows], [w.result.delta_mu for w in windows],
                              [w.result.delta_mu_error for w in windows], layer, max(1, min(2, (len(windows) - 2) // 2)))


def summary(windows: list[PinningWindow], temperature: float | None = None, discard: float | None = None,
            enthalpy: tuple[float, float] | None = None, layer: float | None = None, **extra) -> dict:
    """dmu of one temperature from its windows (their mean over the bias centres,
    `average_windows`, or with ``layer``, the molecules of one crystal layer, the constant of
    `layer_periodic_fit`, the plain mean kept as ``window_mean_kJ_mol``; where the windows
    are scans of the layer from both sides, tagged in their names (`scan_tag`, 4 windows or more
    each), the mean of each scan's fit, with half their difference in the error, the fits kept
    as ``scans``) and every window's numbers; the JSON that `melting_point` fits read (``extra``: further top-level entries,
    e.g. the system's name). With ``enthalpy``, the enthalpy of melting at the temperature and
    its error (Q the crystal's count), also T_m from this temperature alone
    (`melting_point_from_enthalpy`)."""
    if not windows:
        raise ValueError("no pinning window to summarise")
    values = [w.result.delta_mu for w in windows]
    errors = [w.result.delta_mu_error for w in windows]
    mean, error, consistent = average_windows(values, errors)
    result = {**extra, "temperature": temperature, "delta_mu_kJ_mol": mean, "delta_mu_error_kJ_mol": error,
              "window_spread_kJ_mol": float(np.ptp(values)), "windows_agree": consistent, "discard_ps": "auto" if discard is None else discard}
    if gaps := hysteresis(windows):
        result["hysteresis"] = gaps
    if layer is not None:
        fit = _layer_fit(windows, layer)
        result |= {"window_mean_kJ_mol": mean, "window_mean_error_kJ_mol": error, "layer_fit": fit.as_dict(),
                   "delta_mu_kJ_mol": fit.delta_mu, "delta_mu_error_kJ_mol": fit.error}
        # scans of the layer from both sides (windows pin-<a>-<tag>): each scan's own fit; dmu is
        # their mean, and half their difference, the hysteresis, enters its error (a systematic
        # error: the joint fit's chi2 would treat it as scatter and shrink it with the windows)
        tags = [scan_tag(w.name) for w in windows]
        scans = {tag: [w for w, t in zip(windows, tags) if t == tag] for tag in dict.fromkeys(tags)}
        if len(scans) >= 2 and all(len(group) >= 4 for group in scans.values()):
            fits = {tag: _layer_fit(group, layer) for tag, group in scans.items()}
            dmus = np.array([f.delta_mu for f in fits.values()])
            statistical = float(np.sqrt(sum(f.error**2 for f in fits.values())) / len(fits))
            result |= {"scans": {tag: f.as_dict() for tag, f in fits.items()}, "delta_mu_kJ_mol": float(dmus.mean()),
                       "delta_mu_error_kJ_mol": float(np.hypot(statistical, np.ptp(dmus) / 2))}
    if enthalpy is not None:
        if temperature is None:
            raise ValueError("a melting point from the enthalpy of melting needs the temperature")
        # from the temperature's dmu: the layer fit's where there is one, not the plain window mean
        tm, tm_error = melting_point_from_enthalpy(temperature, result["delta_mu_kJ_mol"], result["delta_mu_error_kJ_mol"], *enthalpy)
        result |= {"enthalpy_of_melting_kJ_mol": enthalpy[0], "enthalpy_of_melting_error_kJ_mol": enthalpy[1],
                   "melting_point_K": tm, "melting_point_error_K": tm_error}
    return result | {"windows": [window_summary(w) for w in windows]}


def describe(window: PinningWindow, stable: str = "dmu") -> str:
    """One line on a window: <Q>, the analysed time range, dmu with its error and the drift."""
    r, fit = window.result, window.relaxation
    relaxed = (f"relaxation time {fit.tau:.0f} ps (the window is {window.duration / fit.tau:.1f} of them), tending to {fit.limit:.1f}"
               if fit is not None else "no relaxation seen: the window is shorter than its relaxation time, or the series does not relax")
    return (f"{window.name}: a = {r.at:g}, <{window.column}> = {r.mean_q:.2f} (std {r.q_std:.2f}) over {r.time_range[0]:g}-{r.time_range[1]:g} ps; "
            f"{stable} = {r.delta_mu:+.3f} +- {r.delta_mu_error:.3f} kJ/mol per molecule (second half less first: {r.drift:+.3f} +- "
            f"{r.drift_error:.3f}" + (": still drifting" if r.drifting else "") + f"); {relaxed}")


def describe_summary(result: dict, stable: str = "dmu") -> str:
    """A line on a temperature's `summary`: dmu, its error, and how its windows agree; a second with
    T_m where the summary has the enthalpy of melting."""
    at = f"{result['temperature']:g} K: " if result.get("temperature") else ""
    n = len(result["windows"])
    line = f"{at}{stable} = {result['delta_mu_kJ_mol']:+.3f} +- {result['delta_mu_error_kJ_mol']:.3f} kJ/mol per molecule"
    if n == 1:
        line += " from 1 window (one bias centre: nothing shows that the mean force does not depend on it)"
    elif "scans" in result:
        fits = ", ".join(f"{tag} {f['delta_mu_kJ_mol']:+.3f} +- {f['delta_mu_error_kJ_mol']:.3f} (chi2 {f['chi2']:.1f} for "
                         f"{f['degrees_of_freedom']})" for tag, f in result["scans"].items())
        line += (f", the mean of the layer fits of {len(result['scans'])} scans ({fits}; the error holds half their difference, "
                 f"the hysteresis; the fit through all {n} windows {result['layer_fit']['delta_mu_kJ_mol']:+.3f} +- "
                 f"{result['layer_fit']['delta_mu_error_kJ_mol']:.3f})")
    elif "layer_fit" in result:
        fit = result["layer_fit"]
        line += (f", the constant of a fit periodic in one layer ({fit['period_molecules']:g} molecules, {fit['harmonics']} harmonic(s)) "
                 f"through {n} windows (chi2 {fit['chi2']:.1f} for {fit['degrees_of_freedom']}; {100 * fit['largest_gap']:.0f} % of the layer "
                 f"between two windows{', too wide: the fit extrapolates' if fit['largest_gap'] > 0.5 / fit['harmonics'] else ''}; "
                 f"the plain mean {result['window_mean_kJ_mol']:+.3f} +- {result['window_mean_error_kJ_mol']:.3f})")
    else:
        line += f", the mean of {n} windows (they differ by up to {result['window_spread_kJ_mol']:.3f}"
        line += (", within their errors)" if result["windows_agree"] else
                 ": more than their errors, the mean force depends on the bias centre; the error is their scatter)")
    if gaps := result.get("hysteresis"):
        worst = max(gaps, key=lambda g: g["gap_kJ_mol"] / g["gap_error_kJ_mol"])
        line += (f"\n{len(gaps)} centre(s) with more than one window: {sum(not g['agree'] for g in gaps)} disagree beyond 3 errors "
                 f"(largest gap {max(g['gap_kJ_mol'] for g in gaps):.3f}, mean {np.mean([g['gap_kJ_mol'] for g in gaps]):.3f} kJ/mol; "
                 f"worst at a = {worst['at']:g}: {worst['gap_kJ_mol']:.3f} +- {worst['gap_error_kJ_mol']:.3f}): "
                 + ("the windows remember their start" if not all(g["agree"] for g in gaps) else "no hysteresis seen"))
    if "melting_point_K" in result:
        line += (f"\nenthalpy of melting {result['enthalpy_of_melting_kJ_mol']:.2f} +- {result['enthalpy_of_melting_error_kJ_mol']:.2f} kJ/mol "
                 f"per molecule: T_m = {result['melting_point_K']:.1f} +- {result['melting_point_error_K']:.1f} K from this temperature "
                 "(Gibbs-Helmholtz)")
    return line


def plot_windows(path: str | Path, windows: list[PinningWindow], title: str) -> Path:
    """The windows' series (a dotted, <Q> dashed, a vertical line where the analysis starts)
    and their block-error curves (the error of dmu against block length: a plateau is an
    honest error bar, a curve still rising is not), side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    for k, w in enumerate(windows):
        r, colour = w.result, plt.get_cmap("tab10")(k % 10)
        tag = f" ({t})" if (t := scan_tag(w.name)) else ""
        ax.plot(w.times, w.values, color=colour, linewidth=0.6, label=f"a = {r.at:g}{tag}: dmu = {r.delta_mu:+.2f} +- {r.delta_mu_error:.2f} kJ/mol")
        ax.axhline(r.at, color=colour, linestyle=":")
        ax.axhline(r.mean_q, color=colour, linestyle="--", linewidth=0.8)
        ax.axvline(r.time_range[0], color=colour, linewidth=0.8)
        if (fit := w.relaxation) is not None:  # the fitted approach, thin and black
            ax.plot(w.times, fit.curve(w.times - w.times[0]), color="k", linewidth=0.6, linestyle="-.")
        dt = float(np.median(np.diff(w.times)))
        bx.errorbar(r.blocks.block_lengths * dt, r.kappa * r.q_per_molecule * r.blocks.standard_errors, fmt="o-", color=colour, markersize=3)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel(f"{windows[0].column} (soft count)")
    ax.legend(fontsize=7)
    bx.set_xscale("log")
    bx.set_xlabel("block length (ps)")
    bx.set_ylabel("error of dmu (kJ/mol)")
    fig.suptitle(f"{title} (dotted: a, dashed: <Q> from the vertical line on, dash-dot: exponential fit)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_layer_fit(path: str | Path, windows: list[PinningWindow], fit: LayerFit, title: str, scans: dict[str, LayerFit] | None = None,
                   estimate: tuple[float, float] | None = None) -> Path:
    """Each window's mean force kappa alpha (<Q> - a) with its error at its <N> = <Q>/alpha,
    the fitted periodic curve over the windows' range and dmu, its constant (with its error
    band), as a PNG: where the curve swings far about dmu the front feels the layers. Windows
    named pin-<a>-<tag> (scans from either side) get a colour per tag; with ``scans`` (each
    scan's own fit, `summary`'s ``scans``) their curves are drawn instead of ``fit``'s, and
    ``estimate`` (dmu, error) is the line drawn (default: ``fit``'s constant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = np.array([w.result.mean_q / w.result.q_per_molecule for w in windows])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    tags = [scan_tag(w.name) for w in windows]
    colours = {tag: f"C{[0, 2, 3, 4][k % 4]}" for k, tag in enumerate(dict.fromkeys(tags))}
    for k, (tag, colour) in enumerate(colours.items()):
        mine = [i for i, t in enumerate(tags) if t == tag]
        ax.errorbar(n[mine], [windows[i].result.delta_mu for i in mine], yerr=[windows[i].result.delta_mu_error for i in mine], fmt="os^v"[k % 4],
                    color=colour, markersize=4, label=f"windows{' (' + tag + ')' if tag else ''}: kappa alpha (<Q> - a)")
    grid = np.linspace(n.min() - 2, n.max() + 2, 200)
    for tag, curve in (scans or {"": fit}).items():
        ax.plot(grid, curve.force(grid), color=colours.get(tag, "C0"), linewidth=0.8,
                label=f"periodic fit{' of ' + tag if tag else ''} ({curve.delta_mu:+.2f}), one layer = {curve.period:g} molecules")
    dmu, error = estimate or (fit.delta_mu, fit.error)
    ax.axhline(dmu, color="C1", label=f"dmu = {dmu:+.3f} +- {error:.3f} kJ/mol" + (" (the scans' mean)" if scans else ""))
    ax.axhspan(dmu - error, dmu + error, color="C1", alpha=0.2)
    ax.axhline(0, color="0.5", linewidth=0.6)
    ax.set_xlabel("<N> = <Q> / alpha (molecules of the phase)")
    ax.set_ylabel("mean force (kJ/mol per molecule)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_summary_layer_fit(path: str | Path, windows: list[PinningWindow], result: dict, title: str) -> Path:
    """`plot_layer_fit` of a `summary` made with ``layer``: its joint fit, its scans' fits
    where it has them, and its dmu."""
    scans = {tag: LayerFit.from_dict(d) for tag, d in result.get("scans", {}).items()} or None
    return plot_layer_fit(path, windows, LayerFit.from_dict(result["layer_fit"]), title, scans,
                          (result["delta_mu_kJ_mol"], result["delta_mu_error_kJ_mol"]))


def plot_melting_point(path: str | Path, fit: MeltingPoint, label: str = "", experiment: float | None = None,
                       from_enthalpy: dict | None = None) -> Path:
    """dmu(T) with its error bars, the fitted line and T_m +- its error (``label`` names the
    force field in the legend; ``experiment``: a melting point to mark; ``from_enthalpy``: the
    `melting_point_estimates` JSON of the single-temperature T_m, drawn as dh (1 - T/T_m) with
    the mean dh, and its T_m +- error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, y, e = fit.temperatures, fit.delta_mu, fit.errors
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.errorbar(t, y, yerr=e, fmt="o", color="C0", label="interface pinning, block errors")
    ends = [t.min(), t.max(), fit.temperature] + ([from_enthalpy["melting_point_K"]] if from_enthalpy else [])
    grid = np.linspace(min(ends) - 5, max(ends) + 5, 100)
    ax.plot(grid, fit.intercept + fit.slope * grid, color="C0", linewidth=0.8)
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.axvspan(fit.temperature - fit.error, fit.temperature + fit.error, color="C0", alpha=0.2,
               label=f"T_m = {fit.temperature:.0f} +- {fit.error:.0f} K" + (f" ({label})" if label else ""))
    if from_enthalpy:
        tm, error = from_enthalpy["melting_point_K"], from_enthalpy["melting_point_error_K"]
        dh = float(np.mean(from_enthalpy["enthalpies_of_melting_kJ_mol"]))
        ax.plot(grid, dh * (1 - grid / tm), color="C1", linestyle="--", linewidth=0.8,
                label=f"dh (1 - T/T_m), dh = {dh:.1f} kJ/mol: T_m = {tm:.0f} +- {error:.0f} K")
        ax.axvspan(tm - error, tm + error, color="C1", alpha=0.15)
    if experiment is not None:
        ax.axvline(experiment, color="C3", linestyle="--", linewidth=0.8, label=f"experiment, {experiment:g} K")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("mu_melt - mu_crystal (kJ/mol per molecule)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
