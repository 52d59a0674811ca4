"""Peak memory of `molenv classify` and `molenv reanalyse` on long trajectories, serial and
over blocks of frames on dask workers (issue #19: memory must not grow with the trajectory).

The trajectory is built in a temporary directory: the first ``--molecules`` molecules of the
committed urea form I cluster (data/urea/urea-I-cluster-100K, no box, atoms in the model's
order), its 40 frames repeated in turn, each copy displaced by Gaussian noise of 0.02 A
(seeded), written as an XTC of ``--frames`` frames (several lengths: ``--frames 1000,10000``);
``--molecules 188`` keeps all of them (1,504 atoms).
A small system keeps 10,000 frames affordable on a loaded machine; memory per frame does not
depend on it beyond the result arrays.

Each command runs as its own process tree (`python -m molenv ...`, the shipped urea SF model
models/urea_sf.molenv): ``classify`` (populations, per-molecule npz, coordination numbers;
no plot) and ``reanalyse`` (MOLENV_CLASSIFY with NOPBC, a PROB_FILE and a PRINT of every
component, i.e. one line per frame and one per molecule and frame; ``--plumed-input
geometry``: a distance and a centre, so that reading the frames is the work), each with ``--backend
serial`` and ``--backend dask --workers N`` (local dask processes). The process tree is
sampled every 0.1 s with psutil: the peak resident memory (RSS) of the client process, of
the largest worker, and of the tree's sum; ``ru_maxrss`` from ``wait4`` (the peak of the
largest single process of the tree, client or reaped worker, exact between samples). The serial and dask outputs are compared byte for byte.

    .venv/bin/python bench/long_trajectory_memory.py --frames 1000,10000 --json bench/out/long_trajectory_memory.json
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))
SOURCE = REPO / "data" / "urea" / "urea-I-cluster-100K"
MODEL = REPO / "models" / "urea_sf.molenv"


def build_trajectory(directory: Path, n_frames: int, n_molecules: int, seed: int = 19) -> tuple[Path, Path]:
    """(xtc, pdb) of `n_frames` noisy copies of the committed cluster's frames, its first
    `n_molecules` molecules (written frame by frame: the trajectory is never in memory)."""
    import MDAnalysis as mda

    u = mda.Universe(str(SOURCE.with_suffix(".pdb.gz")), str(SOURCE.with_suffix(".xtc")))
    atoms = u.residues[:n_molecules].atoms
    frames = []
    for _ in u.trajectory:
        frames.append(atoms.positions.copy())
    rng = np.random.default_rng(seed)
    xtc, pdb = directory / f"cluster{n_molecules}-{n_frames}.xtc", directory / f"cluster{n_molecules}.pdb"
    u.trajectory[0]
    atoms.write(str(pdb))
    dt = u.trajectory.dt
    with mda.Writer(str(xtc), atoms.n_atoms) as writer:
        for k in range(n_frames):
            atoms.positions = frames[k % len(frames)] + rng.normal(scale=0.02, size=frames[0].shape)
            u.trajectory.ts.time = k * dt
            u.trajectory.ts.dimensions = None
            writer.write(atoms)
    return xtc, pdb


def plumed_input(path: Path, n_atoms: int, kind: str) -> tuple[Path, list[str]]:
    """The input of the reanalyse runs and the files it writes: ``classify`` (MOLENV_CLASSIFY,
    PROB_FILE, PRINT) or ``geometry`` (a distance and the centre of all atoms: next to no
    work per frame, so that reading the frames is what is measured)."""
    from molenv.plumed.kernel import module_path

    if kind == "classify":
        path.write_text(f"UNITS LENGTH=A\nLOAD FILE={module_path()}\n"
                        f"c: MOLENV_CLASSIFY MODEL={MODEL} MOLECULES=1-{n_atoms} NOPBC PROB_FILE=prob.dat\n"
                        "PRINT ARG=c.* FILE=colvar FMT=%.10g\n")
        return path, ["colvar", "prob.dat"]
    path.write_text(f"UNITS LENGTH=A\nd: DISTANCE ATOMS=1,{n_atoms} NOPBC\ng: CENTER ATOMS=1-{n_atoms} NOPBC\np: POSITION ATOM=g NOPBC\n"
                    "PRINT ARG=d,p.x,p.y,p.z FILE=colvar FMT=%.10g\n")
    return path, ["colvar"]


def measure(cmd: list[str], cwd: Path) -> dict:
    """Run `cmd` in `cwd`; wall time and peak RSS (MiB) of the client, the largest other
    process of its tree and the tree's sum, sampled every 0.1 s, and ru_maxrss of wait4."""
    import psutil

    env = dict(os.environ, PYTHONPATH=str(REPO / "py"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    client = worker = total = 0
    while True:
        try:
            rss = {root.pid: root.memory_info().rss}
            for child in root.children(recursive=True):
                try:
                    rss[child.pid] = child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            rss = {}
        if rss:
            client = max(client, rss.get(root.pid, 0))
            worker = max([worker] + [v for pid, v in rss.items() if pid != root.pid])
            total = max(total, sum(rss.values()))
        try:
            _, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            break
        if _ == proc.pid:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    output = proc.stdout.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    mib = 1 / 2**20
    return {"wall_s": round(wall, 1), "client_peak_MiB": round(client * mib, 1), "tree_ru_maxrss_MiB": round(usage.ru_maxrss / 1024, 1),
            "largest_worker_peak_MiB": round(worker * mib, 1) if worker else None, "tree_peak_MiB": round(total * mib, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="10000", help="trajectory lengths, comma separated (default 10000)")
    parser.add_argument("--molecules", type=int, default=12, help="molecules of the cluster kept (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="dask workers (default 2)")
    parser.add_argument("--commands", default="classify,reanalyse", help="classify, reanalyse (default both)")
    parser.add_argument("--backends", default="serial,dask", help="serial, dask, multiprocessing (default serial,dask)")
    parser.add_argument("--plumed-input", choices=("classify", "geometry"), default="classify",
                        help="what reanalyse runs: MOLENV_CLASSIFY (default) or a distance and a centre (reading the frames is the work)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    rows = []
    python = [sys.executable, "-m", "molenv"]
    with tempfile.TemporaryDirectory(prefix="molenv-longtraj-") as tmp:
        tmp = Path(tmp)
        for n in (int(x) for x in args.frames.split(",")):
            t0 = time.perf_counter()
            xtc, pdb = build_trajectory(tmp, n, args.molecules)
            print(f"built {xtc.name}: {n} frames, {xtc.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.0f} s", flush=True)
            for command in args.commands.split(","):
                outputs = {}
                for backend in args.backends.split(","):
                    work = tmp / f"{command}-{backend}-{n}"
                    work.mkdir()
                    parallel = [] if backend == "serial" else ["--backend", backend, "--workers", str(args.workers)]
                    if command == "classify":
                        cmd = python + ["classify", "--model", str(MODEL), "-t", str(xtc), "--topology", str(pdb), "--no-plot", "--no-progress",
                                        "--out", "out"] + parallel
                        files = ["out/populations.dat", "out/molecules.npz"]
                    else:
                        _, files = plumed_input(work / "plumed.dat", 8 * args.molecules, args.plumed_input)
                        cmd = python + ["reanalyse", "--plumed", "plumed.dat", "-t", str(xtc), "--topology", str(pdb), "--no-progress"] + parallel
                    row = {"command": command, "backend": backend, "frames": n, "atoms": 8 * args.molecules, "workers": args.workers if parallel else 1,
                           "plumed_input": args.plumed_input if command == "reanalyse" else None} | measure(cmd, work)
                    outputs[backend] = [work / f for f in files]
                    if backend != "serial" and "serial" in outputs:
                        row["same_as_serial"] = all(filecmp.cmp(a, b, shallow=False) for a, b in zip(outputs["serial"], outputs[backend])
                                                    if not a.name.endswith(".npz")) and _same_npz(outputs["serial"], outputs[backend])
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.json:  # after every run: a long benchmark cut short keeps what it measured
                        _write_json(args.json, rows)
    print("\n| command | backend | atoms | frames | wall s | client peak RSS MiB (ru_maxrss of the largest process) | largest worker MiB | tree peak MiB | same files as serial |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['command']}{' (' + r['plumed_input'] + ')' if r['plumed_input'] else ''} | {r['backend']} | {r['atoms']:,} | {r['frames']:,} | {r['wall_s']} | {r['client_peak_MiB']} ({r['tree_ru_maxrss_MiB']}) | "
              f"{r['largest_worker_peak_MiB'] or ''} | {r['tree_peak_MiB']} | {r.get('same_as_serial', '')} |")
    return 0


def _write_json(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "machine": platform.platform(), "cpus": os.cpu_count(), "load_average_now": os.getloadavg(),
                                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv}, indent=1))


def _same_npz(a: list[Path], b: list[Path]) -> bool:
    for x, y in zip(a, b):
        if x.name.endswith(".npz"):
            p, q = np.load(x, allow_pickle=False), np.load(y, allow_pickle=False)
            if sorted(p.files) != sorted(q.files) or not all(np.array_equal(p[k], q[k]) for k in p.files if p[k].dtype != object):
                return False
    return True


if __name__ == "__main__":
    sys.exit(main())
