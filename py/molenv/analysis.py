"""Per-molecule classification results and their summaries, shared by every classifier.

Whatever classified the molecules — the SF network in Python (`molenv classify` with a model
file), the graph network (`molenv classify` with a GNN), or `MOLENV_CLASSIFY` inside PLUMED
(`molenv reanalyse`, from its ``PROB_FILE``) — the result is a `ClassificationResult`: per
frame the time, the class probabilities of every molecule (n_molecules, n_classes), the
molecule centres, the box and the coordination numbers. Everything below turns that into
summaries:

- `ClassificationResult.labels`: the class of every molecule (arg-max), or *uncertain*
  (`UNCERTAIN`, label -1) where the top probability is below a threshold;
- `populations`: hard counts per class (and uncertain) per frame, optionally weighted (region);
  `soft_populations`: sums of probabilities (what `MOLENV_CLASSIFY` reports as ``n_<class>``);
- `surface_mask`: core vs surface by the coordination numbers of `molenv.topology` (the rule
  of the datasets' topology labels, METHOD.md §4: surface if fewer than 20 molecule centres lie
  within the frame's molecule radius + 6 A, self counted);
- `region_weights`: a slab along a cell axis, periodic-aware, with the same convention and
  smoothing as the action's ``REGION_*`` keywords;
- `population_table` + `write_table` (``.dat`` PLUMED-style or ``.csv``), `plot_populations`
  (PNG time series), `write_per_molecule` (per-molecule probabilities), `write_extxyz`
  (extended XYZ with per-molecule class columns broadcast to atoms, for OVITO);
- `summarise`: all of these for one result in one output folder (what the commands call).

Lengths are Angstrom, times ps, boxes ``[a, b, c, alpha, beta, gamma]`` (MDAnalysis convention).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from molenv.frames import Centre, MolecularFrame, box_matrix
from molenv.topology import CN_THRESHOLD, TOPOLOGY_NAMES, TopologyRule

__all__ = [
    "AnalysisError",
    "UNCERTAIN",
    "ClassificationResult",
    "FrameRecord",
    "frame_record",
    "Region",
    "Table",
    "SummaryOptions",
    "populations",
    "soft_populations",
    "surface_mask",
    "region_weights",
    "population_table",
    "write_table",
    "read_table",
    "plot_populations",
    "write_per_molecule",
    "write_extxyz",
    "summarise",
]

UNCERTAIN = "uncertain"  # class name of molecules whose top probability is below the threshold (label -1)


class AnalysisError(ValueError):
    """Results or options that cannot be analysed; the message names the problem."""


# ----------------------------------------------------------------------------- the result


@dataclass
class ClassificationResult:
    """Per-molecule classifications of a sequence of frames (all arrays frame-major).

    classes:        class names, in probability-column order.
    times:          (F,) ps.
    probabilities:  (F, N, K) class probabilities p_k(I) of every molecule.
    centres:        (F, N, 3) molecule centres (A), or None.
    boxes:          (F, 6) boxes ``[a, b, c, alpha, beta, gamma]``, rows of NaN for frames without
                    one; None when no frame has a box (a cluster).
    coordination:   (F, N) int coordination numbers (`molenv.topology.TopologyRule`), or None.
    frames:         (F,) index of each frame in its trajectory (default 0..F-1).
    topology_probabilities: (F, N, 2) bulk/surface probabilities of a GNN's topology head, or None.
    other:          (F, N) out-of-distribution score of every molecule (`molenv.ood`: > 0.5 = none of
                    the classes), or None (classified without it).
    output_activation: "softmax" (rows sum to 1) or "sigmoid" (independent outputs).
    source:         what produced it (model file, PLUMED input), for table headers.
    """

    classes: list[str]
    times: np.ndarray
    probabilities: np.ndarray
    centres: np.ndarray | None = None
    boxes: np.ndarray | None = None
    coordination: np.ndarray | None = None
    frames: np.ndarray | None = None
    topology_probabilities: np.ndarray | None = None
    output_activation: str = "softmax"
    source: str = ""
    topology_names: tuple[str, ...] = TOPOLOGY_NAMES
    other: np.ndarray | None = None

    def __post_init__(self):
        self.classes = [str(c) for c in self.classes]
        if UNCERTAIN in self.classes:
            raise AnalysisError(f"a class may not be called {UNCERTAIN!r} (reserved for molecules below the threshold)")
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        self.probabilities = np.asarray(self.probabilities, dtype=np.float64)
        n_frames, k = len(self.times), len(self.classes)
        if self.probabilities.ndim != 3 or self.probabilities.shape[0] != n_frames or self.probabilities.shape[2] != k:
            raise AnalysisError(f"probabilities must have shape (frames={n_frames}, molecules, classes={k}), got {self.probabilities.shape}")
        n = self.probabilities.shape[1]
        self.frames = np.arange(n_frames) if self.frames is None else np.asarray(self.frames, dtype=np.int64).reshape(-1)
        for name, shape, dtype in (
            ("centres", (n_frames, n, 3), np.float64),
            ("boxes", (n_frames, 6), np.float64),
            ("coordination", (n_frames, n), np.int64),
            ("frames", (n_frames,), np.int64),
            ("topology_probabilities", (n_frames, n, 2), np.float64),
            ("other", (n_frames, n), np.float64),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=dtype)
            if value.shape != shape:
                raise AnalysisError(f"{name} must have shape {shape}, got {value.shape}")
            setattr(self, name, value)
        for name in ("probabilities", "topology_probabilities"):
            value = getattr(self, name)
            bad = None if value is None else ~np.isfinite(value).all(axis=2)
            if bad is not None and bad.any():
                # a NaN row would count as class 0 (argmax) with a NaN confidence: never a count
                first = int(np.flatnonzero(bad.any(axis=1))[0])
                raise AnalysisError(
                    f"{self.source or 'classification'}: non-finite {name.replace('_', ' ')} (NaN or inf) for {int(bad.sum())} "
                    f"molecule(s) in {int(bad.any(axis=1).sum())} frame(s), first frame {int(self.frames[first])} "
                    f"({int(bad[first].sum())} of {n} molecules): the classifier's numbers overflowed; they cannot be counted as a class")
        if self.boxes is not None and np.all(np.isnan(self.boxes)):
            self.boxes = None

    @property
    def n_frames(self) -> int:
        return self.probabilities.shape[0]

    @property
    def n_molecules(self) -> int:
        return self.probabilities.shape[1]

    @property
    def label_names(self) -> list[str]:
        """Class names indexed by label, with `UNCERTAIN` last (label -1)."""
        return [*self.classes, UNCERTAIN]

    def labels(self, threshold: float = 0.0) -> np.ndarray:
        """(F, N) int: arg-max class of every molecule, -1 where its top probability < `threshold`."""
        labels = np.argmax(self.probabilities, axis=2)
        if threshold > 0:
            labels[self.probabilities.max(axis=2) < threshold] = -1
        return labels

    def populations(self, threshold: float = 0.5, weights: np.ndarray | None = None) -> np.ndarray:
        """(F, K + 1) float: molecules of each class per frame, columns in `label_names` order
        (the `classes`, then `UNCERTAIN`: molecules whose top probability is below
        `threshold`, default 0.5 as `molenv classify`); each molecule counted with its
        weight (default 1; e.g. `region_weights`). The module function `populations`."""
        return populations(self, threshold, weights)

    # -- files
    def save(self, path: str | Path) -> Path:
        """All arrays in one ``.npz`` (read back with `load`)."""
        path = Path(path)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        np.savez_compressed(
            path, classes=np.array(self.classes), output_activation=self.output_activation, source=self.source,
            topology_names=np.array(self.topology_names), **arrays,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClassificationResult:
        import zipfile
        import zlib

        from molenv.paths import file_problem

        path = Path(path)
        if problem := file_problem(path):
            raise AnalysisError(problem)
        try:
            with np.load(path, allow_pickle=False) as data:
                kwargs = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # cut short, or not an .npz at all
            raise AnalysisError(f"{path}: cannot read it as an .npz of per-molecule results ({str(err).strip() or type(err).__name__}): "
                                "the file is damaged or truncated") from None
        missing = sorted({"classes", "topology_names", "output_activation", "source", "times", "probabilities"} - set(kwargs))
        if missing:
            raise AnalysisError(f"{path}: not a file of per-molecule results written by molenv (lacks {', '.join(missing)})")
        kwargs["classes"] = [str(c) for c in kwargs["classes"]]
        kwargs["topology_names"] = tuple(str(c) for c in kwargs["topology_names"])
        kwargs["output_activation"] = str(kwargs["output_activation"])
        kwargs["source"] = str(kwargs["source"])
        return cls(**kwargs)

    @classmethod
    def stack(cls, records: Sequence[FrameRecord], classes: Sequence[str], **options) -> ClassificationResult:
        """A result from per-frame records (as collected by a frame loop)."""
        if not records:
            raise AnalysisError("no frames were classified")

        def stacked(name):
            values = [getattr(r, name) for r in records]
            if all(v is None for v in values):
                return None
            if name == "box":
                return np.array([np.full(6, np.nan) if v is None else v for v in values])
            if any(v is None for v in values):
                raise AnalysisError(f"{name} is missing for some frames")
            return np.stack(values)

        return cls(
            classes=list(classes), times=[r.time for r in records], frames=[r.frame for r in records],
            probabilities=stacked("probabilities"), centres=stacked("centres"), boxes=stacked("box"),
            coordination=stacked("coordination"), topology_probabilities=stacked("topology_probabilities"), other=stacked("other"), **options,
        )


@dataclass
class FrameRecord:
    """What a classifier produced for one frame (the unit a frame loop collects)."""

    frame: int
    time: float
    probabilities: np.ndarray  # (N, K)
    centres: np.ndarray | None = None  # (N, 3)
    box: np.ndarray | None = None  # (6,)
    coordination: np.ndarray | None = None  # (N,)
    topology_probabilities: np.ndarray | None = None  # (N, 2)
    other: np.ndarray | None = None  # (N,) out-of-distribution score


def frame_record(frame: MolecularFrame, index: int, probabilities: np.ndarray, centre: Centre, *,
                 with_coordination: bool = True, topology_probabilities: np.ndarray | None = None, other: np.ndarray | None = None) -> FrameRecord:
    """The record of one classified frame: centres, box and (optionally) coordination numbers
    computed from the frame (by the default `TopologyRule`, that of the datasets' topology
    labels), probabilities from the classifier."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[0] != frame.n_molecules:
        raise AnalysisError(f"frame {index}: {probabilities.shape[0]} rows of probabilities for {frame.n_molecules} molecules")
    return FrameRecord(
        frame=int(index), time=frame.time, probabilities=probabilities, centres=frame.centres(centre),
        box=None if frame.box is None else frame.box.copy(),
        coordination=TopologyRule().coordination(frame, centre) if with_coordination else None,
        topology_probabilities=topology_probabilities, other=other,
    )


# ----------------------------------------------------------------------------- core / surface


def surface_mask(result: ClassificationResult, cn_threshold: int = CN_THRESHOLD) -> np.ndarray:
    """(F, N) bool: surface molecules (coordination number below `cn_threshold`), by the rule of
    `molenv.topology`."""
    if result.coordination is None:
        raise AnalysisError("the result has no coordination numbers (classify with coordination on for a core/surface split)")
    return TopologyRule(threshold=cn_threshold).surface(result.coordination)


# ----------------------------------------------------------------------------- region


@dataclass(frozen=True)
class Region:
    """A slab normal to the cell face spanned by the two cell vectors other than `axis`
    (plain x, y or z for orthorhombic and lower-triangular cells), as ``REGION_*`` of
    `MOLENV_CLASSIFY`: molecules within `halfwidth` of `center` (measured along the face
    normal, periodic minimum image) count fully, those in the `smoothing` shell beyond with
    the quintic smoothstep weight, the rest not at all. Lengths in A."""

    axis: str
    center: float
    halfwidth: float
    smoothing: float = 0.0

    def __post_init__(self):
        if self.axis not in ("x", "y", "z"):
            raise AnalysisError(f"region axis must be x, y or z, got {self.axis!r}")
        if not (np.isfinite(self.center) and self.halfwidth >= 0 and self.smoothing >= 0):
            raise AnalysisError(f"region needs a finite centre, halfwidth >= 0 and smoothing >= 0, got {self}")

    @classmethod
    def parse(cls, text: str) -> Region:
        """``"z:135.0:10"`` or ``"z:135.0:10:1.5"`` (axis:center:halfwidth[:smoothing])."""
        parts = str(text).split(":")
        if len(parts) not in (3, 4):
            raise AnalysisError(f"region {text!r}: expected axis:center:halfwidth[:smoothing], e.g. z:135:10")
        try:
            numbers = [float(x) for x in parts[1:]]
        except ValueError:
            raise AnalysisError(f"region {text!r}: center, halfwidth and smoothing must be numbers") from None
        return cls(parts[0].lower(), *numbers)

    def describe(self) -> str:
        extra = f" (smoothing {self.smoothing:g})" if self.smoothing else ""
        return f"|{self.axis} - {self.center:g}| <= {self.halfwidth:g} A{extra}"


def region_weights(centres: np.ndarray, boxes: np.ndarray | None, region: Region) -> np.ndarray:
    """(F, N) weights in [0, 1] of molecules with `centres` (F, N, 3) in frames with `boxes`
    (F, 6; NaN rows or None: not periodic) for a `Region`, as `MOLENV_CLASSIFY` computes them."""
    centres = np.asarray(centres, dtype=np.float64)
    a = "xyz".index(region.axis)
    out = np.empty(centres.shape[:2])
    for f in range(len(centres)):
        box = None if boxes is None or np.isnan(boxes[f]).any() else boxes[f]
        if box is None:
            delta = centres[f, :, a] - region.center
        else:
            reciprocal = np.linalg.inv(box_matrix(box))[:, a]  # g_a: (cell vector i) . g_a = delta_ia
            height = 1.0 / np.linalg.norm(reciprocal)
            if region.halfwidth + region.smoothing > 0.5 * height:
                raise AnalysisError(
                    f"region halfwidth + smoothing ({region.halfwidth + region.smoothing:g} A) exceeds half the cell "
                    f"height along {region.axis} ({0.5 * height:g} A) in frame {f}"
                )
            normal = reciprocal * height
            x = centres[f] @ normal - region.center
            delta = x - height * np.round(x / height)
        u = np.abs(delta) - region.halfwidth
        w = (u <= 0).astype(np.float64)
        if region.smoothing > 0:
            t = np.clip(u / region.smoothing, 0.0, 1.0)
            shell = (u > 0) & (u < region.smoothing)
            w[shell] = 1.0 - (t**3 * (10.0 + t * (-15.0 + 6.0 * t)))[shell]
        out[f] = w
    return out


# ----------------------------------------------------------------------------- populations


def populations(result: ClassificationResult, threshold: float = 0.0, weights: np.ndarray | None = None) -> np.ndarray:
    """(F, K + 1) molecules per class and (last column) uncertain, per frame: hard counts of
    the labels, each molecule counted with its weight (default 1; a region or a mask)."""
    labels = result.labels(threshold)
    w = np.ones(labels.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), labels.shape)
    k = len(result.classes)
    index = np.where(labels < 0, k, labels)
    out = np.zeros((result.n_frames, k + 1))
    for f in range(result.n_frames):
        out[f] = np.bincount(index[f], weights=w[f], minlength=k + 1)
    return out


def soft_populations(result: ClassificationResult, weights: np.ndarray | None = None) -> np.ndarray:
    """(F, K) sum over molecules of w_I p_k(I): `MOLENV_CLASSIFY`'s ``n_<class>``."""
    if weights is None:
        return result.probabilities.sum(axis=1)
    return np.einsum("fn,fnk->fk", np.asarray(weights, dtype=np.float64), result.probabilities)


@dataclass
class Table:
    """Named columns of numbers, one row per frame."""

    names: list[str]
    data: np.ndarray  # (rows, len(names))
    comments: list[str] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray:
        try:
            return self.data[:, self.names.index(name)]
        except ValueError:
            raise AnalysisError(f"no column {name!r} (columns: {', '.join(self.names)})") from None


def population_table(
    result: ClassificationResult,
    threshold: float = 0.0,
    *,
    region: Region | None = None,
    split_surface: bool = True,
    cn_threshold: int = CN_THRESHOLD,
) -> Table:
    """Per-frame populations: ``time frame nmol n_<class>... n_uncertain soft_<class>...``, for a
    result with the out-of-distribution score ``n_other`` (molecules with other > 0.5) and
    ``soft_other`` (the sum of other: MOLENV_CLASSIFY's n_other), and,
    with `split_surface` (needs coordination numbers), ``core_*`` and ``surface_*`` copies of
    ``nmol`` and the hard counts. With a `region` every count is restricted to (weighted by)
    the region, and ``nmol`` is the (weighted) number of molecules in it."""
    weights = None
    comments = [f"classified by {result.source}" if result.source else "", f"uncertain: top probability < {threshold:g}"]
    if region is not None:
        if result.centres is None:
            raise AnalysisError("a region needs the molecule centres, which the result lacks")
        weights = region_weights(result.centres, result.boxes, region)
        comments.append(f"region: {region.describe()}")
    w = np.ones((result.n_frames, result.n_molecules)) if weights is None else weights
    names = ["time", "frame", "nmol"] + [f"n_{c}" for c in result.label_names] + [f"soft_{c}" for c in result.classes]
    columns = [result.times[:, None], result.frames[:, None], w.sum(axis=1)[:, None], populations(result, threshold, w), soft_populations(result, w)]
    if result.other is not None:
        names += ["n_other", "soft_other"]
        columns += [((result.other > 0.5) * w).sum(axis=1)[:, None], (result.other * w).sum(axis=1)[:, None]]
        comments.append("other: the out-of-distribution score (n_other: molecules with other > 0.5, soft_other: sum of other)")
    if split_surface and result.coordination is not None:
        surface = surface_mask(result, cn_threshold)
        comments.append(f"topology: {TopologyRule(threshold=cn_threshold).describe()}")
        for part, mask in (("core", ~surface), ("surface", surface)):
            wp = w * mask
            names += [f"{part}_nmol"] + [f"{part}_n_{c}" for c in result.label_names]
            columns += [wp.sum(axis=1)[:, None], populations(result, threshold, wp)]
    return Table(names, np.hstack(columns), [c for c in comments if c])


# ----------------------------------------------------------------------------- files


def write_table(path: str | Path, table: Table) -> Path:
    """Write a table: ``.csv`` with a header row, otherwise PLUMED-style (``#! FIELDS ...``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    integral = [np.all(np.equal(np.mod(table.data[:, j], 1), 0)) for j in range(len(table.names))]

    def fmt(j, x):
        return str(int(x)) if integral[j] else f"{x:.10g}"

    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.names)
            for row in table.data:
                writer.writerow([fmt(j, x) for j, x in enumerate(row)])
    else:
        lines = ["#! FIELDS " + " ".join(table.names)] + [f"# {c}" for c in table.comments]
        lines += [" ".join(fmt(j, x) for j, x in enumerate(row)) for row in table.data]
        path.write_text("\n".join(lines) + "\n")
    return path


def read_table(path: str | Path) -> Table:
    """Read a table written by `write_table` (or any PLUMED ``#! FIELDS`` file, e.g. a COLVAR)."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: file not found")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise AnalysisError(f"{path}: empty table")
        return Table(rows[0], np.array([[float(x) for x in r] for r in rows[1:]]).reshape(-1, len(rows[0])))
    names, data, comments = None, [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#! FIELDS"):
            names = line.split()[2:]
        elif line.startswith("#"):
            comments.append(line[1:].strip())
        elif line.strip():
            try:
                data.append([float(x) for x in line.split()])
            except ValueError:
                raise AnalysisError(f"{path}:{lineno}: not a row of numbers") from None
    if names is None:
        raise AnalysisError(f"{path}: no '#! FIELDS' header")
    bad = [k for k, row in enumerate(data) if len(row) != len(names)]
    if bad:
        raise AnalysisError(f"{path}: row {bad[0] + 1} has {len(data[bad[0]])} numbers for {len(names)} fields")
    return Table(names, np.array(data).reshape(-1, len(names)), comments)


def write_per_molecule(path: str | Path, result: ClassificationResult, threshold: float = 0.0, region: Region | None = None) -> Path:
    """Per-molecule results of every frame: ``.npz`` holds the whole result
    (`ClassificationResult.save`); ``.dat`` / ``.csv`` one row per frame and molecule:
    ``time frame mol <class probabilities> label [cn] [p_bulk p_surface] [weight]`` with
    ``label`` the class index (0-based in the order of the probability columns, -1 uncertain)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npz":
        return result.save(path)
    f_idx, m_idx = np.meshgrid(np.arange(result.n_frames), np.arange(result.n_molecules), indexing="ij")
    names = ["time", "frame", "mol", *result.classes, "label"]
    columns = [result.times[f_idx], result.frames[f_idx], m_idx + 1, *np.moveaxis(result.probabilities, 2, 0), result.labels(threshold)]
    if result.coordination is not None:
        names.append("cn")
        columns.append(result.coordination)
    if result.topology_probabilities is not None:
        names += [f"p_{t}" for t in result.topology_names]
        columns += list(np.moveaxis(result.topology_probabilities, 2, 0))
    if result.other is not None:
        names.append("other")
        columns.append(result.other)
    comments = [f"label: index into {' '.join(result.classes)}; -1 = {UNCERTAIN} (top probability < {threshold:g})"]
    if region is not None:
        names.append("weight")
        columns.append(region_weights(result.centres, result.boxes, region))
        comments.append(f"weight: region {region.describe()}")
    data = np.stack([np.asarray(c, dtype=np.float64).reshape(-1) for c in columns], axis=1)
    if path.suffix.lower() == ".csv":
        return write_table(path, Table(names, data))
    # probabilities keep full precision (17 digits), the other columns are integers or short
    with open(path, "w") as fh:
        fh.write("#! FIELDS " + " ".join(names) + "\n" + "".join(f"# {c}\n" for c in comments))
        k = len(result.classes)
        for row in data:
            fh.write(" ".join([f"{row[0]:.10g}", str(int(row[1])), str(int(row[2]))] + [f"{x:.17g}" for x in row[3:3 + k]]
                              + [str(int(row[3 + k]))] + [f"{x:.10g}" for x in row[4 + k:]]) + "\n")
    return path


def plot_populations(path: str | Path, table: Table, classes: Sequence[str], title: str = "") -> Path:
    """PNG time series of the hard class counts (and uncertain) of a `population_table`:
    one panel for all molecules, plus core and surface panels when the table has them and
    some molecule is at the surface.
    Classes that never occur are left out of the plot (listed in the legend title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [*classes, UNCERTAIN]
    split = "surface_nmol" in table.names and np.any(table.column("surface_nmol"))  # no panels for bulk-only systems
    parts = [("", "all molecules")] + ([("core_", "core"), ("surface_", "surface")] if split else [])
    time = table.column("time")
    fig, axes = plt.subplots(len(parts), 1, figsize=(7, 2.6 * len(parts) + 0.6), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (prefix, what) in zip(axes[:, 0], parts):
        absent = []
        for k, name in enumerate(labels):
            y = table.column(f"{prefix}n_{name}")
            if not np.any(y):
                absent.append(name)
                continue
            style = dict(color="0.5", linestyle="--") if name == UNCERTAIN else dict(color=colours(k % 10))
            ax.plot(time, y, marker="." if len(time) < 60 else None, label=name, **style)
        ax.plot(time, table.column(f"{prefix}nmol"), color="k", linewidth=0.8, alpha=0.4, label="total")
        ax.set_ylabel(f"molecules ({what})")
        ax.set_ylim(bottom=0)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title=("absent: " + ", ".join(absent)) if absent else None, title_fontsize=7)
    axes[-1, 0].set_xlabel("time (ps)")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _symbols(atomic_numbers: np.ndarray) -> np.ndarray:
    from MDAnalysis.guesser.tables import Z2SYMB

    return np.array([Z2SYMB.get(int(z), "X").capitalize() if z > 0 else "X" for z in atomic_numbers])


def write_extxyz(
    path: str | Path,
    frames: Iterable[MolecularFrame],
    result: ClassificationResult,
    threshold: float = 0.0,
    region: Region | None = None,
    probabilities: bool = False,
    cn_threshold: int = CN_THRESHOLD,
) -> Path:
    """Extended XYZ (one block per frame of `result`) for OVITO / ASE, atoms of the molecules
    only, in the frames' atom order.

    Comment line: ``Lattice="ax ay az bx by bz cx cy cz"`` (cell vectors, row by row) and
    ``pbc="T T T"`` for periodic frames (``pbc="F F F"`` without a box), ``Time=`` (ps),
    ``Properties=species:S:1:pos:R:3:molecule:I:1:class:S:1:class_index:I:1:p_max:R:1...``.
    Per-molecule values are given to each of its atoms: ``molecule`` (1-based), ``class``
    (name, or ``uncertain``), ``class_index`` (0-based, -1 uncertain; colour by it in OVITO),
    ``p_max`` (top probability), ``cn`` and ``surface`` (0/1: `surface_mask` with `cn_threshold`)
    with coordination numbers, ``region`` (weight) with a region, and ``p_<class>`` for every
    class with `probabilities`.
    `frames` must yield the frames `result` was computed from, in order.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = result.labels(threshold)
    names = np.array(result.label_names)
    weights = None if region is None else region_weights(result.centres, result.boxes, region)
    surface = None if result.coordination is None else surface_mask(result, cn_threshold)
    count = 0
    with open(path, "w") as fh:
        for f, frame in enumerate(frames):
            if f >= result.n_frames:
                break
            if frame.n_molecules != result.n_molecules:
                raise AnalysisError(f"frame {f} has {frame.n_molecules} molecules, the result {result.n_molecules}")
            if abs(frame.time - result.times[f]) > 1e-6 * max(1.0, abs(frame.time)):
                raise AnalysisError(f"frame {f} is at time {frame.time:g} ps, the result's frame {f} at {result.times[f]:g} ps")
            atoms = frame.molecules.reshape(-1)
            molecule = np.repeat(np.arange(frame.n_molecules), frame.atoms_per_molecule)
            order = np.argsort(atoms)
            atoms, molecule = atoms[order], molecule[order]
            props = ["species:S:1", "pos:R:3", "molecule:I:1", "class:S:1", "class_index:I:1", "p_max:R:1"]
            cols = [
                _symbols(frame.atomic_numbers[atoms]),
                *[np.char.mod("%.6f", frame.positions[atoms, j]) for j in range(3)],
                (molecule + 1).astype(str),
                names[labels[f]][molecule],
                labels[f][molecule].astype(str),
                np.char.mod("%.6f", result.probabilities[f].max(axis=1)[molecule]),
            ]
            if result.coordination is not None:
                props += ["cn:I:1", "surface:I:1"]
                cols += [result.coordination[f][molecule].astype(str), surface[f].astype(int)[molecule].astype(str)]
            if weights is not None:
                props.append("region:R:1")
                cols.append(np.char.mod("%.6f", weights[f][molecule]))
            if probabilities:
                props += [f"p_{c}:R:1" for c in result.classes]
                cols += [np.char.mod("%.6g", result.probabilities[f, :, k][molecule]) for k in range(len(result.classes))]
            header = []
            if frame.box is not None:
                header.append('Lattice="' + " ".join(f"{x:.8f}" for x in frame.box_matrix().ravel()) + '"')
            header += ["Properties=" + ":".join(props), f"Time={frame.time:.6f}", 'pbc="T T T"' if frame.box is not None else 'pbc="F F F"']
            fh.write(f"{len(atoms)}\n{' '.join(header)}\n")
            fh.write("\n".join(" ".join(row) for row in zip(*cols)) + "\n")
            count += 1
    if count != result.n_frames:
        raise AnalysisError(f"{path}: got {count} frames for a result of {result.n_frames}")
    return path


# ----------------------------------------------------------------------------- everything at once


@dataclass
class SummaryOptions:
    """What `summarise` writes (the analysis options of `molenv classify` / `molenv reanalyse`)."""

    threshold: float = 0.5
    cn_threshold: int = CN_THRESHOLD
    split_surface: bool = True
    region: Region | None = None
    table_format: str = "dat"  # dat or csv
    per_molecule: str | None = "npz"  # npz, dat, csv or None
    plot: bool = True
    xyz: bool = False
    xyz_probabilities: bool = False


def summarise(result: ClassificationResult, out_dir: str | Path, options: SummaryOptions, frames: Iterable[MolecularFrame] | None = None,
              title: str = "") -> dict[str, Path]:
    """Write the population table, per-molecule file, plot and (with ``options.xyz`` and
    `frames`) the extended XYZ of `result` into `out_dir`; returns {what: path}."""
    from molenv.paths import output_directory_problem

    out = Path(out_dir)
    if problem := output_directory_problem(out):
        raise AnalysisError(problem)
    out.mkdir(parents=True, exist_ok=True)
    if options.table_format not in ("dat", "csv"):
        raise AnalysisError(f"table format must be dat or csv, got {options.table_format!r}")
    table = population_table(result, options.threshold, region=options.region, split_surface=options.split_surface, cn_threshold=options.cn_threshold)
    written = {"populations": write_table(out / f"populations.{options.table_format}", table)}
    if options.per_molecule:
        written["per_molecule"] = write_per_molecule(out / f"molecules.{options.per_molecule}", result, options.threshold, options.region)
    if options.plot:
        written["plot"] = plot_populations(out / "populations.png", table, result.classes, title or result.source)
    if options.xyz:
        if frames is None:
            raise AnalysisError("the extended XYZ needs the frames")
        written["xyz"] = write_extxyz(out / "classes.extxyz", frames, result, options.threshold, options.region, options.xyz_probabilities, options.cn_threshold)
    return written
