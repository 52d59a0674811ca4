"""MOLENV_CLASSIFY gives the same numbers whatever the thread count and the units.

* NUM_THREADS=1, NUM_THREADS=2 and PLUMED_NUM_THREADS=2 (the default of NUM_THREADS):
  same values, forces and virial (per-thread buffers are summed in thread order, so
  thread counts differ only by rounding), also in a system of 2,500 molecules;
* the thread count an MD engine gives PLUMED (setNumOMPthreads) is the default, and
  NUM_THREADS overrides it;
* the same system in nm without UNITS and in Angstrom with UNITS LENGTH=A: same values,
  forces scaled by exactly the length conversion, same virial;
* the scalar row/column transpositions (MOLENV_NO_AVX2_TILES=1) and the AVX2 tiles: same
  numbers to rounding.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

CASE = REGTEST / "rt-forces"
FILES = {"softmax.molenv": CASE / "softmax.molenv", "sigmoid.molenv": CASE / "sigmoid.molenv"}


def inp(threads: str, length: float = 1.0, units: str = "UNITS LENGTH=A\n") -> str:
    """Two actions (path; slab) and restraints; lengths given in units of `length` A."""
    L = lambda x: repr(x / length)  # noqa: E731
    return (
        f"{units}LOAD FILE=@MOLENV_LIB@\n"
        f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-100 PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 "
        f"PATH_NIMAGES=5 LAMBDA=20 PROB_FILE=prob SF_FILE=sf {threads}\n"
        f"r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-100 REGION_AXIS=z REGION_CENTER={L(1.0)} REGION_HALFWIDTH={L(2.0)} "
        f"REGION_SMOOTHING={L(2.5)} {threads}\n"
        "RESTRAINT ARG=c.n_A,c.f_B,c.s,c.z,r.n_I,r.f_Melt,r.nmol AT=4,0.2,0.5,0.1,1,0.3,6 KAPPA=0.7,30,8,20,1.3,25,0.5\n"
        "PRINT ARG=c.*,r.* FILE=colvar FMT=%.17g\n"
    )


def outputs(run):
    assert run.returncode == 0, run.output[-3000:]
    return run.read_table("colvar")[1], run.read_dump_forces(), run.read_table("prob")[1], run.read_table("sf")[1]


def close(a, b, rtol):
    return np.abs(a - b).max() <= rtol * max(np.abs(b).max(), 1e-300)


def test_thread_count_does_not_change_results(tmp_path):
    args = ["--ixyz", "traj.xyz", "--length-units", "A", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    files = dict(FILES, **{"traj.xyz": CASE / "traj.xyz"})
    one = run_driver(tmp_path / "1", inp("NUM_THREADS=1"), args, files)
    two = run_driver(tmp_path / "2", inp("NUM_THREADS=2"), args, files)
    env = run_driver(tmp_path / "env", inp(""), args, files, env={"PLUMED_NUM_THREADS": "2"})
    assert "2 OpenMP thread(s)" in two.output and "2 OpenMP thread(s)" in env.output and "1 OpenMP thread(s)" in one.output
    ref = outputs(one)
    for run in (two, env):
        out = outputs(run)
        assert close(out[0], ref[0], 1e-12)
        for (v, f), (v0, f0) in zip(out[1], ref[1]):
            assert close(f, f0, 1e-11) and close(v, v0, 1e-11)
        assert close(out[2], ref[2], 1e-13) and close(out[3], ref[3], 1e-13)


# An MD engine in a fresh process (PLUMED's thread count is process-wide): PLUMED through its
# Python interface, as `molenv reanalyse` drives it, told the engine's thread count with
# setNumOMPthreads; one frame of rt-forces with a restraint; writes colvar and forces.npy.
ENGINE = """
import sys
import numpy as np
from harness import read_xyz
from molenv.plumed.engine import load_plumed, share_step, start_plumed
from molenv.plumed.reanalysis import ReanalyseError

threads = int(sys.argv[1])
frames, boxes = read_xyz(sys.argv[2])
plumed, kernel = load_plumed(ReanalyseError)
n = len(frames[0])
p = start_plumed(plumed, kernel, [("setNumOMPthreads", threads), ("setMDEngine", "python"), ("setNatoms", n),
                                  ("setMDLengthUnits", 0.1), ("setTimestep", 1.0), ("setLogFile", "log"), ("setPlumedDat", "plumed.dat")])
forces, virial = np.zeros((n, 3)), np.zeros((3, 3))
share_step(p, 0, np.ascontiguousarray(frames[0]), np.ascontiguousarray(boxes[0]), np.ones(n), np.zeros(n), forces, virial)
p.cmd("calc")
p.finalize()
np.save("forces.npy", np.vstack([forces, virial]))
"""


def test_md_engine_thread_count_is_the_default(tmp_path):
    from molenv.plumed.kernel import module_path

    env = {k: v for k, v in os.environ.items() if k != "PLUMED_NUM_THREADS"}  # it would override the engine's count
    env["PYTHONPATH"] = os.pathsep.join([str(REGTEST), env.get("PYTHONPATH", "")])
    runs = {}
    for name, keyword in (("engine", ""), ("override", "NUM_THREADS=1")):
        work = tmp_path / name
        work.mkdir()
        (work / "plumed.dat").write_text(
            f"UNITS LENGTH=A\nLOAD FILE={module_path()}\n"
            f"c: MOLENV_CLASSIFY MODEL={FILES['softmax.molenv']} MOLECULES=1-100 {keyword}\n"
            "RESTRAINT ARG=c.n_A,c.f_B AT=4,0.2 KAPPA=0.7,30\nPRINT ARG=c.* FILE=colvar FMT=%.17g\n")
        done = subprocess.run([sys.executable, "-c", ENGINE, "2", str(CASE / "traj.xyz")], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = (work / "log").read_text(), np.loadtxt(work / "colvar"), np.load(work / "forces.npy")
    assert "Number of threads: 2" in runs["engine"][0] and "2 OpenMP thread(s)" in runs["engine"][0]
    assert "1 OpenMP thread(s)" in runs["override"][0]
    (_, values, forces), (_, values1, forces1) = runs["engine"], runs["override"]
    assert np.abs(forces1).max() > 0 and close(forces, forces1, 1e-11) and close(values, values1, 1e-12)


def test_units_do_not_change_results(tmp_path):
    frames, boxes = read_xyz(CASE / "traj.xyz")
    args = ["--ixyz", "traj.xyz", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    angstrom = run_driver(tmp_path / "A", inp(""), args + ["--length-units", "A"], dict(FILES, **{"traj.xyz": CASE / "traj.xyz"}))
    nm_text = xyz_text([f / 10 for f in frames], [b / 10 for b in boxes])
    nm = run_driver(tmp_path / "nm", inp("", length=10.0, units=""), args, dict(FILES, **{"traj.xyz": nm_text}))
    a, n = outputs(angstrom), outputs(nm)
    assert close(n[0], a[0], 1e-10)
    for (vn, fn), (va, fa) in zip(n[1], a[1]):
        assert close(fn, 10.0 * fa, 1e-9)  # kJ/mol/nm = 10 kJ/mol/A
        assert close(vn, va, 1e-9)  # the virial is an energy
    assert close(n[2], a[2], 1e-10) and close(n[3], a[3], 1e-10)


def test_scalar_and_avx2_transpositions_agree(tmp_path):
    args = ["--ixyz", "traj.xyz", "--length-units", "A", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    files = dict(FILES, **{"traj.xyz": CASE / "traj.xyz"})
    tiles = run_driver(tmp_path / "tiles", inp("NUM_THREADS=1"), args, files)
    scalar = run_driver(tmp_path / "scalar", inp("NUM_THREADS=1"), args, files, env={"MOLENV_NO_AVX2_TILES": "1"})
    a, b = outputs(tiles), outputs(scalar)
    assert close(b[0], a[0], 1e-12)
    for (v, f), (v0, f0) in zip(b[1], a[1]):
        assert close(f, f0, 1e-11) and close(v, v0, 1e-11)
    assert close(b[2], a[2], 1e-13) and close(b[3], a[3], 1e-13)


def test_thread_count_does_not_change_results_of_a_large_system(tmp_path):
    """2,500 molecules (frame 0 of rt-forces, 5x5x5 cells) with the slab region: each
    thread's range holds active and inactive molecules, and its pairs reach into the
    other range across both range boundaries (periodic)."""
    frames, boxes = read_xyz(CASE / "traj.xyz")
    x0, h = frames[0], boxes[0]
    tiles = [x0 + a * h[0] + b * h[1] + c * h[2] for a in range(5) for b in range(5) for c in range(5)]
    x = np.concatenate(tiles) + np.random.default_rng(7).normal(scale=0.02, size=(len(tiles) * len(x0), 3))
    natoms = len(x)
    text = (
        "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
        f"r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-{natoms} REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=6.0 "
        "REGION_SMOOTHING=2.5 {threads}\n"
        "RESTRAINT ARG=r.n_I,r.f_Melt,r.nmol AT=1,0.3,6 KAPPA=1.3,25,0.5\n"
        "PRINT ARG=r.* FILE=colvar FMT=%.17g\n"
    )
    args = ["--ixyz", "traj.xyz", "--length-units", "A", "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    files = {"sigmoid.molenv": CASE / "sigmoid.molenv", "traj.xyz": xyz_text([x], [h * 5])}
    one = run_driver(tmp_path / "1", text.replace("{threads}", "NUM_THREADS=1"), args, files)
    two = run_driver(tmp_path / "2", text.replace("{threads}", "NUM_THREADS=2"), args, files)
    for run in (one, two):
        assert run.returncode == 0, run.output[-3000:]
    a, b = one.read_table("colvar")[1], two.read_table("colvar")[1]
    assert close(b, a, 1e-12) and 0 < a[0, -1] < 2500  # nmol: the slab holds some of the molecules
    for (v, f), (v0, f0) in zip(two.read_dump_forces(), one.read_dump_forces()):
        assert np.abs(f0).max() > 0 and close(f, f0, 1e-11) and close(v, v0, 1e-11)
