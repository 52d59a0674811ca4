"""MOLENV_CLASSIFY with a GNN model file: analytic derivatives (the hand-written reverse
pass of GraphNetwork) against central finite differences.

* the derivative arrays (DUMPDERIVATIVES) of n_I, f_melt, s and z with respect to atoms and
  cell, on an orthorhombic frame, the same with split molecules, a triclinic frame with
  split molecules, the same lattice given by a skewed cell, and a cluster without box:
  single coordinates, random directions of all atoms, and every entry of the cell matrix
  (at fixed fractional coordinates; for the cluster, the same affine deformation of the
  positions), against central differences of the printed values (step 1e-6 A: the
  truncation error of the steep random model is ~1e-8 of the derivatives there);
* the bias forces and virial of the default mode (one reverse pass with the bias forces
  contracted, MolenvClassify::apply) equal those of FULL_DERIVATIVES (one reverse pass per
  class), with 1 and 2 threads, and the central differences of the bias energy.

The random model's derivatives are steep (bonds at a fifth of the cutoff, where the
envelope goes as 1/x): central differences with a step of 1e-4 A are off by ~1e-4
relative, which is why PLUMED's own --debug-forces (a fixed, larger step) is not used here.
"""
from __future__ import annotations

import numpy as np
import pytest

from _gnn_support import ARGS, FRAMES, PATH, driver_files, head, matrix_of, model_file, run_driver

EPS = 1e-6  # A (and A for the cell entries)
COMPONENTS = ["g.n_I", "g.f_melt", "g.s", "g.z", "g.nmol"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_file(tmp_path_factory.mktemp("gnn-model"), seed=2)


def perturbed_frames(frame, rng, n_single=6, n_directions=2):
    """Base frame, then +- EPS along single coordinates, random directions, cell entries.
    Returns (positions, boxes, checks): a check is (kind, index or direction, plus, minus)."""
    x0 = frame.positions
    h0 = matrix_of(frame)
    periodic = h0 is not None
    h = h0 if periodic else np.eye(3)  # a cluster: the affine deformation x (1 + eps E_ab)
    frac = x0 @ np.linalg.inv(h)
    positions, boxes, checks = [x0], [h0], []

    def add(xp, xm, bp, bm, check):
        positions.extend([xp, xm])
        boxes.extend([bp, bm])
        checks.append((*check, len(positions) - 2, len(positions) - 1))

    for atom in rng.choice(len(x0), size=n_single, replace=False):
        x = int(rng.integers(3))
        d = np.zeros_like(x0)
        d[atom, x] = EPS
        add(x0 + d, x0 - d, h0, h0, ("atom", (atom, x)))
    for _ in range(n_directions):
        u = rng.normal(size=x0.shape)
        add(x0 + EPS * u, x0 - EPS * u, h0, h0, ("direction", u))
    for a in range(3):
        for b in range(3):
            dh = np.zeros((3, 3))
            dh[a, b] = EPS
            add(frac @ (h + dh), frac @ (h - dh), h0 + dh if periodic else None, h0 - dh if periodic else None, ("cell", (a, b)))
    return positions, boxes, checks, h


@pytest.mark.parametrize("name", ["orthorhombic", "split", "triclinic-split", "skewed-cell", "cluster"])
def test_derivatives_of_every_component_against_finite_differences(tmp_path, model, name):
    path, _ = model
    frame = FRAMES[name]
    n = frame.n_atoms
    positions, boxes, checks, h = perturbed_frames(frame, np.random.default_rng(len(name)))
    text = head(
        f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{n} {PATH}\n"
        f"PRINT ARG={','.join(COMPONENTS)} FILE=colvar FMT=%.17g\n"
        f"DUMPDERIVATIVES ARG={','.join(COMPONENTS)} FILE=deriv FMT=%.17g STRIDE=1000000\n"  # frame 0 only
    )
    run = run_driver(tmp_path, text, ARGS, driver_files(positions, path, boxes))
    assert run.returncode == 0, run.output[-3000:]
    assert "reads the derivative arrays" in run.output
    values = run.read_table("colvar")[1][:, 1:]
    fields, deriv = run.read_table("deriv")
    assert fields == ["time", "parameter", *COMPONENTS] and len(deriv) == 3 * n + 9
    for c, comp in enumerate(COMPONENTS):
        d = deriv[:, 2 + c]
        atoms, cell = d[: 3 * n].reshape(n, 3), d[3 * n :].reshape(3, 3)
        if comp == "g.nmol":  # a constant
            assert not np.any(d)
            continue
        dcdh = np.linalg.solve(h.T, -cell)  # the cell part is -h^T dc/dh (PLUMED's virial convention)
        scale_atoms, scale_cell = np.abs(atoms).max(), np.abs(dcdh).max()
        assert scale_atoms > 1e-6 and scale_cell > 1e-6, comp  # something to check
        for kind, what, plus, minus in checks:
            fd = (values[plus, c] - values[minus, c]) / (2 * EPS)
            if kind == "atom":
                analytic, scale = atoms[what], scale_atoms
            elif kind == "direction":
                analytic, scale = np.sum(atoms * what), np.abs(atoms * what).sum()
            else:
                analytic, scale = dcdh[what], scale_cell
            assert abs(fd - analytic) <= 2e-6 * scale, f"{comp} {kind} {what if kind != 'direction' else ''}: fd {fd} analytic {analytic} (scale {scale})"


RESTRAINTS = """b0: RESTRAINT ARG=g.n_I AT=4.0 KAPPA=0.7 SLOPE=0.3
b1: RESTRAINT ARG=g.f_melt,g.s,g.z AT=0.2,0.5,0.1 KAPPA=30,8,20
b2: RESTRAINT ARG=g.n_IV,g.nmol AT=1.0,6.0 KAPPA=1.3,0.5 SLOPE=0,0.1
PRINT ARG=b0.bias,b1.bias,b2.bias FILE=energy FMT=%.17g
"""


@pytest.mark.parametrize("name", ["triclinic-split", "cluster"])
def test_bias_forces_in_both_modes_and_threads(tmp_path, model, name):
    """Forces and virial of restraints on several components: the default mode (one reverse
    pass) = FULL_DERIVATIVES (one per class) = two threads, and = central differences of
    the bias energy along random directions of the atoms and of the cell."""
    path, _ = model
    frame = FRAMES[name]
    rng = np.random.default_rng(3)
    positions, boxes, _, h = perturbed_frames(frame, rng, n_single=0, n_directions=0)  # base + 9 cell entries (unused)
    x0, h0 = frame.positions, matrix_of(frame)
    u, dh = rng.normal(size=x0.shape), rng.normal(size=(3, 3))
    frac = x0 @ np.linalg.inv(h)
    positions = [x0, x0 + EPS * u, x0 - EPS * u, frac @ (h + EPS * dh), frac @ (h - EPS * dh)]
    boxes = [h0, h0, h0] + ([h0 + EPS * dh, h0 - EPS * dh] if h0 is not None else [None, None])
    files = driver_files(positions, path, boxes)
    args = ARGS + ["--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    runs = {}
    for label, extra in [("default", ""), ("full", "FULL_DERIVATIVES"), ("threads", "NUM_THREADS=2")]:
        runs[label] = run_driver(tmp_path / label, head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} {PATH} {extra}\n") + RESTRAINTS,
                                 args, files)
        assert runs[label].returncode == 0, runs[label].output[-3000:]
    assert "contracted" in runs["default"].output and "FULL_DERIVATIVES" in runs["full"].output
    dumped = {label: run.read_dump_forces() for label, run in runs.items()}
    for label in ("full", "threads"):
        for (va, fa), (vb, fb) in zip(dumped["default"], dumped[label]):
            assert np.abs(fa - fb).max() <= 1e-10 * np.abs(fa).max() and np.abs(va - vb).max() <= 1e-10 * np.abs(va).max(), label
    energy = runs["default"].read_table("energy")[1][:, 1:].sum(axis=1)
    virial, forces = dumped["default"][0]
    fd = (energy[1] - energy[2]) / (2 * EPS)
    analytic = -np.sum(forces * u)
    assert abs(analytic) > 1e-3 and abs(fd - analytic) <= 1e-6 * np.abs(forces * u).sum(), (fd, analytic)
    fd_cell = (energy[3] - energy[4]) / (2 * EPS)
    dEdh = np.linalg.solve(h.T, virial)  # the virial is h^T dE/dh at fixed fractional coordinates
    analytic_cell = np.sum(dEdh * dh)
    assert abs(analytic_cell) > 1e-3 and abs(fd_cell - analytic_cell) <= 1e-6 * np.abs(dEdh * dh).sum(), (fd_cell, analytic_cell)
