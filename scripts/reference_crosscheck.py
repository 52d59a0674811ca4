#!/usr/bin/env python3
"""Cross-check of our MD data with the original authors' SF models: how the published urea and
nicotinamide SF-MLPs (Kuroshima et al. 2024, imported with molenv.reference) classify every
committed crystal and melt trajectory of data/manifest.json.

    .venv/bin/python scripts/reference_crosscheck.py                  # table on stdout
    .venv/bin/python scripts/reference_crosscheck.py --out data/crosscheck.md

A trajectory of one form that the authors' model, trained on the authors' LAMMPS data, does
not call that form points at a difference in the data (labelling, force field, density),
not in the classifier: the standing test tests/test_reference_crosscheck.py keeps the
method's training systems above thresholds. The reference models were trained on periodic
bulk only, so in a cluster they judge only the inner core, the molecules whose whole
descriptor sphere lies inside the cluster (molenv.topology.complete_environment; a few per
frame in a 30 A cluster): whether the cluster's label is still true where a bulk model can
tell. Interfaces and the application runs (whose label is their starting structure) are left
out. Frames: every --step-th (default 2).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))


def reference_label(label: str, classes: list[str]) -> str:
    """Our class name in the reference model's spelling ('melt' -> 'Melt')."""
    return next((c for c in classes if c.lower() == label.lower()), label)


def crosscheck(entries: list[dict], step: int = 2, progress=print) -> list[dict]:
    """One row per manifest entry: the reference model's agreement with the entry's label."""
    from molenv.reference import agreement, shipped_reference_model
    from molenv.trajectory import Trajectory

    models, rows = {}, []
    for e in entries:
        model = models.setdefault(e["molecule"], shipped_reference_model(e["molecule"], REFERENCE))
        traj = Trajectory(REPO / "data" / e["files"]["trajectory"], e["molecule"], topology=REPO / "data" / e["files"]["topology"], step=step)
        result = agreement(model, traj, reference_label(e["label"], model.classes), complete_environments=e["system"] == "cluster")
        judged = "inner core" if e["system"] == "cluster" else "all"
        rows.append({"name": e["name"], "split": e["split"], "charges": e["force_field"].get("description", ""), "molecules": judged} | result)
        progress(f"{e['name']}: {result['label']} {result['fraction']:.3f}")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| trajectory | split | label | molecules judged (per frame) | authors' model: fraction of molecules called label | mean p(label) | "
             "predicted classes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        predicted = ", ".join(f"{c} {f:.3f}" for c, f in sorted(r["predicted"].items(), key=lambda kv: -kv[1]))
        judged = f"{r['molecules']} ({r['n_molecules'] / r['n_frames']:.3g})"
        lines.append(f"| {r['name']} | {r['split']} | {r['label']} | {judged} | {r['fraction']:.3f} | {r['mean_probability']:.3f} | {predicted} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", nargs="+", help="only these manifest entries (default: every crystal, melt and cluster but the application runs)")
    parser.add_argument("--step", type=int, default=2, help="every this many frames (default 2)")
    parser.add_argument("--out", help="also write the table (markdown) and a .json next to it")
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        parser.error(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)")
    manifest = json.loads((REPO / "data" / "manifest.json").read_text())
    entries = [e for e in manifest["trajectories"] if e["system"] in ("crystal", "melt", "cluster") and e["split"] != "application"
               and (not args.names or e["name"] in args.names)]
    rows = crosscheck(entries, step=args.step, progress=lambda line: print(line, file=sys.stderr))
    text = table(rows)
    print(text)
    if args.out:
        out = Path(args.out)
        out.write_text(f"<!-- made by: scripts/reference_crosscheck.py --step {args.step} --out {args.out} -->\n{text}\n")
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
