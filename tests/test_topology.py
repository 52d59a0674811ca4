"""molenv.topology: the one bulk/surface rule. The counting step against brute force, the rule
against a hand count on a toy, and featurize's topology labels (what the GNN learns) equal to
`molenv classify`'s core/surface split molecule by molecule on the committed urea cluster."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from MDAnalysis.lib.mdamath import triclinic_box

from _analysis_support import md_files, run_cli
from molenv.descriptors import DescriptorError
from molenv.frames import MolecularFrame, box_matrix, perpendicular_heights, reduced_basis
from molenv.topology import CN_OFFSET, CN_THRESHOLD, TopologyRule, complete_environment, coordination_numbers, molecule_radius
from test_descriptors import CELLS, random_system

REPO = Path(__file__).resolve().parent.parent


def test_coordination_numbers_and_radius():
    frame, whole = random_system(CELLS["triclinic"], seed=8)
    centres = whole[:, 1]
    # cluster: brute force, self counted
    cluster = frame.replace(positions=whole.reshape(-1, 3), box=None)
    d = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    assert np.array_equal(coordination_numbers(cluster, 2, 6.5), (d <= 6.5).sum(axis=1))
    assert np.array_equal(coordination_numbers(cluster, 2, 0.0), np.ones(30))
    radii = np.linspace(3, 9, 30)
    assert np.array_equal(coordination_numbers(cluster, 2, radii), (d <= radii[:, None]).sum(axis=1))
    # periodic, radius beyond half the cell: every image in the sphere counts
    shifts = np.array(list(itertools.product(range(-3, 4), repeat=3))) @ box_matrix(frame.box)
    images = (centres[None, :, None, :] + shifts[None, None]) - centres[:, None, None, :]
    expected = (np.linalg.norm(images, axis=3) <= 11.0).sum(axis=(1, 2))
    assert np.array_equal(coordination_numbers(frame, 2, 11.0), expected)
    # molecule radius with atoms wrapped apart
    expected = np.linalg.norm(whole - whole[:, 1:2], axis=2).max(axis=1)
    np.testing.assert_allclose(molecule_radius(frame, 2), expected, rtol=1e-12)
    with pytest.raises(DescriptorError, match="radius must be"):
        coordination_numbers(frame, 2, -1.0)


def grid_frame(box=None) -> MolecularFrame:
    """4 x 4 x 4 two-atom molecules, centres (atom 1) on a simple cubic grid of 4 A; every
    molecule's second atom 0.4 A from its centre, except molecule 0's: 2.5 A."""
    centres = np.array(list(itertools.product(range(4), repeat=3)), dtype=np.float64) * 4.0 + 0.5
    others = centres + [0.4, 0.0, 0.0]
    others[0] = centres[0] + [0.0, 1.5, 2.0]  # 2.5 A
    positions = np.stack([centres, others], axis=1).reshape(-1, 3)
    return MolecularFrame(positions, box, np.arange(128).reshape(64, 2), np.tile([6, 1], 64))


def test_rule_by_hand():
    """The published numbers, and one radius for the whole frame: the largest (2.5 A), so
    every molecule counts centres within 8.5 A, i.e. grid offsets n with |n|^2 <= 4."""
    assert (CN_OFFSET, CN_THRESHOLD) == (6.0, 20)
    rule = TopologyRule()
    frame = grid_frame()
    assert rule.frame_radius(frame, 1) == pytest.approx(2.5, abs=1e-12)
    cn = rule.coordination(frame, 1).reshape(4, 4, 4)
    # corner: itself, 3 at |n|^2 = 1, 3 at 2, 1 at 3, 3 at 4 (offset 2 along an axis)
    assert cn[0, 0, 0] == 1 + 3 + 3 + 1 + 3 == 11
    # (1, 1, 1): offsets -1..2 per axis: itself, 6 at 1, 12 at 2, 8 at 3, 3 at 4 (+2 only)
    assert cn[1, 1, 1] == 1 + 6 + 12 + 8 + 3 == 30
    # face (1, 1, 0): itself, 5 at 1, 8 at 2, 4 at 3, 3 at 4; edge (1, 0, 0): 1 + 4 + 5 + 2 + 3
    assert cn[1, 1, 0] == 21 and cn[1, 0, 0] == 15
    surface = rule.surface(cn)
    assert surface[0, 0, 0] and surface[1, 0, 0] and not surface[1, 1, 0] and not surface[1, 1, 1]
    assert surface.sum() == 8 + 24  # corners and edges
    # with molecule (1, 1, 1)'s own radius (0.4 A) it would count 1 + 6 + 12 = 19 < 20: the
    # rule is the frame's radius, as featurize's labels and the authors' code
    assert coordination_numbers(frame, 1, 0.4 + CN_OFFSET)[21] == 19
    # a fixed radius replaces the frame's
    assert TopologyRule(radius=0.4).coordination(frame, 1).reshape(4, 4, 4)[1, 1, 1] == 19
    # periodic (16 A cell): every molecule sees the infinite lattice, 1 + 6 + 12 + 8 + 6 = 33
    periodic = grid_frame(np.array([16.0, 16.0, 16.0, 90.0, 90.0, 90.0]))
    assert np.all(rule.coordination(periodic, 1) == 33) and not rule.surface(rule.coordination(periodic, 1)).any()


def test_complete_environment():
    """A cluster: a ball of molecules on a 4 A grid (radius 14 A); the molecules whose
    centre lies 6 A or more inside its radius (that of a uniform sphere with the same median
    centre distance) have a complete 6 A sphere; one evaporated molecule far away changes
    nothing. Every molecule of a periodic frame."""
    grid = np.array(list(itertools.product(range(-4, 5), repeat=3)), dtype=np.float64) * 4.0
    centres = grid[np.linalg.norm(grid, axis=1) <= 14.0]
    n = len(centres)
    frame = MolecularFrame(np.stack([centres, centres + [0.4, 0, 0]], axis=1).reshape(-1, 3), None, np.arange(2 * n).reshape(n, 2),
                           np.tile([6, 1], n))
    distance = np.linalg.norm(centres, axis=1)
    radius = np.median(distance) / 0.5 ** (1 / 3)
    assert 13.0 < radius < 15.0
    inner = complete_environment(frame, 1, 6.0)
    assert np.array_equal(inner, distance <= radius - 6.0) and 0 < inner.sum() < n / 4
    assert not complete_environment(frame, 1, 20.0).any()
    far = np.concatenate([centres, [[200.0, 0, 0]]])
    evaporated = MolecularFrame(np.stack([far, far + [0.4, 0, 0]], axis=1).reshape(-1, 3), None, np.arange(2 * (n + 1)).reshape(n + 1, 2),
                                np.tile([6, 1], n + 1))
    assert np.array_equal(complete_environment(evaporated, 1, 6.0), np.append(inner, False))
    periodic = grid_frame(np.array([16.0, 16.0, 16.0, 90.0, 90.0, 90.0]))
    assert complete_environment(periodic, 1, 6.0).all()


def test_featurize_labels_equal_classify_split(tmp_path):
    """The committed urea form I cluster: `molenv featurize`'s topology labels (the GNN's
    training labels) and `molenv classify`'s core/surface split agree for every molecule of
    every frame. Read from a copy: MDAnalysis writes offset files next to an XTC it reads."""
    from molenv.analysis import ClassificationResult, surface_mask
    from molenv.featurize import Source, featurize

    model = REPO / "models" / "urea_sf.molenv"
    if not model.is_file():
        pytest.skip("models/urea_sf.molenv not found")
    xtc, pdb = (Path(shutil.copy(f, tmp_path)) for f in md_files("urea-I-cluster-100K"))
    source = Source("cluster", xtc, "I", topology=pdb, system="cluster", split="test", reader={"stop": 3})
    dataset = featurize([source], "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    labels = dataset.arrays("cluster")
    assert run_cli(["classify", "--model", model, "-t", xtc, "--topology", pdb, "--stop", 3, "--no-pbc",
                    "--no-plot", "--no-progress", "--out", tmp_path / "classified"]) == 0
    result = ClassificationResult.load(tmp_path / "classified" / "molecules.npz")
    assert result.coordination.shape == labels["topology"].shape == (3, 188)
    assert np.array_equal(result.coordination, labels["cn"])
    assert np.array_equal(surface_mask(result), labels["topology"] == 1)
    assert 0 < labels["topology"].sum() < labels["topology"].size  # both kinds present


@pytest.mark.parametrize("skewed", [False, True], ids=["triclinic", "skewed"])
@pytest.mark.parametrize("size", [2.5, 0.8], ids=["large-cell", "radius-beyond-cell"])
def test_coordination_numbers_equal_brute_force(skewed, size):
    """Every periodic image of every centre within the radius counted, on random triclinic
    cells (smallest height `size` x the radius), molecules wrapped apart over the boundary."""
    from test_frames import brute_shift_pairs, random_cell

    rng = np.random.default_rng(int(10 * size) + 100 * skewed)
    radius = 9.0
    for _ in range(3):
        matrix = random_cell(rng, skewed)
        matrix *= size * radius / perpendicular_heights(reduced_basis(matrix)).min()
        frame, whole = random_system(triclinic_box(*matrix).astype(np.float64), n_molecules=int(rng.integers(5, 30)), seed=int(rng.integers(1000)))
        expected = np.ones(frame.n_molecules, dtype=np.int64)
        for i, *_ in brute_shift_pairs(frame.centres(2), box_matrix(frame.box), radius):
            expected[i] += 1
        assert np.array_equal(coordination_numbers(frame, 2, radius), expected)
        assert expected.max() > 1
