"""Shared pieces of the tests of MOLENV_CLASSIFY's GNN kind (tests/test_plumed_gnn*.py):
a small random GNN model file, toy urea frames (orthorhombic, split across the boundary,
triclinic, a skewed description of a triclinic lattice, a cluster without box), and the
plumed driver input for them; and graph files of toy crystals to train on
(`toy_graph_files`, tests/test_gnn_ddp.py).

The model is tiny (hidden 8, 6 channels, 4 radial functions, 2 convolutions) and the
frames small (96 to 144 atoms, cutoff 4.5 A), so that a driver run takes a fraction of a
second, finite differences over many frames included."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from _frames_support import box_of, sheared, wrapped
from molenv.gnn import synthetic
from molenv.gnn.graph import frame_to_graph, save_graphs
from molenv.gnn.modelfile import write_gnn_model

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import run_driver, xyz_text  # noqa: E402

CUTOFF = 4.5  # A: cells of 10 A are allowed (heights must exceed 9 A)
PATH = "PATH_CLASSES=I,IV PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20"
PATH_IMAGES = np.array([[0.9 - 0.2 * i, 0.1 + 0.2 * i] for i in range(5)])
LAMBDA = 20.0


def model_file(folder: Path, seed: int = 1, convs: int = 2, name: str = "gnn.molenv") -> tuple[Path, object]:
    """(path, GNNModel) of a random model written to folder/name."""
    model = synthetic.random_model(np.random.default_rng(seed), cutoff=CUTOFF, convs=convs)
    return write_gnn_model(model, folder / name), model


def skewed(frame):
    """The same lattice described by the cell vectors a, b + a, c - b: thin perpendicular
    heights (below twice the cutoff) that only the reduced cell has above it."""
    h = frame.box_matrix()
    return frame.replace(box=box_of(np.array([h[0], h[1] + h[0], h[2] - h[1]])))


def make_frames() -> dict:
    rng = np.random.default_rng(11)
    orthorhombic = synthetic.crystal("antiparallel", (2, 1, 3), rng)  # 13 x 10 x 10.5 A, 12 molecules
    triclinic = wrapped(sheared(synthetic.crystal("parallel", (2, 3, 3), rng)))  # 18 molecules, split
    return {
        "orthorhombic": orthorhombic,
        "split": wrapped(orthorhombic),
        "triclinic-split": triclinic,
        "skewed-cell": skewed(triclinic),
        "cluster": synthetic.cluster(synthetic.crystal("parallel", (3, 3, 4), rng), 6.0)[0],
    }


FRAMES = make_frames()


def driver_files(frame_list, model_path: Path, boxes=None) -> dict:
    boxes = [f.box_matrix() for f in frame_list] if boxes is None else boxes
    return {"traj.xyz": xyz_text([f.positions if hasattr(f, "positions") else f for f in frame_list], boxes), "gnn.molenv": model_path}


ARGS = ["--ixyz", "traj.xyz", "--length-units", "A"]


def head(extra: str = "") -> str:
    return f"UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n{extra}"


def path_cv(f: np.ndarray) -> tuple[float, float]:
    """s (0..1) and z of the fractions of I, IV on the test path (docs/plumed_action.md)."""
    D = ((f[None, :] - PATH_IMAGES) ** 2).sum(axis=1)
    e = np.exp(-LAMBDA * D)
    return float((np.arange(len(D)) * e).sum() / e.sum() / (len(D) - 1)), float(-np.log(e.sum()) / LAMBDA)


TOY_FORMS = ["parallel", "antiparallel"]


def toy_graph_files(folder: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """folder/train.pt and folder/val.pt (`molenv train gnn --train --val`): toy crystals of
    the two `TOY_FORMS` in turn, 12 molecules (96 atoms) each, fully labelled (bulk)."""
    rng = np.random.default_rng(seed)

    def graphs(n):
        return [frame_to_graph(synthetic.crystal(TOY_FORMS[k % 2], [(2, 2, 3), (2, 1, 3)][k % 2], rng), polymorph=k % 2, topology=0) for k in range(n)]

    folder.mkdir(parents=True, exist_ok=True)
    save_graphs(folder / "train.pt", graphs(n_train), TOY_FORMS)
    save_graphs(folder / "val.pt", graphs(n_val), TOY_FORMS)
    return folder / "train.pt", folder / "val.pt"


__all__ = ["ARGS", "CUTOFF", "FRAMES", "PATH", "TOY_FORMS", "driver_files", "head", "model_file", "path_cv", "run_driver",
           "toy_graph_files", "xyz_text"]
