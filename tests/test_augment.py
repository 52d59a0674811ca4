"""Thermal augmentation (molenv.augment, `molenv featurize --augment-temperature`): the
rigid-molecule fluctuations it measures are those it was given, the harmonic warming, rigid
motion keeps molecules rigid across periodic images, expansion stretches the lattice and
not the molecules, and featurize's warmed companion
sources (which sources, their split, descriptors, record, reproducibility)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from molenv.augment import RigidFluctuations, cluster_fluctuations, expanded, per_molecule, rigid_fluctuations, rigid_motion, warmed_frames, warming
from molenv.cli import main
from molenv.dataset import SPLITS, DatasetError, open_dataset
from molenv.descriptors import compute_descriptors
from molenv.featurize import featurize, sources_from_manifest
from molenv.trajectory import Trajectory

from conftest import REPO

DATA = REPO / "data" / "urea"
TRAIN = SPLITS.index("train")


@pytest.fixture(scope="module")
def crystal_frame():
    """The first frame of the committed urea form I crystal at 100 K (160 molecules)."""
    if not (DATA / "urea-I-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    return Trajectory(DATA / "urea-I-100K.xtc", "urea", topology=DATA / "urea-I-100K.pdb.gz")[0]


@pytest.fixture(scope="module")
def cluster_frame():
    """The first frame of the committed urea form I cluster at 100 K (no box), with flags for
    its outer third of molecules (farthest from the centre) as "surface" ones."""
    if not (DATA / "urea-I-cluster-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    frame = Trajectory(DATA / "urea-I-cluster-100K.xtc", "urea", topology=DATA / "urea-I-cluster-100K.pdb.gz")[0]
    assert frame.box is None
    centroids = frame.molecule_positions(1).mean(axis=1)
    distance = np.linalg.norm(centroids - centroids.mean(axis=0), axis=1)
    return frame, distance > np.quantile(distance, 2 / 3)


def intramolecular_distances(frame):
    whole = frame.molecule_positions(1)
    return np.linalg.norm(whole[:, :, None, :] - whole[:, None, :, :], axis=-1)


def test_rigid_fluctuations_measure_the_motion_given(crystal_frame):
    """Frames made from one frame by rigid motion of known widths: the measured widths are
    those, up to the mean that the measurement removes (a factor sqrt(1 - 1/F)) and sampling."""
    rng = np.random.default_rng(1)
    n_frames, translation, rotation = 25, 0.12, 3.5
    frames = [rigid_motion(crystal_frame, translation, rotation, rng) for _ in range(n_frames)]
    measured = rigid_fluctuations(frames)
    expected = math.sqrt(1 - 1 / n_frames)
    assert measured.translation == pytest.approx(translation * expected, rel=0.04)
    assert measured.rotation == pytest.approx(rotation * expected, rel=0.04)
    # a frame repeated has none
    still = rigid_fluctuations([crystal_frame] * 3)
    assert still.translation < 1e-6 and still.rotation < 1e-4


def test_rigid_fluctuations_ignore_the_cell_drift_and_periodic_wrapping(crystal_frame):
    """Shifting the whole crystal, or a molecule by a lattice vector, is no fluctuation."""
    box = crystal_frame.box_matrix()
    shifted = crystal_frame.replace(positions=crystal_frame.positions + [0.7, -0.3, 1.1])
    wrapped_positions = crystal_frame.positions.copy()
    wrapped_positions[crystal_frame.molecules[3]] += box[0]
    wrapped = crystal_frame.replace(positions=wrapped_positions)
    measured = rigid_fluctuations([crystal_frame, shifted, wrapped])
    assert measured.translation < 1e-5 and measured.rotation < 1e-3


def test_cluster_fluctuations_measure_the_motion_given_per_group(cluster_frame):
    """A cluster moved by rigid molecule motion of different widths for core and surface
    molecules, and as a whole (drift and turn, which are no fluctuation), every frame: the
    robust widths measured per group are those given, up to the removed mean and sampling;
    a molecule that jumps by 90 degrees in a third of the frames barely changes them."""
    from scipy.spatial.transform import Rotation

    frame, surface = cluster_frame
    assert 0 < surface.sum() < len(surface)
    rng = np.random.default_rng(2)
    n_frames, given = 25, {"core": RigidFluctuations(0.1, 3.0), "surface": RigidFluctuations(0.2, 6.0)}
    motion = per_molecule(given, surface)
    frames = []
    for k in range(n_frames):
        moved = rigid_motion(frame, motion.translation, motion.rotation, rng)
        whole_turn = Rotation.from_rotvec(rng.normal(size=3) * 0.5)
        positions = whole_turn.apply(moved.positions - moved.positions.mean(axis=0)) + rng.normal(size=3) * 5.0
        if k % 3 == 0:  # one core molecule turned about its centroid by 90 degrees
            m = frame.molecules[np.flatnonzero(~surface)[0]]
            centre = positions[m].mean(axis=0)
            positions[m] = Rotation.from_rotvec([0.0, 0.0, np.pi / 2]).apply(positions[m] - centre) + centre
        frames.append(moved.replace(positions=positions))
    measured = cluster_fluctuations(frames, surface)
    expected = math.sqrt(1 - 1 / n_frames)
    for group in ("core", "surface"):
        assert measured[group].translation == pytest.approx(given[group].translation * expected, rel=0.08)
        assert measured[group].rotation == pytest.approx(given[group].rotation * expected, rel=0.08)
    # spread back to the molecules
    spread = per_molecule(measured, surface)
    assert spread.rotation[surface] == pytest.approx(measured["surface"].rotation)
    assert spread.translation[~surface] == pytest.approx(measured["core"].translation)
    # a group without molecules takes the other's widths; the flags must match the molecules
    everyone = cluster_fluctuations(frames, np.zeros_like(surface))
    assert everyone["surface"] == everyone["core"]
    with pytest.raises(ValueError, match="one surface flag per molecule"):
        cluster_fluctuations(frames, surface[:-1])


def test_rigid_motion_per_molecule_widths(cluster_frame):
    """Widths of zero leave a molecule where it is; the others move."""
    frame, surface = cluster_frame
    moved = rigid_motion(frame, np.where(surface, 0.3, 0.0), np.where(surface, 10.0, 0.0), np.random.default_rng(0))
    core_atoms, surface_atoms = frame.molecules[~surface].ravel(), frame.molecules[surface].ravel()
    assert np.allclose(moved.positions[core_atoms], frame.positions[core_atoms], atol=1e-12)
    assert not np.allclose(moved.positions[surface_atoms], frame.positions[surface_atoms])
    assert moved.box is None


def test_rigid_motion_keeps_molecules_rigid(crystal_frame):
    moved = rigid_motion(crystal_frame, 0.3, 10.0, np.random.default_rng(0))
    assert np.allclose(intramolecular_distances(moved), intramolecular_distances(crystal_frame), atol=1e-9)
    assert not np.allclose(moved.positions, crystal_frame.positions)
    assert np.array_equal(moved.box, crystal_frame.box)


def test_warming_is_harmonic():
    at_100 = RigidFluctuations(0.1, 3.0)
    warm = warming(at_100, 100.0, 350.0)
    # total variance at 350 K = 3.5 x that at 100 K
    assert at_100.translation**2 + warm.translation**2 == pytest.approx(3.5 * at_100.translation**2)
    assert at_100.rotation**2 + warm.rotation**2 == pytest.approx(3.5 * at_100.rotation**2)
    for target in (100.0, 50.0):
        with pytest.raises(ValueError, match="must lie above the crystal's"):
            warming(at_100, 100.0, target)


def test_expanded_stretches_the_lattice_not_the_molecules(crystal_frame, cluster_frame):
    stretched = expanded(crystal_frame, 0.02)
    assert np.allclose(stretched.box[:3], 1.02 * crystal_frame.box[:3]) and np.array_equal(stretched.box[3:], crystal_frame.box[3:])
    before, after = crystal_frame.molecule_positions(1), stretched.molecule_positions(1)
    # each molecule moved rigidly (its atoms relative to its centroid unchanged) ...
    assert np.allclose(after - after.mean(axis=1, keepdims=True), before - before.mean(axis=1, keepdims=True), atol=1e-9)
    # ... and the centre-centre distances within the cell grew by 2 % (the fractional coordinates of the centroids kept)
    fractional = [np.linalg.solve(f.box_matrix().T, m.mean(axis=1).T).T for f, m in ((crystal_frame, before), (stretched, after))]
    assert np.allclose(fractional[0], fractional[1], atol=1e-9)
    with pytest.raises(ValueError, match="no cell"):
        expanded(cluster_frame[0], 0.02)


def test_warmed_frames_copy_after_copy(crystal_frame):
    frames = [crystal_frame, crystal_frame.replace(time=5.0)]
    warm = warmed_frames(frames, RigidFluctuations(0.1, 2.0), 3, np.random.default_rng(0))
    assert [f.time for f in warm] == [crystal_frame.time, 5.0] * 3
    assert not np.allclose(warm[0].positions, warm[2].positions)  # each copy its own motion
    with pytest.raises(ValueError, match="copies must be >= 1"):
        warmed_frames(frames, RigidFluctuations(0.1, 2.0), 0, np.random.default_rng(0))


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """Urea I and IV at 100 K, the melt and I at 200 K (6 frames each), augmented to 200 K."""
    names = ["urea-I-100K", "urea-IV-100K", "urea-melt-350K", "urea-I-200K"]
    if not all((DATA / f"{n}.xtc").is_file() for n in names):
        pytest.skip("no urea MD data")
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for s in sources:
        s.reader.update(stop=12, step=2)
    out = tmp_path_factory.mktemp("augment")
    return sources, featurize(sources, "urea", out / "ds", progress=False, augment_temperature=200.0, augment_copies=2, log=lambda *a: None)


def test_featurize_adds_warmed_training_crystals(augmented):
    sources, ds = augmented
    names = ds.source_names
    # the two 100 K crystals get a companion; the melt and the 200 K (test) crystal do not
    assert [n for n in names if "warmed" in n] == ["urea-I-100K-warmed-200K", "urea-IV-100K-warmed-200K"]
    for form in ("I", "IV"):
        entry = next(s for s in ds.sources if s["name"] == f"urea-{form}-100K-warmed-200K")
        original = ds.arrays(f"urea-{form}-100K")
        warm = ds.arrays(entry["name"])
        n_train = int((original["split"] == TRAIN).sum())
        assert entry["split"] == "train" and entry["label"] == form and entry["frames"] == {"train": 2 * n_train, "val": 0, "test": 0}
        assert (warm["split"] == TRAIN).all() and (warm["labels"] == ds.classes.index(form)).all()
        record = entry["augmentation"]
        assert record["of"] == f"urea-{form}-100K" and record["target_K"] == 200.0 and record["copies"] == 2
        assert record["added"]["translation_A"] == pytest.approx(record["measured"]["translation_A"])  # sqrt(200 / 100 - 1) = 1
        assert 0 < record["measured"]["translation_A"] < 0.5 and 0 < record["measured"]["rotation_deg"] < 20
        # the stored descriptors are those of the stored (warmed) positions
        frame = ds.frame(entry["name"], 3)
        assert np.array_equal(warm["features"][3], compute_descriptors(frame, ds.descriptor_set))
        # copies of the training frames, moved: same molecules, not the same positions
        assert np.array_equal(warm["molecules"], original["molecules"])
        assert not np.allclose(warm["positions"][0], original["positions"][0])
    # the training counts include them
    n_mol = {s["name"]: s["n_molecules"] for s in ds.sources}
    train_I = sum(int((ds.arrays(n)["split"] == TRAIN).sum()) * n_mol[n] for n in ("urea-I-100K", "urea-I-100K-warmed-200K"))
    assert ds.manifest["counts"]["train"]["I"] == train_I


def test_featurize_warms_clusters_when_asked(tmp_path):
    """augment_clusters: the training cluster gets a warmed companion (per group record, no
    box); without it clusters are left as they are. augment_expansion stretches the warmed
    crystals only."""
    names = ["urea-I-100K", "urea-I-cluster-100K", "urea-melt-350K"]
    if not all((DATA / f"{n}.xtc").is_file() for n in names):
        pytest.skip("no urea MD data")
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for s in sources:
        s.reader.update(stop=12, step=2)
    plain = featurize(sources, "urea", tmp_path / "plain", progress=False, augment_temperature=200.0, log=lambda *a: None)
    assert [n for n in plain.source_names if "warmed" in n] == ["urea-I-100K-warmed-200K"]
    ds = featurize(sources, "urea", tmp_path / "ds", progress=False, augment_temperature=200.0, augment_clusters=True, log=lambda *a: None)
    assert [n for n in ds.source_names if "warmed" in n] == ["urea-I-100K-warmed-200K", "urea-I-cluster-100K-warmed-200K"]
    entry = next(s for s in ds.sources if s["name"] == "urea-I-cluster-100K-warmed-200K")
    record = entry["augmentation"]
    assert not entry["periodic"] and set(record["measured"]) == {"core", "surface"}
    assert record["molecules"]["core"] + record["molecules"]["surface"] == entry["n_molecules"]
    for group in ("core", "surface"):
        assert 0 < record["measured"][group]["translation_A"] < 0.5 and 0 < record["measured"][group]["rotation_deg"] < 20
        assert record["added"][group]["rotation_deg"] == pytest.approx(record["measured"][group]["rotation_deg"])  # sqrt(200 / 100 - 1)
    assert record["measured"]["surface"]["rotation_deg"] > record["measured"]["core"]["rotation_deg"]
    warm = ds.arrays(entry["name"])
    assert np.isnan(warm["boxes"]).all() and (warm["split"] == TRAIN).all()
    frame = ds.frame(entry["name"], 1)
    assert frame.box is None
    assert np.array_equal(warm["features"][1], compute_descriptors(frame, ds.descriptor_set))

    # augment_expansion stretches the warmed crystal's cells (not the cluster, which has none) and says so
    stretched = featurize(sources, "urea", tmp_path / "stretched", progress=False, augment_temperature=200.0, augment_clusters=True,
                          augment_expansion=0.02, log=lambda *a: None)
    original = stretched.arrays("urea-I-100K")
    warm = stretched.arrays("urea-I-100K-warmed-200K")
    train_boxes = original["boxes"][original["split"] == TRAIN]
    assert np.allclose(warm["boxes"][:, :3], 1.02 * train_boxes[:, :3]) and np.array_equal(warm["boxes"][:, 3:], train_boxes[:, 3:])
    records = {s["name"]: s["augmentation"] for s in stretched.sources if "augmentation" in s}
    assert records["urea-I-100K-warmed-200K"]["expansion"] == 0.02 and "expansion" not in records["urea-I-cluster-100K-warmed-200K"]
    assert np.array_equal(stretched.arrays("urea-I-cluster-100K-warmed-200K")["positions"], ds.arrays("urea-I-cluster-100K-warmed-200K")["positions"])
    with pytest.raises(DatasetError, match="augment_expansion stretches the warmed copies of thermal augmentation: give augment_temperature too"):
        featurize(sources, "urea", tmp_path / "no", progress=False, augment_expansion=0.02, log=lambda *a: None)


def test_augmentation_is_reproducible_and_seeded(augmented, tmp_path):
    sources, ds = augmented
    again = featurize(sources, "urea", tmp_path / "again", progress=False, augment_temperature=200.0, augment_copies=2, log=lambda *a: None)
    other = featurize(sources, "urea", tmp_path / "other", progress=False, augment_temperature=200.0, augment_copies=2, seed=1, log=lambda *a: None)
    name = "urea-I-100K-warmed-200K"
    assert np.array_equal(again.arrays(name)["positions"], ds.arrays(name)["positions"])
    assert not np.array_equal(other.arrays(name)["positions"], ds.arrays(name)["positions"])


def test_featurize_command_augment_temperature(tmp_path, capsys):
    if not (DATA / "urea-IV-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    args = ["featurize", "--manifest", str(REPO / "data" / "manifest.json"), "--molecule", "urea", "--only", "urea-I-100K", "urea-melt-350K",
            "--stop", "6", "--out", str(tmp_path / "ds"), "--no-progress", "--augment-temperature", "150"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0, capsys.readouterr().err
    ds = open_dataset(tmp_path / "ds")
    entry = next(s for s in ds.sources if s["name"] == "urea-I-100K-warmed-150K")
    assert entry["augmentation"]["copies"] == 1 and "--augment-temperature 150" in ds.manifest["command"]
    assert "urea-I-100K-warmed-150K" in capsys.readouterr().out
    # a bad temperature is refused by the option
    with pytest.raises(SystemExit) as exit_:
        main(args[:-1] + ["-5", "--overwrite"])
    assert exit_.value.code == 2


def test_augmentation_needs_the_crystals_temperature(tmp_path):
    """A training crystal of unknown temperature cannot be warmed: featurize says which."""
    from molenv.dataset import DatasetError
    from molenv.featurize import Source

    if not (DATA / "urea-IV-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    sources = [Source(n, DATA / f"{n}.xtc", label, None, topology=DATA / f"{n}.pdb.gz", split="train", reader={"stop": 4})
               for n, label in (("urea-I-100K", "I"), ("urea-IV-100K", "IV"))]
    with pytest.raises(DatasetError, match=r"source urea-I-100K \(.*urea-I-100K.xtc\): thermal augmentation needs its temperature"):
        featurize(sources, "urea", tmp_path / "ds", progress=False, augment_temperature=200.0, log=lambda *a: None)
    assert not (tmp_path / "ds").exists()


def test_featurize_relabels_turned_cluster_molecules(tmp_path):
    """relabel_turned: the molecules of a crystalline cluster that have turned by more than 35
    degrees since its first frame are labelled melt, frame by frame (the 200 K form I cluster:
    a third or more of them by the end), its warmed copies keep those labels, and the counts
    follow; periodic crystals and the melt are left as they are. Without a melt class it is
    refused."""
    from molenv.order import orientational_order, reoriented

    names = ["urea-I-100K", "urea-I-cluster-100K", "urea-melt-350K", "urea-I-cluster-200K"]
    if not all((DATA / f"{n}.xtc").is_file() for n in names):
        pytest.skip("no urea MD data")
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for s in sources:
        s.reader.update(step=8)
    ds = featurize(sources, "urea", tmp_path / "ds", progress=False, relabel_turned=True, augment_temperature=200.0, augment_clusters=True,
                   log=lambda *a: None)
    melt = ds.classes.index("melt")
    cluster = next(s for s in sources if s.name == "urea-I-cluster-200K")
    traj = Trajectory(cluster.trajectory, "urea", topology=cluster.topology, periodic=False, **cluster.reader)
    frames = list(traj)
    expected = np.array([reoriented(orientational_order(f, frames[0], traj.spec.vectors, centre=traj.spec.centre)) for f in frames])
    labels = ds.arrays("urea-I-cluster-200K")["labels"]
    assert np.array_equal(labels == melt, expected) and not expected[0].any() and expected[-1].mean() >= 0.3
    entry = next(s for s in ds.sources if s["name"] == "urea-I-cluster-200K")
    assert entry["relabelled"]["molecules"] == int(expected.sum())
    for name in ("urea-I-100K", "urea-melt-350K"):
        assert "relabelled" not in next(s for s in ds.sources if s["name"] == name)
        assert len(np.unique(ds.arrays(name)["labels"])) == 1
    # the warmed copies of the 100 K training cluster carry its training frames' labels
    cold = ds.arrays("urea-I-cluster-100K")
    assert np.array_equal(ds.arrays("urea-I-cluster-100K-warmed-200K")["labels"], cold["labels"][cold["split"] == TRAIN])
    # counts from the labels
    total = {c: 0 for c in ds.classes}
    for name in ds.source_names:
        a = ds.arrays(name)
        for c, n in zip(*np.unique(a["labels"][a["split"] == SPLITS.index("test")], return_counts=True)):
            total[ds.classes[c]] += int(n)
    assert {c: n for c, n in ds.manifest["counts"]["test"].items() if n} == {c: n for c, n in total.items() if n}
    with pytest.raises(DatasetError, match="relabel_turned labels the turned molecules of clusters melt, but melt is not among"):
        featurize([s for s in sources if s.label != "melt"], "urea", tmp_path / "no-melt", progress=False, relabel_turned=True, log=lambda *a: None)
