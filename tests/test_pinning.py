"""molenv.pinning: block averaging against the known error of a correlated series, and the
pinning estimate dmu = kappa (<Q> - a) from a COLVAR file."""
from __future__ import annotations

import numpy as np
import pytest

from molenv.pinning import block_analysis, pinning_estimate, read_pinning_run


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
