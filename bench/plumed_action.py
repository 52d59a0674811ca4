"""Cost of MOLENV_CLASSIFY per MD step, with forces, on urea form I supercells, measured
side by side with peers in the same process and the same run:

* PLUMED's own ``COORDINATION`` over the same molecule centres (the C atoms) with the same
  cutoff function (``SWITCH={COSINUS R_0=0.2 D_0=9.8}`` in Angstrom: 1 up to 9.8 A, cosine
  to 0 at 10 A, exactly the descriptors' fc) and a neighbour list
  ``NLIST NL_CUTOFF=11.0 NL_STRIDE=1000000``: built at the first (untimed) step and reused
  at every timed step, like the action's own Verlet list (PLUMED's neighbour-list build is
  an O(N^2) search: its time is reported separately as ``first_step_s``). Above
  ``--coordination-max`` centres (default 5000) it is skipped: PLUMED's neighbour list
  starts from all N(N-1)/2 candidate pairs (3 GB and minutes of set-up for 27,648 centres
  in this kernel), and without NLIST a step loops over those 382 million pairs;
* the force and energy evaluation of the same system in OpenMM on the CPU platform
  (``context.getState(getForces=True, getEnergy=True)``): GAFF + AM1-BCC urea
  (``molenv.simulate.parametrise``), tleap topology (cached in bench/out/openmm), PME with
  a 9 A cutoff and ewaldErrorTolerance 5e-4, HBonds constraints (the settings of
  ``molenv simulate``), ``Threads`` = 1 and 2;
* a trivially parallel OpenMP loop (compiled here with the module's compiler) with 1 and 2
  threads, sized like the action's step: its speed-up is what the machine offered during
  the run, the reference for the action's 2-thread speed-up on a shared machine.

The action runs with a bias on one component (``RESTRAINT ARG=c.f_I``), so that every
step computes derivatives and applies forces; it is also timed without any bias (values
only) and with ``NL_SKIN=0`` (neighbour search at every step instead of the default
Verlet list). Every PLUMED configuration is its own ``plumed.Plumed`` instance in this
process, fed the same coordinates through the Python interface; a step's time is the wall
time of ``cmd("calc")`` (PLUMED's data sharing, the action, the bias and the force
scattering; no file I/O). Positions are the ideal crystal plus Gaussian noise of 0.05 A,
the same in every configuration and at every step: like OpenMM, the action and
COORDINATION therefore reuse their neighbour lists at every timed step.

The machine is shared, so timings are noisy: the configurations are interleaved at the
finest grain (a cycle runs every configuration for one step), cycles are repeated for
``--rounds`` x ``--min-time`` seconds per configuration, and the first step of each
configuration is discarded. The report gives per configuration the median and minimum
step time (wall clock) and the median CPU time of the process per step, and every ratio
as the median over cycles of the ratio of the two step times of the same cycle. CPU-time
ratios of single-thread configurations are given too: they do not count time slices lost
to other processes. For 2 threads, the CPU time of the main thread is recorded as well:
total CPU / max(main, other threads) per step estimates the speed-up on idle cores. The
load average is recorded before and after each size.

    .venv/bin/python bench/plumed_action.py                  # 504, 3456, 27648 molecules
    .venv/bin/python bench/plumed_action.py --sizes 504 --rounds 3 --no-openmm
    .venv/bin/python bench/plumed_action.py --json bench/out/plumed_action.json --markdown

Options: ``--threads 1,2`` (NUM_THREADS of the action and Threads of OpenMM),
``--extra-module LABEL=PATH`` (also time another build of the module, e.g. an older one,
as a peer), ``--no-openmm``, ``--no-coordination``, ``--no-extras`` (only the biased
action and the peers).  Sizes are molecule counts of urea form I supercells: 504 (6x6x7
cells), 3456 (12x12x12), 27648 (24x24x24); other supercells can be given as
``--sizes 6x6x6``.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (FORM_I, OUT, REFERENCE, OpenMMPeer, PlumedPeer, add_plumed_arguments, choose_kernel, idle_speedup, import_plumed,
                     machine_record, measure, noisy_crystal, num, openmm_system, print_ratios, ratio, software_record, step_rows, step_times_ms,
                     thread_environment)

SIZES = {"504": (6, 6, 7), "3456": (12, 12, 12), "27648": (24, 24, 24)}
JITTER = 0.05  # Angstrom
CUTOFF = {"rmin": 9.8, "rmax": 10.0}  # urea reference model, METHOD.md section 2


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
    return noisy_crystal("urea", REFERENCE / FORM_I["urea"], repeats=repeats, jitter=JITTER)


def model_file(directory: Path) -> Path:
    from molenv.modelfile import write_model
    from molenv.reference import shipped_reference_model

    path = directory / "urea_ref.molenv"
    write_model(shipped_reference_model("urea", REFERENCE), path)
    return path


# ---------------------------------------------------------------------------------------
# reference: what parallel speed-up the machine offers right now

REFERENCE_LOOP = r"""
#include <omp.h>
extern "C" double molenv_bench_loop(int threads, long n) {
  double total = 0.0;
  #pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    double s = 0.0;
    #pragma omp for schedule(static)
    for (long i = 0; i < n; ++i) s += 1.0 / (1.0 + (double)i);
    total += s;
  }
  return total;
}
"""


def reference_library(directory: Path):
    src, lib = directory / "loop.cpp", directory / "libloop.so"
    src.write_text(REFERENCE_LOOP)
    cxx = os.environ.get("CXX", "g++")
    subprocess.run([cxx, "-O2", "-fopenmp", "-fPIC", "-shared", str(src), "-o", str(lib)], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.molenv_bench_loop.restype = ctypes.c_double
    dll.molenv_bench_loop.argtypes = [ctypes.c_int, ctypes.c_long]
    return dll


class LoopPeer:
    """The same amount of trivially parallel work with `threads` threads."""

    def __init__(self, dll, threads: int, seconds: float):
        self.name, self.threads, self.dll = f"parallel loop T={threads}", threads, dll
        t0 = time.process_time()
        dll.molenv_bench_loop(1, 10_000_000)
        per_item = max((time.process_time() - t0) / 1e7, 1e-10)
        self.n = max(100_000, int(seconds / per_item))

    def step(self) -> tuple[float, float, float]:
        m0, c0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        self.dll.molenv_bench_loop(self.threads, self.n)
        t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
        return t1 - t0, c1 - c0, m1 - m0


def run_size(plumed, repeats, args, workdir: Path, loop_dll) -> dict:
    system, positions = build_system(repeats)
    nmol, natoms = system.n_molecules, system.n_atoms
    box = system.box_vectors()  # rows, Angstrom (OpenMM's reduced form; rectangular for urea I)
    model = model_file(workdir)
    label = "x".join(map(str, repeats))
    print(f"\n== urea form I {label}: {nmol} molecules, {natoms} atoms, box {np.round(np.diag(box), 2).tolist()} A", flush=True)
    load_before = os.getloadavg()

    modules = {"molenv": args.module}
    for extra in args.extra_module:
        name, _, path = extra.partition("=")
        modules[name] = str(Path(path).resolve())
    peers = []
    restraint = "RESTRAINT ARG=c.f_I AT=0.5 KAPPA=100"
    logname = lambda name: workdir / (name.replace(" ", "_").replace("=", "") + ".log")  # noqa: E731
    for mod_name, lib in modules.items():
        for t in args.threads:
            action = f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-{natoms} NUM_THREADS={t} TIMINGS"
            name = f"{mod_name} T={t}"
            peers.append(PlumedPeer(plumed, name, ["UNITS LENGTH=A", f"LOAD FILE={lib}", action, restraint], positions, box, logname(name), t))
    lib = modules["molenv"]
    if not args.no_extras:
        # without a consumer PLUMED would skip the action: PRINT one component (one short line per step)
        action = f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-{natoms} NUM_THREADS=1 TIMINGS"
        lines = ["UNITS LENGTH=A", f"LOAD FILE={lib}", action, f"PRINT ARG=c.f_I FILE={workdir / 'colvar'}"]
        peers.append(PlumedPeer(plumed, "molenv T=1 no bias", lines, positions, box, logname("values only")))
        action = f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-{natoms} NUM_THREADS=1 NL_SKIN=0 TIMINGS"
        peers.append(PlumedPeer(plumed, "molenv T=1 NL_SKIN=0", ["UNITS LENGTH=A", f"LOAD FILE={lib}", action, restraint], positions, box,
                                logname("nl_skin_0")))
    if not args.no_coordination and nmol > args.coordination_max:
        print(f"  COORDINATION skipped: {nmol} centres > --coordination-max {args.coordination_max} "
              f"({nmol * (nmol - 1) // 2:,} candidate pairs for PLUMED's O(N^2) neighbour list)", flush=True)
    if not args.no_coordination and nmol <= args.coordination_max:
        centres = ",".join(str(8 * m + 1) for m in range(nmol))  # C, the descriptor centre
        switch = f"SWITCH={{COSINUS R_0={CUTOFF['rmax'] - CUTOFF['rmin']:.1f} D_0={CUTOFF['rmin']}}}"
        lines = ["UNITS LENGTH=A", f"cen: GROUP ATOMS={centres}",
                 f"c: COORDINATION GROUPA=cen {switch} NLIST NL_CUTOFF={CUTOFF['rmax'] + 1.0} NL_STRIDE=1000000",
                 "RESTRAINT ARG=c AT=0 KAPPA=0.001"]
        peers.append(PlumedPeer(plumed, "COORDINATION", lines, positions, box, workdir / "coordination.log"))
    openmm_info = {}
    if not args.no_openmm:
        t0 = time.perf_counter()
        mm = openmm_system(system, OUT / "openmm" / label)
        for t in args.threads:
            peer = OpenMMPeer(mm, positions, t)
            peers.append(peer)
            openmm_info = peer.describe()
        openmm_info["setup_s"] = time.perf_counter() - t0
    if loop_dll is not None:
        # as much work as the action's single-thread step (timed once here)
        probe = peers[0]
        probe.step()
        seconds = min(probe.step()[1], 2.0)
        for t in args.threads:
            peers.append(LoopPeer(loop_dll, t, seconds))
    result = measure(peers, args.rounds, args.min_time)

    logs = {peer.name: peer.close() for peer in peers if isinstance(peer, PlumedPeer)}
    first_s = {peer.name: peer.first_s for peer in peers if isinstance(peer, PlumedPeer)}
    # the bias must have produced forces (derivatives were really computed)
    for peer in peers:
        if isinstance(peer, PlumedPeer) and peer.biased and peer.name != "COORDINATION" and not np.abs(peer.forces).max() > 0:
            raise RuntimeError(f"{peer.name}: the restraint produced no forces")
    load_after = os.getloadavg()

    rows = step_rows(result, logs, first_s, nmol)
    ratios = {}
    for t in args.threads:
        me = f"molenv T={t}"
        if "COORDINATION" in result["steps"]:
            ratios[f"{me} / COORDINATION"] = ratio(result, me, "COORDINATION")
        if not args.no_openmm:
            ratios[f"{me} / openmm T={t}"] = ratio(result, me, f"openmm T={t}")
        for name in modules:
            if name != "molenv":
                ratios[f"{me} / {name} T={t}"] = ratio(result, me, f"{name} T={t}")
    for t in (t for t in args.threads if t > 1 and 1 in args.threads):
        ratios[f"molenv speed-up T={t} vs T=1"] = ratio(result, "molenv T=1", f"molenv T={t}")
        # the action alone, from its TIMINGS (means after the first step): the step also holds
        # PLUMED's own serial work (data sharing, force scattering), the same at any T
        one, many = (rows.get(f"molenv T={n}", {}).get("action_ms_per_step") for n in (1, t))
        if one and many:
            ratios[f"molenv speed-up T={t} vs T=1, action alone (TIMINGS means)"] = one / many
        if t == 2:
            ratios["molenv speed-up T=2 vs T=1 upper bound on idle cores (CPU times)"] = idle_speedup(result, "molenv T=1", "molenv T=2")
        if not args.no_openmm:
            ratios[f"openmm speed-up T={t} vs T=1"] = ratio(result, "openmm T=1", f"openmm T={t}")
        if loop_dll is not None:
            ratios[f"parallel loop speed-up T={t} vs T=1 (what the machine offered)"] = ratio(result, "parallel loop T=1", f"parallel loop T={t}")
    if not args.no_extras:
        ratios["molenv T=1 with forces / no bias"] = ratio(result, "molenv T=1", "molenv T=1 no bias")
        ratios["molenv T=1 NL_SKIN=0 / default"] = ratio(result, "molenv T=1 NL_SKIN=0", "molenv T=1")
    # single-thread peers by CPU time: not inflated by time slices lost to other processes
    if 1 in args.threads:
        if "COORDINATION" in result["steps"]:
            ratios["CPU time: molenv T=1 / COORDINATION"] = ratio(result, "molenv T=1", "COORDINATION", "cpu")
        if not args.no_openmm:
            ratios["CPU time: molenv T=1 / openmm T=1"] = ratio(result, "molenv T=1", "openmm T=1", "cpu")
        if not args.no_extras and not args.no_openmm:
            ratios["CPU time: molenv T=1 NL_SKIN=0 / openmm T=1"] = ratio(result, "molenv T=1 NL_SKIN=0", "openmm T=1", "cpu")
        for name in modules:
            if name != "molenv":
                ratios[f"CPU time: molenv T=1 / {name} T=1"] = ratio(result, "molenv T=1", f"{name} T=1", "cpu")
    for name, row in rows.items():
        print(f"  {name:24s} median {row['median_ms']:9.2f} ms  min {row['min_ms']:9.2f} ms  CPU {row['median_cpu_ms']:9.2f} ms  "
              f"{row['median_us_per_molecule']:7.2f} (min {row['min_us_per_molecule']:.2f}) us/molecule  first {row['first_step_s']:.2f} s  "
              f"n={row['samples']}")
        if row.get("action_ms_per_step") is not None:
            print(f"  {'':24s} mean: the action {row['action_ms_per_step']:.2f} ms (TIMINGS, after the first step), "
                  f"PLUMED outside it {row['outside_action_ms_per_step']:.2f} ms")
    print_ratios(ratios, load_before, load_after)
    return {"repeats": list(repeats), "molecules": nmol, "atoms": natoms, "box_A": np.round(np.diag(box), 3).tolist(),
            "load_average_before": load_before, "load_average_after": load_after, "peers": rows, "ratios": ratios,
            "openmm": openmm_info, **step_times_ms(result)}


def markdown(results: dict, threads: list[int]) -> str:
    """One row per size and thread count: the action's step time and its ratios to the peers."""
    lines = ["| molecules | threads | molenv ms/step | molenv us/molecule | molenv / COORDINATION | molenv / OpenMM force call | "
             "molenv CPU / OpenMM CPU | COORDINATION ms/step | OpenMM ms/step | molenv speed-up vs 1 thread | parallel loop speed-up |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
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
                num(size["ratios"].get("CPU time: molenv T=1 / openmm T=1") if t == 1 else None, ".3f"),
                num(coord.get("median_ms"), ".2f"), num(omm.get("median_ms"), ".1f"),
                num(size["ratios"].get(f"molenv speed-up T={t} vs T=1"), ".2f"),
                num(size["ratios"].get(f"parallel loop speed-up T={t} vs T=1 (what the machine offered)"), ".2f") + " |"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="504,3456,27648", help="comma separated: 504, 3456, 27648 or n1xn2xn3 cells")
    parser.add_argument("--threads", default="1,2", help="comma separated thread counts (action NUM_THREADS, OpenMM Threads)")
    parser.add_argument("--rounds", type=int, default=5, help="measurement rounds")
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per configuration and round (at least one cycle)")
    parser.add_argument("--no-openmm", action="store_true")
    parser.add_argument("--no-coordination", action="store_true")
    parser.add_argument("--coordination-max", type=int, default=5000, help="skip COORDINATION above this many molecules")
    parser.add_argument("--no-extras", action="store_true", help="skip the action without a bias, with NL_SKIN=0 and the parallel loop")
    add_plumed_arguments(parser)
    parser.add_argument("--extra-module", action="append", default=[], metavar="LABEL=PATH", help="also time this build of the module")
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--markdown", action="store_true", help="print the summary table in Markdown")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not REFERENCE.is_dir():
        print(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)", file=sys.stderr)
        return 1
    thread_environment(args.spin_count)
    choose_kernel(args)
    plumed = import_plumed()
    results = machine_record()
    results["sizes"] = []
    software_record(results, args)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="molenv-bench-") as tmp:
        loop_dll = None
        if not args.no_extras and len(args.threads) > 1:
            try:
                loop_dll = reference_library(Path(tmp))
            except (OSError, subprocess.CalledProcessError) as err:
                print(f"cannot build the parallel reference loop ({err}): skipping it", file=sys.stderr)
        for repeats in sizes:
            workdir = Path(tmp) / "x".join(map(str, repeats))
            workdir.mkdir()
            results["sizes"].append(run_size(plumed, repeats, args, workdir, loop_dll))
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
