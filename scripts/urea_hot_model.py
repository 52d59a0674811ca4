#!/usr/bin/env python3
"""A urea SF-MLP that reads hot form I as form I: models/urea_sf_hot.molenv, the count for
interface pinning of form I against its melt (docs/applications.md, part 3).

    .venv/bin/python scripts/urea_hot_model.py --train /work/pinning-k02/320K /work/pinning-k02/340K /work/pinning-k02/360K \
        --test /work/pinning-melt/400K --work /work/hot-urea

models/urea_sf.molenv was trained on crystals at 100 and 200 K: at 360-400 K it reads 6-14 % of
a form I crystal's soft count as melt, and a bias on that count can lower it by disordering the
crystal instead of moving the front. This one adds the bulk runs that `scripts/pinning.py run`
makes at every temperature (`lattice`: form I NPT, `bulk-melt`: its melt, 160 molecules, 40 ps,
80 frames) to the committed urea data (forms I and IV at 100 and 200 K, the melt at 350 K), all
for training (their last 20 % of frames for validation), and tests on the --test temperatures'
runs, which it does not see, and compares how the old and the new model read them
(`--check-only`: that comparison alone). Writes a manifest over those runs to --work/view, the dataset, the
training run, its test evaluation, and the exported model (--out).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMITTED = ("urea-I-100K", "urea-IV-100K", "urea-I-200K", "urea-IV-200K", "urea-melt-350K")
BULK_RUNS = (("lattice", "I", "crystal", "urea-I-100K"), ("bulk-melt", "melt", "melt", "urea-melt-350K"))


def view_manifest(train: list[Path], test: list[Path], view: Path) -> Path:
    """data/manifest.json's committed urea entries (all for training) and one entry per bulk
    run of each pinning temperature directory (<T>K/lattice, <T>K/bulk-melt), linked into
    `view` so that the manifest's relative paths resolve."""
    manifest = json.loads((REPO / "data" / "manifest.json").read_text())
    entries = {e["name"]: dict(e, split="train") for e in manifest["trajectories"] if e["name"] in COMMITTED}
    view.mkdir(parents=True, exist_ok=True)
    (view / "urea").unlink(missing_ok=True)
    (view / "urea").symlink_to(REPO / "data" / "urea")
    for split, folders in (("train", train), ("test", test)):
        for folder in folders:
            temperature = float(json.loads((folder / "calibration.json").read_text())["temperature"])
            for run, label, system, template in BULK_RUNS:
                if not (folder / run / "trajectory.xtc").is_file():
                    sys.exit(f"{folder / run}: no trajectory.xtc (run scripts/pinning.py ... run for this temperature first)")
                name = f"urea-{label}-pinning-{temperature:g}K"
                link = view / "runs" / name
                link.parent.mkdir(exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(folder.resolve() / run)
                entries[name] = dict(entries[template], name=name, label=label, system=system, split=split, temperature_K=temperature,
                                     files={"trajectory": f"runs/{name}/trajectory.xtc", "topology": f"runs/{name}/topology.pdb"})
    manifest["trajectories"] = list(entries.values())
    path = view / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def crispness(model_path: Path, folders: list[Path]) -> None:
    """How a model reads the bulk runs of `folders`: the mean p(I) of the form I crystal and of
    the melt, and the share of crystal molecules above p(I) = 0.99 (models/README.md)."""
    from molenv.classification import classify_trajectory
    from molenv.models import open_model
    from molenv.trajectory import Trajectory

    model = open_model(model_path)
    for folder in folders:
        p = {}
        for run, label, _, _ in BULK_RUNS:
            result = classify_trajectory(Trajectory(folder / run / "trajectory.xtc", "urea", topology=folder / run / "topology.pdb"), model, progress=False)
            p[label] = result.probabilities[..., list(result.classes).index("I")]
        print(f"{model_path.name} on {folder}: form I crystal mean p(I) {p['I'].mean():.3f}, above 0.99 {(p['I'] > 0.99).mean():.0%}; "
              f"melt mean p(I) {p['melt'].mean():.3f}")


def molenv(*args) -> None:
    command = [sys.executable, "-m", "molenv", *map(str, args)]
    print("$ molenv " + " ".join(map(str, args)), flush=True)
    if subprocess.run(command, cwd=REPO).returncode != 0:
        sys.exit("urea_hot_model.py: the command above failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="pinning temperature directories (<work>/<T>K) whose bulk runs train")
    parser.add_argument("--test", type=Path, nargs="*", default=[], help="pinning temperature directories whose bulk runs test")
    parser.add_argument("--work", type=Path, required=True, help="where the manifest view, dataset and training run go")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "urea_sf_hot.molenv", help="the exported model")
    parser.add_argument("--check-only", action="store_true", help="only compare --out with models/urea_sf.molenv on the --test runs")
    args = parser.parse_args()
    if args.check_only:
        for model in (REPO / "models" / "urea_sf.molenv", args.out):
            crispness(model, args.test)
        return
    manifest = view_manifest(args.train, args.test, args.work / "view")
    molenv("featurize", "--manifest", manifest, "--molecule", "urea", "--out", args.work / "dataset", "--no-progress", "--overwrite")
    molenv("train", "sf", args.work / "dataset", "--out", args.work / "sf", "--name", "urea-sf-hot", "--threads", 1, "--no-progress",
           "--lr", 0.01, "--batch-size", 256, "--patience", 30, "--max-epochs", 500)
    molenv("evaluate", args.work / "sf", args.work / "dataset", "--split", "test", "--out", args.work / "sf" / "eval-test", "--tsne-samples", 0, "--no-plots")
    molenv("export", args.work / "sf", "--out", args.out, "--name", "urea SF-MLP (I, IV, melt) with hot form I and melts (interface pinning)")
    for model in (REPO / "models" / "urea_sf.molenv", args.out):
        crispness(model, args.test)


if __name__ == "__main__":
    main()
