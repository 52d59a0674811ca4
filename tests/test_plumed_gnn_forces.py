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

from _fd_support import assert_derivatives_match, assert_forces_match, assert_virial_matches, directional_frames, forces_in_every_mode, perturbed_frames
from _gnn_support import ARGS, FRAMES, PATH, driver_files, head, model_file, run_driver

EPS = 1e-6  # A (and A for the cell entries)
COMPONENTS = ["g.n_I", "g.f_melt", "g.s", "g.z", "g.nmol"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_file(tmp_path_factory.mktemp("gnn-model"), seed=2)


@pytest.mark.parametrize("name", ["orthorhombic", "split", "triclinic-split", "skewed-cell", "cluster"])
def test_derivatives_of_every_component_against_finite_differences(tmp_path, model, name):
    path, _ = model
    frame = FRAMES[name]
    n = frame.n_atoms
    positions, boxes, checks, h = perturbed_frames(frame.positions, frame.box_matrix(), np.random.default_rng(len(name)), EPS)
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
        assert_derivatives_match(values[:, c], atoms, cell, h, checks, EPS, comp)


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
    x0 = frame.positions
    u, dh = rng.normal(size=x0.shape), rng.normal(size=(3, 3))
    positions, boxes, h = directional_frames(x0, frame.box_matrix(), u, dh, EPS)
    files = driver_files(positions, path, boxes)
    runs = forces_in_every_mode(tmp_path, lambda extra: head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} {PATH} {extra}\n") + RESTRAINTS,
                                ARGS, files)
    assert "contracted" in runs["default"].output and "FULL_DERIVATIVES" in runs["full"].output
    energy = runs["default"].read_table("energy")[1][:, 1:].sum(axis=1)
    virial, forces = runs["default"].read_dump_forces()[0]
    assert_forces_match(energy[1], energy[2], forces, u, EPS)
    assert_virial_matches(energy[3], energy[4], virial, h, dh, EPS)
