"""MOLENV_CLASSIFY rejects bad input with a message naming the problem.

Model-file problems: the C++ reader must give exactly the message of the Python
reader (molenv.modelfile.read_model) for the same broken file."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402
from molenv.modelfile import ModelFileError, read_model  # noqa: E402

CASE = REGTEST / "rt-ortho-A"  # 20 toy molecules of 5 atoms, box 10 x 10.5 x 11 A, model cutoff 4.5 A
NATOMS = 100
FILES = {"traj.xyz": CASE / "traj.xyz", "softmax.molenv": CASE / "softmax.molenv"}
HEAD = "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
ARGS = ["--ixyz", "traj.xyz", "--length-units", "A"]


def fails_with(tmp_path, plumed_dat, message, files=None):
    run = run_driver(tmp_path, HEAD + plumed_dat, ARGS, dict(FILES, **(files or {})))
    assert run.returncode != 0, f"expected failure with '{message}', plumed ran fine"
    flat = " ".join(run.output.split())
    assert " ".join(message.split()) in flat, f"'{message}' not in:\n{run.output[-2500:]}"
    return run.output


# ----------------------------------------------------------------------------- model file


MODEL_EDITS = [  # (old, new) applied to the test model's text
    ("molenv_model 1", "molenv_model 2"),
    ("centre_atom 1", "centre_atom 9"),
    ("vector 2 3 5", "vector 2 3 12"),
    ("vector 2 3 5", "vector 2 5 5"),
    ("cutoff 3.5 4.5", "cutoff 4.5 3.5"),
    ("cutoff 3.5 4.5", "cutoff -1.0 4.5"),
    ("cutoff 3.5 4.5", "cutoff 3.5 inf"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 2 S1 - nan 1.5"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 2 S7 - 3.0 1.5"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 2 S1 - 3.0"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 2 S1 1 3.0 1.5"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 3 S1 - 3.0 1.5"),
    ("descriptor 2 S1 - 3.0 1.5", "descriptor 2 S1 - 3.0 x1.5"),
    ("descriptor 1 S3 1", "descriptor 1 S3 3"),
    ("descriptor 1 S3 1", "descriptor 1 S3 -"),
    ("classes 3 A B Melt", "classes 4 A B Melt"),
    ("classes 3 A B Melt", "classes 3 A A Melt"),
    ("classes 3 A B Melt", "classes 3 A B Me-lt"),
    ("atoms_per_molecule 5", "atoms_per_molecule five"),
    ("atoms_per_molecule 5", "atoms_per_molecule 0"),
    ("descriptor_count 10", "descriptor_count 9"),
    ("layer 3 6 3", "layer 3 6 4"),
    ("layer 2 7 6", "layer 2 8 6"),
    ("layer_count 3", "layer_count 0"),
    ("hidden_activation sigmoid", "hidden_activation relu6"),
    ("hidden_activation sigmoid", "hidden_activation softmax"),
    ("output_activation softmax", "output_activation tanh"),
    ("scaling 1 ", "scaling 2 "),
    ("end", "end\nextra 1"),
    ("end", ""),
]


@pytest.mark.parametrize("old, new", MODEL_EDITS, ids=[f"{o}->{n}" for o, n in MODEL_EDITS])
def test_model_file_errors_match_python(tmp_path, old, new):
    text = (CASE / "softmax.molenv").read_text()
    assert old in text, old
    bad = tmp_path / "bad.molenv"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ModelFileError) as err:
        read_model(bad)
    python_message = str(err.value)
    assert str(bad) in python_message
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL={bad} MOLECULES=1-{NATOMS}\n", "cannot read MODEL: " + python_message)


def test_missing_model_file(tmp_path):
    missing = tmp_path / "nope.molenv"
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL={missing} MOLECULES=1-{NATOMS}\n", f"{missing}: model file not found")


# ----------------------------------------------------------------------------- keywords


@pytest.mark.parametrize(
    "line, message",
    [
        ("MOLECULES=1-99", "MOLECULES lists 99 atoms, which is not a multiple of the model's atoms_per_molecule=5"),
        ("MOLECULE1=1-5 MOLECULE2=6,7,8", "MOLECULE2 lists 3 atoms but the model's molecules have atoms_per_molecule=5"),
        ("MOLECULES=1-100 MOLECULE1=1-5", "give either MOLECULES or MOLECULE1, MOLECULE2, ..., not both"),
        ("", "no molecules: give MOLECULES=first-last or MOLECULE1, MOLECULE2, ..."),
        ("MOLECULE1=1-5 MOLECULE2=5-9", "atom 5 belongs to more than one molecule"),
        ("MOLECULES=1-5", "at least two molecules are needed"),
        ("MOLECULES=1-100 NUM_THREADS=-1", "NUM_THREADS must be positive"),
        ("MOLECULES=1-100 REGION_AXIS=w REGION_CENTER=0 REGION_HALFWIDTH=1 REGION_SMOOTHING=1", "REGION_AXIS must be x, y or z, got w"),
        ("MOLECULES=1-100 REGION_AXIS=z REGION_HALFWIDTH=1 REGION_SMOOTHING=1", "REGION_AXIS needs REGION_CENTER"),
        ("MOLECULES=1-100 REGION_AXIS=z REGION_CENTER=0 REGION_SMOOTHING=1", "REGION_AXIS needs REGION_HALFWIDTH"),
        ("MOLECULES=1-100 REGION_AXIS=z REGION_CENTER=0 REGION_HALFWIDTH=1", "REGION_AXIS needs REGION_SMOOTHING"),
        ("MOLECULES=1-100 REGION_CENTER=0", "REGION_CENTER/REGION_HALFWIDTH/REGION_SMOOTHING need REGION_AXIS"),
        ("MOLECULES=1-100 REGION_AXIS=z REGION_CENTER=0 REGION_HALFWIDTH=4 REGION_SMOOTHING=2",
         "REGION_HALFWIDTH + REGION_SMOOTHING (6.000000 A) exceeds half the cell height along the region axis (5.500000 A)"),
        ("MOLECULES=1-100 PATH_CLASSES=A,B PATH_START=0.9 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20",
         "PATH_START and PATH_END need one fraction per path class (2: A,B)"),
        ("MOLECULES=1-100 PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=1 LAMBDA=20", "PATH_NIMAGES must be at least 2"),
        ("MOLECULES=1-100 PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=1000000000 LAMBDA=20", "PATH_NIMAGES must be at most 100000"),
        ("MOLECULES=1-100 NUM_THREADS=100000", "NUM_THREADS=100000 is more than 1024 threads"),
        ("MOLECULES=1-100 PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5", "a path needs LAMBDA > 0"),
        ("MOLECULES=1-100 PATH_CLASSES=A,Q PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=2",
         "PATH_CLASSES: no class Q in the model (classes: A,B,Melt)"),
        ("MOLECULES=1-100 PATH_CLASSES=A,A PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=2", "PATH_CLASSES: class A given twice"),
        ("MOLECULES=1-100 PATH_IMAGE1=1,0,0 PATH_IMAGE2=0,1 LAMBDA=2", "PATH_IMAGE2 has 2 fractions, expected one per path class (3: A,B,Melt)"),
        ("MOLECULES=1-100 PATH_IMAGE1=1,0,0 LAMBDA=2", "a path needs at least two images"),
        ("MOLECULES=1-100 PATH_IMAGE1=1,0,0 PATH_IMAGE2=0,1,0 PATH_NIMAGES=3 LAMBDA=2", "give either PATH_START/PATH_END/PATH_NIMAGES or PATH_IMAGE1"),
        ("MOLECULES=1-100 LAMBDA=2", "PATH_CLASSES/LAMBDA need path images"),
        ("MOLECULES=1-100 FILE_STRIDE=0", "FILE_STRIDE must be at least 1"),
        ("MOLECULES=1-100 WHATEVER=3", "cannot understand the following words from the input line"),
    ],
)
def test_keyword_errors(tmp_path, line, message):
    # runtime checks (box, region) need the action to be computed: print something
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL=softmax.molenv {line}\nPRINT ARG=c.nmol FILE=colvar\n", message)


def test_box_too_small(tmp_path):
    """A 10 A cell cannot hold a 4.5 A cutoff in a cell sheared so that a height is < 9 A."""
    frames, _ = read_xyz(CASE / "traj.xyz")
    box = np.array([[10.0, 0, 0], [0, 10.5, 0], [0, 5.0, 8.8]])
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{NATOMS}\nPRINT ARG=c.n_A FILE=colvar\n",
               "the periodic box is too small for the model cutoff: the cell height perpendicular to the face opposite cell vector c "
               "is 8.800000 A, it must be at least 2*rmax = 9.000000 A",
               {"traj.xyz": xyz_text(frames[:1], [box])})


def test_zero_length_vector(tmp_path):
    frames, boxes = read_xyz(CASE / "traj.xyz")
    pos = frames[0].copy()
    pos[5 * 6 + 1] = pos[5 * 6]  # molecule 7: atom A on top of the centre X (vector 1)
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{NATOMS}\nPRINT ARG=c.n_A FILE=colvar\n",
               "molecule 7 has an intramolecular vector of zero length", {"traj.xyz": xyz_text([pos], boxes[:1])})


def test_bias_on_per_molecule_vector(tmp_path):
    fails_with(tmp_path, f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{NATOMS} PROB_VECTORS\n"
               "s: SUM ARG=c.p_A PERIODIC=NO\nRESTRAINT ARG=s AT=0 KAPPA=1\n",
               "a bias acts on the per-molecule vector p_A, which has no derivatives")
