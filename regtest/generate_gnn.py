"""Generate the regression test of MOLENV_CLASSIFY's GNN kind, regtest/rt-gnn (committed).

    .venv/bin/python regtest/generate_gnn.py

A random toy GNN model file (molenv.gnn.synthetic.random_model: 2 graph convolutions,
hidden 8, cutoff 4.5 A), 18 toy urea molecules in a triclinic cell with molecules split
across the boundary, three frames (thermal shakes; the third in a cell scaled by 1 %),
input in nm without UNITS (the action converts to Angstrom); the per-molecule probabilities
also as the MOLENV_PROBABILITIES matrix (polymorph, then topology columns), printed by
DUMPVECTOR.  The references are NOT what
the action printed: they are computed with molenv.gnn.numpy_model.classify_frame, the
executable specification of the GNN kind, on the positions as the driver reads them.
Kept apart from generate.py so that regenerating this test leaves the SF tests alone
(generate.py calls it at its end).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "py"))

import bruteforce as bf  # noqa: E402
from generate import LIB, fresh, read_back, write_config, write_matrix_dump, write_table, write_xyz  # noqa: E402
from molenv.frames import MolecularFrame  # noqa: E402
from molenv.gnn import synthetic  # noqa: E402
from molenv.gnn.modelfile import read_gnn_model, write_gnn_model  # noqa: E402
from molenv.gnn.numpy_model import classify_frame  # noqa: E402

SHEAR = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.25, 1.0]])


def box6(matrix: np.ndarray) -> np.ndarray:
    """[a, b, c, alpha, beta, gamma] of cell vectors (rows; a along x, b in the xy plane)."""
    lengths = np.linalg.norm(matrix, axis=1)

    def angle(u, v):
        return np.degrees(np.arccos(matrix[u] @ matrix[v] / (lengths[u] * lengths[v])))

    return np.r_[lengths, angle(1, 2), angle(0, 2), angle(0, 1)]


def main():
    rng = np.random.default_rng(20250615)
    d = fresh("rt-gnn")
    model = synthetic.random_model(rng, cutoff=4.5, convs=2, name="rt-gnn random toy GNN")
    model = read_gnn_model(write_gnn_model(model, d / "gnn.molenv"))  # what the action reads

    crystal = synthetic.crystal("parallel", (2, 3, 3), rng)  # 12 x 13.5 x 10.5 A, 18 molecules
    h = np.diag(crystal.box[:3]) @ SHEAR
    positions = crystal.positions @ SHEAR
    frames, boxes = [], []
    for k, (shake, scale) in enumerate([(0.0, 1.0), (0.05, 1.0), (0.05, 1.01)]):
        x = (positions + rng.normal(scale=shake, size=positions.shape)) * scale
        cell = h * scale
        frac = x @ np.linalg.inv(cell)
        frames.append((frac - np.floor(frac)) @ cell)  # wrapped: molecules split across the faces
        boxes.append(cell)
    heights = 1.0 / np.linalg.norm(np.linalg.inv(h), axis=0)
    assert heights.min() > 2 * model.cutoff, heights
    write_xyz(d / "traj.xyz", frames, boxes, 0.1)
    read_frames, read_boxes = read_back(frames, boxes, 0.1)
    results = [
        classify_frame(model, MolecularFrame(positions=p, box=box6(b), molecules=crystal.molecules, atomic_numbers=crystal.atomic_numbers))
        for p, b in zip(read_frames, read_boxes)
    ]
    N = crystal.n_molecules
    path = bf.Path([0, 1], np.array([[0.9 - 0.2 * i, 0.1 + 0.2 * i] for i in range(5)]), 20.0)

    classes = model.classes
    fields = ["time"] + [f"g.n_{c}" for c in classes] + [f"g.f_{c}" for c in classes] + ["g.nmol", "g.s", "g.z", "ss"]
    rows = []
    for t, r in enumerate(results):
        n = r.polymorph.sum(axis=0)
        f = n / N
        s, z = bf.path_cv(f[path.classes], path)
        rows.append([float(t), *n, *f, float(N), s, z, float(r.topology[:, 1].sum())])
    write_table(d / "colvar.reference", fields, rows)
    prob = [[float(t), m + 1, *r.polymorph[m], *r.topology[m]] for t, r in enumerate(results) for m in range(N)]
    write_table(d / "prob.dat.reference", ["time", "mol", *classes, *model.topology_classes], prob)
    write_matrix_dump(d / "probs.reference", "pg", [*classes, *model.topology_classes], [np.hstack([r.polymorph, r.topology]) for r in results])
    (d / "plumed.dat").write_text(
        f"LOAD FILE={LIB}\n"
        f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{crystal.n_atoms} NUM_THREADS=2 ...\n"
        "   PATH_CLASSES=I,IV PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20\n"
        "   PROB_FILE=prob.dat PROB_VECTORS\n...\n"
        "ss: SUM ARG=g.p_surface PERIODIC=NO\n"
        "pg: MOLENV_PROBABILITIES CLASSIFIER=g\n"
        f"PRINT ARG={','.join(fields[1:])} FILE=colvar FMT=%.17g\n"
        "DUMPVECTOR ARG=pg FILE=probs FMT=%.17g PRINT_ONE_FILE STRIDE=1\n"
    )
    write_config(d / "config", "--plumed plumed.dat --ixyz traj.xyz",
                 note="GNN model file (kind gnn): triclinic cell, split molecules, a cell scaled by 1 % in frame 3, input in nm; "
                      "references from molenv.gnn.numpy_model")
    print("generated", d)


if __name__ == "__main__":
    main()
