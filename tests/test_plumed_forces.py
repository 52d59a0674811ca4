"""MOLENV_CLASSIFY forces and virial against finite differences.

* every component (n_, f_, nmol, s, z; with and without a slab region, the slab along
  a tilted face normal included) biased on its own with BIASVALUE, checked with
  `plumed driver --debug-forces` (PLUMED's own finite differences of positions and box)
  on an orthorhombic and a triclinic frame with molecules split across the boundary;
* the sum of restraints on several components checked with our own central
  differences along random directions of atoms and cell, to 1e-6 relative.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from _fd_support import DUMP_FORCES, assert_forces_match, assert_virial_matches, directional_frames

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

CASE = REGTEST / "rt-forces"  # 20 toy molecules (5 atoms); frame 0 orthorhombic, frame 1 triclinic
APM, NMOL = 5, 20
UNUSED = 3  # atom H of the toy molecule is used by no descriptor
ACTIONS = f"""UNITS LENGTH=A
LOAD FILE=@MOLENV_LIB@
c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20
r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-{APM * NMOL} REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=2.0 REGION_SMOOTHING=2.5
x: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} REGION_AXIS=x REGION_CENTER=4.0 REGION_HALFWIDTH=1.5 REGION_SMOOTHING=2.0 NUM_THREADS=2
"""
FILES = {"traj.xyz": CASE / "traj.xyz", "softmax.molenv": CASE / "softmax.molenv", "sigmoid.molenv": CASE / "sigmoid.molenv"}
COMPONENTS = ["c.n_A", "c.f_B", "c.f_Melt", "c.s", "c.z", "r.n_I", "r.f_form_II", "r.nmol", "x.n_B", "x.f_A", "x.nmol"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_debug_forces(tmp_path, component):
    run = run_driver(tmp_path, ACTIONS + f"BIASVALUE ARG={component}\n",
                     ["--ixyz", "traj.xyz", "--length-units", "A", "--debug-forces", "debug", "--dump-forces-fmt", "%.12e"], FILES)
    assert run.returncode == 0, run.output[-3000:]
    unused = [3 * (m * APM + UNUSED) + x for m in range(NMOL) for x in range(3)]
    for ana in run.check_debug_forces(APM * NMOL, 2, component):
        assert np.all(ana[unused] == 0.0)


RESTRAINTS = """b0: RESTRAINT ARG=c.n_A AT=4.0 KAPPA=0.7 SLOPE=0.3
b1: RESTRAINT ARG=c.f_B,c.s,c.z AT=0.2,0.5,0.1 KAPPA=30,8,20
b2: RESTRAINT ARG=r.n_form_II,r.f_Melt,r.nmol AT=1.0,0.3,6.0 KAPPA=1.3,25,0.5 SLOPE=0,-0.4,0.1
b3: RESTRAINT ARG=x.f_A,x.nmol AT=0.3,2.0 KAPPA=40,1.0
PRINT ARG=b0.bias,b1.bias,b2.bias,b3.bias FILE=energy FMT=%.17g
"""


def test_directional_finite_differences(tmp_path):
    """E(x +- eps u) and E(fractional coordinates fixed, h +- eps dh) against the dumped
    forces and virial (virial = h^T dE/dh at fixed fractional coordinates)."""
    frames0, boxes0 = read_xyz(CASE / "traj.xyz")
    rng = np.random.default_rng(7)
    eps = 2e-5
    frames, boxes, checks = [], [], []
    for x0, h0 in zip(frames0, boxes0):
        u = rng.normal(size=x0.shape)
        dh = rng.normal(size=(3, 3))
        positions, cells, h = directional_frames(x0, h0, u, dh, eps)
        checks.append((len(frames), u, dh, h))
        frames += positions
        boxes += cells
    files = dict(FILES, **{"traj.xyz": xyz_text(frames, boxes)})
    run = run_driver(tmp_path, ACTIONS + RESTRAINTS,
                     ["--ixyz", "traj.xyz", "--length-units", "A", *DUMP_FORCES], files)
    assert run.returncode == 0, run.output[-3000:]
    _, e = run.read_table("energy")
    energy = e[:, 1:].sum(axis=1)
    dumped = run.read_dump_forces()
    for base, u, dh, h in checks:
        virial, forces = dumped[base]
        assert_forces_match(energy[base + 1], energy[base + 2], forces, u, eps, minimum=1e-2)
        assert_virial_matches(energy[base + 3], energy[base + 4], virial, h, dh, eps, minimum=1e-2)
