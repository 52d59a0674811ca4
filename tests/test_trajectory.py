"""Trajectory reading: the reference LAMMPS files, other formats written with MDAnalysis, error messages."""
import warnings

import numpy as np
import pytest

from molenv.spec import load_spec
from molenv.trajectory import (
    Trajectory,
    TrajectoryError,
    element_from_mass,
    parse_type_elements,
    read_frame,
    read_frames,
    type_elements_from_data,
)

pytestmark = pytest.mark.reference
UREA_TYPES = "1:H,2:O,3:C,4:N"
NICOTINAMIDE_TYPES = {"1": "H", "2": "H", "8": "H", "3": "O", "4": "C", "5": "C", "9": "C", "10": "C", "6": "N", "7": "N"}


@pytest.fixture(scope="module")
def urea_dump(reference_dir):
    return reference_dir / "urea" / "formI_6x6x6_molstruc.dump"


@pytest.fixture(scope="module")
def urea_frame(urea_dump):
    return read_frame(urea_dump, "urea", type_elements=UREA_TYPES)


def test_urea_reference_dump(urea_dump):
    traj = Trajectory(urea_dump, "urea", type_elements=UREA_TYPES)
    assert len(traj) == traj.n_frames == 2
    assert traj.molecules.shape == (432, 8) and traj.molecules_from == "residues" and traj.atom_order == "position"
    assert np.array_equal(traj.atomic_numbers[traj.molecules], np.tile([6, 8, 7, 1, 1, 7, 1, 1], (432, 1)))
    frames = list(traj)
    assert [f.time for f in frames] == [0.0, 10.0]
    first = frames[0]
    assert first.positions.dtype == np.float64 and first.n_molecules == 432
    np.testing.assert_allclose(first.box, [33.293445, 33.293445, 27.867575, 90, 90, 90], rtol=1e-6)
    # atoms sorted by id (the file is not), origin moved to the box corner: atom id 2 is molecule 1's O
    np.testing.assert_allclose(first.positions[first.molecules[0, 1]], np.array([0.0482775, 2.82273, 2.88312]) - [0.048277534548, 0.048277534548, 0.11821245], atol=2e-6)
    # C=O bond length (minimum image: molecules are split across the boundary)
    assert np.allclose(np.linalg.norm(first.vectors([(1, 2)]), axis=2), 1.2508, atol=2e-3)
    assert len(Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, start=1)) == 1
    assert len(Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, step=2)) == 1
    assert [f.time for f in read_frames(urea_dump, "urea", type_elements=UREA_TYPES, start=-1)] == [10.0]


def test_nicotinamide_reference_dump_is_triclinic(reference_dir):
    ref = reference_dir / "nicotinamide"
    traj = Trajectory(ref / "formVII_5x2x2_molstruc.dump", "nicotinamide", type_elements=ref / "formVII_cell_gaff.data")
    assert len(traj) == 1 and traj.molecules.shape == (80, 15)
    frame = traj[0]
    np.testing.assert_allclose(frame.box, [18.7625, 24.6458, 26.1236, 71.5, 85.68, 85.2], rtol=1e-5)
    expected = [load_spec("nicotinamide").elements] * 80
    symbols = {1: "H", 6: "C", 7: "N", 8: "O"}
    assert [[symbols[z] for z in row] for row in frame.atomic_numbers[frame.molecules]] == expected
    # ring bond C3-C2 and amide C7=O7 under the minimum image in the triclinic cell
    lengths = np.linalg.norm(frame.vectors([(1, 2), (7, 8)]), axis=2)
    assert np.all((lengths > 1.15) & (lengths < 1.45))


def test_type_element_helpers(reference_dir):
    assert type_elements_from_data(reference_dir / "nicotinamide" / "formVII_cell_gaff.data") == NICOTINAMIDE_TYPES
    assert type_elements_from_data(reference_dir / "urea" / "formI_formIV_interface.data") == {"1": "H", "2": "O", "3": "C", "4": "N", "5": "N"}
    assert parse_type_elements(UREA_TYPES) == {"1": "H", "2": "O", "3": "C", "4": "N"}
    assert element_from_mass(12.011) == "C" and element_from_mass(14.01) == "N" and element_from_mass(50.0, 0.1) is None
    with pytest.raises(TrajectoryError, match="'type:Element' items"):
        parse_type_elements("1=H")
    with pytest.raises(TrajectoryError, match="'Xx' is not an element symbol"):
        parse_type_elements("1:Xx")
    with pytest.raises(TrajectoryError, match="no 'Masses' section"):
        type_elements_from_data(reference_dir / "urea" / "gaff.settings")


# ----------------------------------------------------------------------------- other formats


def universe_from_frame(frame, names, resname="URE"):
    """An MDAnalysis Universe of the frame (one residue per molecule, given names), atoms
    stored molecule by molecule in the order given by `frame.molecules`."""
    import MDAnalysis as mda

    n_mol, apm = frame.molecules.shape
    u = mda.Universe.empty(n_mol * apm, n_residues=n_mol, atom_resindex=np.repeat(np.arange(n_mol), apm), trajectory=True)
    u.add_TopologyAttr("names", np.tile(names, n_mol))
    u.add_TopologyAttr("resnames", [resname] * n_mol)
    u.add_TopologyAttr("resids", np.arange(1, n_mol + 1))
    u.atoms.positions = frame.positions[frame.molecules.ravel()]
    u.dimensions = frame.box
    return u


def write(u, path, n_frames=1):
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_frames == 1:
            u.atoms.write(str(path))
        else:
            with mda.Writer(str(path), u.atoms.n_atoms) as w:
                for k in range(n_frames):
                    u.atoms.positions = u.atoms.positions + 0.01 * k
                    u.trajectory.ts.time = 2.0 * k
                    w.write(u.atoms)
    return path


def shuffled_within_molecules(frame, seed=0):
    """The same frame with every molecule's atoms stored in a random order (per molecule)."""
    rng = np.random.default_rng(seed)
    rows = np.array([row[rng.permutation(len(row))] for row in frame.molecules])
    return frame.replace(molecules=rows), rows


@pytest.mark.parametrize("suffix, tolerance", [("gro", 6e-3), ("pdb", 6e-4)])
def test_structure_files_with_names_are_ordered_by_name(tmp_path, urea_frame, suffix, tolerance):
    spec = load_spec("urea")
    shuffled, rows = shuffled_within_molecules(urea_frame)
    names = np.array(spec.atom_names)
    # names of the shuffled atoms: the spec name of the column each came from
    u = universe_from_frame(shuffled, names)
    spec_column = np.array([[list(orig).index(a) for a in row] for orig, row in zip(urea_frame.molecules, rows)])
    u.atoms.names = names[spec_column.ravel()]
    path = write(u, tmp_path / f"urea.{suffix}")
    traj = Trajectory(path, spec)
    assert traj.atom_order == "name" and traj.molecules_from == "residues"
    frame = traj[0]
    np.testing.assert_allclose(frame.positions[frame.molecules], urea_frame.positions[urea_frame.molecules], atol=tolerance)
    np.testing.assert_allclose(frame.box, urea_frame.box, atol=tolerance)


def test_names_that_are_not_the_spec_names(tmp_path, urea_frame):
    spec = load_spec("urea")
    file_names = ["CU", "OU", "NA", "HA1", "HA2", "NB", "HB1", "HB2"]
    u = universe_from_frame(urea_frame, file_names)
    path = write(u, tmp_path / "urea.gro")
    # in spec order already: position order works
    assert Trajectory(path, spec).atom_order == "position"
    # shuffled: an explicit name map restores the order
    shuffled, rows = shuffled_within_molecules(urea_frame, seed=1)
    spec_column = np.array([[list(orig).index(a) for a in row] for orig, row in zip(urea_frame.molecules, rows)])
    u = universe_from_frame(shuffled, file_names)
    u.atoms.names = np.array(file_names)[spec_column.ravel()]
    path = write(u, tmp_path / "shuffled.gro")
    traj = Trajectory(path, spec, name_map=dict(zip(file_names, spec.atom_names)))
    assert traj.atom_order == "name"
    np.testing.assert_allclose(traj[0].positions[traj.molecules], urea_frame.positions[urea_frame.molecules], atol=6e-3)
    # without it, ordering by bonds cannot tell urea's N1 from N2
    with pytest.raises(TrajectoryError, match=r"shuffled.gro: ordering atoms by bonds cannot tell N1, N2 of urea apart"):
        Trajectory(path, spec)
    with pytest.raises(TrajectoryError, match=r"shuffled.gro: molecule 0 atom 1 \(C\) is [HNO], spec urea expects C"):
        Trajectory(path, spec, atom_order="position")
    with pytest.raises(TrajectoryError, match=r"molecule 0 has atom names .* \(missing: C, H11, .*unknown: CU, HA1"):
        Trajectory(path, spec, atom_order="name")
    # pinning N1/N2 by name lets the bond graph place the rest (H by their N)
    traj = Trajectory(path, spec, name_map={"NA": "N1", "NB": "N2"})
    assert traj.atom_order == "bonds" and traj.bonds_from.startswith("guessed")
    got, want = traj[0].molecule_positions(1), urea_frame.molecule_positions(1)
    np.testing.assert_allclose(got[:, [0, 1, 2, 5]], want[:, [0, 1, 2, 5]], atol=6e-3)
    # each H is bonded to its own N
    for n, hs in ((2, [3, 4]), (5, [6, 7])):
        assert np.all(np.linalg.norm(got[:, hs] - got[:, [n]], axis=2) < 1.1)


@pytest.mark.parametrize("suffix, topology, tolerance", [("xtc", "gro", 6e-3), ("trr", "gro", 6e-3), ("dcd", "pdb", 6e-4)])
def test_trajectories_with_a_topology(tmp_path, urea_frame, suffix, topology, tolerance):
    spec = load_spec("urea")
    u = universe_from_frame(urea_frame, spec.atom_names)
    top = write(u, tmp_path / f"top.{topology}")
    path = write(u, tmp_path / f"traj.{suffix}", n_frames=5)
    traj = Trajectory(path, spec, topology=top)
    assert len(traj) == 5 and traj.atom_order == "name"
    frames = list(Trajectory(path, spec, topology=top, start=1, stop=5, step=2))
    assert len(frames) == 2
    if suffix != "dcd":  # DCD stores no times
        assert [f.time for f in frames] == pytest.approx([2.0, 6.0])
    np.testing.assert_allclose(frames[0].positions[frames[0].molecules], urea_frame.positions[urea_frame.molecules] + 0.01, atol=tolerance)
    with pytest.raises(TrajectoryError, match=rf"traj.{suffix}: a {suffix.upper()} file holds coordinates only; give topology="):
        Trajectory(path, spec)


def test_xyz_cluster_or_with_dimensions(tmp_path, urea_frame):
    spec = load_spec("urea")
    u = universe_from_frame(urea_frame, ["C", "O", "N", "H", "H", "N", "H", "H"])
    path = write(u, tmp_path / "urea.xyz")
    traj = Trajectory(path, spec)
    assert traj.molecules_from == "blocks" and traj.atom_order == "position"
    assert traj[0].box is None and traj.molecules.shape == (432, 8)
    boxed = Trajectory(path, spec, dimensions=urea_frame.box)[0]
    assert np.array_equal(boxed.box, urea_frame.box)
    np.testing.assert_allclose(boxed.positions[boxed.molecules], urea_frame.positions[urea_frame.molecules], atol=1e-4)
    assert read_frame(path, spec, dimensions=urea_frame.box, periodic=False).box is None
    with pytest.raises(TrajectoryError, match="dimensions: a box is"):
        Trajectory(path, spec, dimensions=[1, 2, 3])
    with pytest.raises(TrajectoryError, match="3456 atoms are not a whole number of nicotinamide molecules"):
        Trajectory(path, "nicotinamide")
    with pytest.raises(TrajectoryError, match="frame 3 out of range"):
        read_frame(path, spec, index=3)


def test_nicotinamide_pdb_without_residues_and_bond_order(reference_dir):
    """A CSD cell: one residue, CSD atom names; contiguous blocks in spec order."""
    traj = Trajectory(reference_dir / "nicotinamide" / "NICOAM08.pdb", "nicotinamide")
    assert traj.molecules_from == "blocks" and traj.atom_order == "position" and traj.molecules.shape == (4, 15)
    # the same by bond graph (CONECT records), elements only: C3/C6/C7/N7 are all distinguishable
    bonded = Trajectory(reference_dir / "nicotinamide" / "NICOAM08.pdb", "nicotinamide", atom_order="bonds")
    assert bonded.bonds_from == "topology"
    assert np.array_equal(bonded.molecules[:, :9], traj.molecules[:, :9])


def test_lammps_data_interface_by_bonds_with_pinned_types(reference_dir):
    path = reference_dir / "urea" / "formI_formIV_interface.data"
    with pytest.raises(TrajectoryError, match="cannot tell N1, N2 of urea apart"):
        Trajectory(path, "urea")
    traj = Trajectory(path, "urea", name_map={"4": "N1", "5": "N2"})
    assert traj.atom_order == "bonds" and traj.bonds_from == "topology" and traj.molecules.shape == (1200, 8)
    types = traj.universe.atoms.types[traj.atoms.indices]
    assert set(types[traj.molecules[:, 2]]) == {"4"} and set(types[traj.molecules[:, 5]]) == {"5"}
    frame = traj[0]
    lengths = np.linalg.norm(frame.vectors([(1, 2), (1, 3), (1, 6), (3, 4), (3, 5), (6, 7), (6, 8)]), axis=2)
    assert np.all((lengths > 0.85) & (lengths < 1.5))  # an MD snapshot: N-H 0.94-1.10, C-N 1.26-1.40


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_file_and_problem(tmp_path, urea_dump, reference_dir):
    with pytest.raises(TrajectoryError, match=r"nothere.gro: file not found"):
        Trajectory(tmp_path / "nothere.gro", "urea")
    odd = tmp_path / "frame.foo"
    odd.write_text("hello\n")
    with pytest.raises(TrajectoryError, match=r"frame.foo: cannot read it .*Supported: LAMMPS data"):
        Trajectory(odd, "urea")
    with pytest.raises(TrajectoryError, match=r"formI_6x6x6_molstruc.dump: cannot tell the atoms' elements.*give type_elements"):
        Trajectory(urea_dump, "urea")
    with pytest.raises(TrajectoryError, match=r"residues \(molecules\) do not all have the 15 atoms of a nicotinamide molecule \(resid 1 has 8 atoms"):
        Trajectory(urea_dump, "nicotinamide", type_elements=UREA_TYPES)
    with pytest.raises(TrajectoryError, match=r"selection 'resid 99999' matches no atoms"):
        Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, selection="resid 99999")
    with pytest.raises(TrajectoryError, match="invalid selection 'resid 1 and garbage'"):
        Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, selection="resid 1 and garbage")
    with pytest.raises(TrajectoryError, match=r"molecule 0 atom 1 \(C\) is N, spec urea expects C \(432 of 432 molecules differ"):
        Trajectory(urea_dump, "urea", type_elements="1:H,2:O,3:N,4:C", atom_order="position")
    with pytest.raises(TrajectoryError, match=r"atom types 4 are not in the type-element mapping"):
        Trajectory(urea_dump, "urea", type_elements="1:H,2:O,3:C")
    with pytest.raises(TrajectoryError, match=r"molecule 0 has atom types \(no names in the file\) 3, 2, 4, 1, 1, 4, 1, 1, spec urea has C, O"):
        Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, atom_order="name")
    with pytest.raises(TrajectoryError, match="name_map maps onto NX, which spec urea does not have"):
        Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, name_map={"4": "NX"})
    with pytest.raises(TrajectoryError, match="molecules must be 'auto', 'residues' or 'blocks'"):
        Trajectory(urea_dump, "urea", molecules="chains")
    # a selection that splits residues
    with pytest.raises(TrajectoryError, match=r"resid 1 has 4 atoms"):
        Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, selection="index 0:3 or resid 2")
    # blocks across a residue file where the order is already right: same molecules as residues
    blocks = Trajectory(urea_dump, "urea", type_elements=UREA_TYPES, molecules="blocks")
    assert blocks.molecules_from == "blocks"
