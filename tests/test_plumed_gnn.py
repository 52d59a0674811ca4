"""MOLENV_CLASSIFY with a GNN model file (molenv_model 2, kind gnn): values and errors.

* the probabilities (polymorph and topology, PROB_FILE and PROB_VECTORS) and every scalar
  component (n_, f_, nmol, path s and z) equal the executable specification
  `molenv.gnn.numpy_model.classify_frame` (float64) to 1e-9 on toy urea frames:
  orthorhombic, molecules split across the boundary, triclinic with split molecules, the
  same triclinic lattice given by a skewed (non-reduced) cell, a cluster without box; with
  one and two graph convolutions;
* atoms in any order (MOLECULES as a list) with atoms outside the molecules, which are no
  nodes of the graph; the result does not depend on NUM_THREADS or the neighbour list;
* bad model files are refused with exactly the message of
  `molenv.gnn.modelfile.read_gnn_model`; a small box, a wrong MOLECULES length, coincident
  atoms, SF-only keywords and a bias on a per-molecule vector with a message naming the
  problem.

Derivatives: tests/test_plumed_gnn_forces.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from _gnn_support import ARGS, FRAMES, PATH, REGTEST, driver_files, head, model_file, path_cv, run_driver, xyz_text
from molenv.gnn.modelfile import read_gnn_model
from molenv.gnn.numpy_model import GNNInputError, classify_frame
from molenv.modelfile import ModelFileError

FORMS = ["I", "IV", "melt"]
SCALARS = [f"g.n_{c}" for c in FORMS] + [f"g.f_{c}" for c in FORMS] + ["g.nmol", "g.s", "g.z"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{convs: (path, GNNModel)} for random models with 1 and 2 convolutions."""
    folder = tmp_path_factory.mktemp("gnn-models")
    return {convs: model_file(folder, seed=convs, convs=convs, name=f"gnn{convs}.molenv") for convs in (1, 2)}


def classify(tmp_path, path, frames, molecules: str, extra: str = "", boxes=None, env=None):
    text = head(
        f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES={molecules} {PATH} PROB_FILE=prob.dat PROB_VECTORS {extra}\n"
        "sb: SUM ARG=g.p_bulk PERIODIC=NO\nsI: SUM ARG=g.p_I PERIODIC=NO\n"
        f"PRINT ARG={','.join(SCALARS)},sb,sI FILE=colvar FMT=%.17g\n"
    )
    run = run_driver(tmp_path, text, ARGS, driver_files(frames, path, boxes), env=env)
    assert run.returncode == 0, run.output[-3000:]
    return run


def check_outputs(run, frame, model, nframes=1):
    """prob.dat (time, mol, polymorph, topology) and colvar against the numpy reference."""
    ref = classify_frame(model, frame)
    fields, prob = run.read_table("prob.dat")
    assert fields == ["time", "mol", *FORMS, "bulk", "surface"]
    N = frame.n_molecules
    assert prob.shape == (nframes * N, 7)
    for t in range(nframes):
        block = prob[t * N : (t + 1) * N]
        np.testing.assert_array_equal(block[:, 1], np.arange(1, N + 1))
        np.testing.assert_allclose(block[:, 2:5], ref.polymorph, rtol=0, atol=1e-9)
        np.testing.assert_allclose(block[:, 5:], ref.topology, rtol=0, atol=1e-9)
    n = ref.polymorph.sum(axis=0)
    f = n / N
    s, z = path_cv(f[:2])
    fields, colvar = run.read_table("colvar")
    assert fields[1:] == SCALARS + ["sb", "sI"]
    expected = np.r_[n, f, N, s, z, ref.topology[:, 0].sum(), n[0]]
    for row in colvar:
        np.testing.assert_allclose(row[1:], expected, rtol=1e-10, atol=1e-11)
    return ref


@pytest.mark.parametrize("name", list(FRAMES))
def test_probabilities_equal_the_numpy_reference(tmp_path, models, name):
    path, model = models[2]
    frame = FRAMES[name]
    run = classify(tmp_path, path, [frame], f"1-{frame.n_atoms}")
    ref = check_outputs(run, frame, model)
    # the test means something: unsaturated probabilities that differ between molecules
    assert 0.01 < ref.polymorph.max(axis=1).min() and ref.polymorph.max() < 0.99 and np.ptp(ref.polymorph[:, 0]) > 1e-3
    assert "kind gnn: 3 polymorph classes (I,IV,melt), topology classes (bulk,surface), 2 graph convolution(s)" in run.output


def test_one_convolution(tmp_path, models):
    path, model = models[1]
    frame = FRAMES["split"]
    check_outputs(classify(tmp_path, path, [frame], f"1-{frame.n_atoms}"), frame, model)


def test_atoms_in_any_order_and_atoms_outside_the_molecules(tmp_path, models):
    """The atoms of the molecules shuffled among 7 other atoms (e.g. ions): MOLECULES lists
    them in model order; the other atoms are no nodes of the graph, whatever their place."""
    path, model = models[2]
    frame = FRAMES["triclinic-split"]
    rng = np.random.default_rng(4)
    extra = rng.uniform(0, 10, size=(7, 3))
    positions = np.concatenate([frame.positions, extra])
    order = rng.permutation(len(positions))  # file atom k is atom order[k]
    where = np.argsort(order)  # atom a is file atom where[a]
    molecules = ",".join(str(where[a] + 1) for a in frame.molecules.reshape(-1))
    run = classify(tmp_path, path, [positions[order]], molecules, boxes=[frame.box_matrix()])
    check_outputs(run, frame, model)


def test_threads_and_neighbour_list_do_not_change_results(tmp_path, models):
    """Frames of a short 'trajectory' (the atoms shaken a little, so the Verlet list is
    reused, then rebuilt): NUM_THREADS=2 and NL_SKIN=0 give the numbers of the default."""
    path, _ = models[2]
    frame = FRAMES["triclinic-split"]
    rng = np.random.default_rng(8)
    frames = [frame.positions + rng.normal(scale=0.05 * k, size=frame.positions.shape) for k in range(4)]
    boxes = [frame.box_matrix()] * 4
    mols = f"1-{frame.n_atoms}"
    runs = [classify(tmp_path / name, path, frames, mols, extra, boxes=boxes) for name, extra in
            [("default", ""), ("threads", "NUM_THREADS=2"), ("nolist", "NL_SKIN=0")]]
    assert "2 OpenMP thread(s)" in runs[1].output and "searched at every step" in runs[2].output
    ref = [runs[0].read_table(f)[1] for f in ("prob.dat", "colvar")]
    assert np.ptp(ref[1][:, 1]) > 1e-3  # the frames differ
    for run in runs[1:]:
        for a, b in zip(ref, [run.read_table(f)[1] for f in ("prob.dat", "colvar")]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_sf_models_are_still_read_as_before(tmp_path):
    """The kind dispatch leaves SF files to the SF reader (the other tests/test_plumed_*.py
    cover them in full)."""
    case = REGTEST / "rt-ortho-A"
    run = run_driver(tmp_path, head("c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-100\nPRINT ARG=c.n_A FILE=colvar\n"), ARGS,
                     {"traj.xyz": case / "traj.xyz", "softmax.molenv": case / "softmax.molenv"})
    assert run.returncode == 0, run.output[-2000:]
    assert "10 symmetry functions" in run.output


# ----------------------------------------------------------------------------- bad model files


def _set(old: str, new: str):
    """Replace the line starting with `old` (its first occurrence) by `new`."""

    def edit(lines):
        i = next(i for i, line in enumerate(lines) if line.startswith(old))
        lines[i] = new

    return edit


def _drop_last_number(start: str, row: int):
    def edit(lines):
        i = next(i for i, line in enumerate(lines) if line.startswith(start)) + row
        lines[i] = lines[i].rsplit(" ", 1)[0]

    return edit


def _number(start: str, row: int, value: str):
    def edit(lines):
        i = next(i for i, line in enumerate(lines) if line.startswith(start)) + row
        lines[i] = " ".join([value] + lines[i].split()[1:])

    return edit


def _shrink_key(lines):
    """linear key 6 -> 5 outputs, one row fewer: consistent in itself, not with the model."""
    i = next(i for i, line in enumerate(lines) if line.startswith("linear key "))
    lines[i] = "linear key 6 5 bias"
    del lines[i + 6]


def _insert_before(start: str, line: str):
    def edit(lines):
        lines.insert(next(i for i, x in enumerate(lines) if x.startswith(start)), line)

    return edit


def _remove(start: str):
    def edit(lines):
        del lines[next(i for i, x in enumerate(lines) if x.startswith(start))]

    return edit


BAD_FILES = {  # id -> (edit of the model file's lines, part of the expected message)
    "key shape": (_shrink_key, "conv 1 linear 'key' has shape (5, 6) (outputs, inputs); the model needs (6, 6)"),
    "block_linear shape": (lambda L: (_set("linear block_linear 8 8 bias", "linear block_linear 8 7 bias")(L), L.__delitem__(
        next(i for i, x in enumerate(L) if x.startswith("linear block_linear")) + 8)), "conv 1 linear 'block_linear' has shape (7, 8)"),
    "output shape": (lambda L: (_set("linear output 8 5 nobias", "linear output 8 4 nobias")(L), L.__delitem__(
        next(i for i, x in enumerate(L) if x.startswith("linear output")) + 4)), "linear 'output' has shape (4, 8) (outputs, inputs); the model needs (5, 8)"),
    "bias flag": (_set("linear edge 6 6 nobias", "linear edge 6 6 bias"), "conv 1 linear 'edge' row 1 (bias + 6 weights) has 6 numbers, expected 7"),
    "unknown element": (_set("molecule_atoms", "molecule_atoms 8 6 8 7 1 1 7 1 9"), "molecule_atoms has elements [9] that are not atom types [1, 6, 7, 8]"),
    "unknown record": (_insert_before("pooling", "dropout 0.5"), "unknown record 'dropout' (expected 'pooling')"),
    "missing record": (_remove("pooling"), "expected record 'pooling', found 'head_block_count'"),
    "conv count": (_set("conv_count", "conv_count 3"), "expected record 'conv', found 'pooling'"),
    "classes count": (_set("classes", "classes 4 I IV melt"), "'classes' announces 4 names, found 3"),
    "duplicate class": (_set("topology_classes", "topology_classes 2 bulk I"), "duplicate class names in ['I', 'IV', 'melt'] + topology ['bulk', 'I']"),
    "embedding width": (_set("atom_types", "atom_types 4 4"), "'atom_type' 1 has 3 embedding numbers, expected 4"),
    "repeated atom type": (lambda L: [L.__setitem__(i, " ".join(["atom_type", "2", "1", *L[i].split()[3:]])) for i, x in enumerate(L) if x.startswith("atom_type 2 ")],
                           "atom types must be distinct atomic numbers >= 1, got [1, 1, 7, 8]"),
    "radial count": (_set("radial_basis", "radial_basis bessel 5 5"), "'radial_frequencies' has 4 numbers, radial_basis announces 5"),
    "layer norm row": (_drop_last_number("layer_norm block_norm", 1), "conv 1 layer_norm weight has 7 numbers, expected 8"),
    "cutoff": (_set("graph_cutoff", "graph_cutoff -4.5"), "graph_cutoff must be a positive number, got -4.5"),
    "kind": (_set("kind", "kind gat"), "unknown model kind 'gat' (this molenv reads kind 'gnn' in version 2 and 4 files)"),
    "activation": (_set("activation", "activation gelu_tanh"), "unsupported activation 'gelu_tanh' (this molenv knows 'gelu_erf')"),
    "attention": (_set("attention", "attention transformer 4"), "unsupported attention 'transformer 4' (this molenv knows 'transformer 1': one head)"),
    "pooling": (_set("pooling", "pooling mean"), "unsupported pooling 'mean' (this molenv knows 'max')"),
    "not a number": (_number("linear output", 2, "nan"), "linear 'output' row 2 (8 weights): non-finite number 'nan'"),
    "eps": (_set("layer_norm block_norm", "layer_norm block_norm 8 0.0"), "conv 1 layer_norm 'block_norm' eps must be a positive number, got 0.0"),
    "head index": (_set("head_block 2", "head_block 3"), "head_block: expected index 2, found 3"),
    "linear name": (_set("linear query", "linear value 6 6 bias"), "expected conv 1 linear 'query', found linear 'value'"),
    "end": (_remove("end"), "unexpected end of file, expected end"),
    "after end": (lambda L: L.append("end"), "unexpected record 'end' after 'end'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_model_files_give_the_python_message(tmp_path, models, case):
    edit, message = BAD_FILES[case]
    path, _ = models[1]
    lines = path.read_text().splitlines()
    edit(lines)
    bad = tmp_path / "bad.molenv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelFileError) as err:
        read_gnn_model(bad)
    python_message = str(err.value)
    assert message in python_message and python_message.startswith(str(bad)), python_message
    frame = FRAMES["orthorhombic"]
    run = run_driver(tmp_path, head(f"g: MOLENV_CLASSIFY MODEL={bad} MOLECULES=1-{frame.n_atoms}\n"), ARGS, driver_files([frame], path))
    assert run.returncode != 0
    flat = " ".join(run.output.split())
    assert "cannot read MODEL: " + python_message in flat, run.output[-2000:]


# ----------------------------------------------------------------------------- bad input


def fails_with(tmp_path, path, frame_positions, box, text, message):
    files = {"traj.xyz": xyz_text([frame_positions], [box]), "gnn.molenv": path}
    run = run_driver(tmp_path, head(text), ARGS, files)
    assert run.returncode != 0, f"expected failure with '{message}', plumed ran fine"
    flat = " ".join(run.output.split())
    assert " ".join(message.split()) in flat, f"'{message}' not in:\n{run.output[-2500:]}"


def test_box_too_small_gives_the_python_message(tmp_path, models):
    from molenv.gnn import synthetic

    path, model = models[2]
    small = synthetic.crystal("parallel", (2, 2, 3), np.random.default_rng(0))  # 12 x 9 x 10.5 A: 9 A is not above 2 x 4.5 A
    with pytest.raises(GNNInputError) as err:
        classify_frame(model, small)
    assert "the box is too small for the GNN's graph cutoff of 4.5 A: its perpendicular heights are 12, 9, 10.5 A" in str(err.value)
    fails_with(tmp_path, path, small.positions, small.box_matrix(), f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{small.n_atoms}\n"
               "PRINT ARG=g.nmol FILE=colvar\n", str(err.value))


@pytest.mark.parametrize(
    "line, message",
    [
        ("MOLECULES=1-100", "MOLECULES lists 100 atoms, which is not a multiple of the model's atoms_per_molecule=8"),
        ("MOLECULE1=1-8 MOLECULE2=9-15", "MOLECULE2 lists 7 atoms but the model's molecules have atoms_per_molecule=8"),
        ("MOLECULES=1-96 REGION_AXIS=z REGION_CENTER=0 REGION_HALFWIDTH=1 REGION_SMOOTHING=1",
         "REGION_AXIS needs an SF model: a GNN model (kind gnn) has no centre atom"),
        ("MOLECULES=1-96 SF_FILE=sf.dat", "SF_FILE needs an SF model: a GNN model (kind gnn) has no symmetry functions"),
        ("MOLECULES=1-96 PATH_CLASSES=I,bulk PATH_START=1,0 PATH_END=0,1 PATH_NIMAGES=2 LAMBDA=1",
         "PATH_CLASSES: no class bulk in the model (classes: I,IV,melt)"),
    ],
)
def test_keyword_errors(tmp_path, models, line, message):
    frame = FRAMES["orthorhombic"]
    fails_with(tmp_path, models[2][0], frame.positions, frame.box_matrix(), f"g: MOLENV_CLASSIFY MODEL=gnn.molenv {line}\nPRINT ARG=g.nmol FILE=colvar\n", message)


def test_coincident_atoms(tmp_path, models):
    frame = FRAMES["cluster"]
    positions = frame.positions.copy()
    positions[8] = positions[0]  # atom 9 (molecule 2) on atom 1
    fails_with(tmp_path, models[2][0], positions, None, f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms}\nPRINT ARG=g.nmol FILE=colvar\n",
               "atoms 1 and 9 coincide (distance 0)")


def test_bias_on_a_topology_vector(tmp_path, models):
    frame = FRAMES["orthorhombic"]
    fails_with(tmp_path, models[2][0], frame.positions, frame.box_matrix(),
               f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} PROB_VECTORS\n"
               "s: SUM ARG=g.p_surface PERIODIC=NO\nRESTRAINT ARG=s AT=0 KAPPA=1\n",
               "a bias acts on the per-molecule vector p_surface, which has no derivatives")

