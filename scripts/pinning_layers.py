#!/usr/bin/env python3
"""Where the front of a form I / melt pinning window is: the soft form I count of every
crystal layer, frame by frame (docs/applications.md, part 3).

    .venv/bin/python scripts/pinning_layers.py /work/pinning-k02/360K/pin-150 --from 170 --step 2

Slices one form I cell (c, the layer spacing along z of the (001) slab) thick, aligned on the
crystal's molecular planes (the phase of the centres of the molecules read as form I), so that
a whole crystal layer counts about 32 (alpha x 32 for a hot crystal) and a layer the front is
crossing counts less. Reads a finished run's trajectory.xtc, or the frame chunks of one still
running or stopped (`molenv simulate` writes them at every checkpoint). The trajectories are
not committed (data/pinning-melt* hold the COLVARs): run it where the windows ran.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def frames(run: Path):
    """The run's frames as MolecularFrames (urea), from trajectory.xtc or from chunks/*.npz."""
    from molenv.trajectory import Trajectory

    if (run / "trajectory.xtc").is_file():
        yield from Trajectory(run / "trajectory.xtc", "urea", topology=run / "topology.pdb")
        return
    first = next(iter(Trajectory(run / "system.pdb", "urea")))
    for path in sorted((run / "chunks").glob("*.npz")):
        with np.load(path) as chunk:
            for positions, box, time in zip(chunk["positions"], chunk["dimensions"], chunk["times"]):
                yield dataclasses.replace(first, positions=positions.astype(np.float64), box=box.astype(np.float64), time=float(time))


def layer_counts(frame, p_form: np.ndarray, spacing: float) -> np.ndarray:
    """Soft form I count per slice of height ~`spacing` along z, the slices centred on the
    crystal's planes (those of the molecules with p > 0.9)."""
    z = frame.centres(1)[:, 2] % frame.box[2]
    n_slices = int(round(frame.box[2] / spacing))
    height = frame.box[2] / n_slices
    crystal = p_form > 0.9
    phase = np.angle(np.exp(2j * np.pi * z[crystal] / height).mean()) / (2 * np.pi) * height if crystal.any() else 0.0
    index = np.floor((z - phase) / height + 0.5).astype(int) % n_slices
    return np.bincount(index, weights=p_form, minlength=n_slices)


def main() -> None:
    from molenv.descriptors import compute_descriptors
    from molenv.models import open_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a pinning window's run directory (pin-<a>)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "urea_sf.molenv", help="the SF model of the window's bias")
    parser.add_argument("--spacing", type=float, default=4.69, help="layer spacing along z, A (form I c; default 4.69)")
    parser.add_argument("--from", dest="start", type=float, default=0.0, help="frames from this time on, ps, for the mean profile")
    parser.add_argument("--step", type=int, default=1, help="every STEP-th frame")
    args = parser.parse_args()
    model = open_model(args.model)
    model = getattr(model, "model", model)
    k = list(model.classes).index("I")
    rows = []
    for n, frame in enumerate(frames(args.run)):
        if n % args.step:
            continue
        p = model.predict_proba(compute_descriptors(frame, model.descriptors))[:, k]
        counts = layer_counts(frame, p, args.spacing)
        rows.append((frame.time, counts))
        print(f"{frame.time:7.1f} ps  n_I {p.sum():6.1f}  layers " + " ".join(f"{c:4.1f}" for c in counts))
    kept = [c for t, c in rows if t >= args.start]
    if kept:
        mean = np.mean(kept, axis=0)
        print(f"mean over {len(kept)} frames from {args.start:g} ps: n_I {mean.sum():.1f}; layers " + " ".join(f"{c:4.1f}" for c in mean))


if __name__ == "__main__":
    main()
