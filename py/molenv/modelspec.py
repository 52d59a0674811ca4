"""The molecule spec a model file carries (docs/model_format.md, "The molecule spec in a model file").

`molenv export` writes into a model file, as ``meta`` records, what is needed to rebuild the
`molenv.spec.MoleculeSpec` it was trained with, so that `molenv classify`, `plumed-input`,
... need no ``--spec`` for a molecule that is not shipped:

    meta molecule urea                                   # the spec's name
    meta spec_atoms C:C O:O N1:N H11:H H12:H N2:N H21:H H22:H
    meta spec_bonds 1-2 1-3 1-6 3-4 3-5 6-7 6-8
    meta spec_smiles NC(=O)N

An SF file holds the rest of the spec in its own records (centre, vectors, cutoff,
descriptors); a GNN file does not, so it carries them too (`GEOMETRY_KEYS`): ``spec_centre``,
``spec_vectors``, ``spec_cutoff``, ``spec_descriptors``, in the syntax of the SF records.

They are meta records because meta is free text to both model-file readers (Python's and
`MOLENV_CLASSIFY`'s): the files are read as before, by every molenv and PLUMED build, and
the two readers still accept exactly the same files. The syntax of the values is strict and
checked here, when a spec is rebuilt from a model (`model_spec`), with a message naming the
file and the record.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from molenv.descriptors import DescriptorError, DescriptorSet, SymmetryFunction
from molenv.modelfile import _INTEGER, _REAL, MAX_INTEGER
from molenv.spec import SPEC_DIR, MoleculeSpec, SpecError, load_spec

__all__ = ["SPEC_KEYS", "GEOMETRY_KEYS", "spec_meta", "model_spec", "check_same_molecule", "dataset_spec"]

MOLECULE_KEY = "molecule"
# the spec records of every model file, then those only a GNN file needs (an SF file has records of its own)
SPEC_KEYS = ("spec_atoms", "spec_bonds", "spec_smiles")
GEOMETRY_KEYS = ("spec_centre", "spec_vectors", "spec_cutoff", "spec_descriptors")
# atom names: printable ASCII without white space and without the separators of the records
_ATOM_NAME = re.compile(r"[!-~]+")
_NAME_EXCLUDED = set("#:,")
_BOND = re.compile(r"([+-]?[0-9]+)-([+-]?[0-9]+)")
# '#' would start a comment and '%' is the escape: the two characters of a SMILES percent-encoded
_SMILES_ESCAPES = {"%": "%25", "#": "%23"}


def _number(x: float) -> str:
    return repr(float(x))


def spec_meta(spec: MoleculeSpec, *, geometry: bool) -> dict[str, str]:
    """The meta records (key -> value) that carry `spec` in a model file: its name, atoms,
    bonds and SMILES; with `geometry` (a GNN file) also its centre, vectors, cutoff and
    descriptors. SpecError where an atom name cannot be written (white space, '#', ':', ',')."""
    from molenv.trajectory import symbol_tables

    symbols = symbol_tables()[0]
    if "#" in spec.name or not spec.name.strip():
        raise SpecError(f"spec {spec.name!r}: a name with '#' (or none) cannot be written into a model file ('#' starts a comment there)")
    atoms = []
    for name, element in zip(spec.atom_names, spec.elements):
        if not _ATOM_NAME.fullmatch(name) or set(name) & _NAME_EXCLUDED:
            raise SpecError(f"spec {spec.name}: atom name {name!r} cannot be written into a model file (names there are printable ASCII "
                            "without white space, '#', ':' or ',')")
        symbol = element.strip().capitalize()
        if symbol not in symbols:
            raise SpecError(f"spec {spec.name}: atom {name}: {element!r} is not an element symbol")
        atoms.append(f"{name}:{symbol}")
    meta = {MOLECULE_KEY: spec.name, "spec_atoms": " ".join(atoms), "spec_bonds": " ".join(f"{i + 1}-{j + 1}" for i, j in spec.bonds)}
    if spec.smiles:
        meta["spec_smiles"] = "".join(_SMILES_ESCAPES.get(c, c) for c in spec.smiles)
    if geometry:
        meta["spec_centre"] = " ".join(map(str, spec.centre_atoms))
        meta["spec_vectors"] = ", ".join(("normal " if len(v) == 4 else "") + " ".join(map(str, v)) + (" sign_invariant" if k in spec.sign_invariant else "")
                                         for k, v in enumerate(spec.vectors, 1))
        meta["spec_cutoff"] = f"{_number(spec.rmin)} {_number(spec.rmax)}"
        meta["spec_descriptors"] = ", ".join(f"{sf.kind} {'-' if sf.vector is None else sf.vector} {' '.join(map(_number, sf.params))}"
                                             for sf in spec.functions)
    return meta


class _Values:
    """The spec records of one model's meta, read with messages naming the file and record."""

    def __init__(self, meta: dict[str, str], where: str):
        self.meta, self.where = meta, where

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(f"{self.where}: meta {key}: {problem}")

    def integer(self, key: str, text: str) -> int:
        if not _INTEGER.fullmatch(text) or abs(int(text)) > MAX_INTEGER:
            raise self.error(key, f"{text!r} is not an integer (of at most {MAX_INTEGER})")
        return int(text)

    def real(self, key: str, text: str) -> float:
        if not _REAL.fullmatch(text) or not math.isfinite(float(text)):
            raise self.error(key, f"{text!r} is not a finite number")
        return float(text)

    def entries(self, key: str) -> list[list[str]]:
        """A comma-separated list of entries of space-separated fields ('' is no entry)."""
        text = self.meta[key].strip()
        if not text:
            return []
        entries = [e.split() for e in text.split(",")]
        if any(not e for e in entries):
            raise self.error(key, "an empty entry (two commas, or a comma first or last)")
        return entries


def model_spec(model, where: str) -> MoleculeSpec | None:
    """The spec a model carries in its meta records (`spec_meta`), or None where it carries
    none (no ``spec_atoms``: every model file written before them). `model` is an SF
    `molenv.modelfile.Model` (centre, vectors, cutoff and descriptors from its records) or a
    `molenv.gnn.modelfile.GNNModel` (from its ``spec_*`` geometry records, its elements
    checked against ``molecule_atoms``). SpecError naming `where` and the record where a
    record is missing, unknown or malformed, or disagrees with the model."""
    meta = model.meta
    if "spec_atoms" not in meta:
        stray = sorted(k for k in meta if k.startswith("spec_"))
        if stray:
            raise SpecError(f"{where}: meta {', '.join(stray)} without meta spec_atoms: an incomplete molecule spec")
        return None
    gnn = not hasattr(model, "descriptors")
    known = SPEC_KEYS + GEOMETRY_KEYS if gnn else SPEC_KEYS
    unknown = sorted(k for k in meta if k.startswith("spec_") and k not in known)
    if unknown:
        raise SpecError(f"{where}: unknown spec record(s) meta {', '.join(unknown)} (a{' GNN' if gnn else 'n SF'} model file carries "
                        f"{', '.join(known)})")
    missing = [k for k in (MOLECULE_KEY, "spec_atoms", "spec_bonds") + (GEOMETRY_KEYS if gnn else ()) if k not in meta]
    if missing:
        raise SpecError(f"{where}: the model carries a molecule spec (meta spec_atoms) but lacks meta {', '.join(missing)}")
    v = _Values(meta, where)
    from molenv.trajectory import symbol_tables

    symbols = symbol_tables()[0]
    names, elements = [], []
    for token in meta["spec_atoms"].split():
        name, sep, element = token.rpartition(":")
        if not sep or not name or not _ATOM_NAME.fullmatch(name) or set(name) & _NAME_EXCLUDED:
            raise v.error("spec_atoms", f"{token!r} is not NAME:ELEMENT (a name of printable ASCII without '#', ':' or ',')")
        if element not in symbols:
            raise v.error("spec_atoms", f"{token!r}: {element!r} is not an element symbol (as written: C, N, Cl, ...)")
        if name in names:
            raise v.error("spec_atoms", f"atom name {name!r} given twice")
        names.append(name)
        elements.append(element)
    if not names:
        raise v.error("spec_atoms", "no atoms")
    n = len(names)
    if gnn and [symbols[e] for e in elements] != list(model.molecule_atoms):
        raise v.error("spec_atoms", f"elements {' '.join(elements)} are not those of the model's molecule_atoms "
                      f"{' '.join(map(str, model.molecule_atoms))}")
    if not gnn and n != model.descriptors.atoms_per_molecule:
        raise v.error("spec_atoms", f"{n} atoms, but the model's molecules have atoms_per_molecule {model.descriptors.atoms_per_molecule}")
    bonds = []
    for token in meta["spec_bonds"].split():
        m = _BOND.fullmatch(token)
        if not m:
            raise v.error("spec_bonds", f"{token!r} is not a bond a-b (two 1-based atom positions)")
        a, b = v.integer("spec_bonds", m.group(1)), v.integer("spec_bonds", m.group(2))
        if not (1 <= a <= n and 1 <= b <= n) or a == b:
            raise v.error("spec_bonds", f"bond {token} needs two different atoms in 1..{n}")
        bonds.append((a - 1, b - 1))
    smiles = None
    if "spec_smiles" in meta:
        text = meta["spec_smiles"]
        if not text or len(text.split()) != 1 or re.search(r"%(?!23|25)", text):
            raise v.error("spec_smiles", f"{text!r} is not one SMILES with '%' and '#' written as %25 and %23")
        smiles = text.replace("%23", "#").replace("%25", "%")
    descriptors = _geometry(v, n) if gnn else model.descriptors
    centre = descriptors.centre_atom
    return MoleculeSpec(name=meta[MOLECULE_KEY], atom_names=names, elements=elements, bonds=bonds,
                        centre=tuple(centre) if isinstance(centre, (tuple, list)) else int(centre),
                        vectors=[tuple(x) for x in descriptors.vectors], rmin=descriptors.rmin, rmax=descriptors.rmax,
                        functions=list(descriptors.functions), smiles=smiles, sign_invariant=tuple(descriptors.sign_invariant))


def _geometry(v: _Values, n: int) -> DescriptorSet:
    """The centre, vectors, cutoff and descriptors of a GNN file's spec records."""
    centre = [v.integer("spec_centre", t) for t in v.meta["spec_centre"].split()]
    if not centre:
        raise v.error("spec_centre", "no atom")
    vectors, sign_invariant = [], []
    for k, fields in enumerate(v.entries("spec_vectors"), 1):
        if fields[-1] == "sign_invariant":
            sign_invariant.append(k)
            fields = fields[:-1]
        if not (len(fields) == 2 or (len(fields) == 5 and fields[0] == "normal")):
            raise v.error("spec_vectors", f"vector {k} {' '.join(fields)!r}: each vector is 'a b' or 'normal a b c d', then optionally sign_invariant")
        vectors.append(tuple(v.integer("spec_vectors", t) for t in fields[-4 if len(fields) == 5 else -2:]))
    cutoff = v.meta["spec_cutoff"].split()
    if len(cutoff) != 2:
        raise v.error("spec_cutoff", f"needs rmin rmax, got {v.meta['spec_cutoff']!r}")
    rmin, rmax = (v.real("spec_cutoff", t) for t in cutoff)
    functions = []
    for i, fields in enumerate(v.entries("spec_descriptors"), 1):
        if len(fields) < 2:
            raise v.error("spec_descriptors", f"descriptor {i} {' '.join(fields)!r} needs: kind vector parameters...")
        vector = None if fields[1] == "-" else v.integer("spec_descriptors", fields[1])
        functions.append(SymmetryFunction(fields[0], vector, tuple(v.real("spec_descriptors", t) for t in fields[2:])))
    descriptors = DescriptorSet(n, centre[0] if len(centre) == 1 else tuple(centre), vectors, rmin, rmax, functions, tuple(sign_invariant))
    try:
        descriptors.validate()
    except DescriptorError as err:
        raise SpecError(f"{v.where}: meta spec_*: {err}") from None
    return descriptors


def _molecule(spec: MoleculeSpec) -> dict[str, str]:
    """What two specs of one molecule must share (atoms in order, bonds, centre, vectors),
    written as the records write them (1-based positions)."""
    bonds = sorted((min(i, j) + 1, max(i, j) + 1) for i, j in spec.bonds)
    return {"atoms": " ".join(f"{n}:{e}" for n, e in zip(spec.atom_names, spec.elements)), "bonds": " ".join(f"{i}-{j}" for i, j in bonds),
            "centre": " ".join(map(str, spec.centre_atoms)), "vectors": ", ".join(" ".join(map(str, v)) for v in spec.vectors),
            "sign-invariant vectors": " ".join(map(str, spec.sign_invariant))}


def check_same_molecule(spec: MoleculeSpec, other: MoleculeSpec, spec_is: str, other_is: str) -> None:
    """SpecError naming both where the two specs differ in their molecule (atom names and
    elements in order, bonds, centre, vectors): `spec_is`/`other_is` say what each is
    (``"--spec urea (path)"``, ``"the spec mymol that m.molenv carries"``)."""
    a, b = _molecule(spec), _molecule(other)
    differ = [k for k in a if a[k] != b[k]]
    if differ:
        details = "; ".join(f"{k} '{a[k]}' vs '{b[k]}'" for k in differ[:2])
        raise SpecError(f"{spec_is} and {other_is} are not the same molecule: they differ in their {', '.join(differ)} ({details})")


def shipped_spec(name: str) -> MoleculeSpec | None:
    """The shipped spec called `name`, or None."""
    path = SPEC_DIR / f"{name}.toml"
    return load_spec(path) if re.fullmatch(r"[A-Za-z0-9_.-]+", name) and path.is_file() else None


def dataset_spec(dataset: str | Path | None) -> MoleculeSpec | None:
    """The spec a dataset of `molenv featurize` was made with (its manifest's spec: the file
    it names, else the shipped spec of that name), or None where none can be loaded (a
    moved dataset or spec)."""
    manifest = Path(dataset) / "manifest.json" if dataset else None
    if manifest is None or not manifest.is_file():
        return None
    spec = json.loads(manifest.read_text()).get("spec") or {}
    for candidate in (spec.get("path"), spec.get("name")):
        if candidate:
            try:
                return load_spec(candidate)
            except (SpecError, OSError):
                continue
    return None
