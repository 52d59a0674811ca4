"""Projects: one resumable path from a molecule's crystal structures to a PLUMED model.

A project file (TOML; `write_template` / ``molenv project init`` writes a commented one, and
docs/new_molecule.md documents every key, as `SCHEMA` defines them) names a molecule spec,
its forms with their crystal structures, the temperatures, the melt and the settings of
every step. `run_project` runs the stages in order, in the project directory:

============  =====================================================================
simulate      every form at every temperature (clusters optional) and the melt:
              ``molenv simulate`` run directories under ``runs/``
design        optional: descriptors chosen from the training-temperature runs
              (`molenv.design`): ``design/spec.toml``
featurize     the run directories as sources (`molenv.featurize`): ``dataset/``
train         the SF-MLP (`molenv.sf.train`), optionally the GNN: ``train/sf``, ``train/gnn``
export        model files, the SF one with its out-of-distribution score: ``models/``
evaluate      the exported SF model (and the GNN checkpoint) on the dataset's test
              split (`molenv.evaluate`): ``evaluate/sf``, ``evaluate/gnn``
plumed-input  a PLUMED input for a run's topology (``molenv plumed-input``): ``plumed/``
============  =====================================================================

Every stage is a list of tasks (one per MD run, one per classifier). A task's *key* is a hash
of its settings and of the keys of the tasks it reads; the state file
(``project-state.json``, replaced atomically after every task) records the key of every task
finished. A task whose recorded key is its current key and whose outputs exist is skipped,
so running the project again after an interruption redoes nothing finished; a changed
setting reruns the tasks it reaches. An MD run that was interrupted resumes from its last
checkpoint (`molenv.simulate.md`); other tasks start again (seconds to minutes). The MD
runs' keys leave out ``threads`` (which may change between resumes) and the spec's
contents (a spec whose descriptors change keeps its MD, whose atoms are the spec's).

Where a command has a Python function (featurize, design, train sf, export, evaluate) the
stage calls it; ``molenv simulate``, ``molenv train gnn`` and ``molenv plumed-input`` keep
their logic in their command modules and run in this process with their own parsers.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import re
import shlex
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["STAGES", "SCHEMA", "STATE_FILE", "ProjectError", "Project", "Run", "Task", "load_project", "plan", "run_project",
           "project_status", "write_report", "write_template", "initial_spec"]

STAGES = ("simulate", "design", "featurize", "train", "export", "evaluate", "plumed-input")
STATE_FILE = "project-state.json"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MELT = "melt"


class ProjectError(ValueError):
    """A project file that cannot be run, or a stage that failed; the message names the file and key."""


# ----------------------------------------------------------------------------- the keys


class _Required:
    def __repr__(self):
        return "required"


REQUIRED = _Required()


@dataclass(frozen=True)
class Key:
    """One key of a project table: its check (returns the value, or raises ValueError with
    what was expected), default, and the help line the template and the docs carry."""

    name: str
    check: Callable
    default: object = None
    help: str = ""
    example: object = None  # what the template shows for a key without a default


def _number(value, *, above=None, minimum=None, below=None, integer=False):
    kind = "an integer" if integer else "a number"
    bounds = [f"> {above:g}" if above is not None else "", f">= {minimum:g}" if minimum is not None else "", f"< {below:g}" if below is not None else ""]
    what = " ".join([kind, *[b for b in bounds if b]]).replace("  ", " ")
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not math.isfinite(value) or (above is not None and value <= above) or \
            (minimum is not None and value < minimum) or (below is not None and value >= below):
        raise ValueError(f"expected {what}, got {value!r}")
    return value


def positive(value):
    return float(_number(value, above=0))


def non_negative(value):
    return float(_number(value, minimum=0))


def fraction(value):
    return float(_number(value, above=0, below=1))


def cutoff(value):
    return float(_number(value, minimum=4))


def dropout(value):
    return float(_number(value, minimum=0, below=1))


def count(minimum=1):
    def check(value):
        return _number(value, minimum=minimum, integer=True)
    return check


def integer(value):
    return _number(value, integer=True)


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def text(value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a string, got {value!r}")
    return value


def choice(*options):
    def check(value):
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return value
    return check


def number_list(item, *, length=None):
    """A check of a non-empty list whose entries pass `item` (of `length` entries, if given)."""
    def check(value):
        if isinstance(value, list) and not value:
            raise ValueError("the list is empty")
        if not isinstance(value, list):
            raise ValueError(f"expected a non-empty list, got {value!r}")
        if length is not None and len(value) != length:
            raise ValueError(f"expected a list of {length}, got {value!r}")
        return [item(v) for v in value]
    return check


def labels(value):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a non-empty list of form labels, got {value!r}")
    return value


BAROSTATS = ("auto", "iso", "xy", "aniso", "flexible", "none")
MD_KEYS = [
    Key("equilibrate", non_negative, 20.0, "equilibration time, ps"),
    Key("production", positive, 50.0, "production time, ps (frames recorded)"),
    Key("frame_interval", positive, 1.0, "a frame every this many ps of production"),
]
SCHEMA: dict[str, list[Key]] = {
    "": [
        Key("name", text, REQUIRED, "names the run directories (NAME-I-100K, NAME-melt-350K) and the model files (NAME_sf.molenv)"),
        Key("directory", text, ".", "project directory, relative to this file: every output goes there"),
    ],
    "molecule": [
        Key("spec", text, REQUIRED, "molecule spec: a shipped name (urea, nicotinamide) or a spec .toml, relative to this file (docs/spec.md)"),
        Key("atom_types", choice("gaff", "gaff2"), "gaff2", "GAFF atom types of the force field"),
        Key("charges", text, "bcc", "bcc (AM1-BCC), gas (Gasteiger: quick tests only) or a charge set of the spec"),
        Key("lennard_jones", text, None, "a Lennard-Jones set of the spec (default: the atom types')", example="kuroshima2024"),
        Key("ff_cache", text, None, "force-field cache directory, relative to this file (default: molenv's, ~/.cache/molenv/forcefields)", example="forcefields"),
    ],
    "forms.*": [
        Key("structure", text, REQUIRED, "crystal structure (CIF or PDB), relative to this file"),
        Key("symmetrise", positive, None, "symmetrise an approximate structure first (spglib tolerance, A), e.g. 0.3", example=0.3),
        Key("barostat", choice(*BAROSTATS), None, "barostat of this form's runs (default [simulate] barostat)", example="iso"),
        Key("repeats", number_list(count(1), length=3), None, "supercell repeats along a, b, c (default: from the cutoff and min_height)", example=[4, 4, 5]),
    ],
    "simulate": [
        Key("temperatures", number_list(positive), REQUIRED,
            "K; every form at each. The lowest trains, the others test (featurize's method split)"),
        *MD_KEYS,
        Key("timestep", positive, 2.0, "fs, with H-bond constraints"),
        Key("barostat", choice(*BAROSTATS), "auto", "auto: by the cell shape (docs/simulate.md)"),
        Key("min_height", positive, None, "minimum supercell height, A (default 20; raised to 5 % above twice the cutoff, "
                                          "and with [design] to 5 % above twice its max_cutoff)", example=21.0),
        Key("minimise", boolean, True, "minimise the energy before the MD"),
        Key("seed", integer, 2024, "random seed of the MD"),
        Key("checkpoint_interval", positive, 10.0, "ps between checkpoints (an interrupted run resumes from the last)"),
        Key("threads", count(1), 1, "OpenMM CPU threads per run (may change between resumes)"),
    ],
    "melt": [
        Key("form", text, None, "the form whose supercell is melted (default: the first form)", example="I"),
        Key("temperature", positive, 350.0, "K, of the supercooled melt sampled"),
        Key("melt_temperature", positive, 800.0, "K"),
        Key("melt_time", non_negative, 20.0, "ps at melt_temperature"),
        Key("quench_time", non_negative, 20.0, "ps of the linear quench to temperature"),
        Key("ensemble", choice("npt", "nvt"), "npt", "ensemble of the melting stage"),
        Key("barostat", choice("auto", "iso", "none"), "auto", "none: every stage at constant volume (with density)"),
        Key("density", positive, None, "expand the crystal to this density (g/cm3) before melting", example=1.24),
        Key("equilibrate", non_negative, None, "ps (default: [simulate]'s)", example=20.0),
        Key("production", positive, None, "ps (default: [simulate]'s)", example=50.0),
        Key("frame_interval", positive, None, "ps (default: [simulate]'s)", example=1.0),
        Key("check", boolean, True, "check that the melt has melted (docs/simulate.md, 'The melt check'); false only for test runs"),
    ],
    "clusters": [
        Key("diameter", positive, 30.0, "A"),
        Key("temperatures", number_list(positive), None, "K (default: the lowest of [simulate] temperatures)", example=[100.0]),
        Key("forms", labels, None, "form labels (default: every form)", example=["I"]),
    ],
    "design": [
        Key("enabled", boolean, False, "choose the descriptors from the training-temperature runs (molenv design) instead of the spec's"),
        Key("vectors", count(1), 2, "number of vectors"),
        Key("max_cutoff", cutoff, 10.0, "largest cutoff considered, A (>= 4)"),
        Key("max_functions", count(1), 24, "at most this many symmetry functions"),
        Key("min_functions", count(1), 8, "select at least this many before the gain test may stop"),
        Key("max_frames", count(2), 20, "frames per run used"),
        Key("warm_held_out", number_list(non_negative, length=2), None, "[translation A, rotation degrees]: score on warmed held-out frames", example=[0.2, 8.0]),
        Key("expand_held_out", non_negative, None, "linear strain: score on held-out frames stretched by it (thermal expansion)", example=0.016),
        Key("seed", integer, 0, "seed of every random choice"),
    ],
    "featurize": [
        Key("split_mode", choice("method", "random"), "method", "method: the lowest temperature trains, the others test; random: frames of every run"),
        Key("val_fraction", fraction, 0.2, "trailing fraction of training frames for validation"),
        Key("test_fraction", fraction, 0.2, "held-out melt frames (method) / test frames of every run (random)"),
        Key("train_temperature", positive, None, "K, the training crystals' (default: the lowest)", example=100.0),
        Key("seed", integer, 0, "seed of the random split"),
        Key("workers", count(1), 1, "processes computing descriptors"),
        Key("augment_temperature", positive, None, "K: add warmed copies of the training crystals for a model used at this "
            "temperature (molenv.augment)", example=350.0),
        Key("augment_copies", count(1), 1, "warmed copies of each training frame"),
        Key("augment_clusters", boolean, False, "warm the training clusters in vacuum too"),
        Key("augment_expansion", non_negative, None, "linear strain: stretch the warmed crystals by it (their thermal expansion to augment_temperature)", example=0.016),
        Key("relabel_turned", boolean, False, "label melt the molecules of crystalline clusters that have turned by > 35 degrees"),
    ],
    "train.sf": [
        Key("hidden", number_list(count(1)), [25, 25], "hidden layer sizes"),
        Key("activation", choice("sigmoid", "tanh", "softplus", "identity"), "sigmoid", "hidden activation"),
        Key("lr", positive, 1e-2, "Adam learning rate"),
        Key("weight_decay", non_negative, 0.0, "Adam weight decay"),
        Key("input_noise", non_negative, 0.0, "Gaussian noise on the scaled training inputs (e.g. 0.2 for test crystals hotter than the training ones)"),
        Key("batch_size", count(0), 256, "molecules per step (0: full batch)"),
        Key("max_epochs", count(1), 500, "at most this many epochs"),
        Key("patience", count(0), 30, "early stopping: epochs without a better validation loss"),
        Key("seed", integer, 0, "seed"),
        Key("threads", count(1), 1, "torch threads"),
        Key("include_clusters", boolean, False, "also train on clusters and surface molecules"),
    ],
    "train.gnn": [
        Key("enabled", boolean, False, "also train the graph classifier (slow on a CPU)"),
        Key("convs", count(1), 1, "graph convolutions (2 for cluster surfaces)"),
        Key("lr", positive, 1e-4, "Adam learning rate"),
        Key("dropout", dropout, 0.5, "dropout of the residual blocks"),
        Key("position_noise", non_negative, 0.0, "A, Gaussian displacement of the training atoms"),
        Key("batch_size", count(1), 4, "frames per step"),
        Key("max_epochs", count(1), 200, "at most this many epochs"),
        Key("patience", count(0), 20, "early stopping: epochs without a better validation loss"),
        Key("max_time", positive, None, "minutes of training at most", example=60.0),
        Key("frame_step", count(1), 1, "train on every N-th training frame"),
        Key("val_frame_step", count(1), 1, "validate on every N-th validation frame"),
        Key("seed", integer, 0, "seed"),
        Key("threads", count(1), 1, "torch threads"),
        Key("accelerator", choice("cpu", "gpu", "auto"), "auto", "where to train"),
    ],
    "evaluate": [
        Key("split", choice("test", "val", "train"), "test", "dataset split evaluated"),
        Key("include_clusters", boolean, False, "SF: also clusters and surface molecules"),
        Key("plots", boolean, True, "confusion matrices and t-SNE maps"),
        Key("tsne_samples", count(0), 1000, "molecules in the t-SNE maps (0: none)"),
    ],
    "export": [
        Key("ood", boolean, True, "the out-of-distribution score ('none of these', n_other) in the model files"),
    ],
    "plumed": [
        Key("topology", text, None, "the system the input is for: a run name of this project or a file, relative to this file "
                                    "(default: the first form's training run)", example="NAME-I-100K"),
        Key("colvar", text, "COLVAR", "PRINT file"),
        Key("stride", count(1), 1, "PRINT stride"),
        Key("prob_file", text, None, "per-molecule probabilities file (PROB_FILE)", example="prob.dat"),
        Key("num_threads", count(1), None, "NUM_THREADS of the action", example=2),
        Key("ood", boolean, True, "OOD, the out-of-distribution score as the class other (n_other, f_other); "
                                  "with [export] ood only"),
    ],
}


class _Table:
    """A table of the project file being read: its keys checked against `SCHEMA`."""

    def __init__(self, raw, where: str, file: Path, schema: str | None = None):
        self.where, self.file = where, file
        if not isinstance(raw, dict):
            raise ProjectError(f"{file}: {self.label()} must be a table, got {raw!r}")
        self.raw = raw
        self.keys = {k.name: k for k in SCHEMA[schema if schema is not None else where]}

    def label(self, key: str | None = None) -> str:
        head = f"[{self.where}]" if self.where else ""
        return " ".join(x for x in (head, key) if x) or "the top level"

    def error(self, key: str | None, message: str) -> ProjectError:
        return ProjectError(f"{self.file}: {self.label(key)}: {message}")

    def values(self) -> dict:
        """Every key of the table's schema: the value given (checked) or the default."""
        unknown = [k for k in self.raw if k not in self.keys]
        if unknown:
            raise self.error(unknown[0], f"unknown key (keys of {self.label()}: {', '.join(self.keys)})")
        out = {}
        for name, key in self.keys.items():
            if name not in self.raw:
                if key.default is REQUIRED:
                    raise self.error(name, f"missing ({key.help})")
                out[name] = key.default
                continue
            try:
                out[name] = key.check(self.raw[name])
            except ValueError as err:
                raise self.error(name, str(err)) from None
        return out


# ----------------------------------------------------------------------------- the project


@dataclass
class Run:
    """One `molenv simulate` run of the project."""

    name: str
    mode: str  # crystal, melt, cluster
    label: str
    temperature: float
    directory: Path
    argv: list[str]  # after `molenv simulate`
    runtime: list[str]  # options left out of the key (they may change between resumes)
    train: bool = False  # at the training temperature (a design input)

    @property
    def key(self) -> str:
        return _hash([self.mode, *self.argv])

    def finished(self) -> bool:
        from molenv.simulate.md import RunDirectory

        rd = RunDirectory(self.directory)
        progress = rd.progress() or {}
        return bool(progress.get("done")) and rd.file("trajectory.xtc").is_file() and rd.file("summary.json").is_file()


@dataclass
class Project:
    file: Path
    directory: Path
    name: str
    molecule: dict
    forms: dict[str, dict]
    simulate: dict
    melt: dict | None
    clusters: dict | None
    design: dict
    featurize: dict
    sf: dict
    gnn: dict
    evaluate: dict
    export: dict
    plumed: dict
    runs: list[Run] = field(default_factory=list)

    @property
    def spec(self) -> str:
        """The spec as the commands take it: a shipped name or an absolute path."""
        return self.molecule["spec"]

    @property
    def classes(self) -> list[str]:
        return [*self.forms, *([MELT] if self.melt else [])]

    def run(self, name: str) -> Run | None:
        return next((r for r in self.runs if r.name == name), None)

    @property
    def train_temperature(self) -> float:
        return self.featurize["train_temperature"] or min(self.simulate["temperatures"])


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def load_project(path: str | os.PathLike) -> Project:
    """Read and check a project file: every key (types, ranges, unknown keys), the spec, the
    structure files, the labels and temperatures, and every MD run's options (through
    ``molenv simulate``'s own parser and schedule checks). ProjectError names the file and
    the key."""
    from molenv.spec import SpecError, load_spec

    file = Path(path)
    if file.is_dir() or not file.is_file():
        raise ProjectError(f"{file}: project file not found" if not file.exists() else f"{file}: is a directory, not a project file")
    try:
        raw = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProjectError(f"{file}: not a valid TOML file: {err}") from None
    base = file.resolve().parent
    tables = [k.name for k in SCHEMA[""]] + ["molecule", "forms", "simulate", "melt", "clusters", "design", "featurize", "train", "evaluate",
                                            "export", "plumed"]
    unknown = [k for k in raw if k not in tables]
    if unknown:
        raise ProjectError(f"{file}: {unknown[0]}: unknown key or table (the project file has {', '.join(tables)})")
    top = _Table({k: v for k, v in raw.items() if k in ("name", "directory")}, "", file).values()
    if not NAME.match(top["name"]):
        raise ProjectError(f"{file}: name: {top['name']!r} names files: letters, digits, _, . and - only")

    def table(name: str, *, required: bool = False, optional: bool = False) -> dict | None:
        """The checked keys of table `name`; an absent one: an error (`required`), None
        (`optional`: the table switches something on) or the defaults."""
        parent, _, child = name.partition(".")
        value = raw.get(parent) if not child else (raw.get(parent) or {}).get(child)
        if value is None:
            if required:
                raise ProjectError(f"{file}: [{name}] is missing ({'; '.join(k.name for k in SCHEMA[name] if k.default is REQUIRED)} required)")
            if optional:
                return None
            value = {}
        return _Table(value, name, file).values()

    molecule = table("molecule", required=True)
    spec_value = molecule["spec"]
    if spec_value.endswith(".toml") or "/" in spec_value:
        molecule["spec"] = str(_resolve(base, spec_value).resolve())
    try:
        spec = load_spec(molecule["spec"])
    except SpecError as err:
        raise ProjectError(f"{file}: [molecule] spec: {err}") from None
    if molecule["charges"] not in ("bcc", "gas") and molecule["charges"] not in spec.charge_sets:
        raise ProjectError(f"{file}: [molecule] charges: {molecule['charges']!r} is neither bcc, gas nor a charge set of the spec "
                           f"{spec.name} (its sets: {', '.join(spec.charge_sets) or 'none'})")
    if molecule["lennard_jones"] and molecule["lennard_jones"] not in spec.lennard_jones_sets:
        raise ProjectError(f"{file}: [molecule] lennard_jones: {molecule['lennard_jones']!r} is not a Lennard-Jones set of the spec "
                           f"{spec.name} (its sets: {', '.join(spec.lennard_jones_sets) or 'none'})")
    if molecule["ff_cache"]:
        molecule["ff_cache"] = str(_resolve(base, molecule["ff_cache"]))

    from molenv.modelfile import CLASS_NAME

    raw_forms = raw.get("forms")
    if not raw_forms:
        raise ProjectError(f"{file}: [forms] is missing: give each crystal form a table, e.g. [forms.I] with structure = \"formI.cif\"")
    if not isinstance(raw_forms, dict):
        raise ProjectError(f"{file}: forms must be tables [forms.LABEL], got {raw_forms!r}")
    forms = {}
    for label, value in raw_forms.items():
        if not CLASS_NAME.match(label):
            raise ProjectError(f"{file}: [forms.{label}]: a form label is a class name: letters, digits and _ only (they become PLUMED components)")
        if label.lower() == MELT:
            raise ProjectError(f"{file}: [forms.{label}]: '{label}' is the melt's class; the melt is the [melt] table")
        form = _Table(value, f"forms.{label}", file, "forms.*").values()
        structure = _resolve(base, form["structure"])
        if not structure.is_file():
            raise ProjectError(f"{file}: [forms.{label}] structure: {structure}: " + ("is a directory, not a structure file" if structure.is_dir()
                                                                                      else "structure file not found"))
        form["structure"] = str(structure.resolve())
        forms[label] = form
    md = table("simulate", required=True)
    temperatures = md["temperatures"]
    if len(set(temperatures)) != len(temperatures):
        raise ProjectError(f"{file}: [simulate] temperatures: {temperatures} lists a temperature twice")
    melt = table("melt", optional=True)
    if melt is not None:
        melt["form"] = melt["form"] or next(iter(forms))
        if melt["form"] not in forms:
            raise ProjectError(f"{file}: [melt] form: unknown label {melt['form']!r} (forms: {', '.join(forms)})")
    clusters = table("clusters", optional=True)
    if clusters is not None:
        for label in clusters["forms"] or []:
            if label not in forms:
                raise ProjectError(f"{file}: [clusters] forms: unknown label {label!r} (forms: {', '.join(forms)})")
    design = table("design")
    if design["min_functions"] > design["max_functions"]:
        raise ProjectError(f"{file}: [design] min_functions: {design['min_functions']} exceeds max_functions {design['max_functions']}")
    featurize = table("featurize")
    if featurize["train_temperature"] is not None and featurize["train_temperature"] not in temperatures:
        raise ProjectError(f"{file}: [featurize] train_temperature: {featurize['train_temperature']:g} K is not one of [simulate] temperatures "
                           f"({', '.join(f'{t:g}' for t in temperatures)})")
    if featurize["val_fraction"] + featurize["test_fraction"] >= 1:
        raise ProjectError(f"{file}: [featurize] val_fraction + test_fraction must be below 1, got {featurize['val_fraction'] + featurize['test_fraction']:g}")
    train = raw.get("train") or {}
    if not isinstance(train, dict) or any(k not in ("sf", "gnn") for k in train):
        raise ProjectError(f"{file}: [train] holds the tables [train.sf] and [train.gnn], got {', '.join(map(str, train)) if isinstance(train, dict) else train!r}")
    sf = table("train.sf")
    gnn = table("train.gnn")
    evaluate = table("evaluate")
    export = table("export")
    plumed = table("plumed")
    if plumed["ood"] and not export["ood"]:
        if "ood" in (raw.get("plumed") or {}):
            raise ProjectError(f"{file}: [plumed] ood = true needs the model file's ood block, and [export] ood is false: "
                               "set [export] ood = true, or [plumed] ood = false")
        plumed["ood"] = False  # the default follows [export] ood
    classes = [*forms, *([MELT] if melt else [])]
    if len(classes) < 2:
        raise ProjectError(f"{file}: a classifier needs two classes or more, this project has {classes[0]} only: add a form or a [melt] table")
    project = Project(file=file, directory=_resolve(base, top["directory"]).resolve(), name=top["name"], molecule=molecule, forms=forms,
                      simulate=md, melt=melt, clusters=clusters, design=design, featurize=featurize, sf=sf, gnn=gnn, evaluate=evaluate,
                      export=export, plumed=plumed)
    project.runs = _runs(project, spec)
    if plumed["topology"] and not project.run(plumed["topology"]):
        topology = _resolve(base, plumed["topology"])
        if not topology.is_file():
            raise ProjectError(f"{file}: [plumed] topology: {plumed['topology']!r} is neither a run of this project "
                               f"({', '.join(r.name for r in project.runs)}) nor a file ({topology} not found)")
        plumed["topology"] = str(topology.resolve())
    return project


def _runs(project: Project, spec) -> list[Run]:
    """The MD runs, with their `molenv simulate` options, each checked by simulate's parser
    and schedule check."""
    from molenv.simulate import DEFAULT_MIN_HEIGHT
    from molenv.simulate.systems import BAROSTAT_MARGIN, supercell_height

    m, md = project.molecule, project.simulate
    forcefield = ["--molecule", project.spec, "--atom-types", m["atom_types"], "--charges", m["charges"]]
    if m["lennard_jones"]:
        forcefield += ["--lennard-jones", m["lennard_jones"]]
    if m["ff_cache"]:
        forcefield += ["--ff-cache", m["ff_cache"]]
    min_height = md["min_height"]
    if project.design["enabled"]:  # room for every cutoff the design may choose, where the spec's cutoff leaves too little
        design_height = round(2 * project.design["max_cutoff"] * (1 + BAROSTAT_MARGIN), 6)
        if design_height > supercell_height(spec, min_height or DEFAULT_MIN_HEIGHT):
            min_height = design_height
    common = ["--timestep", _g(md["timestep"]), "--seed", str(md["seed"]), "--checkpoint-interval", _g(md["checkpoint_interval"])]
    if not md["minimise"]:
        common.append("--no-minimise")
    runtime = ["--threads", str(md["threads"])]

    def schedule(table):
        return ["--equilibrate", _g(table["equilibrate"]), "--production", _g(table["production"]), "--frame-interval", _g(table["frame_interval"])]

    def structure(form):
        f = project.forms[form]
        return ["--structure", f["structure"], *(["--symmetrise", _g(f["symmetrise"])] if f["symmetrise"] else [])]

    runs = []
    train_t = project.train_temperature
    for label, form in project.forms.items():
        for t in md["temperatures"]:
            argv = ["crystal", *forcefield, *structure(label), *(["--repeats", *map(str, form["repeats"])] if form["repeats"] else []),
                    *(["--min-height", _g(min_height)] if min_height else []), "--barostat", form["barostat"] or md["barostat"],
                    "--temperature", _g(t), *schedule(md), *common, "--label", label]
            runs.append(Run(f"{project.name}-{label}-{_g(t)}K", "crystal", label, t, project.directory / "runs" / f"{project.name}-{label}-{_g(t)}K",
                            argv, runtime, train=t == train_t))
    if project.clusters:
        c = project.clusters
        for label in c["forms"] or list(project.forms):
            for t in c["temperatures"] or [min(md["temperatures"])]:
                name = f"{project.name}-{label}-cluster-{_g(t)}K"
                argv = ["cluster", *forcefield, *structure(label), "--diameter", _g(c["diameter"]), "--temperature", _g(t), *schedule(md),
                        *common, "--label", label]
                runs.append(Run(name, "cluster", label, t, project.directory / "runs" / name, argv, runtime))
    if project.melt:
        mt = project.melt
        table = {k: mt[k] if mt[k] is not None else md[k] for k in ("equilibrate", "production", "frame_interval")}
        name = f"{project.name}-{MELT}-{_g(mt['temperature'])}K"
        argv = ["melt", *forcefield, *structure(mt["form"]), *(["--min-height", _g(min_height)] if min_height else []),
                "--temperature", _g(mt["temperature"]), "--melt-temperature", _g(mt["melt_temperature"]), "--melt-time", _g(mt["melt_time"]),
                "--quench-time", _g(mt["quench_time"]), "--melt-ensemble", mt["ensemble"], "--barostat", mt["barostat"],
                *(["--density", _g(mt["density"])] if mt["density"] else []), *schedule(table), *common,
                *([] if mt["check"] else ["--no-melt-check"])]
        runs.append(Run(name, "melt", MELT, mt["temperature"], project.directory / "runs" / name, argv, runtime, train=True))
    for run in runs:
        _check_simulate_options(project, run)
    return runs


def _check_simulate_options(project: Project, run: Run) -> None:
    """The run's options through `molenv simulate`'s parser and schedule check, the errors
    named by the project file's tables."""
    from molenv.commands.simulate import _check_schedule

    table = {"crystal": "[simulate]", "cluster": "[clusters]", "melt": "[melt]"}[run.mode]
    try:
        args = _parse("simulate", [*run.argv, *run.runtime, "--out", str(run.directory)])
        _check_schedule(args)
    except ValueError as err:  # SimulationError and _ParseError included
        raise ProjectError(f"{project.file}: {table} (run {run.name}): {err}") from None


class _ParseError(ValueError):
    """A command's options refused by its parser."""


class _Parser(argparse.ArgumentParser):
    """A command's parser that raises instead of exiting (its options come from the project file)."""

    def error(self, message):
        raise _ParseError(message)


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    from molenv.cli import COMMANDS

    module = importlib.import_module(f"molenv.commands.{COMMANDS[command]}")
    parser = _Parser(prog=f"molenv {command}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_line = ["molenv", command, *argv]
    return args


def _command(command: str, argv: list[str]) -> int:
    """`molenv COMMAND ARGV` in this process (the command's own parser and run)."""
    from molenv.cli import COMMANDS

    module = importlib.import_module(f"molenv.commands.{COMMANDS[command]}")
    args = _parse(command, argv)
    return module.run(args) or 0


def _g(x: float) -> str:
    return f"{x:g}"


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- the state


class ProjectState:
    """`STATE_FILE` in the project directory: the key and result of every finished task,
    replaced atomically (a temporary file, fsync, rename) after every task."""

    def __init__(self, directory: Path):
        self.path = directory / STATE_FILE
        self.data = {"format": "molenv-project-state", "version": 1, "tasks": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except ValueError as err:
                raise ProjectError(f"{self.path}: unreadable project state ({err}); remove it to check every stage again") from None
            if data.get("format") != "molenv-project-state":
                raise ProjectError(f"{self.path}: not a molenv project state file")
            self.data = data

    def task(self, name: str) -> dict | None:
        return self.data["tasks"].get(name)

    def record(self, name: str, key: str, info: dict) -> None:
        self.data["tasks"][name] = {"key": key, "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"), **info}
        self.save()

    def forget(self, name: str) -> None:
        if self.data["tasks"].pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.data, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


# ----------------------------------------------------------------------------- the tasks


@dataclass
class Task:
    """One unit of work of a stage: skipped when the state records its key and its outputs exist."""

    stage: str
    name: str
    key: str
    outputs: list[Path]
    action: Callable[[], dict]  # does the work; returns what the state records beside the key
    complete: Callable[[], bool] | None = None  # outputs complete (default: every output exists)

    def outputs_complete(self) -> bool:
        return self.complete() if self.complete else all(p.exists() for p in self.outputs)


@dataclass
class _Context:
    project: Project
    progress: bool
    log: Callable

    @property
    def dir(self) -> Path:
        return self.project.directory

    def command(self, *words) -> str:
        return shlex.join(["molenv", "project", "run", str(self.project.file), *words])


def _spec_sha(spec: str) -> str:
    from molenv.constants import file_sha256
    from molenv.spec import load_spec

    path = load_spec(spec).path
    return file_sha256(path) if path else spec


def plan(project: Project, *, progress: bool = True, log=print) -> list[Task]:
    """Every task of the project, in order, with its key."""
    ctx = _Context(project, progress, log)
    d = project.directory
    tasks: list[Task] = []
    for run in project.runs:
        tasks.append(Task("simulate", f"simulate {run.name}", run.key, [run.directory / "trajectory.xtc"], _simulate_action(ctx, run),
                          complete=run.finished))
    run_keys = [r.key for r in project.runs]
    design_spec = d / "design" / "spec.toml"
    if project.design["enabled"]:
        key = _hash({"design": project.design, "runs": [r.key for r in project.runs if r.train]})
        tasks.append(Task("design", "design", key, [design_spec], _design_action(ctx, design_spec)))
        spec, spec_key = str(design_spec), key
    else:
        spec, spec_key = project.spec, _spec_sha(project.spec)
    dataset = d / "dataset"
    featurize_key = _hash({"featurize": project.featurize, "melt_check": bool(project.melt and project.melt["check"]), "runs": run_keys, "spec": spec_key})
    tasks.append(Task("featurize", "featurize", featurize_key, [dataset / "manifest.json"], _featurize_action(ctx, spec, dataset)))
    models = {"sf": (d / "models" / f"{project.name}_sf.molenv", _hash({"sf": project.sf, "dataset": featurize_key}))}
    if project.gnn["enabled"]:
        models["gnn"] = (d / "models" / f"{project.name}_gnn.molenv", _hash({"gnn": project.gnn, "dataset": featurize_key}))
    for kind, (_, key) in models.items():
        tasks.append(Task("train", f"train {kind}", key, [d / "train" / kind / "train_config.json", d / "train" / kind / "checkpoints" / "best.ckpt"],
                          _train_action(ctx, kind, dataset)))
    for kind, (model, key) in models.items():
        export_key = _hash({"export": project.export if kind == "sf" else {}, "train": key})
        models[kind] = (model, export_key)
        tasks.append(Task("export", f"export {kind}", export_key, [model], _export_action(ctx, kind, model, dataset)))
    for kind, (model, key) in models.items():
        evaluated = model if kind == "sf" else d / "train" / "gnn"  # a GNN is evaluated from its checkpoint
        tasks.append(Task("evaluate", f"evaluate {kind}", _hash({"evaluate": project.evaluate, "model": key, "dataset": featurize_key}),
                          [d / "evaluate" / kind / "metrics.json"], _evaluate_action(ctx, kind, evaluated, dataset)))
    topology = _plumed_topology(project)
    for kind, (model, key) in models.items():
        out = d / "plumed" / ("plumed.dat" if kind == "sf" else f"plumed_{kind}.dat")
        tasks.append(Task("plumed-input", f"plumed-input {kind}", _hash({"plumed": project.plumed, "model": key, "topology": str(topology)}), [out],
                          _plumed_action(ctx, kind, model, topology, out)))
    return tasks


def _plumed_topology(project: Project) -> Path:
    chosen = project.plumed["topology"]
    if chosen and project.run(chosen):
        return project.run(chosen).directory / "topology.pdb"
    if chosen:
        return Path(chosen)
    first = next(r for r in project.runs if r.mode == "crystal" and r.train)
    return first.directory / "topology.pdb"


def _simulate_action(ctx: _Context, run: Run):
    def action() -> dict:
        from molenv.simulate.md import RunDirectory

        rd = RunDirectory(run.directory)
        started = rd.progress() is not None
        ctx.log(f"  {run.name}: {'resuming from its last checkpoint' if started else 'starting'}: "
                f"molenv simulate {shlex.join([*run.argv, *run.runtime, '--out', str(run.directory)])}")
        t0 = time.time()
        _command("simulate", [*run.argv, *run.runtime, "--out", str(run.directory)] + ([] if ctx.progress else ["--no-progress"]))
        summary = json.loads(rd.file("summary.json").read_text())
        return {"frames": summary["n_frames"], "md_wall_s": round(summary["wall_s"], 1), "wall_s": round(time.time() - t0, 1),
                **({"melt_check": summary["melt_check"]} if "melt_check" in summary else {})}
    return action


def _design_action(ctx: _Context, spec_out: Path):
    def action() -> dict:
        from molenv.design import DesignError, SelectionSettings, design_descriptors
        from molenv.simulate.md import RunDirectory

        p = ctx.project
        inputs = [r for r in p.runs if r.train and r.mode in ("crystal", "melt")]
        reader = {}
        melt = next((r for r in inputs if r.mode == "melt"), None)
        if melt is not None and p.featurize["split_mode"] == "method":
            # featurize holds out the melt's last frames for testing: keep them out of the design too
            n = json.loads(RunDirectory(melt.directory).file("summary.json").read_text())["n_frames"]
            reader["stop"] = max(2, n - max(1, round(p.featurize["test_fraction"] * n)))
        cfg = p.design
        try:
            result = design_descriptors(p.spec, trajectories=[(r.label, r.directory / "trajectory.xtc", r.directory / "topology.pdb") for r in inputs],
                                        n_vectors=cfg["vectors"], max_cutoff=cfg["max_cutoff"], max_frames=cfg["max_frames"], reader=reader,
                                        warm_held_out=tuple(cfg["warm_held_out"]) if cfg["warm_held_out"] else None,
                                        expand_held_out=cfg["expand_held_out"],
                                        selection=SelectionSettings(max_functions=cfg["max_functions"], min_functions=cfg["min_functions"]),
                                        seed=cfg["seed"], cache_dir=spec_out.parent / "cache", progress=ctx.progress, log=ctx.log)
        except DesignError as err:
            raise ProjectError(f"design: {err}") from None
        result.write(spec_out.parent, command=ctx.command("--from", "design"), log=ctx.log)
        e = result.expected["mlp_25_25"]
        ctx.log(f"  {len(result.spec.functions)} functions, rmax {result.rc:g} A; expected held-out macro F1 {e['macro_f1']:.4f} (MLP 25-25)")
        return {"functions": len(result.spec.functions), "rmax": result.rc, "expected_macro_f1": e["macro_f1"]}
    return action


def _featurize_action(ctx: _Context, spec: str, out: Path):
    def action() -> dict:
        from molenv.featurize import featurize, source_from_run

        p = ctx.project
        f = p.featurize
        sources = [source_from_run(r.directory) for r in p.runs]
        dataset = featurize(sources, spec, out, classes=p.classes, split_mode=f["split_mode"], val_fraction=f["val_fraction"],
                            test_fraction=f["test_fraction"], seed=f["seed"], train_temperature=f["train_temperature"], workers=f["workers"],
                            progress=ctx.progress, overwrite=(out / "manifest.json").is_file(), command=ctx.command("--from", "featurize"),
                            melt_check=bool(p.melt and p.melt["check"]), log=ctx.log, augment_temperature=f["augment_temperature"],
                            augment_copies=f["augment_copies"], augment_clusters=f["augment_clusters"], augment_expansion=f["augment_expansion"],
                            relabel_turned=f["relabel_turned"])
        ctx.log("  " + dataset.summary().replace("\n", "\n  "))
        return {"counts": dataset.manifest.get("counts", {})}
    return action


def _train_action(ctx: _Context, kind: str, dataset_dir: Path):
    def action() -> dict:
        from molenv.commands.train import discard_training
        from molenv.dataset import open_dataset

        p = ctx.project
        out = ctx.dir / "train" / kind
        if discard_training(out):
            ctx.log(f"  {out}: the earlier training there discarded")
        if kind == "gnn":
            g = p.gnn
            argv = ["gnn", str(dataset_dir), "--out", str(out), "--convs", str(g["convs"]), "--lr", _g(g["lr"]), "--dropout", _g(g["dropout"]),
                    "--position-noise", _g(g["position_noise"]), "--batch-size", str(g["batch_size"]), "--max-epochs", str(g["max_epochs"]),
                    "--patience", str(g["patience"]), "--frame-step", str(g["frame_step"]), "--val-frame-step", str(g["val_frame_step"]),
                    "--seed", str(g["seed"]), "--threads", str(g["threads"]), "--accelerator", g["accelerator"],
                    *(["--max-time", _g(g["max_time"])] if g["max_time"] else []), *(["--progress"] if ctx.progress else [])]
            _command("train", argv)
        else:
            from molenv.sf.train import SFTrainConfig, load_sf, train_sf, training_molecules

            s = p.sf
            config = SFTrainConfig(hidden=list(s["hidden"]), activation=s["activation"], lr=s["lr"], weight_decay=s["weight_decay"],
                                   input_noise=s["input_noise"], batch_size=s["batch_size"], max_epochs=s["max_epochs"], patience=s["patience"],
                                   seed=s["seed"], include_clusters=s["include_clusters"], threads=s["threads"], progress_bar=ctx.progress)
            dataset = open_dataset(dataset_dir)
            checkpoint = train_sf(dataset, config, out)
            val = training_molecules(dataset, "val", config.include_clusters)
            accuracy = float((load_sf(checkpoint).to_model().predict_proba(val.features).argmax(1) == val.labels).mean())
            ctx.log(f"  validation micro F1 {accuracy:.4f} ({len(val)} molecules)")
        report = json.loads((out / "train_config.json").read_text())
        return {"epochs": report.get("epochs"), "best_val_loss": report.get("best_val_loss")}
    return action


def _export_action(ctx: _Context, kind: str, model: Path, dataset_dir: Path):
    def action() -> dict:
        from molenv.dataset import open_dataset

        checkpoint = ctx.dir / "train" / kind / "checkpoints" / "best.ckpt"
        model.parent.mkdir(parents=True, exist_ok=True)
        command = ctx.command("--from", "export")
        if kind == "gnn":
            from molenv.gnn.export import export_gnn_checkpoint

            written = export_gnn_checkpoint(checkpoint, model, name=f"{ctx.project.name}_gnn", command=command, dataset=open_dataset(dataset_dir),
                                            ood=ctx.project.export["ood"], log=lambda m: ctx.log(f"  {m}"))
            ctx.log(f"  wrote {model}")
            return {"ood": written.ood is not None}
        from molenv.sf.export import export_sf

        written = export_sf(checkpoint, model, name=f"{ctx.project.name}_sf", command=command, dataset=open_dataset(dataset_dir),
                            ood=ctx.project.export["ood"], log=lambda m: ctx.log(f"  {m}"))
        ctx.log(f"  wrote {model}: classes {', '.join(written.classes)}")
        return {"ood": written.ood is not None}
    return action


def _evaluate_action(ctx: _Context, kind: str, model: Path, dataset_dir: Path):
    def action() -> dict:
        from molenv.dataset import open_dataset
        from molenv.evaluate import evaluate_path

        e = ctx.project.evaluate
        out = ctx.dir / "evaluate" / kind
        metrics = evaluate_path(model, open_dataset(dataset_dir), out, [e["split"]], include_clusters=e["include_clusters"],
                                tsne_samples=e["tsne_samples"], plots=e["plots"])
        record = {}
        for name, head in metrics["heads"].items():
            if not head["n"]:
                continue
            recall = ", ".join(f"{c} {v['recall']:.4f}" for c, v in head["per_class"].items())
            ctx.log(f"  {name}: micro F1 {head['micro_f1']:.4f}, macro F1 {head['macro_f1']:.4f} ({head['n']} molecules); recall: {recall}")
            record[name] = {"micro_f1": head["micro_f1"], "macro_f1": head["macro_f1"], "n": head["n"]}
        if "ood" in metrics:
            flagged = ", ".join(f"{c} {v['flagged_fraction']:.3f}" for c, v in metrics["ood"]["per_class"].items())
            ctx.log(f"  ood: fraction flagged as none of the classes: {flagged}")
        ctx.log(f"  wrote {out}/metrics.json")
        return record
    return action


def _plumed_action(ctx: _Context, kind: str, model: Path, topology: Path, out: Path):
    """`molenv plumed-input` with the model file of `kind` (sf or gnn): the same molecules,
    settings and files for both, OOD included for both where [plumed] ood."""
    def action() -> dict:
        pl = ctx.project.plumed
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = ["--model", str(model), "--topology", str(topology), "--out", str(out), "--colvar", pl["colvar"], "--stride", str(pl["stride"])]
        if pl["prob_file"]:
            argv += ["--prob-file", pl["prob_file"]]
        if pl["num_threads"]:
            argv += ["--num-threads", str(pl["num_threads"])]
        if pl["ood"]:
            argv.append("--ood")
        run = ctx.project.run(pl["topology"]) if pl["topology"] else None
        if run is not None and run.mode == "cluster":
            argv.append("--nopbc")
        _command("plumed-input", argv)
        return {}
    return action


# ----------------------------------------------------------------------------- run and status


def _selected(until: str | None, start: str | None) -> list[str]:
    for value, option in ((until, "--until"), (start, "--from")):
        if value is not None and value not in STAGES:
            raise ProjectError(f"{option} {value}: unknown stage (stages: {', '.join(STAGES)})")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if first > last:
        raise ProjectError(f"--from {start} comes after --until {until} (stages in order: {', '.join(STAGES)})")
    return list(STAGES[first:last + 1])


def task_state(task: Task, state: ProjectState) -> str:
    """done, stale (finished with other settings or inputs), partial (an MD run under way) or
    to do."""
    record = state.task(task.name)
    if record and record["key"] == task.key and task.outputs_complete():
        return "done"
    if task.stage == "simulate" and (task.outputs[0].parent / "progress.json").is_file():
        return "partial"
    if record:
        return "stale"
    return "to do"


def run_project(path: str | os.PathLike, *, until: str | None = None, start: str | None = None, progress: bool = True, log=print) -> list[Task]:
    """Run the project's stages in order (``start`` to ``until``, default all), skipping
    the tasks already done (see the module docstring); ``start`` reruns its stage and
    the later ones even where done, after checking that the stages before it are.
    Returns the tasks that ran."""
    from molenv.cli import CommandError
    from molenv.runlock import DirectoryLock

    project = load_project(path)
    stages = _selected(until, start)
    project.directory.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["molenv", "project", "run", str(path), *(["--from", start] if start else []), *(["--until", until] if until else [])])
    ran = []
    with DirectoryLock(project.directory, command=command, what="project directory"):
        state = ProjectState(project.directory)
        tasks = plan(project, progress=progress, log=log)
        if start:
            missing = [t.name for t in tasks if STAGES.index(t.stage) < STAGES.index(start) and task_state(t, state) != "done"]
            if missing:
                raise ProjectError(f"--from {start}: earlier tasks are not done ({', '.join(missing)}): run the project without --from first")
        log(f"project {project.name}: {project.file} -> {project.directory}")
        for stage in stages:
            mine = [t for t in tasks if t.stage == stage]
            if not mine:
                log(f"[{stage}] off")
                continue
            t0 = time.time()
            todo = [t for t in mine if (start is not None) or task_state(t, state) != "done"]
            log(f"[{stage}] {len(mine) - len(todo)} of {len(mine)} task(s) done already" + (f"; running {len(todo)}" if todo else ""))
            for task in todo:
                log(f"[{stage}] {task.name}")
                state.forget(task.name)  # not done until it has finished again
                try:
                    info = task.action()
                except ProjectError:
                    raise
                except (ValueError, FileNotFoundError, CommandError) as err:  # the errors `molenv` reports without a traceback
                    raise ProjectError(f"stage {stage}, {task.name}: {err}") from err
                state.record(task.name, task.key, info or {})
                ran.append(task)
            if todo:
                log(f"[{stage}] done ({time.time() - t0:.0f} s)")
        if stages[-1] == STAGES[-1]:
            report = write_report(project, state, tasks)
            model = project.directory / "models" / f"{project.name}_sf.molenv"
            log(f"model: {model}\nPLUMED input: {project.directory / 'plumed' / 'plumed.dat'}\nreport: {report} "
                "(docs/new_molecule.md: judging the result, using the model)")
    return ran


def write_report(project: Project, state: ProjectState, tasks: list[Task]) -> Path:
    """``report.md`` in the project directory: what every stage made, from the state file
    and the stages' outputs (runs, melt check, descriptors, dataset, training, test accuracy,
    out-of-distribution flags, model files and PLUMED inputs)."""
    d = project.directory

    def rel(path: Path) -> str:
        return str(path.relative_to(d)) if path.is_relative_to(d) else str(path)

    lines = [f"# Project {project.name}", "", f"Project file `{project.file.resolve()}`; molecule spec `{project.spec}`; classes "
             f"{', '.join(project.classes)}. Written {time.strftime('%Y-%m-%d %H:%M:%S %z')} by `molenv project run`.", "",
             "## MD runs", "", "| run | kind | label | T (K) | frames | MD wall time (s) | melt check |", "|---|---|---|---|---|---|---|"]
    for run in project.runs:
        r = state.task(f"simulate {run.name}") or {}
        check = r.get("melt_check")
        verdict = "" if not check else ("melted" if check.get("melted") else "NOT melted") + \
            f" (aligned fraction {check.get('aligned_fraction', float('nan')):.3f}, centre MSD {check.get('msd_A2', float('nan')):.2f} A^2)"
        if run.mode == "melt" and not project.melt["check"]:
            verdict = "off"
        lines.append(f"| `{rel(run.directory)}` | {run.mode} | {run.label} | {run.temperature:g} | {r.get('frames', '')} | {r.get('md_wall_s', '')} | {verdict} |")
    design = state.task("design")
    lines += ["", "## Descriptors", ""]
    if project.design["enabled"] and design:
        lines.append(f"Designed from the training runs (`design/spec.toml`, `design/report.md`): {design['functions']} functions, cutoff "
                     f"{design['rmax']:g} A, expected held-out macro F1 {design['expected_macro_f1']:.4f}.")
    else:
        lines.append(f"The spec's (`{project.spec}`).")
    featurize = state.task("featurize") or {}
    lines += ["", "## Dataset (`dataset/`)", "", "| split | " + " | ".join(project.classes) + " |", "|---" * (len(project.classes) + 1) + "|"]
    for split, counts in featurize.get("counts", {}).items():
        lines.append(f"| {split} | " + " | ".join(str(counts.get(c, 0)) for c in project.classes) + " |")
    lines += ["", "## Classifiers", ""]
    for kind in ("sf", "gnn") if project.gnn["enabled"] else ("sf",):
        train = state.task(f"train {kind}") or {}
        loss = train.get("best_val_loss")
        lines.append(f"**{kind.upper()}** (`train/{kind}`): {train.get('epochs')} epochs, best validation loss "
                     f"{'' if loss is None else format(loss, '.4g')}; "
                     f"model file `models/{project.name}_{kind}.molenv`.")
        metrics_path = d / "evaluate" / kind / "metrics.json"
        if not metrics_path.is_file():
            lines.append("")
            continue
        metrics = json.loads(metrics_path.read_text())
        lines.append(f"Evaluated on the {project.evaluate['split']} split (`evaluate/{kind}/metrics.json`):")
        lines.append("")
        for name, head in metrics["heads"].items():
            if head["n"]:
                recall = ", ".join(f"{c} {v['recall']:.4f}" for c, v in head["per_class"].items())
                lines.append(f"- {name}: micro F1 {head['micro_f1']:.4f}, macro F1 {head['macro_f1']:.4f} ({head['n']} molecules); recall {recall}")
        if "ood" in metrics:
            flagged = ", ".join(f"{c} {v['flagged_fraction']:.3f}" for c, v in metrics["ood"]["per_class"].items())
            lines.append(f"- out of distribution (other > 0.5), fraction flagged per class: {flagged}")
        lines.append("")
    inputs = [t.outputs[0] for t in tasks if t.stage == "plumed-input"]
    lines += ["## Using the model", ""] + [f"- `{rel(p)}`" for p in inputs] + [
        "", "```bash", f"cd {d / 'plumed'}",
        f"molenv reanalyse --plumed plumed.dat --trajectory TRAJECTORY --topology {_plumed_topology(project)}", "```", "",
        "docs/new_molecule.md: judging the result and using the model in PLUMED.", ""]
    path = d / "report.md"
    tmp = path.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def project_status(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """(stage, task, state and what it recorded) for every task, and the off stages."""
    from molenv.simulate.md import RunDirectory

    project = load_project(path)
    state = ProjectState(project.directory)
    rows = []
    tasks = plan(project, progress=False, log=lambda *a: None)
    for stage in STAGES:
        mine = [t for t in tasks if t.stage == stage]
        if not mine:
            rows.append((stage, "-", "off"))
        for task in mine:
            status = task_state(task, state)
            record = state.task(task.name) or {}
            detail = ""
            if status == "done" and "frames" in record:
                detail = f"{record['frames']} frames, MD {record['md_wall_s']:.0f} s"
            elif status == "partial":
                p = RunDirectory(task.outputs[0].parent).progress() or {}
                detail = f"stopped in stage {p.get('stage')} at step {p.get('step')}: resumes from its last checkpoint"
            elif status == "done" and "polymorph" in record:
                detail = f"micro F1 {record['polymorph']['micro_f1']:.4f} ({record['polymorph']['n']} molecules)"
            elif status == "done" and record.get("epochs") is not None:
                detail = f"{record['epochs']} epochs"
            if status == "done":
                detail = ", ".join(x for x in (detail, record.get("finished", "")) if x)
            rows.append((stage, task.name.split(" ", 1)[-1], status + (f" ({detail})" if detail else "")))
    return rows


# ----------------------------------------------------------------------------- the template


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def _relative(path: str, base: Path) -> str:
    """`path` (relative to the working directory) as the project file at `base` names it."""
    p = Path(path).expanduser().resolve()
    return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)


def initial_spec(smiles: str, forms: list[tuple[str, Path]], out: Path, *, name: str | None = None, symmetrise: dict | None = None,
                 progress: bool = True, log=print) -> Path:
    """A first spec of a molecule given as SMILES, from its crystal structures alone:
    `molenv.design` with its stand-in samples (randomly displaced copies of the structures,
    docs/design.md), written to `out` (spec.toml, report.md). Good enough to run the MD;
    the project's design stage then chooses the descriptors again from the MD frames."""
    from molenv.design import DesignError, design_descriptors

    log(f"{smiles!r} is not a spec: designing a first one from the crystal structures (stand-in samples, docs/design.md) into {out}")
    try:
        result = design_descriptors(smiles, structures=[(label, str(path)) for label, path in forms], name=name, symmetrise=symmetrise or {},
                                    progress=progress, log=log)
    except DesignError as err:
        raise ProjectError(f"--molecule {smiles!r}: {err}") from None
    result.write(out, command=None, log=log)
    return out / "spec.toml"


def write_template(out: str | os.PathLike, *, molecule: str, forms: list[tuple[str, str]], name: str | None = None,
                   temperatures: list[float] | None = None, melt_form: str | None = None, symmetrise: dict[str, float] | None = None,
                   overwrite: bool = False, progress: bool = True, log=print) -> Path:
    """Write a commented project file for `molecule` and `forms` ((label, structure file)
    pairs, paths relative to the working directory; written relative to the project file):
    every key of `SCHEMA`, the optional ones commented out at their defaults. `molecule` is
    a spec (shipped name or .toml), or a SMILES: then `initial_spec` designs a first spec from
    the structures into ``design0/`` beside the file, and the project's design stage is on.
    ``symmetrise``: label -> spglib tolerance for approximate structures. Returns the path;
    it is read back with `load_project`."""
    from molenv.spec import SpecError, load_spec

    out = Path(out)
    base = out.expanduser().resolve().parent
    if out.exists() and not overwrite:
        raise ProjectError(f"{out}: exists (give another file, or --overwrite)")
    if not forms:
        raise ProjectError("give one or more forms (--form LABEL=STRUCTURE)")
    symmetrise = symmetrise or {}
    unknown = [label for label in symmetrise if label not in dict(forms)]
    if unknown:
        raise ProjectError(f"--symmetrise {unknown[0]}: unknown form label (forms: {', '.join(label for label, _ in forms)})")
    for label, structure in forms:
        if not Path(structure).is_file():
            raise ProjectError(f"--form {label}={structure}: structure file not found")
    design = {}
    try:
        spec = load_spec(molecule)
        spec_value = _relative(molecule, base) if molecule.endswith(".toml") else molecule
    except SpecError as err:
        if molecule.endswith(".toml") or "/" in molecule:
            raise ProjectError(f"--molecule: {err}") from None
        path = initial_spec(molecule, [(label, Path(structure)) for label, structure in forms], base / "design0", name=name,
                            symmetrise=symmetrise, progress=progress, log=log)
        spec, spec_value, design = load_spec(path), _relative(str(path), base), {"enabled": True}
    given = {"": {"name": name or spec.name}, "molecule": {"spec": spec_value}, "simulate": {"temperatures": temperatures or [100.0, 200.0]},
             "melt": {"form": melt_form or forms[0][0]}, "design": design}
    lines = ["# molenv project file: `molenv project run THIS_FILE` goes from the crystal structures to a PLUMED model;",
             "# `molenv project status THIS_FILE` says what is done. Every key is described in docs/new_molecule.md.",
             "# Keys commented out are at their defaults. Paths are relative to this file.", ""]

    def emit(table: str, header: str | None, values: dict):
        if header:
            lines.append(f"[{header}]")
        for key in SCHEMA[table]:
            lines.append(f"# {key.help}")
            if key.name in values:
                lines.append(f"{key.name} = {_toml(values[key.name])}")
            elif key.default is REQUIRED:
                lines.append(f"{key.name} = \"EDIT\"")
            elif key.default is None:
                lines.append(f"# {key.name} = {_toml(key.example)}")
            else:
                lines.append(f"# {key.name} = {_toml(key.default)}")
        lines.append("")

    emit("", None, given[""])
    emit("molecule", "molecule", given["molecule"])
    for label, structure in forms:
        emit("forms.*", f"forms.{label}", {"structure": _relative(structure, base), **({"symmetrise": symmetrise[label]} if label in symmetrise else {})})
    emit("simulate", "simulate", given["simulate"])
    lines.append("# the melt class (remove this table for a classifier of crystal forms only)")
    emit("melt", "melt", given["melt"])
    lines.append("# gas-phase clusters (surface molecules): uncomment the table to add them")
    start = len(lines)
    emit("clusters", "clusters", {})
    lines[start:] = [line if line.startswith("#") or not line else f"# {line}" for line in lines[start:]]
    for table in ("design", "featurize", "train.sf", "train.gnn", "evaluate", "export", "plumed"):
        emit(table, table, given.get(table, {}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out
