"""Staged, resumable OpenMM molecular dynamics in a run directory.

A run is a list of :class:`Stage` (e.g. melt -> quench -> equilibrate -> production), each
NVT or NPT at a temperature (optionally a linear ramp), some recording frames. The run
directory holds

============================  ==================================================================
``run.json``                  the request (what was asked), stages, MD settings, system summary
``system.pdb``                the built system: residue = molecule, spec atom names and order
``system.prmtop``             AMBER topology made by tleap (GAFF/GAFF2 + charges)
``progress.json``             where the run stands: stage, step, checkpoint file, frame chunks
``checkpoint-NNNNN.xml``      OpenMM state (positions, velocities, box, time) at the last checkpoint
``chunks/NNNNN.npz``          frames recorded up to the last checkpoint (float32 Angstrom)
``run.log``                   log: settings, energies, temperature, box, density, speed
``trajectory.xtc``            all recorded frames, written when the run ends (MDAnalysis XTC)
``topology.pdb``              topology for the trajectory (first recorded frame, box in CRYST1)
``final.xml``, ``summary.json``  final state; frame count, wall times, speed, mean T and box
``plumed/``                   with a PLUMED bias: the input copy, PLUMED's log and output files
``plumed-checkpoint-NNNNN/``  PLUMED's files at the last checkpoint (removed when the run ends)
``.molenv.lock``              while a process runs in the directory: its lock (`molenv.runlock`)
============================  ==================================================================

Checkpoints are written every ``checkpoint_ps`` of simulated time and at the end of every
stage: first the frame chunk, then a new state file, then ``progress.json`` (atomically), so
an interrupted run continues from its last checkpoint when the same command is run again;
frames recorded after that checkpoint are recomputed, never duplicated. The random streams
of the thermostat and barostat are reseeded on resume, so a resumed run is statistically,
not bitwise, the continuation.

A PLUMED input (`molenv.plumed.openmm_bridge.PlumedOptions`) biases the stages it names
through an `openmm.PythonForce` (units, barostat, checkpoints and resume: see
`molenv.plumed.openmm_bridge`).

A `BoxCheck` stops a periodic run whose box a barostat has shrunk below a smallest
perpendicular height (twice the spec's descriptor cutoff: frames of a narrower box cannot be
featurized): checked when a stage that records frames starts (after equilibration) and at
every frame.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from molenv.constants import BOLTZMANN
from molenv.simulate import MAX_TIMESTEP_FS, SimulationError

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660
BAROSTATS = ("iso", "xy", "aniso", "flexible", "z")
THERMOSTATS = ("langevin", "nose-hoover")
RUN_FILES = ("run.json", "progress.json", "system.pdb", "system.prmtop", "system.inpcrd", "system.tleap.log", "run.log",
             "trajectory.xtc", "topology.pdb", "final.xml", "summary.json", "frame_boxes.npz")
RUN_DIRS = ("chunks", "plumed")  # and plumed-checkpoint-NNNNN


def _is_run_file(name: str) -> bool:
    from molenv.runlock import LOCK_NAME
    from molenv.plumed.openmm_bridge import SNAPSHOT_PREFIX

    return name in RUN_FILES or name in RUN_DIRS or name.startswith(SNAPSHOT_PREFIX) or name == LOCK_NAME


@dataclass
class Stage:
    """One part of a run. ``temperature_end`` makes a linear temperature ramp."""

    name: str
    time_ps: float
    temperature: float
    ensemble: str = "npt"  # "nvt" or "npt" (npt needs a periodic system)
    frame_interval_ps: float = 0.0  # > 0: record a frame every this many ps
    temperature_end: float | None = None
    # a group of molecules (a name of the system's groups) whose heavy atoms are held at
    # their positions in system.pdb by harmonic restraints of this force constant
    # (kJ/mol/nm^2): the crystal part while the rest of a crystal/melt system melts
    hold: str | None = None
    hold_force_constant: float = 5000.0

    def __post_init__(self):
        # written as "not (x ok)" so that NaN, which fails every comparison, is refused too
        if self.ensemble not in ("nvt", "npt"):
            raise SimulationError(f"stage {self.name}: ensemble must be nvt or npt, got {self.ensemble!r}")
        temperatures = [self.temperature] + ([] if self.temperature_end is None else [self.temperature_end])
        if not (0 <= self.time_ps < math.inf) or not all(0 < t < math.inf for t in temperatures):
            raise SimulationError(f"stage {self.name}: time must be >= 0 and temperatures > 0 (finite numbers), "
                                  f"got {self.time_ps} ps at {' -> '.join(map(str, temperatures))} K")
        if not (0 <= self.frame_interval_ps < math.inf):
            raise SimulationError(f"stage {self.name}: frame interval must be >= 0, got {self.frame_interval_ps}")
        if self.hold is not None and self.ensemble != "nvt":
            # a barostat moves the held molecules with the box; their restraints do not
            raise SimulationError(f"stage {self.name}: a stage that holds molecules ({self.hold}) runs at constant volume (nvt), got {self.ensemble}")
        if self.hold is not None and not (0 < self.hold_force_constant < math.inf):
            raise SimulationError(f"stage {self.name}: the hold force constant must be > 0, got {self.hold_force_constant}")

    def plan(self) -> dict:
        """The stage as recorded in run.json; a stage that holds nothing is recorded without
        the hold entries, as before they existed (so that earlier runs resume)."""
        d = asdict(self)
        if self.hold is None:
            del d["hold"], d["hold_force_constant"]
        return d


@dataclass
class MDSettings:
    """Physics of the run (part of the request: changing them means a new run)."""

    timestep_fs: float = 2.0
    thermostat: str = "langevin"
    friction_ps: float = 1.0  # Langevin friction / Nose-Hoover collision frequency, 1/ps
    barostat: str = "iso"  # used in npt stages: iso | xy | aniso | flexible | z (NPzT)
    pressure_bar: float = 1.0
    barostat_interval: int = 25
    cutoff: float = 9.0  # Angstrom, nonbonded (PME real space); clusters use no cutoff
    constraints: str = "hbonds"  # hbonds | none
    minimise: bool = True
    seed: int = 2024
    checkpoint_ps: float = 10.0
    report_ps: float = 2.0

    def __post_init__(self):
        if self.thermostat not in THERMOSTATS:
            raise SimulationError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")
        if self.barostat not in BAROSTATS:
            raise SimulationError(f"barostat must be one of {', '.join(BAROSTATS)}, got {self.barostat!r}")
        if self.constraints not in ("hbonds", "none"):
            raise SimulationError(f"constraints must be hbonds or none, got {self.constraints!r}")
        if not (0 < self.timestep_fs <= MAX_TIMESTEP_FS):
            raise SimulationError(f"time step must be > 0 and at most {MAX_TIMESTEP_FS:g} fs, got {self.timestep_fs} fs")
        if not (0 < self.checkpoint_ps < math.inf and 0 < self.report_ps < math.inf):
            raise SimulationError(f"checkpoint and report intervals must be > 0, got {self.checkpoint_ps} and {self.report_ps} ps")
        if not (0 <= self.friction_ps < math.inf):
            raise SimulationError(f"friction must be >= 0, got {self.friction_ps} 1/ps")
        if not (math.isfinite(self.pressure_bar) and 0 < self.cutoff < math.inf):
            raise SimulationError(f"pressure must be a finite number and the cutoff > 0, got {self.pressure_bar} bar and {self.cutoff} A")

    def steps(self, ps: float) -> int:
        return int(round(ps * 1000.0 / self.timestep_fs))

    def check_frame_interval(self, stage: Stage) -> None:
        """Refuse a stage whose frames would silently differ from those asked for: a frame is
        taken every round(interval / time step) steps, so an interval that is not a whole
        number of time steps would be changed (0.003 ps at 2 fs: every 0.004 ps), and one
        longer than the stage records nothing. A stage of length 0 records nothing anyway."""
        if stage.frame_interval_ps == 0 or stage.time_ps == 0:
            return
        steps = stage.frame_interval_ps * 1000.0 / self.timestep_fs
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
            nearest = sorted({max(1, math.floor(steps)), math.ceil(steps)})
            raise SimulationError(f"stage {stage.name}: a frame interval of {stage.frame_interval_ps:g} ps is not a whole number of "
                                  f"{self.timestep_fs:g} fs time steps; the nearest that are: "
                                  + " and ".join(f"{n * self.timestep_fs / 1000.0:g} ps" for n in nearest))
        if round(steps) > self.steps(stage.time_ps):
            raise SimulationError(f"stage {stage.name}: the frame interval of {stage.frame_interval_ps:g} ps is longer than the stage "
                                  f"({stage.time_ps:g} ps): no frame would be recorded")


@dataclass
class BoxCheck:
    """The smallest perpendicular height (of the reduced cell, A) a periodic run's box must
    keep in the stages that record frames, and why (for the message)."""

    height: float
    reason: str  # e.g. "twice the urea descriptor cutoff rmax (10 A)"

    def check(self, dimensions, where: str, run: Path) -> None:
        from molenv.frames import box_matrix, perpendicular_heights, reduced_basis

        heights = perpendicular_heights(reduced_basis(box_matrix(np.asarray(dimensions, dtype=np.float64))))
        if not heights.min() >= self.height:
            raise SimulationError(
                f"{run}: {where} the box's smallest perpendicular height is {heights.min():.2f} A (heights "
                f"{', '.join(f'{h:.2f}' for h in heights)} A), below {self.reason}, {self.height:g} A: the barostat shrank it, and frames of "
                f"this box cannot be featurized; build the system larger (a larger --min-height or more --repeats, with --overwrite)")


@dataclass
class Runtime:
    """How to run (not part of the request: may change between resumes)."""

    platform: str = "CPU"
    threads: int = 0  # CPU threads; 0 = OpenMM's default (OPENMM_CPU_THREADS or all cores)
    progress: bool = True


# ---------------------------------------------------------------------------------------
# run directory


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and any(isinstance(x, dict) for x in a):
        return [d for k, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {b!r} in the run directory, {a!r} now"]


# One line of run.log per report interval (`Simulation._execute`): the stage, the step, the
# time and the observables. `read_log` parses these lines back.
REPORT_LINE = re.compile(r"(?P<stage>\S+) step (?P<step>\d+)/\d+ t=(?P<time>[-\d.]+) ps T=(?P<temperature>[-\d.]+) K "
                         r"PE=(?P<potential_energy>[-\d.]+) kJ/mol")


def read_log(path: str | Path, stage: str | None = None) -> dict[str, np.ndarray]:
    """The observables a run logged at every report interval, from its ``run.log`` (or the run
    directory): ``time`` (ps), ``temperature`` (K), ``potential_energy`` (kJ/mol, the whole
    system), of the stage named ``stage`` only (e.g. "production") or of every stage. A run
    resumed from a checkpoint logs the steps after that checkpoint again: the last line of
    each (stage, step) is kept, so every report counts once."""
    path = Path(path)
    log = path / "run.log" if path.is_dir() else path
    if not log.is_file():
        raise FileNotFoundError(f"{log}: no run log (is {log.parent} a `molenv simulate` run directory?)")
    rows: dict[tuple[str, int], tuple[float, float, float]] = {}
    for line in log.read_text().splitlines():
        m = REPORT_LINE.search(line)
        if m and (stage is None or m["stage"] == stage):
            rows[(m["stage"], int(m["step"]))] = (float(m["time"]), float(m["temperature"]), float(m["potential_energy"]))
    values = np.array(sorted(rows.values()), dtype=np.float64).reshape(-1, 3)
    return {"time": values[:, 0], "temperature": values[:, 1], "potential_energy": values[:, 2]}


class RunDirectory:
    """The files of one run (see module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file("run.json").is_file()

    def load(self) -> dict:
        return json.loads(self.file("run.json").read_text())

    def progress(self) -> dict | None:
        p = self.file("progress.json")
        return json.loads(p.read_text()) if p.is_file() else None

    def clear(self) -> None:
        """Remove the files of a run (only those, so a wrong --out loses nothing else)."""
        for name in RUN_FILES:
            self.file(name).unlink(missing_ok=True)
        for p in self.path.glob("checkpoint-*.xml"):
            p.unlink()
        for p in self.path.iterdir() if self.path.is_dir() else []:
            if p.is_dir() and _is_run_file(p.name):
                shutil.rmtree(p, ignore_errors=True)

    def check_new(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise SimulationError(f"{self.path}: exists and is not a directory")
        if self.path.is_dir() and not self.exists() and any(not _is_run_file(p.name) for p in self.path.iterdir()):
            raise SimulationError(f"{self.path}: directory exists, is not empty and holds no molenv run (run.json); choose another --out")


# ---------------------------------------------------------------------------------------
# the run


def _check_plumed_stages(plumed, stages: list[Stage]) -> None:
    names = [st.name for st in stages]
    unknown = [n for n in plumed.stages if n not in names]
    if unknown or not plumed.stages:
        raise SimulationError(f"PLUMED stages {', '.join(unknown) or '(none)'}: the stages of this run are {', '.join(names)}")
    index = sorted(names.index(n) for n in plumed.stages)
    biased = [stages[k] for k in index]
    if index != list(range(index[0], index[0] + len(index))):
        raise SimulationError(f"PLUMED stages {', '.join(plumed.stages)}: they must follow each other (stages: {', '.join(names)})")
    if any(st.temperature_end not in (None, st.temperature) or st.temperature != biased[0].temperature for st in biased):
        raise SimulationError(f"PLUMED stages {', '.join(plumed.stages)}: they must run at one constant temperature (PLUMED's kBT)")


def run(out: str | Path, request: dict, setup, stages: list[Stage], settings: MDSettings, runtime: Runtime | None = None,
        overwrite: bool = False, command: str = "", plumed=None, box_check: BoxCheck | None = None, metadata: dict | None = None) -> dict:
    """Run (or resume, or report as complete) the simulation in directory ``out``.

    ``request`` describes what was asked (inputs and options); a run directory made with
    a different request is refused unless ``overwrite``. ``setup(directory) -> dict`` builds
    ``system.pdb`` and ``system.prmtop`` there and returns a summary of the system; it is
    called only for a new run. ``plumed`` (`molenv.plumed.openmm_bridge.PlumedOptions`):
    a PLUMED bias in the stages it names. ``box_check``: stop a periodic run whose box falls
    below its height in the stages that record frames. ``metadata``: entries of run.json
    outside the request (e.g. the label of the frames), written or updated on every call.
    Returns the summary (``summary.json``).

    The run directory is locked for the call (`molenv.runlock`): while one process runs
    in it, another call on it raises `molenv.runlock.DirectoryLocked` naming the holder."""
    runtime = runtime or Runtime()
    rd = RunDirectory(out)
    for stage in stages:
        settings.check_frame_interval(stage)
    if plumed is not None:
        from molenv.plumed.openmm_bridge import check_input

        check_input(plumed.input)
        _check_plumed_stages(plumed, stages)
    plan = {"request": request, "stages": [s.plan() for s in stages], "settings": asdict(settings),
            "plumed": None if plumed is None else plumed.plan()}
    if rd.path.exists() and not rd.path.is_dir():
        raise SimulationError(f"{rd.path}: exists and is not a directory")
    created = not rd.path.exists()
    rd.path.mkdir(parents=True, exist_ok=True)
    # one process per run directory: a second one on the same --out is refused at once,
    # naming the holder (molenv.runlock; a run directory without a lock file is free)
    from molenv.runlock import DirectoryLock

    remove = False  # a directory this call created and left empty
    try:
        with DirectoryLock(rd.path, command=command or None, what="run directory"):
            try:
                return _run_locked(rd, plan, setup, stages, settings, runtime, overwrite, command, plumed, box_check, metadata or {})
            except BaseException:
                remove = created
                raise
    finally:
        if remove and rd.path.is_dir() and not any(rd.path.iterdir()):
            rd.path.rmdir()


def _run_locked(rd: RunDirectory, plan: dict, setup, stages: list[Stage], settings: MDSettings, runtime: Runtime,
                overwrite: bool, command: str, plumed, box_check: BoxCheck | None, metadata: dict) -> dict:
    """`run` once the run directory is locked."""
    if rd.exists():
        old = rd.load()
        diff = _differences(plan, {k: old.get(k) for k in plan})
        if diff and not overwrite:
            raise SimulationError(f"{rd.path} holds a run made with other settings ({'; '.join(diff[:4])}); "
                                  f"rerun with the same options to resume, or use another --out or --overwrite")
        if diff:
            rd.clear()
    rd.check_new()
    if not rd.exists():
        t0 = time.perf_counter()
        try:
            system_info = setup(rd.path)
            if plumed is not None:
                _setup_plumed(rd, plumed, stages, settings, system_info)
        except BaseException:
            rd.clear()
            raise
        record = plan | {"system": system_info, "command": command, "setup_wall_s": round(time.perf_counter() - t0, 2),
                         "created": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node()} | metadata
        _write_json(rd.file("run.json"), record)
    elif metadata and any(rd.load().get(k) != v for k, v in metadata.items()):
        _write_json(rd.file("run.json"), rd.load() | metadata)
    return _Runner(rd, stages, settings, runtime, plumed, box_check).execute()


def _setup_plumed(rd: RunDirectory, plumed, stages: list[Stage], settings: MDSettings, system_info: dict) -> None:
    """Copy the PLUMED input into the new run (input paths made absolute) and start PLUMED
    once with it, so that a broken input stops the run before any MD."""
    from molenv.plumed import openmm_bridge as pb

    dest = rd.file(pb.DIRECTORY) / pb.INPUT_NAME
    pb.prepare_input(plumed.input, dest)
    first = next(st for st in stages if st.name in plumed.stages)
    pb.validate(dest, int(system_info["n_atoms"]), settings.timestep_fs / 1000.0, first.temperature, system_info.get("box_vectors") is not None)


class _Runner:
    def __init__(self, rd: RunDirectory, stages: list[Stage], settings: MDSettings, runtime: Runtime, plumed=None, box_check: BoxCheck | None = None):
        self.rd, self.stages, self.settings, self.runtime = rd, stages, settings, runtime
        self.plumed = plumed
        self.box_check = box_check
        self.bias = None  # the PlumedBias while biased stages run
        self.meta = rd.load()
        self.periodic = self.meta["system"].get("box_vectors") is not None
        self.log = self._logger()

    # -- logging -------------------------------------------------------------------------
    def _logger(self) -> logging.Logger:
        log = logging.getLogger(f"molenv.simulate.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        fh = logging.FileHandler(self.rd.file("run.log"))
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(fh)
        return log

    def _close_log(self):
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    # -- OpenMM objects ------------------------------------------------------------------
    def _system(self):
        import openmm
        from openmm import app, unit

        prmtop = app.AmberPrmtopFile(str(self.rd.file("system.prmtop")))
        kwargs = dict(constraints=app.HBonds if self.settings.constraints == "hbonds" else None, removeCMMotion=True)
        if self.periodic:
            system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=self.settings.cutoff * unit.angstrom, ewaldErrorTolerance=5e-4, **kwargs)
            vectors = np.array(self.meta["system"]["box_vectors"]) / 10.0
            system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*v) for v in vectors))
        else:
            system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, **kwargs)
        return prmtop, system

    def _barostat(self, temperature: float):
        import openmm
        from openmm import unit

        s = self.settings
        p = s.pressure_bar * unit.bar
        if s.barostat == "iso":
            return openmm.MonteCarloBarostat(p, temperature, s.barostat_interval)
        if s.barostat == "xy":
            return openmm.MonteCarloMembraneBarostat(p, 0.0, temperature, openmm.MonteCarloMembraneBarostat.XYIsotropic,
                                                     openmm.MonteCarloMembraneBarostat.ZFree, s.barostat_interval)
        if s.barostat == "aniso":
            return openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(1, 1, 1) * s.pressure_bar, temperature, True, True, True, s.barostat_interval)
        if s.barostat == "z":
            # NPzT: only z moves. OpenMM scales the z components of the box vectors (a and b of
            # the reduced form lie in the xy plane), so x, y and the lateral lattice stay exact,
            # triclinic boxes included
            return openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(1, 1, 1) * s.pressure_bar, temperature, False, False, True, s.barostat_interval)
        return openmm.MonteCarloFlexibleBarostat(p, temperature, s.barostat_interval)

    def _integrator(self, temperature: float):
        import openmm
        from openmm import unit

        s = self.settings
        dt = s.timestep_fs * unit.femtosecond
        if s.thermostat == "langevin":
            return openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, s.friction_ps / unit.picosecond, dt)
        return openmm.NoseHooverIntegrator(temperature * unit.kelvin, s.friction_ps / unit.picosecond, dt)

    def _simulation(self, stage: Stage, seed: int, bias=None):
        import copy

        import openmm
        from openmm import app

        system = copy.deepcopy(self.base_system)
        if bias is not None:
            system.addForce(bias.force())
        if stage.hold is not None:
            system.addForce(self._hold_force(stage))
        if stage.ensemble == "npt":
            if not self.periodic:
                raise SimulationError(f"stage {stage.name}: NPT needs a periodic system (clusters run NVT)")
            barostat = self._barostat(stage.temperature)
            barostat.setRandomNumberSeed(seed)
            system.addForce(barostat)
        integrator = self._integrator(stage.temperature)
        if hasattr(integrator, "setRandomNumberSeed"):
            integrator.setRandomNumberSeed(seed)
        try:
            plat = openmm.Platform.getPlatformByName(self.runtime.platform)
        except Exception:
            names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
            raise SimulationError(f"OpenMM platform {self.runtime.platform!r} not available (available: {', '.join(names)})") from None
        props = {"Threads": str(self.runtime.threads)} if self.runtime.platform == "CPU" and self.runtime.threads > 0 else {}
        return app.Simulation(self.prmtop.topology, system, integrator, plat, props)

    def _hold_force(self, stage: Stage):
        """Harmonic restraints of the heavy atoms of group ``stage.hold`` to their positions in
        system.pdb (minimum image: a held atom may sit across the boundary)."""
        import openmm
        from openmm import unit

        groups = self.meta["system"]["groups"]
        names = [name for name, _ in groups]
        if stage.hold not in names:
            raise SimulationError(f"stage {stage.name}: holds group {stage.hold!r}, but the system's groups are {', '.join(names)}")
        per_molecule = self.meta["system"]["n_atoms"] // self.meta["system"]["n_molecules"]
        start = per_molecule * sum(count for _, count in groups[: names.index(stage.hold)])
        stop = start + per_molecule * dict(groups)[stage.hold]
        reference = app_pdb(self.rd.file("system.pdb")).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        force = openmm.CustomExternalForce("0.5*k_hold*periodicdistance(x, y, z, x0, y0, z0)^2" if self.periodic
                                           else "0.5*k_hold*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
        force.addGlobalParameter("k_hold", stage.hold_force_constant)
        for name in ("x0", "y0", "z0"):
            force.addPerParticleParameter(name)
        for i in range(start, stop):
            if self.base_system.getParticleMass(i).value_in_unit(unit.dalton) > 2.5:  # heavy atoms, not H
                force.addParticle(i, [float(v) for v in reference[i]])
        return force

    # -- state I/O -----------------------------------------------------------------------
    def _save_state(self, context, path: Path) -> None:
        import openmm

        state = context.getState(getPositions=True, getVelocities=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(openmm.XmlSerializer.serialize(state))
        os.replace(tmp, path)

    def _load_state(self, context, path: Path) -> None:
        import openmm

        context.setState(openmm.XmlSerializer.deserialize(path.read_text()))

    def _checkpoint(self, context, progress: dict, frames: list, wall: float, stage_name: str, plumed_step: int | None = None) -> None:
        """Frame chunk, then a new state file, then (with a bias) a copy of PLUMED's files,
        then progress.json (atomic); ``wall`` seconds are booked to ``stage_name``.
        ``progress`` already says where the run resumes."""
        if frames:
            chunks = self.rd.file("chunks")
            chunks.mkdir(exist_ok=True)
            name = f"{len(progress['chunks']):05d}.npz"
            tmp = chunks / f"{name}.tmp.npz"
            np.savez(tmp, positions=np.array([f[0] for f in frames], dtype=np.float32),
                     dimensions=np.array([f[1] for f in frames], dtype=np.float64), times=np.array([f[2] for f in frames]))
            os.replace(tmp, chunks / name)
            progress["chunks"].append(name)
            progress["n_frames"] += len(frames)
            frames.clear()
        old = progress.get("checkpoint")
        old_plumed = (progress.get("plumed") or {}).get("checkpoint")
        progress["n_checkpoints"] += 1
        progress["checkpoint"] = f"checkpoint-{progress['n_checkpoints']:05d}.xml"
        self._save_state(context, self.rd.file(progress["checkpoint"]))
        if plumed_step is not None:
            from molenv.plumed import openmm_bridge as pb

            name = f"{pb.SNAPSHOT_PREFIX}{progress['n_checkpoints']:05d}"
            pb.snapshot(self.rd.file(pb.DIRECTORY), self.rd.file(name))
            progress["plumed"] = {"checkpoint": name, "step": plumed_step}
        progress["wall_s"][stage_name] = round(progress["wall_s"].get(stage_name, 0.0) + wall, 2)
        _write_json(self.rd.file("progress.json"), progress)
        if old and old != progress["checkpoint"]:
            self.rd.file(old).unlink(missing_ok=True)
        if old_plumed and old_plumed != progress["plumed"]["checkpoint"]:
            shutil.rmtree(self.rd.file(old_plumed), ignore_errors=True)

    # -- measurements --------------------------------------------------------------------
    def _observables(self, state) -> dict:
        from openmm import unit

        ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        pe = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        out = {"T": 2 * ke / (self.dof * BOLTZMANN), "PE": pe}
        if self.periodic:
            v = np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
            volume = abs(np.linalg.det(v))
            out |= {"box": np.linalg.norm(v, axis=1), "volume": volume, "density": self.mass / volume * AMU_PER_A3_TO_G_PER_CM3}
        return out

    def _frame(self, context):
        from openmm import unit

        from molenv.crystals import dimensions_from_vectors

        state = context.getState(getPositions=True, enforcePeriodicBox=self.periodic)
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom).astype(np.float32)
        dims = dimensions_from_vectors(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom)) if self.periodic else np.zeros(6)
        return pos, dims, state.getTime().value_in_unit(unit.picosecond)

    def _check_box(self, dimensions, where: str) -> None:
        try:
            self.box_check.check(dimensions, where, self.rd.path)
        except SimulationError as err:
            self.log.info("stopped: %s", err)
            raise

    # -- main loop -----------------------------------------------------------------------
    def execute(self) -> dict:
        try:
            return self._execute()
        finally:
            self._stop_plumed()
            self._close_log()

    # -- PLUMED bias ---------------------------------------------------------------------
    def _biased(self, stage: Stage) -> bool:
        return self.plumed is not None and stage.name in self.plumed.stages

    def _start_plumed(self, stage: Stage, progress: dict):
        """The PLUMED bias, fresh or (after a checkpoint in a biased stage) restarted from the
        PLUMED files of that checkpoint."""
        from openmm import unit

        from molenv.plumed import openmm_bridge as pb

        directory = self.rd.file(pb.DIRECTORY)
        pb.rotate_log(directory)
        snap = progress.get("plumed")
        if snap:
            pb.restore(directory, self.rd.file(snap["checkpoint"]))
        else:
            pb.clean(directory)
        system = self.base_system
        masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
        charges = None
        for force in system.getForces():
            if force.__class__.__name__ == "NonbondedForce":
                charges = [force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(force.getNumParticles())]
        bias = pb.PlumedBias(directory, directory / pb.INPUT_NAME, masses, charges, self.settings.timestep_fs / 1000.0, stage.temperature,
                             self.periodic, restart=bool(snap), done_step=snap["step"] if snap else None)
        self.log.info("PLUMED bias %s/%s in stage%s %s%s", pb.DIRECTORY, pb.INPUT_NAME, "s" if len(self.plumed.stages) > 1 else "",
                      ", ".join(self.plumed.stages), f", restarted from its checkpoint at PLUMED step {snap['step']}" if snap else "")
        return bias

    def _stop_plumed(self) -> None:
        if self.bias is not None:
            bias, self.bias = self.bias, None
            self.log.info("PLUMED: %d evaluations, %d updates, %.1f s in PLUMED", bias.n_calcs, bias.n_updates, bias.seconds)
            bias.finalize()

    def _execute(self) -> dict:
        from openmm import unit

        progress = self.rd.progress()
        if progress and progress.get("done"):
            if not self.rd.file("summary.json").is_file():
                return self._finish(progress)
            return json.loads(self.rd.file("summary.json").read_text())
        self.prmtop, self.base_system = self._system()
        n_constraints = self.base_system.getNumConstraints()
        self.dof = 3 * self.base_system.getNumParticles() - n_constraints - 3
        self.mass = sum(self.base_system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(self.base_system.getNumParticles()))
        s = self.settings
        if progress is None:
            progress = {"stage": 0, "step": 0, "checkpoint": None, "n_checkpoints": 0, "chunks": [], "n_frames": 0, "wall_s": {}, "done": False}
            self.log.info("new run: %s", self.meta["system"].get("description", ""))
            for line in self.meta["system"].get("info", {}).get("labelling", []):
                self.log.info("labelling of equivalent atoms (docs/simulate.md): %s", line)
            self.log.info("command: %s", self.meta.get("command", ""))
        else:
            self.log.info("resuming at stage %d (%s), step %d, from %s", progress["stage"], self.stages[progress["stage"]].name,
                          progress["step"], progress["checkpoint"])
            # frames written after the last checkpoint are not in progress.json: drop them
            for p in self.rd.file("chunks").glob("*.npz") if self.rd.file("chunks").is_dir() else []:
                if p.name not in progress["chunks"]:
                    p.unlink()
        self.log.info("settings: %s; platform %s, threads %s", json.dumps(asdict(s)), self.runtime.platform, self.runtime.threads or "default")
        total = sum(s.steps(st.time_ps) for st in self.stages)
        done = sum(s.steps(st.time_ps) for st in self.stages[: progress["stage"]]) + progress["step"]
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done, unit="step", disable=not self.runtime.progress, dynamic_ncols=True,
                   mininterval=1.0 if os.isatty(2) else 60.0, desc=os.path.basename(os.path.abspath(self.rd.path)))
        try:
            while progress["stage"] < len(self.stages):
                self._run_stage(progress, bar)
        except KeyboardInterrupt:
            self.log.info("interrupted; the run continues from %s when the same command is run again", progress.get("checkpoint"))
            raise
        finally:
            bar.close()
        return self._finish(progress)

    def _run_stage(self, progress: dict, bar) -> None:
        from openmm import unit

        s = self.settings
        i = progress["stage"]
        stage = self.stages[i]
        n_steps = s.steps(stage.time_ps)
        frame_steps = s.steps(stage.frame_interval_ps) if stage.frame_interval_ps > 0 else 0
        seed = s.seed + 1000 * i + progress["n_checkpoints"]
        biased = self._biased(stage)
        if biased and self.bias is None:
            self.bias = self._start_plumed(stage, progress)
        elif not biased:
            self._stop_plumed()
        bias = self.bias if biased else None
        sim = self._simulation(stage, seed, bias)
        ctx = sim.context
        if progress["checkpoint"]:
            self._load_state(ctx, self.rd.file(progress["checkpoint"]))
        else:
            pdb = app_pdb(self.rd.file("system.pdb"))
            ctx.setPositions(pdb.positions)
            if s.minimise:
                e0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                t0 = time.perf_counter()
                import openmm

                openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 2000)
                e1 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
                self.log.info("minimised: potential energy %.1f -> %.1f kJ/mol (%.1f s)", e0, e1, time.perf_counter() - t0)
            ctx.setVelocitiesToTemperature(stage.temperature * unit.kelvin, s.seed)
        ramp = stage.temperature_end is not None and stage.temperature_end != stage.temperature
        if frame_steps and self.periodic and self.box_check is not None:
            from molenv.crystals import dimensions_from_vectors

            state = ctx.getState()
            box = dimensions_from_vectors(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
            now = state.getTime().value_in_unit(unit.picosecond)
            self._check_box(box, f"at t = {now:g} ps, as stage {stage.name} {'resumes' if progress['step'] else 'starts'} "
                                 f"(after {', '.join(st.name for st in self.stages[:i]) or 'the set-up'}),")
        self.log.info("stage %d/%d %s: %.1f ps %s at %s K%s%s%s", i + 1, len(self.stages), stage.name, stage.time_ps, stage.ensemble.upper(),
                      f"{stage.temperature:g}" + (f" -> {stage.temperature_end:g}" if ramp else ""),
                      f", barostat {s.barostat}" if stage.ensemble == "npt" else "", f", a frame every {stage.frame_interval_ps:g} ps" if frame_steps else "",
                      f", heavy atoms of {stage.hold} held ({stage.hold_force_constant:g} kJ/mol/nm2)" if stage.hold else "")
        frames: list = []
        step = progress["step"]
        groups = -1
        if bias is not None:
            # PLUMED steps count from the start of the first biased stage
            before = sum(s.steps(st.time_ps) for st in self.stages[:i] if self._biased(st))
            bias.step_offset = ctx.getStepCount() - step - before
            bias.active = True  # not during the minimisation and velocity set-up above
            from molenv.plumed.openmm_bridge import MD_GROUPS

            groups = MD_GROUPS  # logged energies without the bias: no PLUMED call
        t_wall = time.perf_counter()
        try:
            self._steps(sim, stage, progress, bar, frames, bias, groups, t_wall)
        finally:
            if bias is not None:
                bias.active = False
        if n_steps == 0:
            progress["stage"], progress["step"] = i + 1, 0
            plumed_step = bias.checkpoint(ctx) if bias is not None else None
            self._checkpoint(ctx, progress, frames, time.perf_counter() - t_wall, stage.name, plumed_step)
        if bias is not None and (i + 1 == len(self.stages) or not self._biased(self.stages[i + 1])):
            self._stop_plumed()

    def _steps(self, sim, stage: Stage, progress: dict, bar, frames: list, bias, groups, t_wall: float) -> None:
        from openmm import unit

        s = self.settings
        i = progress["stage"]
        ctx = sim.context
        n_steps = s.steps(stage.time_ps)
        frame_steps = s.steps(stage.frame_interval_ps) if stage.frame_interval_ps > 0 else 0
        report_steps, ckpt_steps = max(1, s.steps(s.report_ps)), max(1, s.steps(s.checkpoint_ps))
        ramp = stage.temperature_end is not None and stage.temperature_end != stage.temperature
        step = progress["step"]
        t_block, step_block = t_wall, step
        while step < n_steps:
            nxt = n_steps
            for interval in (frame_steps, report_steps, ckpt_steps):
                if interval:
                    nxt = min(nxt, (step // interval + 1) * interval)
            if ramp:
                temp = stage.temperature + (stage.temperature_end - stage.temperature) * step / n_steps
                sim.integrator.setTemperature(temp * unit.kelvin)
                if stage.ensemble == "npt":
                    ctx.setParameter("MonteCarloTemperature", temp)
            try:
                sim.step(nxt - step)
            except Exception:
                if bias is not None and bias.error is not None:
                    raise bias.error from None  # PLUMED's message, not OpenMM's wrapping of it
                raise
            bar.update(nxt - step)
            step = nxt
            if frame_steps and step % frame_steps == 0:
                frames.append(self._frame(ctx))
                if self.periodic and self.box_check is not None:
                    self._check_box(frames[-1][1], f"in stage {stage.name}, at the frame of t = {frames[-1][2]:g} ps,")
            if step % report_steps == 0 or step == n_steps:
                now = time.perf_counter()
                obs = self._observables(ctx.getState(getEnergy=True, groups=groups))
                speed = (step - step_block) * s.timestep_fs * 1e-6 / max(now - t_block, 1e-9) * 86400
                t_block, step_block = now, step
                bar.set_postfix(stage=stage.name, T=f"{obs['T']:.0f}", refresh=False)
                box = f" box {' '.join(f'{x:.2f}' for x in obs['box'])} A density {obs['density']:.4f} g/cm3" if self.periodic else ""
                # parsed back by read_log (REPORT_LINE): keep the two in step
                self.log.info("%s step %d/%d t=%.1f ps T=%.1f K PE=%.1f kJ/mol%s%s %.2f ns/day", stage.name, step, n_steps,
                              ctx.getState().getTime().value_in_unit(unit.picosecond), obs["T"], obs["PE"],
                              f" bias={bias.last_bias:.3f} kJ/mol" if bias is not None else "", box, speed)
            if step % ckpt_steps == 0 or step == n_steps:
                plumed_step = bias.checkpoint(ctx) if bias is not None else None
                now = time.perf_counter()
                progress["stage"], progress["step"] = (i + 1, 0) if step == n_steps else (i, step)
                self._checkpoint(ctx, progress, frames, now - t_wall, stage.name, plumed_step)
                t_wall = now

    # -- end -----------------------------------------------------------------------------
    def _finish(self, progress: dict) -> dict:
        progress["done"] = True
        _write_json(self.rd.file("progress.json"), progress)
        summary = write_trajectory(self.rd)
        if progress.get("checkpoint") and self.rd.file(progress["checkpoint"]).is_file():
            os.replace(self.rd.file(progress["checkpoint"]), self.rd.file("final.xml"))
        s = self.settings
        stage_info = []
        for st in self.stages:
            wall = progress["wall_s"].get(st.name, 0.0)
            stage_info.append(st.plan() | {"wall_s": wall, "ns_per_day": round(st.time_ps * 1e-3 / wall * 86400, 2) if wall > 0 else None})
        summary |= {"stages": stage_info, "wall_s": round(sum(progress["wall_s"].values()), 1),
                    "setup_wall_s": self.meta.get("setup_wall_s"), "timestep_fs": s.timestep_fs,
                    "n_atoms": self.meta["system"].get("n_atoms"), "n_molecules": self.meta["system"].get("n_molecules")}
        if self.meta.get("plumed"):
            from molenv.plumed import openmm_bridge as pb

            for p in self.rd.path.glob(pb.SNAPSHOT_PREFIX + "*"):
                shutil.rmtree(p, ignore_errors=True)
            directory = self.rd.file(pb.DIRECTORY)
            summary["plumed"] = self.meta["plumed"] | {"directory": pb.DIRECTORY,
                                                       "files": sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []}
        _write_json(self.rd.file("summary.json"), summary)
        self.log.info("done: %d frames in trajectory.xtc, MD wall time %.0f s", summary["n_frames"], summary["wall_s"])
        return summary


def app_pdb(path: Path):
    from openmm import app

    return app.PDBFile(str(path))


def write_trajectory(rd: RunDirectory) -> dict:
    """Merge the frame chunks into ``trajectory.xtc`` and write ``topology.pdb``; returns
    frame statistics. Chunk files are removed once the trajectory is written."""
    import MDAnalysis as mda
    from MDAnalysis.coordinates.XTC import XTCWriter

    progress = rd.progress()
    chunk_files = [rd.file("chunks") / name for name in progress["chunks"]]
    stats = {"n_frames": 0, "frame_times_ps": [], "trajectory": "trajectory.xtc", "topology": "topology.pdb"}
    if not chunk_files:
        if rd.file("trajectory.xtc").is_file():  # already merged earlier
            u = mda.Universe(str(rd.file("topology.pdb")), str(rd.file("trajectory.xtc")))
            stats["n_frames"] = len(u.trajectory)
            stats["frame_times_ps"] = [round(ts.time, 3) for ts in u.trajectory]
        return _frame_stats(rd, stats)
    data = [np.load(p) for p in chunk_files]
    positions = np.concatenate([d["positions"] for d in data])
    dims = np.concatenate([d["dimensions"] for d in data])
    times = np.concatenate([d["times"] for d in data])
    u = mda.Universe(str(rd.file("system.pdb")))
    periodic = bool(np.any(dims[0]))
    with XTCWriter(str(rd.file("trajectory.xtc.tmp.xtc")), u.atoms.n_atoms) as w:
        for pos, dim, t in zip(positions, dims, times):
            u.atoms.positions = pos
            u.trajectory.ts.dimensions = dim if periodic else None
            u.trajectory.ts.time = float(t)
            w.write(u.atoms)
    os.replace(rd.file("trajectory.xtc.tmp.xtc"), rd.file("trajectory.xtc"))
    u.atoms.positions = positions[0]
    u.trajectory.ts.dimensions = dims[0] if periodic else None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(rd.file("topology.pdb")), bonds="conect")
    np.savez(rd.file("frame_boxes.npz"), dimensions=dims, times=times)
    shutil.rmtree(rd.file("chunks"), ignore_errors=True)
    progress["chunks"] = []
    _write_json(rd.file("progress.json"), progress)
    stats["n_frames"] = len(times)
    stats["frame_times_ps"] = [round(float(t), 3) for t in times]
    return _frame_stats(rd, stats)


def _frame_stats(rd: RunDirectory, stats: dict) -> dict:
    boxes = rd.file("frame_boxes.npz")
    if boxes.is_file():
        dims = np.load(boxes)["dimensions"]
        if np.any(dims):
            stats["mean_box"] = np.round(dims.mean(axis=0), 3).tolist()
    return stats


