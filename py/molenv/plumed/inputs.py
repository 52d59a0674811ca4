"""PLUMED input text: writing a `MOLENV_CLASSIFY` input, reading the `MOLENV_CLASSIFY`
actions of an input, and making the input files an input names absolute.

**Writing** (`plumed_input`, ``molenv plumed-input``). The molecules come from the topology
read as molecules of the spec (`molenv.trajectory.Trajectory`: residues or blocks, atoms
ordered onto the spec by name, position or bond graph), so the atom list is in the model's
atom order whatever the file's order. PLUMED atom numbers are the file's atom order
(1-based), as in `molenv reanalyse`, ``plumed driver`` and MD codes that number atoms like
their input file (GROMACS; LAMMPS when its atom ids run 1..N, which MDAnalysis sorts by).
`molecule_keywords` gives ``MOLECULES=a-b`` when the molecules are consecutive blocks of
atoms in model order, else one ``MOLECULEn=`` list per molecule (runs compressed to ranges).

**Reading** (`classify_actions`). The ``MOLENV_CLASSIFY`` lines of an input, keywords as
written; the atoms of their molecules are read by PLUMED itself (`ClassifyAction.molecules`),
so every atom list the action accepts (numbers, ranges, ``GROUP`` labels, ``@mdatoms``,
``MOLINFO`` shortcuts, ``@ndx:``) is understood the same way.

**Rewriting** (`absolute_input_paths`). Relative paths of input files made absolute, for a
copy of the input that PLUMED reads from another directory (`molenv simulate --plumed`).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.plumed.engine import PlumedError, load_plumed, plumed_message, share_step, start_plumed

__all__ = [
    "PlumedInputError",
    "PathOptions",
    "PlumedInputOptions",
    "atom_list",
    "molecule_keywords",
    "plumed_input",
    "logical_lines",
    "ClassifyAction",
    "classify_actions",
    "Restraint",
    "restraints",
    "INPUT_KEYWORDS",
    "INPUT_FILE_ACTIONS",
    "absolute_input_paths",
]


class PlumedInputError(PlumedError):
    """A PLUMED input that cannot be read; the message names the file, line and problem."""


# ----------------------------------------------------------------------------- writing


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
    ood: bool = False  # OOD: the model's out-of-distribution score as the class other (n_other, f_other)
    extra: list[str] = field(default_factory=list)


def plumed_input(model_path: str | Path, molecules: np.ndarray, classes: list[str], options: PlumedInputOptions, module: str | Path, comment: str = "") -> str:
    """The text of a PLUMED input classifying `molecules` with the model at `model_path`."""
    o = options
    lines = ["# molenv: MOLENV_CLASSIFY input" + (f" ({comment})" if comment else ""), "UNITS LENGTH=A", f"LOAD FILE={module}"]
    words = [f"MODEL={Path(model_path).resolve()}", *molecule_keywords(molecules)]
    if o.nopbc:
        words.append("NOPBC")
    if o.ood:
        words.append("OOD")
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


# ----------------------------------------------------------------------------- reading

# actions whose lines name atoms that a later atom list may use (group labels, MOLINFO's @ shortcuts)
ATOM_NAMING_ACTIONS = ("GROUP", "MOLINFO")
# a word of a line: braces group words with spaces, as in KEY={a b} or @ndx:{file group}
_WORD = re.compile(r"(?:[^\s{]|\{[^}]*\})+")


def logical_lines(path: str | Path) -> list[tuple[int, str]]:
    """(first line number, text) of the logical lines of a PLUMED input: comments removed,
    '...' continuations joined."""
    path = Path(path)
    out, pending, start = [], None, 0
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if pending is not None:
            if line.startswith("..."):
                out.append((start, pending))
                pending = None
            else:
                pending += " " + line
            continue
        if not line:
            continue
        if line.endswith("..."):
            pending, start = line[:-3].strip(), lineno
        else:
            out.append((lineno, line))
    if pending is not None:
        raise PlumedInputError(f"{path}:{start}: continuation '...' is not closed")
    return out


def _label_and_action(words: list[str]) -> tuple[str | None, list[str]]:
    """The ``label:`` of a line's words (None without one) and the words from the action name on."""
    if words and words[0].endswith(":"):
        return words[0][:-1], words[1:]
    return None, words


def _unbrace(value: str) -> str:
    return value[1:-1].strip() if value.startswith("{") and value.endswith("}") else value


@dataclass
class ClassifyAction:
    """A ``MOLENV_CLASSIFY`` line of a PLUMED input."""

    label: str
    keywords: dict[str, str]  # KEY -> value as written (KEY={a b}: 'a b')
    flags: set[str]
    where: str  # file:line
    definitions: list[str] = field(default_factory=list)  # the GROUP and MOLINFO lines before it

    @property
    def model_path(self) -> Path:
        return Path(self.keywords["MODEL"])

    @property
    def file_stride(self) -> int:
        return int(self.keywords.get("FILE_STRIDE", "1"))

    @property
    def nopbc(self) -> bool:
        return "NOPBC" in self.flags

    def atom_lists(self) -> list[str]:
        """The atom lists of the molecules as written: MOLECULES, or MOLECULE1, MOLECULE2, ...
        (numbered from 1 without a gap, as PLUMED reads numbered keywords)."""
        numbered = []
        while f"MOLECULE{len(numbered) + 1}" in self.keywords:
            numbered.append(self.keywords[f"MOLECULE{len(numbered) + 1}"])
        if "MOLECULES" in self.keywords and numbered:
            raise PlumedInputError(f"{self.where}: give either MOLECULES or MOLECULE1, MOLECULE2, ..., not both")
        if "MOLECULES" in self.keywords:
            return [self.keywords["MOLECULES"]]
        if not numbered:
            raise PlumedInputError(f"{self.where}: MOLENV_CLASSIFY without MOLECULES or MOLECULE1, MOLECULE2, ...")
        return numbered

    def molecules(self, n_atoms: int, atoms_per_molecule: int) -> np.ndarray:
        """(n_molecules, atoms_per_molecule) 0-based atom indices, in the action's molecule
        order, as PLUMED reads the action's atom lists in a system of `n_atoms` atoms.

        PLUMED's data interface passes values, not atom lists, so a scratch PLUMED instance
        reads the GROUP and MOLINFO lines before the action and one ``MASS ATOMS=<the
        molecules' atoms>``: with the atom numbers given as masses, that value is the list of
        atom numbers. (PLUMED checks the per-molecule counts when it runs the action itself.)
        """
        probe = "molenv_atoms"
        lists = ",".join(f"{{{a}}}" if re.search(r"\s", a) else a for a in self.atom_lists())
        plumed, kernel = load_plumed(PlumedInputError)
        with tempfile.TemporaryDirectory(prefix="molenv-atoms-") as tmp:
            log = Path(tmp) / "plumed.log"
            p = None
            try:
                p = start_plumed(plumed, kernel, (("setMDEngine", "python"), ("setNatoms", int(n_atoms)), ("setLogFile", str(log))))
                for line in self.definitions:
                    p.cmd("readInputLine", line)
                p.cmd("readInputLine", f"{probe}: MASS ATOMS={lists}")
                rank = np.zeros(1, dtype=np.int_)
                p.cmd(f"getDataRank {probe}", rank)
                shape = np.zeros(rank[0], dtype=np.int_)
                p.cmd(f"getDataShape {probe}", shape)
                numbers = np.zeros(shape, dtype=np.float64)
                p.cmd(f"setMemoryForData {probe}", numbers)
                # named arrays: PLUMED keeps the pointers until calc
                serials = np.arange(1, n_atoms + 1, dtype=np.float64)
                positions, charges = np.zeros((n_atoms, 3)), np.zeros(n_atoms)
                forces, virial = np.zeros((n_atoms, 3)), np.zeros((3, 3))
                share_step(p, 0, positions, None, serials, charges, forces, virial)
                p.cmd("calc")
            except Exception as err:  # PLUMED raises its own exception types
                message = plumed_message(err, log).replace(f"ERROR in input to action MASS with label {probe} : ", "")
                raise PlumedInputError(f"{self.where}: PLUMED cannot read the molecules of {self.label}: {message}") from None
            finally:
                if p is not None:
                    p.finalize()
        atoms = np.rint(numbers.reshape(-1)).astype(np.int64)
        if np.any(atoms != numbers.reshape(-1)) or np.any((atoms < 1) | (atoms > n_atoms)):
            raise PlumedInputError(f"{self.where}: the molecules of {self.label} name something other than atoms 1..{n_atoms} of the system (virtual atoms?)")
        if len(atoms) % atoms_per_molecule:
            raise PlumedInputError(f"{self.where}: the molecules of {self.label} are {len(atoms)} atoms, not a multiple of the model's "
                                   f"{atoms_per_molecule} atoms per molecule")
        return atoms.reshape(-1, atoms_per_molecule) - 1


def classify_actions(plumed_dat: str | Path) -> list[ClassifyAction]:
    """The ``MOLENV_CLASSIFY`` actions of a PLUMED input (``label: MOLENV_CLASSIFY ...`` or
    ``LABEL=``), keywords as written (``KEY=value``, ``KEY={a b}``) and flags."""
    path = Path(plumed_dat)
    if not path.is_file():
        raise PlumedInputError(f"{path}: PLUMED input not found")
    actions, definitions = [], []
    for lineno, line in logical_lines(path):
        label, words = _label_and_action(_WORD.findall(line))
        name = words[0].upper() if words else ""
        if name in ATOM_NAMING_ACTIONS:
            definitions.append(line)
        if name != "MOLENV_CLASSIFY":
            continue
        keywords, flags = {}, set()
        for word in words[1:]:
            if "=" in word:
                key, value = word.split("=", 1)
                keywords[key.upper()] = _unbrace(value)
            else:
                flags.add(word.upper())
        label = label or keywords.pop("LABEL", None) or f"@{len(actions)}"
        actions.append(ClassifyAction(label, keywords, flags, f"{path}:{lineno}", list(definitions)))
    return actions


@dataclass
class Restraint:
    """A one-argument ``RESTRAINT`` line of a PLUMED input: the harmonic bias
    KAPPA/2 (ARG - AT)^2 of interface pinning (`molenv pinning`)."""

    label: str | None
    arg: str
    at: float
    kappa: float
    where: str  # file:line


def restraints(plumed_dat: str | Path) -> list[Restraint]:
    """The ``RESTRAINT`` actions of a PLUMED input with one argument and a numeric AT and
    KAPPA (SLOPE, the linear term, must be 0 or absent); any other RESTRAINT is refused, naming
    its line."""
    path = Path(plumed_dat)
    if not path.is_file():
        raise PlumedInputError(f"{path}: PLUMED input not found")
    found = []
    for lineno, line in logical_lines(path):
        label, words = _label_and_action(_WORD.findall(line))
        if not words or words[0].upper() != "RESTRAINT":
            continue
        where = f"{path}:{lineno}"
        keywords = {}
        for word in words[1:]:
            if "=" in word:
                key, value = word.split("=", 1)
                keywords[key.upper()] = _unbrace(value)
        args = [a for a in keywords.get("ARG", "").split(",") if a]
        if len(args) != 1:
            raise PlumedInputError(f"{where}: RESTRAINT on {len(args)} arguments; pinning needs one (ARG=cls.n_I, say)")
        try:
            at, kappa = float(keywords["AT"]), float(keywords["KAPPA"])
            slope = float(keywords.get("SLOPE", "0"))
        except KeyError as err:
            raise PlumedInputError(f"{where}: RESTRAINT without {err.args[0]}") from None
        except ValueError:
            raise PlumedInputError(f"{where}: AT, KAPPA and SLOPE of the RESTRAINT must be numbers") from None
        if slope != 0 or kappa <= 0:
            raise PlumedInputError(f"{where}: pinning needs a harmonic RESTRAINT with KAPPA > 0 and no SLOPE")
        found.append(Restraint(label or keywords.get("LABEL"), args[0], at, kappa, where))
    return found


# ----------------------------------------------------------------------------- rewriting

# keywords whose value is an input file
INPUT_KEYWORDS = ("MODEL", "STRUCTURE", "REFERENCE")
INPUT_FILE_ACTIONS = ("LOAD", "INCLUDE")  # their FILE= is an input


def absolute_input_paths(text: str, base: str | Path | None = None) -> tuple[str, list[str]]:
    """The input `text` with relative paths of input files (``MODEL=``, ``STRUCTURE=``,
    ``REFERENCE=``, ``FILE=`` of ``LOAD``/``INCLUDE``) that exist relative to `base` (default:
    the current directory) made absolute, and the values rewritten."""
    base = Path.cwd() if base is None else Path(base)
    changed = []

    def absolute(value: str) -> str:
        if value.startswith("{") or os.path.isabs(value) or not (base / value).exists():
            return value
        changed.append(value)
        return str((base / value).resolve())

    out = []
    for raw in text.splitlines(keepends=True):
        code, hash_, comment = raw.partition("#")
        words = code.split()
        first = words[1] if words and words[0].endswith(":") and len(words) > 1 else (words[0] if words else "")
        keys = INPUT_KEYWORDS + (("FILE",) if first.upper() in INPUT_FILE_ACTIONS else ())
        code = re.sub(r"(?<!\S)(" + "|".join(keys) + r")=(\S+)", lambda m: f"{m.group(1)}={absolute(m.group(2))}", code)
        out.append(code + hash_ + comment)
    return "".join(out), changed
