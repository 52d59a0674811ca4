"""The candidates of `molenv design` beyond atoms (molenv.design.geometry): rings from the bond
graph, ring and heavy-atom centroids, plane normals, and vectors the graph's symmetry only
reverses proposed sign-invariant; a designed spec that uses them written as TOML, read back by
molenv.spec and featurized, number for number, on real MD frames of urea and nicotinamide."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO
from test_faults import molenv_exit

from molenv.descriptors import compute_descriptors
from molenv.design import PoolSettings, resolve_molecule
from molenv.design.geometry import candidate_centres, candidate_vectors, graph_automorphisms, pair_cosines, rings, symmetry_of
from molenv.design.output import spec_toml
from molenv.design.samples import from_trajectory
from molenv.design.selection import candidate_pool
from molenv.frames import MolecularFrame
from molenv.spec import MoleculeSpec, load_spec

DATA = REPO / "data"
FIRST_FRAMES = {"urea": "urea/urea-I-100K", "nicotinamide": "nicotinamide/nicotinamide-I-100K"}
SECOND_FORM = {"urea": ("IV", "urea/urea-IV-100K"), "nicotinamide": ("II", "nicotinamide/nicotinamide-II-100K")}


def md_frames(molecule: str, n: int = 2):
    stem = DATA / FIRST_FRAMES[molecule]
    if not stem.with_suffix(".xtc").is_file():
        pytest.skip(f"the {molecule} MD data ({stem}.xtc) are not there")
    frames, _, _ = from_trajectory(load_spec(molecule), stem.with_suffix(".xtc"), f"{stem}.pdb.gz", max_frames=n, held_out_fraction=0.5)
    return frames


def by_label(candidates):
    return {c.label: c for c in candidates}


def test_rings_from_the_bond_graph():
    nicotinamide = load_spec("nicotinamide")
    assert rings(nicotinamide) == [tuple(nicotinamide.position(a) for a in ("C3", "C2", "N1", "C6", "C5", "C4"))]
    assert rings(load_spec("urea")) == []
    # fused rings: the two rings, not their ten-atom perimeter
    naphthalene = resolve_molecule("c1ccc2ccccc2c1")
    assert sorted(len(r) for r in rings(naphthalene)) == [6, 6]
    assert len(set(rings(naphthalene)[0]) & set(rings(naphthalene)[1])) == 2


def test_nicotinamide_ring_centroid_and_normals_are_candidates():
    spec = load_spec("nicotinamide")
    ring = tuple(spec.position(a) for a in ("C3", "C2", "N1", "C6", "C5", "C4"))
    centres = by_label(candidate_centres(spec))
    assert centres["ring(C3 C2 N1 C6 C5 C4)"].centre == ring and centres["ring(C3 C2 N1 C6 C5 C4)"].kind == "centroid"
    assert centres["heavy-atom centroid"].centre == tuple(range(1, 10))
    assert centres["C3"].centre == 1 and all(c.symmetry == "invariant" for c in centres.values())  # no atom of nicotinamide is equivalent

    frame = md_frames("nicotinamide")[0]
    vectors = by_label(candidate_vectors(spec, frame))
    assert len([v for v in vectors.values() if v.kind == "atoms"]) == 36  # every pair of the 9 heavy atoms
    ring_normal = vectors["(C3->C6)x(C2->C4)"]
    assert ring_normal.kind == "normal" and ring_normal.origin == "normal of ring C3 C2 N1 C6 C5 C4" and not ring_normal.sign_invariant
    amide_normal = vectors["(C7->C3)x(O7->N7)"]
    assert amide_normal.origin == "normal of the plane of C7 and its neighbours C3 O7 N7"
    # the ring normal is perpendicular to every in-ring vector of every molecule
    n = ring_normal.vectors(frame)
    for name in ("C3->N1", "C2->C5", "C3->C4"):
        v = vectors[name].vectors(frame)
        assert np.abs(np.einsum("ij,ij->i", n, v) / np.linalg.norm(n, axis=1) / np.linalg.norm(v, axis=1)).max() < 0.2


def test_urea_vectors_between_equivalent_atoms_are_sign_invariant():
    urea = load_spec("urea")
    frame = md_frames("urea")[0]
    vectors = by_label(candidate_vectors(urea, frame))
    n1n2, plane, o_n1, c_o = vectors["N1->N2"], vectors["(C->O)x(N1->N2)"], vectors["O->N1"], vectors["C->O"]
    assert (n1n2.symmetry, n1n2.sign_invariant, n1n2.relabelling) == ("reversed", True, "N1 <-> N2")
    assert "**sign-invariant** (cos^2): relabelling N1 <-> N2 reverses it" in n1n2.explained
    assert (plane.symmetry, plane.sign_invariant) == ("reversed", True)  # the molecular plane's normal flips with the labels
    assert (o_n1.symmetry, o_n1.sign_invariant) == ("convention", False) and "relies on the labelling convention" in o_n1.explained
    assert (c_o.symmetry, c_o.sign_invariant) == ("invariant", False)
    centres = by_label(candidate_centres(urea))
    assert centres["N1"].symmetry == "convention" and centres["heavy-atom centroid"].symmetry == "invariant"

    # what the flag claims: with N1 and N2 (and their H) swapped in half the molecules, cos^2
    # of N1->N2 over the pairs is the same, cos itself is not
    swapped_frame = swap_urea_labels(frame, np.arange(0, frame.n_molecules, 2))
    centre = centres["C"]
    assert np.allclose(pair_cosines([frame], centre, n1n2, 7.0), pair_cosines([swapped_frame], centre, n1n2, 7.0), atol=1e-12)
    from dataclasses import replace

    signed = replace(n1n2, sign_invariant=False)
    assert np.abs(pair_cosines([frame], centre, signed, 7.0) - pair_cosines([swapped_frame], centre, signed, 7.0)).max() > 0.5
    # the automorphism found is the swap of the two N
    assert graph_automorphisms(urea) == [{1: 1, 2: 2, 3: 6, 6: 3}]
    assert symmetry_of(c_o, graph_automorphisms(urea), frame) == ("invariant", None)


def swap_urea_labels(frame, molecules):
    """Urea's N1, H11, H12 and N2, H21, H22 exchanged in `molecules` (the same atoms, labelled the other way)."""
    positions = frame.positions.copy()
    n1_block, n2_block = [2, 3, 4], [5, 6, 7]
    for m in molecules:
        a, b = frame.molecules[m, n1_block], frame.molecules[m, n2_block]
        positions[a], positions[b] = frame.positions[b], frame.positions[a]
    return frame.replace(positions=positions)


def designed(spec: MoleculeSpec, centre, vectors, rc: float = 6.0) -> MoleculeSpec:
    """`spec` with a candidate centre and vectors and a small pool of functions, as the
    designer builds its result."""
    sign_invariant = tuple(k for k, v in enumerate(vectors, 1) if v.sign_invariant)
    functions = candidate_pool(PoolSettings(radial_step=1.0, radial_etas=(1.0,), kappa_step=3.0, radial_kappa_max=6.0, angular_points=3,
                                            angular_etas=(4.0,), angular_kappa_max=6.0), rc, 3.0, len(vectors), sign_invariant)
    return MoleculeSpec(name=spec.name, atom_names=spec.atom_names, elements=spec.elements, bonds=spec.bonds, centre=centre.centre,
                        vectors=[v.atoms for v in vectors], rmin=rc - 0.2, rmax=rc, functions=functions, smiles=spec.smiles,
                        charge_sets=spec.charge_sets, lennard_jones_sets=spec.lennard_jones_sets, sign_invariant=sign_invariant)


@pytest.mark.parametrize("molecule, centre, vectors, toml_lines", [
    ("urea", "heavy-atom centroid", ["C->O", "N1->N2", "(C->O)x(N1->N2)"],
     ['centre = ["C", "O", "N1", "N2"]', 'vectors = [["C", "O"], { atoms = ["N1", "N2"], sign_invariant = true }, '
                                         '{ normal = [["C", "O"], ["N1", "N2"]], sign_invariant = true }]']),
    ("nicotinamide", "ring(C3 C2 N1 C6 C5 C4)", ["(C3->C6)x(C2->C4)", "C7->N7"],
     ['centre = ["C3", "C2", "N1", "C6", "C5", "C4"]', 'vectors = [{ normal = [["C3", "C6"], ["C2", "C4"]] }, ["C7", "N7"]]']),
])
def test_written_spec_round_trips_and_featurizes(tmp_path, capsys, molecule, centre, vectors, toml_lines):
    spec = load_spec(molecule)
    frames = md_frames(molecule)
    candidates = by_label(candidate_vectors(spec, frames[0]))
    ours = designed(spec, by_label(candidate_centres(spec))[centre], [candidates[v] for v in vectors])
    path = tmp_path / "spec.toml"
    path.write_text(spec_toml(ours))
    text = path.read_text()
    for line in toml_lines:
        assert line in text
    back = load_spec(path)
    assert (back.centre, back.vectors, back.sign_invariant, back.rmin, back.rmax) == (ours.centre, ours.vectors, ours.sign_invariant, ours.rmin, ours.rmax)
    assert back.functions == ours.functions and back.charge_sets.keys() == spec.charge_sets.keys()
    assert back.descriptor_set().uses_richer_geometry
    for frame in frames:
        assert np.array_equal(compute_descriptors(frame, back.descriptor_set()), compute_descriptors(frame, ours.descriptor_set()))

    # featurize takes it as --molecule
    first, (label, second) = DATA / FIRST_FRAMES[molecule], SECOND_FORM[molecule]
    second = DATA / second
    code, _, err = molenv_exit(capsys, "featurize", "--molecule", path, "--out", tmp_path / "ds", "--no-progress", "--stop", "2",
                               "--trajectory", first.with_suffix(".xtc"), "--topology", f"{first}.pdb.gz", "--label", "I",
                               "--trajectory", second.with_suffix(".xtc"), "--topology", f"{second}.pdb.gz", "--label", label, "--split", "train")
    assert code == 0, err
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert len(manifest["descriptors"]["functions"]) == len(ours.functions)


def rdkit_frame(spec: MoleculeSpec, n_copies: int = 3) -> MolecularFrame:
    """`n_copies` of the spec's molecule (RDKit's embedded 3D structure of its SMILES, atoms in
    the spec's order) turned at random, no box."""
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from scipy.spatial.transform import Rotation


    mol = Chem.AddHs(Chem.MolFromSmiles(spec.smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    xyz = mol.GetConformer().GetPositions()
    n = len(xyz)
    turns = Rotation.random(n_copies, random_state=3).as_matrix()
    positions = np.concatenate([xyz @ r.T + 10.0 * k for k, r in enumerate(turns)])
    return MolecularFrame(positions, None, np.arange(n_copies * n).reshape(n_copies, n), np.tile([a.GetAtomicNum() for a in mol.GetAtoms()], n_copies))


@pytest.mark.parametrize("smiles, normal_symmetry", [
    ("c1ccccc1", "reversed"),  # benzene: a mirror relabelling of the ring reverses its normal
    ("Cc1ccccc1", "reversed"),  # toluene: the mirror through the methyl axis (ortho <-> ortho', meta <-> meta')
    ("c1ccc(cc1)-c1ccccc1", "convention"),  # biphenyl: exchanging the rings makes one ring's normal the other's
    ("c1ccncc1C(=O)N", "invariant"),  # nicotinamide from SMILES: no symmetry
])
def test_ring_normal_symmetry(smiles, normal_symmetry):
    spec = resolve_molecule(smiles)
    frame = rdkit_frame(spec)
    normals = [v for v in candidate_vectors(spec, frame) if v.origin.startswith("normal of ring")]
    assert len(normals) == len(rings(spec)) >= 1
    assert {v.symmetry for v in normals} == {normal_symmetry}
    assert all(v.sign_invariant == (normal_symmetry == "reversed") for v in normals)
    centroids = [c for c in candidate_centres(spec) if c.kind == "centroid"]
    assert {c.symmetry for c in centroids if c.label.startswith("ring")} == {"convention" if normal_symmetry == "convention" else "invariant"}
