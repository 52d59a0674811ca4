"""Systems to simulate: crystal supercells, spherical clusters, two-crystal interfaces.

Every builder returns a :class:`MolecularSystem`: whole molecules in spec order, a box
(``None`` for a gas-phase cluster) and named groups of molecules (one PDB chain each: the
crystal, or the two slabs of an interface). A melt starts from a crystal supercell; melting
is a protocol (high-temperature NVT, quench, NPT), see :mod:`molenv.simulate.md`.

``MolecularSystem.prepare`` writes what OpenMM needs: ``system.pdb`` (residue = molecule,
spec atom names and order, CONECT records, CRYST1) and ``system.prmtop`` built by tleap from
the molecule's residue template.

Every system's molecules are labelled to the convention of :mod:`molenv.labelling` (urea:
every N1 -> N2 in one hemisphere), whatever labelling the structure file carried.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.crystals import CrystalError, box_vectors, cell_molecules, read_crystal, supercell, symmetrise
from molenv.frames import MolecularFrame, perpendicular_heights
from molenv.labelling import apply_convention
from molenv.simulate import SimulationError
from molenv.simulate.parametrise import ForceField, residue_name, run_tleap
from molenv.spec import MoleculeSpec

RIGHT_ANGLE_TOLERANCE = 0.5  # degrees


@dataclass
class MolecularSystem:
    """Whole molecules of one kind (atoms in spec order) with an optional periodic box."""

    spec: MoleculeSpec
    positions: np.ndarray  # (n_molecules, atoms_per_molecule, 3), Angstrom
    dimensions: np.ndarray | None  # [a, b, c, alpha, beta, gamma]; None = not periodic
    groups: list[tuple[str, int]]  # (name, number of molecules), consecutive
    description: str
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        # every builder's molecules follow one labelling of graph-equivalent atoms (urea's
        # N1/N2): molenv.labelling; what was relabelled goes to run.json and run.log
        self.positions, reports = apply_convention(self.spec, self.positions, self.dimensions)
        if reports:
            self.info["labelling"] = [r.describe() for r in reports]

    @property
    def n_molecules(self) -> int:
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[0] * self.positions.shape[1]

    def frame(self) -> MolecularFrame:
        import gemmi

        n, m = self.positions.shape[:2]
        return MolecularFrame(
            positions=self.positions.reshape(-1, 3),
            box=None if self.dimensions is None else self.dimensions.copy(),
            molecules=np.arange(n * m, dtype=np.int64).reshape(n, m),
            atomic_numbers=np.array([gemmi.Element(e).atomic_number for e in self.spec.elements] * n),
        )

    def box_vectors(self) -> np.ndarray | None:
        """Cell vectors (rows, Angstrom) in the reduced form OpenMM requires, or None."""
        return None if self.dimensions is None else reduced_box(box_vectors(self.dimensions))

    def topology(self):
        """OpenMM Topology: one chain per group, one residue per molecule, spec bonds."""
        from openmm import Vec3, app, unit

        top = app.Topology()
        elements = [app.Element.getBySymbol(e) for e in self.spec.elements]
        resname = residue_name(self.spec)
        chain_ids = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        for g, (_, count) in enumerate(self.groups):
            chain = top.addChain(chain_ids[g % len(chain_ids)])
            for _ in range(count):
                res = top.addResidue(resname, chain)
                atoms = [top.addAtom(name, el, res) for name, el in zip(self.spec.atom_names, elements)]
                for i, j in self.spec.bonds:
                    top.addBond(atoms[i], atoms[j])
        vectors = self.box_vectors()
        if vectors is not None:
            top.setPeriodicBoxVectors([Vec3(*(v / 10.0)) for v in vectors] * unit.nanometer)
        return top

    def check_box(self, cutoff: float) -> None:
        """Fail early if a periodic box is narrower than twice the MD cutoff or twice the
        spec's descriptor cutoff (minimum image)."""
        if self.dimensions is None:
            return
        heights = perpendicular_heights(box_vectors(self.dimensions))
        need = 2 * max(cutoff, self.spec.rmax)
        if heights.min() < need:
            which = f"the MD cutoff {cutoff} A" if cutoff >= self.spec.rmax else f"the {self.spec.name} descriptor cutoff rmax {self.spec.rmax} A"
            raise SimulationError(
                f"box too small: perpendicular heights {np.round(heights, 2).tolist()} A, but twice {which} needs >= {need:.2f} A; "
                f"use a larger --min-height or --repeats"
            )

    def write_pdb(self, path: Path, positions: np.ndarray | None = None) -> None:
        from openmm import app, unit

        pos = (self.positions if positions is None else positions).reshape(-1, 3) / 10.0
        with open(path, "w") as fh:
            app.PDBFile.writeFile(self.topology(), pos * unit.nanometer, fh, keepIds=False)

    def prepare(self, ff: ForceField, directory: Path) -> tuple[Path, Path]:
        """Write ``system.pdb`` and build ``system.prmtop`` (tleap) in ``directory``; check
        that the prmtop holds the molecules in spec order."""
        directory = Path(directory)
        pdb, prmtop = directory / "system.pdb", directory / "system.prmtop"
        self.write_pdb(pdb)
        box = None if self.dimensions is None else tuple(self.dimensions[:3])
        if ff.resname != residue_name(self.spec):
            raise SimulationError(f"force field residue {ff.resname!r} does not match the system's residue {residue_name(self.spec)!r}")
        run_tleap(ff, pdb, prmtop, box)
        check_prmtop(prmtop, self)
        return pdb, prmtop


def check_prmtop(prmtop: Path, system: MolecularSystem) -> None:
    """The prmtop's atoms must be the system's molecules in spec order."""
    from openmm import app

    top = app.AmberPrmtopFile(str(prmtop)).topology
    names = [a.name for a in top.atoms()]
    expected = list(system.spec.atom_names) * system.n_molecules
    if names != expected or top.getNumResidues() != system.n_molecules:
        raise SimulationError(f"{prmtop}: atoms are not {system.n_molecules} molecules in spec order (tleap reordered or dropped atoms)")


def reduced_box(vectors: np.ndarray) -> np.ndarray:
    """The same lattice in OpenMM's reduced form: a = (ax,0,0), b = (bx,by,0), c with
    |bx| <= ax/2, |cx| <= ax/2, |cy| <= by/2."""
    a, b, c = (np.array(v, dtype=float) for v in vectors)
    c = c - b * round(c[1] / b[1])
    c = c - a * round(c[0] / a[0])
    b = b - a * round(b[0] / a[0])
    return np.array([a, b, c])


# ---------------------------------------------------------------------------------------
# builders


def _read(structure, symmetrise_tolerance: float | None):
    try:
        crystal = read_crystal(structure)
        if symmetrise_tolerance:
            crystal = symmetrise(crystal, symmetrise_tolerance)
        return crystal
    except CrystalError as err:
        raise SimulationError(str(err)) from None


def _cell(structure, spec, symmetrise_tolerance):
    crystal = _read(structure, symmetrise_tolerance)
    try:
        return cell_molecules(crystal, spec)
    except CrystalError as err:
        raise SimulationError(str(err)) from None


def crystal_system(spec: MoleculeSpec, structure, min_height: float = 20.0, repeats=None, symmetrise_tolerance: float | None = None) -> MolecularSystem:
    """A periodic supercell of the crystal in ``structure``."""
    cell = _cell(structure, spec, symmetrise_tolerance)
    sc = supercell(cell, repeats=repeats, min_height=min_height)
    info = {"structure": str(structure), "spacegroup": cell.spacegroup, "cell": np.round(cell.dimensions, 4).tolist(),
            "molecules_per_cell": cell.n_molecules, "repeats": list(sc.repeats)}
    if symmetrise_tolerance:
        info["symmetrised"] = symmetrise_tolerance
    desc = f"{spec.name} crystal from {Path(structure).name}, {'x'.join(map(str, sc.repeats))} cells, {sc.n_molecules} molecules"
    return MolecularSystem(spec, sc.positions, sc.dimensions, [(Path(structure).stem, sc.n_molecules)], desc, info)


def cluster_system(spec: MoleculeSpec, structure, diameter: float = 30.0, symmetrise_tolerance: float | None = None) -> MolecularSystem:
    """A gas-phase spherical cluster: the molecules of a supercell whose centre atom lies
    within ``diameter``/2 of the supercell's centre. Not periodic."""
    cell = _cell(structure, spec, symmetrise_tolerance)
    extent = float(np.max(np.linalg.norm(cell.positions - cell.positions[:, spec.centre - 1 : spec.centre], axis=2)))
    sc = supercell(cell, min_height=diameter + 2 * extent + 2.0)
    centre = box_vectors(sc.dimensions).sum(axis=0) / 2
    r = np.linalg.norm(sc.positions[:, spec.centre - 1] - centre, axis=1)
    keep = r <= diameter / 2
    if keep.sum() < 2:
        raise SimulationError(f"cluster of diameter {diameter} A from {structure} holds {int(keep.sum())} molecules")
    positions = sc.positions[keep] - centre
    info = {"structure": str(structure), "spacegroup": cell.spacegroup, "diameter": diameter, "from_repeats": list(sc.repeats)}
    desc = f"{spec.name} spherical cluster ({diameter:g} A) cut from {Path(structure).name}, {int(keep.sum())} molecules"
    return MolecularSystem(spec, positions, None, [(Path(structure).stem, int(keep.sum()))], desc, info)


def interface_system(spec: MoleculeSpec, structure_a, structure_b, axis: str = "z", min_height: float = 20.0, repeats_a=None, repeats_b=None,
                     symmetrise_a: float | None = None, symmetrise_b: float | None = None, gap: float = 1.5, max_strain: float = 0.05) -> MolecularSystem:
    """Two crystals stacked along ``axis`` (x, y or z) in one periodic box (two interfaces).

    Both cells must be rectangular (all angles 90 degrees) in the orientation given. Crystal
    A sets the lateral box; B gets as many lateral repeats as best match it and its
    molecules are moved rigidly (centre atoms scaled) to A's lateral size, which must need
    less than ``max_strain`` relative strain. Along the axis each slab keeps its own
    periodic spacing, plus ``gap`` Angstrom at each of the two interfaces."""
    k = "xyz".index(axis)
    lateral = [i for i in range(3) if i != k]
    cells = [_cell(s, spec, t) for s, t in ((structure_a, symmetrise_a), (structure_b, symmetrise_b))]
    for cell, s in zip(cells, (structure_a, structure_b)):
        if np.any(np.abs(cell.dimensions[3:] - 90.0) > RIGHT_ANGLE_TOLERANCE):
            raise SimulationError(f"{s}: interface needs a rectangular cell, got angles {cell.dimensions[3:].tolist()}")
    sa = supercell(cells[0], repeats=repeats_a, min_height=min_height)
    if repeats_b is None:
        repeats_b = [0, 0, 0]
        for i in lateral:
            repeats_b[i] = max(1, round(sa.dimensions[i] / cells[1].dimensions[i]))
        repeats_b[k] = max(1, math.ceil(min_height / cells[1].dimensions[k] - 1e-9))
    sb = supercell(cells[1], repeats=repeats_b)
    strain = sa.dimensions[lateral] / sb.dimensions[lateral] - 1.0
    if np.any(np.abs(strain) > max_strain):
        raise SimulationError(f"lateral mismatch between {structure_a} ({sa.dimensions[lateral].tolist()} A) and {structure_b} "
                              f"({sb.dimensions[lateral].tolist()} A) needs strain {np.round(strain, 3).tolist()} > {max_strain}")
    pos_b = sb.positions.copy()
    centres = pos_b[:, spec.centre - 1]
    shift = np.zeros_like(centres)
    shift[:, lateral] = centres[:, lateral] * strain  # rigid move: centre atoms scaled laterally
    shift[:, k] = sa.dimensions[k] + gap
    pos_b += shift[:, None, :]
    dims = sa.dimensions.copy()
    dims[k] = sa.dimensions[k] + sb.dimensions[k] + 2 * gap
    positions = np.concatenate([sa.positions, pos_b])
    info = {"structures": [str(structure_a), str(structure_b)], "axis": axis, "repeats": [list(sa.repeats), list(sb.repeats)],
            "lateral_strain_b": np.round(strain, 4).tolist(), "gap": gap, "molecules": [sa.n_molecules, sb.n_molecules]}
    desc = (f"{spec.name} interface {Path(structure_a).stem} ({sa.n_molecules} molecules) / {Path(structure_b).stem} "
            f"({sb.n_molecules} molecules) along {axis}")
    return MolecularSystem(spec, positions, dims, [(Path(structure_a).stem, sa.n_molecules), (Path(structure_b).stem, sb.n_molecules)], desc, info)

