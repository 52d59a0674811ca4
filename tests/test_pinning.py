"""molenv.pinning: block averaging against the known error of a correlated series, the
pinning estimate dmu = kappa alpha (<Q> - a) from a COLVAR file, and the melting point where
dmu(T) crosses zero."""
from __future__ import annotations

import numpy as np
import pytest

from molenv.pinning import (LayerFit, average_windows, block_analysis, describe_summary, enthalpy_of_melting, layer_periodic_fit, melting_point,
                            melting_point_from_enthalpy, pinning_estimate, read_pinning_run)


def ornstein_uhlenbeck(n, tau, sigma, mean, rng):
    """AR(1) series with correlation time `tau` samples and stationary std `sigma`."""
    phi = np.exp(-1.0 / tau)
    x = np.empty(n)
    x[0] = rng.normal(0, sigma)
    noise = rng.normal(0, sigma * np.sqrt(1 - phi**2), n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return mean + x


def test_block_error_of_a_correlated_series():
    rng = np.random.default_rng(3)
    tau, sigma, n = 20.0, 2.0, 2**16
    x = ornstein_uhlenbeck(n, tau, sigma, 5.0, rng)
    blocks = block_analysis(x)
    # the naive error (blocks of one sample) underestimates by sqrt(2 tau); the plateau does not
    phi = np.exp(-1 / tau)
    exact = sigma * np.sqrt((1 + phi) / (1 - phi) / n)
    assert blocks.standard_errors[0] == pytest.approx(sigma / np.sqrt(n), rel=0.05)
    assert 0.7 * exact < blocks.error < 1.6 * exact
    assert abs(blocks.mean - 5.0) < 4 * exact
    assert blocks.block_lengths[0] == 1 and (blocks.n_blocks >= 4).all()


def test_block_analysis_refuses_short_or_bad_series():
    with pytest.raises(ValueError, match="at least 8"):
        block_analysis(np.arange(5.0))
    with pytest.raises(ValueError, match="finite"):
        block_analysis(np.array([1.0, np.nan] * 8))


def test_pinning_estimate_from_colvar(tmp_path):
    rng = np.random.default_rng(7)
    kappa, at, dmu = 0.2, 300.0, 1.5  # kJ/mol per molecule^2, molecules, kJ/mol per molecule
    t = np.arange(0, 200.0, 0.1)
    q = ornstein_uhlenbeck(len(t), 10.0, 3.0, at + dmu / kappa, rng)
    q[t < 20] = at  # the relaxation, to be discarded
    path = tmp_path / "COLVAR"
    path.write_text("#! FIELDS time cls.n_IV\n" + "".join(f"{a:.3f} {b:.6f}\n" for a, b in zip(t, q)))
    result = read_pinning_run(path, "cls.n_IV", kappa, at, discard=20.0)
    assert result.time_range[0] == pytest.approx(20.0) and result.n_samples == int((t >= 20).sum())
    assert abs(result.delta_mu - dmu) < 4 * result.delta_mu_error
    assert 0.01 < result.delta_mu_error < 0.3
    assert result.q_std == pytest.approx(3.0, rel=0.2)
    with pytest.raises(ValueError, match="too short"):
        pinning_estimate(t, q, kappa, at, discard=199.5)


def test_soft_count_per_molecule_scales_the_estimate():
    """Q = alpha N + const (a classifier's soft count): the bias on Q pins N with stiffness
    kappa alpha^2, so <Q> - a = dmu / (kappa alpha), and dmu = kappa alpha (<Q> - a)."""
    rng = np.random.default_rng(11)
    kappa, at, dmu, alpha = 0.1, 500.0, 0.4, 0.85
    t = np.arange(0, 100.0, 0.05)
    q = ornstein_uhlenbeck(len(t), 5.0, 2.0, at + dmu / (kappa * alpha), rng)
    exact = pinning_estimate(t, q, kappa, at)
    soft = pinning_estimate(t, q, kappa, at, q_per_molecule=alpha)
    assert soft.delta_mu == pytest.approx(alpha * exact.delta_mu) and soft.delta_mu_error == pytest.approx(alpha * exact.delta_mu_error)
    assert abs(soft.delta_mu - dmu) < 4 * soft.delta_mu_error
    for bad in (0.0, 1.2):
        with pytest.raises(ValueError, match="q_per_molecule"):
            pinning_estimate(t, q, kappa, at, q_per_molecule=bad)


def test_windows_are_averaged_over_their_centres():
    """The plain mean (not inverse-variance: windows at different centres sample the front at
    different depths of a layer); the statistical error where they agree, their scatter where
    they do not."""
    mean, error, agree = average_windows([1.0, 1.1], [0.1, 0.2])
    assert agree and mean == pytest.approx(1.05) and error == pytest.approx(np.sqrt(0.01 + 0.04) / 2)
    mean, error, agree = average_windows([-0.98, 0.02], [0.04, 0.05])  # 360 K, half a layer apart
    assert not agree and mean == pytest.approx(-0.48) and error == pytest.approx(np.std([-0.98, 0.02], ddof=1) / np.sqrt(2))
    assert average_windows([0.3], [0.05]) == (0.3, 0.05, True)
    with pytest.raises(ValueError, match="error > 0"):
        average_windows([1.0], [0.0])
    windows = [{"at": 150}, {"at": 134}]
    line = describe_summary({"temperature": 360.0, "delta_mu_kJ_mol": mean, "delta_mu_error_kJ_mol": error, "window_spread_kJ_mol": 1.0,
                             "windows_agree": False, "windows": windows})
    assert line.startswith("360 K: dmu = -0.480 +- 0.500") and "the mean of 2 windows" in line and "depends on the bias centre" in line


def test_melting_point_is_the_zero_of_the_line():
    """dmu(T) = s (T_m - T) with noise of the stated error bars: T_m within its error, the
    error as the spread of repeated fits, the entropy of melting from the slope."""
    rng = np.random.default_rng(5)
    tm, entropy = 406.0, 0.02  # K, kJ/mol/K per molecule
    t = np.array([380.0, 395.0, 410.0, 425.0, 440.0])
    e = np.full(len(t), 0.03)
    fits = [melting_point(t, entropy * (tm - t) + rng.normal(0, e), e) for _ in range(400)]
    temperatures = np.array([f.temperature for f in fits])
    assert abs(temperatures.mean() - tm) < 0.5
    assert np.mean([f.error for f in fits]) == pytest.approx(temperatures.std(), rel=0.15)
    assert np.mean([f.entropy_of_melting for f in fits]) == pytest.approx(entropy, rel=0.05)
    assert np.mean([f.chi2 for f in fits]) == pytest.approx(len(t) - 2, rel=0.2)
    exact = melting_point([390.0, 420.0], [entropy * 16, -entropy * 14], [0.01, 0.01])
    assert exact.temperature == pytest.approx(tm) and exact.chi2 == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="two temperatures"):
        melting_point([400.0], [0.1], [0.01])
    with pytest.raises(ValueError, match="two different temperatures"):
        melting_point([400.0, 400.0], [0.1, 0.2], [0.01, 0.01])


def test_layer_periodic_fit_removes_the_layers_from_the_mean_force():
    """Windows whose mean force is dmu - p'(N), p periodic in a layer of 32 molecules: the plain
    mean of unevenly spread windows is off, the fit's constant is dmu within its error; the
    error grows where the windows scatter beyond their bars; too few windows are refused."""
    rng = np.random.default_rng(7)
    dmu, period = -0.6, 32.0

    def force(n):
        return dmu + 1.2 * np.sin(2 * np.pi * n / period) + 0.4 * np.cos(4 * np.pi * n / period)

    n = np.array([180.0, 183.0, 185.0, 186.0, 187.0, 190.0, 196.0, 203.0])  # bunched, as windows are near a minimum
    e = np.full(len(n), 0.05)
    fits = [layer_periodic_fit(n, force(n) + rng.normal(0, e), e, period) for _ in range(300)]
    estimates = np.array([f.delta_mu for f in fits])
    assert abs(estimates.mean() - dmu) < 0.02 and abs(np.mean(force(n)) - dmu) > 0.1
    assert np.mean([f.error for f in fits]) == pytest.approx(estimates.std(), rel=0.3)
    fit = fits[0]
    assert fit.harmonics == 2 and fit.degrees_of_freedom == 3 and fit.largest_gap == pytest.approx((180 + 32 - 203) / 32)
    assert np.allclose(fit.force(n), force(n), atol=0.2)
    assert LayerFit.from_dict(fit.as_dict()).delta_mu == fit.delta_mu
    # one harmonic cannot follow the second: chi2 far above its dof, and the error is scaled by it
    one = layer_periodic_fit(n, force(n) + rng.normal(0, e), e, period, harmonics=1)
    assert one.chi2 > 10 * one.degrees_of_freedom and one.error > 3 * fits[0].error
    with pytest.raises(ValueError, match="needs 6 windows or more"):
        layer_periodic_fit(n[:5], force(n[:5]), e[:5], period)


def test_melting_point_from_one_temperature_and_the_enthalpy_of_melting():
    """Gibbs-Helmholtz with dh constant: dmu(T) = dh (1 - T/T_m) gives T_m back from any
    single temperature, on either side of it; the error follows the errors of dmu and dh."""
    tm, dh = 340.0, 12.0
    for t in (300.0, 340.0, 400.0):
        assert melting_point_from_enthalpy(t, dh * (1 - t / tm), 0.0, dh, 0.0) == pytest.approx((tm, 0.0))
    t, e_mu, e_h = 360.0, 0.05, 0.3
    estimate, error = melting_point_from_enthalpy(t, dh * (1 - t / tm), e_mu, dh, e_h)
    rng = np.random.default_rng(3)
    samples = [melting_point_from_enthalpy(t, dh * (1 - t / tm) + rng.normal(0, e_mu), 0.0, dh + rng.normal(0, e_h), 0.0)[0] for _ in range(2000)]
    assert np.std(samples) == pytest.approx(error, rel=0.1) and np.mean(samples) == pytest.approx(tm, abs=0.2)
    with pytest.raises(ValueError, match="enthalpy of melting > 0"):
        melting_point_from_enthalpy(360.0, -0.5, 0.1, -3.0, 0.1)
    with pytest.raises(ValueError, match="no melting point"):
        melting_point_from_enthalpy(360.0, 13.0, 0.1, 12.0, 0.1)


def test_enthalpy_of_melting_per_molecule_with_block_errors():
    """dh = <E_melt>/n_melt - <E_crystal>/n_crystal for runs of different sizes; the error is
    the two block errors in quadrature (white noise: sigma / sqrt(n) per molecule)."""
    rng = np.random.default_rng(11)
    crystal = rng.normal(-353.0 * 160, 60.0, 4096)
    melt = rng.normal(-340.0 * 320, 90.0, 4096)
    dh, error = enthalpy_of_melting(crystal, 160, melt, 320)
    assert dh == pytest.approx(13.0, abs=0.05)
    assert error == pytest.approx(np.hypot(60.0 / 160, 90.0 / 320) / 64, rel=0.25)
    with pytest.raises(ValueError, match="molecule counts"):
        enthalpy_of_melting(crystal, 0, melt, 320)


def test_automatic_discard_finds_the_plateau_after_a_drift():
    # an interface that melts for 300 ps (Q falls 130 -> 80), then fluctuates around 80
    rng = np.random.default_rng(3)
    times = np.arange(0, 500, 0.1)
    q = np.where(times < 300, 130 - 50 * times / 300, 80) + rng.normal(0, 3, len(times))
    from molenv.pinning import equilibration_time

    assert 280 <= equilibration_time(times, q) <= 340
    fixed = pinning_estimate(times, q, kappa=0.05, at=130, discard=50)
    auto = pinning_estimate(times, q, kappa=0.05, at=130, discard=None)
    assert auto.time_range[0] >= 280
    assert abs(auto.mean_q - 80) < 1  # the drift is left out
    assert fixed.mean_q > 88  # a fixed 50 ps keeps much of it
    # the drift between the halves of what is kept: large with the fixed discard, small without
    assert fixed.drifting
    assert not auto.drifting
    # a window that drifts to its end
    ramp = pinning_estimate(times, 130 - 0.1 * times + rng.normal(0, 1, len(times)), kappa=0.05, at=130, discard=0)
    assert ramp.drifting


def test_equilibration_time_refuses_short_series():
    from molenv.pinning import equilibration_time

    with pytest.raises(ValueError, match="at least 16"):
        equilibration_time(np.arange(5.0), np.arange(5.0))


def test_a_window_too_short_for_halves_is_not_judged():
    from molenv.pinning import PinningWindow, window_summary

    times = np.arange(12) * 0.1
    q = np.random.default_rng(0).normal(size=12)
    r = pinning_estimate(times, q, kappa=0.05, at=0)
    assert np.isnan(r.drift_error) and not r.drifting
    assert window_summary(PinningWindow("w", "q", times, q, r))["drift_error_kJ_mol"] is None


def test_relaxation_time_of_an_exponential_approach():
    from molenv.pinning import relaxation

    rng = np.random.default_rng(5)
    times = np.arange(0, 500, 0.1)
    q = 80 + 50 * np.exp(-times / 100) + rng.normal(0, 2, len(times))
    fit = relaxation(times, q)
    assert fit is not None and abs(fit.tau - 100) < 10 and abs(fit.limit - 80) < 1 and abs(fit.start - 130) < 2
    # a straight drift over the whole window: no relaxation seen
    assert relaxation(times, 130 - 0.1 * times + rng.normal(0, 1, len(times))) is None
    assert relaxation(times[:10], q[:10]) is None


def test_summary_takes_the_melting_point_from_the_layer_fit():
    """With --layer and the enthalpy of melting, T_m comes from the layer fit's dmu (the force
    averaged over a layer), not from the plain mean of windows bunched in one part of it."""
    from molenv.pinning import PinningWindow, summary

    rng = np.random.default_rng(3)
    dmu, period, kappa, temperature, dh = -0.6, 32.0, 1.0, 400.0, 6.0
    times = np.arange(0, 100, 0.1)
    windows = []
    for at in (180.0, 183.0, 185.0, 187.0, 190.0, 196.0, 203.0, 207.0):
        force = dmu + 1.2 * np.sin(2 * np.pi * at / period)  # the mean force at this centre
        q = at + force / kappa + rng.normal(0, 0.5, len(times))
        windows.append(PinningWindow(f"pin-{at:g}", "cls.n_I", times, q, pinning_estimate(times, q, kappa, at, 0.0)))
    result = summary(windows, temperature, 0.0, enthalpy=(dh, 0.1), layer=period)
    assert abs(result["window_mean_kJ_mol"] - dmu) > 0.1 and result["delta_mu_kJ_mol"] == pytest.approx(dmu, abs=0.05)
    assert result["melting_point_K"] == pytest.approx(melting_point_from_enthalpy(temperature, result["delta_mu_kJ_mol"],
                                                                                  result["delta_mu_error_kJ_mol"], dh, 0.1)[0])


def test_hysteresis_compares_the_windows_of_one_centre(tmp_path):
    """Two scans of the same centres (pin-<a>-down, pin-<a>-up): the centres where their forces
    differ beyond 3 errors are flagged, summary and describe_summary report them, dmu is the
    mean of the two scans' layer fits with their half difference in its error, and the layer
    figure draws each scan in its own colour."""
    from molenv.pinning import PinningWindow, hysteresis, plot_layer_fit, summary

    rng = np.random.default_rng(11)
    times = np.arange(0, 100, 0.1)
    windows = []
    for tag, shift in (("down", 0.0), ("up", -0.8)):
        for at in (100.0, 104.0, 108.0, 112.0, 116.0, 120.0, 124.0, 128.0):
            force = -0.5 + (shift if at >= 120 else 0.0)  # the scans disagree at the last three centres
            q = at + force + rng.normal(0, 0.3, len(times))
            windows.append(PinningWindow(f"pin-{at:g}-{tag}", "cls.n_I", times, q, pinning_estimate(times, q, 1.0, at, 0.0)))
    rows = hysteresis(windows)
    assert [r["at"] for r in rows] == [100.0 + 4 * k for k in range(8)] and all(len(r["windows"]) == 2 for r in rows)
    assert [r["agree"] for r in rows] == [True] * 5 + [False] * 3
    assert rows[-1]["gap_kJ_mol"] == pytest.approx(0.8, abs=0.1)
    assert hysteresis(windows[:8]) == []  # one scan: no centre twice
    result = summary(windows, 400.0, 0.0, layer=32.0)
    assert len(result["hysteresis"]) == 8
    assert "8 centre(s) with more than one window: 3 disagree beyond 3 errors" in describe_summary(result)
    # each scan fitted alone: dmu their mean, half their difference (the hysteresis) in the error
    down, up = (result["scans"][tag]["delta_mu_kJ_mol"] for tag in ("down", "up"))
    assert down == pytest.approx(-0.5, abs=0.02) and up < down - 0.1
    assert result["delta_mu_kJ_mol"] == pytest.approx((down + up) / 2) and result["delta_mu_error_kJ_mol"] >= (down - up) / 2
    assert "the mean of the layer fits of 2 scans (down -0.49" in describe_summary(result)
    assert "scans" not in summary(windows[:8], 400.0, 0.0, layer=32.0)  # one scan: its fit alone
    fit = LayerFit.from_dict(result["layer_fit"])
    assert plot_layer_fit(tmp_path / "layer.png", windows, fit, "two scans").stat().st_size > 0
