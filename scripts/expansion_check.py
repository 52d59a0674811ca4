#!/usr/bin/env python3
"""How much of a classifier's loss on warmer crystals is their thermal expansion.

A model trained on cold crystals (the paper's protocol: nicotinamide at 100 K) meets warmer
test crystals (350 K) that are both more disordered and expanded. This script separates the
two: it classifies every periodic test crystal of the committed data as it is and once more
with its lattice scaled back to the cold crystal's (cell edges and molecule centroids scaled
by the ratio of the two runs' mean cell lengths, molecules rigid: molenv.augment.expanded
with a negative strain), and prints the share of molecules called their own form in both.
What the compression wins back is the expansion's share of the loss; the rest is the
thermal disorder (larger motion) that the compressed frames keep.

    .venv/bin/python scripts/expansion_check.py --molecule nicotinamide --model WORK/nicotinamide/sf --step 4
    .venv/bin/python scripts/expansion_check.py --molecule urea --warm 200 --model models/urea_sf.molenv

The strain of each form is measured from the two committed runs (`<molecule>-<form>-<cold>K`,
`-<warm>K`): (mean density cold / mean density warm)^(1/3) - 1 (`molenv.order.density`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))  # runs without installing molenv


def crystals(molecule: str, temperature: float) -> dict[str, dict]:
    """Form label -> manifest entry of the committed periodic crystal of `molecule` at `temperature`."""
    from molenv.protocols import manifest_entries

    return {e["label"]: e for e in manifest_entries(REPO / "data" / "manifest.json")
            if e["molecule"] == molecule and e["system"] == "crystal" and float(e["temperature_K"]) == temperature}


def frames(entry: dict, step: int) -> list:
    from molenv.trajectory import Trajectory

    traj = Trajectory(REPO / "data" / entry["files"]["trajectory"], entry["molecule"], topology=REPO / "data" / entry["files"]["topology"],
                      step=step)
    return [traj[i] for i in range(len(traj))]


def linear_strain(warm: list, cold: list) -> float:
    """The linear strain from the `cold` run's mean density to the `warm` one's (same molecules)."""
    from molenv.order import density

    rho_warm, rho_cold = (np.mean([density(f) for f in run]) for run in (warm, cold))
    return (rho_cold / rho_warm) ** (1 / 3) - 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecule", required=True, help="urea or nicotinamide (the committed data/manifest.json runs)")
    parser.add_argument("--model", required=True, action="append", help="model file, checkpoint or training run directory (repeatable)")
    parser.add_argument("--warm", type=float, default=350.0, help="temperature of the test crystals, K (default 350)")
    parser.add_argument("--cold", type=float, default=100.0, help="temperature of the training crystals, K (default 100)")
    parser.add_argument("--step", type=int, default=1, help="every this many frames of the warm runs (default 1)")
    args = parser.parse_args(argv)

    from molenv.augment import expanded
    from molenv.models import open_model

    warm_runs, cold_runs = crystals(args.molecule, args.warm), crystals(args.molecule, args.cold)
    forms = [f for f in warm_runs if f in cold_runs]
    if not forms:
        parser.error(f"no form of {args.molecule} has committed crystals at both {args.cold:g} and {args.warm:g} K")
    samples = {}
    for form in forms:
        warm = frames(warm_runs[form], args.step)
        strain = linear_strain(warm, frames(cold_runs[form], 1))
        samples[form] = (strain, warm, [expanded(f, 1 / (1 + strain) - 1) for f in warm])
    for path in args.model:
        model = open_model(path)
        print(f"\n{path}: share of the {args.warm:g} K crystals' molecules called their own form\n")
        print(f"| form | expansion {args.cold:g} -> {args.warm:g} K | as they are | lattice scaled back to {args.cold:g} K |")
        print("|---|---|---|---|")
        rows = []
        for form, (strain, warm, compressed) in samples.items():
            k = list(model.classes).index(form)
            right = [np.mean([np.mean(model.predict(f)[0].argmax(axis=1) == k) for f in run]) for run in (warm, compressed)]
            rows.append(right)
            print(f"| {form} | {100 * strain:.2f} % | {right[0]:.3f} | {right[1]:.3f} |")
        mean = np.mean(rows, axis=0)
        print(f"| mean of the forms | | {mean[0]:.3f} | {mean[1]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
