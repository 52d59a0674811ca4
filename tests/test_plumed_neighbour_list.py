"""MOLENV_CLASSIFY's Verlet neighbour list (NL_SKIN): reusing the list between steps gives
the same values, forces and virial as searching neighbours at every step (NL_SKIN=0), and
the list is rebuilt exactly when it must be: a centre moved by more than half the skin, or
the cell changed (a molecule wrapped back into the cell by a lattice vector has not moved).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

CASE = REGTEST / "rt-forces"  # 20 toy molecules of 5 atoms (cutoff 4.5 A); frame 0 orthorhombic
APM, NMOL = 5, 20


def frames():
    """Frames after the first: small noise (kept), a molecule wrapped by a lattice vector
    (kept), a centre moved by 0.7 A > skin/2 (rebuilt), a scaled cell (rebuilt)."""
    x0, boxes = read_xyz(CASE / "traj.xyz")
    x0, h = x0[0], boxes[0]
    rng = np.random.default_rng(3)
    x1 = x0 + rng.normal(scale=0.03, size=x0.shape)
    x2 = x1.copy()
    x2[3 * APM : 4 * APM] += h[0]  # molecule 4 by the first cell vector
    x3 = x2.copy()
    x3[5 * APM : 6 * APM, 0] += 0.7  # molecule 6 moves 0.7 A along x
    x4 = x3 * 1.002
    return [x0, x1, x2, x3, x4], [h, h, h, h, h * 1.002]


def run(tmp_path, skin: str):
    inp = (
        "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
        f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 "
        f"PATH_NIMAGES=5 LAMBDA=20 TIMINGS {skin}\n"
        f"r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-{APM * NMOL} REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=2.0 "
        f"REGION_SMOOTHING=2.5 NUM_THREADS=2 TIMINGS {skin}\n"
        "RESTRAINT ARG=c.n_A,c.f_B,c.s,c.z,r.n_I,r.f_Melt,r.nmol AT=4,0.2,0.5,0.1,1,0.3,6 KAPPA=0.7,30,8,20,1.3,25,0.5\n"
        "PRINT ARG=c.*,r.* FILE=colvar FMT=%.17g\n"
    )
    x, boxes = frames()
    files = {"traj.xyz": xyz_text(x, boxes), "softmax.molenv": CASE / "softmax.molenv", "sigmoid.molenv": CASE / "sigmoid.molenv"}
    out = run_driver(tmp_path, inp, ["--ixyz", "traj.xyz", "--length-units", "A", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g",
                                     "--dump-full-virial"], files)
    assert out.returncode == 0, out.output[-3000:]
    return out


def builds(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) neighbour-list builds", output)]


def test_reused_list_gives_the_same_results(tmp_path):
    every = run(tmp_path / "every", "NL_SKIN=0")
    reuse = run(tmp_path / "reuse", "NL_SKIN=1.0")
    assert builds(every.output) == [5, 5]
    assert builds(reuse.output) == [3, 3]
    a, b = every.read_table("colvar")[1], reuse.read_table("colvar")[1]
    assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()
    for (va, fa), (vb, fb) in zip(every.read_dump_forces(), reuse.read_dump_forces()):
        assert np.abs(fa).max() > 1e-3
        assert np.abs(fa - fb).max() <= 1e-11 * np.abs(fa).max()
        assert np.abs(va - vb).max() <= 1e-11 * np.abs(va).max()


def test_default_skin_is_one_angstrom_and_negative_is_rejected(tmp_path):
    out = run(tmp_path / "default", "")
    assert "cutoff + skin 1 A" in out.output and builds(out.output) == [3, 3]
    x, boxes = frames()
    bad = run_driver(tmp_path / "bad", "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
                     f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{APM * NMOL} NL_SKIN=-0.5\n",
                     ["--ixyz", "traj.xyz", "--length-units", "A"],
                     {"traj.xyz": xyz_text(x[:1], boxes[:1]), "softmax.molenv": CASE / "softmax.molenv"})
    assert bad.returncode != 0 and "NL_SKIN must be >= 0" in bad.output
