"""scripts/cluster_order.py on committed clusters: the orientation kept by the urea clusters
(the table of data/README.md) and how a classifier reads a cluster's core, its surface
molecules that kept their orientation and those that turned (`reading`, --model)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="module")
def cluster_order():
    import cluster_order

    return cluster_order


def entry(name):
    found = [e for e in json.loads((REPO / "data" / "manifest.json").read_text())["trajectories"] if e["name"] == name]
    if not found or not (REPO / "data" / found[0]["files"]["trajectory"]).is_file():
        pytest.skip(f"{name} is not in the committed data")
    return found[0]


def test_reading_of_a_cold_cluster_by_the_committed_gnn(cluster_order):
    """The 100 K form I nicotinamide cluster, first 3 frames: every molecule counted once per
    frame, the core and the oriented surface form I for the committed GNN (its training data)."""
    from molenv.models import open_model

    e = entry("nicotinamide-I-cluster-100K")
    r = cluster_order.reading(e, open_model(REPO / "models" / "nicotinamide_gnn.molenv"), stop=3)
    assert list(r) == ["core", "surface, kept", "surface, turned"]
    assert sum(n for _, _, n in r.values()) == pytest.approx(e["n_molecules"])
    (core_i, core_melt, n_core), (kept_i, _, n_kept) = r["core"], r["surface, kept"]
    assert n_core > 20 and n_kept > 20
    assert core_i >= 0.95 and core_melt <= 0.05 and kept_i >= 0.95


def test_order_change_of_the_warm_urea_cluster(cluster_order):
    """The urea form I cluster at 200 K: a third or more of its core turned by the last frame
    (data/README.md), the periodic crystal at 200 K none."""
    cluster = cluster_order.order_change(entry("urea-I-cluster-200K"))
    crystal = cluster_order.order_change(entry("urea-I-200K"))
    assert cluster["core"][1] >= 0.3 and cluster["surface"][1] >= cluster["core"][1]
    assert crystal["core"][1] == 0.0 and "surface" not in crystal
