"""molenv.order: orientational order, centre mobility, density and the melt check, on
constructed frames and on the committed MD data (data/README.md)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import REPO
from molenv.frames import MolecularFrame
from molenv.order import (MELT_MAX_ALIGNED, MELT_MIN_MSD, aligned_fraction, centre_msd, check_melt, density,
                          orientational_order)
from molenv.spec import load_spec
from molenv.trajectory import Trajectory


def data(name: str, **options) -> Trajectory:
    molecule = name.split("-")[0]
    path = REPO / "data" / molecule / f"{name}.xtc"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    return Trajectory(path, molecule, topology=path.with_suffix(".pdb.gz"), **options)


def dimers(orientations: np.ndarray, centres: np.ndarray, box=None, time: float = 0.0) -> MolecularFrame:
    """Two-atom molecules: atom 1 at the centre, atom 2 one A along the orientation."""
    positions = np.stack([centres, centres + orientations], axis=1).reshape(-1, 3)
    n = len(centres)
    return MolecularFrame(positions, box, np.arange(2 * n).reshape(n, 2), np.full(2 * n, 6), time)


AXIS = [(1, 2)]


def test_aligned_fraction_counts_molecule_pairs_of_one_orientation():
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 30, (40, 3))
    # two orientations, 20 molecules each (a flip is the same orientation): 2 x 190 of 780 pairs
    u = np.repeat([[1.0, 0, 0], [0, 1.0, 0]], 20, axis=0) * rng.choice([-1, 1], (40, 1))
    assert aligned_fraction(dimers(u, centres), AXIS) == pytest.approx(380 / 780)
    tilted = u.copy()
    tilted[0] = [np.cos(np.radians(30)), np.sin(np.radians(30)), 0]  # 30 degrees off: no longer counted with its 19
    assert aligned_fraction(dimers(tilted, centres), AXIS) == pytest.approx((380 - 19) / 780)
    isotropic = Rotation.random(400, random_state=2).apply([1.0, 0, 0])
    # P(|cos| >= cos 25) = 1 - cos 25 for random axes
    assert aligned_fraction(dimers(isotropic, rng.uniform(0, 30, (400, 3))), AXIS) == pytest.approx(1 - np.cos(np.radians(25)), abs=0.01)


def test_orientational_order_is_p2_and_removes_a_cluster_rotation():
    rng = np.random.default_rng(3)
    centres = rng.uniform(-10, 10, (30, 3))
    u = Rotation.random(30, random_state=4).apply([0, 0, 1.0])
    first = dimers(u, centres)
    turn = Rotation.from_euler("xyz", [40, -20, 70], degrees=True)
    turned = dimers(turn.apply(u), turn.apply(centres) + 5.0)
    assert orientational_order(turned, first, AXIS) == pytest.approx(np.ones((30, 1)))  # no box: the rotation is removed
    p2 = orientational_order(turned, first, AXIS, remove_rotation=False)
    cos = np.einsum("ij,ij->i", turn.apply(u), u)
    assert p2[:, 0] == pytest.approx(1.5 * cos**2 - 0.5)


def test_centre_msd_unwraps_across_the_box_and_removes_drift():
    box = np.array([10.0, 10.0, 10.0, 90, 90, 90])
    centres = np.array([[1.0, 5, 5], [5, 5, 5], [9, 5, 5]])
    u = np.tile([1.0, 0, 0], (3, 1))
    frames = []
    for k in range(5):
        here = centres.copy()
        here[0, 0] -= 1.5 * k  # molecule 0 walks through the face at x = 0
        here += 0.25 * k  # and all drift
        frames.append(dimers(u, here % 10.0, box, time=k))
    msd = centre_msd(frames, 1)
    # displacement of molecule 0 relative to the mean: -1.5 k + 0.5 k; the others +0.5 k
    assert msd == pytest.approx([(1.0**2 + 2 * 0.5**2) * k**2 / 3 for k in range(5)])


def test_density_of_a_frame():
    frame = data("urea-I-100K", stop=1)[0]
    assert density(frame) == pytest.approx(1.414, abs=0.01)  # data/README.md
    assert density(frame.replace(box=None)) is None


@pytest.mark.parametrize("name", ["urea-melt-350K", "nicotinamide-melt-350K"])
def test_committed_melts_pass_the_melt_check(name):
    traj = data(name)
    check = check_melt(traj, traj.spec.vectors, traj.spec.centre)
    assert check.melted, check.describe()
    assert check.aligned < MELT_MAX_ALIGNED / 2 and check.msd > 2 * MELT_MIN_MSD


@pytest.mark.parametrize("name", ["urea-I-200K", "urea-IV-100K", "nicotinamide-I-350K", "nicotinamide-II-350K", "nicotinamide-VII-350K"])
def test_crystals_fail_the_melt_check_on_both_criteria(name):
    traj = data(name)
    check = check_melt(traj, traj.spec.vectors, traj.spec.centre)
    assert not check.melted and check.ordered and check.immobile
    assert check.aligned > 3 * MELT_MAX_ALIGNED and check.msd < MELT_MIN_MSD / 2
    text = check.describe()
    assert "NOT melted" in text and "orientational order" in text and "mobility" in text and "A^2" in text


def test_melt_check_needs_two_frames():
    traj = data("urea-melt-350K", stop=1)
    with pytest.raises(ValueError, match="two frames or more"):
        check_melt(traj, traj.spec.vectors, traj.spec.centre)


def test_cluster_core_order_decays_at_200K():
    """The API for analysis: P2 of the molecules against the first frame, cluster rotation removed."""
    traj = data("urea-I-cluster-200K", periodic=False)
    spec = load_spec("urea")
    first = traj[0]
    p2 = [orientational_order(f, first, spec.vectors, centre=spec.centre).mean() for f in traj]
    assert p2[0] == pytest.approx(1.0) and p2[-1] < 0.8
