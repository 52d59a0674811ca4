"""`molenv simulate`'s systems with a spec whose centre is a centroid (docs/spec.md): the
crystal cell, supercell, cluster, melt expansion and interface place molecules by the
spec's centre (`molenv.crystals.molecule_centres`), here nicotinamide's ring centroid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molenv.crystals import box_vectors, cell_molecules, molecule_centres, read_crystal, supercell
from molenv.simulate.systems import at_density, cluster_system, crystal_system
from molenv.spec import load_spec

pytestmark = pytest.mark.reference

RING_SPEC = Path(__file__).parent / "data" / "specs" / "nicotinamide-ring.toml"


@pytest.fixture(scope="module")
def ring():
    spec = load_spec(RING_SPEC)
    assert isinstance(spec.centre, tuple) and len(spec.centre) == 6  # the ring centroid
    return spec


def test_molecule_centres_is_the_frames_centre(ring):
    rng = np.random.default_rng(3)
    molecules = rng.normal(size=(4, ring.atoms_per_molecule, 3))
    centroid = molecules[:, [a - 1 for a in ring.centre_atoms]].mean(axis=1)
    assert np.allclose(molecule_centres(molecules, ring), centroid, atol=1e-14)
    assert np.array_equal(molecule_centres(molecules, load_spec("nicotinamide")), molecules[:, 0])  # centre atom C3


def test_crystal_supercell_places_ring_centroids_in_the_cell(reference_dir, ring):
    structure = reference_dir / "nicotinamide" / "NICOAM13.cif"
    system = crystal_system(ring, structure)
    by_atom = crystal_system(load_spec("nicotinamide"), structure)
    assert system.n_molecules == by_atom.n_molecules == 144 and np.array_equal(system.dimensions, by_atom.dimensions)
    inverse = np.linalg.inv(box_vectors(system.dimensions))
    fractional = molecule_centres(system.positions, ring) @ inverse
    assert fractional.min() >= -1e-9 and fractional.max() < 1.0  # every centroid inside the supercell
    # the same molecules as placed by the centre atom C3, each moved by a whole cell vector
    shift = (system.positions - by_atom.positions) @ inverse * np.array(system.info["repeats"])
    assert np.allclose(shift, np.round(shift[:, :1]), atol=1e-9)
    assert np.any(np.round(shift[:, 0]) != 0)  # and the centroid placed some differently


def test_cluster_is_cut_by_the_ring_centroid(reference_dir, ring):
    structure = reference_dir / "nicotinamide" / "NICOAM13.cif"
    diameter = 16.0
    cluster = cluster_system(ring, structure, diameter=diameter)
    assert cluster.dimensions is None
    radius = np.linalg.norm(molecule_centres(cluster.positions, ring), axis=1)
    assert radius.max() <= diameter / 2
    # exactly the molecules of the crystal whose centroid lies within diameter/2 of the centre
    cell = cell_molecules(read_crystal(structure), ring)
    extent = float(np.max(np.linalg.norm(cell.positions - molecule_centres(cell.positions, ring)[:, None, :], axis=2)))
    sc = supercell(cell, min_height=diameter + 2 * extent + 2.0)
    origin = box_vectors(sc.dimensions).sum(axis=0) / 2
    inside = np.linalg.norm(molecule_centres(sc.positions, ring) - origin, axis=1) <= diameter / 2
    assert cluster.n_molecules == int(inside.sum()) > 2
    assert np.allclose(cluster.positions, sc.positions[inside] - origin)
    # the centre atom C3 would cut another cluster: the centroid is what decides
    by_c3 = np.linalg.norm(sc.positions[:, 0] - origin, axis=1) <= diameter / 2
    assert not np.array_equal(by_c3, inside)


def test_melt_expansion_scales_the_ring_centroids(reference_dir, ring):
    crystal = crystal_system(ring, reference_dir / "nicotinamide" / "NICOAM13.cif")
    expanded = at_density(crystal, 1.2)
    factor = expanded.info["expanded_by"]
    assert np.allclose(molecule_centres(expanded.positions, ring), molecule_centres(crystal.positions, ring) * factor, atol=1e-6)
    inner = lambda s: s.positions - molecule_centres(s.positions, ring)[:, None, :]  # noqa: E731
    assert np.allclose(inner(expanded), inner(crystal), atol=1e-9)  # rigid molecules
