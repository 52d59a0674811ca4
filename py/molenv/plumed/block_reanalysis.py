"""`molenv reanalyse` over blocks of frames on worker processes (``--backend
multiprocessing`` or ``dask``), with outputs identical to the serial run.

The frames are cut into contiguous blocks (`molenv.frameblocks`); each block runs a PLUMED
instance of its own, with the same input, the same timestep and the same step numbers (a
frame's step is its index in the file), in a directory of its own, so that what PLUMED does
at a step (``STRIDE``, ``FILE_STRIDE``, time columns, ``MOVINGRESTRAINT`` schedules) is what
the serial run does at that step. The client then joins every output file of the blocks
in block order into the file the serial run writes (`merge_outputs`), with PLUMED's
backup of a file already there (``bck.N.name``).

**Which inputs.** A block starts PLUMED afresh at its first frame, so the result equals
the serial run's only if nothing PLUMED computes or writes at a step depends on an earlier
step. The rule: every action PLUMED creates from the input (after its shortcuts are
expanded and ``INCLUDE`` files read: the ``Action NAME`` lines of its log at start-up)
must be a function of the current frame alone; the actions of `HISTORY_ACTIONS` are not,
and an input with any of them is refused, naming the action and why, before any frame is
read. They are: what accumulates over frames (``ACCUMULATE``, which ``AVERAGE``,
``HISTOGRAM``, ``KDE`` with accumulation and ``REWEIGHT_*`` averages expand to; ``COLLECT``
behind ``COLLECT_FRAMES`` and the dimensionality reductions), biases that build up or adapt
(``METAD``, ``PBMETAD``, ``OPES_*``, ``EDS``, ``MAXENT``, ``VES_*`` and their optimisers,
...), state kept from step to step (``COMMITTOR`` stops at the first event, ``READ`` reads
the next line of its file at each step, ``DUMPMASSCHARGE`` writes once at the first step,
``RESTART`` appends to earlier files), and outputs rewritten at every print (``DUMPGRID``,
``DUMPCUBE``, ``DUMPVECTOR``, ``DUMPPDB``), whose files cannot be joined. Neighbour lists
updated every ``NL_STRIDE`` steps (the ``NLIST`` flag of ``COORDINATION`` etc.) are refused
too: a block builds its list at its first frame, not at the serial run's last multiple of
``NL_STRIDE``. Static biases (``RESTRAINT``, walls, ``EXTERNAL`` on a fixed grid,
``MOVINGRESTRAINT``, whose schedule follows the step), ``UPDATE_IF`` (a condition on the
current frame) and ``MOLENV_CLASSIFY`` (its Verlet list is rebuilt whenever an atom moved
more than half the skin, so it holds every pair within the cutoff whatever frame built it)
are functions of the frame.

**Files.** Relative paths of input files (``MODEL=``, ``STRUCTURE=``, ``REFERENCE=``, the
``FILE=`` of ``LOAD`` and ``INCLUDE``) are made absolute (`absolute_input_paths`); other
input files (``EXTERNAL FILE=``) must be given with absolute paths. Block directories are in
a scratch directory inside the current directory (removed afterwards), so the workers of a
dask.distributed cluster need the current directory, the trajectory and the input files at
the same paths. A file that PLUMED writes in a block is copied whole for the first block
that wrote lines to it; the following blocks' copies lose their leading ``#!`` header lines
(``FIELDS``, ``SET``), which must equal the first's. The PLUMED log (``--log``) is the
blocks' logs one after the other, each after a line naming the block and its frames.
Merging streams file to file and the records of ``--analyse`` are per frame, so memory
does not grow with the trajectory beyond those records.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.frameblocks import check_backend, frame_blocks, run_blocks
from molenv.plumed.reanalysis import PlumedFeeder, ReanalyseError, ReanalyseRun, feed_frames, masses_charges, open_universe

__all__ = ["HISTORY_ACTIONS", "plumed_actions", "check_blockwise", "merge_outputs", "reanalyse_blocks"]

_ACCUMULATES = "accumulates over frames"
_ADAPTS = "a bias that builds up or adapts over the run"
_REWRITES = "rewrites its file at every print, so the blocks' files cannot be joined"

# actions whose numbers or files at a step depend on earlier steps (see the module docstring)
HISTORY_ACTIONS = {
    "ACCUMULATE": _ACCUMULATES,
    "COLLECT": _ACCUMULATES,
    "COLLECT_FRAMES": _ACCUMULATES,
    "AVERAGE": _ACCUMULATES,
    "HISTOGRAM": _ACCUMULATES,
    "MULTICOLVARDENS": _ACCUMULATES,
    "REWEIGHT_BIAS": "weights for averages over frames",
    "REWEIGHT_METAD": "weights for averages over frames",
    "METAD": _ADAPTS,
    "PBMETAD": _ADAPTS,
    "OPES_METAD": _ADAPTS,
    "OPES_METAD_EXPLORE": _ADAPTS,
    "OPES_EXPANDED": _ADAPTS,
    "EDS": _ADAPTS,
    "MAXENT": _ADAPTS,
    "ABMD": _ADAPTS,
    "DRR": _ADAPTS,
    "FISST": _ADAPTS,
    "METAINFERENCE": _ADAPTS,
    "RESCALE": _ADAPTS,
    "VES_LINEAR_EXPANSION": _ADAPTS,
    "VES_DELTA_F": _ADAPTS,
    "OPT_AVERAGED_SGD": _ADAPTS,
    "OPT_ADAM": _ADAPTS,
    "OPT_DUMMY": _ADAPTS,
    "COMMITTOR": "stops the run at the first frame that meets its condition",
    "READ": "reads the next line of its file at every step",
    "DUMPMASSCHARGE": "writes its file once, at the first step",
    "RESTART": "appends to the files of an earlier run",
    "DUMPGRID": _REWRITES,
    "DUMPCUBE": _REWRITES,
    "DUMPVECTOR": _REWRITES,
    "DUMPPDB": _REWRITES,
}

_ACTION_LINE = re.compile(r"^PLUMED: Action (\S+)\s*$", re.MULTILINE)
_CWD = threading.Lock()  # PLUMED writes relative to the process' working directory: one block at a time per process
INPUT_NAME = "input.dat"


@contextlib.contextmanager
def _working_directory(directory: Path):
    with _CWD:
        here = os.getcwd()
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(here)


def plumed_actions(input_file: Path, n_atoms: int, timestep: float, scratch: Path) -> list[str]:
    """The names of the actions PLUMED creates from `input_file` (shortcuts expanded,
    ``INCLUDE`` files read), in order, from the log of an instance that only reads the
    input (started in `scratch`, where its output files go)."""
    log = scratch / "actions.log"
    with _working_directory(scratch), PlumedFeeder(input_file, n_atoms, timestep, log=log):
        pass
    return _ACTION_LINE.findall(log.read_text(errors="replace"))


def check_blockwise(actions: list[str], plumed_dat: str | Path, text: str) -> None:
    """ReanalyseError naming the first action of `actions` (or the ``NLIST`` flag of the
    input `text`) that carries history from frame to frame (`HISTORY_ACTIONS`)."""
    for name in actions:
        if name in HISTORY_ACTIONS:
            raise ReanalyseError(f"{plumed_dat}: the action {name} {HISTORY_ACTIONS[name]}: its result at a frame depends on earlier frames, "
                                 "so the frames cannot be split into blocks; run it with --backend serial")
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if "NLIST" in words:
            raise ReanalyseError(f"{plumed_dat}: NLIST (a neighbour list rebuilt every NL_STRIDE steps) in '{line.strip()}': a block builds its "
                                 "list at its own first frame, so values would depend on where the blocks start; drop NLIST, or run it with "
                                 "--backend serial")
        if any(w.upper() == "RESTART=YES" for w in words):
            raise ReanalyseError(f"{plumed_dat}: RESTART=YES in '{line.strip()}' appends to the files of an earlier run; run it with --backend serial")


# ----------------------------------------------------------------------------- one block


@dataclass
class BlockJob:
    """What a worker needs to run PLUMED over one block of frames."""

    index: int
    frames: np.ndarray  # file indices, in order
    input_file: Path  # the input with absolute input paths, in the scratch directory
    directory: Path  # where this block's PLUMED writes (its working directory)
    log: Path
    trajectory: str
    topology: str | None
    format: str | None
    topology_format: str | None
    timestep: float
    collect: object = None  # a ProbabilityCollector, not yet started


@dataclass
class BlockResult:
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    records: list = field(default_factory=list)


def run_block(job: BlockJob) -> BlockResult:
    """PLUMED over the frames of one block, in the block's directory (on a worker)."""
    with _working_directory(job.directory):
        return run_block_here(job)


def run_block_here(job: BlockJob) -> BlockResult:
    """`run_block` in the current directory, which must be the block's."""
    universe = open_universe(job.trajectory, job.topology, format=job.format, topology_format=job.topology_format)
    masses, charges = masses_charges(universe)
    run = ReanalyseRun(universe.atoms.n_atoms, job.timestep)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Reader has no dt information")
        with PlumedFeeder(job.input_file, universe.atoms.n_atoms, job.timestep, masses=masses, charges=charges, log=job.log) as feeder:
            if job.collect is not None:
                job.collect.start(feeder)
            feed_frames(feeder, universe, [int(i) for i in job.frames], run, job.collect)
    return BlockResult(run.frames, run.times, run.records)


def run_block_in_child(job: BlockJob) -> BlockResult:
    """`run_block` in a fresh Python process (`molenv.plumed.block_child`) started in the
    block's directory, for the workers of a dask.distributed cluster.

    Why a process: such a worker is long-lived and runs the task in a thread beside dask's
    event loop and comm threads, so PLUMED would be loaded and run there, and `run_block`'s
    ``os.chdir`` would move the whole worker; that failed intermittently (a block's PLUMED
    died at start with a garbled ``cmd`` key). A child has PLUMED to itself in its main
    thread, in its own working directory. It is a subprocess, not `multiprocessing`, since
    dask workers are daemonic and may not have children of that kind. The job goes in on
    stdin; the result, or the exception the block raised, comes back pickled in a file next
    to the block's log (not in its directory, whose files are all PLUMED's outputs).
    """
    import molenv

    outcome_file = job.log.with_suffix(".outcome")
    outcome_file.unlink(missing_ok=True)  # from an earlier try of this block on a worker that died
    # the child imports the molenv this worker runs, wherever it is installed
    path = os.pathsep.join(filter(None, [str(Path(molenv.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))
    child = subprocess.run([sys.executable, "-m", "molenv.plumed.block_child", str(outcome_file)], input=pickle.dumps(job),
                           cwd=job.directory, env=dict(os.environ, PYTHONPATH=path), stderr=subprocess.PIPE)
    if not outcome_file.is_file():
        stderr = child.stderr.decode(errors="replace").strip().splitlines()[-20:]
        raise ReanalyseError(f"block {job.index + 1} (frames {job.frames[0]}-{job.frames[-1]}): its PLUMED process ended with status "
                             f"{child.returncode} and no result" + "".join(f"\n  {line}" for line in stderr))
    outcome = pickle.loads(outcome_file.read_bytes())
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


# ----------------------------------------------------------------------------- joining


def _header_and_rest(handle) -> tuple[list[bytes], bytes]:
    """The leading ``#!`` lines of an open binary file and the first line after them."""
    header = []
    line = handle.readline()
    while line.startswith(b"#!"):
        header.append(line)
        line = handle.readline()
    return header, line


def _back_up(path: Path) -> None:
    """PLUMED's backup of an output file that is already there: renamed to ``bck.N.name``
    with the first free N."""
    if not path.exists():
        return
    for n in range(1000):
        backup = path.with_name(f"bck.{n}.{path.name}")
        if not backup.exists():
            os.replace(path, backup)
            return
    raise ReanalyseError(f"{path}: cannot back it up: bck.0-999.{path.name} are all there")


def merge_outputs(directories: list[Path], destination: Path) -> list[Path]:
    """Join the files the blocks wrote (`directories`, in block order) into `destination`
    (see the module docstring); returns the files written."""
    names = sorted({p.relative_to(d) for d in directories for p in d.rglob("*") if p.is_file()})
    written = []
    for name in names:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _back_up(target)
        header = None
        with open(target, "wb") as out:
            for directory in directories:
                part = directory / name
                if not part.is_file():
                    continue
                with open(part, "rb") as handle:
                    lines, first = _header_and_rest(handle)
                    if lines and header is None:
                        header = lines
                        out.writelines(lines)
                    elif lines and lines != header:
                        raise ReanalyseError(f"{name}: the blocks wrote different headers ({b''.join(lines).decode(errors='replace').strip()!r} "
                                             f"after {b''.join(header).decode(errors='replace').strip()!r}): they cannot be joined; run it with "
                                             "--backend serial")
                    out.write(first)
                    shutil.copyfileobj(handle, out)
        written.append(target)
    return written


def _output_directories(text: str) -> set[Path]:
    """The relative directories of the ``FILE=`` values of an input, which PLUMED needs to
    exist in every block's directory as in the current one."""
    return {Path(m).parent for m in re.findall(r"(?<!\S)FILE=(\S+)", text) if not os.path.isabs(m) and str(Path(m).parent) != "."}


# ----------------------------------------------------------------------------- the run


def reanalyse_blocks(plumed_dat: Path, universe, frames: list[int], timestep: float, *, trajectory, topology, format, topology_format,
                     log: Path, backend: str, n_workers: int, scheduler: str | None, progress: bool, collect=None):
    """`molenv.plumed.reanalysis.reanalyse` over blocks of `frames` on the workers of
    `backend` (`molenv.frameblocks`); returns its `ReanalyseRun`."""
    from molenv.plumed.inputs import absolute_input_paths

    check_backend(backend, n_workers, scheduler, ReanalyseError)
    plumed_dat = Path(plumed_dat)
    if not plumed_dat.is_file():
        raise ReanalyseError(f"{plumed_dat}: PLUMED input not found")
    text, _ = absolute_input_paths(plumed_dat.read_text())
    here = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix=".molenv-reanalyse-", dir=here))
    input_file = scratch / INPUT_NAME
    jobs = []
    try:
        input_file.write_text(text)
        (scratch / "actions").mkdir()
        check_blockwise(plumed_actions(input_file, universe.atoms.n_atoms, timestep, scratch / "actions"), plumed_dat, text)
        for k, block in enumerate(frame_blocks(frames, n_workers)):
            directory = scratch / f"block-{k}"
            directory.mkdir()
            for sub in _output_directories(text):
                (directory / sub).mkdir(parents=True, exist_ok=True)
            jobs.append(BlockJob(k, block, input_file, directory, scratch / f"block-{k}.log", str(Path(trajectory).resolve()),
                                 None if topology is None else str(Path(topology).resolve()),
                                 format, topology_format, timestep, collect))
        # on a dask.distributed worker each block runs in a process of its own (`run_block_in_child`)
        results = run_blocks(run_block if scheduler is None else run_block_in_child, jobs, backend, n_workers, scheduler, progress=progress, desc="reanalyse")
        merge_outputs([job.directory for job in jobs], here)
        _join_logs(jobs, scratch, Path(log))
    except ReanalyseError as err:
        # PLUMED's messages name the scratch copy of the input and the blocks' logs, which go with the scratch directory
        _join_logs(jobs, scratch, Path(log))
        message = str(err).replace(str(input_file), str(plumed_dat))
        raise ReanalyseError(re.sub(re.escape(str(scratch)) + r"/\S+\.log", str(log), message)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    run = ReanalyseRun(universe.atoms.n_atoms, timestep)
    for result in results:
        run.frames += result.frames
        run.times += result.times
        run.records += result.records
    return run


def _join_logs(jobs: list[BlockJob], scratch: Path, log: Path) -> None:
    """The blocks' PLUMED logs one after the other in `log` (the log of the instance that read
    the input where no block ran), each after a line naming its block and frames."""
    parts = [(f"block {job.index + 1} of {len(jobs)}, frames {job.frames[0]}-{job.frames[-1]}", job.log) for job in jobs if job.log.is_file()]
    if not parts and (scratch / "actions" / "actions.log").is_file():
        parts = [("reading the input", scratch / "actions" / "actions.log")]
    _back_up(log)
    with open(log, "wb") as out:
        for what, path in parts:
            out.write(f"# molenv reanalyse: {what}\n".encode())
            with open(path, "rb") as part:
                shutil.copyfileobj(part, out)
