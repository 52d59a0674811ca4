"""Central finite differences of MOLENV_CLASSIFY in `plumed driver` runs: the frames to
perturb and the checks of the derivative arrays (DUMPDERIVATIVES), forces and virial
(--dump-forces, --dump-full-virial) against them, and the runs of the action's three ways
to apply forces that must agree (`forces_in_every_mode`); for tests/test_geometry.py,
tests/test_plumed_gnn_forces.py, tests/test_plumed_forces.py and tests/test_ood.py.

A cell entry is perturbed at fixed fractional coordinates, the derivative PLUMED's virial is
made of; a cluster without box gets the same affine deformation of its positions (h = 1).
PLUMED's own --debug-forces is no help where the derivatives are steep (its fixed step is
too large there) or where there is no box (it would perturb the zero box).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "regtest"))

from harness import DriverRun, run_driver  # noqa: E402

DUMP_FORCES = ["--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]


def perturbed_frames(x0: np.ndarray, h0: np.ndarray | None, rng: np.random.Generator, eps: float, n_single: int = 6,
                     n_directions: int = 2):
    """The base frame, then pairs at +- eps along `n_single` random single coordinates,
    `n_directions` random directions of all atoms and every entry of the cell matrix.

    Returns (positions, boxes, checks, h): the frames and their cell matrices (None without
    box), one check (kind, what, plus, minus) per pair, where kind is "atom" (what: (atom,
    x)), "direction" (what: the direction) or "cell" (what: (row, column)) and plus, minus
    are the pair's frame numbers; and h, the matrix the cell entries perturb."""
    h = np.eye(3) if h0 is None else h0
    frac = x0 @ np.linalg.inv(h)
    positions, boxes, checks = [x0], [h0], []

    def add(xp, xm, bp, bm, check):
        positions.extend([xp, xm])
        boxes.extend([bp, bm])
        checks.append((*check, len(positions) - 2, len(positions) - 1))

    for atom in rng.choice(len(x0), size=n_single, replace=False):
        x = int(rng.integers(3))
        d = np.zeros_like(x0)
        d[atom, x] = eps
        add(x0 + d, x0 - d, h0, h0, ("atom", (atom, x)))
    for _ in range(n_directions):
        u = rng.normal(size=x0.shape)
        add(x0 + eps * u, x0 - eps * u, h0, h0, ("direction", u))
    for a in range(3):
        for b in range(3):
            dh = np.zeros((3, 3))
            dh[a, b] = eps
            add(frac @ (h + dh), frac @ (h - dh), None if h0 is None else h0 + dh, None if h0 is None else h0 - dh, ("cell", (a, b)))
    return positions, boxes, checks, h


def assert_derivatives_match(values: np.ndarray, atoms: np.ndarray, cell: np.ndarray, h: np.ndarray, checks, eps: float, what: str,
                             rtol: float = 2e-6, atol: float = 0.0) -> None:
    """The derivative arrays of one component, `atoms` (natoms x 3) and `cell` (PLUMED's 9
    entries, -h^T dc/dh), against the central differences of its printed `values` (one per
    frame of `perturbed_frames`), to rtol of the largest derivative of the kind (for a
    direction: of the sum of the magnitudes of the terms) plus atol."""
    dcdh = np.linalg.solve(h.T, -cell.reshape(3, 3))
    scale_atoms, scale_cell = np.abs(atoms).max(), np.abs(dcdh).max()
    assert scale_atoms > 1e-6 and scale_cell > 1e-6, what  # something to check
    for kind, where, plus, minus in checks:
        fd = (values[plus] - values[minus]) / (2 * eps)
        if kind == "atom":
            analytic, scale = atoms[where], scale_atoms
        elif kind == "direction":
            analytic, scale = np.sum(atoms * where), np.abs(atoms * where).sum()
        else:
            analytic, scale = dcdh[where], scale_cell
        assert abs(fd - analytic) <= rtol * scale + atol, \
            f"{what} {kind} {where if kind != 'direction' else ''}: fd {fd} analytic {analytic} (scale {scale})"


def directional_frames(x0: np.ndarray, h0: np.ndarray | None, u: np.ndarray, dh: np.ndarray, eps: float):
    """(positions, boxes, h) of five frames: the base, +- eps u (atoms), +- eps dh (cell, at
    fixed fractional coordinates), for `assert_forces_match` and `assert_virial_matches`;
    h, the matrix dh perturbs."""
    h = np.eye(3) if h0 is None else h0
    frac = x0 @ np.linalg.inv(h)
    positions = [x0, x0 + eps * u, x0 - eps * u, frac @ (h + eps * dh), frac @ (h - eps * dh)]
    boxes = [h0, h0, h0] + ([None, None] if h0 is None else [h0 + eps * dh, h0 - eps * dh])
    return positions, boxes, h


def assert_forces_match(e_plus: float, e_minus: float, forces: np.ndarray, u: np.ndarray, eps: float, rtol: float = 1e-6,
                        minimum: float = 1e-3) -> None:
    """-forces . u against the central difference of the energy along u, to rtol of the sum
    of the magnitudes of the terms; the derivative must exceed `minimum` (something to check)."""
    fd = (e_plus - e_minus) / (2 * eps)
    analytic = -np.sum(forces * u)
    assert abs(analytic) > minimum and abs(fd - analytic) <= rtol * np.abs(forces * u).sum(), (fd, analytic)


def assert_virial_matches(e_plus: float, e_minus: float, virial: np.ndarray, h: np.ndarray, dh: np.ndarray, eps: float,
                          rtol: float = 1e-6, minimum: float = 1e-3) -> None:
    """The virial (h^T dE/dh at fixed fractional coordinates) contracted with dh against the
    central difference of the energy along dh, as `assert_forces_match`."""
    fd = (e_plus - e_minus) / (2 * eps)
    dEdh = np.linalg.solve(h.T, virial)
    analytic = np.sum(dEdh * dh)
    assert abs(analytic) > minimum and abs(fd - analytic) <= rtol * np.abs(dEdh * dh).sum(), (fd, analytic)


def forces_in_every_mode(workdir: Path, plumed_dat: Callable[[str], str], args: list[str], files: dict) -> dict[str, DriverRun]:
    """`plumed driver` runs of plumed_dat(extra), with forces and full virial dumped, for
    extra "" (the default mode: the bias forces contracted in one channel), FULL_DERIVATIVES
    and NUM_THREADS=2: the three give the same forces and virial to 1e-10 relative. Returns
    the runs by mode (default, full, threads)."""
    runs = {}
    for label, extra in [("default", ""), ("full", "FULL_DERIVATIVES"), ("threads", "NUM_THREADS=2")]:
        runs[label] = run_driver(workdir / label, plumed_dat(extra), args + DUMP_FORCES, files)
        assert runs[label].returncode == 0, runs[label].output[-3000:]
    dumped = {label: run.read_dump_forces() for label, run in runs.items()}
    for label in ("full", "threads"):
        assert len(dumped[label]) == len(dumped["default"]), label
        for (va, fa), (vb, fb) in zip(dumped["default"], dumped[label]):
            assert np.abs(fa - fb).max() <= 1e-10 * np.abs(fa).max() and np.abs(va - vb).max() <= 1e-10 * np.abs(va).max(), label
    return runs
