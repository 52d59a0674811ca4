"""Systems to simulate: crystal supercells, spherical clusters, two-crystal interfaces, and
whole systems read from a file (LAMMPS data, PDB, GRO, ...).

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

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.crystals import CrystalError, box_vectors, cell_molecules, molecule_centres, read_crystal, replications, supercell, symmetrise
from molenv.frames import MolecularFrame, perpendicular_heights
from molenv.labelling import apply_convention
from molenv.simulate import SimulationError
from molenv.simulate.parametrise import ForceField, residue_name, run_tleap
from molenv.spec import MoleculeSpec

RIGHT_ANGLE_TOLERANCE = 0.5  # degrees
# Room above twice the cutoff that a crystal supercell is built with, for the barostat: NPT
# shrinks the cells of our data by up to ~3 % uniformly (urea form I a, b: -1 % with the
# authors' charges, -3 % with AM1-BCC, at 100 K; data/README.md); 5 % covers that, and a run
# whose box still falls below twice the cutoff stops (`molenv.simulate.md.BoxCheck`).
BAROSTAT_MARGIN = 0.05


def required_height(spec: MoleculeSpec, cutoff: float | None) -> float:
    """Twice the larger of the MD cutoff (None: no periodic cutoff) and the spec's descriptor
    cutoff rmax: the smallest perpendicular height a periodic box may have."""
    return 2 * max(cutoff or 0.0, spec.rmax)


def supercell_height(spec: MoleculeSpec, min_height: float) -> float:
    """The perpendicular height a crystal supercell is built to: ``min_height``, but at least
    twice the spec's descriptor cutoff rmax plus `BAROSTAT_MARGIN`, so that the box stays wide
    enough for the descriptors after the usual NPT contraction (urea, rmax 10 A: 21 A;
    nicotinamide, rmax 7 A: the default 20 A). A larger MD cutoff is the user's to make room
    for (`MolecularSystem.check_box` refuses a box below twice it)."""
    return max(min_height, round(2 * spec.rmax * (1 + BAROSTAT_MARGIN), 6))


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

    def check_box(self, cutoff: float) -> str | None:
        """Fail early if a periodic box is narrower than twice the MD cutoff or twice the
        spec's descriptor cutoff (minimum image). Returns a warning where it is less than
        `BAROSTAT_MARGIN` wider (a barostat may shrink it below), else None."""
        if self.dimensions is None:
            return None
        heights = perpendicular_heights(box_vectors(self.dimensions))
        need = required_height(self.spec, cutoff)
        if heights.min() < need:
            which = f"the MD cutoff {cutoff} A" if cutoff >= self.spec.rmax else f"the {self.spec.name} descriptor cutoff rmax {self.spec.rmax} A"
            raise SimulationError(
                f"box too small: perpendicular heights {np.round(heights, 2).tolist()} A, but twice {which} needs >= {need:.2f} A; "
                f"use a larger --min-height or --repeats"
            )
        if heights.min() < need * (1 + BAROSTAT_MARGIN):
            return (f"the box's smallest perpendicular height {heights.min():.2f} A is less than {100 * BAROSTAT_MARGIN:g} % above the "
                    f"{need:g} A it needs: a barostat may shrink it below (the run stops if it does); a larger --repeats is safer")
        return None

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


def density(system: MolecularSystem) -> float:
    """Mass density of a periodic system, g/cm3."""
    from molenv.order import density as frame_density

    return frame_density(system.frame())


def at_density(system: MolecularSystem, target: float) -> MolecularSystem:
    """The system expanded (or compressed) isotropically to ``target`` g/cm3: box lengths and
    molecule centres scaled, molecules rigid. For a melt made at a chosen density (`molenv
    simulate melt --density`), e.g. the experimental density of the liquid where the force
    field's own at 1 bar is off."""
    if system.dimensions is None:
        raise SimulationError("a system without a box has no density to set")
    if not 0.1 < target < 5.0:
        raise SimulationError(f"density {target} g/cm3 is not a density of a molecular liquid or solid")
    factor = (density(system) / target) ** (1.0 / 3.0)
    if factor < 1.0 - 1e-12:
        raise SimulationError(f"--density {target} g/cm3 would compress the system (it is at {density(system):.4f} g/cm3 as built): "
                              "molecules would overlap; only expansion is supported")
    centres = molecule_centres(system.positions, system.spec)[:, None, :]
    positions = system.positions + centres * (factor - 1.0)  # rigid molecules, centres scaled
    dims = system.dimensions.copy()
    dims[:3] *= factor
    info = system.info | {"density_g_cm3": target, "expanded_by": round(float(factor), 6)}
    return MolecularSystem(system.spec, positions, dims, system.groups, f"{system.description}, expanded to {target:g} g/cm3", info)


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
    """A gas-phase spherical cluster: the molecules of a supercell whose centre (the spec's:
    an atom or a centroid, `molecule_centres`) lies within ``diameter``/2 of the supercell's
    centre, which becomes the origin. Not periodic."""
    cell = _cell(structure, spec, symmetrise_tolerance)
    extent = float(np.max(np.linalg.norm(cell.positions - molecule_centres(cell.positions, spec)[:, None, :], axis=2)))
    sc = supercell(cell, min_height=diameter + 2 * extent + 2.0)
    centre = box_vectors(sc.dimensions).sum(axis=0) / 2
    r = np.linalg.norm(molecule_centres(sc.positions, spec) - centre, axis=1)
    keep = r <= diameter / 2
    if keep.sum() < 2:
        raise SimulationError(f"cluster of diameter {diameter} A from {structure} holds {int(keep.sum())} molecules")
    positions = sc.positions[keep] - centre
    info = {"structure": str(structure), "spacegroup": cell.spacegroup, "diameter": diameter, "from_repeats": list(sc.repeats)}
    desc = f"{spec.name} spherical cluster ({diameter:g} A) cut from {Path(structure).name}, {int(keep.sum())} molecules"
    return MolecularSystem(spec, positions, None, [(Path(structure).stem, int(keep.sum()))], desc, info)


def parse_orientation(text: str | None, axis: str = "z") -> tuple[np.ndarray, str, str | None]:
    """Which axis of a rectangular cell lies along x, y and z of the box: ``"a,c,b"`` puts a
    along x, c along y, b along z; a ``-`` reverses an axis (``"a,c,-b"``); None is
    ``"a,b,c"`` (the cell as it is). Returns the rotation R (a signed permutation matrix:
    r_box = R @ r_cell, with the cell's a, b, c along x, y, z as read), the orientation
    built (``"a,c,-b"``) and a note when it differs from the one asked for.

    Handedness: a signed permutation of determinant -1 (an odd permutation such as a,c,b, or
    one reversed axis) is a mirror image of the crystal, not a rotation of it; the mirror
    image of a chiral crystal (urea form IV, P2(1)2(1)2) is another structure. Such an
    orientation is therefore built with the cell axis along the stacking ``axis`` reversed
    as well (a,c,b along z -> a,c,-b): a proper rotation, with the lateral axes as asked."""
    import re

    if text is None:
        return np.eye(3, dtype=int), "a,b,c", None
    items = str(text).replace(" ", "").split(",")
    found = [re.fullmatch(r"([+-]?)([abcABC])", x) for x in items]
    if len(items) != 3 or any(m is None for m in found) or sorted(m.group(2).lower() for m in found) != ["a", "b", "c"]:
        raise SimulationError(f"orientation {text!r}: expected the cell axes a, b, c that lie along x, y, z, each once, "
                              "e.g. a,c,b or b,c,a (a '-' reverses an axis: a,c,-b)")
    rotation = np.zeros((3, 3), dtype=int)
    for i, m in enumerate(found):
        rotation[i, "abc".index(m.group(2).lower())] = -1 if m.group(1) == "-" else 1
    note = None
    if round(np.linalg.det(rotation)) < 0:
        rotation["xyz".index(axis)] *= -1
        note = (f"orientation {text} is a mirror image of the crystal (determinant -1); built as {_orientation_label(rotation)} "
                f"(the cell axis along {axis} reversed), a proper rotation")
    return rotation, _orientation_label(rotation), note


def _orientation_label(rotation: np.ndarray) -> str:
    return ",".join(("-" if row.sum() < 0 else "") + "abc"[int(np.flatnonzero(row)[0])] for row in rotation)


def _orient_cell(cell, rotation: np.ndarray, spec: MoleculeSpec):
    """The rectangular cell rotated by ``rotation`` (from `parse_orientation`): molecules
    rotated rigidly, cell lengths permuted, each molecule's centre put back into the cell."""
    if np.array_equal(rotation, np.eye(3, dtype=int)):
        return cell
    dims = cell.dimensions.copy()
    dims[:3] = cell.dimensions[:3][np.abs(rotation).argmax(axis=1)]
    dims[3:] = 90.0
    positions = cell.positions @ rotation.T.astype(float)
    positions -= (np.floor(molecule_centres(positions, spec) / dims[:3]) * dims[:3])[:, None, :]
    return dataclasses.replace(cell, dimensions=dims, positions=positions)


def interface_system(spec: MoleculeSpec, structure_a, structure_b, axis: str = "z", min_height: float = 20.0, repeats_a=None, repeats_b=None,
                     symmetrise_a: float | None = None, symmetrise_b: float | None = None, gap: float = 1.5, max_strain: float = 0.05,
                     orient_a: str | None = None, orient_b: str | None = None, lateral_box=None) -> MolecularSystem:
    """Two crystals stacked along ``axis`` (x, y or z) in one periodic box (two interfaces).

    Both cells must be rectangular (all angles 90 degrees). ``orient_a``/``orient_b`` say
    which cell axis lies along x, y, z (`parse_orientation`: ``"a,c,b"``; default the cell as
    read, a along x); repeats (``repeats_a``/``repeats_b``) count cells along x, y, z of the
    box, in that orientation. The lateral box is ``lateral_box`` (the two lateral lengths in
    x, y, z order, e.g. x and y for ``axis="z"``), else crystal A's supercell; a slab without
    repeats gets as many lateral repeats as best match it. Each slab's molecules are moved
    rigidly (molecule centres scaled; the centre as the spec defines it, an atom or a
    centroid) to the lateral box, which must need less than ``max_strain`` relative strain.
    Along the axis each slab keeps its own periodic spacing; its molecules are centred in its
    height (as much space below the lowest molecule centre as above the highest), and ``gap``
    Angstrom is added at each of the two interfaces, so that both interfaces have the same
    spacing between the molecule centres of their facing layers
    (``info["interface_spacing"]``)."""
    k = "xyz".index(axis)
    lateral = [i for i in range(3) if i != k]
    structures = (structure_a, structure_b)
    cells, orientations, notes = [], [], []
    for s, tolerance, orient in zip(structures, (symmetrise_a, symmetrise_b), (orient_a, orient_b)):
        cell = _cell(s, spec, tolerance)
        if np.any(np.abs(cell.dimensions[3:] - 90.0) > RIGHT_ANGLE_TOLERANCE):
            raise SimulationError(f"{s}: interface needs a rectangular cell, got angles {cell.dimensions[3:].tolist()}")
        rotation, label, note = parse_orientation(orient, axis)
        cells.append(_orient_cell(cell, rotation, spec))
        orientations.append(label)
        if note:
            notes.append(f"{Path(s).name}: {note}")
    target = None
    if lateral_box is not None:
        target = np.asarray(lateral_box, dtype=float)
        if target.shape != (2,) or np.any(target <= 0):
            raise SimulationError(f"lateral box {lateral_box!r}: expected two positive lengths (A) along {', '.join('xyz'[i] for i in lateral)}")
    slabs = []
    for n, (cell, repeats) in enumerate(zip(cells, (repeats_a, repeats_b))):
        if repeats is None and n == 0 and target is None:
            repeats = replications(cell.dimensions, min_height)
        elif repeats is None:
            repeats = [0, 0, 0]
            reference = target if target is not None else slabs[0].dimensions[lateral]
            for j, i in enumerate(lateral):
                repeats[i] = max(1, round(reference[j] / cell.dimensions[i]))
            repeats[k] = max(1, math.ceil(min_height / cell.dimensions[k] - 1e-9))
        try:
            slabs.append(supercell(cell, repeats=repeats))
        except CrystalError as err:
            raise SimulationError(str(err)) from None
    if target is None:
        target = slabs[0].dimensions[lateral]
    strains = [target / slab.dimensions[lateral] - 1.0 for slab in slabs]
    for n, (slab, strain) in enumerate(zip(slabs, strains)):
        if np.any(np.abs(strain) > max_strain):
            if lateral_box is None:
                raise SimulationError(f"lateral mismatch between {structure_a} ({slabs[0].dimensions[lateral].tolist()} A) and {structure_b} "
                                      f"({slab.dimensions[lateral].tolist()} A) needs strain {np.round(strain, 3).tolist()} > {max_strain}")
            raise SimulationError(f"lateral box {target.tolist()} A: {structures[n]} ({np.round(slab.dimensions[lateral], 4).tolist()} A, "
                                  f"repeats {list(slab.repeats)} along x, y, z) needs strain {np.round(strain, 3).tolist()} > {max_strain}")
    parts, margins, offset = [], [], 0.0
    for slab, strain in zip(slabs, strains):
        pos = slab.positions.copy()
        centres = molecule_centres(pos, spec)
        shift = np.zeros_like(centres)
        shift[:, lateral] = centres[:, lateral] * strain  # rigid move: centres scaled laterally
        low, high = centres[:, k].min(), centres[:, k].max()
        margin = (slab.dimensions[k] - (high - low)) / 2
        shift[:, k] = offset + margin - low  # centred in the slab's height
        parts.append(pos + shift[:, None, :])
        margins.append(margin)
        offset += slab.dimensions[k] + gap
    sa, sb = slabs
    dims = sa.dimensions.copy()
    dims[lateral] = target
    dims[k] = sa.dimensions[k] + sb.dimensions[k] + 2 * gap
    positions = np.concatenate(parts)
    info = {"structures": [str(structure_a), str(structure_b)], "axis": axis, "orientations": orientations,
            "repeats": [list(sa.repeats), list(sb.repeats)], "lateral_box": np.round(target, 4).tolist(),
            "lateral_strain": [np.round(s, 4).tolist() for s in strains], "lateral_strain_b": np.round(strains[1], 4).tolist(),
            "gap": gap, "interface_spacing": round(float(sum(margins) + gap), 4), "molecules": [sa.n_molecules, sb.n_molecules]}
    if notes:
        info["orientation_notes"] = notes
    oriented = "" if orientations == ["a,b,c", "a,b,c"] else f" (x,y,z = {orientations[0]} / {orientations[1]})"
    desc = (f"{spec.name} interface {Path(structure_a).stem} ({sa.n_molecules} molecules) / {Path(structure_b).stem} "
            f"({sb.n_molecules} molecules) along {axis}{oriented}")
    return MolecularSystem(spec, positions, dims, [(Path(structure_a).stem, sa.n_molecules), (Path(structure_b).stem, sb.n_molecules)], desc, info)


def file_system(spec: MoleculeSpec, structure, *, name_map=None, type_elements=None, periodic: bool = True, frame: int = 0) -> MolecularSystem:
    """The whole system of a file that :class:`molenv.trajectory.Trajectory` reads (LAMMPS
    data, PDB, GRO, a frame of a dump or XYZ, ...), as it is: its molecules, made whole, in
    the file's order, and its box as the periodic box (``periodic=False``: none, a gas-phase
    system). ``name_map``/``type_elements`` as for `Trajectory` (e.g. the authors' urea
    interface: ``{"4": "N1", "5": "N2"}`` and ``"1:H,2:O,3:C,4:N,5:N"``). One group, named
    after the file."""
    from molenv.trajectory import Trajectory, TrajectoryError

    path = Path(structure)
    if not path.is_file():
        raise SimulationError(f"{path}: structure file not found")
    try:
        traj = Trajectory(path, spec, name_map=name_map, type_elements=type_elements, periodic=periodic)
        n_frames = traj.n_frames
        if not -n_frames <= frame < n_frames:
            raise SimulationError(f"{path}: frame {frame} out of range ({n_frames} frames)")
        f = traj[frame]
    except TrajectoryError as err:
        raise SimulationError(str(err)) from None
    if periodic and f.box is None:
        raise SimulationError(f"{path}: the file has no periodic box; give --no-pbc to simulate it without periodic boundaries "
                              "(a gas-phase system)")
    positions = f.molecule_positions(spec.centre_atoms[0])  # whole molecules, around the (first) centre atom
    n = len(positions)
    info = {"structure": str(path), "frame": frame, "n_frames": n_frames, "molecules_from": traj.molecules_from,
            "atom_order": traj.atom_order, "periodic": f.box is not None}
    if f.box is not None:
        info["box"] = np.round(f.box, 4).tolist()
    which = "" if n_frames == 1 else f" (frame {frame} of {n_frames})"
    desc = f"{spec.name} system from {path.name}{which}, {n} molecules" + ("" if f.box is not None else ", no periodic boundaries")
    return MolecularSystem(spec, positions, None if f.box is None else f.box.copy(), [(path.stem, n)], desc, info)


def coexistence_system(spec: MoleculeSpec, structure, repeats, lattice=None, melt_fraction: float = 0.5, melt_density: float = 1.2,
                       orient: str | None = None, symmetrise_tolerance: float | None = None) -> MolecularSystem:
    """A crystal/melt two-phase system stacked along z: a supercell of ``repeats`` cells
    (along x, y, z of the box, after ``orient`` as in `interface_system`) whose upper
    ``melt_fraction`` of cell layers along z is to be melted while the lower ones are held.

    ``lattice`` (three cell lengths along x, y, z, A) is the crystal's lattice at the
    temperature of the run (e.g. the mean box of an NPT crystal run at that temperature):
    the cell is scaled to it with rigid molecules (molecule centres scaled), so that the
    crystal half is unstrained in the fixed lateral box of NPzT. The upper part is then
    stretched along z (rigid molecules, centres scaled away from the cut) to ``melt_density``
    g/cm3, room for the melt at constant volume. Groups: the crystal (named after the file,
    held during the melting by `molenv simulate coexistence`) first, then ``melt``; within
    each, molecules in supercell order."""
    cell = _cell(structure, spec, symmetrise_tolerance)
    if np.any(np.abs(cell.dimensions[3:] - 90.0) > RIGHT_ANGLE_TOLERANCE):
        raise SimulationError(f"{structure}: a crystal/melt system needs a rectangular cell, got angles {cell.dimensions[3:].tolist()}")
    rotation, label, note = parse_orientation(orient, "z")
    cell = _orient_cell(cell, rotation, spec)
    if not 0.0 < melt_fraction < 1.0:
        raise SimulationError(f"melt fraction {melt_fraction}: expected a number between 0 and 1 (the part of the z cell layers to melt)")
    repeats = tuple(int(r) for r in repeats)
    n_melt_layers = round(repeats[2] * melt_fraction)
    if len(repeats) != 3 or min(repeats) < 1 or not 1 <= n_melt_layers < repeats[2]:
        raise SimulationError(f"repeats {list(repeats)} with melt fraction {melt_fraction:g}: the crystal and the melt each need at least one "
                              f"of the {repeats[2] if len(repeats) == 3 else '?'} cell layers along z")
    if lattice is not None:
        lattice = np.asarray(lattice, dtype=float)
        if lattice.shape != (3,) or np.any(lattice <= 0):
            raise SimulationError(f"lattice {lattice.tolist()}: expected three positive cell lengths (A) along x, y, z")
        if np.any(np.abs(lattice / cell.dimensions[:3] - 1.0) > 0.1):
            raise SimulationError(f"lattice {lattice.tolist()} A differs from the cell {np.round(cell.dimensions[:3], 4).tolist()} A by more than 10 %: "
                                  "give the cell lengths along x, y, z of the box (after --orient)")
        centres = molecule_centres(cell.positions, spec)
        positions = cell.positions + (centres * (lattice / cell.dimensions[:3] - 1.0))[:, None, :]
        dims = cell.dimensions.copy()
        dims[:3] = lattice
        cell = dataclasses.replace(cell, dimensions=dims, positions=positions)
    try:
        sc = supercell(cell, repeats=repeats)
    except CrystalError as err:
        raise SimulationError(str(err)) from None
    crystal_density = density(MolecularSystem(spec, sc.positions, sc.dimensions, [("crystal", sc.n_molecules)], "supercell"))
    expansion = crystal_density / melt_density
    if expansion < 1.0 - 1e-12:
        raise SimulationError(f"melt density {melt_density} g/cm3 is above the crystal's {crystal_density:.4f} g/cm3: the part to melt would be "
                              "compressed and its molecules overlap; give a lower --melt-density")
    cut = (repeats[2] - n_melt_layers) * cell.dimensions[2]
    centres = molecule_centres(sc.positions, spec)
    melt = centres[:, 2] >= cut
    shift = np.zeros_like(centres)
    shift[melt, 2] = (centres[melt, 2] - cut) * (expansion - 1.0)
    positions = sc.positions + shift[:, None, :]
    positions = np.concatenate([positions[~melt], positions[melt]])
    dims = sc.dimensions.copy()
    dims[2] = cut + (sc.dimensions[2] - cut) * expansion
    name = Path(structure).stem
    n_crystal, n_melt = int((~melt).sum()), int(melt.sum())
    info = {"structure": str(structure), "spacegroup": cell.spacegroup, "orientation": label, "repeats": list(repeats),
            "cell": np.round(cell.dimensions, 4).tolist(), "lattice_at_temperature": None if lattice is None else lattice.tolist(),
            "crystal_density": round(float(crystal_density), 4), "melt_density": melt_density, "melt_expansion_z": round(float(expansion), 6),
            "crystal_height": round(float(cut), 4), "molecules": [n_crystal, n_melt]}
    if note:
        info["orientation_notes"] = [note]
    if symmetrise_tolerance:
        info["symmetrised"] = symmetrise_tolerance
    desc = (f"{spec.name} crystal/melt system along z from {Path(structure).name} (x,y,z = {label}), {'x'.join(map(str, repeats))} cells: "
            f"{n_crystal} crystal molecules held, {n_melt} to melt (stretched along z to {melt_density:g} g/cm3)")
    return MolecularSystem(spec, positions, dims, [(name, n_crystal), ("melt", n_melt)], desc, info)
