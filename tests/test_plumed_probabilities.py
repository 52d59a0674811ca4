"""MOLENV_PROBABILITIES: the per-molecule probabilities of a MOLENV_CLASSIFY action as a matrix
taken through PLUMED's data interface, equal to the action's PROB_FILE numbers (to 1e-12) on
committed MD frames, for the SF model models/urea_sf.molenv (as `molenv reanalyse --analyse`
reads it: a slab's action without PROB_FILE, read every FILE_STRIDE steps) and the GNN model
models/nicotinamide_gnn.molenv (polymorph, then topology columns); and its error messages."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from _analysis_support import read_prob_file
from molenv.analysis import read_table
from molenv.frames import box_matrix
from molenv.modelfile import read_model
from molenv.plumed.inputs import classify_actions, molecule_keywords
from molenv.plumed.reanalysis import PlumedFeeder, ProbabilityCollector, open_universe, reanalyse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "regtest"))
from harness import run_driver  # noqa: E402

MODELS = REPO / "models"
DATA = REPO / "data"


def copied_run(name: str, folder: Path) -> tuple[Path, Path]:
    """(xtc, pdb) of a committed run, copied: MDAnalysis writes an offsets file next to an XTC."""
    run = DATA / name
    if not run.with_suffix(".xtc").is_file():
        pytest.skip(f"committed MD data {run}.xtc not found")
    return tuple(Path(shutil.copy(run.with_suffix(suffix), folder)) for suffix in (".xtc", ".pdb.gz"))


def test_sf_matrix_equals_prob_file(tmp_path, plumed_module, monkeypatch):
    """Four frames of the urea I/IV interface: `c` writes PROB_FILE every 2 steps; `r` counts a
    slab, has no PROB_FILE, and is read as `molenv reanalyse --analyse` reads it. The records
    at frames 0 and 2 hold the probabilities of every molecule, also outside the slab, equal to
    c's PROB_FILE; r is calculated at those two steps only, and c's printed columns are its
    scalar components alone."""
    xtc, pdb = copied_run("urea/urea-I-IV-interface-100K", tmp_path)
    model = MODELS / "urea_sf.molenv"
    (tmp_path / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={plumed_module}\n"
        f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-2720 PROB_FILE=prob.dat FILE_STRIDE=2\n"
        f"r: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-2720 REGION_AXIS=y REGION_CENTER=20 REGION_HALFWIDTH=3 REGION_SMOOTHING=1 "
        "FILE_STRIDE=2 TIMINGS\n"
        "PRINT ARG=c.* FILE=colvar STRIDE=2\n"
    )
    monkeypatch.chdir(tmp_path)
    u = open_universe(xtc, pdb)
    sf = read_model(model)
    action = classify_actions("plumed.dat")[1]
    molecules = action.molecules(u.atoms.n_atoms, sf.descriptors.atoms_per_molecule)
    collect = ProbabilityCollector(action, molecules, sf.descriptors.centre_atom, np.zeros(u.atoms.n_atoms, dtype=np.int64), sf.classes,
                                   with_coordination=False)
    run = reanalyse("plumed.dat", xtc, universe=u, stop=4, progress=False, collect=collect)
    assert [r.frame for r in run.records] == [0, 2]
    _, prob = read_prob_file("prob.dat", 340, sf.classes)
    got = np.stack([r.probabilities for r in run.records])
    assert got.shape == prob.shape == (2, 340, 3)
    assert np.abs(got - prob).max() <= 1e-12
    result = collect.result(run.records, sf.network.output_activation)
    assert result.source == "MOLENV_CLASSIFY r (plumed.dat:4)"
    log = Path("plumed.log").read_text()
    assert "the probabilities of the 340 molecules of r: a 340 x 3 matrix, columns I,IV,melt" in log
    assert "MOLENV_CLASSIFY r timings: 2 steps" in log  # only where the matrix is read (GET STRIDE=2)
    assert read_table("colvar").names == ["time", *(f"c.{k}_{c}" for k in "nf" for c in sf.classes), "c.nmol"]


@pytest.mark.slow
def test_gnn_matrix_equals_prob_file(tmp_path, plumed_module, monkeypatch):
    """Two frames of a nicotinamide form I crystal with the committed GNN: the matrix has the
    polymorph, then the topology (bulk, surface) columns of the PROB_FILE, equal to 1e-12."""
    from molenv.gnn.modelfile import read_gnn_model
    from molenv.trajectory import Trajectory

    xtc, pdb = copied_run("nicotinamide/nicotinamide-I-350K", tmp_path)
    model = MODELS / "nicotinamide_gnn.molenv"
    gnn = read_gnn_model(model)
    traj = Trajectory(xtc, "nicotinamide", topology=pdb, stop=2)
    molecules = traj.atoms.indices[traj.molecules]  # the file's atoms, in the model's order
    (tmp_path / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={plumed_module}\n"
        f"g: MOLENV_CLASSIFY MODEL={model} {' '.join(molecule_keywords(molecules))} PROB_FILE=prob.dat\n"
    )
    monkeypatch.chdir(tmp_path)
    u = open_universe(xtc, pdb)
    got = []
    with PlumedFeeder("plumed.dat", u.atoms.n_atoms, 1.0) as feeder:
        feeder.read_line("p: MOLENV_PROBABILITIES CLASSIFIER=g")
        matrix = feeder.matrix("p")
        for step, ts in enumerate(u.trajectory[:2]):
            feeder.feed(step, u.atoms.positions, box_matrix(ts.dimensions))
            got.append(matrix.copy())
    columns = [*gnn.classes, *gnn.topology_classes]
    _, prob = read_prob_file("prob.dat", len(molecules), columns)
    assert np.stack(got).shape == prob.shape == (2, len(molecules), len(columns)) and len(gnn.topology_classes) == 2
    assert np.abs(np.stack(got) - prob).max() <= 1e-12
    assert f"a {len(molecules)} x {len(columns)} matrix, columns {','.join(columns)}" in Path("plumed.log").read_text()


CASE = REPO / "regtest" / "rt-ortho-A"  # 20 toy molecules of 5 atoms
FILES = {"traj.xyz": CASE / "traj.xyz", "softmax.molenv": CASE / "softmax.molenv"}
CLASSIFIER = "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-100\n"


@pytest.mark.parametrize("lines, message", [
    ("p: MOLENV_PROBABILITIES CLASSIFIER=nothere\n", "CLASSIFIER: there is no action labelled nothere before this line"),
    ("v: VOLUME\np: MOLENV_PROBABILITIES CLASSIFIER=v\n", "CLASSIFIER=v is a VOLUME action, not MOLENV_CLASSIFY"),
    ("p: MOLENV_PROBABILITIES CLASSIFIER=c\ns: SUM ARG=p PERIODIC=NO\nRESTRAINT ARG=s AT=0 KAPPA=1\n",
     "a bias acts on the probability matrix p, which has no derivatives: bias the n_<CLASS>, f_<CLASS>, s or z components of the "
     "MOLENV_CLASSIFY action instead"),
])
def test_errors(tmp_path, plumed_module, lines, message):
    run = run_driver(tmp_path, CLASSIFIER + lines, ["--ixyz", "traj.xyz", "--length-units", "A"], FILES)
    assert run.returncode != 0
    assert message in " ".join(run.output.split())
