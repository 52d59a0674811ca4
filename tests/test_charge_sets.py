"""Named charge sets of a spec (published force-field charges, `--charges <set>`): parsing
and refusal of bad sets, parametrise with a set (mol2, prmtop), the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _md_support import simulate
from molenv.spec import SPEC_DIR, SpecError, load_spec

KUROSHIMA = {"C": 0.142, "O": -0.39, "N1": -0.542, "H11": 0.333, "H12": 0.333, "N2": -0.542, "H21": 0.333, "H22": 0.333}
UREA_VALUES_LINE = "values = { C = 0.142, O = -0.39, N1 = -0.542, H11 = 0.333, H12 = 0.333, N2 = -0.542, H21 = 0.333, H22 = 0.333 }"


def _needs_amber():
    pytest.importorskip("openmm")
    pytest.importorskip("rdkit")


def _urea_spec_with(tmp_path: Path, values_line: str, name: str = "urea-edited.toml") -> Path:
    """A copy of the shipped urea spec whose kuroshima2024 set has ``values_line`` instead."""
    text = (SPEC_DIR / "urea.toml").read_text()
    assert text.count(UREA_VALUES_LINE) == 1
    path = tmp_path / name
    path.write_text(text.replace(UREA_VALUES_LINE, values_line))
    return path


@pytest.fixture(scope="module")
def ff_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forcefields")


@pytest.fixture(scope="module")
def kuroshima_ff(ff_cache):
    _needs_amber()
    from molenv.simulate.parametrise import parametrise

    return parametrise(load_spec("urea"), "gaff", "kuroshima2024", cache_dir=ff_cache)


def test_urea_spec_carries_the_published_set():
    spec = load_spec("urea")
    qset = spec.charge_sets["kuroshima2024"]
    assert qset.charges == [KUROSHIMA[a] for a in spec.atom_names]
    assert qset.by_atom(spec) == KUROSHIMA
    assert "Kuroshima" in qset.source and "6197" in qset.source
    assert spec.net_charge == 0 and abs(sum(qset.charges)) < 1e-12
    nic = load_spec("nicotinamide").charge_sets["kuroshima2024"]  # from the authors' form VII data file
    assert nic.by_atom(load_spec("nicotinamide"))["N7"] == -0.779885 and abs(sum(nic.charges)) < 1e-5


def test_values_as_a_subtable_parse_the_same(tmp_path):
    lines = "\n".join(f"{a} = {q}" for a, q in reversed(KUROSHIMA.items()))  # any order
    text = (SPEC_DIR / "urea.toml").read_text().replace(UREA_VALUES_LINE, "")
    path = tmp_path / "sub.toml"
    path.write_text(text + f"\n[charges.kuroshima2024.values]\n{lines}\n")
    assert load_spec(path).charge_sets["kuroshima2024"].charges == load_spec("urea").charge_sets["kuroshima2024"].charges


def test_formal_charge_of_smiles():
    from molenv.spec import smiles_formal_charge

    assert [smiles_formal_charge(s) for s in ("NC(=O)N", "[NH4+]", "[O-]C=O", "[Fe+2]", "[N++]", "[NH3+]CC([O-])=O", "[13CH3-:1]")] == [0, 1, -1, 2, 2, 0, -1]


@pytest.mark.parametrize("values, message", [
    ("values = { C = 0.142, O = -0.39, N1 = -0.542, H11 = 0.333, H12 = 0.333, N2 = -0.542, H21 = 0.333 }", "gives no charge for H22"),
    ("values = { C = 0.142, O = -0.39, N1 = -0.542, H11 = 0.333, H12 = 0.333, N2 = -0.542, H21 = 0.333, H22 = 0.433 }",
     "charges sum to +0.100000, not to the net charge +0 of the molecule"),
    ("values = { C = 0.142, O = -0.39, N1 = -0.542, H11 = 0.333, H12 = 0.333, N2 = -0.542, H21 = 0.333, H22 = 0.333, H23 = 0.0 }",
     "no atoms named H23"),
    ("values = { C = 0.142, O = -0.39, N1 = -0.542, H11 = 0.333, H12 = 0.333, N2 = -0.542, H21 = 0.333, H22 = 'x' }", "charges of H22 are not numbers"),
])
def test_bad_charge_sets_are_refused_naming_file_and_set(tmp_path, values, message):
    path = _urea_spec_with(tmp_path, values)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and "charge set 'kuroshima2024'" in str(err.value) and message in str(err.value)


def test_reserved_set_name_is_refused(tmp_path):
    path = tmp_path / "bcc.toml"
    path.write_text((SPEC_DIR / "urea.toml").read_text().replace("[charges.kuroshima2024]", "[charges.bcc]"))
    with pytest.raises(SpecError, match=f"{path}: charge set 'bcc'"):
        load_spec(path)


def test_parametrise_with_a_charge_set(ff_cache, kuroshima_ff, tmp_path):
    """The set's charges exactly, in spec order, on the atom types of the AM1-BCC route;
    the cache key covers the set's values."""
    from molenv.simulate.parametrise import parametrise, read_mol2

    spec = load_spec("urea")
    mol = read_mol2(kuroshima_ff.mol2)
    assert mol.names == spec.atom_names
    assert mol.charges.tolist() == [KUROSHIMA[a] for a in spec.atom_names]  # exact: written with 6 decimals
    bcc = parametrise(spec, "gaff", "bcc", cache_dir=ff_cache)
    assert mol.types == read_mol2(bcc.mol2).types == ["c", "o", "n", "hn", "hn", "n", "hn", "hn"]
    assert read_mol2(bcc.mol2).charges[0] > 0.5  # AM1-BCC is another thing
    assert kuroshima_ff.info["charges"].startswith("charges kuroshima2024 of spec urea: GAFF urea of Kuroshima")
    assert kuroshima_ff.info["charge_set"]["values"] == KUROSHIMA and "-c gas" in kuroshima_ff.info["method"]
    assert kuroshima_ff.frcmods[0].is_file() and kuroshima_ff.describe().startswith("GAFF, charges kuroshima2024")
    again = parametrise(spec, "gaff", "kuroshima2024", cache_dir=ff_cache)
    assert again.info["cached"] and again.mol2 == kuroshima_ff.mol2
    # the same set name with other values: another cache entry, with those values
    edited = load_spec(_urea_spec_with(tmp_path, UREA_VALUES_LINE.replace("C = 0.142, O = -0.39", "C = 0.152, O = -0.40")))
    other = parametrise(edited, "gaff", "kuroshima2024", cache_dir=ff_cache)
    assert not other.info["cached"] and other.mol2 != kuroshima_ff.mol2
    assert read_mol2(other.mol2).charges[:2].tolist() == [0.152, -0.40]


def test_prmtop_carries_the_set(kuroshima_ff, tmp_path):
    """tleap's prmtop for a small urea system (two molecules) holds the set's charges."""
    from openmm import NonbondedForce, app

    from molenv.simulate.parametrise import read_mol2
    from molenv.simulate.systems import MolecularSystem

    spec = load_spec("urea")
    xyz = read_mol2(kuroshima_ff.mol2).coordinates
    system = MolecularSystem(spec, np.stack([xyz, xyz + [6.0, 0.0, 0.0]]), None, [("pair", 2)], "two urea molecules")
    _, prmtop = system.prepare(kuroshima_ff, tmp_path)
    omm = app.AmberPrmtopFile(str(prmtop)).createSystem()
    nb = next(f for f in omm.getForces() if isinstance(f, NonbondedForce))
    charges = [nb.getParticleParameters(i)[0]._value for i in range(nb.getNumParticles())]
    assert charges == pytest.approx([KUROSHIMA[a] for a in spec.atom_names] * 2, abs=1e-6)


def test_unknown_charges_are_refused_with_the_choices(tmp_path, capsys):
    from molenv.simulate import SimulationError
    from molenv.simulate.parametrise import parametrise

    with pytest.raises(SimulationError, match=r"unknown charges 'am1': choose a method \(bcc, gas\) or a charge set of spec 'urea' \(kuroshima2024\)"):
        parametrise(load_spec("urea"), "gaff", "am1", cache_dir=tmp_path)
    with pytest.raises(SimulationError, match=r"or a charge set of spec 'nicotinamide' \(kuroshima2024\)"):
        parametrise(load_spec("nicotinamide"), "gaff2", "resp", cache_dir=tmp_path)
    out = tmp_path / "run"
    assert simulate("crystal", "--molecule", "urea", "--charges", "am1", "--structure", tmp_path / "never-read.cif", "--out", out) == 2
    err = capsys.readouterr().err
    assert "unknown charges 'am1'" in err and "bcc, gas" in err and "kuroshima2024" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.reference
def test_run_records_the_set_and_refuses_other_charges(tmp_path, ff_cache, kuroshima_ff, reference_dir, capsys):
    out = tmp_path / "c"
    args = ["cluster", "--molecule", "urea", "--atom-types", "gaff", "--charges", "kuroshima2024", "--ff-cache", ff_cache,
            "--structure", reference_dir / "urea/formI.cif", "--diameter", 10, "--equilibrate", 0.01, "--production", 0.01,
            "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--no-minimise", "--out", out]
    assert simulate(*args) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["request"]["charges"] == "kuroshima2024" and meta["request"]["charge_set"] == KUROSHIMA
    assert meta["system"]["forcefield"]["charge_set"]["values"] == KUROSHIMA
    assert "--charges kuroshima2024" in meta["command"]
    capsys.readouterr()
    i = args.index("kuroshima2024")
    assert simulate(*args[:i], "gas", *args[i + 1:]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "request.charges: 'kuroshima2024' in the run directory, 'gas' now" in err
