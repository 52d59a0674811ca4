#!/usr/bin/env python3
"""What the authors' only nicotinamide crystal frame in the reference folder is
(docs/results_notes.md, "Where the targets of issue 13 stand").

    .venv/bin/python scripts/reference_frame_check.py

Prints the frame's kinetic temperature (from its velocities, LAMMPS real units), what the
authors' SF-MLP calls its molecules, and how broad its molecules' symmetry functions are
against our form VII runs at 100-350 K: form VII (P-1, Z = 2) has one molecule in the
asymmetric unit, so in a perfect lattice every molecule has the same descriptors and their
spread over the molecules of one frame measures the thermal disorder of that frame.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from molenv.descriptors import compute_descriptors
from molenv.reference import shipped_reference_model
from molenv.trajectory import Trajectory, type_elements_from_data

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))
DUMP = REFERENCE / "nicotinamide" / "formVII_5x2x2_molstruc.dump"
DATA = REFERENCE / "nicotinamide" / "formVII_cell_gaff.data"
MASSES = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999}
GAS_CONSTANT = 8.314462618  # J/(mol K)
REAL_UNITS = 1e7  # (g/mol) (A/fs)^2 in J/mol


def kinetic_temperature(dump: Path, type_elements: dict[str, str]) -> float:
    """3/2 N k T = kinetic energy of the dump's first frame (columns type and vx vy vz)."""
    lines = dump.read_text().splitlines()
    n_atoms = int(lines[3])
    columns = lines[8].split()[2:]
    rows = [line.split() for line in lines[9:9 + n_atoms]]
    kind = columns.index("type") if "type" in columns else columns.index("element")
    v = np.array([[float(r[columns.index(c)]) for c in ("vx", "vy", "vz")] for r in rows])
    m = np.array([MASSES[type_elements[r[kind]]] for r in rows])
    return float((m[:, None] * v**2).sum() * REAL_UNITS / (3 * n_atoms * GAS_CONSTANT))


def main() -> None:
    model = shipped_reference_model("nicotinamide", REFERENCE)
    type_elements = type_elements_from_data(DATA)
    frame = next(iter(Trajectory(DUMP, "nicotinamide", type_elements=type_elements)))
    theirs = compute_descriptors(frame, model.descriptors)
    called, counts = np.unique(np.array(model.classes)[model.predict_proba(theirs).argmax(axis=1)], return_counts=True)
    print(f"{DUMP.name}: {len(theirs)} molecules, kinetic temperature {kinetic_temperature(DUMP, type_elements):.1f} K; "
          f"the authors' model calls them {dict(zip(called.tolist(), counts.tolist()))}")
    for temperature in (100, 250, 300, 350):
        name = f"nicotinamide-VII-{temperature}K"
        ours = Trajectory(REPO / "data" / "nicotinamide" / f"{name}.xtc", "nicotinamide", topology=REPO / "data" / "nicotinamide" / f"{name}.pdb.gz")
        spread = np.mean([compute_descriptors(f, model.descriptors).std(axis=0) for f in ours], axis=0)
        ratio = theirs.std(axis=0) / spread
        print(f"  spread of its symmetry functions over the molecules / that of {name}: median {np.median(ratio):.3f} "
              f"(largest {ratio.max():.3f})")


if __name__ == "__main__":
    main()
