"""The molenv dataset: labelled molecular frames with cached symmetry functions, on disk.

A dataset is a directory written by `molenv featurize` (`molenv.featurize`)::

    DIR/manifest.json      format, molecule spec, descriptor set, class names, topology
                           rule, split rule, every source with its provenance, counts,
                           the command that made it
    DIR/<source>.npz       one file per source trajectory (see `SOURCE_ARRAYS`)

The manifest records the SHA-256 of every source file (``sources[].sha256``); a reader
checks a file against it when it loads the file and refuses a file that differs (changed,
replaced by another source's, or half written). Datasets written before the hashes
existed have none and are read without the check. `molenv featurize` writes a dataset
into a temporary directory beside DIR and renames it into place when it is complete, so
DIR holds a whole dataset or none, never a mix of two.

Every molecule of every frame carries a polymorph label (an index into ``classes``: the
source's form, or melt), a topology label (0 bulk / 1 surface, from its coordination
number) and every frame a split (train / val / test). The symmetry functions are cached in
float64; positions are stored in float32, which is what the trajectory readers hold
(MDAnalysis), so descriptors recomputed from the stored positions equal the cached ones.

Reading (`open_dataset`) gives a `Dataset` with two views of the same data:

- `Dataset.molecules(split)`: a flat `MoleculeTable` (features, labels, ... one row per
  molecule) for the SF classifier;
- `Dataset.frames(split)`: `LabelledFrame`s (a `MolecularFrame` + per-molecule polymorph
  and topology labels) for the graph classifier, which classifies whole frames.

`Dataset.frame(source, index)` gives one frame of a source as a `MolecularFrame` (the
frames of `Dataset.frames` are made by it).
"""
from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.constants import file_sha256
from molenv.descriptors import descriptor_set_from_dict
from molenv.frames import MolecularFrame

__all__ = [
    "DatasetError",
    "Dataset",
    "MoleculeTable",
    "LabelledFrame",
    "open_dataset",
    "write_source",
    "write_manifest",
    "SPLITS",
]

FORMAT = "molenv-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")  # split codes 0, 1, 2 in the .npz files
# name -> (dtype, shape in terms of F frames, A atoms, M molecules, P atoms per molecule, S features)
SOURCE_ARRAYS = {
    "positions": ("float32", "F A 3"),  # Angstrom
    "boxes": ("float64", "F 6"),  # [a, b, c, alpha, beta, gamma]; NaN rows: not periodic
    "times": ("float64", "F"),  # ps
    "atomic_numbers": ("int16", "A"),
    "molecules": ("int32", "M P"),  # atom indices, columns in spec order
    "features": ("float64", "F M S"),  # symmetry functions (unscaled)
    "labels": ("int16", "F M"),  # polymorph class index into the manifest's classes
    "topology": ("int8", "F M"),  # 0 bulk, 1 surface
    "cn": ("int32", "F M"),  # coordination number (self counted)
    "cn_radius": ("float64", "F"),  # radius the coordination numbers were counted in
    "split": ("int8", "F"),  # index into SPLITS
}


class DatasetError(ValueError):
    """A dataset that cannot be built or read; the message names the file and the problem."""


# ----------------------------------------------------------------------------- writing


def write_source(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write one source's arrays (the keys and dtypes of `SOURCE_ARRAYS`) to `path` (.npz)."""
    missing = sorted(set(SOURCE_ARRAYS) - set(arrays))
    if missing:
        raise DatasetError(f"{path}: source arrays lack {', '.join(missing)}")
    path = Path(path)
    np.savez(path, **{k: np.asarray(arrays[k], dtype=SOURCE_ARRAYS[k][0]) for k in SOURCE_ARRAYS})
    return path


def write_manifest(directory: str | Path, manifest: dict) -> Path:
    """Write manifest.json (indented, short lists of numbers/strings on one line)."""
    path = Path(directory) / MANIFEST
    text = json.dumps({"format": FORMAT, "version": VERSION, **manifest}, indent=1)
    # a list without nested lists/objects goes on one line
    text = re.sub(r"\[[^\[\]{}]*\]", lambda m: " ".join(m.group(0).split()), text)
    path.write_text(text + "\n")
    return path


# ----------------------------------------------------------------------------- reading


@dataclass
class MoleculeTable:
    """One row per molecule of the selected frames (the SF classifier's view).

    ``source`` indexes ``source_names``; ``frame`` is the frame index within its source,
    ``molecule`` the molecule index within the frame.
    """

    features: np.ndarray  # (n, n_features) float64
    labels: np.ndarray  # (n,) class index
    topology: np.ndarray  # (n,) 0 bulk / 1 surface
    cn: np.ndarray  # (n,)
    source: np.ndarray  # (n,)
    frame: np.ndarray  # (n,)
    molecule: np.ndarray  # (n,)
    time: np.ndarray  # (n,) ps
    source_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LabelledFrame:
    """A frame with per-molecule labels (the graph classifier's view)."""

    frame: MolecularFrame
    polymorph: np.ndarray  # (n_molecules,) class index into Dataset.classes
    topology: np.ndarray  # (n_molecules,) 0 bulk / 1 surface
    features: np.ndarray  # (n_molecules, n_features) cached symmetry functions
    source: str
    index: int  # frame index within the source
    split: str


class Dataset:
    """A dataset directory opened for reading (`open_dataset`); sources are loaded lazily."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory)
        manifest_path = self.path / MANIFEST
        from molenv.paths import directory_problem

        if problem := directory_problem(self.path, "dataset directory"):
            raise DatasetError(f"{problem} (make one with `molenv featurize`)")
        if not manifest_path.is_file():
            raise DatasetError(f"{self.path}: not a molenv dataset (no {MANIFEST}; make one with `molenv featurize`)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{manifest_path}: not valid JSON: {err}") from None
        if manifest.get("format") != FORMAT:
            raise DatasetError(f"{manifest_path}: not a molenv dataset manifest (format {manifest.get('format')!r})")
        if manifest.get("version") != VERSION:
            raise DatasetError(f"{manifest_path}: dataset version {manifest.get('version')}, this molenv reads version {VERSION}")
        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.sources: list[dict] = list(manifest["sources"])
        self.descriptor_set = descriptor_set_from_dict(manifest["descriptors"])
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    @property
    def molecule(self) -> str:
        return self.manifest["molecule"]

    @property
    def source_names(self) -> list[str]:
        return [s["name"] for s in self.sources]

    def manifest_sha256(self) -> str:
        return file_sha256(self.path / MANIFEST)

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of source `name` (loaded once, then cached)."""
        if name not in self._cache:
            source = self._source(name)
            path = self.path / source["file"]
            if not path.is_file():
                raise DatasetError(f"{path}: data file of source {name!r} is missing")
            expected = source.get("sha256")
            if expected is not None:
                found = file_sha256(path)
                if found != expected:
                    raise DatasetError(f"{path}: the data file of source {name!r} differs from the one the dataset manifest records "
                                       f"(SHA-256 {found[:16]}..., manifest {str(expected)[:16]}...): it was changed or replaced "
                                       f"after `molenv featurize`; featurize the dataset again")
            try:
                with np.load(path) as data:
                    missing = sorted(set(SOURCE_ARRAYS) - set(data.files))
                    if missing:
                        raise DatasetError(f"{path}: lacks arrays {', '.join(missing)}")
                    self._cache[name] = {k: data[k] for k in SOURCE_ARRAYS}
            except DatasetError:
                raise
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise DatasetError(f"{path}: cannot read the data file of source {name!r} ({str(err).strip() or type(err).__name__})") from None
        return self._cache[name]

    def _source(self, name: str) -> dict:
        for source in self.sources:
            if source["name"] == name:
                return source
        raise DatasetError(f"{self.path}: no source {name!r} (sources: {', '.join(self.source_names)})")

    def _selected(self, splits, periodic_only: bool, sources) -> Iterator[tuple[int, dict, np.ndarray]]:
        """(source index, source entry, selected frame indices) for each source with frames."""
        codes = _split_codes(splits)
        for k, source in enumerate(self.sources):
            if sources is not None and source["name"] not in sources:
                continue
            if periodic_only and not source["periodic"]:
                continue
            frames = np.flatnonzero(np.isin(self.arrays(source["name"])["split"], codes))
            if len(frames):
                yield k, source, frames

    def molecules(self, splits: str | Sequence[str] | None = None, *, periodic_only: bool = False, sources: Sequence[str] | None = None) -> MoleculeTable:
        """All molecules of the frames in `splits` (a name, names, or None for all) as rows.

        ``periodic_only`` leaves out non-periodic sources (clusters): the SF classifier is
        trained on periodic bulk samples only. ``sources`` restricts to sources by name.
        """
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("features", "labels", "topology", "cn", "source", "frame", "molecule", "time")}
        for k, source, frames in self._selected(splits, periodic_only, sources):
            a = self.arrays(source["name"])
            n_mol = a["labels"].shape[1]
            parts["features"].append(a["features"][frames].reshape(-1, a["features"].shape[2]))
            for key in ("labels", "topology", "cn"):
                parts[key].append(a[key][frames].reshape(-1))
            parts["source"].append(np.full(len(frames) * n_mol, k))
            parts["frame"].append(np.repeat(frames, n_mol))
            parts["molecule"].append(np.tile(np.arange(n_mol), len(frames)))
            parts["time"].append(np.repeat(a["times"][frames], n_mol))
        n_features = self.descriptor_set.n_features
        empty = {"features": np.zeros((0, n_features))}
        out = {key: (np.concatenate(v) if v else empty.get(key, np.zeros(0, dtype=np.int64))) for key, v in parts.items()}
        return MoleculeTable(
            features=out["features"].astype(np.float64),
            labels=out["labels"].astype(np.int64),
            topology=out["topology"].astype(np.int64),
            cn=out["cn"].astype(np.int64),
            source=out["source"].astype(np.int64),
            frame=out["frame"].astype(np.int64),
            molecule=out["molecule"].astype(np.int64),
            time=out["time"].astype(np.float64),
            source_names=self.source_names,
        )

    def frame(self, name: str, index: int) -> MolecularFrame:
        """Frame `index` of source `name` (as a Python index: -1 is the last frame) as a
        `MolecularFrame`, positions in float64; box None for a cluster (NaN box row)."""
        a = self.arrays(name)
        n = len(a["positions"])
        if not -n <= index < n:
            raise DatasetError(f"{self.path}: source {name!r} has {n} frames, no frame {index}")
        box = a["boxes"][index]
        return MolecularFrame(
            positions=a["positions"][index].astype(np.float64),
            box=None if np.isnan(box).any() else box,
            molecules=a["molecules"].astype(np.int64),
            atomic_numbers=a["atomic_numbers"].astype(np.int64),
            time=float(a["times"][index]),
        )

    def frames(self, splits: str | Sequence[str] | None = None, *, periodic_only: bool = False, sources: Sequence[str] | None = None) -> Iterator[LabelledFrame]:
        """The frames of `splits` (source by source, in time order) with per-molecule labels."""
        for _, source, frames in self._selected(splits, periodic_only, sources):
            a = self.arrays(source["name"])
            for f in frames:
                yield LabelledFrame(
                    frame=self.frame(source["name"], int(f)),
                    polymorph=a["labels"][f].astype(np.int64),
                    topology=a["topology"][f].astype(np.int64),
                    features=a["features"][f],
                    source=source["name"],
                    index=int(f),
                    split=SPLITS[int(a["split"][f])],
                )

    def count_frames(self, splits: str | Sequence[str] | None = None, *, periodic_only: bool = False) -> int:
        return sum(len(frames) for _, _, frames in self._selected(splits, periodic_only, None))

    def summary(self) -> str:
        """A few lines: sources, frames per split, molecules per class and split."""
        lines = [f"dataset {self.path} ({self.molecule}; classes {', '.join(self.classes)})"]
        for s in self.sources:
            per = ", ".join(f"{k} {v}" for k, v in s["frames"].items() if v)
            lines.append(f"  {s['name']}: {s['label']}, {s['system']}, {s['temperature_K']} K, {s['n_frames']} frames ({per})")
        for split, counts in self.manifest.get("counts", {}).items():
            lines.append(f"  {split}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
        return "\n".join(lines)


def _split_codes(splits) -> list[int]:
    if splits is None:
        return list(range(len(SPLITS)))
    names = [splits] if isinstance(splits, str) else list(splits)
    unknown = [s for s in names if s not in SPLITS]
    if unknown:
        raise DatasetError(f"unknown split {', '.join(map(repr, unknown))} (splits: {', '.join(SPLITS)})")
    return [SPLITS.index(s) for s in names]


def open_dataset(directory: str | Path) -> Dataset:
    """Open a dataset directory written by `molenv featurize`."""
    return Dataset(directory)
