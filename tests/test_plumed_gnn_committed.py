"""The committed GNN (models/nicotinamide_gnn.molenv, published size) in MOLENV_CLASSIFY on a
committed MD frame: the action's probabilities equal the numpy specification to 1e-9 and the
torch model the file was exported from (models/nicotinamide_gnn.pt, float32) to 5e-6, with the
same class for every molecule. The float32 bound: on the regenerated nicotinamide-I-350K frame
one molecule sits near a decision (p 0.55 / 0.44) and float32 rounding moves it by 2.9e-6;
the action agrees with the float64 numpy model to 1e-9."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from molenv.classification import classify_trajectory
from molenv.models import open_model
from molenv.trajectory import Trajectory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "regtest"))

from harness import run_driver, xyz_text  # noqa: E402

MODELS = REPO / "models"
RUN = REPO / "data" / "nicotinamide" / "nicotinamide-I-350K"


@pytest.fixture(scope="module")
def frame_and_references(tmp_path_factory):
    folder = tmp_path_factory.mktemp("committed")
    # a copy: MDAnalysis writes an offsets file next to an XTC it reads
    xtc, pdb = (shutil.copy(RUN.with_suffix(suffix), folder) for suffix in (".xtc", ".pdb.gz"))
    trajectory = Trajectory(xtc, "nicotinamide", topology=pdb, start=0, stop=1)
    by_torch = classify_trajectory(trajectory, open_model(MODELS / "nicotinamide_gnn.pt"), progress=False)
    by_numpy = classify_trajectory(trajectory, open_model(MODELS / "nicotinamide_gnn.molenv"), progress=False)
    return trajectory[0], by_torch, by_numpy


@pytest.mark.slow
def test_committed_gnn_in_plumed_equals_numpy_and_torch(tmp_path, frame_and_references):
    frame, by_torch, by_numpy = frame_and_references
    atoms = frame.molecules.reshape(-1) + 1
    text = ("UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
            f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES={','.join(map(str, atoms))} PROB_FILE=prob.dat\n"
            "PRINT ARG=g.nmol FILE=colvar\n")
    matrix = frame.box_matrix()
    run = run_driver(tmp_path, text, ["--ixyz", "traj.xyz", "--length-units", "A"],
                     {"traj.xyz": xyz_text([frame.positions], [matrix]), "gnn.molenv": MODELS / "nicotinamide_gnn.molenv"})
    assert run.returncode == 0, run.output[-3000:]
    fields, prob = run.read_table("prob.dat")
    n_forms = len(by_numpy.classes)
    polymorph, topology = prob[:, 2 : 2 + n_forms], prob[:, 2 + n_forms :]
    assert polymorph.shape == by_numpy.probabilities[0].shape
    np.testing.assert_allclose(polymorph, by_numpy.probabilities[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(topology, by_numpy.topology_probabilities[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(polymorph, by_torch.probabilities[0], rtol=0, atol=5e-6)  # float32 rounding
    assert (polymorph.argmax(axis=1) == by_torch.probabilities[0].argmax(axis=1)).all()
