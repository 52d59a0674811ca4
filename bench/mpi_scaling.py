"""Strong scaling of MOLENV_CLASSIFY with MPI ranks x OpenMP threads, with forces.

    .venv/bin/python bench/mpi_scaling.py [--configs 1x1,1x2,2x1,2x2] [--rounds 3] [--frames 12]

`plumed driver` of the MPI build of PLUMED (bench/mpi_kernel.sh, build/mpi-plumed; `make
test-mpi` builds it) runs under `mpirun -np R` with PLUMED_NUM_THREADS=T on
* SF: urea form I, 12x12x12 cells (3456 molecules), models/urea_sf.molenv;
* GNN: nicotinamide form I (NICOAM13) supercell of heights >= 20 A, models/nicotinamide_gnn.molenv;
each with a RESTRAINT on a population (the default force mode: one derivative pass per
step) and TIMINGS.  The trajectory is the crystal with fresh Gaussian noise of 0.05 A per
frame (the neighbour list is built once).  The time is the action's own (its TIMINGS
total on rank 0, which includes the waits in the ranks' sums), per step and molecule;
every configuration runs once per round, the rounds interleaved, and the median over the
rounds is reported with the speed-up over 1x1.  The PLUMED of this build is compiled
without optimisation, which does not affect the action (compiled with the module's
flags) but makes `plumed driver` itself slow, hence the action's own timer.

Prints a markdown table (docs/benchmarks.md, "MPI ranks x threads") and writes
bench/out/mpi_scaling.json.  Needs the reference structures (../shared/reference).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "regtest"))
from _common import FORM_I, OUT, REFERENCE, REPO, machine_record, noisy_crystal, timings_from_log  # noqa: E402
from harness import xyz_text  # noqa: E402

MPI_PLUMED = Path(os.environ.get("MOLENV_MPI_PLUMED", REPO / "build" / "mpi-plumed"))
SYSTEMS = {
    "SF": {"molecule": "urea", "repeats": (12, 12, 12), "model": REPO / "models" / "urea_sf.molenv"},
    "GNN": {"molecule": "nicotinamide", "repeats": None, "model": REPO / "models" / "nicotinamide_gnn.molenv"},
}


def first_class(model: Path) -> str:
    for line in model.read_text().splitlines():
        if line.startswith("classes "):
            return line.split()[2]
    raise ValueError(f"{model}: no classes line")


def prepare(name: str, frames: int, workdir: Path) -> int:
    """The trajectory and the PLUMED input of a system in workdir; returns its molecule count."""
    spec = SYSTEMS[name]
    system, positions = noisy_crystal(spec["molecule"], REFERENCE / FORM_I[spec["molecule"]], repeats=spec["repeats"])
    box = system.box_vectors()  # rows: the cell vectors
    rng = np.random.default_rng(11)
    ideal = system.positions.reshape(-1, 3)
    traj = [positions] + [ideal + rng.normal(scale=0.05, size=ideal.shape) for _ in range(frames - 1)]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "traj.xyz").write_text(xyz_text(traj, [box] * frames))
    n = len(positions)
    (workdir / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={MPI_PLUMED / 'libmolenv_plumed.so'}\n"
        f"c: MOLENV_CLASSIFY MODEL={spec['model']} MOLECULES=1-{n} TIMINGS\n"
        f"RESTRAINT ARG=c.n_{first_class(spec['model'])} AT=0 KAPPA=0 SLOPE=1.0\n"
    )
    return system.n_molecules


def run(workdir: Path, ranks: int, threads: int) -> float:
    """The action's time per step and molecule (us, TIMINGS on rank 0) of one driver run."""
    env = {k: v for k, v in os.environ.items() if k not in ("PLUMED_KERNEL", "PLUMED_ROOT")}
    env.update(PLUMED_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl="self,vader")
    cmd = ["mpirun", "-np", str(ranks), "--bind-to", "none", str(MPI_PLUMED / "bin" / "plumed"), "driver", "--plumed", "plumed.dat",
           "--ixyz", "traj.xyz", "--length-units", "A"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {workdir}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    stages, _, _ = timings_from_log(proc.stdout)
    return stages["total"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="1x1,1x2,2x1,2x2", help="RANKSxTHREADS, comma separated (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    p.add_argument("--frames", type=int, default=12, help="frames per run (default %(default)s)")
    p.add_argument("--systems", default="SF,GNN", help="SF, GNN or both (default %(default)s)")
    p.add_argument("--out", type=Path, default=OUT / "mpi_scaling.json")
    args = p.parse_args(argv)
    if not (MPI_PLUMED / "bin" / "plumed").exists():
        p.error(f"no MPI build of PLUMED in {MPI_PLUMED}: run bench/mpi_kernel.sh (or make test-mpi) first")
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    results = {"machine": machine_record(), "load_before": os.getloadavg()[0], "systems": {}}
    for name in args.systems.split(","):
        workdir = OUT / "mpi_scaling" / name
        nmol = prepare(name, args.frames, workdir)
        times = {f"{r}x{t}": [] for r, t in configs}
        for _ in range(args.rounds):
            for r, t in configs:
                times[f"{r}x{t}"].append(run(workdir, r, t))
        median = {k: statistics.median(v) for k, v in times.items()}
        base = median.get("1x1")
        results["systems"][name] = {"molecules": nmol, "model": str(SYSTEMS[name]["model"].relative_to(REPO)), "frames": args.frames,
                                    "us_per_molecule_step": times, "median": median,
                                    "speedup": {k: base / v for k, v in median.items()} if base else None}
    results["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")

    print(f"load average {results['load_before']:.2f} before, {results['load_after']:.2f} after; {results['machine']['cpu_count']} cores")
    print("| model | molecules | ranks x threads | us per molecule and step (median of rounds) | speed-up over 1x1 |")
    print("|---|---|---|---|---|")
    for name, r in results["systems"].items():
        for k, v in r["median"].items():
            s = r["speedup"][k] if r["speedup"] else None
            print(f"| {name} | {r['molecules']} | {k} | {v:.2f} | {s:.2f} |" if s else f"| {name} | {r['molecules']} | {k} | {v:.2f} | n/a |")
    print(f"(written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
