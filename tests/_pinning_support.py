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
