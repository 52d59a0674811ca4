"""Cost of MOLENV_CLASSIFY per MD step, with forces, on urea form I supercells, measured
side by side with two peers in the same process and the same run:

* PLUMED's own ``COORDINATION`` over the same molecule centres (the C atoms) with the same
  cutoff function (``SWITCH={COSINUS R_0=0.2 D_0=9.8}`` in Angstrom: 1 up to 9.8 A, cosine
  to 0 at 10 A, exactly the descriptors' fc), with a neighbour list
  ``NLIST NL_CUTOFF=11.0 NL_STRIDE=10`` (1 A skin, rebuilt every 10 steps: PLUMED's
  neighbour list is an O(N^2) search, so every timing of it covers whole multiples of 10
  steps, rebuilds included);
* the force and energy evaluation of the same system in OpenMM on the CPU platform
  (``context.getState(getForces=True, getEnergy=True)``): GAFF + AM1-BCC urea
  (``molenv.simulate.parametrise``), tleap topology, PME with a 9 A cutoff and
  ewaldErrorTolerance 5e-4, HBonds constraints (the settings of ``molenv simulate``),
  ``Threads`` = 1 and 2.

The action is timed with a bias on one component (``RESTRAINT ARG=c.f_I``), so that every
step computes derivatives and applies forces, and also without any bias (values only).
Every PLUMED configuration is its own ``plumed.Plumed`` instance in this process, fed the
same coordinates through the Python interface; a step's time is the wall time of
``cmd("calc")`` (PLUMED's data sharing, the action, the bias and the force scattering: no
file I/O). Positions are the ideal crystal plus Gaussian noise of 0.05 A, the same in
every peer and at every step (OpenMM therefore reuses its neighbour list between
evaluations; the action searches neighbours at every step).

The machine is shared, so timings are noisy: the configurations are measured in
interleaved rounds (each round times every configuration for ``--min-time`` seconds or at
least one step, or one NL_STRIDE period), the first step of each is discarded, and the
report gives per configuration the median and minimum step time over all rounds and the
ratios between configurations as the median over rounds of the ratio of the round
medians. The load average is recorded before and after each size.

    .venv/bin/python bench/plumed_action.py                  # 504, 3456, 27648 molecules
    .venv/bin/python bench/plumed_action.py --sizes 504 --rounds 3 --no-openmm
    .venv/bin/python bench/plumed_action.py --json bench/out/plumed_action.json --markdown

Options: ``--threads 1,2`` (NUM_THREADS of the action and Threads of OpenMM),
``--extra-module LABEL=PATH`` (also time another build of the module, e.g. an older one,
as a peer), ``--no-openmm``, ``--no-coordination``.  Sizes are molecule counts of urea
form I supercells: 504 (6x6x7 cells), 3456 (12x12x12), 27648 (24x24x24); other counts
n1*n2*n3*2 can be given as ``--sizes 6x6x6``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))
OUT = REPO / "bench" / "out"
SIZES = {"504": (6, 6, 7), "3456": (12, 12, 12), "27648": (24, 24, 24)}
JITTER = 0.05  # Angstrom
CUTOFF = {"rmin": 9.8, "rmax": 10.0}  # urea reference model, METHOD.md section 2
NL_STRIDE = 10
OPENMM_CUTOFF = 9.0  # Angstrom, as molenv simulate (MDSettings.cutoff)


# ---------------------------------------------------------------------------------------
# systems


def parse_size(text: str) -> tuple[int, int, int]:
    if text in SIZES:
        return SIZES[text]
    parts = text.lower().split("x")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"size {text!r}: give one of {', '.join(SIZES)} or n1xn2xn3")
    return tuple(int(p) for p in parts)


def build_system(repeats):
    from molenv.simulate.systems import crystal_system
    from molenv.spec import load_spec

    system = crystal_system(load_spec("urea"), REFERENCE / "urea" / "formI.cif", repeats=repeats)
    rng = np.random.default_rng(2024)
    positions = system.positions.reshape(-1, 3) + rng.normal(scale=JITTER, size=(system.n_atoms, 3))
    return system, np.ascontiguousarray(positions)


def model_file(directory: Path) -> Path:
    from molenv.modelfile import write_model
    from molenv.reference import shipped_reference_model

    path = directory / "urea_ref.molenv"
    write_model(shipped_reference_model("urea", REFERENCE), path)
    return path


# ---------------------------------------------------------------------------------------
# PLUMED


def import_plumed():
    """The `plumed` Python wrapper on the kernel the module was built against, with the
    kernel's symbols global so that LOAD can link the module against them."""
    from molenv import plumed_env

    install = plumed_env.installed()
    os.environ.setdefault("PLUMED_KERNEL", install.kernel)
    os.environ["PLUMED_LOAD_NAMESPACE"] = "GLOBAL"
    import plumed

    return plumed


class PlumedPeer:
    """One plumed.Plumed instance fed the same coordinates at every step."""

    def __init__(self, plumed, name: str, lines: list[str], positions: np.ndarray, box: np.ndarray, log: Path, period: int = 1):
        self.name, self.period, self.log = name, period, log
        n = len(positions)
        self.p = plumed.Plumed()
        self.p.cmd("setMDEngine", "python")
        self.p.cmd("setNatoms", n)
        self.p.cmd("setMDLengthUnits", 0.1)  # coordinates passed in Angstrom
        self.p.cmd("setTimestep", 0.002)
        self.p.cmd("setKbT", 2.494)
        self.p.cmd("setLogFile", str(log))
        self.p.cmd("init")
        for line in lines:
            self.p.cmd("readInputLine", line)
        self.positions, self.box = positions, np.ascontiguousarray(box)
        self.masses, self.charges = np.ones(n), np.zeros(n)
        self.forces, self.virial = np.zeros((n, 3)), np.zeros((3, 3))
        self.step_no = 0
        self.biased = any(line.startswith("RESTRAINT") for line in lines)

    def step(self) -> tuple[float, float]:
        """(wall time, CPU time of this process) of one calc"""
        p = self.p
        self.forces[:] = 0.0
        self.virial[:] = 0.0
        p.cmd("setStep", self.step_no)
        p.cmd("setBox", self.box)
        p.cmd("setMasses", self.masses)
        p.cmd("setCharges", self.charges)
        p.cmd("setPositions", self.positions)
        p.cmd("setForces", self.forces)
        p.cmd("setVirial", self.virial)
        c0, t0 = time.process_time(), time.perf_counter()
        p.cmd("calc")
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        self.step_no += 1
        return dt, dc

    def close(self) -> str:
        self.p.finalize()
        return self.log.read_text()


def timings_from_log(text: str) -> dict:
    """The per-stage lines of the action's TIMINGS report (us per molecule and step)."""
    out = {}
    on = False
    for line in text.splitlines():
        if "MOLENV_CLASSIFY" in line and "timings" in line:
            on = True
            continue
        if on:
            body = line.replace("PLUMED:", "").strip()
            if "us/molecule/step" not in body:
                break
            name = body.split("  ")[0].strip()
            out[name] = float(body.split()[-2])
    return out


# ---------------------------------------------------------------------------------------
# OpenMM


def openmm_system(system, directory: Path):
    """Topology (tleap, cached per size under bench/out) and an OpenMM System with PME."""
    import openmm
    from openmm import app, unit

    from molenv.simulate.parametrise import parametrise

    directory.mkdir(parents=True, exist_ok=True)
    prmtop_path = directory / "system.prmtop"
    if not prmtop_path.exists():
        ff = parametrise(system.spec, atom_types="gaff", charges="bcc")
        system.prepare(ff, directory)
    prmtop = app.AmberPrmtopFile(str(prmtop_path))
    mm = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=OPENMM_CUTOFF * unit.angstrom, ewaldErrorTolerance=5e-4,
                             constraints=app.HBonds)
    vectors = system.box_vectors() / 10.0
    mm.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*v) for v in vectors))
    return mm


class OpenMMPeer:
    def __init__(self, mm_system, positions: np.ndarray, threads: int):
        import copy

        import openmm
        from openmm import unit

        self.name = f"openmm T={threads}"
        self.period = 1
        self.system = copy.deepcopy(mm_system)  # kept alive with the context
        self.integrator = openmm.VerletIntegrator(0.001)
        self.context = openmm.Context(self.system, self.integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
        self.context.setPositions(positions / 10.0 * unit.nanometer)
        self.pme = next(f for f in self.system.getForces() if isinstance(f, openmm.NonbondedForce))

    def step(self) -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        self.context.getState(getForces=True, getEnergy=True)
        return time.perf_counter() - t0, time.process_time() - c0

    def describe(self) -> dict:
        alpha, nx, ny, nz = self.pme.getPMEParametersInContext(self.context)
        return {"pme_alpha_per_nm": alpha, "pme_grid": [nx, ny, nz]}


# ---------------------------------------------------------------------------------------
# measurement


def measure(peers: list, rounds: int, min_time: float) -> dict:
    """Interleaved rounds: each round runs every peer for about min_time seconds (whole
    periods); returns per peer the step times (wall and CPU) and the round medians."""
    for peer in peers:  # warm-up: first step (setup, first neighbour lists) not counted
        for _ in range(peer.period):
            peer.step()
    out = {key: {peer.name: [] for peer in peers} for key in ("steps", "cpu", "round_medians", "round_cpu")}
    for _ in range(rounds):
        for peer in peers:
            wall, cpu = [], []
            t_start = time.perf_counter()
            while True:
                for _ in range(peer.period):
                    w, c = peer.step()
                    wall.append(w)
                    cpu.append(c)
                if time.perf_counter() - t_start >= min_time:
                    break
            if peer.period > 1:  # averages over whole periods (one neighbour-list rebuild each)
                wall = [float(np.mean(wall[i : i + peer.period])) for i in range(0, len(wall), peer.period)]
                cpu = [float(np.mean(cpu[i : i + peer.period])) for i in range(0, len(cpu), peer.period)]
            out["steps"][peer.name].extend(wall)
            out["cpu"][peer.name].extend(cpu)
            out["round_medians"][peer.name].append(statistics.median(wall))
            out["round_cpu"][peer.name].append(statistics.median(cpu))
    return out


def ratio(result: dict, a: str, b: str, key: str = "round_medians") -> float | None:
    """median over rounds of (round median of a) / (round median of b)"""
    ra, rb = result[key].get(a), result[key].get(b)
    if not ra or not rb:
        return None
    return statistics.median(x / y for x, y in zip(ra, rb))


def run_size(plumed, repeats, args, workdir: Path) -> dict:
    from molenv import plumed_env

    system, positions = build_system(repeats)
    nmol, natoms = system.n_molecules, system.n_atoms
    box = system.box_vectors()  # rows, Angstrom (OpenMM's reduced form; rectangular for urea I)
    model = model_file(workdir)
    label = "x".join(map(str, repeats))
    print(f"\n== urea form I {label}: {nmol} molecules, {natoms} atoms, box {np.round(np.diag(box), 2).tolist()} A", flush=True)
    load_before = os.getloadavg()

    modules = {"molenv": str(plumed_env.module_path())}
    for extra in args.extra_module:
        name, _, path = extra.partition("=")
        modules[name] = str(Path(path).resolve())
    peers = []
    restraint = "RESTRAINT ARG=c.f_I AT=0.5 KAPPA=100"
    for mod_name, lib in modules.items():
        for t in args.threads:
            action = f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-{natoms} NUM_THREADS={t} TIMINGS"
            name = f"{mod_name} T={t}"
            peers.append(PlumedPeer(plumed, name, ["UNITS LENGTH=A", f"LOAD FILE={lib}", action, restraint], positions, box,
                                    workdir / f"{name.replace(' ', '_').replace('=', '')}.log"))
    if not args.no_values_only:
        # without a consumer PLUMED would skip the action: PRINT one component (one short line per step)
        action = f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-{natoms} NUM_THREADS=1"
        lines = ["UNITS LENGTH=A", f"LOAD FILE={modules['molenv']}", action, f"PRINT ARG=c.f_I FILE={workdir / 'colvar'}"]
        peers.append(PlumedPeer(plumed, "molenv T=1 no bias", lines, positions, box,
                                workdir / "values_only.log"))
    if not args.no_coordination:
        centres = ",".join(str(8 * m + 1) for m in range(nmol))  # C, the descriptor centre
        switch = f"SWITCH={{COSINUS R_0={CUTOFF['rmax'] - CUTOFF['rmin']:.1f} D_0={CUTOFF['rmin']}}}"
        lines = ["UNITS LENGTH=A", f"cen: GROUP ATOMS={centres}",
                 f"c: COORDINATION GROUPA=cen {switch} NLIST NL_CUTOFF={CUTOFF['rmax'] + 1.0} NL_STRIDE={NL_STRIDE}",
                 "RESTRAINT ARG=c AT=0 KAPPA=0.001"]
        peers.append(PlumedPeer(plumed, "COORDINATION", lines, positions, box, workdir / "coordination.log", period=NL_STRIDE))
    openmm_info = {}
    if not args.no_openmm:
        t0 = time.perf_counter()
        mm = openmm_system(system, OUT / "openmm" / label)
        for t in args.threads:
            peer = OpenMMPeer(mm, positions, t)
            peers.append(peer)
            openmm_info = peer.describe()
        openmm_info["setup_s"] = time.perf_counter() - t0
    result = measure(peers, args.rounds, args.min_time)

    logs = {}
    for peer in peers:
        if isinstance(peer, PlumedPeer):
            logs[peer.name] = peer.close()
    # the bias must have produced forces (derivatives were really computed)
    for peer in peers:
        if isinstance(peer, PlumedPeer) and peer.biased and peer.name != "COORDINATION":
            if not np.abs(peer.forces).max() > 0:
                raise RuntimeError(f"{peer.name}: the restraint produced no forces")
    load_after = os.getloadavg()

    rows = {}
    for name, steps in result["steps"].items():
        med, best, cpu = statistics.median(steps), min(steps), statistics.median(result["cpu"][name])
        rows[name] = {"median_ms": 1e3 * med, "min_ms": 1e3 * best, "median_us_per_molecule": 1e6 * med / nmol,
                      "min_us_per_molecule": 1e6 * best / nmol, "median_cpu_ms": 1e3 * cpu, "samples": len(steps)}
        if name in logs:
            stages = timings_from_log(logs[name])
            if stages:
                rows[name]["stages_us_per_molecule"] = stages
    ratios = {}
    for t in args.threads:
        me = f"molenv T={t}"
        if not args.no_coordination:
            ratios[f"{me} / COORDINATION"] = ratio(result, me, "COORDINATION")
        if not args.no_openmm:
            ratios[f"{me} / openmm T={t}"] = ratio(result, me, f"openmm T={t}")
        for name in modules:
            if name != "molenv":
                ratios[f"{me} / {name} T={t}"] = ratio(result, me, f"{name} T={t}")
    if 1 in args.threads and 2 in args.threads:
        ratios["molenv speed-up T=2 vs T=1"] = ratio(result, "molenv T=1", "molenv T=2")
        if not args.no_openmm:
            ratios["openmm speed-up T=2 vs T=1"] = ratio(result, "openmm T=1", "openmm T=2")
    if not args.no_values_only:
        ratios["molenv T=1 with forces / no bias"] = ratio(result, "molenv T=1", "molenv T=1 no bias")
    # single-thread peers by CPU time: not inflated by time slices lost to other processes
    if 1 in args.threads:
        if not args.no_coordination:
            ratios["CPU time: molenv T=1 / COORDINATION"] = ratio(result, "molenv T=1", "COORDINATION", "round_cpu")
        if not args.no_openmm:
            ratios["CPU time: molenv T=1 / openmm T=1"] = ratio(result, "molenv T=1", "openmm T=1", "round_cpu")
        for name in modules:
            if name != "molenv":
                ratios[f"CPU time: molenv T=1 / {name} T=1"] = ratio(result, "molenv T=1", f"{name} T=1", "round_cpu")
    for name, row in rows.items():
        print(f"  {name:20s} median {row['median_ms']:9.2f} ms  min {row['min_ms']:9.2f} ms  CPU {row['median_cpu_ms']:9.2f} ms  "
              f"{row['median_us_per_molecule']:7.2f} (min {row['min_us_per_molecule']:.2f}) us/molecule  n={row['samples']}")
    for name, value in ratios.items():
        print(f"  {name:44s} {value:8.3f}" if value is not None else f"  {name}: n/a")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}", flush=True)
    return {"repeats": list(repeats), "molecules": nmol, "atoms": natoms, "box_A": np.round(np.diag(box), 3).tolist(),
            "load_average_before": load_before, "load_average_after": load_after, "peers": rows, "ratios": ratios,
            "openmm": openmm_info, "round_medians_ms": {k: [1e3 * x for x in v] for k, v in result["round_medians"].items()},
            "round_cpu_ms": {k: [1e3 * x for x in v] for k, v in result["round_cpu"].items()}}


def cpu_description() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(results: dict, threads: list[int]) -> str:
    """One row per size and thread count: the action's step time and its ratios to the peers."""
    def num(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    lines = ["| molecules | threads | molenv ms/step | molenv us/molecule | molenv / COORDINATION | molenv / OpenMM force call | "
             "COORDINATION ms/step | OpenMM ms/step |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        for t in threads:
            row = size["peers"].get(f"molenv T={t}")
            if row is None:
                continue
            coord = size["peers"].get("COORDINATION", {})
            omm = size["peers"].get(f"openmm T={t}", {})
            lines.append(" | ".join([
                f"| {size['molecules']}", str(t),
                f"{row['median_ms']:.2f} (min {row['min_ms']:.2f})",
                f"{row['median_us_per_molecule']:.2f} (min {row['min_us_per_molecule']:.2f})",
                num(size["ratios"].get(f"molenv T={t} / COORDINATION"), ".3f"),
                num(size["ratios"].get(f"molenv T={t} / openmm T={t}"), ".3f"),
                num(coord.get("median_ms"), ".2f"), num(omm.get("median_ms"), ".1f") + " |"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="504,3456,27648", help="comma separated: 504, 3456, 27648 or n1xn2xn3 cells")
    parser.add_argument("--threads", default="1,2", help="comma separated thread counts (action NUM_THREADS, OpenMM Threads)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per configuration and round (at least one step)")
    parser.add_argument("--no-openmm", action="store_true")
    parser.add_argument("--no-coordination", action="store_true")
    parser.add_argument("--no-values-only", action="store_true", help="skip the action without a bias")
    parser.add_argument("--extra-module", action="append", default=[], metavar="LABEL=PATH", help="also time this build of the module")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--markdown", action="store_true", help="print the summary table in Markdown")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not REFERENCE.is_dir():
        print(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)", file=sys.stderr)
        return 1
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    plumed = import_plumed()
    results = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "cpu": cpu_description(), "cpu_count": os.cpu_count(),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "sizes": []}
    try:
        import openmm

        results["openmm"] = openmm.__version__
    except ImportError:
        if not args.no_openmm:
            print("OpenMM is not installed: skipping the OpenMM peer", file=sys.stderr)
            args.no_openmm = True
    print(f"{results['cpu']}, {results['cpu_count']} cores, OMP_WAIT_POLICY={results['omp_wait_policy']}, load average {os.getloadavg()}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="molenv-bench-") as tmp:
        for repeats in sizes:
            workdir = Path(tmp) / "x".join(map(str, repeats))
            workdir.mkdir()
            results["sizes"].append(run_size(plumed, repeats, args, workdir))
    results["wall_s"] = time.perf_counter() - t0
    if args.markdown:
        print()
        print(markdown(results, args.threads))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\ntotal {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
