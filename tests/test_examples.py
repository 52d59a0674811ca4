"""The PLUMED inputs of examples/ still run: each goes through PLUMED (`molenv reanalyse`) on
two frames of the data it is written for, with its relative paths resolved from its folder as
`molenv simulate --plumed` does, and gives the numbers its README describes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molenv.plumed.reanalysis import reanalyse
from molenv.plumed.openmm_bridge import check_input, prepare_input

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DATA = REPO / "data" / "urea"


def table(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text().splitlines()
    names = next(l.split()[2:] for l in lines if l.startswith("#! FIELDS"))
    rows = np.array([[float(x) for x in l.split()] for l in lines if l.strip() and not l.startswith("#")], ndmin=2)
    return dict(zip(names, rows.T))


def run_example(name: str, tmp_path: Path, monkeypatch, trajectory: Path, topology: Path | None = None) -> Path:
    """The example's plumed.dat with its input paths made absolute, run in tmp_path over frames 0 and 1."""
    folder = EXAMPLES / name
    dat = tmp_path / "plumed.dat"
    changed = prepare_input(folder / "plumed.dat", dat, base=folder)
    assert any(c.endswith("libmolenv_plumed.so") for c in changed), changed  # LOAD FILE= resolved from the folder
    monkeypatch.chdir(tmp_path)
    run = reanalyse(dat, trajectory, topology, stop=2, progress=False)
    assert run.frames == [0, 1]
    return tmp_path


def test_every_example_is_documented():
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["biased-md", "cluster-melting", "interface-pinning", "interface-region", "reference-model"]
    for p in folders:
        assert (p / "README.md").is_file() and (p / "run.sh").is_file() and (p / "plumed.dat").is_file()
        assert "## What to look at" in (p / "README.md").read_text()


def test_biased_md_input(tmp_path, monkeypatch, plumed_module):
    """The OPES input of examples/biased-md is accepted as a bias and runs on a form I crystal."""
    check_input(EXAMPLES / "biased-md" / "plumed.dat")
    out = run_example("biased-md", tmp_path, monkeypatch, DATA / "urea-I-100K.xtc", DATA / "urea-I-100K.pdb.gz")
    c = table(out / "COLVAR")
    assert list(c) == ["time", "cls.s", "cls.z", "cls.f_I", "cls.f_IV", "cls.f_melt", "opes.bias"]
    assert np.all(c["cls.f_I"] > 0.999) and np.all(c["cls.s"] < 1e-3)  # form I: the start of the path
    assert np.all(c["opes.bias"] == pytest.approx(-40.0, abs=1e-6))  # no kernel yet: -BARRIER


def test_interface_pinning_input(tmp_path, monkeypatch, plumed_module):
    """The pinning input of examples/interface-pinning is accepted as a bias; on the committed
    I/IV interface frames its bias is KAPPA/2 (n_IV - AT)^2 of the counted form IV molecules."""
    check_input(EXAMPLES / "interface-pinning" / "plumed.dat")
    out = run_example("interface-pinning", tmp_path, monkeypatch, DATA / "urea-I-IV-interface-100K.xtc", DATA / "urea-I-IV-interface-100K.pdb.gz")
    c = table(out / "COLVAR")
    assert list(c) == ["time", "cls.n_I", "cls.n_IV", "cls.n_melt", "pin.bias"]
    assert np.allclose(c["cls.n_I"] + c["cls.n_IV"] + c["cls.n_melt"], 340.0)
    assert np.all((c["cls.n_IV"] > 180) & (c["cls.n_IV"] < 215))
    assert np.allclose(c["pin.bias"], 0.5 * 0.05 * (c["cls.n_IV"] - 385.0) ** 2, rtol=1e-5)


def test_interface_region_input(tmp_path, monkeypatch, plumed_module):
    out = run_example("interface-region", tmp_path, monkeypatch, DATA / "urea-I-IV-interface-100K.xtc", DATA / "urea-I-IV-interface-100K.pdb.gz")
    c, slabs = table(out / "COLVAR"), table(out / "COLVAR_slabs")
    assert np.all((c["all.f_I"] > 0.35) & (c["all.f_I"] < 0.47)) and np.all((c["all.s"] > 0.7) & (c["all.s"] < 0.85))
    assert np.all((slabs["ifc.nmol"] > 58) & (slabs["ifc.nmol"] < 68)) and np.all((slabs["ifc.f_I"] > 0.2) & (slabs["ifc.f_I"] < 0.55))
    assert np.all(slabs["bulkI.f_I"] > 0.98) and np.all(slabs["bulkIV.f_IV"] > 0.99)
    assert len((out / "prob.dat").read_text().splitlines()) > 2 * 340


def test_cluster_melting_input(tmp_path, monkeypatch, plumed_module):
    """The cluster example's input on the first two frames of the committed 350 K nanocluster
    run (the authors' force field): 148 molecules, no box, most of the core still form I."""
    nic = REPO / "data" / "nicotinamide" / "nicotinamide-I-cluster148-kuroshima-350K"
    out = run_example("cluster-melting", tmp_path, monkeypatch, nic.with_suffix(".xtc"), nic.with_suffix(".pdb.gz"))
    c = table(out / "COLVAR")
    assert list(c) == ["time", "cls.n_I", "cls.n_melt", "cls.f_I", "cls.f_melt", "cls.nmol"]
    assert np.all(c["cls.nmol"] == 148) and np.all(c["cls.f_I"] + c["cls.f_melt"] <= 1 + 1e-9)
    # at 5 ps most of the core (63 molecules) is form I; the bulk SF-MLP calls most surface molecules melt
    assert c["cls.n_I"][0] > 40


@pytest.mark.reference
def test_reference_model_input(tmp_path, monkeypatch, plumed_module, reference_dir):
    from molenv.commands import import_reference  # noqa: F401  (the command exists)
    from molenv.cli import main

    urea = reference_dir / "urea"
    try:
        main(["import-reference", "--weights", str(urea / "sf_mlp_weights_molstruc.txt"), "--sf-input", str(urea / "sf_input_molstruc.dat"),
              "--spec", "urea", "--classes", "I,IV,Melt,A,B,C,III", "--out", str(tmp_path / "urea_ref.molenv")])
    except SystemExit as exc:
        assert exc.code == 0
    out = run_example("reference-model", tmp_path, monkeypatch, urea / "formI_6x6x6_molstruc.dump")
    c = table(out / "COLVAR")
    assert np.all(c["cls.n_I"] == pytest.approx(432.0)) and np.all(c["cls.f_IV"] < 1e-9)
    assert np.all(c["cls.s"] == pytest.approx(5.78e-5, rel=1e-2)) and np.all(c["cls.z"] == pytest.approx(0.02, rel=1e-3))
