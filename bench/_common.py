"""What the benchmarks of MOLENV_CLASSIFY in an MD step share (bench/plumed_action.py,
bench/gnn_action.py): the PLUMED kernel and module they load, one PLUMED instance per
configuration fed through the Python interface, the OpenMM force call of the same system,
the interleaved measurement and its ratios, and the record of the machine and software.

Every peer has a ``name`` and a ``step()`` that returns (wall time, CPU time of the process,
CPU time of the calling thread) of one step; `measure` interleaves the peers step by step
and `ratio` takes the median over cycles of the ratio of two peers' steps of the same cycle.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))
OUT = REPO / "bench" / "out"
OPTIMISED = OUT / "plumed-O3"  # bench/optimised_kernel.sh: the bundled kernel's sources built with -O3
OPENMM_CUTOFF = 9.0  # Angstrom, as molenv simulate (MDSettings.cutoff)
FORM_I = {"urea": "urea/formI.cif", "nicotinamide": "nicotinamide/NICOAM13.pdb"}  # under REFERENCE


# ---------------------------------------------------------------------------------------
# systems


def noisy_crystal(spec_name: str, structure: Path, repeats=None, min_height: float = 20.0, jitter: float = 0.05, seed: int = 2024):
    """A periodic supercell (`molenv.simulate.systems.crystal_system`: molecules whole, atoms
    in spec order) and its positions (n_atoms, 3; Angstrom) with Gaussian noise of ``jitter``."""
    from molenv.simulate.systems import crystal_system
    from molenv.spec import load_spec

    system = crystal_system(load_spec(spec_name), structure, min_height=min_height, repeats=repeats)
    rng = np.random.default_rng(seed)
    positions = system.positions.reshape(-1, 3) + rng.normal(scale=jitter, size=(system.n_atoms, 3))
    return system, np.ascontiguousarray(positions)


# ---------------------------------------------------------------------------------------
# PLUMED


def add_plumed_arguments(parser) -> None:
    """The options that choose the PLUMED kernel, the module and the OpenMP waiting policy."""
    parser.add_argument("--kernel", metavar="PATH", help="PLUMED kernel (default: bench/out/plumed-O3, built by bench/optimised_kernel.sh, "
                        "where it exists, else the one the module was built against)")
    parser.add_argument("--bundled-kernel", action="store_true", help="use the kernel the module was built against even where bench/out/plumed-O3 exists")
    parser.add_argument("--module", metavar="PATH", help="the build of MOLENV_CLASSIFY to time (default: bench/out/plumed-O3's with that "
                        "kernel, else the one of `make module`)")
    parser.add_argument("--spin-count", type=int, metavar="N",
                        help="GOMP_SPINCOUNT: idle OpenMP threads spin N times before they sleep (libgomp; e.g. 20000, some "
                             "microseconds), instead of OMP_WAIT_POLICY=passive (sleep at once, the default here)")


def thread_environment(spin_count: int | None) -> None:
    """OpenMP waiting policy and BLAS threads, set before any OpenMP runtime starts."""
    if spin_count is not None:
        os.environ["GOMP_SPINCOUNT"] = str(spin_count)  # libgomp: takes precedence over the policy
    else:
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS threads would compete for the cores


def choose_kernel(args) -> None:
    """Set PLUMED_KERNEL and args.module: the optimised build of bench/optimised_kernel.sh and
    the module compiled against it where they exist (unless --bundled-kernel or a kernel is
    given), else the kernel and module of `make install`."""
    from molenv.plumed.kernel import installed, module_path

    optimised = (OPTIMISED / "lib" / "libplumedKernel.so", OPTIMISED / "libmolenv_plumed.so")
    if args.kernel:
        os.environ["PLUMED_KERNEL"] = str(Path(args.kernel).resolve())
    elif not args.bundled_kernel and "PLUMED_KERNEL" not in os.environ and all(p.is_file() for p in optimised):
        os.environ["PLUMED_KERNEL"] = str(optimised[0])
        args.module = args.module or str(optimised[1])
    os.environ.setdefault("PLUMED_KERNEL", installed().kernel)
    args.module = str(Path(args.module).resolve()) if args.module else str(module_path())


def import_plumed():
    """The `plumed` Python wrapper on the chosen kernel (`choose_kernel`), with the kernel's
    symbols global so that LOAD can link the module against them."""
    os.environ["PLUMED_LOAD_NAMESPACE"] = "GLOBAL"
    import plumed

    return plumed


def kernel_cxxflags(kernel: str) -> str | None:
    """The compiler flags a PLUMED kernel was built with (its installed config.txt)."""
    config = Path(kernel).resolve().parent / "plumed" / "src" / "config" / "config.txt"
    if not config.is_file():
        return None
    for line in config.read_text().splitlines():
        if line.startswith("makefile_conf CXXFLAGS="):
            return line.split("=", 1)[1].strip()
    return None


class PlumedPeer:
    """One plumed.Plumed instance fed the same coordinates at every step."""

    def __init__(self, plumed, name: str, lines: list[str], positions: np.ndarray, box: np.ndarray, log: Path, threads: int = 1):
        self.name, self.log, self.threads = name, log, threads
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

    def step(self) -> tuple[float, float, float]:
        """(wall time, CPU time of this process, CPU time of this thread) of one calc"""
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
        m0, c0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        p.cmd("calc")
        t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
        if self.step_no == 0:
            self.first_s = t1 - t0  # the step that builds the neighbour lists
        self.step_no += 1
        return t1 - t0, c1 - c0, m1 - m0

    def close(self) -> str:
        self.p.finalize()
        return self.log.read_text()


def timings_from_log(text: str) -> tuple[dict, float | None, int | None]:
    """The action's TIMINGS report: ({stage: us per molecule and step}, the action's total
    seconds, its number of steps)."""
    out, steps, total_s = {}, None, None
    for line in text.splitlines():
        body = line.replace("PLUMED:", "").strip()
        if "MOLENV_CLASSIFY" in body and "timings:" in body:
            steps = int(body.split("timings:")[1].split()[0])
            continue
        if steps is not None:
            if "us/molecule/step" not in body:
                break
            name = body.split("  ")[0].strip()
            out[name] = float(body.split()[-2])
            if name == "total":
                total_s = float(body.split()[-4])
    return out, total_s, steps


# ---------------------------------------------------------------------------------------
# OpenMM


def openmm_system(system, directory: Path, atom_types: str = "gaff", charges: str = "bcc"):
    """Topology (`molenv.simulate.parametrise` + tleap, cached in ``directory``) and an
    OpenMM System with PME, the settings of molenv simulate."""
    import openmm
    from openmm import app, unit

    from molenv.simulate.parametrise import parametrise

    directory.mkdir(parents=True, exist_ok=True)
    prmtop_path = directory / "system.prmtop"
    if not prmtop_path.exists():
        ff = parametrise(system.spec, atom_types=atom_types, charges=charges)
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

        self.name, self.threads = f"openmm T={threads}", threads
        self.system = copy.deepcopy(mm_system)  # kept alive with the context
        self.integrator = openmm.VerletIntegrator(0.001)
        self.context = openmm.Context(self.system, self.integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
        self.context.setPositions(positions / 10.0 * unit.nanometer)
        self.pme = next(f for f in self.system.getForces() if isinstance(f, openmm.NonbondedForce))

    def step(self) -> tuple[float, float, float]:
        m0, c0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        self.context.getState(getForces=True, getEnergy=True)
        t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
        return t1 - t0, c1 - c0, m1 - m0

    def describe(self) -> dict:
        info = {"cutoff_nm": self.pme.getCutoffDistance().value_in_unit(self.pme.getCutoffDistance().unit),
                "ewald_error_tolerance": self.pme.getEwaldErrorTolerance(), "atoms": self.system.getNumParticles()}
        try:
            alpha, nx, ny, nz = self.pme.getPMEParametersInContext(self.context)
            info.update(pme_alpha_per_nm=alpha, pme_grid=[nx, ny, nz])
        except Exception:  # some OpenMM builds cannot map the force to the context from Python
            pass
        return info


# ---------------------------------------------------------------------------------------
# measurement


def measure(peers: list, rounds: int, min_time: float) -> dict:
    """Interleaved at the finest grain: a cycle runs every peer for one step, and the
    rounds repeat cycles for about min_time seconds per peer.  Returns per peer the wall,
    process-CPU and main-thread-CPU times of every cycle, and the first (untimed) step."""
    out = {key: {peer.name: [] for peer in peers} for key in ("steps", "cpu", "main")}
    out["first"] = {}
    for peer in peers:  # warm-up: first step (setup, first neighbour lists) not counted
        out["first"][peer.name] = peer.step()[0]
    for _ in range(rounds):
        t_start = time.perf_counter()
        while True:
            for peer in peers:
                w, c, m = peer.step()
                out["steps"][peer.name].append(w)
                out["cpu"][peer.name].append(c)
                out["main"][peer.name].append(m)
            if time.perf_counter() - t_start >= min_time * len(peers):
                break
    return out


def ratio(result: dict, a: str, b: str, key: str = "steps") -> float | None:
    """median over cycles of (step time of a) / (step time of b), both from the same cycle"""
    ra, rb = result[key].get(a), result[key].get(b)
    if not ra or not rb:
        return None
    return statistics.median(x / y for x, y in zip(ra, rb))


def idle_speedup(result: dict, one: str, two: str) -> float | None:
    """Speed-up of `two` (2 threads) over `one` expected on idle cores from CPU times: CPU
    time of `one` / max(main thread, other threads) of `two`, medians over cycles."""
    if one not in result["cpu"] or two not in result["cpu"]:
        return None
    crit = [max(m, c - m) for c, m in zip(result["cpu"][two], result["main"][two])]
    return statistics.median(result["cpu"][one]) / statistics.median(crit)


def step_row(steps: list[float], cpu: list[float], first_s: float | None, nmol: int) -> dict:
    """Median and minimum step time (ms, us per molecule), median CPU time, first step, samples."""
    med, best, cpu_med = statistics.median(steps), min(steps), statistics.median(cpu)
    return {"median_ms": 1e3 * med, "min_ms": 1e3 * best, "median_us_per_molecule": 1e6 * med / nmol,
            "min_us_per_molecule": 1e6 * best / nmol, "median_cpu_ms": 1e3 * cpu_med,
            "median_cpu_us_per_molecule": 1e6 * cpu_med / nmol, "first_step_s": first_s, "samples": len(steps)}


def step_rows(result: dict, logs: dict, first_s: dict, nmol: int) -> dict:
    """`step_row` of every configuration of `measure`'s result; where a PLUMED log (`logs`,
    by name) holds the action's TIMINGS, also its stages and its own time per step against
    the rest of PLUMED's."""
    rows = {}
    for name, steps in result["steps"].items():
        rows[name] = step_row(steps, result["cpu"][name], result["first"][name], nmol)
        stages, total_s, n_steps = timings_from_log(logs.get(name, ""))
        if stages:
            rows[name]["stages_us_per_molecule"] = stages
            # the action's mean over the steps after the first (which builds the neighbour list;
            # the few other untimed warm-up steps are ordinary ones): the mean timed step is
            # that plus PLUMED's own work around the action (data sharing, bias, forces)
            action_ms = 1e3 * (total_s - first_s[name]) / (n_steps - 1)
            rows[name]["action_ms_per_step"] = action_ms
            rows[name]["outside_action_ms_per_step"] = 1e3 * statistics.fmean(steps) - action_ms
    return rows


# ---------------------------------------------------------------------------------------
# the record of a run


def print_ratios(ratios: dict, load_before, load_after) -> None:
    """The ratios of one size or system and the load average around its measurement."""
    for name, value in ratios.items():
        print(f"  {name:62s} {value:8.3f}" if value is not None else f"  {name}: n/a")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}", flush=True)


def step_times_ms(result: dict) -> dict:
    """`measure`'s per-step wall and CPU times of every configuration, in ms (the JSON record)."""
    return {"step_ms": {k: [round(1e3 * x, 4) for x in v] for k, v in result["steps"].items()},
            "step_cpu_ms": {k: [round(1e3 * x, 4) for x in v] for k, v in result["cpu"].items()}}


def num(x, fmt: str) -> str:
    """A number of a markdown table, n/a for a missing one."""
    return "n/a" if x is None else format(x, fmt)


def machine_record() -> dict:
    """The command, the CPU, the OpenMP waiting policy and the date of this run."""
    from molenv.hardware import cpu_description

    return {"command": " ".join([Path(sys.executable).name, *sys.argv]), "cpu": cpu_description(), "cpu_count": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def software_record(results: dict, args) -> None:
    """Add the commit, OpenMM's version (or set args.no_openmm where it is missing), the
    PLUMED kernel and the module to ``results``, and print them."""
    try:
        results["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    try:
        import openmm

        results["openmm"] = openmm.__version__
    except ImportError:
        if not args.no_openmm:
            print("OpenMM is not installed: skipping the OpenMM peer", file=sys.stderr)
            args.no_openmm = True
    results["plumed_kernel"] = os.environ["PLUMED_KERNEL"]
    results["plumed_kernel_cxxflags"] = kernel_cxxflags(results["plumed_kernel"])
    print(f"{results['cpu']}, {results['cpu_count']} cores, OMP_WAIT_POLICY={results['omp_wait_policy']}, "
          f"GOMP_SPINCOUNT={results['gomp_spincount']}, load average {os.getloadavg()}")
    print(f"PLUMED kernel {results['plumed_kernel']}, compiled with {results['plumed_kernel_cxxflags']}; module {args.module}")
    if results["plumed_kernel_cxxflags"] is not None and "-O" not in results["plumed_kernel_cxxflags"]:
        print("  this kernel is not optimised (no -O flag): COORDINATION and PLUMED's own work around the action are much slower "
              "than in a production build; bench/optimised_kernel.sh builds an optimised one", flush=True)
    results["module"] = args.module
