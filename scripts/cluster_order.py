#!/usr/bin/env python3
"""How much of its crystal orientation each committed gas-phase cluster keeps: whether the
label of a cluster trajectory ("form I", "form IV") still holds for its molecules at the end
of the run, or whether the cluster has partly melted.

    .venv/bin/python scripts/cluster_order.py                       # every cluster of data/manifest.json
    .venv/bin/python scripts/cluster_order.py --names urea-I-cluster-200K

Per cluster, for the core and the surface molecules (the coordination-number rule of
molenv.topology in the first frame: the split the topology labels use) and, for comparison,
for every periodic crystal of the same molecule and temperature: the mean P2 of the angle
between each molecule's axes (the spec's vectors) in the first and in the last frame, the
cluster's overall rotation removed (molenv.order.orientational_order), and the share of
molecules that have turned away (molenv.order.reoriented: P2 < 0.5, 35 degrees, on some
axis). An intact crystal keeps P2 near 1 (thermal libration only) and has no turned
molecules; a liquid tends to P2 = 0.

    .venv/bin/python scripts/cluster_order.py --names nicotinamide-I-cluster-250K --model models/nicotinamide_gnn.pt

--model adds how a classifier reads the same molecules: in every frame (against the first),
the share of the cluster's label and of melt among the core molecules, the surface molecules
that kept their orientation and those that have turned (core and surface by the
coordination-number rule in that frame): whether the model's "melt" calls on a warm surface
are molecules that have left their lattice orientation.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))  # runs without installing molenv


def order_change(entry: dict) -> dict:
    """{'core': (mean P2, reoriented share, molecules), 'surface': ...} of a manifest entry,
    its first against its last frame."""
    from molenv.order import orientational_order, reoriented
    from molenv.topology import TopologyRule
    from molenv.trajectory import Trajectory

    periodic = entry["system"] != "cluster"
    traj = Trajectory(REPO / "data" / entry["files"]["trajectory"], entry["molecule"],
                      topology=REPO / "data" / entry["files"]["topology"], periodic=periodic)
    first, last = traj[0], traj[len(traj) - 1]
    centre = traj.spec.centre
    p2 = orientational_order(last, first, traj.spec.vectors, centre=centre)
    rule = TopologyRule()
    surface = rule.surface(rule.coordination(first, centre))
    out = {}
    for part, keep in (("core", ~surface), ("surface", surface)):
        if keep.any():
            out[part] = (float(p2[keep].mean()), float(reoriented(p2[keep]).mean()), int(keep.sum()))
    return out


def reading(entry: dict, model, stop: int | None = None) -> dict:
    """{'core' | 'surface, kept' | 'surface, turned': (share of the entry's label, share of
    melt, molecules per frame)}: `model` (a molenv classifier) on every frame of a cluster,
    each frame's molecules split by the topology rule and by their orientation against the
    first frame; `stop`: only the frames before it."""
    import numpy as np

    from molenv.classification import classify_trajectory
    from molenv.order import turned
    from molenv.topology import TopologyRule
    from molenv.trajectory import Trajectory

    traj = Trajectory(REPO / "data" / entry["files"]["trajectory"], entry["molecule"], topology=REPO / "data" / entry["files"]["topology"],
                      periodic=False, stop=stop)
    result = classify_trajectory(traj, model, progress=False)
    calls = np.array(result.classes)[result.probabilities.argmax(axis=2)]
    rule, spec, first = TopologyRule(), traj.spec, traj[0]
    parts = {"core": [], "surface, kept": [], "surface, turned": []}
    for k, frame in enumerate(traj):
        away = turned(frame, first, spec.vectors, spec.centre)
        surface = rule.surface(rule.coordination(frame, spec.centre))
        for part, members in zip(parts, (~surface, surface & ~away, surface & away)):
            parts[part].append(calls[k][members])
    out = {}
    for part, frames in parts.items():
        called = np.concatenate(frames)
        out[part] = (float(np.mean(called == entry["label"])) if called.size else None,
                     float(np.mean(called == "melt")) if called.size else None, called.size / len(traj))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", nargs="+", help="only these manifest entries (default: every cluster)")
    parser.add_argument("--manifest", default=str(REPO / "data" / "manifest.json"))
    parser.add_argument("--model", help="also classify every frame of each cluster with this model (module docstring)")
    parser.add_argument("--stop", type=int, help="--model: only the frames before this one (e.g. the start of a melting run)")
    args = parser.parse_args()
    entries = json.loads(Path(args.manifest).read_text())["trajectories"]
    clusters = [e for e in entries if e["system"] == "cluster" and (not args.names or e["name"] in args.names)]
    if args.names and len(clusters) != len(args.names):
        parser.error("--names: every name must be a cluster of the manifest")
    # the periodic crystals of the same molecule and temperature, for comparison
    keys = {(e["molecule"], e["temperature_K"]) for e in clusters}
    crystals = [e for e in entries if e["system"] == "crystal" and (e["molecule"], e["temperature_K"]) in keys]
    print("| trajectory | T (K) | ps | molecules core / surface | P2 core | P2 surface | reoriented core | reoriented surface |")
    print("|---|---|---|---|---|---|---|---|")
    for e in sorted(clusters + crystals, key=lambda e: (e["molecule"], e["temperature_K"], e["system"], e["name"])):
        r = order_change(e)
        core, surface = r.get("core"), r.get("surface")

        def cell(part, i):
            return f"{part[i]:.2f}" if part else "-"

        counts = f"{core[2] if core else 0} / {surface[2] if surface else 0}"
        print(f"| {e['name']} | {e['temperature_K']:g} | {e['production_ps']:g} | {counts} | {cell(core, 0)} | {cell(surface, 0)} | "
              f"{cell(core, 1)} | {cell(surface, 1)} |", flush=True)
    if args.model:
        from molenv.models import open_model

        model = open_model(args.model)
        frames = f"frames 0-{args.stop - 1}" if args.stop else "every frame"
        print(f"\n{args.model}, {frames} against the first: share of the cluster's label / of melt (molecules per frame)\n")
        print("| trajectory | T (K) | core | surface, kept orientation | surface, turned |")
        print("|---|---|---|---|---|")
        for e in clusters:
            r = reading(e, model, args.stop)
            cells = [f"{label:.2f} / {melt:.2f} ({n:.0f})" if label is not None else "-" for label, melt, n in r.values()]
            print(f"| {e['name']} | {e['temperature_K']:g} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
