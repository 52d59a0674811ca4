"""The Python API (docs/api.md): every ```python block of the page runs; ASE Atoms and the
MDAnalysis Universe they were made from give identical probabilities (also read back from a
file, in a rotated cell, as a cluster, with atoms ordered by bonds); AtomGroup selections;
the spec inferred from the model, and its errors; the result equals `molenv classify`'s
molecules.npz and files. The committed data are read from copies (MDAnalysis writes offset
files next to an XTC it reads)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from _analysis_support import run_cli

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "api.md"
NAME = "urea-I-100K"
RESULT_ARRAYS = ("times", "frames", "probabilities", "centres", "boxes", "coordination")


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    """data/urea/urea-I-100K.{pdb.gz,xtc} and models/urea_sf.molenv, copied into a folder laid
    out as the repository (the paths of docs/api.md)."""
    root = tmp_path_factory.mktemp("repo")
    files = [REPO / "data" / "urea" / f"{NAME}.pdb.gz", REPO / "data" / "urea" / f"{NAME}.xtc", REPO / "models" / "urea_sf.molenv"]
    for src in files:
        if not src.is_file():
            pytest.skip(f"{src.relative_to(REPO)} is not there")
        dst = root / src.relative_to(REPO)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return root


@pytest.fixture(scope="module")
def files(repo_copy):
    """(topology, trajectory, model) of the copy."""
    return repo_copy / "data" / "urea" / f"{NAME}.pdb.gz", repo_copy / "data" / "urea" / f"{NAME}.xtc", repo_copy / "models" / "urea_sf.molenv"


@pytest.fixture()
def universe(files):
    import MDAnalysis as mda

    return mda.Universe(str(files[0]), str(files[1]))


def ase_frames(u, frames):
    from ase import Atoms

    return [Atoms(list(u.atoms.elements), positions=u.atoms.positions, cell=u.dimensions, pbc=True, info={"time": ts.time})
            for ts in u.trajectory[frames]]


def assert_same(a, b, names=RESULT_ARRAYS):
    assert a.classes == b.classes
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name


def test_doc_examples_run(repo_copy, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = tmp_path / "repo"
    shutil.copytree(repo_copy, work)
    monkeypatch.chdir(work)
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 9
    namespace = {"__name__": "docs_api"}
    try:
        for k, block in enumerate(blocks, 1):
            try:
                exec(compile(block, f"docs/api.md, python block {k}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"docs/api.md python block {k} failed: {type(err).__name__}: {err}\n{block}") from err
    finally:
        plt.close("all")
    assert (work / "populations.png").stat().st_size > 0 and (work / "classified" / "classes.extxyz").is_file()
    assert namespace["result"].n_frames == 10 and namespace["counts"].shape == (10, 4)


def test_ase_frames_equal_the_universe(universe, files, tmp_path):
    import ase.io

    import molenv

    model = files[2]
    frames = slice(0, 12, 3)
    reference = molenv.classify(universe, model, start=0, stop=12, step=3)
    by_ase = molenv.classify(ase_frames(universe, frames), model)
    assert_same(by_ase, reference, names=[n for n in RESULT_ARRAYS if n != "frames"])  # frames: 0..3 of the list
    assert by_ase.frames.tolist() == [0, 1, 2, 3] and reference.frames.tolist() == [0, 3, 6, 9]

    # written and read back with ase.io (extended XYZ keeps 8 decimals: coordinates near 0 move
    # by up to 5e-9 A from their float32 values; the probabilities by 1e-13); an ASE trajectory
    # file (float64) keeps them, read as a list or as the ase.io.Trajectory itself
    ase.io.write(tmp_path / "frames.extxyz", ase_frames(universe, frames))
    read_back = molenv.classify(ase.io.read(tmp_path / "frames.extxyz", index=":"), model)
    assert np.array_equal(read_back.times, reference.times)
    assert np.allclose(read_back.probabilities, reference.probabilities, rtol=0, atol=1e-11)
    ase.io.write(tmp_path / "frames.traj", ase_frames(universe, frames))
    with ase.io.Trajectory(tmp_path / "frames.traj") as traj_file:
        assert np.array_equal(molenv.classify(traj_file, model).probabilities, reference.probabilities)

    # a cell in another orientation: positions rotated back into MDAnalysis' (to rounding)
    rotated = []
    for atoms in ase_frames(universe, frames):
        atoms.rotate(35, "z", rotate_cell=True)
        atoms.rotate(-20, "x", rotate_cell=True)
        rotated.append(atoms)
    assert abs(rotated[0].cell[0, 1]) > 1 and np.allclose(molenv.classify(rotated, model).probabilities, reference.probabilities, rtol=0, atol=1e-9)

    # a cluster: pbc=False is the Universe read with periodic=False
    cluster = ase_frames(universe, slice(0, 1))
    cluster[0].pbc = False
    no_box = molenv.classify(universe, model, stop=1, periodic=False)
    by_cluster = molenv.classify(cluster, model)
    assert by_cluster.boxes is None and np.array_equal(by_cluster.probabilities, no_box.probabilities)

    # atoms not in spec order: each molecule reversed, its two N named so that name_map pins N1/N2;
    # the order comes from bonds guessed from distances, as for any file without residues
    apm = 8
    order = (np.arange(universe.atoms.n_atoms).reshape(-1, apm)[:, ::-1]).ravel()
    shuffled = ase_frames(universe, slice(0, 1))[0][order]
    names = np.array(shuffled.get_chemical_symbols(), dtype=object)
    original = universe.atoms.names[order]
    names[original == "N1"], names[original == "N2"] = "NA", "NB"
    shuffled.set_array("names", names.astype(str))
    from molenv.trajectory import Trajectory

    traj = Trajectory(shuffled, "urea", name_map={"NA": "N1", "NB": "N2"})
    assert traj.atom_order == "bonds" and traj.molecules_from == "blocks" and traj.bonds_from.startswith("guessed")
    by_bonds = molenv.classify(shuffled, model, name_map={"NA": "N1", "NB": "N2"})
    assert np.array_equal(by_bonds.probabilities, reference.probabilities[:1])


def test_atomgroup_selection(universe, files):
    import molenv
    from molenv.trajectory import Trajectory

    topology, xtc, model = files
    whole = molenv.classify(universe, model, stop=2)
    assert_same(molenv.classify(universe.select_atoms("resname URE"), model, stop=2), whole)
    assert_same(molenv.classify(universe.atoms[::-1], model, stop=2), whole)  # molecules by residue, atoms by name
    # a subset is a system of its own (its molecules are the only neighbours), as --selection
    subset = universe.select_atoms("resid 1-80")
    by_group = molenv.classify(subset, model, stop=2)
    by_file = molenv.classify(xtc, model, topology=topology, selection="resid 1-80", stop=2)
    assert by_group.n_molecules == 80 and not np.array_equal(by_group.probabilities, whole.probabilities[:, :80])
    assert_same(by_group, by_file)
    assert_same(molenv.classify(universe, model, selection="resid 1-80", stop=2), by_file)  # selection= within the object
    analysis = molenv.ClassifyFrames(subset, model).run(stop=2)
    assert_same(analysis.results.classification, by_file)
    traj = Trajectory(subset, "urea")
    assert traj.path is None and traj.molecules_from == "residues" and traj.atom_order == "name"
    assert traj._where() == f"AtomGroup of 640 atoms ({topology} + {xtc})"


def test_models_in_memory(universe, files):
    """A model may be given as a path, as `open_model`'s classifier or as an SF
    `molenv.modelfile.Model` in memory (e.g. the authors' network from molenv.reference)."""
    import molenv
    from molenv.modelfile import read_model

    model = files[2]
    by_path = molenv.classify(universe, model, stop=2)
    assert_same(molenv.classify(universe, molenv.open_model(model), stop=2), by_path)
    assert_same(molenv.classify(universe, read_model(model), spec="urea", stop=2), by_path)


def test_result_equals_the_command(universe, files, tmp_path):
    import molenv

    topology, xtc, model = files
    out = tmp_path / "cli"
    assert run_cli(["classify", "--model", model, "-t", xtc, "--topology", topology, "--start", "1", "--stop", "7", "--step", "2",
                    "--threshold", "0.6", "--no-progress", "--no-plot", "--out", out]) == 0
    cli = molenv.ClassificationResult.load(out / "molecules.npz")
    api = molenv.classify(universe, model, start=1, stop=7, step=2, out=tmp_path / "api", threshold=0.6, plot=False)
    assert api.frames.tolist() == [1, 3, 5]
    assert_same(api, cli)
    assert (api.source, api.output_activation) == (cli.source, cli.output_activation)
    assert (tmp_path / "api" / "populations.dat").read_text() == (out / "populations.dat").read_text()
    assert np.array_equal(api.populations(0.6), molenv.analysis.populations(cli, 0.6))
    assert api.populations().shape == (3, 4) and api.label_names == ["I", "IV", "melt", "uncertain"]


def test_spec_inference(universe, files, tmp_path, monkeypatch, capsys):
    import molenv
    from molenv.models import infer_spec, open_model
    from molenv.spec import SPEC_DIR, SpecError, spec_for_model

    topology, xtc, model = files
    assert infer_spec(open_model(model)).name == "urea"  # its `meta molecule`
    text = model.read_text()
    anonymous = tmp_path / "anonymous.molenv"
    anonymous.write_text("".join(line for line in text.splitlines(keepends=True) if not line.startswith("meta molecule")))
    assert infer_spec(open_model(anonymous)).name == "urea"  # the one shipped spec of its geometry
    assert molenv.classify(universe, anonymous, stop=1).n_molecules == 160
    off_centre = tmp_path / "off_centre.molenv"
    off_centre.write_text(anonymous.read_text().replace("centre_atom 1\n", "centre_atom 2\n"))
    with pytest.raises(SpecError, match=r"off_centre.molenv: no shipped spec fits its molecule \(8 atoms, centre atom 2, vectors 1-2 3-6; "
                                        r"shipped: nicotinamide \(15 atoms\), urea \(8 atoms\)\); give spec="):
        molenv.classify(universe, off_centre, stop=1)
    assert molenv.classify(universe, off_centre, spec="urea", stop=1).n_molecules == 160
    assert run_cli(["classify", "--model", off_centre, "-t", xtc, "--topology", topology, "--stop", "1", "--out", tmp_path / "x"]) == 2
    assert "no shipped spec fits its molecule" in capsys.readouterr().err
    # the elements, where a model tells them
    assert spec_for_model(8, elements=["C", "O", "N", "H", "H", "N", "H", "H"]).name == "urea"
    assert spec_for_model(8, elements=[6, 8, 7, 1, 1, 7, 1, 1]).name == "urea"
    with pytest.raises(SpecError, match="elements C O N H H N H O"):
        spec_for_model(8, elements="C O N H H N H O".split())
    # two shipped specs of the same molecule: ambiguous
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("urea", "urea2"):
        (specs / f"{name}.toml").write_text((SPEC_DIR / "urea.toml").read_text().replace('name = "urea"', f'name = "{name}"'))
    monkeypatch.setattr("molenv.spec.SPEC_DIR", specs)
    with pytest.raises(SpecError, match=r"several shipped specs fit its molecule \(8 atoms, centre atom 1, vectors 1-2 3-6\): urea, urea2; give spec="):
        infer_spec(open_model(anonymous))


def test_gnn_spec_from_its_dataset(tmp_path):
    """A GNN checkpoint has the spec of the dataset it was trained on; a TorchScript export has none."""
    import json

    import lightning as L
    import torch

    from molenv.gnn.export import export_torchscript
    from molenv.gnn.lightning import GNNClassifier
    from molenv.models import infer_spec, open_model
    from molenv.spec import SpecError

    torch.manual_seed(0)
    net = GNNClassifier(["I", "IV", "melt"], hidden=16, conv_channels=8, num_radial=4, dropout=0.0).eval()
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "manifest.json").write_text(json.dumps({"spec": {"name": "urea"}}))
    state = {"state_dict": net.state_dict(), "hyper_parameters": dict(net.hparams), "pytorch-lightning_version": L.__version__}
    torch.save({**state, "molenv_fit": {"dataset": str(dataset)}}, tmp_path / "with_dataset.ckpt")
    torch.save(state, tmp_path / "without.ckpt")
    assert infer_spec(open_model(tmp_path / "with_dataset.ckpt")).name == "urea"
    with pytest.raises(SpecError, match=r"without.ckpt: the GNN checkpoint records no training dataset .*; give spec="):
        infer_spec(open_model(tmp_path / "without.ckpt"))
    export_torchscript(net.model, tmp_path / "net.pt", net.form_names)
    with pytest.raises(SpecError, match=r"net.pt: a TorchScript export of a GNN does not record its molecule; give spec="):
        infer_spec(open_model(tmp_path / "net.pt"))


def test_errors(universe, files, tmp_path):
    import ase
    import MDAnalysis as mda

    import molenv
    from molenv.trajectory import Trajectory, TrajectoryError

    topology, xtc, model = files
    with pytest.raises(TypeError, match=r"threshold: analysis options of the files written with out=.*result.populations\(threshold\)"):
        molenv.classify(universe, model, threshold=0.6)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) treshold; it takes the reading options topology, format"):
        molenv.classify(universe, model, treshold=0.6)
    with pytest.raises(TypeError, match=r"ClassifyFrames takes the frames in run\(\): run\(stop=...\)"):
        molenv.ClassifyFrames(universe, model, stop=3)
    with pytest.raises(TrajectoryError, match=r"^Universe \(.*\): topology= are for files; an object in memory is read as it is"):
        Trajectory(universe, "urea", topology=topology)
    with pytest.raises(TrajectoryError, match=r"^AtomGroup of 10 atoms \(.*urea-I-100K.pdb.gz \+ .*urea-I-100K.xtc\): the residues \(molecules\) do not all have"):
        molenv.classify(universe.atoms[:10], model)
    with pytest.raises(TrajectoryError, match="cannot read a int: give a file path, an MDAnalysis Universe or AtomGroup, or ASE Atoms"):
        molenv.classify(42, model)
    with pytest.raises(TrajectoryError, match="a list of frames must hold ASE Atoms only .it is empty."):
        molenv.classify([], model)
    with pytest.raises(TrajectoryError, match="a tuple of frames must hold ASE Atoms only$"):
        molenv.classify((universe,), model)
    frames = ase_frames(universe, slice(0, 2))
    frames[1].pbc = [True, True, False]
    with pytest.raises(TrajectoryError, match=r"ASE Atoms \(2 frames of 1280 atoms\): frame 1: pbc is \[True, True, False\], periodic along some cell vectors only"):
        molenv.classify(frames, model)
    with pytest.raises(TrajectoryError, match=r"frame 1 has other atoms than frame 0 \(1279 atoms"):
        molenv.classify([frames[0], frames[0][:-1]], model)
    with pytest.raises(TrajectoryError, match=r"frame 0: pbc is True but the cell is no 3D cell"):
        molenv.classify(ase.Atoms("H8", positions=np.zeros((8, 3)) + np.arange(8)[:, None], pbc=True), model)
    # a truncated XTC: a path is an error (as the command), a Universe the caller opened a warning
    cut = tmp_path / "cut.xtc"
    cut.write_bytes(xtc.read_bytes()[:-100])
    with pytest.raises(TrajectoryError, match="cut.xtc: the file ends inside frame 39"):
        Trajectory(cut, "urea", topology=topology)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truncated = mda.Universe(str(topology), str(cut))
    with pytest.warns(UserWarning, match=r"cut.xtc: the file ends inside frame 39 .*: it is truncated; its 39 whole frames are read"):
        traj = Trajectory(truncated, "urea", start=-2)
    assert list(traj.frame_indices) == [37, 38] and len(truncated.trajectory) == 40  # MDAnalysis counts the partial frame
    by_traj = molenv.ClassifyFrames(traj, model).run().results.classification  # run() without frames: the Trajectory's
    assert by_traj.frames.tolist() == [37, 38] and np.isfinite(by_traj.probabilities).all()


def test_import_stays_light_and_exports_the_api():
    code = ("import sys, molenv; heavy = [m for m in ('MDAnalysis', 'torch', 'ase', 'molenv.classification', 'molenv.models', 'molenv.analysis') "
            "if m in sys.modules]; assert not heavy, heavy; from molenv import classify, ClassifyFrames, ClassificationResult, open_model; "
            "import molenv.classification as module, molenv.models as models; assert classify is module.classify is molenv.classify; "
            "assert open_model is models.open_model and ClassifyFrames is module.ClassifyFrames")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
