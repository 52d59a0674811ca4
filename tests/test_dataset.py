"""Datasets (`molenv featurize`, molenv.dataset): labels, splits, cached descriptors,
provenance, the frame view the graph classifier reads, and the errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from molenv.cli import main
from molenv.constants import file_sha256
from molenv.dataset import SPLITS, DatasetError, open_dataset
from molenv.featurize import Source, assign_splits, featurize, sources_from_manifest
from molenv.spec import load_spec
from molenv.topology import TopologyRule
from molenv.trajectory import Trajectory, TrajectoryError

from conftest import REPO

TRAIN, VAL, TEST = range(3)


def source(name, label, temperature, system="crystal", split=None):
    return Source(name, REPO / "x.xtc", label, temperature, system=system, split=split)


def test_method_split_holds_out_melt_frames_and_keeps_validation_tails():
    sources = [source("I-100", "I", 100, split="train"), source("melt", "melt", 350, "melt", "train"), source("I-200", "I", 200, split="test")]
    codes = assign_splits(sources, [10, 10, 10], val_fraction=0.2, test_fraction=0.3)
    # form I has a test trajectory: its training run keeps only a trailing validation block
    assert codes[0].tolist() == [TRAIN] * 8 + [VAL] * 2
    # melt has none: its last 3 frames are held out for testing, validation before them
    assert codes[1].tolist() == [TRAIN] * 6 + [VAL] * 1 + [TEST] * 3
    assert codes[2].tolist() == [TEST] * 10


def test_method_split_from_temperature():
    sources = [source("I-100", "I", 100), source("IV-100", "IV", 100), source("I-200", "I", 200), source("c", "I", 100, "cluster"), source("m", "melt", 350, "melt")]
    codes = assign_splits(sources, [5] * 5, val_fraction=0.2, test_fraction=0.2)
    # form IV and melt have no test trajectory: their training runs keep test frames
    assert [set(c.tolist()) for c in codes] == [{TRAIN, VAL}, {TRAIN, VAL, TEST}, {TEST}, {TRAIN, VAL}, {TRAIN, VAL, TEST}]
    codes = assign_splits(sources, [5] * 5, train_temperature=200)
    assert set(codes[0].tolist()) == {TEST} and TRAIN in codes[2]
    with pytest.raises(DatasetError, match="give its split or temperature"):
        assign_splits([source("x", "I", None)], [5])


def test_random_split_is_seeded_per_source():
    sources = [source("a", "I", 100), source("b", "IV", 100)]
    a = assign_splits(sources, [20, 10], mode="random", val_fraction=0.2, test_fraction=0.3, seed=1)
    b = assign_splits(sources, [20, 10], mode="random", val_fraction=0.2, test_fraction=0.3, seed=1)
    c = assign_splits(sources, [20, 10], mode="random", val_fraction=0.2, test_fraction=0.3, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], c[0])
    assert np.bincount(a[0], minlength=3).tolist() == [10, 4, 6]
    assert np.bincount(a[1], minlength=3).tolist() == [5, 2, 3]
    with pytest.raises(DatasetError, match="below 1"):
        assign_splits(sources, [5, 5], val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DatasetError, match="unknown split mode"):
        assign_splits(sources, [5, 5], mode="bytemperature")


def test_dataset_labels_splits_and_provenance(urea_md_dataset):
    ds = urea_md_dataset
    assert ds.classes == ["I", "IV", "melt"] and ds.molecule == "urea"
    by_name = {s["name"]: s for s in ds.sources}
    # every 10th of 40 frames (data/generate.py: 200 ps, a frame every 5 ps)
    assert by_name["urea-I-200K"]["frames"] == {"train": 0, "val": 0, "test": 4}
    assert by_name["urea-melt-350K"]["frames"] == {"train": 2, "val": 1, "test": 1}  # held-out melt frames
    assert by_name["urea-I-cluster-100K"]["periodic"] is False
    for entry in ds.sources:
        assert entry["trajectory_sha256"] == file_sha256(entry["trajectory"])
        assert entry["simulation"]["command"].startswith("molenv simulate")
        a = ds.arrays(entry["name"])
        assert a["labels"].shape == (entry["n_frames"], entry["n_molecules"])
        assert np.all(a["labels"] == ds.classes.index(entry["label"]))
        assert np.array_equal(a["topology"], (a["cn"] < 20).astype(a["topology"].dtype))
        assert [int((a["split"] == k).sum()) for k in range(3)] == [entry["frames"][s] for s in SPLITS]
    # periodic bulk has no surface; the cluster has some
    assert ds.arrays("urea-I-100K")["topology"].sum() == 0 and ds.arrays("urea-I-100K")["cn"].min() >= 25
    assert 0 < ds.arrays("urea-I-cluster-100K")["topology"].mean() < 0.6
    table = ds.molecules("test")
    assert len(table) == 4 * 160 + 4 * 180 + 160 and table.features.shape[1] == 24
    counts = ds.manifest["counts"]["test"]
    assert counts == {"I": 640, "IV": 720, "melt": 160}
    assert len(ds.molecules("train", periodic_only=True)) < len(ds.molecules("train"))


def test_cached_descriptors_are_those_of_the_stored_frames(urea_md_dataset):
    """The cached SFs are compute_descriptors of the frame as read (and of the frame as
    stored: float32 positions lose nothing); compute_descriptors agrees with
    MOLENV_CLASSIFY's SF_FILE (tests/test_plumed_reference_urea.py)."""
    from molenv.descriptors import compute_descriptors

    ds = urea_md_dataset
    spec = load_spec("urea")
    items = [f for f in ds.frames("test") if f.source == "urea-IV-200K"]
    assert [f.index for f in items] == list(range(4)) and all(f.split == "test" for f in items)
    traj = Trajectory(REPO / "data/urea/urea-IV-200K.xtc", spec, topology=REPO / "data/urea/urea-IV-200K.pdb.gz", step=10)
    for item, frame in zip(items, traj):
        assert np.array_equal(item.features, compute_descriptors(frame, spec.descriptor_set()))
        assert np.array_equal(item.features, compute_descriptors(item.frame, ds.descriptor_set))
        assert item.frame.time == frame.time and np.array_equal(item.frame.box, frame.box)
        assert np.all(item.polymorph == 1) and np.all(item.topology == 0)
    cluster = next(ds.frames(sources=["urea-I-cluster-100K"]))
    assert cluster.frame.box is None and cluster.topology.sum() > 0


def test_one_frame_of_a_source(urea_md_dataset):
    """Dataset.frame(source, index) is the frame the frames() view gives (the view is made by
    it), for a crystal and a cluster; -1 is the last frame; an index out of range is named."""
    ds = urea_md_dataset
    for name in ("urea-IV-200K", "urea-I-cluster-100K"):
        items = list(ds.frames(sources=[name]))
        a = ds.arrays(name)
        assert [it.index for it in items] == list(range(len(a["positions"])))
        for it in items:
            frame = ds.frame(name, it.index)
            for field in ("positions", "molecules", "atomic_numbers"):
                assert np.array_equal(getattr(frame, field), getattr(it.frame, field))
            assert frame.positions.dtype == np.float64 and np.array_equal(frame.positions, a["positions"][it.index])
            assert frame.time == it.frame.time == a["times"][it.index]
            assert (frame.box is None) == (it.frame.box is None) == (name == "urea-I-cluster-100K")
            if frame.box is not None:
                assert np.array_equal(frame.box, it.frame.box) and np.array_equal(frame.box, a["boxes"][it.index])
        assert np.array_equal(ds.frame(name, -1).positions, items[-1].frame.positions)
    with pytest.raises(DatasetError, match="has 4 frames, no frame 4"):
        ds.frame("urea-IV-200K", 4)
    with pytest.raises(DatasetError, match="no source 'urea-V-200K'"):
        ds.frame("urea-V-200K", 0)


def test_topology_rule_options(tmp_path):
    spec = load_spec("urea")
    [s] = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-cluster-100K"])
    s.split, s.reader["stop"] = "test", 1
    wide = featurize([s], spec, tmp_path / "a", topology_rule=TopologyRule(offset=6.0, threshold=0), progress=False)
    assert wide.arrays(s.name)["topology"].sum() == 0
    fixed = featurize([s], spec, tmp_path / "b", topology_rule=TopologyRule(offset=7.0, threshold=20, radius=2.0), progress=False)
    assert np.all(fixed.arrays(s.name)["cn_radius"] == 2.0)
    cn9 = fixed.arrays(s.name)["cn"]
    assert np.all(cn9 >= wide.arrays(s.name)["cn"])  # radius 9 A >= molecule radius (~2.1) + 6 A
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["topology"]["radius_A"] == 2.0


def test_featurize_errors(tmp_path, urea_md_dataset):
    spec = load_spec("urea")
    sources = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-100K", "urea-I-200K"])
    for s in sources:
        s.reader["stop"] = 2
    with pytest.raises(DatasetError, match="single class"):
        featurize(sources, spec, tmp_path / "one", progress=False)
    with pytest.raises(DatasetError, match="not among the classes"):
        featurize(sources, spec, tmp_path / "cls", classes=["IV", "melt"], progress=False)
    with pytest.raises(DatasetError, match="empty dataset"):
        featurize([], spec, tmp_path / "none", progress=False)
    with pytest.raises(DatasetError, match="already there"):
        featurize(sources, spec, urea_md_dataset.path, progress=False)
    with pytest.raises(DatasetError, match="not found"):
        featurize([Source("x", tmp_path / "missing.xtc", "I", 100)], spec, tmp_path / "m", progress=False)
    # a urea trajectory read as nicotinamide: the reader names the file and the problem
    with pytest.raises(TrajectoryError, match="urea-I-100K.pdb.gz.*nicotinamide"):
        featurize(sources, "nicotinamide", tmp_path / "nic", progress=False)
    garbage = tmp_path / "frames.xyz"
    garbage.write_text("this is not\nan xyz file\n")
    with pytest.raises(TrajectoryError, match="frames.xyz"):
        featurize([Source("g", garbage, "I", 100)], spec, tmp_path / "g", progress=False)
    with pytest.raises(DatasetError, match="molecule 'benzene'"):
        sources_from_manifest(REPO / "data/manifest.json", "benzene")
    with pytest.raises(DatasetError, match="no molenv dataset|not a molenv dataset"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown split"):
        urea_md_dataset.molecules("testing")


def test_featurize_command_with_explicit_sources(tmp_path, capsys):
    data = REPO / "data" / "urea"
    if not (data / "urea-IV-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    args = ["featurize", "--molecule", "urea", "--out", str(tmp_path / "ds"), "--stop", "6", "--step", "2", "--no-progress", "--split-mode", "random", "--seed", "3", "--classes", "IV,I"]
    for name, label in (("urea-I-100K", "I"), ("urea-IV-100K", "IV")):
        args += ["--trajectory", str(data / f"{name}.xtc"), "--topology", str(data / f"{name}.pdb.gz"), "--label", label]
    args += ["--temperature", "100"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0, capsys.readouterr().err
    ds = open_dataset(tmp_path / "ds")
    assert ds.classes == ["IV", "I"] and [s["n_frames"] for s in ds.sources] == [3, 3]
    assert [s["system"] for s in ds.sources] == ["crystal", "crystal"] and ds.manifest["split"]["mode"] == "random"
    assert "--split-mode random" in ds.manifest["command"]
    # --label given twice for three trajectories
    with pytest.raises(SystemExit) as exit_:
        main(args[:-2] + ["--trajectory", str(data / "urea-I-100K.xtc"), "--overwrite"])
    assert exit_.value.code == 2 and "--label was given 2 times for 3 trajectories" in capsys.readouterr().err



def test_parallel_featurize_gives_the_same_arrays(tmp_path):
    sources = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-100K", "urea-melt-350K"])
    for s in sources:
        s.reader.update(stop=4)
    serial = featurize(sources, "urea", tmp_path / "serial", progress=False)
    parallel = featurize(sources, "urea", tmp_path / "parallel", workers=2, progress=False)
    for name in serial.source_names:
        a, b = serial.arrays(name), parallel.arrays(name)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_featurize_on_dask_workers_gives_the_same_arrays(tmp_path):
    """`featurize --backend dask`: blocks of frames on the 2 workers of a dask.distributed
    LocalCluster (each reads its frames itself) give the serial arrays, bit for bit."""
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    sources = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-100K", "urea-melt-350K"])
    for s in sources:
        s.reader.update(stop=3)
    serial = featurize(sources, "urea", tmp_path / "serial", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = featurize(sources, "urea", tmp_path / "remote", workers=2, backend="dask", scheduler=cluster.scheduler_address, progress=False)
    for name in serial.source_names:
        a, b = serial.arrays(name), remote.arrays(name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    with pytest.raises(DatasetError, match="a dask scheduler address needs backend 'dask', not 'serial'"):
        featurize(sources, "urea", tmp_path / "x", backend="serial", scheduler="tcp://localhost:1", progress=False)
