"""Molecule specs: the template of one kind of molecule and its descriptor definitions.

A spec is a small TOML file (see ``molenv/specs/urea.toml``) with the atoms of one molecule
in order (name and element), its bonds, the centre atom, the intramolecular vectors, the
cutoff and the symmetry-function blocks. Atoms may be referred to by name or by 1-based
position; the syntax is documented in ``docs/spec.md`` (the centre may be the centroid of
several atoms, a vector a plane normal, and a vector sign-invariant).
``MoleculeSpec.descriptor_set()`` gives the `DescriptorSet` that goes into a model file, so
the spec is the single source of the descriptor definition on the Python side.

A spec may also carry named charge sets (published force-field charges), one table per set:
``[charges.<name>]`` with ``source`` (where the numbers come from) and ``values`` (a table
atom name -> charge, every atom once, summing to the net formal charge of the spec's SMILES);
``molenv simulate --charges <name>`` uses them in place of AM1-BCC. Likewise named
Lennard-Jones sets, ``[lennard_jones.<name>]`` with ``source`` and ``values`` (atom name ->
[sigma in Angstrom, epsilon in kcal/mol], LAMMPS ``pair_coeff`` units), replace the
Lennard-Jones parameters of the atom types (``molenv simulate --lennard-jones <name>``).

Shipped specs: ``urea`` and ``nicotinamide`` (``load_spec("urea")``); any other path to a
TOML file works the same way. `spec_for_model` finds the spec of a model that does not name
it (the one shipped spec whose molecule fits the model's).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from molenv.descriptors import SF_KINDS, DescriptorError, DescriptorSet, SymmetryFunction
from molenv.frames import Centre

SPEC_DIR = Path(__file__).resolve().parent / "specs"
# spec key for each parameter of each kind, in model-file order
PARAMETER_KEYS = {"S1": ("Rs", "eta"), "S2": ("kappa",), "S3": ("cos_theta_s", "eta"), "S4": ("kappa",)}
assert PARAMETER_KEYS.keys() == SF_KINDS.keys()


# names a charge set may not take: the computed charge methods and the user's-mol2 route
RESERVED_CHARGE_NAMES = ("bcc", "gas", "user")
CHARGE_SUM_TOLERANCE = 1e-3


class SpecError(ValueError):
    """A spec file that does not describe a usable molecule; the message names the file."""


@dataclass
class ChargeSet:
    """Named per-atom charges of a spec (e.g. a published force field's), in spec atom order."""

    name: str
    source: str
    charges: list[float]

    def by_atom(self, spec: "MoleculeSpec") -> dict[str, float]:
        return dict(zip(spec.atom_names, self.charges))


def smiles_formal_charge(smiles: str) -> int:
    """Net formal charge of a SMILES string: the sum of the charges of its bracket atoms
    (``[NH4+]``, ``[O-]``, ``[Fe+2]``, ``[N++]``); no RDKit needed."""
    total = 0
    for atom in re.findall(r"\[([^\]]*)\]", smiles):
        m = re.search(r"(\++|-+)(\d*)$", atom.split(":")[0])  # charge is last, before an optional :class
        if m:
            sign = 1 if m.group(1)[0] == "+" else -1
            total += sign * (int(m.group(2)) if m.group(2) else len(m.group(1)))
    return total


@dataclass
class MoleculeSpec:
    name: str
    atom_names: list[str]
    elements: list[str]
    bonds: list[tuple[int, int]]  # 0-based atom positions
    centre: Centre  # 1-based position; a tuple: the centroid of those atoms
    vectors: list[tuple[int, ...]]  # 1-based (a, b): v = r(b) - r(a); (a, b, c, d): the plane normal (r(b) - r(a)) x (r(d) - r(c))
    rmin: float
    rmax: float
    functions: list[SymmetryFunction]
    smiles: str | None = None
    path: Path | None = None
    charge_sets: dict[str, ChargeSet] = field(default_factory=dict)
    lennard_jones_sets: dict[str, LennardJonesSet] = field(default_factory=dict)
    sign_invariant: tuple[int, ...] = ()  # 1-based indices of the vectors whose S3/S4 take cos^2

    @property
    def atoms_per_molecule(self) -> int:
        return len(self.atom_names)

    @property
    def centre_atoms(self) -> tuple[int, ...]:
        """The 1-based atoms whose centroid is the centre (one atom: that atom)."""
        return self.centre if isinstance(self.centre, tuple) else (self.centre,)

    @property
    def net_charge(self) -> int:
        """Net formal charge of the molecule (from its SMILES; 0 without one)."""
        return smiles_formal_charge(self.smiles) if self.smiles else 0

    def position(self, atom: str | int) -> int:
        """1-based position of an atom given by name or by 1-based position."""
        if isinstance(atom, int):
            if not 1 <= atom <= self.atoms_per_molecule:
                raise SpecError(f"{self.path}: atom position {atom} outside 1..{self.atoms_per_molecule}")
            return atom
        try:
            return self.atom_names.index(atom) + 1
        except ValueError:
            raise SpecError(f"{self.path}: no atom named {atom!r} (atoms: {', '.join(self.atom_names)})") from None

    def descriptor_set(self) -> DescriptorSet:
        return DescriptorSet(self.atoms_per_molecule, self.centre, list(self.vectors), self.rmin, self.rmax, list(self.functions),
                             tuple(self.sign_invariant))


def load_spec(name_or_path: str | Path) -> MoleculeSpec:
    """Load a shipped spec by name (``"urea"``) or any spec file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.is_file():  # a directory named like a molecule is not a spec
        path = SPEC_DIR / f"{name_or_path}.toml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.toml")))
            raise SpecError(f"unknown molecule {str(name_or_path)!r}: shipped specs are {shipped}, or give a path to a .toml spec")
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None
    return _parse(raw, path)


def _parse(raw: dict, path: Path) -> MoleculeSpec:
    def need(table: dict, key: str, where: str = "spec"):
        if key not in table:
            raise SpecError(f"{path}: {where} lacks '{key}'")
        return table[key]

    atoms = need(raw, "atoms")
    names = [need(a, "name", "atom") for a in atoms]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: atom names must be unique, got {names}")
    spec = MoleculeSpec(
        name=need(raw, "name"),
        atom_names=names,
        elements=[need(a, "element", f"atom {a.get('name')}") for a in atoms],
        bonds=[],
        centre=1,
        vectors=[],
        rmin=float(need(need(raw, "cutoff"), "rmin", "[cutoff]")),
        rmax=float(need(raw["cutoff"], "rmax", "[cutoff]")),
        functions=[],
        smiles=raw.get("smiles"),
        path=path,
    )
    spec.bonds = [(spec.position(a) - 1, spec.position(b) - 1) for a, b in raw.get("bonds", [])]
    spec.centre = _parse_centre(need(raw, "centre"), spec, path)
    spec.vectors, spec.sign_invariant = _parse_vectors(raw.get("vectors", []), spec, path)
    spec.charge_sets = _parse_charge_sets(raw.get("charges", {}), spec, path)
    spec.lennard_jones_sets = _parse_lennard_jones_sets(raw.get("lennard_jones", {}), spec, path)
    for block in need(raw, "descriptors"):
        kind = need(block, "kind", "descriptor block")
        if kind not in PARAMETER_KEYS:
            raise SpecError(f"{path}: unknown descriptor kind {kind!r} (expected one of {', '.join(PARAMETER_KEYS)})")
        columns = [need(block, key, f"{kind} block") for key in PARAMETER_KEYS[kind]]
        if len({len(c) for c in columns}) != 1:
            raise SpecError(f"{path}: {kind} block has parameter lists of different lengths")
        vector = block.get("vector")
        spec.functions += [SymmetryFunction(kind, vector, tuple(float(x) for x in values)) for values in zip(*columns)]
    try:
        spec.descriptor_set().validate()
    except DescriptorError as err:
        raise SpecError(f"{path}: {err}") from None
    return spec


def _parse_centre(value, spec: MoleculeSpec, path: Path) -> Centre:
    """``centre``: one atom, or a list of atoms whose centroid is the centre."""
    if isinstance(value, list):
        atoms = tuple(spec.position(a) for a in value)
        if len(atoms) < 2 or len(set(atoms)) != len(atoms):
            raise SpecError(f"{path}: a centroid centre needs a list of two or more distinct atoms, got {value}")
        return atoms
    return spec.position(value)


VECTOR_KEYS = {"atoms", "normal", "sign_invariant"}


def _parse_vectors(entries, spec: MoleculeSpec, path: Path) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """``vectors``: each ``[a, b]`` (r(b) - r(a)), ``{ atoms = [a, b] }`` or ``{ normal = [[a, b],
    [c, d]] }`` ((r(b) - r(a)) x (r(d) - r(c))), a table optionally with ``sign_invariant = true``.
    Returns the atom tuples and the 1-based indices of the sign-invariant vectors."""
    vectors, sign_invariant = [], []

    def pair(value, where):
        if not (isinstance(value, list) and len(value) == 2):
            raise SpecError(f"{path}: {where} needs two atoms [a, b], got {value!r}")
        return spec.position(value[0]), spec.position(value[1])

    for k, entry in enumerate(entries, 1):
        where = f"vector {k}"
        if isinstance(entry, list):
            vectors.append(pair(entry, where))
            continue
        if not isinstance(entry, dict) or ("atoms" in entry) == ("normal" in entry) or set(entry) - VECTOR_KEYS:
            raise SpecError(f"{path}: {where} must be [a, b] or a table with 'atoms = [a, b]' or 'normal = [[a, b], [c, d]]' "
                            f"and optionally 'sign_invariant', got {entry!r}")
        if "atoms" in entry:
            vectors.append(pair(entry["atoms"], where))
        else:
            normal = entry["normal"]
            if not (isinstance(normal, list) and len(normal) == 2):
                raise SpecError(f"{path}: {where}: 'normal' needs two vectors [[a, b], [c, d]], got {normal!r}")
            vectors.append(pair(normal[0], f"{where} normal") + pair(normal[1], f"{where} normal"))
        flag = entry.get("sign_invariant", False)
        if not isinstance(flag, bool):
            raise SpecError(f"{path}: {where}: 'sign_invariant' must be true or false, got {flag!r}")
        if flag:
            sign_invariant.append(k)
    return vectors, tuple(sign_invariant)


@dataclass
class LennardJonesSet:
    """Named per-atom Lennard-Jones parameters of a spec (a published force field's), in spec
    atom order: (sigma in Angstrom, epsilon in kcal/mol) per atom."""

    name: str
    source: str
    parameters: list[tuple[float, float]]

    def by_atom(self, spec: "MoleculeSpec") -> dict[str, list[float]]:
        return {a: list(p) for a, p in zip(spec.atom_names, self.parameters)}


def _named_set_entries(table, key: str, label: str, item: str, path: Path, spec: MoleculeSpec, reserved=()):
    """Yield (name, where, source, values) of each ``[<key>.<name>]`` table after the checks
    every named set shares: a clean name, 'source' and 'values' only, every atom once by name.
    ``label`` names a set in messages ("charge set"), ``item`` its per-atom value ("charge")."""
    if not isinstance(table, dict):
        raise SpecError(f"{path}: {key!r} must be a table of named {label}s ([{key}.<name>])")
    for name, entry in table.items():
        where = f"{path}: {label} {name!r}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in reserved:
            raise SpecError(f"{where}: a set name must be letters, digits, '_', '.', '-'" + (f" and not one of {', '.join(reserved)}" if reserved else ""))
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            raise SpecError(f"{where} lacks 'values' (a table atom name -> {item})")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise SpecError(f"{where} lacks 'source' (where the {item}s come from)")
        if set(entry) - {"source", "values"}:
            raise SpecError(f"{where}: unknown keys {', '.join(sorted(set(entry) - {'source', 'values'}))} (expected source, values)")
        values = entry["values"]
        unknown = [a for a in values if a not in spec.atom_names]
        if unknown:
            raise SpecError(f"{where}: no atoms named {', '.join(unknown)} (atoms: {', '.join(spec.atom_names)})")
        missing = [a for a in spec.atom_names if a not in values]
        if missing:
            raise SpecError(f"{where} gives no {item} for {', '.join(missing)}: every atom needs one")
        yield name, where, source.strip(), values


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _parse_lennard_jones_sets(table, spec: MoleculeSpec, path: Path) -> dict[str, LennardJonesSet]:
    """The ``[lennard_jones.<name>]`` tables: every atom once, [sigma > 0, epsilon >= 0]."""
    sets = {}
    for name, where, source, values in _named_set_entries(table, "lennard_jones", "Lennard-Jones set", "[sigma, epsilon]", path, spec):
        bad = [a for a, v in values.items() if not (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)) and v[0] > 0 and v[1] >= 0)]
        if bad:
            raise SpecError(f"{where}: {', '.join(bad)} need [sigma, epsilon] with sigma > 0 (Angstrom) and epsilon >= 0 (kcal/mol)")
        sets[name] = LennardJonesSet(name, source, [(float(values[a][0]), float(values[a][1])) for a in spec.atom_names])
    return sets


def _parse_charge_sets(table, spec: MoleculeSpec, path: Path) -> dict[str, ChargeSet]:
    """The ``[charges.<name>]`` tables: every atom of the spec exactly once, by name, and a
    sum equal to the net formal charge within CHARGE_SUM_TOLERANCE."""
    sets = {}
    for name, where, source, values in _named_set_entries(table, "charges", "charge set", "charge", path, spec, RESERVED_CHARGE_NAMES):
        bad = [a for a, q in values.items() if not _is_number(q)]
        if bad:
            raise SpecError(f"{where}: charges of {', '.join(bad)} are not numbers")
        charges = [float(values[a]) for a in spec.atom_names]
        if abs(sum(charges) - spec.net_charge) > CHARGE_SUM_TOLERANCE:
            raise SpecError(f"{where}: charges sum to {sum(charges):+.6f}, not to the net charge {spec.net_charge:+d} of the molecule "
                            f"(tolerance {CHARGE_SUM_TOLERANCE:g})")
        sets[name] = ChargeSet(name, source, charges)
    return sets


def spec_for_model(atoms_per_molecule: int | None = None, centre: Centre | None = None, vectors=None, *, molecule: str | None = None,
                   elements=None, where: str = "the model") -> MoleculeSpec:
    """The spec of a model: the one it names (``molecule``, e.g. an SF model file's ``meta
    molecule`` record), else the one shipped spec (`SPEC_DIR`) whose molecule fits what the
    model tells of its own: ``atoms_per_molecule`` and, where given, the 1-based ``centre``
    atom, the ``vectors`` (1-based atom pairs) and the ``elements`` in molecule order
    (symbols or atomic numbers). SpecError naming `where` and the candidates where no
    shipped spec fits or several do."""
    if molecule:
        return load_spec(molecule)
    if atoms_per_molecule is None:
        raise SpecError(f"{where} does not tell its molecule (no molecule name, no atom count)")
    if elements is not None:
        from molenv.trajectory import symbol_tables  # lazy: molenv.trajectory imports this module

        to_symbol = {z: e for e, z in symbol_tables()[0].items()}
        elements = [to_symbol.get(int(e), str(e)) if not isinstance(e, str) else e.strip().capitalize() for e in elements]
    matches, shipped = [], []
    for path in sorted(SPEC_DIR.glob("*.toml")):
        spec = load_spec(path)
        shipped.append(f"{spec.name} ({spec.atoms_per_molecule} atoms)")
        if spec.atoms_per_molecule != atoms_per_molecule \
                or (centre is not None and spec.centre != centre) \
                or (vectors is not None and [tuple(v) for v in spec.vectors] != [tuple(v) for v in vectors]) \
                or (elements is not None and list(spec.elements) != list(elements)):
            continue
        matches.append(spec)
    if len(matches) == 1:
        return matches[0]
    told = [f"{atoms_per_molecule} atoms"]
    if centre is not None:
        told.append(f"centre atom {centre}")
    if vectors is not None:
        told.append("vectors " + " ".join(f"{a}-{b}" for a, b in vectors))
    if elements is not None:
        told.append("elements " + " ".join(elements))
    if not matches:
        raise SpecError(f"{where}: no shipped spec fits its molecule ({', '.join(told)}; shipped: {', '.join(shipped)})")
    raise SpecError(f"{where}: several shipped specs fit its molecule ({', '.join(told)}): {', '.join(m.name for m in matches)}")
