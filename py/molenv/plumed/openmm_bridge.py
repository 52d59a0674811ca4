"""A PLUMED bias in OpenMM MD (``molenv simulate --plumed plumed.dat``).

`PlumedBias` is the computation of an `openmm.PythonForce`: OpenMM calls it with a `State`
(positions, box, step count) whenever it needs the forces or the energy, and it returns
PLUMED's bias energy and bias forces. PLUMED is the kernel `MOLENV_CLASSIFY` was compiled
against (`molenv.plumed.engine.load_plumed`), driven through its Python interface as an MD
code would (``setMDEngine``, ``setNatoms``, units, ``setTimestep``, ``setKbT``, ``init``,
then ``setStep``, ``setBox``, ``setMasses``, ``setCharges``, ``setPositions``, ``setForces``,
``setVirial``, ``prepareCalc``, ``performCalcNoUpdate``, ``getBias``, ``update``).

**Units.** PLUMED is told that the MD units are OpenMM's: nm, kJ/mol, ps, amu, e (``setMD*Units``
1.0, which are also PLUMED's own), so positions, box, forces and energy pass unconverted.
``setKbT`` is k_B T of the biased stage, so ``TEMP`` may be left out of METAD/OPES.

**Pressure.** PythonForce has no virial: PLUMED computes one (into a buffer) but OpenMM never
needs it, because all of OpenMM's barostats are Monte Carlo barostats: they scale the
box and the molecule centres and accept or reject with the *energy* difference, computed by
calling every force, this one included, at the trial box. A box-dependent bias (every
`MOLENV_CLASSIFY` component is one) is therefore exact in NPT as well.

**When PLUMED runs.** OpenMM may evaluate the force more than once per step (a Monte Carlo
barostat evaluates the energy before and after its trial move, then the integrator the
forces). Every evaluation is a PLUMED ``calc`` without ``update`` (results of identical
configurations within a step are reused); PLUMED's ``update`` (``PRINT``, hill deposition,
OPES kernels, ...) runs once per step, for the last configuration OpenMM evaluated at that
step (the one the integrator moved with), just before the first evaluation of the next
step; so all evaluations of one step see the same bias. The energy OpenMM reports without
the bias (force groups other than `BIAS_GROUP`) costs no PLUMED call. Because of the extra
evaluations, per-evaluation outputs (``MOLENV_CLASSIFY ... PROB_FILE``/``SF_FILE``) are
refused in a biased run: classify the frames afterwards (`molenv classify`, `molenv reanalyse`).

**Checkpoints and resume.** At an MD checkpoint (step n) `checkpoint` evaluates PLUMED at the
checkpoint configuration and runs the update of step n with PLUMED's checkpoint flag
(``doCheckPoint``: every PLUMED file is flushed, OPES writes its ``STATE_WFILE``); the run
directory then keeps a copy of PLUMED's files for that checkpoint (`snapshot`). A resumed
run restores them (`restore`), starts PLUMED with ``RESTART`` (files are appended, METAD
reads its ``HILLS`` back, OPES its kernels or state) and does not update step n again: no
line of ``COLVAR``, no hill is written twice or lost, whatever happened after the checkpoint.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.constants import BOLTZMANN, file_sha256
from molenv.plumed.engine import PlumedError, load_plumed, plumed_message, share_step, start_plumed
from molenv.plumed.inputs import PlumedInputError, absolute_input_paths, classify_actions
from molenv.simulate import SimulationError

BIAS_GROUP = 31  # OpenMM force group of the PLUMED force (the MD forces are in group 0)
MD_GROUPS = set(range(BIAS_GROUP))
INPUT_NAME = "plumed.dat"
LOG_NAME = "plumed.log"
DIRECTORY = "plumed"  # in the run directory: the input copy, PLUMED's log and outputs
SNAPSHOT_PREFIX = "plumed-checkpoint-"


@dataclass(frozen=True)
class PlumedOptions:
    """What to bias: the PLUMED input and the names of the (consecutive) stages it acts in."""

    input: Path
    stages: tuple[str, ...] = ("production",)

    def plan(self) -> dict:
        """The part of run.json that must not change between resumes."""
        return {"input_sha256": file_sha256(self.input)[:16], "stages": list(self.stages)}


# ----------------------------------------------------------------------------- the input


def check_input(path: str | Path) -> None:
    """Refuse inputs that cannot work as a bias in `molenv simulate` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SimulationError(f"{path}: PLUMED input not found")
    try:
        actions = classify_actions(path)
    except PlumedInputError as err:
        raise SimulationError(str(err)) from None
    for a in actions:
        files = [k for k in ("PROB_FILE", "SF_FILE") if k in a.keywords]
        if files:
            raise SimulationError(
                f"{a.where}: {'/'.join(files)} in a biased run: MOLENV_CLASSIFY writes it at every evaluation, and OpenMM evaluates "
                f"the bias more than once at some steps (Monte Carlo barostat, checkpoints); remove it and classify the frames "
                f"afterwards (molenv classify or molenv reanalyse on <out>/trajectory.xtc)")


def prepare_input(source: str | Path, dest: str | Path, base: str | Path | None = None) -> list[str]:
    """Copy the PLUMED input to the run directory, with relative paths of input files that
    exist relative to ``base`` (default: the current directory) made absolute
    (`molenv.plumed.inputs.absolute_input_paths`), because PLUMED runs in the run's
    `DIRECTORY`. Returns the rewritten values."""
    text, changed = absolute_input_paths(Path(source).read_text(), base)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(text)
    return changed


# ----------------------------------------------------------------------------- PLUMED's files


def _is_output(p: Path) -> bool:
    return p.name != INPUT_NAME and not p.name.startswith(LOG_NAME)


def clean(directory: Path) -> None:
    """Remove PLUMED's outputs (not the input copy, not the logs)."""
    for p in list(directory.iterdir()) if directory.is_dir() else []:
        if _is_output(p):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def snapshot(directory: Path, dest: Path) -> None:
    """Copy PLUMED's outputs to ``dest`` (written under a temporary name, then renamed)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(directory, tmp, ignore=lambda d, names: [n for n in names if Path(d) == directory and not _is_output(Path(d) / n)])
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def restore(directory: Path, source: Path) -> None:
    """Put PLUMED's outputs back as they were at a checkpoint (`snapshot`)."""
    if not source.is_dir():
        raise SimulationError(f"{source}: the PLUMED files of the last checkpoint are missing; cannot resume the bias (use --overwrite to start again)")
    clean(directory)
    shutil.copytree(source, directory, dirs_exist_ok=True)


def rotate_log(directory: Path) -> None:
    """Keep the log of an earlier PLUMED session as plumed.log.1, .2, ..."""
    log = directory / LOG_NAME
    if log.is_file():
        k = 1
        while (directory / f"{LOG_NAME}.{k}").exists():
            k += 1
        os.replace(log, directory / f"{LOG_NAME}.{k}")


# ----------------------------------------------------------------------------- the force


class PlumedBias:
    """One PLUMED instance biasing OpenMM (see the module docstring).

    ``PlumedBias(directory, plumed_dat, masses, charges, timestep_ps, temperature, periodic,
    restart=..., done_step=...)``; `force()` gives the `openmm.PythonForce` for a System.
    PLUMED runs with ``directory`` as working directory (output files land there). The PLUMED
    step is OpenMM's step count minus `step_offset`. While not `active` (energy minimisation,
    velocity set-up) the force is zero and PLUMED is not called.
    """

    def __init__(self, directory: str | Path, plumed_dat: str | Path, masses, charges, timestep_ps: float, temperature: float, periodic: bool,
                 *, restart: bool = False, done_step: int | None = None):
        plumed, kernel = load_plumed(SimulationError)
        from openmm import unit

        self.dir = Path(directory).resolve()
        self.input = Path(plumed_dat).resolve()
        self.log = self.dir / LOG_NAME
        self.masses = np.ascontiguousarray(masses, dtype=np.float64)
        self.n_atoms = len(self.masses)
        self.charges = np.ascontiguousarray(np.zeros(self.n_atoms) if charges is None else charges, dtype=np.float64)
        self.periodic = bool(periodic)
        self.step_offset = 0
        self.active = False
        self.done_step = done_step  # a step whose update PLUMED already made (checkpoint)
        self.error: SimulationError | None = None
        self.last_bias = 0.0
        self.n_calcs = self.n_updates = 0
        self.seconds = 0.0
        self._nm = unit.nanometer
        self._forces = np.zeros((self.n_atoms, 3))
        self._virial = np.zeros((3, 3))
        self._bias = np.zeros(1)
        self._flag = np.zeros(1, dtype=np.intc)
        self._zero = np.zeros((self.n_atoms, 3))
        self._pending: int | None = None  # step whose update is owed
        self._cache: list[dict] = []  # evaluations of the current step (same bias)
        self._cache_step: int | None = None
        self._request: dict | None = None  # the last evaluation OpenMM asked for
        self._calc: dict | None = None  # the last configuration PLUMED calculated
        self._serial = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        self._p = None
        try:
            with self._here():
                self._p = start_plumed(plumed, kernel, (
                    ("setMDEngine", "openmm"), ("setNatoms", self.n_atoms), ("setMDEnergyUnits", 1.0), ("setMDLengthUnits", 1.0),
                    ("setMDTimeUnits", 1.0), ("setMDMassUnits", 1.0), ("setMDChargeUnits", 1.0), ("setTimestep", float(timestep_ps)),
                    ("setKbT", BOLTZMANN * float(temperature)), ("setRestart", int(bool(restart))), ("setLogFile", str(self.log)),
                    ("setPlumedDat", str(self.input))))
        except Exception as err:
            raise SimulationError(f"{self.input}: PLUMED could not start: {plumed_message(err, self.log)} (log: {self.log})") from None

    # -- OpenMM side ---------------------------------------------------------------------
    def force(self):
        """A new `openmm.PythonForce` computed by this object, in force group `BIAS_GROUP`."""
        import openmm

        if not hasattr(openmm, "PythonForce"):
            raise SimulationError(f"--plumed needs openmm.PythonForce, which OpenMM {openmm.__version__} lacks (tested with 8.6.1)")
        f = openmm.PythonForce(self)
        f.setUsesPeriodicBoundaryConditions(self.periodic)
        f.setForceGroup(BIAS_GROUP)
        f.setName("PLUMED bias")
        return f

    def __call__(self, state):
        if not self.active:
            return 0.0, self._zero
        try:
            step = state.getStepCount() - self.step_offset
            pos = state.getPositions(asNumpy=True).value_in_unit(self._nm)
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(self._nm) if self.periodic else None
            return self.evaluate(step, pos, box)
        except SimulationError as err:
            self.error = err
            raise
        except Exception as err:
            self.error = SimulationError(f"PLUMED bias: {type(err).__name__}: {err}")
            raise

    # -- PLUMED side ---------------------------------------------------------------------
    def evaluate(self, step: int, positions, box=None) -> tuple[float, np.ndarray]:
        """Bias energy (kJ/mol) and forces (kJ/mol/nm) at PLUMED step ``step`` for positions
        (n, 3) and box vectors (3, 3, rows) in nm; makes the owed update of an earlier step first."""
        if self._pending is not None and step != self._pending:
            self._update()
        if step != self._cache_step:
            self._cache, self._cache_step = [], step
        pos = np.ascontiguousarray(positions, dtype=np.float64)
        cell = None if box is None else np.ascontiguousarray(box, dtype=np.float64)
        for entry in self._cache:
            if np.array_equal(entry["pos"], pos) and (cell is None or np.array_equal(entry["box"], cell)):
                break
        else:
            entry = self._calculate(step, pos, cell)
            self._cache.append(entry)
        self._request = entry
        if step != self.done_step:
            self._pending = step
        return entry["energy"], entry["forces"]

    def checkpoint(self, context) -> int:
        """At an MD checkpoint: PLUMED's update of the context's step, at its configuration,
        with every PLUMED file flushed; returns the PLUMED step (see the module docstring)."""
        state = context.getState(getPositions=True)
        step = state.getStepCount() - self.step_offset
        if step == self.done_step:
            return step
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(self._nm) if self.periodic else None
        self.evaluate(step, state.getPositions(asNumpy=True).value_in_unit(self._nm), box)
        self._update(flush=True)
        self.done_step = step
        return step

    def finalize(self) -> None:
        if self._p is not None:
            with self._here():
                self._p.finalize()
            self._p = None

    def _calculate(self, step: int, pos: np.ndarray, cell: np.ndarray | None) -> dict:
        p = self._p
        t0 = time.perf_counter()
        try:
            with self._here():
                share_step(p, step, pos, cell, self.masses, self.charges, self._forces, self._virial)
                p.cmd("prepareCalc")
                p.cmd("isEnergyNeeded", self._flag)
                if self._flag[0]:
                    raise SimulationError(f"{self.input}: the PLUMED input needs the potential energy (ENERGY or an action using it); "
                                          f"molenv simulate cannot pass it (the bias is one force inside OpenMM)")
                p.cmd("performCalcNoUpdate")
                p.cmd("getBias", self._bias)
        except SimulationError:
            raise
        except Exception as err:
            raise SimulationError(f"{self.input}: PLUMED stopped at step {step}: {plumed_message(err, self.log)} (log: {self.log})") from None
        finally:
            self.seconds += time.perf_counter() - t0
        self.n_calcs += 1
        self._serial += 1
        self.last_bias = float(self._bias[0])
        entry = {"step": step, "pos": pos, "box": cell, "energy": self.last_bias, "forces": self._forces.copy(), "serial": self._serial}
        self._calc = entry
        return entry

    def _update(self, flush: bool = False) -> None:
        """PLUMED's update for the owed step, at the configuration OpenMM evaluated last."""
        req = self._request
        if self._calc is None or self._calc["serial"] != req["serial"]:
            self._calculate(req["step"], req["pos"], req["box"])  # PLUMED calculated another configuration since
        t0 = time.perf_counter()
        try:
            with self._here():
                if flush:
                    self._p.cmd("doCheckPoint", 1)
                self._p.cmd("update")
                if flush:
                    self._p.cmd("doCheckPoint", 0)
        except Exception as err:
            raise SimulationError(f"{self.input}: PLUMED stopped at step {req['step']}: {plumed_message(err, self.log)} (log: {self.log})") from None
        finally:
            self.seconds += time.perf_counter() - t0
        self.n_updates += 1
        self._pending = None
        self._cache = []  # the bias may have changed (hills, kernels)

    @contextlib.contextmanager
    def _here(self):
        """PLUMED's relative file names are relative to the working directory: `dir` during PLUMED calls."""
        old = os.getcwd()
        os.chdir(self.dir)
        try:
            yield
        finally:
            os.chdir(old)


def validate(plumed_dat: str | Path, n_atoms: int, timestep_ps: float, temperature: float, periodic: bool) -> None:
    """Start PLUMED once with the input (in a scratch directory) so that errors in it stop a
    new run before any MD."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="molenv-plumed-check-") as tmp:
        bias = PlumedBias(tmp, plumed_dat, np.ones(n_atoms), None, timestep_ps, temperature, periodic)
        bias.finalize()


__all__ = ["BIAS_GROUP", "MD_GROUPS", "PlumedBias", "PlumedOptions", "PlumedError", "check_input", "prepare_input", "snapshot", "restore",
           "clean", "rotate_log", "validate"]
