"""MOLENV_CLASSIFY computes forces in two ways (docs/plumed_action.md, "Derivatives and virial"):

* by default, apply() contracts the bias forces on the components with the derivatives
  directly (one network backward sweep and one pair pass, whatever is biased);
* with FULL_DERIVATIVES, or automatically when DUMPDERIVATIVES reads a component, the
  per-component derivative arrays are filled and PLUMED applies the forces from them.

Both must give the same forces and virial, the derivative arrays must be the derivatives
whose contraction the default mode applies, and the full mode must pass PLUMED's own
finite-difference check.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

CASE = REGTEST / "rt-forces"  # 20 toy molecules of 5 atoms; frame 0 orthorhombic, frame 1 triclinic
APM, NMOL = 5, 20
USED = [0, 1, 2, 4]  # atoms of the toy molecule that enter the descriptors (requested, in this order)
FILES = {"traj.xyz": CASE / "traj.xyz", "softmax.molenv": CASE / "softmax.molenv", "sigmoid.molenv": CASE / "sigmoid.molenv"}
ARGS = ["--ixyz", "traj.xyz", "--length-units", "A", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]


def actions(extra: str = "") -> str:
    return f"""UNITS LENGTH=A
LOAD FILE=@MOLENV_LIB@
c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20 {extra}
r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-{APM * NMOL} REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=2.0 REGION_SMOOTHING=2.5 {extra}
x: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} REGION_AXIS=x REGION_CENTER=4.0 REGION_HALFWIDTH=1.5 REGION_SMOOTHING=2.0 NUM_THREADS=2 {extra}
"""


RESTRAINTS = """b0: RESTRAINT ARG=c.n_A AT=4.0 KAPPA=0.7 SLOPE=0.3
b1: RESTRAINT ARG=c.f_B,c.s,c.z AT=0.2,0.5,0.1 KAPPA=30,8,20
b2: RESTRAINT ARG=r.n_form_II,r.f_Melt,r.nmol AT=1.0,0.3,6.0 KAPPA=1.3,25,0.5 SLOPE=0,-0.4,0.1
b3: RESTRAINT ARG=x.f_A,x.nmol AT=0.3,2.0 KAPPA=40,1.0
"""


def close(a, b, rtol=1e-10):
    return np.abs(a - b).max() <= rtol * max(np.abs(b).max(), 1e-300)


def test_full_derivatives_give_the_same_forces(tmp_path):
    default = run_driver(tmp_path / "default", actions() + RESTRAINTS, ARGS, FILES)
    full = run_driver(tmp_path / "full", actions("FULL_DERIVATIVES") + RESTRAINTS, ARGS, FILES)
    for run in (default, full):
        assert run.returncode == 0, run.output[-3000:]
    assert "FULL_DERIVATIVES" in full.output and "contracted" in default.output
    a, b = default.read_dump_forces(), full.read_dump_forces()
    assert len(a) == len(b) == 2
    for (va, fa), (vb, fb) in zip(a, b):
        assert np.abs(fa).max() > 1e-3 and np.abs(va).max() > 1e-3
        assert close(fa, fb) and close(va, vb)


@pytest.mark.parametrize("component", ["c.f_B", "c.s", "r.n_I", "r.nmol", "x.f_A"])
def test_dumpderivatives_reads_the_derivatives_the_default_mode_contracts(tmp_path, component):
    """A linear bias (SLOPE=1) in the default mode applies forces -dc/dx and virial -h^T dc/dh;
    DUMPDERIVATIVES of c (which switches its action to derivative arrays) prints dc/dx, dc/dh."""
    bias = run_driver(tmp_path / "bias", actions() + f"RESTRAINT ARG={component} AT=0 KAPPA=0 SLOPE=1\n", ARGS, FILES)
    dump = run_driver(tmp_path / "dump", actions() + f"DUMPDERIVATIVES ARG={component} FILE=deriv FMT=%.17g\n",
                      ["--ixyz", "traj.xyz", "--length-units", "A"], FILES)
    for run in (bias, dump):
        assert run.returncode == 0, run.output[-3000:]
    assert "reads the derivative arrays" in dump.output
    _, rows = dump.read_table("deriv")  # time, parameter, derivative
    per_frame = 3 * len(USED) * NMOL + 9
    assert len(rows) == 2 * per_frame
    for frame, (virial, forces) in enumerate(bias.read_dump_forces()):
        d = rows[frame * per_frame : (frame + 1) * per_frame, 2]
        atoms = d[:-9].reshape(NMOL, len(USED), 3)
        expected = np.zeros((NMOL * APM, 3))
        for q, pos in enumerate(USED):
            expected[pos::APM] = -atoms[:, q]
        assert np.abs(expected).max() > 1e-4
        assert close(forces, expected, 1e-9)
        assert close(virial.ravel(), -d[-9:], 1e-9)


@pytest.mark.parametrize("component", ["c.z", "r.f_form_II", "x.nmol"])
def test_full_derivatives_debug_forces(tmp_path, component):
    run = run_driver(tmp_path, actions("FULL_DERIVATIVES") + f"BIASVALUE ARG={component}\n",
                     ["--ixyz", "traj.xyz", "--length-units", "A", "--debug-forces", "debug", "--dump-forces-fmt", "%.12e"], FILES)
    assert run.returncode == 0, run.output[-3000:]
    run.check_debug_forces(APM * NMOL, 2, component)


def test_gradients_for_metad_geom_switch_to_derivative_arrays(tmp_path):
    """METAD ADAPTIVE=GEOM takes the metric from the CV gradients (PLUMED's GRADIENTS
    option): the action must fill its derivative arrays, giving the same hills (and forces)
    as FULL_DERIVATIVES."""
    x, boxes = read_xyz(CASE / "traj.xyz")
    rng = np.random.default_rng(5)
    files = dict(FILES, **{"traj.xyz": xyz_text([x[0] + rng.normal(scale=0.02, size=x[0].shape) for _ in range(3)], [boxes[0]] * 3)})
    bias = "METAD ARG=c.f_B,c.s ADAPTIVE=GEOM SIGMA=0.2 HEIGHT=1.0 PACE=1 FILE=HILLS FMT=%20.12e\n"
    default = run_driver(tmp_path / "default", actions() + bias, ARGS, files)
    full = run_driver(tmp_path / "full", actions("FULL_DERIVATIVES") + bias, ARGS, files)
    for run in (default, full):
        assert run.returncode == 0, run.output[-3000:]
    ha, hb = default.read_table("HILLS")[1], full.read_table("HILLS")[1]
    assert len(ha) >= 1 and np.abs(ha[:, 3:6]).max() > 0  # metric from nonzero gradients
    assert close(ha, hb, 1e-9)
    (va, fa), (vb, fb) = default.read_dump_forces()[2], full.read_dump_forces()[2]  # earlier hills act on frame 3
    assert np.abs(fa).max() > 1e-3 and close(fa, fb, 1e-9) and close(va, vb, 1e-9)
