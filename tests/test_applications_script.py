"""The analysis of scripts/applications.py (paper Figs. 7 and 8) on made-up classifications
with a known answer: which molecules are central, counts per class group, the z profile."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from molenv.analysis import ClassificationResult

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def applications():
    spec = importlib.util.spec_from_file_location("applications_script", REPO / "scripts" / "applications.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stacked_interface(n_frames=3):
    """A toy of the authors' interface: 8 layers of form I (48 molecules, 3 A apart; molecules
    0-383) above 10 layers of form IV (36 molecules, 2 A apart; 384-743), in a box 60 A high,
    the centres wrapped into the box with the stack starting at 40 A (the IV slab crosses the
    periodic face); in the last frame the lowest central form I layer reads as IV."""
    z_iv = 40.0 + 2.0 * np.arange(10)
    z_i = z_iv[-1] + 3.0 + 3.0 * np.arange(8)
    z = np.mod(np.concatenate([np.repeat(z_i, 48), np.repeat(z_iv, 36)]), 60.0)
    n = len(z)
    xy = np.random.default_rng(1).uniform(0, 20, (n, 2))
    centres = np.repeat(np.column_stack([xy, z])[None], n_frames, axis=0)
    probabilities = np.zeros((n_frames, n, 3))
    probabilities[:, :384, 0] = 1.0  # I
    probabilities[:, 384:, 1] = 1.0  # IV
    probabilities[-1, :48] = [0.0, 1.0, 0.0]  # the lowest form I layer turned IV
    probabilities[-1, 48:50] = [0.4, 0.3, 0.3]  # two uncertain ones in the next form I layer
    boxes = np.tile([20.0, 20.0, 60.0, 90.0, 90.0, 90.0], (n_frames, 1))
    return ClassificationResult(["I", "IV", "melt"], np.arange(n_frames) * 2.0, probabilities, centres=centres, boxes=boxes)


@pytest.fixture
def toy_slabs(applications, monkeypatch):
    monkeypatch.setattr(applications, "INTERFACE_SLABS", {"I": slice(0, 384), "IV": slice(384, 744)})


def test_central_region_leaves_out_the_fixed_layers(applications, toy_slabs):
    r = stacked_interface()
    heights = applications.interface_heights(r)
    # from 1 A below the lowest form IV layer, whichever side of the periodic face it is on
    assert heights[:, 384:].min() == pytest.approx(1.0) and heights[:, :384].max() == pytest.approx(1.0 + 18 + 3 + 21)
    central = applications.central_molecules(heights[0])
    # 3 IV layers at the bottom and 3 form I layers at the top are out
    assert central.sum() == 10 * 36 + 8 * 48 - 3 * 36 - 3 * 48
    assert not central[384:492].any() and central[492:].all() and central[:240].all() and not central[240:384].any()


def test_group_counts_and_profile(applications, toy_slabs, tmp_path):
    r = stacked_interface()
    heights = applications.interface_heights(r)
    central = applications.central_molecules(heights[0])
    groups = applications.interface_groups(r.classes)
    assert groups == {"I": [0], "IV": [1], "melt": [2]}
    counts = applications.group_counts(r, groups, central)
    assert counts["IV"][0] == 252 and counts["I"][0] == 240
    assert counts["IV"][-1] == 252 + 48 and counts["I"][-1] == 240 - 48 - 2 and counts["uncertain"][-1] == 2
    path = tmp_path / "profile.png"
    applications.plot_interface_profile(path, r, heights, groups, [0, 4], "toy")
    applications.plot_interface_series(tmp_path / "series.png", r, counts, int(central.sum()), "toy")
    assert path.stat().st_size > 1000 and (tmp_path / "series.png").stat().st_size > 1000


def test_other_forms_group_for_the_authors_classes(applications):
    groups = applications.interface_groups(["I", "IV", "Melt", "A", "B", "C", "III"])
    assert groups == {"I": [0], "IV": [1], "melt": [2], "other forms": [3, 4, 5, 6]}


def test_cluster_runs_keep_the_order_given_and_refuse_a_bare_name(applications):
    assert applications.cluster_runs(None) == applications.CLUSTER_RUNS
    runs = applications.cluster_runs(["350 K, AM1-BCC=nicotinamide-I-cluster148-350K", "100 K=nicotinamide-I-cluster148-100K"])
    assert list(runs) == ["350 K, AM1-BCC", "100 K"] and runs["100 K"] == "nicotinamide-I-cluster148-100K"
    with pytest.raises(SystemExit, match="LABEL=NAME"):
        applications.cluster_runs(["nicotinamide-I-cluster148-100K"])


def test_cluster_counts_table(applications):
    """The counts of the docs table: the frame nearest each time, form I / melt / all, core | surface."""
    class Table:  # the columns of a populations.dat that cluster_summary reads
        columns = {"time": np.array([5.0, 10.0, 15.0]), "core_n_I": np.array([50.4, 40.0, 30.0]), "core_n_melt": np.array([9.6, 20.0, 30.0]),
                   "surface_n_I": np.array([70.0, 60.0, 50.0]), "surface_n_melt": np.array([15.0, 25.0, 35.0]),
                   "core_nmol": np.array([63.0, 62.0, 61.0]), "surface_nmol": np.array([85.0, 86.0, 87.0])}

        def column(self, name):
            return self.columns[name]

    summary = applications.cluster_summary(Table(), ["I", "IV", "melt"], [0, 14])
    assert summary[0.0] == {"core_I": 50, "core_melt": 10, "surface_I": 70, "surface_melt": 15, "core_nmol": 63, "surface_nmol": 85}
    assert summary[14.0]["core_I"] == 30
    assert applications.cluster_row("350 K, `gnn`", summary) == "| 350 K, `gnn` | 50 / 10 / 63 \\| 70 / 15 / 85 | 30 / 30 / 61 \\| 50 / 35 / 87 |"


def test_core_melting_times(applications):
    """The time from which the core's form-I share stays below 50 % / 10 % of the first
    frame's: a brief dip below does not count, a share that ends above gives None; mean and
    sd over realisations."""
    class Table:
        def __init__(self, n_I):
            self.columns = {"time": np.arange(1, len(n_I) + 1) * 5.0, "core_n_I": np.array(n_I, float), "core_nmol": np.full(len(n_I), 50.0)}

        def column(self, name):
            return self.columns[name]

    # shares 0.8, 0.4 (dip below half of 0.8), 0.6, 0.3, 0.06, 0.0
    times = applications.core_melting_times(Table([40, 20, 30, 15, 3, 0]))
    assert times == {0.5: 20.0, 0.1: 25.0}
    assert applications.core_melting_times(Table([40, 30, 21])) == {0.5: None, 0.1: None}
    # relative to the first frame: a core called form I for a fifth of its molecules at first
    assert applications.core_melting_times(Table([10, 6, 4, 0])) == {0.5: 15.0, 0.1: 20.0}
    melting = {"gnn": {"350 K": {0.5: 100.0, 0.1: 300.0}, "350 K, seed 2": {0.5: 200.0, 0.1: 500.0}, "100 K": {0.5: None, 0.1: None}}}
    text = applications.melting_table(melting, ["350 K", "350 K, seed 2", "350 K, seed 9"])
    assert "| 100 K, `gnn` | not by the end | not by the end |" in text
    assert "| mean +- sd over 2 (350 K, 350 K, seed 2), `gnn` | 150 +- 71 ps | 400 +- 141 ps |" in text
    melting["gnn"]["350 K, seed 2"][0.1] = None
    assert "| 150 +- 71 ps | not all melted |" in applications.melting_table(melting, ["350 K", "350 K, seed 2"])
