"""The molecule spec a model file carries (`molenv.modelspec`, docs/model_format.md "The
molecule spec in a model file"): spec -> model file -> spec for both kinds, the checks of the
records and against shipped specs and --spec, and old files unchanged."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from molenv.gnn import synthetic
from molenv.gnn.export import molecule_elements
from molenv.gnn.modelfile import read_gnn_model, write_gnn_model
from molenv.models import SFFrameClassifier, infer_spec, open_model
from molenv.modelfile import Model, Network, read_model, write_model
from molenv.modelspec import model_spec, spec_meta
from molenv.spec import SPEC_DIR, SpecError, load_spec

REPO = Path(__file__).resolve().parent.parent
SPECS = ["urea", "nicotinamide", REPO / "tests/data/specs/nicotinamide-ring.toml", REPO / "tests/data/specs/urea-sign-invariant.toml"]
# what a model file carries of a spec: all but the simulation's sets and the file it came from
CARRIED = [f.name for f in dataclasses.fields(load_spec("urea")) if f.name not in ("path", "charge_sets", "lennard_jones_sets")]


def carried(spec):
    return {k: getattr(spec, k) for k in CARRIED}


def sf_model(spec, meta=None) -> Model:
    rng = np.random.default_rng(0)
    n = len(spec.functions)
    network = Network(rng.normal(size=n), rng.uniform(0.5, 2, size=n), [rng.normal(size=(4, n)), rng.normal(size=(3, 4))],
                      [rng.normal(size=4), rng.normal(size=3)], "sigmoid", "softmax")
    return Model(f"{spec.name} test", ["A", "B", "C"], spec.descriptor_set(), network, dict(meta or {}))


def my_molecule(folder: Path, name: str = "mymol") -> Path:
    """A spec that is not shipped: urea's, renamed."""
    path = folder / f"{name}.toml"
    path.write_text((SPEC_DIR / "urea.toml").read_text().replace('name = "urea"', f'name = "{name}"'))
    return path


@pytest.mark.parametrize("which", SPECS + ["mymol", "smiles with # and %"], ids=str)
def test_spec_round_trip_through_both_kinds_of_model_file(tmp_path, which):
    spec = load_spec(my_molecule(tmp_path) if which == "mymol" else REPO / "tests/data/specs/urea-sign-invariant.toml"
                     if which == "smiles with # and %" else which)
    if which == "smiles with # and %":
        spec.smiles = "N#CC%12CC%12%25"
    sf = read_model(write_model(sf_model(spec, {"seed": "1", **spec_meta(spec, geometry=False)}), tmp_path / "sf.molenv"))
    assert carried(model_spec(sf, "sf")) == carried(spec)
    gnn = synthetic.random_model(np.random.default_rng(1), molecule_atoms=molecule_elements(spec))
    gnn.meta = spec_meta(spec, geometry=True)
    back = read_gnn_model(write_gnn_model(gnn, tmp_path / "gnn.molenv"))
    assert carried(model_spec(back, "gnn")) == carried(spec)


def test_the_records_are_plain_meta(tmp_path):
    spec = load_spec("urea")
    text = write_model(sf_model(spec, spec_meta(spec, geometry=False)), tmp_path / "m.molenv").read_text()
    assert "meta molecule urea\nmeta spec_atoms C:C O:O N1:N H11:H H12:H N2:N H21:H H22:H\n" in text
    assert "meta spec_bonds 1-2 1-3 1-6 3-4 3-5 6-7 6-8\nmeta spec_smiles NC(=O)N\n" in text
    assert "spec_centre" not in text  # an SF file has its own records for the geometry
    gnn = synthetic.random_model(np.random.default_rng(1), molecule_atoms=molecule_elements(spec))
    gnn.meta = spec_meta(spec, geometry=True)
    text = write_gnn_model(gnn, tmp_path / "g.molenv").read_text()
    assert "meta spec_centre 1\nmeta spec_vectors 1 2, 3 6\nmeta spec_cutoff 9.8 10.0\nmeta spec_descriptors S1 - 6.16 2.44, " in text


# committed model files written before model files carried their molecule's spec
OLD_MODEL_FILES = ["models/urea_sf.molenv", "regtest/rt-ortho-A/softmax.molenv"]


def test_old_model_files_carry_no_spec_and_infer_as_before():
    for path in OLD_MODEL_FILES:
        classifier = open_model(REPO / path)
        assert model_spec(classifier.model, str(REPO / path)) is None, path
    urea = open_model(REPO / "models" / "urea_sf.molenv") if (REPO / "models" / "urea_sf.molenv").is_file() else None
    if urea is not None:
        assert infer_spec(urea).path == SPEC_DIR / "urea.toml"


@pytest.mark.parametrize("name", ["urea_gnn", "nicotinamide_gnn", "nicotinamide_sf"])
def test_new_committed_model_files_carry_their_spec(name):
    """Model files exported after the spec records came name their molecule's atoms."""
    molecule = name.split("_")[0]
    spec = model_spec(open_model(REPO / "models" / f"{name}.molenv").model, f"{name}.molenv")
    assert spec is not None and spec.name == molecule and spec.atom_names == load_spec(molecule).atom_names


def _spec_error(tmp_path, edit, kind="sf") -> str:
    spec = load_spec("urea")
    meta = spec_meta(spec, geometry=kind == "gnn")
    edit(meta)
    if kind == "sf":
        model = read_model(write_model(sf_model(spec, meta), tmp_path / "m.molenv"))
    else:
        gnn = synthetic.random_model(np.random.default_rng(1), molecule_atoms=molecule_elements(spec))
        gnn.meta = meta
        model = read_gnn_model(write_gnn_model(gnn, tmp_path / "m.molenv"))
    with pytest.raises(SpecError) as err:
        model_spec(model, "m.molenv")
    return str(err.value)


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


def _drop(key):
    return lambda meta: meta.pop(key)


# (id, edit of the meta, kind, the message) -- every file here is read by both model-file
# readers as before (tests/test_model_corpus.py, SPEC_CASES): meta is free text to them
BAD_RECORDS = [
    ("no name", _drop("molecule"), "sf", "m.molenv: the model carries a molecule spec (meta spec_atoms) but lacks meta molecule"),
    ("no bonds", _drop("spec_bonds"), "sf", "lacks meta spec_bonds"),
    ("bonds without atoms", _drop("spec_atoms"), "sf", "m.molenv: meta spec_bonds, spec_smiles without meta spec_atoms"),
    ("unknown record", _set("spec_charges", "0"), "sf", "unknown spec record(s) meta spec_charges (an SF model file carries spec_atoms"),
    ("geometry in an SF file", _set("spec_centre", "1"), "sf", "unknown spec record(s) meta spec_centre"),
    ("atom without element", _set("spec_atoms", "C O:O N1:N H11:H H12:H N2:N H21:H H22:H"), "sf", "meta spec_atoms: 'C' is not NAME:ELEMENT"),
    ("unknown element", _set("spec_atoms", "C:Xx O:O N1:N H11:H H12:H N2:N H21:H H22:H"), "sf", "'Xx' is not an element symbol"),
    ("element case", _set("spec_atoms", "C:c O:O N1:N H11:H H12:H N2:N H21:H H22:H"), "sf", "'c' is not an element symbol"),
    ("repeated name", _set("spec_atoms", "C:C C:O N1:N H11:H H12:H N2:N H21:H H22:H"), "sf", "atom name 'C' given twice"),
    ("atom count", _set("spec_atoms", "C:C O:O N1:N H11:H H12:H N2:N H21:H"), "sf", "7 atoms, but the model's molecules have atoms_per_molecule 8"),
    ("bond form", _set("spec_bonds", "1-2 1:3"), "sf", "meta spec_bonds: '1:3' is not a bond a-b"),
    ("bond atom 9", _set("spec_bonds", "1-2 1-9"), "sf", "bond 1-9 needs two different atoms in 1..8"),
    ("bond to itself", _set("spec_bonds", "1-1"), "sf", "bond 1-1 needs two different atoms"),
    ("bond 1.0", _set("spec_bonds", "1.0-2"), "sf", "'1.0-2' is not a bond a-b"),
    ("smiles escape", _set("spec_smiles", "C%10CC%10"), "sf", "meta spec_smiles: 'C%10CC%10' is not one SMILES"),
    ("smiles empty", _set("spec_smiles", ""), "sf", "meta spec_smiles: '' is not one SMILES"),
    ("smiles two", _set("spec_smiles", "NC(=O)N urea"), "sf", "is not one SMILES"),
    ("gnn elements", _set("spec_atoms", "C:C O:O N1:N H11:H H12:H N2:N H21:H H22:O"), "gnn",
     "elements C O N H H N H O are not those of the model's molecule_atoms 6 8 7 1 1 7 1 1"),
    ("gnn no cutoff", _drop("spec_cutoff"), "gnn", "lacks meta spec_cutoff"),
    ("gnn centre", _set("spec_centre", "9"), "gnn", "m.molenv: meta spec_*: centre atom 9 is outside the molecule (1..8)"),
    ("gnn centroid", _set("spec_centre", "1 2 1"), "gnn", "a centroid centre needs two or more distinct atoms, got 1 2 1"),
    ("gnn vector", _set("spec_vectors", "1 2, 3"), "gnn", "vector 2 '3': each vector is 'a b' or 'normal a b c d'"),
    ("gnn empty vector", _set("spec_vectors", "1 2,, 3 6"), "gnn", "meta spec_vectors: an empty entry"),
    ("gnn cutoff", _set("spec_cutoff", "9.8"), "gnn", "meta spec_cutoff: needs rmin rmax, got '9.8'"),
    ("gnn cutoff inf", _set("spec_cutoff", "9.8 inf"), "gnn", "meta spec_cutoff: 'inf' is not a finite number"),
    ("gnn descriptor kind", _set("spec_descriptors", "S9 - 1.0"), "gnn", "descriptor 1: unknown kind 'S9'"),
    ("gnn descriptor vector", _set("spec_descriptors", "S3 3 0.5 1.0"), "gnn", "descriptor 1: S3 needs a vector index in 1..2, got 3"),
]


@pytest.mark.parametrize("edit, kind, message", [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS])
def test_bad_spec_records_are_refused_naming_the_file_and_record(tmp_path, edit, kind, message):
    assert message in _spec_error(tmp_path, edit, kind)


def test_carried_spec_is_checked_against_the_shipped_one_and_given_spec(tmp_path):
    urea = load_spec("urea")
    path = write_model(sf_model(urea, spec_meta(urea, geometry=False)), tmp_path / "u.molenv")
    classifier = SFFrameClassifier(path)
    assert carried(infer_spec(classifier)) == carried(urea)
    assert infer_spec(classifier, "urea").path == SPEC_DIR / "urea.toml"  # a spec given wins
    # a model whose carried 'urea' has N1 and N2 swapped: not the shipped urea
    swapped = dataclasses.replace(urea, atom_names=["C", "O", "N2", "H11", "H12", "N1", "H21", "H22"])
    odd = SFFrameClassifier(write_model(sf_model(urea, spec_meta(swapped, geometry=False)), tmp_path / "odd.molenv"))
    with pytest.raises(SpecError, match=rf"the spec urea that {tmp_path / 'odd.molenv'} carries and the shipped spec urea \(.*urea.toml\) "
                                        r"are not the same molecule: they differ in their atoms"):
        infer_spec(odd)
    # --spec of another molecule than the model carries
    mine = load_spec(my_molecule(tmp_path))
    other = dataclasses.replace(mine, bonds=mine.bonds[:-1])
    model = SFFrameClassifier(write_model(sf_model(mine, spec_meta(mine, geometry=False)), tmp_path / "mine.molenv"))
    assert infer_spec(model).name == "mymol"
    with pytest.raises(SpecError, match=r"--spec mymol \(.*mymol.toml\) and the spec mymol that .*mine.molenv carries are not the same molecule: "
                                        r"they differ in their bonds"):
        infer_spec(model, other, option="--spec")


def test_classify_and_plumed_input_need_no_spec_for_a_molecule_not_shipped(tmp_path, capsys):
    """A model of a molecule that is not shipped ('mymol', urea renamed), carrying its spec:
    `molenv classify` and `molenv plumed-input` without --spec."""
    from molenv.cli import main

    spec = load_spec(my_molecule(tmp_path))
    model_path = write_model(sf_model(spec, {"molecule": "mymol", **spec_meta(spec, geometry=False)}), tmp_path / "mymol.molenv")
    pdb = REPO / "data" / "urea" / "urea-I-100K.pdb.gz"
    if not pdb.is_file():
        pytest.skip("the urea MD data (data/urea) are not there")
    for args in (["classify", "--model", model_path, "--trajectory", pdb, "--out", tmp_path / "out", "--no-progress"],
                 ["plumed-input", "--model", model_path, "--topology", pdb, "--out", tmp_path / "plumed.dat"]):
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        out = capsys.readouterr()
        assert exit_.value.code == 0, out.err[-2000:]
    assert (tmp_path / "out" / "populations.dat").is_file()
    assert "mymol molecules" in (tmp_path / "plumed.dat").read_text()
    # without the spec records, the molecule cannot be found
    bare = write_model(sf_model(spec, {"molecule": "mymol"}), tmp_path / "bare.molenv")
    with pytest.raises(SystemExit):
        main(["classify", "--model", str(bare), "--trajectory", str(pdb), "--out", str(tmp_path / "out2"), "--no-progress"])
    assert "unknown molecule 'mymol'" in capsys.readouterr().err


def _molenv(capsys, *args) -> str:
    from molenv.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    assert exit_.value.code == 0, out.err[-3000:]
    return out.out + out.err


def test_export_of_a_model_trained_on_a_molecule_not_shipped(tmp_path, capsys):
    """featurize + train sf (tiny) on 'mymol' (urea's spec renamed, in a folder of its own) ->
    `molenv export` -> the spec file deleted -> `molenv classify` without --spec classifies as
    with it, and the model's spec is the one trained on."""
    from molenv.featurize import featurize, sources_from_manifest
    from molenv.sf.train import SFTrainConfig, train_sf

    names = ["urea-I-100K", "urea-IV-100K", "urea-melt-350K"]
    data = REPO / "data" / "urea"
    if not all((data / f"{n}.xtc").is_file() for n in names + ["urea-I-200K"]):
        pytest.skip("the urea MD data (data/urea) are not there")
    (tmp_path / "specs").mkdir()
    spec_path = my_molecule(tmp_path / "specs")
    trained_on = load_spec(spec_path)
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for s in sources:
        s.reader["step"] = 10
    dataset = featurize(sources, spec_path, tmp_path / "ds", progress=False, log=lambda *a: None)
    train_sf(dataset, SFTrainConfig(max_epochs=2, seed=0, batch_size=128), tmp_path / "run")
    _molenv(capsys, "export", tmp_path / "run", "--out", tmp_path / "mymol.molenv")
    assert carried(infer_spec(open_model(tmp_path / "mymol.molenv"))) == carried(trained_on)
    trajectory = ["--trajectory", data / "urea-I-200K.xtc", "--topology", data / "urea-I-200K.pdb.gz", "--stop", "3", "--no-progress"]
    _molenv(capsys, "classify", "--model", tmp_path / "mymol.molenv", *trajectory, "--spec", spec_path, "--out", tmp_path / "with")
    shutil.rmtree(tmp_path / "specs")
    printed = _molenv(capsys, "classify", "--model", tmp_path / "mymol.molenv", *trajectory, "--out", tmp_path / "without")
    assert "3 frames" in printed or (tmp_path / "without" / "populations.dat").is_file()
    with_spec, without = (np.load(tmp_path / d / "molecules.npz") for d in ("with", "without"))
    assert with_spec.files == without.files and all(np.array_equal(with_spec[k], without[k]) for k in with_spec.files)


def test_gnn_export_carries_the_spec_of_a_molecule_not_shipped(tmp_path, capsys):
    """`molenv export CKPT --molecule mymol.toml` of a (tiny, untrained) graph classifier: the
    file carries mymol's spec, centre and descriptors included, and classifies without --spec."""
    import lightning as L
    import torch

    from molenv.gnn.lightning import GNNClassifier

    torch.manual_seed(0)
    net = GNNClassifier(["I", "IV", "melt"], dropout=0.0, hidden=16, conv_channels=8, num_radial=4).eval()
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": dict(net.hparams), "pytorch-lightning_version": L.__version__, "epoch": 1},
               tmp_path / "tiny.ckpt")
    spec_path = my_molecule(tmp_path)
    _molenv(capsys, "export", tmp_path / "tiny.ckpt", "--out", tmp_path / "g.molenv", "--molecule", spec_path)
    model = read_gnn_model(tmp_path / "g.molenv")
    assert model.meta["molecule"] == "mymol" and carried(infer_spec(open_model(tmp_path / "g.molenv"))) == carried(load_spec(spec_path))
    pdb = REPO / "data" / "urea" / "urea-I-100K.pdb.gz"
    if pdb.is_file():
        spec_path.unlink()
        _molenv(capsys, "classify", "--model", tmp_path / "g.molenv", "--trajectory", pdb, "--out", tmp_path / "out", "--no-progress")
        assert (tmp_path / "out" / "populations.dat").is_file()
