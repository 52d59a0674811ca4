"""Made-up pinning windows for the tests of molenv.pinning's command and script."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_colvar(path: Path, at: float, dmu: float, kappa: float, alpha: float, seed: int, column: str = "cls.n_I") -> Path:
    """A PLUMED COLVAR of a window whose count drifts for 200 ps from the bias centre ``at`` to
    its pinned mean, at + dmu / (kappa alpha), then fluctuates around it (width 2, white; a
    sample every 0.1 ps for 500 ps)."""
    rng = np.random.default_rng(seed)
    times = np.arange(0, 500, 0.1)
    pinned = at + dmu / (kappa * alpha)
    q = at + (pinned - at) * np.minimum(times / 200, 1) + rng.normal(0, 2, len(times))
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{t:.1f} {x:.4f} 0 0 0" for t, x in zip(times, q))
    path.write_text(f"#! FIELDS time {column} cls.n_IV cls.n_melt pin.bias\n{rows}\n")
    return path


def write_bulk_run(path: Path, n_molecules: int, energy_per_molecule: float, seed: int, mean_box=None) -> Path:
    """A finished `molenv simulate` run directory as the enthalpy of melting reads it: a
    summary.json and a run.log whose production reports (every 2 ps for 40 ps, the lines
    `molenv.simulate.md` writes) give a potential energy of ``energy_per_molecule`` kJ/mol per
    molecule on average (white noise of 0.3 kJ/mol per molecule)."""
    import json

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    lines = [f"2026-12-04 04:00:00 production step {1000 * k}/20000 t={10 + 2 * k:.1f} ps T=360.0 K "
             f"PE={n_molecules * (energy_per_molecule + rng.normal(0, 0.3)):.1f} kJ/mol box 22.33 22.33 23.42 A density 1.3670 g/cm3 30.37 ns/day"
             for k in range(1, 21)]
    (path / "run.log").write_text("2026-12-04 03:59:00 equilibrate step 5000/5000 t=10.0 ps T=371.1 K PE=0.0 kJ/mol\n" + "\n".join(lines) + "\n")
    (path / "summary.json").write_text(json.dumps({"n_molecules": n_molecules, "mean_box": mean_box or [22.3, 22.3, 23.5, 90, 90, 90]}))
    return path
