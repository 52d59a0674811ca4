"""Write a ready PLUMED input for `MOLENV_CLASSIFY` from a model and a topology.

The molecules come from the topology read as molecules of the spec
(`molenv.trajectory.Trajectory`: residues or blocks, atoms ordered onto the spec by name,
position or bond graph), so the atom list is in the model's atom order whatever the file's
order. PLUMED atom numbers are the file's atom order (1-based), as in `molenv reanalyse`,
``plumed driver`` and MD codes that number atoms like their input file (GROMACS; LAMMPS
when its atom ids run 1..N, which MDAnalysis sorts by).

`molecule_keywords` gives ``MOLECULES=a-b`` when the molecules are consecutive blocks of
atoms in model order, else one ``MOLECULEn=`` list per molecule (runs compressed to ranges).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PathOptions", "PlumedInputOptions", "atom_list", "molecule_keywords", "plumed_input"]


def atom_list(numbers) -> str:
    """1-based atom numbers as a PLUMED list with runs as ranges: [1,2,3,7] -> '1-3,7'."""
    numbers = [int(x) for x in numbers]
    parts, k = [], 0
    while k < len(numbers):
        j = k
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[k]) if j == k else f"{numbers[k]}-{numbers[j]}")
        k = j + 1
    return ",".join(parts)


def molecule_keywords(molecules: np.ndarray) -> list[str]:
    """Keywords naming the atoms of every molecule: (N, apm) 0-based atom indices in model order."""
    molecules = np.asarray(molecules, dtype=np.int64)
    flat = molecules.reshape(-1)
    if len(flat) and np.array_equal(flat, np.arange(flat[0], flat[0] + len(flat))):
        return [f"MOLECULES={flat[0] + 1}-{flat[-1] + 1}"]
    return [f"MOLECULE{k}={atom_list(row + 1)}" for k, row in enumerate(molecules, 1)]


@dataclass
class PathOptions:
    """A linear path in the fractions of `classes` (METHOD.md §7), s from 0 to 1."""

    classes: list[str]
    start: list[float]
    end: list[float]
    n_images: int
    lam: float


@dataclass
class PlumedInputOptions:
    label: str = "cls"
    colvar: str = "COLVAR"
    stride: int = 1
    fmt: str = "%.10g"
    prob_file: str | None = None
    file_stride: int = 1
    num_threads: int | None = None
    region: object | None = None  # molenv.analysis.Region (A)
    path: PathOptions | None = None
    nopbc: bool = False
    extra: list[str] = field(default_factory=list)


def plumed_input(model_path: str | Path, molecules: np.ndarray, classes: list[str], options: PlumedInputOptions, module: str | Path, comment: str = "") -> str:
    """The text of a PLUMED input classifying `molecules` with the model at `model_path`."""
    o = options
    lines = ["# molenv: MOLENV_CLASSIFY input" + (f" ({comment})" if comment else ""), "UNITS LENGTH=A", f"LOAD FILE={module}"]
    words = [f"MODEL={Path(model_path).resolve()}", *molecule_keywords(molecules)]
    if o.nopbc:
        words.append("NOPBC")
    if o.num_threads:
        words.append(f"NUM_THREADS={o.num_threads}")
    if o.region is not None:
        r = o.region
        words += [f"REGION_AXIS={r.axis}", f"REGION_CENTER={r.center!r}", f"REGION_HALFWIDTH={r.halfwidth!r}", f"REGION_SMOOTHING={r.smoothing!r}"]
    if o.path is not None:
        p = o.path
        unknown = [c for c in p.classes if c not in classes]
        if unknown:
            raise ValueError(f"path classes {', '.join(unknown)} are not classes of the model ({', '.join(classes)})")
        for what, values in (("start", p.start), ("end", p.end)):
            if len(values) != len(p.classes):
                raise ValueError(f"path {what} has {len(values)} fractions for {len(p.classes)} path classes")
        words += [f"PATH_CLASSES={','.join(p.classes)}", f"PATH_START={','.join(map(repr, p.start))}", f"PATH_END={','.join(map(repr, p.end))}",
                  f"PATH_NIMAGES={p.n_images}", f"LAMBDA={p.lam!r}"]
    if o.prob_file:
        words += [f"PROB_FILE={o.prob_file}", f"FILE_STRIDE={o.file_stride}"]
    words += o.extra
    lines.append(f"{o.label}: MOLENV_CLASSIFY ...")
    lines += [f"   {w}" for w in words]
    lines.append("...")
    lines.append(f"PRINT ARG={o.label}.* FILE={o.colvar} STRIDE={o.stride} FMT={o.fmt}")
    return "\n".join(lines) + "\n"
