"""MOLENV_CLASSIFY under MPI: `plumed driver` run by `mpirun -np 2` (and 3, uneven shares)
gives the per-molecule probabilities (PROB_FILE; SF: also SF_FILE) and the bias forces and
virial of the serial run, for an SF model (models/urea_sf.molenv, with a region and a path),
the same with an ood block and OOD (the class other, biased; SF and GNN) and on the richer geometry
(centroid centre, plane normal, sign-invariant vector), both version 3 files, and a GNN
model (regtest/rt-gnn/gnn.molenv, a toy network over urea), on 160 urea molecules
of the committed MD data (orthorhombic frame, a noisy frame, a triclinic cell with molecules
split across the boundary), with 1 and 2 OpenMP threads per rank.  The restraints act on
n_, f_, s, z and nmol, so the forces carry the components' values and derivatives; both ways
of applying them are checked: the default (bias forces contracted in one derivative pass)
and FULL_DERIVATIVES (PLUMED's derivative arrays of every component, then PLUMED applies them).
The PLUMED of the test is built with the modules the test needs only (no PRINT: the values
enter through the files and the restraints).

SF results agree to summation-order rounding (the ranks' partial sums are added in
another order: 1e-12 relative here); the GNN's do not depend on the number of ranks
(every number exchanged is written by one rank, and the box terms are added in atom order
on every rank), so they are compared exactly, except with FULL_DERIVATIVES, where PLUMED's
own apply() adds the derivative arrays with the ranks' partial sums.

Needs a PLUMED built with MPI and the module compiled against it: `make test-mpi` builds
both (bench/mpi_kernel.sh, build/mpi-plumed; MOLENV_MPI_PLUMED=DIR for another) and runs
this file; where they are absent the tests are skipped with that message.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "regtest"))
from harness import DriverRun, xyz_text  # noqa: E402

MPI_PLUMED = Path(os.environ.get("MOLENV_MPI_PLUMED", REPO / "build" / "mpi-plumed"))
PLUMED = MPI_PLUMED / "bin" / "plumed"
MODULE = MPI_PLUMED / "libmolenv_plumed.so"
SF_MODEL = REPO / "models" / "urea_sf.molenv"
GNN_MODEL = REPO / "regtest" / "rt-gnn" / "gnn.molenv"
UREA_PDB = REPO / "data" / "urea" / "urea-I-100K.pdb.gz"
NATOMS = 1280  # 160 urea molecules

pytestmark = pytest.mark.skipif(
    not (PLUMED.exists() and MODULE.exists() and shutil.which("mpirun")),
    reason=f"no MPI build of PLUMED with the module in {MPI_PLUMED} (or no mpirun): `make test-mpi` builds it and runs these tests",
)


def read_pdb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions (Angstrom) and the orthorhombic box of a PDB file."""
    positions, box = [], None
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("CRYST1"):
                box = np.diag([float(line[6:15]), float(line[15:24]), float(line[24:33])])
            elif line.startswith(("ATOM", "HETATM")):
                positions.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    return np.array(positions), box


def trajectory() -> str:
    """Three frames: the MD frame; with noise of 0.05 A; in a sheared (triclinic) cell, the
    molecules wrapped atom by atom into it (split across the boundary)."""
    x, box = read_pdb(UREA_PDB)
    assert len(x) == NATOMS
    rng = np.random.default_rng(7)
    noisy = x + rng.normal(scale=0.05, size=x.shape)
    sheared = box.copy()
    sheared[1, 0] = 2.0  # b gains an x component
    sheared[2, 0], sheared[2, 1] = -1.5, 1.0
    frac = noisy @ np.linalg.inv(sheared)
    wrapped = (frac - np.floor(frac)) @ sheared
    return xyz_text([x, noisy, wrapped], [box, box, sheared])


def environment(threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PLUMED_KERNEL", "PLUMED_ROOT")}  # the MPI build's own kernel
    env.update(PLUMED_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive",
               # mpirun as root in a container, more ranks than cores, no network
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_btl_vader_single_copy_mechanism="none")
    return env


def run(workdir: Path, plumed_dat: str, ranks: int, threads: int) -> DriverRun:
    """`plumed driver` of the MPI build on the trajectory, under `mpirun -np ranks` (none for 0)."""
    workdir.mkdir(parents=True)
    (workdir / "plumed.dat").write_text(plumed_dat.replace("@MOLENV_LIB@", str(MODULE)))
    (workdir / "traj.xyz").write_text(trajectory())
    cmd = [str(PLUMED), "driver", "--plumed", "plumed.dat", "--ixyz", "traj.xyz", "--length-units", "A",
           "--dump-forces", "forces", "--dump-forces-fmt", "%.17g", "--dump-full-virial"]
    if ranks:
        cmd = ["mpirun", "-np", str(ranks), *cmd]
    proc = subprocess.run(cmd, cwd=workdir, env=environment(threads), capture_output=True, text=True, timeout=600)
    result = DriverRun(proc.returncode, proc.stdout + proc.stderr, workdir)
    assert proc.returncode == 0, result.output[-3000:]
    return result


def outputs(run: DriverRun, files: list[str], rank: int | None = None) -> dict[str, np.ndarray]:
    """The tables `files` and the forces and virial of the driver's --dump-forces (under MPI
    the driver writes one file per rank, forces.<rank>: every rank's forces are the whole)."""
    out = {name: run.read_table(name)[1] for name in files}
    assert all(len(v) for v in out.values()), f"empty output in {run.workdir}"
    frames = run.read_dump_forces("forces" if rank is None else f"forces.{rank}")
    assert len(frames) == 3
    out["virial"] = np.array([v for v, _ in frames])
    out["forces"] = np.array([f for _, f in frames])
    return out


def compare(serial: dict, parallel: dict, rtol: float, what: str) -> None:
    for name, ref in serial.items():
        got = parallel[name]
        assert got.shape == ref.shape, f"{what}: {name} shape {got.shape} != {ref.shape}"
        if rtol == 0:
            assert np.array_equal(got, ref), f"{what}: {name} differs by {np.abs(got - ref).max()}"
        else:
            scale = np.abs(ref).max()
            assert np.abs(got - ref).max() <= rtol * scale, f"{what}: {name} differs by {np.abs(got - ref).max()} (scale {scale})"
    forces = serial["forces"]
    assert np.abs(forces).max() > 1e-3, f"{what}: no forces to compare"


SF_INPUT = """UNITS LENGTH=A
LOAD FILE=@MOLENV_LIB@
c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-1280 {flags} ...
   PATH_CLASSES=I,IV PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20
   PROB_FILE=prob.dat SF_FILE=sf.dat
...
r: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-1280 REGION_AXIS=z REGION_CENTER=5.0 REGION_HALFWIDTH=3.0 REGION_SMOOTHING=2.0 {flags}
b0: RESTRAINT ARG=c.n_I AT=100 KAPPA=0.01 SLOPE=0.3
b1: RESTRAINT ARG=c.f_melt AT=0.0 KAPPA=30.0 SLOPE=0.0
b2: RESTRAINT ARG=c.s,c.z AT=0.2,0.0 KAPPA=8.0,5.0
b3: RESTRAINT ARG=r.n_IV,r.nmol AT=1.0,10.0 KAPPA=1.3,0.5
"""

GNN_INPUT = """UNITS LENGTH=A
LOAD FILE=@MOLENV_LIB@
g: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-1280 {flags} ...
   PATH_CLASSES=I,IV PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20
   PROB_FILE=prob.dat
...
b0: RESTRAINT ARG=g.n_I AT=100 KAPPA=0.01 SLOPE=0.3
b1: RESTRAINT ARG=g.f_melt,g.s,g.z AT=0.0,0.3,0.0 KAPPA=30.0,4.0,2.0
"""


def ood_model(tmp_path: Path) -> Path:
    """models/urea_sf.molenv with an ood block (a version 3 file) fitted on the descriptors of
    the test's own frames, its threshold at the median distance and a narrow width, so that
    other varies from 0 to 1 across the molecules and carries large derivatives."""
    from molenv.descriptors import compute_descriptors
    from molenv.modelfile import read_model, write_model
    from molenv.ood import fit_ood
    from molenv.trajectory import Trajectory

    model = read_model(SF_MODEL)
    frames = Trajectory(REPO / "data" / "urea" / "urea-I-100K.xtc", "urea", topology=UREA_PDB, step=10)
    features = np.concatenate([compute_descriptors(frame, model.descriptors) for frame in frames])
    inputs = model.network.layer_outputs(features)[0]
    score = fit_ood(inputs, model.predict_proba(features).argmax(1), model.classes, inputs, layer=1)
    d = score.distance(inputs)
    score.threshold, score.width = float(np.median(d)), float(0.3 * d.std())
    model.ood = score
    return write_model(model, tmp_path / "ood.molenv")


def gnn_ood_model(tmp_path: Path) -> Path:
    """regtest/rt-gnn/gnn.molenv with an ood block (a version 4 file) on the radial sums
    (layer 1), fitted on the test's own frames as `ood_model`."""
    from molenv.gnn.modelfile import read_gnn_model, write_gnn_model
    from molenv.gnn.numpy_model import classify_frame
    from molenv.ood import fit_ood
    from molenv.trajectory import Trajectory

    model = read_gnn_model(GNN_MODEL)
    outs = [classify_frame(model, frame) for frame in Trajectory(REPO / "data" / "urea" / "urea-I-100K.xtc", "urea", topology=UREA_PDB, step=10)]
    inputs = np.concatenate([out.ood_features[0] for out in outs])
    score = fit_ood(inputs, np.concatenate([out.polymorph.argmax(1) for out in outs]), model.classes, inputs, layer=1)
    d = score.distance(inputs)
    score.threshold, score.width = float(np.median(d)), float(0.3 * d.std())
    model.ood = score
    return write_gnn_model(model, tmp_path / "gnn-ood.molenv")


def geometry_model(tmp_path: Path) -> Path:
    """models/urea_sf.molenv's network on the richer geometry of a version 3 file: the centre
    the centroid of C, O, N1 and N2, vector 1 the plane normal (C->O) x (C->N1), vector 2
    N1->N2 sign-invariant (the weights are the trained ones; the numbers need not mean
    anything, only agree)."""
    from dataclasses import replace

    from molenv.modelfile import read_model, write_model

    model = read_model(SF_MODEL)
    model.descriptors = replace(model.descriptors, centre_atom=(1, 2, 3, 6), vectors=[(1, 2, 1, 3), (3, 6)], sign_invariant=(2,))
    return write_model(model, tmp_path / "geometry.molenv")


@pytest.mark.parametrize("kind", ["sf", "sf-ood", "sf-geometry", "gnn", "gnn-ood"])
@pytest.mark.parametrize("derivatives", ["forces", "arrays"])
def test_ranks_reproduce_the_serial_run(tmp_path, kind, derivatives):
    """PROB_FILE (SF: SF_FILE), forces and virial, by default (forces) and with FULL_DERIVATIVES
    (arrays): 2 ranks x 1 and 2 threads and 3 ranks x 1 thread against no MPI, 1 thread."""
    template, model = (SF_INPUT, SF_MODEL) if kind.startswith("sf") else (GNN_INPUT, GNN_MODEL)
    flags = " ".join(["FULL_DERIVATIVES"] * (derivatives == "arrays") + ["OOD"] * kind.endswith("-ood"))
    if kind == "sf-ood":  # the out-of-distribution class other, biased too
        model = ood_model(tmp_path)
        template = template + "b4: RESTRAINT ARG=c.n_other AT=10 KAPPA=0.05 SLOPE=0.2\n"
    if kind == "gnn-ood":
        model = gnn_ood_model(tmp_path)
        template = template + "b4: RESTRAINT ARG=g.n_other AT=10 KAPPA=0.05 SLOPE=0.2\n"
    if kind == "sf-geometry":
        model = geometry_model(tmp_path)
    text = template.format(model=model, flags=flags)
    files = ["prob.dat"] + (["sf.dat"] if kind.startswith("sf") else [])
    # the GNN's own numbers do not depend on the ranks; PLUMED's apply() of derivative arrays
    # sums its share of the components over the ranks (rounding)
    exact = kind.startswith("gnn") and derivatives == "forces"
    serial = outputs(run(tmp_path / "serial", text, 0, 1), files)
    for ranks, threads in [(2, 1), (2, 2), (3, 1)]:
        parallel = run(tmp_path / f"np{ranks}-t{threads}", text, ranks, threads)
        assert f"{ranks} MPI ranks share the molecules" in parallel.output
        for rank in range(ranks):
            compare(serial, outputs(parallel, files, rank), 0 if exact else 1e-12,
                    f"{kind} {derivatives}, {ranks} ranks x {threads} threads, rank {rank}")


def test_serial_flag_and_log(tmp_path):
    """SERIAL: every rank computes every molecule (the serial numbers exactly); the log says
    how the molecules are shared."""
    text = SF_INPUT.format(model=SF_MODEL, flags="")
    shared = run(tmp_path / "shared", text, 2, 1)
    assert "2 MPI ranks share the molecules" in shared.output
    serial = outputs(run(tmp_path / "serial", text, 0, 1), ["prob.dat", "sf.dat"])
    flagged = run(tmp_path / "flag", SF_INPUT.format(model=SF_MODEL, flags="SERIAL"), 2, 1)
    assert "MPI ranks share" not in flagged.output
    for rank in range(2):
        compare(serial, outputs(flagged, ["prob.dat", "sf.dat"], rank), 0, f"SERIAL under 2 ranks, rank {rank}")
