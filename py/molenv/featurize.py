"""Build a dataset (`molenv.dataset`) from MD trajectories: labels, splits, cached descriptors.

Sources are trajectories of one kind of molecule, each with a polymorph label (a crystal
form, or melt), a temperature, a system kind (crystal, melt, cluster) and a split. They
come from the manifest that data/generate.py writes (`sources_from_manifest`), from the run
directories of `molenv simulate` (`source_from_run`: trajectory, topology, molecule,
label, temperature and system from the run's record) or are given one by one (`Source`).
Every source needs a name of its own: it names the source's file in the dataset
(`source_name` gives the default one).

Checks before any descriptor is computed, each naming the source and its file: every
periodic frame's box must be wide enough for the spec's descriptor cutoff (smallest
perpendicular height of the reduced cell > 2 rmax: the minimum image); a source labelled
melt must have melted (`molenv.order.check_melt`: no frame with crystal-like orientational
order, molecule centres that diffuse over the trajectory; ``melt_check=False`` skips it).

Labels of every molecule of every frame:

- **polymorph**: the source's label (class names in the order given, else in order of first
  appearance); with ``relabel_turned``, the molecules of a crystalline cluster (system
  cluster, label not melt) that have turned away from their orientation in the source's
  first frame (`molenv.order.reoriented`: P2 < 0.5, more than 35 degrees, on some axis; the
  cluster's overall rotation removed) are labelled melt instead, frame by frame: a warm
  cluster in vacuum premelts from its surface, and "form I" is then not true of every
  molecule (docs/training.md);
- **topology**: surface (1) or bulk (0) by `molenv.topology.TopologyRule` (the published rule,
  METHOD.md §4: fewer than 20 molecule centres within the frame's molecule radius + 6 A, self
  counted), the rule the analysis' core/surface split uses too.

Splits (``split_mode``):

- ``"method"`` (default): as in the paper, train on cold crystals and the melt, test on
  warmer crystals and on held-out melt frames. Each source's split is its own (``train``/
  ``val``/``test``: the simulate manifest's ``split`` field, or ``Source.split``); sources
  without one get it from their temperature: crystals and clusters at the training
  temperature (default the lowest crystal temperature) and melts train, crystals at other
  temperatures test. Then, frame by frame in time order: a class that has no test source
  keeps the last ``test_fraction`` of each of its training sources' frames for testing
  (the held-out melt frames), and the last ``val_fraction`` of the remaining training
  frames of every training source is the validation set (early stopping). Trailing blocks
  rather than random frames keep time-correlated frames out of different splits.
- ``"random"``: every source's frames are shuffled (seeded) and cut into
  train / val / test by ``val_fraction`` and ``test_fraction``.

Sources whose split is anything else (e.g. ``demo``: the I/IV interface) are skipped.

**Thermal augmentation** (``augment_temperature``, `molenv.augment`): every periodic crystal
source with training frames below that temperature gets a companion source
``<name>-warmed-<T>K`` (split train, ``augmentation`` in its manifest entry) holding
``augment_copies`` copies of its training frames with extra rigid-molecule motion, as much as
the harmonic approximation asks for to take the crystal from its temperature to T. Its
validation frames stay as they are; melts are not augmented, clusters in vacuum only with
``augment_clusters`` (their widths measured per core and surface group,
`molenv.augment.cluster_fluctuations`). ``augment_expansion`` (a linear strain, e.g. 0.016)
also stretches the warmed copies of periodic crystals (`molenv.augment.expanded`: cell and
molecule centroids, molecules rigid), the thermal expansion that warming alone leaves out.

The dataset is written atomically: into a temporary directory beside ``out``
(``.<name>.featurize-XXXX``), which is renamed to ``out`` when every file and the manifest
(with the SHA-256 of every data file) are written. Replacing a dataset (``overwrite``)
moves the old one aside (``.<name>.replaced-XXXX``), renames the new one in and then
deletes the old one. A featurize that is killed leaves ``out`` as it was (or, between the
two renames, without a dataset) and its temporary directory, never a mix of two datasets.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.constants import file_sha256
from molenv.dataset import MANIFEST, SPLITS, Dataset, DatasetError, write_manifest, write_source
from molenv.descriptors import descriptor_set_to_dict
from molenv.frames import Centre
from molenv.spec import MoleculeSpec, load_spec
from molenv.topology import TOPOLOGY_NAMES, TopologyRule

__all__ = ["Source", "source_name", "source_from_run", "sources_from_manifest", "assign_splits", "label_frame", "featurize"]

SYSTEMS = ("crystal", "melt", "cluster")
TRAIN, VAL, TEST = (SPLITS.index(s) for s in ("train", "val", "test"))


@dataclass
class Source:
    """One trajectory and what it is.

    ``split`` None: derived from the temperature (see the module docstring). ``system``
    None: ``cluster`` if the trajectory has no box, ``melt`` if the label is melt (any
    case), else ``crystal``. ``reader``: keyword options of `molenv.trajectory.Trajectory`
    (``type_elements``, ``start``/``stop``/``step``, ``atom_order``, ...).
    """

    name: str
    trajectory: Path
    label: str
    temperature: float | None = None
    topology: Path | None = None
    system: str | None = None
    split: str | None = None
    reader: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)  # provenance from the simulate manifest or run directory
    molecule: str | None = None  # the spec the run was made with (name or path), where known


def source_name(trajectory: str | Path) -> str:
    """The default name of a source: the run directory's name for a run directory or the
    trajectory of one (``runs/urea-I-100K/trajectory.xtc`` -> ``urea-I-100K``: every run's
    trajectory has the same file name), else the file name without its extensions."""
    path = Path(trajectory)
    if path.is_dir() or (path.parent / "run.json").is_file():
        return (path if path.is_dir() else path.parent).resolve().name
    return path.name.split(".")[0]


# `molenv simulate` modes -> the system kind of their frames (an interface holds two forms, a
# coexistence run a crystal and its melt)
_RUN_SYSTEMS = {"crystal": "crystal", "melt": "melt", "cluster": "cluster", "system": None}


def source_from_run(directory: str | Path) -> Source:
    """The source of a finished `molenv simulate` run directory, from its record (run.json):
    trajectory.xtc and topology.pdb, the molecule spec, the label (the run's ``--label``;
    ``melt`` for a melt), the production temperature, the system kind (crystal / melt /
    cluster; `system` runs: cluster without a box, else from the label) and the run
    directory's name. A field the run does not record (a crystal run without ``--label``)
    is None, for the caller to give."""
    from molenv.simulate.md import RunDirectory

    run = RunDirectory(directory)
    if not run.path.is_dir():
        raise DatasetError(f"{run.path}: run directory not found")
    if not run.exists():
        raise DatasetError(f"{run.path}: not a `molenv simulate` run directory (no run.json)")
    try:
        meta = run.load()
        mode = meta["request"]["mode"]
        stages = meta["stages"]
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{run.file('run.json')}: not the record of a `molenv simulate` run ({err})") from None
    progress = run.progress() or {}
    trajectory, topology = run.file("trajectory.xtc"), run.file("topology.pdb")
    if not progress.get("done") or not trajectory.is_file() or not topology.is_file():
        raise DatasetError(f"{run.path}: the run has not finished (no trajectory.xtc yet); run its command again to finish it: "
                           f"{meta.get('command', 'molenv simulate ...')}")
    if mode not in _RUN_SYSTEMS:
        holds = {"interface": "two crystal forms", "coexistence": "a crystal and its melt"}.get(mode, "no frames")
        raise DatasetError(f"{run.path}: a `molenv simulate {mode}` run holds {holds}, "
                           "not frames of one label; featurize crystal, melt, cluster or system runs")
    system = meta.get("system") or {}
    production = next((st for st in stages if st.get("name") == "production"), stages[-1])
    label = meta.get("label") or ("melt" if mode == "melt" else None)
    kind = _RUN_SYSTEMS[mode] if mode != "system" or system.get("dimensions") is not None else "cluster"
    force_field = (system.get("forcefield") or {}).get("description")
    return Source(name=source_name(run.path), trajectory=trajectory, label=label, temperature=production.get("temperature"), topology=topology,
                  system=kind, origin={"run": str(run.path), "command": meta.get("command"), "force_field": force_field},
                  molecule=system.get("molecule_spec") or meta["request"].get("molecule"))


def sources_from_manifest(path: str | Path, molecule: str | None = None, names: list[str] | None = None) -> list[Source]:
    """Sources of a `molenv simulate` manifest (data/manifest.json): trajectories of
    `molecule` (required when the manifest holds several molecules) whose names match any
    of the shell patterns `names` (all when None). Paths are relative to the manifest."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found")
    try:
        entries = json.loads(path.read_text())["trajectories"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DatasetError(f"{path}: not a `molenv simulate` manifest (a JSON object with 'trajectories'): {err}") from None
    molecules = sorted({e.get("molecule") for e in entries})
    if molecule is None:
        if len(molecules) > 1:
            raise DatasetError(f"{path}: holds trajectories of {', '.join(molecules)}; choose one with --molecule")
    elif molecule not in molecules:
        raise DatasetError(f"{path}: no trajectories of molecule {molecule!r} (it has {', '.join(molecules) or 'none'})")
    out = []
    for e in entries:
        if molecule is not None and e.get("molecule") != molecule:
            continue
        if names and not any(fnmatch.fnmatchcase(e["name"], p) for p in names):
            continue
        try:
            files = e["files"]
            out.append(
                Source(
                    name=e["name"],
                    trajectory=path.parent / files["trajectory"],
                    topology=path.parent / files["topology"] if files.get("topology") else None,
                    label=str(e["label"]),
                    temperature=e.get("temperature_K"),
                    system=e.get("system"),
                    split=e.get("split"),
                    origin={"manifest": str(path), "command": e.get("command"), "force_field": (e.get("force_field") or {}).get("description")},
                )
            )
        except KeyError as err:
            raise DatasetError(f"{path}: trajectory entry {e.get('name')!r} lacks {err}") from None
    if not out:
        raise DatasetError(f"{path}: no trajectories match (molecule {molecule}, names {names})")
    return out


def _trailing(n: int, fraction: float) -> int:
    """Frames in a trailing block of `fraction` of n: at least 1 if fraction > 0 and n >= 3."""
    if fraction <= 0 or n < 2:
        return 0
    return int(min(n - 1, max(1 if n >= 3 else 0, round(fraction * n))))


def assign_splits(sources: list[Source], n_frames: list[int], *, mode: str = "method", val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0, train_temperature: float | None = None) -> list[np.ndarray]:
    """Per source, the split code (index into `SPLITS`) of each frame; see the module docstring.

    Sources must have ``system`` and ``split`` resolved (``split`` None is derived here).
    """
    for what, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise DatasetError(f"{what} must lie in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1:
        raise DatasetError(f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}")
    if mode == "random":
        rng = np.random.default_rng(seed)
        out = []
        for n in n_frames:
            codes = np.full(n, TRAIN, dtype=np.int8)
            order = rng.permutation(n)
            n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
            codes[order[:n_test]] = TEST
            codes[order[n_test:n_test + n_val]] = VAL
            out.append(codes)
        return out
    if mode != "method":
        raise DatasetError(f"unknown split mode {mode!r} (method, random)")
    splits = [s.split for s in sources]
    if any(s is None for s in splits):
        crystal_t = [s.temperature for s in sources if s.system == "crystal" and s.temperature is not None]
        cold = train_temperature if train_temperature is not None else (min(crystal_t) if crystal_t else None)
        for k, s in enumerate(sources):
            if s.split is not None:
                continue
            if s.system == "melt":
                splits[k] = "train"
            elif s.temperature is None or cold is None:
                raise DatasetError(f"source {s.name}: give its split or temperature (a crystal's split follows from its temperature)")
            else:
                splits[k] = "train" if np.isclose(s.temperature, cold) else "test"
    tested = {s.label for s, split in zip(sources, splits) if split == "test"}
    out = []
    for s, split, n in zip(sources, splits, n_frames):
        codes = np.full(n, SPLITS.index(split), dtype=np.int8)
        if split == "train":
            n_test = _trailing(n, test_fraction) if s.label not in tested else 0
            n_val = _trailing(n - n_test, val_fraction)
            codes[n - n_test:] = TEST
            codes[n - n_test - n_val:n - n_test] = VAL
        out.append(codes)
    return out


def label_frame(frame, descriptors, centre: Centre, rule: TopologyRule) -> tuple[np.ndarray, np.ndarray, float]:
    """(symmetry functions (n_mol, n_sf), coordination numbers (n_mol,), molecule radius R of
    the rule) of a frame."""
    from molenv.descriptors import compute_descriptors

    return compute_descriptors(frame, descriptors), rule.coordination(frame, centre), rule.frame_radius(frame, centre)


def _label_block(job) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """`label_frame` of the frames at positions `block` of a trajectory (on a worker, which
    reads them itself)."""
    trajectory, block, descriptors, centre, rule = job
    return [label_frame(trajectory[int(k)], descriptors, centre, rule) for k in block]


def _resolve(source: Source, spec: MoleculeSpec):
    """Open the trajectory; fill in system and check it is usable."""
    from molenv.trajectory import Trajectory

    if not Path(source.trajectory).is_file():
        raise DatasetError(f"source {source.name}: trajectory {source.trajectory} not found")
    periodic = source.system != "cluster"
    traj = Trajectory(source.trajectory, spec, topology=source.topology, periodic=periodic, **source.reader)
    if len(traj) == 0:
        raise DatasetError(f"source {source.name}: {source.trajectory} has no frames in the selected range")
    if source.system is None:
        source.system = "cluster" if traj[0].box is None else ("melt" if source.label.lower() == "melt" else "crystal")
    if source.system not in SYSTEMS:
        raise DatasetError(f"source {source.name}: system {source.system!r} cannot be training data (expected {', '.join(SYSTEMS)})")
    return traj


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _check_names(sources: list[Source]) -> None:
    """Every source its own name (and data file): a clash names both sources."""
    seen: dict[str, Source] = {}
    for s in sources:
        key = _safe_name(s.name)
        if key in seen:
            other = seen[key]
            clash = (f"sources {other.trajectory} and {s.trajectory} are both named {s.name!r}" if other.name == s.name else
                     f"sources {other.trajectory} (named {other.name!r}) and {s.trajectory} (named {s.name!r}) would both be stored as {key}.npz")
            raise DatasetError(f"{clash}: give each a name of its own (--name, once per --trajectory; run directories are named after "
                               "their directory)")
        seen[key] = s


def _check_boxes(source: Source, traj, spec: MoleculeSpec) -> None:
    """Every periodic frame wide enough for the descriptor cutoff: DatasetError naming the
    file, the frame and the height against the one required, before anything is computed."""
    from molenv.frames import box_matrix, perpendicular_heights, reduced_basis

    need = 2 * spec.rmax
    for index, frame in zip(traj.frame_indices, traj):
        if frame.box is None:
            continue
        heights = perpendicular_heights(reduced_basis(box_matrix(frame.box)))
        if not heights.min() > need:
            raise DatasetError(
                f"source {source.name}: {source.trajectory} frame {index} (t = {frame.time:g} ps): the box's smallest perpendicular height "
                f"is {heights.min():.2f} A (heights {', '.join(f'{h:.2f}' for h in heights)} A), but the {spec.name} descriptors need more than "
                f"{need:g} A (twice the cutoff rmax {spec.rmax:g} A, for one minimum image); simulate a larger supercell "
                f"(molenv simulate --min-height or --repeats) or leave such frames out (--start/--stop)")


def _check_melt(source: Source, spec: MoleculeSpec) -> dict:
    """`molenv.order.check_melt` on the whole trajectory of a source labelled melt (every
    frame, whatever --start/--stop/--step select: the frames used may be too few or too close
    in time to see the molecules move); DatasetError if it has not melted."""
    from molenv.order import check_melt
    from molenv.trajectory import Trajectory

    reader = {k: v for k, v in source.reader.items() if k not in ("start", "stop", "step")}
    whole = Trajectory(source.trajectory, spec, topology=source.topology, periodic=source.system != "cluster", **reader)
    try:
        check = check_melt(whole, spec.vectors, spec.centre)
    except ValueError as err:
        raise DatasetError(f"source {source.name}: {source.trajectory} is labelled melt, but the melt check cannot tell: {err}") from None
    if not check.melted:
        raise DatasetError(f"source {source.name}: {source.trajectory} is labelled {source.label} but has not melted: "
                           f"{'; '.join(check.failures())}. Melt it longer or hotter (molenv simulate melt --melt-time, --melt-temperature), "
                           "label it as what it is, or skip the check (--no-melt-check) if it is meant to be so (docs/simulate.md, 'The melt check')")
    return check.as_dict()


def _dataset_files(directory: Path) -> set[str] | None:
    """Names of the files of the dataset in `directory` (its manifest and source files),
    None if it holds no dataset manifest."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    names = {MANIFEST}
    try:
        names |= {str(s["file"]) for s in json.loads(manifest.read_text())["sources"]}
    except (ValueError, KeyError, TypeError):
        pass  # a damaged manifest: its .npz files still count as the dataset's
    return names | {p.name for p in directory.glob("*.npz")}


def _check_destination(out: Path, overwrite: bool) -> None:
    """`out` may receive a dataset: absent or empty, or (with ``overwrite``) a dataset and
    nothing else, or an unfinished one (.npz files only); DatasetError otherwise."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    present = sorted(p.name for p in out.iterdir())
    if not present:
        return
    dataset = _dataset_files(out)
    if dataset is not None and not overwrite:
        raise DatasetError(f"{out}: a dataset is already there (use --overwrite to replace it)")
    others = [n for n in present if n not in (dataset or set()) and not (n.endswith(".npz") and (out / n).is_file())]
    if others:
        what = "holds files that are not part of its dataset" if dataset is not None else "is not empty and holds no molenv dataset (no manifest.json)"
        raise DatasetError(f"{out}: {what} ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); "
                           "move them away or choose another --out (a dataset directory is replaced as a whole)")
    if not overwrite:
        raise DatasetError(f"{out}: holds .npz files but no manifest.json (an unfinished dataset?); use --overwrite to replace it")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _leftovers(out: Path, log) -> None:
    """Mention the temporary directories of featurize runs that were killed."""
    for p in sorted(out.parent.glob(f".{out.name}.featurize-*")) + sorted(out.parent.glob(f".{out.name}.replaced-*")):
        kind = "a dataset being written" if ".featurize-" in p.name else "a replaced dataset"
        log(f"note: {p} holds {kind} left by an interrupted `molenv featurize` (unless one is running now); remove it")


def _move_into_place(new: Path, out: Path, overwrite: bool) -> None:
    """Rename the complete dataset directory `new` to `out`; an existing `out` is moved
    aside first and deleted once the new one is in place."""
    _check_destination(out, overwrite)  # again: another process may have written there meanwhile
    if not out.exists() or not any(out.iterdir()):
        os.replace(new, out)  # onto nothing or an empty directory
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
        os.replace(out, aside)  # onto the empty directory just made
        try:
            os.replace(new, out)
        except BaseException:
            os.replace(aside, out)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    try:
        _fsync(out.parent)
    except OSError:
        pass


def featurize(
    sources: list[Source],
    spec: MoleculeSpec | str,
    out: str | Path,
    *,
    classes: list[str] | None = None,
    split_mode: str = "method",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    train_temperature: float | None = None,
    topology_rule: TopologyRule = TopologyRule(),
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    command: str | None = None,
    melt_check: bool = True,
    log=print,
    backend: str | None = None,
    scheduler: str | None = None,
    augment_temperature: float | None = None,
    augment_copies: int = 1,
    augment_clusters: bool = False,
    augment_expansion: float | None = None,
    relabel_turned: bool = False,
) -> Dataset:
    """Label, split and featurize `sources` into the dataset directory `out`; returns it opened.

    Descriptors and coordination numbers are computed over blocks of frames on ``workers``
    processes of ``backend`` (`molenv.frameblocks`: "serial", "multiprocessing", "dask", a
    dask.distributed ``scheduler`` address; default multiprocessing for ``workers`` > 1),
    each block read by its worker; the dataset does not depend on the backend.
    Raises DatasetError (naming the file and problem) for an empty dataset, a source
    without a label, two sources of one name, a training split with a single class, unknown
    class names, an existing dataset (unless ``overwrite``), a periodic frame narrower than
    twice the descriptor cutoff, a source labelled melt that has not melted (unless
    ``melt_check`` is False), a training crystal without a temperature when
    ``augment_temperature`` is given, ``relabel_turned`` without a melt class (module
    docstring); trajectory problems raise
    `molenv.trajectory.TrajectoryError`.
    """
    from molenv.frameblocks import check_backend

    backend = backend or ("multiprocessing" if workers > 1 else "serial")
    check_backend(backend, workers, scheduler, DatasetError)
    spec = spec if isinstance(spec, MoleculeSpec) else load_spec(spec)
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()
    _check_destination(out, overwrite)
    kept = []
    for s in sources:
        if s.split is not None and s.split not in SPLITS:
            log(f"skipping {s.name}: split {s.split!r} is not one of {', '.join(SPLITS)}")
            continue
        kept.append(s)
    if not kept:
        raise DatasetError("empty dataset: no source trajectories (after skipping those not meant for training or testing)")
    unlabelled = [s for s in kept if not s.label]
    if unlabelled:
        s = unlabelled[0]
        raise DatasetError(f"source {s.name} ({s.trajectory}) has no label: give its polymorph (featurize --label, e.g. I; "
                           "a run directory takes it from `molenv simulate ... --label`)")
    _check_names(kept)
    labels = list(dict.fromkeys(s.label for s in kept))
    if classes is None:
        classes = labels
    unknown = [l for l in labels if l not in classes]
    if unknown:
        raise DatasetError(f"source labels {', '.join(unknown)} are not among the classes {', '.join(classes)}")
    from molenv.modelfile import CLASS_NAME

    bad = [c for c in classes if not CLASS_NAME.match(c)]
    if bad:
        raise DatasetError(f"class names must match [A-Za-z0-9_]+ (they become PLUMED component names), got {', '.join(bad)}")

    melt_class = next((c for c in classes if c.lower() == "melt"), None)
    relabel = {s.name for s in kept if relabel_turned and s.system == "cluster" and s.label.lower() != "melt"}
    if relabel and melt_class is None:
        raise DatasetError(f"relabel_turned labels the turned molecules of clusters melt, but melt is not among the classes ({', '.join(classes)})")
    trajectories = [_resolve(s, spec) for s in kept]
    melt_checks = {}
    for s, traj in zip(kept, trajectories):
        _check_boxes(s, traj, spec)
        if melt_check and (s.label.lower() == "melt" or s.system == "melt"):
            melt_checks[s.name] = _check_melt(s, spec)
    codes = assign_splits(kept, [len(t) for t in trajectories], mode=split_mode, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, train_temperature=train_temperature)
    train_classes = sorted({s.label for s, c in zip(kept, codes) if (c == TRAIN).any()})
    if len(train_classes) == 1:
        raise DatasetError(f"the training split holds a single class ({train_classes[0]}); a classifier needs two or more")
    augment = _augmentation_plan(kept, trajectories, codes, augment_temperature, augment_copies, seed, augment_clusters, augment_expansion)

    out.parent.mkdir(parents=True, exist_ok=True)
    _leftovers(out, log)
    final, out = out, Path(tempfile.mkdtemp(prefix=f".{out.name}.featurize-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o777 & ~umask)  # mkdtemp makes it private; the dataset gets the usual permissions
    try:
        return _write(kept, trajectories, codes, classes, spec, out, final, overwrite, split_mode, val_fraction, test_fraction, seed,
                      train_temperature, topology_rule, (backend, workers, scheduler), progress, command, melt_checks, augment,
                      {name: classes.index(melt_class) for name in relabel})
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _augmentation_plan(kept, trajectories, codes, temperature: float | None, copies: int, seed: int, clusters: bool = False,
                       expansion: float | None = None) -> dict:
    """Source name -> (target temperature, copies, random seed, linear strain or None) of the
    sources that thermal augmentation warms (module docstring): crystals, and clusters if
    `clusters`; empty without ``temperature``."""
    if temperature is None:
        if expansion is not None:
            raise DatasetError("augment_expansion stretches the warmed copies of thermal augmentation: give augment_temperature too")
        return {}
    if not temperature > 0 or copies < 1:
        raise DatasetError(f"thermal augmentation needs a positive temperature and one or more copies, got {temperature} K and {copies}")
    if expansion is not None and not 0 <= expansion < 1:
        raise DatasetError(f"augment_expansion is a linear strain in [0, 1) (0.016: 1.6 %), got {expansion}")
    systems = ("crystal", "cluster") if clusters else ("crystal",)
    plan = {}
    for k, (s, traj, split) in enumerate(zip(kept, trajectories, codes)):
        if s.system not in systems or s.label.lower() == "melt" or (split == TRAIN).sum() < 2:
            continue
        if s.temperature is None:
            raise DatasetError(f"source {s.name} ({s.trajectory}): thermal augmentation needs its temperature (featurize --temperature)")
        if s.temperature < temperature:
            plan[s.name] = (float(temperature), int(copies), [int(seed), k], expansion)
    return plan


def _warmed_source(source, frames: list, surface: np.ndarray, plan: tuple, descriptors, spec: MoleculeSpec, topology_rule: TopologyRule,
                   labels: np.ndarray) -> tuple[dict, dict]:
    """The arrays and the `augmentation` record of the warmed companion of `source` from its
    training `frames` (`molenv.augment`) and their `labels` (frames, molecules), which the
    copies keep; `surface` (one flag per molecule, the majority over the frames) groups a
    cluster's molecules."""
    from molenv.augment import cluster_fluctuations, expanded, per_molecule, rigid_fluctuations, warmed_frames, warming

    target, copies, seed, expansion = plan
    if frames[0].box is None:
        measured = cluster_fluctuations(frames, surface)
        added = {group: warming(widths, source.temperature, target) for group, widths in measured.items()}
        motion = per_molecule(added, surface)
    else:
        measured = rigid_fluctuations(frames)
        motion = added = warming(measured, source.temperature, target)
    # rounded to the float32 the dataset stores, so that the cached descriptors are those of the stored frames
    stretch = expansion if expansion and frames[0].box is not None else None  # a cluster has no lattice to stretch
    warmed = warmed_frames(frames, motion, copies, np.random.default_rng(seed))
    if stretch:
        warmed = [expanded(f, stretch) for f in warmed]  # the warmer crystal's longer lattice
    warmed = [f.replace(positions=f.positions.astype(np.float32).astype(float)) for f in warmed]
    results = [label_frame(f, descriptors, spec.centre, topology_rule) for f in warmed]
    cn = np.stack([r[1] for r in results])
    arrays = {
        "positions": np.stack([f.positions.astype(np.float32) for f in warmed]),
        "boxes": np.stack([f.box if f.box is not None else np.full(6, np.nan) for f in warmed]),
        "times": np.array([f.time for f in warmed]),
        "atomic_numbers": frames[0].atomic_numbers,
        "molecules": frames[0].molecules,
        "features": np.stack([r[0] for r in results]),
        "labels": np.tile(labels, (copies, 1)).astype(np.int16),
        "topology": topology_rule.surface(cn).astype(np.int8),
        "cn": cn,
        "cn_radius": np.array([r[2] for r in results]),
        "split": np.full(len(warmed), TRAIN, dtype=np.int8),
    }

    def widths(w):
        return {"translation_A": w.translation, "rotation_deg": w.rotation}

    record = {"of": source.name, "target_K": target, "copies": copies, "seed": seed, "training_frames": len(frames)}
    if stretch:
        record["expansion"] = stretch
    if isinstance(measured, dict):  # a cluster: per group, and how many molecules each has
        record |= {"measured": {g: widths(w) for g, w in measured.items()}, "added": {g: widths(w) for g, w in added.items()},
                   "molecules": {"core": int((~surface).sum()), "surface": int(surface.sum())}}
    else:
        record |= {"measured": widths(measured), "added": widths(added)}
    return arrays, record


def _write(kept, trajectories, codes, classes, spec, out: Path, final: Path, overwrite: bool, split_mode, val_fraction, test_fraction, seed,
           train_temperature, topology_rule, parallel, progress, command, melt_checks, augment, relabel) -> Dataset:
    """Featurize into the new directory `out`, then move it to `final`; `parallel` is
    (backend, workers, scheduler); `augment` the `_augmentation_plan`; `relabel` source name
    -> the melt class index of the clusters whose turned molecules are relabelled."""
    from tqdm import tqdm

    from molenv.frameblocks import frame_blocks, run_blocks
    from molenv.order import turned as turned_since

    backend, workers, scheduler = parallel
    descriptors = spec.descriptor_set()
    total = sum(len(t) for t in trajectories)
    entries = []
    counts = {split: Counter() for split in SPLITS}
    topology_counts = {split: Counter() for split in SPLITS}
    started = time.time()
    with tqdm(total=total, desc="featurize", unit="frame", disable=not progress) as bar:
        for source, traj, split in zip(kept, trajectories, codes):
            bar.set_postfix_str(source.name)
            results = []
            if backend != "serial":
                jobs = [(traj, block, descriptors, spec.centre, topology_rule) for block in frame_blocks(range(len(traj)), workers)]
                results = [r for block in run_blocks(_label_block, jobs, backend, workers, scheduler) for r in block]
            # one pass over the frames for what the dataset stores of them (the serial run labels them on the way)
            positions, boxes, times, training_frames, turned, first = [], [], [], [], [], None
            for k, frame in enumerate(traj):
                if source.name in relabel:
                    first = frame if first is None else first
                    turned.append(turned_since(frame, first, spec.vectors, spec.centre))
                if source.name in augment and split[k] == TRAIN:
                    training_frames.append(frame)
                positions.append(frame.positions.astype(np.float32))
                boxes.append(frame.box if frame.box is not None else np.full(6, np.nan))
                times.append(frame.time)
                if backend == "serial":
                    results.append(label_frame(frame, descriptors, spec.centre, topology_rule))
                bar.update(1)
            features = np.stack([r[0] for r in results])
            cn = np.stack([r[1] for r in results])
            topology = topology_rule.surface(cn).astype(np.int8)
            n_mol = traj.molecules.shape[0]
            label = np.full((len(times), n_mol), classes.index(source.label), dtype=np.int16)
            if turned:
                label[np.array(turned)] = relabel[source.name]
            periodic = not np.isnan(boxes[0]).any()
            arrays = {
                "positions": np.stack(positions),
                "boxes": np.stack(boxes),
                "times": np.array(times),
                "atomic_numbers": traj.atomic_numbers,
                "molecules": traj.molecules,
                "features": features,
                "labels": label,
                "topology": topology,
                "cn": cn,
                "cn_radius": np.array([r[2] for r in results]),
                "split": split,
            }
            file = f"{_safe_name(source.name)}.npz"
            write_source(out / file, arrays)
            _fsync(out / file)
            for k, name in enumerate(SPLITS):
                counts[name][source.label] += 0  # every source's class listed, in every split
                counts[name].update({classes[c]: int(n) for c, n in zip(*np.unique(label[split == k], return_counts=True))})
                for t, tname in enumerate(TOPOLOGY_NAMES):
                    topology_counts[name][tname] += int((topology[split == k] == t).sum())
            entries.append(
                {
                    "name": source.name,
                    "file": file,
                    "sha256": file_sha256(out / file),
                    "label": source.label,
                    "temperature_K": source.temperature,
                    "system": source.system,
                    "periodic": periodic,
                    "split": source.split,
                    "frames": {name: int((split == k).sum()) for k, name in enumerate(SPLITS)},
                    "n_frames": len(times),
                    "n_molecules": int(n_mol),
                    "time_ps": [float(arrays["times"][0]), float(arrays["times"][-1])],
                    "trajectory": str(source.trajectory),
                    "trajectory_sha256": file_sha256(source.trajectory),
                    "topology": str(source.topology) if source.topology else None,
                    "topology_sha256": file_sha256(source.topology) if source.topology else None,
                    "reader": {k: v for k, v in source.reader.items()} | {"atom_order": traj.atom_order, "molecules": traj.molecules_from},
                    "surface_molecules": int(topology.sum()),
                    "simulation": source.origin,
                } | ({"melt_check": melt_checks[source.name]} if source.name in melt_checks else {})
                | ({"relabelled": {"rule": "turned from the first frame (P2 < 0.5 on some axis) -> melt", "molecules": int(np.sum(turned)),
                                   "share": round(float(np.mean(turned)), 4)}} if turned else {})
            )
            if training_frames:
                surface = topology[split == TRAIN].mean(axis=0) > 0.5
                warm, record = _warmed_source(source, training_frames, surface, augment[source.name], descriptors, spec, topology_rule,
                                              label[split == TRAIN])
                name = f"{source.name}-warmed-{record['target_K']:g}K"
                file = f"{_safe_name(name)}.npz"
                write_source(out / file, warm)
                _fsync(out / file)
                n_warm = len(warm["times"])
                counts["train"].update({classes[c]: int(n) for c, n in zip(*np.unique(warm["labels"], return_counts=True))})
                for t, tname in enumerate(TOPOLOGY_NAMES):
                    topology_counts["train"][tname] += int((warm["topology"] == t).sum())
                entries.append(entries[-1] | {"name": name, "file": file, "sha256": file_sha256(out / file), "split": "train",
                                              "frames": {"train": n_warm, "val": 0, "test": 0}, "n_frames": n_warm,
                                              "surface_molecules": int(warm["topology"].sum()), "augmentation": record})
    manifest = {
        "molecule": spec.name,
        "spec": {"name": spec.name, "path": str(spec.path), "sha256": file_sha256(spec.path) if spec.path else None},
        "descriptors": descriptor_set_to_dict(descriptors),
        "classes": list(classes),
        "topology": {
            "names": list(TOPOLOGY_NAMES),
            "rule": topology_rule.describe(),
            "offset_A": topology_rule.offset,
            "threshold": topology_rule.threshold,
            "radius_A": topology_rule.radius if topology_rule.radius is not None else "molecule radius (largest atom-centre distance, max over the frame)",
        },
        "split": {"mode": split_mode, "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed, "train_temperature_K": train_temperature},
        "sources": entries,
        "counts": {name: dict(counts[name]) for name in SPLITS},
        "topology_counts": {name: dict(topology_counts[name]) for name in SPLITS},
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_time_s": round(time.time() - started, 2),
        "molenv_version": __import__("molenv").__version__,
    }
    _fsync(write_manifest(out, manifest))
    _fsync(out)
    _move_into_place(out, final, overwrite)
    return Dataset(final)
