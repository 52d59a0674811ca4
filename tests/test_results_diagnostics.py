"""The reorientation measure of the accuracy report's diagnostics (molenv.results.diagnostics):
P2 of every molecule axis, first vs last frame of a dataset source, through molenv.order,
on the real small urea dataset."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from molenv.order import REORIENTED_P2, orientational_order, reoriented
from molenv.results import render
from molenv.results.diagnostics import (
    kept_orientation,
    order_change,
    order_summary,
    sf_diagnostics,
)
from scipy.spatial.transform import Rotation

CRYSTAL, CLUSTER, MELT = "urea-I-100K", "urea-I-cluster-100K", "urea-melt-350K"


def p2(ds, frame, reference):
    """P2 per molecule and axis as the diagnostics measure it (the descriptor set's axes and centre)."""
    d = ds.descriptor_set
    return orientational_order(frame, reference, d.vectors, centre=d.centre_atom)


def turn_molecule(frame, k: int, axis: np.ndarray, degrees: float):
    """`frame` with molecule `k` turned by `degrees` about `axis` through its centre atom
    (whole molecule: atoms at their minimum image from the centre)."""
    centre = frame.centres(1)[k]  # urea's centre atom C is the spec's first atom
    whole = frame.molecule_positions(1)[k]
    turned = Rotation.from_rotvec(np.radians(degrees) * axis / np.linalg.norm(axis)).apply(whole - centre) + centre
    positions = frame.positions.copy()
    positions[frame.molecules[k]] = turned
    return frame.replace(positions=positions)


def test_a_crystal_keeps_its_orientations_the_melt_loses_them(urea_md_dataset):
    ds = urea_md_dataset
    assert ds.descriptor_set.vectors == [(1, 2), (3, 6)] and ds.descriptor_set.centre_atom == 1  # urea: C -> O, N1 -> N2
    crystal = order_change(ds, CRYSTAL)
    assert crystal.shape == (ds.arrays(CRYSTAL)["molecules"].shape[0], 2)  # every molecule, both axes
    order, share = order_summary(crystal)
    assert 0.9 < order < 1 and share == 0
    order, share = order_summary(order_change(ds, MELT))
    assert abs(order) < 0.15 and share > 0.8
    assert order_summary(crystal[:0]) == (None, None)  # no molecules (a cluster without surface)


def test_a_frame_against_itself_is_perfect_order(urea_md_dataset):
    for source in (CRYSTAL, CLUSTER):
        frame = urea_md_dataset.frame(source, 0)
        assert np.allclose(p2(urea_md_dataset, frame, frame), 1, rtol=0, atol=1e-12)


def test_the_rotation_of_a_whole_cluster_is_removed(urea_md_dataset):
    ds = urea_md_dataset
    first = ds.frame(CLUSTER, 0)
    assert first.box is None
    turn = Rotation.from_rotvec([0.4, -1.1, 0.7])
    rotated = first.replace(positions=turn.apply(first.positions) + [3.0, -2.0, 5.0])
    assert np.allclose(p2(ds, rotated, first), 1, rtol=0, atol=1e-9)
    assert not reoriented(p2(ds, rotated, first)).any()
    # not by accident: left in, the rotation reorients molecules
    kept = orientational_order(rotated, first, ds.descriptor_set.vectors, centre=1, remove_rotation=False)
    assert reoriented(kept).mean() > 0.5


@pytest.mark.parametrize("axis_name", ["normal", "C->O"])
def test_one_turned_molecule_is_the_one_reoriented(urea_md_dataset, axis_name):
    """A molecule turned by 90 degrees in the crystal's last frame is reoriented, the others
    are not; turned about its own C -> O axis, only its N1 -> N2 axis turns, which counts
    too (every axis of the spec is compared, not only the first)."""
    ds = urea_md_dataset
    first, last = ds.frame(CRYSTAL, 0), ds.frame(CRYSTAL, -1)
    k = 5
    co, nn = last.vectors(ds.descriptor_set.vectors)[k]
    axis = np.cross(co, nn) if axis_name == "normal" else co
    values = p2(ds, turn_molecule(last, k, axis, 90.0), first)
    assert np.flatnonzero(reoriented(values)).tolist() == [k]
    assert values[k].min() < -0.4 < REORIENTED_P2  # 90 degrees: P2 = -0.5, up to the libration
    if axis_name == "C->O":
        assert values[k, 0] > 0.9  # the turning axis stays
    untouched = np.delete(values, k, axis=0)
    assert np.array_equal(untouched, np.delete(p2(ds, last, first), k, axis=0))


def test_kept_orientation_frame_by_frame(urea_md_dataset):
    """kept_orientation: per frame the molecules not reoriented since the first frame, frames
    concatenated in the order asked; the first frame keeps every molecule, the melt's last
    frame few, and a frame index counts from the source's first frame, as order_change."""
    ds = urea_md_dataset
    n_cluster = ds.arrays(CLUSTER)["molecules"].shape[0]
    frames = [0, 1, len(ds.arrays(CLUSTER)["times"]) - 1]
    kept = kept_orientation(ds, CLUSTER, frames)
    assert kept.shape == (len(frames) * n_cluster,) and kept[:n_cluster].all()
    for j, f in enumerate(frames):
        assert np.array_equal(kept[j * n_cluster:(j + 1) * n_cluster], ~reoriented(order_change(ds, CLUSTER, f)))
    melt_last = kept_orientation(ds, MELT, [-1])
    assert np.array_equal(melt_last, ~reoriented(order_change(ds, MELT))) and melt_last.mean() < 0.2


def test_sf_diagnostics_report_order_and_reoriented(urea_md_dataset, tmp_path):
    """sf_diagnostics on a run directory (a 2-epoch SF-MLP): one row per periodic source
    with the order and the reoriented share of `order_change`."""
    from molenv.sf.export import export_sf
    from molenv.sf.train import SFTrainConfig, train_sf

    ds = urea_md_dataset
    work = tmp_path / "work"
    shutil.copytree(ds.path, work / "urea" / "dataset")
    checkpoint = train_sf(ds, SFTrainConfig(max_epochs=2, seed=0, batch_size=128), work / "urea" / "sf")
    export_sf(checkpoint, work / "urea" / "sf" / "model.molenv")
    rows = {r["source"]: r for r in sf_diagnostics(work, "urea")}
    assert set(rows) == {s["name"] for s in ds.sources if s["periodic"]}
    for name, row in rows.items():
        order, share = order_summary(order_change(ds, name))
        assert row["order"] == pytest.approx(order) and row["reoriented"] == pytest.approx(share)
    assert rows[CRYSTAL]["reoriented"] == 0 and rows[MELT]["reoriented"] > 0.8
    # the report's table: a reoriented column beside the order
    table = "\n".join(render.sf_diagnostics(list(rows.values())))
    assert "| trajectory | T (K) | split | order | reoriented | accuracy |" in table
    assert f"| {MELT} | 350 | {rows[MELT]['split']} | {rows[MELT]['order']:.3f} | {rows[MELT]['reoriented']:.2f} |" in table
    assert "P2 < 0.5 (an angle above 35 degrees) on some axis" in table


def test_cluster_table_reports_reoriented_core_and_surface():
    """The GNN section's cluster table has the reoriented shares of core and surface."""
    confusion = {"confusion_matrix": {"rows_true": ["bulk", "surface"], "columns_predicted": ["bulk", "surface"], "counts": [[9, 1], [0, 5]]}}
    entry = {"metrics": {"heads": {"polymorph": {}, "topology": confusion}}}
    row = {"source": CLUSTER, "split": "val", "frames": 4, "temperature": 100.0, "accuracy": 0.9, "accuracy_core": 0.95, "accuracy_surface": 0.8,
           "surface_fraction": 0.3, "order_core": 0.91, "order_surface": 0.62, "reoriented_core": 0.04, "reoriented_surface": 0.36,
           "kept_fraction": 0.85, "accuracy_kept": 0.97}
    text = "\n".join(render.gnn_accuracies(entry, [row]))
    assert "| order, core | order, surface | reoriented, core | reoriented, surface | kept orientation | polymorph, kept |" in text
    assert f"| {CLUSTER} | val | 4 | 0.30 | 0.900 | 0.950 | 0.800 | 0.910 | 0.620 | 0.04 | 0.36 | 0.85 | 0.970 |" in text
    # rows of an older cache, without the kept columns, render with '-'
    del row["kept_fraction"], row["accuracy_kept"]
    assert "| 0.04 | 0.36 | - | - |" in "\n".join(render.gnn_accuracies(entry, [row]))
    assert "cluster's overall rotation removed" in text and "P2 < 0.5 (an angle above 35 degrees) on some axis" in text


def test_cluster_diagnostics_of_the_old_measure_are_recomputed(urea_md_dataset, tmp_path):
    """gnn/cluster_diagnostics.json is used for its checkpoint, dataset and version of the
    measures; a cache of the old measure (mean cos, no version in its key) is not: the
    diagnostics are recomputed, which here means loading the checkpoint (not a real one)."""
    from molenv.constants import file_sha256
    from molenv.results.diagnostics import (
        CLUSTER_DIAGNOSTICS_VERSION,
        gnn_cluster_diagnostics,
    )

    d = tmp_path / "urea"
    shutil.copytree(urea_md_dataset.path, d / "dataset")
    checkpoint = d / "gnn" / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("not a checkpoint\n")
    old = {"checkpoint_mtime": checkpoint.stat().st_mtime, "dataset": file_sha256(d / "dataset" / "manifest.json")}
    rows = [{"source": CLUSTER, "order_core": 0.5}]
    cache = d / "gnn" / "cluster_diagnostics.json"
    cache.write_text(json.dumps({"key": {"version": CLUSTER_DIAGNOSTICS_VERSION, **old}, "rows": rows}))
    assert gnn_cluster_diagnostics(tmp_path, "urea") == rows
    cache.write_text(json.dumps({"key": old, "rows": rows}))
    with pytest.raises(pickle.UnpicklingError):  # recomputing: torch reads the junk checkpoint
        gnn_cluster_diagnostics(tmp_path, "urea")
