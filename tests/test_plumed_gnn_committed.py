"""The committed GNNs (models/nicotinamide_gnn.molenv, published size; models/urea_gnn.molenv,
two convolutions) in MOLENV_CLASSIFY on a committed MD frame of their molecule: the action's
probabilities equal the numpy specification and the torch model the file was exported from
(models/<name>.pt) evaluated in float64, both to 1e-9 (they agree to ~1e-15). As `molenv
classify` runs it, in float32, the torch model gives every molecule the same class, its
probabilities within float32 rounding (5e-6: float32 moves the probabilities of a molecule
near a decision by a few 1e-6)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from molenv.classification import classify_trajectory
from molenv.gnn.export import load_exported
from molenv.gnn.graph import graph_edges
from molenv.models import open_model
from molenv.trajectory import Trajectory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "regtest"))

from harness import run_driver, xyz_text  # noqa: E402

MODELS = REPO / "models"
# (molecule, committed trajectory): the model models/<molecule>_gnn.* on its first frame
CASES = [("nicotinamide", "nicotinamide-I-350K"), ("urea", "urea-IV-200K")]


@pytest.fixture(scope="module", params=CASES, ids=[molecule for molecule, _ in CASES])
def frame_and_references(request, tmp_path_factory):
    molecule, name = request.param
    run = REPO / "data" / molecule / name
    folder = tmp_path_factory.mktemp("committed")
    # a copy: MDAnalysis writes an offsets file next to an XTC it reads
    xtc, pdb = (shutil.copy(run.with_suffix(suffix), folder) for suffix in (".xtc", ".pdb.gz"))
    trajectory = Trajectory(xtc, molecule, topology=pdb, start=0, stop=1)
    by_torch = classify_trajectory(trajectory, open_model(MODELS / f"{molecule}_gnn.pt"), progress=False)
    by_numpy = classify_trajectory(trajectory, open_model(MODELS / f"{molecule}_gnn.molenv"), progress=False)
    return MODELS / f"{molecule}_gnn", trajectory[0], by_torch, by_numpy


def torch_float64(frame, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(polymorph, topology) probabilities of the TorchScript export at `path` with its
    weights, positions and cell shifts in float64 (`molenv.gnn.graph.frame_to_graph` builds
    float32 graphs, so the graph is built here from its edges)."""
    import torch

    network, metadata = load_exported(path)
    atoms = frame.molecules.reshape(-1)
    edge_index, shift, wrapped = graph_edges(frame.positions[atoms], frame.box, metadata["cutoff"])
    n_molecules, per_molecule = frame.molecules.shape
    with torch.inference_mode():
        polymorph, topology = network.double()(torch.as_tensor(frame.atomic_numbers[atoms], dtype=torch.long), torch.from_numpy(wrapped),
                                               torch.from_numpy(edge_index), torch.from_numpy(shift),
                                               torch.arange(n_molecules).repeat_interleave(per_molecule), n_molecules)
    return polymorph.numpy(), topology.numpy()


@pytest.mark.slow
def test_committed_gnn_in_plumed_equals_numpy_and_torch(tmp_path, frame_and_references):
    model, frame, by_torch, by_numpy = frame_and_references
    atoms = frame.molecules.reshape(-1) + 1
    text = ("UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
            f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES={','.join(map(str, atoms))} PROB_FILE=prob.dat\n"
            "PRINT ARG=g.nmol FILE=colvar\n")
    matrix = frame.box_matrix()
    run = run_driver(tmp_path, text, ["--ixyz", "traj.xyz", "--length-units", "A"],
                     {"traj.xyz": xyz_text([frame.positions], [matrix]), "gnn.molenv": model.with_suffix(".molenv")})
    assert run.returncode == 0, run.output[-3000:]
    fields, prob = run.read_table("prob.dat")
    n_forms = len(by_numpy.classes)
    polymorph, topology = prob[:, 2 : 2 + n_forms], prob[:, 2 + n_forms :]
    assert polymorph.shape == by_numpy.probabilities[0].shape
    np.testing.assert_allclose(polymorph, by_numpy.probabilities[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(topology, by_numpy.topology_probabilities[0], rtol=0, atol=1e-9)
    polymorph64, topology64 = torch_float64(frame, model.with_suffix(".pt"))
    np.testing.assert_allclose(polymorph, polymorph64, rtol=0, atol=1e-9)
    np.testing.assert_allclose(topology, topology64, rtol=0, atol=1e-9)
    # molenv classify's float32 path (open_model, frame_to_graph): the same classes
    np.testing.assert_allclose(polymorph, by_torch.probabilities[0], rtol=0, atol=5e-6)
    assert (polymorph.argmax(axis=1) == by_torch.probabilities[0].argmax(axis=1)).all()
