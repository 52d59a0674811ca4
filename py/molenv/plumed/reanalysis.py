"""Feed any trajectory MDAnalysis reads to PLUMED through its Python interface.

`plumed driver` reads only a few formats (xyz, gro, xtc/trr, dcd through molfile...) and
has no LAMMPS dump reader; `reanalyse` reads the frames with MDAnalysis and passes them to
a `plumed.Plumed()` object of the kernel that `MOLENV_CLASSIFY` was compiled against, as an
MD code would (``setMDEngine``, ``setNatoms``, ``setMDLengthUnits`` (A), ``setTimestep``,
``setPlumedDat``, ``init``, then per frame ``setStep``, ``setBox``, ``setPositions``,
``setMasses``, ``setCharges``, ``setForces``, ``setVirial``, ``calc``).

Conventions (the same as ``plumed driver``):

- **atoms**: PLUMED atom k is the k-th atom of the file as MDAnalysis orders it (1-based);
  for LAMMPS data and dump files MDAnalysis sorts atoms by id, so PLUMED atom k is LAMMPS
  atom id k (as with ``fix plumed``) when ids run 1..N. The whole file is passed, no selection.
- **steps and time**: the step of a frame is its index in the file (0-based, also with
  ``start``/``stop``/``step``), and PLUMED's time is step x timestep, with the timestep by
  default the time between the first two frames of the file (1 ps for one frame), so
  PLUMED's time column equals the file's times when the file starts at time 0.
- **units**: positions and cell in A (``setMDLengthUnits`` 0.1 nm), time in ps; write
  ``UNITS LENGTH=A`` in the input to give PLUMED lengths (e.g. ``REGION_*``) in A.
- **masses and charges**: from the file where it has them (MDAnalysis' guessed masses where
  it does not, 1 if those are not positive); charges 0 where the file has none.
- **box**: the cell vectors of each frame (triclinic ok); none for frames without a box,
  so that PLUMED sees no periodicity (a cluster).

For the analysis of a ``MOLENV_CLASSIFY`` action (`molenv.plumed.inputs.ClassifyAction`: its
model, its molecules as PLUMED reads them, ``FILE_STRIDE``), `ProbabilityCollector` adds a
``MOLENV_PROBABILITIES`` action to the input PLUMED runs and takes its matrix (the action's
per-molecule probabilities) through PLUMED's data interface at the steps that are multiples
of ``FILE_STRIDE``, with the per-frame geometry that `molenv.analysis` needs, so that they
become a `ClassificationResult` with the same populations, core/surface split, region, plots
and extended XYZ as `molenv classify`. No ``PROB_FILE`` is needed (one in the input is still
written).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.analysis import ClassificationResult, FrameRecord, frame_record
from molenv.frames import Centre, MolecularFrame, box_from_file, box_matrix
from molenv.plumed.engine import PlumedError, share_step, start_plumed
from molenv.plumed.engine import load_plumed as _load_plumed
from molenv.plumed.engine import plumed_message as _plumed_message
from molenv.plumed.inputs import ClassifyAction

__all__ = [
    "ReanalyseError",
    "load_plumed",
    "open_universe",
    "PlumedFeeder",
    "reanalyse",
    "ReanalyseRun",
    "ProbabilityCollector",
    "feed_frames",
    "masses_charges",
]


class ReanalyseError(PlumedError):
    """A trajectory, PLUMED input or PLUMED run that failed; the message names the file and problem."""


# ----------------------------------------------------------------------------- PLUMED


def load_plumed():
    """The `plumed` Python module and the kernel path (`molenv.plumed.engine.load_plumed`);
    problems raise `ReanalyseError`."""
    return _load_plumed(ReanalyseError)


class PlumedFeeder:
    """One PLUMED instance fed frame by frame (a context manager; `finalize` flushes outputs).

    ``PlumedFeeder(plumed_dat, n_atoms, timestep, masses=..., charges=..., log=...)``, then
    ``feed(step, positions (n, 3) A, cell (3, 3) A rows or None)`` per frame.
    """

    def __init__(self, plumed_dat: str | Path, n_atoms: int, timestep: float, *, masses=None, charges=None, log: str | Path = "plumed.log"):
        plumed, kernel = load_plumed()
        self.plumed_dat = Path(plumed_dat)
        if not self.plumed_dat.is_file():
            raise ReanalyseError(f"{self.plumed_dat}: PLUMED input not found")
        self.n_atoms = int(n_atoms)
        self.masses = np.ascontiguousarray(np.ones(n_atoms) if masses is None else masses, dtype=np.float64)
        self.charges = np.ascontiguousarray(np.zeros(n_atoms) if charges is None else charges, dtype=np.float64)
        self.log = Path(log)
        self.forces = np.zeros((n_atoms, 3))
        self.virial = np.zeros((3, 3))
        try:
            self._p = start_plumed(plumed, kernel, (
                ("setMDEngine", "python"),
                ("setNatoms", self.n_atoms),
                ("setMDLengthUnits", 0.1),  # A
                ("setMDTimeUnits", 1.0),  # ps
                ("setTimestep", float(timestep)),
                ("setLogFile", str(log)),
                ("setPlumedDat", str(self.plumed_dat)),
            ))
        except Exception as err:  # PLUMED raises its own exception types
            raise ReanalyseError(f"{self.plumed_dat}: PLUMED could not start: {_plumed_message(err, log)} (log: {log})") from None

    def read_line(self, line: str) -> None:
        """One more line of input, after those of the input file."""
        try:
            self._p.cmd("readInputLine", line)
        except Exception as err:
            raise ReanalyseError(f"{self.plumed_dat}: PLUMED cannot read '{line}': {_plumed_message(err, self.log)} (log: {self.log})") from None

    def matrix(self, label: str, stride: int = 1) -> np.ndarray:
        """A (rows, columns) buffer that PLUMED fills with its matrix value `label` at the steps
        that are multiples of `stride`, through its data interface: a ``GET`` action and the
        buffer shared with ``setMemoryForData``."""
        # `getDataRank label` would make the GET action itself, but with STRIDE=1 (computing
        # what it reads at every step); this one has the label under which `getDataShape` and
        # `setMemoryForData` find it
        self.read_line(f"grab_{label}: GET ARG={label} STRIDE={int(stride)}")
        shape = np.zeros(2, dtype=np.int_)
        try:
            self._p.cmd(f"getDataShape {label}", shape)
            buffer = np.zeros(shape, dtype=np.float64)
            self._p.cmd(f"setMemoryForData {label}", buffer)
        except Exception as err:
            raise ReanalyseError(f"{self.plumed_dat}: PLUMED cannot pass the matrix {label}: {_plumed_message(err, self.log)} (log: {self.log})") from None
        return buffer

    def feed(self, step: int, positions: np.ndarray, cell: np.ndarray | None) -> None:
        pos = np.ascontiguousarray(positions, dtype=np.float64)
        if pos.shape != (self.n_atoms, 3):
            raise ReanalyseError(f"step {step}: {pos.shape} positions for {self.n_atoms} atoms")
        cell = None if cell is None else np.ascontiguousarray(cell, dtype=np.float64)
        try:
            share_step(self._p, step, pos, cell, self.masses, self.charges, self.forces, self.virial)
            self._p.cmd("calc")
        except Exception as err:
            raise ReanalyseError(f"{self.plumed_dat}: PLUMED stopped at step {step}: {_plumed_message(err, self.log)} (log: {self.log})") from None

    def finalize(self) -> None:
        if self._p is not None:
            self._p.finalize()
            self._p = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finalize()


# ----------------------------------------------------------------------------- trajectories


def open_universe(trajectory: str | Path, topology: str | Path | None = None, *, format: str | None = None, topology_format: str | None = None):
    """An MDAnalysis Universe of a trajectory (all atoms, file order): `molenv.trajectory.open_universe`
    with its errors as ReanalyseError."""
    from molenv.trajectory import TrajectoryError
    from molenv.trajectory import open_universe as open_trajectory

    try:
        return open_trajectory(trajectory, topology, format=format, topology_format=topology_format)[0]
    except TrajectoryError as err:
        raise ReanalyseError(str(err)) from None


def _cell(ts, where) -> np.ndarray | None:
    """The cell vectors of a frame, None where the file has no box; a degenerate box is an
    error, not "no box"."""
    from molenv.frames import FrameError

    try:
        box = box_from_file(ts.dimensions)
    except FrameError as err:
        raise ReanalyseError(f"{where}: frame {ts.frame}: {err}") from None
    return None if box is None else box_matrix(box)


def masses_charges(universe) -> tuple[np.ndarray, np.ndarray]:
    atoms = universe.atoms
    masses = np.asarray(atoms.masses, dtype=np.float64) if hasattr(atoms, "masses") else np.ones(atoms.n_atoms)
    masses = np.where(masses > 0, masses, 1.0)
    charges = np.asarray(atoms.charges, dtype=np.float64) if hasattr(atoms, "charges") else np.zeros(atoms.n_atoms)
    return masses, charges


def default_timestep(universe) -> float:
    """Time between the first two frames of the file (ps), 1 for a single frame."""
    traj = universe.trajectory
    if len(traj) < 2:
        return 1.0
    from molenv.trajectory import read_timestep

    t0 = read_timestep(traj, 0, traj.filename).time
    t1 = read_timestep(traj, 1, traj.filename).time
    read_timestep(traj, 0, traj.filename)
    return float(t1 - t0) if t1 > t0 else 1.0


# ----------------------------------------------------------------------------- the run


@dataclass
class ReanalyseRun:
    """What `reanalyse` did: frames fed (their file indices and times), and the per-frame
    records collected for analysis (empty without ``collect``)."""

    n_atoms: int
    timestep: float
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    records: list[FrameRecord] = field(default_factory=list)


@dataclass
class ProbabilityCollector:
    """The per-molecule probabilities of a `ClassifyAction` and the geometry of its molecules
    (centres, boxes, coordination numbers) at the steps that are multiples of its
    ``FILE_STRIDE``, for `reanalyse`'s ``collect``.

    ``start(feeder)`` adds ``MOLENV_PROBABILITIES CLASSIFIER=<label>`` to the input PLUMED
    runs and shares a buffer for its matrix (molecules x classes), which PLUMED fills at those
    steps; a call per frame then makes a `FrameRecord` of the probabilities and geometry, and
    `result` stacks the records.
    """

    action: ClassifyAction
    molecules: np.ndarray  # (N, apm) 0-based file atom indices
    centre_atom: Centre
    atomic_numbers: np.ndarray  # (n_atoms,) for the extended XYZ; 0 = unknown
    classes: list[str]  # the model's: the first columns of the matrix
    with_coordination: bool = True
    probabilities: np.ndarray | None = field(default=None, init=False)  # PLUMED's buffer

    def __post_init__(self):
        if self.action.label.startswith("@"):  # a number `classify_actions` gave it, not PLUMED's
            raise ReanalyseError(f"{self.action.where}: the MOLENV_CLASSIFY action has no label, so its probabilities cannot be read; "
                                 "label it (cls: MOLENV_CLASSIFY ...)")

    @property
    def stride(self) -> int:
        return self.action.file_stride

    def start(self, feeder: PlumedFeeder) -> None:
        """Once PLUMED has read the input: the matrix and its buffer."""
        label = f"molenv_probabilities_{self.action.label}"
        feeder.read_line(f"{label}: MOLENV_PROBABILITIES CLASSIFIER={self.action.label}")
        self.probabilities = feeder.matrix(label, self.stride)
        expected = (len(self.molecules), len(self.classes))
        if self.probabilities.shape != expected:
            raise ReanalyseError(f"{self.action.where}: PLUMED gives {self.probabilities.shape[0]} x {self.probabilities.shape[1]} probabilities "
                                 f"for the {expected[0]} molecules and {expected[1]} classes of the model of {self.action.label}")

    def frame(self, positions: np.ndarray, dims, time: float) -> MolecularFrame:
        box = None if self.action.nopbc else box_from_file(dims)  # FrameError for a degenerate box, not "no box"
        return MolecularFrame(positions.astype(np.float64), box, self.molecules, self.atomic_numbers, time)

    def __call__(self, step: int, ts, universe) -> FrameRecord | None:
        if step % self.stride:
            return None
        frame = self.frame(universe.atoms.positions, ts.dimensions, ts.time)
        return frame_record(frame, step, self.probabilities.copy(), self.centre_atom, with_coordination=self.with_coordination)

    def result(self, records: list[FrameRecord], output_activation: str) -> ClassificationResult:
        """The `ClassificationResult` of the records collected (`ReanalyseRun.records`)."""
        return ClassificationResult.stack(records, self.classes, output_activation=output_activation,
                                          source=f"MOLENV_CLASSIFY {self.action.label} ({self.action.where})")


def feed_frames(feeder: PlumedFeeder, universe, frames, run: ReanalyseRun, collect: ProbabilityCollector | None = None, *, progress: bool = False) -> None:
    """Feed the frames of `universe` with file indices `frames` (in order) to PLUMED, their
    index as the step; the frames, times and ``collect``'s records go to `run`."""
    from tqdm.auto import tqdm

    from molenv.trajectory import check_positions, read_timestep

    where = universe.trajectory.filename
    for index in tqdm(frames, desc="reanalyse", unit="frame", disable=not progress):
        ts = read_timestep(universe.trajectory, index, where)
        # NaN would reach PLUMED as something else (two atoms that coincide), or not be noticed
        check_positions(universe.atoms.positions, where, index)
        feeder.feed(index, universe.atoms.positions, _cell(ts, where))
        run.frames.append(index)
        run.times.append(float(ts.time))
        if collect is not None:
            record = collect(index, ts, universe)
            if record is not None:
                run.records.append(record)


def reanalyse(
    plumed_dat: str | Path,
    trajectory: str | Path,
    topology: str | Path | None = None,
    *,
    format: str | None = None,
    topology_format: str | None = None,
    timestep: float | None = None,
    start: int | None = None,
    stop: int | None = None,
    step: int | None = None,
    log: str | Path = "plumed.log",
    progress: bool = True,
    collect: ProbabilityCollector | None = None,
    universe=None,
    backend: str = "serial",
    n_workers: int = 1,
    scheduler: str | None = None,
) -> ReanalyseRun:
    """Run the PLUMED input `plumed_dat` over the frames of `trajectory` (see the module
    docstring for atoms, steps, time and units). Output files are written where the input
    says, relative to the current directory, as with ``plumed driver``. ``collect.start(feeder)``
    is called once PLUMED has read the input, and ``collect(step, ts, universe)`` after PLUMED's
    calculation of every frame; what it returns (not None) goes to ``records``.

    ``backend`` "multiprocessing" or "dask" (``n_workers``, a dask.distributed ``scheduler``
    address) runs blocks of frames on worker processes and joins their outputs into those of
    the serial run (`molenv.plumed.block_reanalysis`, which also says which inputs it
    refuses: those whose actions carry history from frame to frame)."""
    from molenv.trajectory import check_complete

    if step is not None and step < 1:
        raise ReanalyseError(f"step must be >= 1 (every step-th frame), got {step}")
    u = universe if universe is not None else open_universe(trajectory, topology, format=format, topology_format=topology_format)
    where = u.trajectory.filename
    frames = range(*slice(start, stop, step).indices(len(u.trajectory)))
    check_complete(u.trajectory, where, frames, stop)  # a truncated file is refused, not read up to where it breaks off
    dt = default_timestep(u) if timestep is None else float(timestep)
    if not dt > 0:
        raise ReanalyseError(f"the timestep must be > 0, got {dt}")
    if backend != "serial":
        from molenv.plumed.block_reanalysis import reanalyse_blocks

        return reanalyse_blocks(Path(plumed_dat), u, list(frames), dt, trajectory=trajectory, topology=topology, format=format,
                                topology_format=topology_format, log=Path(log), backend=backend, n_workers=n_workers, scheduler=scheduler,
                                progress=progress, collect=collect)
    if scheduler is not None:
        raise ReanalyseError(f"a dask scheduler address needs backend 'dask', not {backend!r}")
    masses, charges = masses_charges(u)
    run = ReanalyseRun(u.atoms.n_atoms, dt)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Reader has no dt information")
        with PlumedFeeder(plumed_dat, u.atoms.n_atoms, dt, masses=masses, charges=charges, log=log) as feeder:
            if collect is not None:
                collect.start(feeder)
            feed_frames(feeder, u, frames, run, collect, progress=progress)
    return run
