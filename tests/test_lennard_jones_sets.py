"""Named Lennard-Jones sets of a spec (`--lennard-jones <set>`, published force-field
parameters): parsing and refusal of bad sets, the frcmod that replaces the atom types' own
parameters, and the prmtop tleap builds with it (sigma and epsilon per atom)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _md_support import simulate
from molenv.spec import SPEC_DIR, SpecError, load_spec

# the authors' gaff.settings pair_coeff (sigma A, epsilon kcal/mol), by atom: GAFF (v1) values
AUTHORS = {"C": (3.39966950842, 0.086), "O": (2.95992190115, 0.21), "N": (3.24999852378, 0.17),
           "H_amide": (1.06907846177, 0.0157), "H_near_N": (2.51055258772, 0.015), "H": (2.59964245953, 0.015)}
NIC_KIND = {"C3": "C", "C2": "C", "N1": "N", "C6": "C", "C5": "C", "C4": "C", "C7": "C", "O7": "O", "N7": "N",
            "H71": "H_amide", "H72": "H_amide", "H2": "H_near_N", "H6": "H_near_N", "H5": "H", "H4": "H"}
HEADER = "[lennard_jones.kuroshima2024]"


def _nicotinamide_spec_with(tmp_path: Path, table: str) -> Path:
    """A copy of the shipped nicotinamide spec whose kuroshima2024 LJ set is ``table``."""
    text = (SPEC_DIR / "nicotinamide.toml").read_text()
    head, _, _ = text.partition(HEADER)
    path = tmp_path / "nic.toml"
    path.write_text(head + table)
    return path


def test_nicotinamide_spec_carries_the_authors_set():
    spec = load_spec("nicotinamide")
    lj = spec.lennard_jones_sets["kuroshima2024"]
    assert lj.by_atom(spec) == {a: list(AUTHORS[k]) for a, k in NIC_KIND.items()}
    assert "gaff.settings" in lj.source and "Kuroshima" in lj.source
    assert load_spec("urea").lennard_jones_sets == {}


@pytest.mark.parametrize("values, message", [
    ("{ C3 = [3.4, 0.086] }", "gives no [sigma, epsilon] for C2"),
    ("{ " + ", ".join(f"{a} = [3.4, 0.086]" for a in NIC_KIND) + ", X9 = [1, 1] }", "no atoms named X9"),
    ("{ " + ", ".join(f"{a} = [{'-1' if a == 'O7' else '3.4'}, 0.086]" for a in NIC_KIND) + " }", "O7 need [sigma, epsilon] with sigma > 0"),
    ("{ " + ", ".join(f"{a} = [3.4]" for a in NIC_KIND) + " }", "need [sigma, epsilon]"),
])
def test_bad_sets_are_refused_naming_file_set_and_problem(tmp_path, values, message):
    path = _nicotinamide_spec_with(tmp_path, f'{HEADER}\nsource = "test"\nvalues = {values}\n')
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and "Lennard-Jones set 'kuroshima2024'" in str(err.value) and message in str(err.value)


def test_a_set_without_source_is_refused(tmp_path):
    path = _nicotinamide_spec_with(tmp_path, f"{HEADER}\nvalues = {{ C3 = [1, 1] }}\n")
    with pytest.raises(SpecError, match="lacks 'source'"):
        load_spec(path)


def test_one_type_with_two_parameter_sets_is_refused(tmp_path):
    """AMBER keys Lennard-Jones parameters by atom type: C2 and C5 are both 'ca'."""
    pytest.importorskip("rdkit")
    from molenv.simulate import SimulationError
    from molenv.simulate.parametrise import nonbonded_frcmod

    values = ", ".join(f"{a} = [{3.5 if a == 'C5' else AUTHORS[k][0]}, {AUTHORS[k][1]}]" for a, k in NIC_KIND.items())
    spec = load_spec(_nicotinamide_spec_with(tmp_path, f'{HEADER}\nsource = "test"\nvalues = {{ {values} }}\n'))
    types = ["ca", "ca", "nb", "ca", "ca", "ca", "c", "o", "nt", "hn", "hn", "h4", "h4", "ha", "ha"]
    with pytest.raises(SimulationError, match=r"one gaff2 type \(ca\) different parameters"):
        nonbonded_frcmod(types, spec.lennard_jones_sets["kuroshima2024"], spec, "gaff2")


@pytest.mark.slow
def test_prmtop_carries_the_set(tmp_path):
    """parametrise + tleap: every atom has the set's sigma and epsilon; 1-4 pairs use them
    too (GAFF's scnb 2); another cache entry than the types' own parameters."""
    pytest.importorskip("openmm")
    pytest.importorskip("rdkit")
    from openmm import NonbondedForce, app, unit

    from molenv.simulate.parametrise import parametrise, read_mol2
    from molenv.simulate.systems import MolecularSystem

    spec = load_spec("nicotinamide")
    ff = parametrise(spec, "gaff2", "kuroshima2024", cache_dir=tmp_path / "ff", lennard_jones="kuroshima2024")
    plain = parametrise(spec, "gaff2", "kuroshima2024", cache_dir=tmp_path / "ff")
    assert ff.mol2.parent != plain.mol2.parent and [f.name for f in ff.frcmods] == ["molecule.frcmod", "nonbonded.frcmod"]
    assert ff.info["lennard_jones_set"]["values"]["O7"] == list(AUTHORS["O"]) and "Lennard-Jones set kuroshima2024" in ff.describe()
    xyz = read_mol2(ff.mol2).coordinates
    system = MolecularSystem(spec, np.stack([xyz, xyz + [8.0, 0.0, 0.0]]), None, [("pair", 2)], "two nicotinamide molecules")
    _, prmtop = system.prepare(ff, tmp_path)
    omm = app.AmberPrmtopFile(str(prmtop)).createSystem()  # kept: the System owns its forces
    nb = next(f for f in omm.getForces() if isinstance(f, NonbondedForce))
    got = []
    for i in range(nb.getNumParticles()):
        _, sigma_i, epsilon_i = nb.getParticleParameters(i)
        got.append((sigma_i.value_in_unit(unit.angstrom), epsilon_i.value_in_unit(unit.kilocalorie_per_mole)))
    want = [AUTHORS[NIC_KIND[a]] for a in spec.atom_names] * 2
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)  # R* written with 6 decimals
    sigma = {i: s for i, (s, _) in enumerate(got)}
    for k in range(nb.getNumExceptions()):
        i, j, _, s, eps = nb.getExceptionParameters(k)
        if eps.value_in_unit(unit.kilocalorie_per_mole) > 0:  # a scaled 1-4 pair
            assert s.value_in_unit(unit.angstrom) == pytest.approx((sigma[i] + sigma[j]) / 2, rel=1e-5)


def test_unknown_set_and_ff_mol2_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert simulate("crystal", "--molecule", "urea", "--lennard-jones", "kuroshima2024", "--structure", tmp_path / "never-read.cif", "--out", out) == 2
    err = capsys.readouterr().err
    assert "unknown Lennard-Jones set 'kuroshima2024' of spec 'urea' (it has none)" in err and "Traceback" not in err
    assert not out.exists()
