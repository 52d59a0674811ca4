"""The crystal/melt two-phase system (`molenv simulate coexistence`): the builder, the held
crystal while the rest melts, and NPzT afterwards (x and y of the box fixed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _md_support import simulate
from molenv.simulate import SimulationError
from molenv.spec import load_spec

pytest.importorskip("openmm")
pytestmark = pytest.mark.reference

LATTICE = [5.62, 5.62, 4.70]  # urea form I near 400 K (the cif: 5.565, 5.565, 4.684 A)


@pytest.fixture(scope="module")
def ff_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forcefields")


def test_builder_stacks_a_crystal_at_the_lattice_and_a_stretched_part_to_melt(reference_dir):
    from molenv.crystals import molecule_centres
    from molenv.simulate.systems import coexistence_system, crystal_system, density

    spec = load_spec("urea")
    cif = reference_dir / "urea/formI.cif"
    s = coexistence_system(spec, cif, [4, 4, 6], lattice=LATTICE, melt_fraction=0.5, melt_density=1.2)
    assert s.groups == [("formI", 96), ("melt", 96)]
    crystal = crystal_system(spec, cif, repeats=[4, 4, 6])
    expansion = density(crystal) * np.prod(np.array([5.565, 5.565, 4.684]) / LATTICE) / 1.2
    assert s.info["crystal_density"] == pytest.approx(1.2 * expansion, abs=1e-4)
    assert s.dimensions[:3] == pytest.approx([4 * 5.62, 4 * 5.62, 3 * 4.70 * (1 + expansion)])
    assert s.dimensions[3:].tolist() == [90.0, 90.0, 90.0]
    centres = molecule_centres(s.positions, spec)
    # the crystal: the lower three cell layers of the supercell, centres scaled to the lattice
    lower = molecule_centres(crystal.positions, spec)
    lower = lower[lower[:, 2] < 3 * 4.684] * (np.array(LATTICE) / [5.565, 5.565, 4.684])
    assert np.allclose(centres[:96], lower, atol=1e-6)
    assert centres[:96, 2].max() < 3 * 4.70 <= centres[96:, 2].min()
    # molecules rigid: the internal distances of the crystal's
    def internal(positions):
        return np.sort(np.linalg.norm(positions[:, :, None] - positions[:, None, :], axis=3).reshape(len(positions), -1), axis=0)

    assert np.allclose(internal(s.positions), internal(crystal.positions), atol=1e-6)
    # the part to melt at the density asked for, in its share of the box
    from molenv.simulate.systems import MolecularSystem

    melt_box = s.dimensions.copy()
    melt_box[2] -= s.info["crystal_height"]
    assert density(MolecularSystem(spec, s.positions[96:], melt_box, [("melt", 96)], "")) == pytest.approx(1.2, rel=1e-9)
    assert s.info["melt_expansion_z"] == pytest.approx(expansion, rel=1e-6) and expansion > 1


@pytest.mark.parametrize("kwargs, message", [
    ({"melt_fraction": 1.0}, "between 0 and 1"),
    ({"repeats": [4, 4, 1]}, "at least one of the 1 cell layers"),
    ({"melt_density": 1.5}, "above the crystal's"),
    ({"lattice": [6.5, 5.6, 4.7]}, "by more than 10 %"),
])
def test_builder_refuses_bad_input(reference_dir, kwargs, message):
    from molenv.simulate.systems import coexistence_system

    args = {"repeats": [4, 4, 6]} | kwargs
    with pytest.raises(SimulationError, match=message):
        coexistence_system(load_spec("urea"), reference_dir / "urea/formI.cif", **args)


def test_a_held_stage_is_at_constant_volume_and_recorded_only_when_it_holds():
    from molenv.simulate.md import Stage

    with pytest.raises(SimulationError, match="constant volume"):
        Stage("melt", 1.0, 800.0, "npt", hold="formI")
    # a stage that holds nothing is recorded as before the hold existed: earlier runs resume
    assert set(Stage("equilibrate", 1.0, 300.0).plan()) == {"name", "time_ps", "temperature", "ensemble", "frame_interval_ps", "temperature_end"}
    assert Stage("melt", 1.0, 800.0, "nvt", hold="formI").plan()["hold"] == "formI"


def _final_state(out: Path):
    import openmm
    from openmm import unit

    state = openmm.XmlSerializer.deserialize((out / "final.xml").read_text())
    return (state.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
            np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom)))


def _min_image(d, box):
    return d - box * np.round(d / box)


def test_coexistence_run_holds_the_crystal_then_runs_npzt(tmp_path, ff_cache, reference_dir):
    """The crystal's heavy atoms stay at their built positions while the rest melts at 800 K
    (NVT); then NPzT: x and y of the box fixed to 1e-12 at the lattice asked for, z moves."""
    from openmm import app, unit

    common = ["--molecule", "urea", "--atom-types", "gaff", "--charges", "kuroshima2024", "--ff-cache", ff_cache,
              "--structure", reference_dir / "urea/formI.cif", "--repeats", 4, 4, 6, "--lattice", *LATTICE, "--no-minimise",
              "--melt-time", 0.4, "--quench-time", 0.1, "--threads", 1, "--no-progress", "--report-interval", 0.1]
    held = tmp_path / "held"
    assert simulate("coexistence", *common, "--equilibrate", 0, "--production", 0, "--out", held) == 0
    meta = json.loads((held / "run.json").read_text())
    assert [(s["name"], s["ensemble"], s.get("hold")) for s in meta["stages"]] == [
        ("melt", "nvt", "formI"), ("quench", "nvt", "formI"), ("equilibrate", "npt", None), ("production", "npt", None)]
    assert meta["settings"]["barostat"] == "z" and meta["system"]["groups"] == [["formI", 96], ["melt", 96]]
    assert "heavy atoms of formI held (5000 kJ/mol/nm2)" in (held / "run.log").read_text()
    built = app.PDBFile(str(held / "system.pdb")).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    end, box = _final_state(held)
    moved = np.linalg.norm(_min_image(end - built, np.diag(box)), axis=1).reshape(192, 8)
    heavy = [i for i, e in enumerate(load_spec("urea").elements) if e != "H"]
    # held: thermal motion in the restraints (sqrt(kT/k) = 0.36 A per axis at 800 K, 0.26 A at 400 K)
    print("displacement of heavy atoms, A: crystal mean", moved[:96][:, heavy].mean(), "max", moved[:96][:, heavy].max(),
          "melt mean", moved[96:][:, heavy].mean())
    assert moved[:96][:, heavy].mean() < 0.5 and moved[:96][:, heavy].max() < 1.5
    assert moved[96:][:, heavy].mean() > 2 * moved[:96][:, heavy].mean()

    npzt = tmp_path / "npzt"
    assert simulate("coexistence", *common, "--equilibrate", 0.2, "--production", 0.4, "--frame-interval", 0.02, "--out", npzt) == 0
    start = np.array(json.loads((npzt / "run.json").read_text())["system"]["box_vectors"])
    assert start[0, 0] == pytest.approx(4 * LATTICE[0]) and start[1, 1] == pytest.approx(4 * LATTICE[1])
    _, end_box = _final_state(npzt)
    assert np.allclose(end_box[:2], start[:2], rtol=1e-12, atol=0)
    assert np.allclose(end_box[2, :2], 0.0, atol=1e-12) and abs(end_box[2, 2] / start[2, 2] - 1) > 1e-4
    dims = np.load(npzt / "frame_boxes.npz")["dimensions"]
    assert len(dims) == 20 and np.allclose(dims[:, :2], [4 * LATTICE[0], 4 * LATTICE[1]], rtol=1e-12, atol=0)
    assert len(np.unique(dims[:, 2])) > 1
    # its frames hold two phases, not one label: `molenv featurize --source` refuses them
    from molenv.dataset import DatasetError
    from molenv.featurize import source_from_run

    with pytest.raises(DatasetError, match="holds a crystal and its melt"):
        source_from_run(npzt)


def test_coexistence_needs_repeats(tmp_path, reference_dir, capsys):
    assert simulate("coexistence", "--molecule", "urea", "--atom-types", "gaff", "--charges", "kuroshima2024",
                    "--structure", reference_dir / "urea/formI.cif", "--out", tmp_path / "x", "--no-progress") == 2
    assert "coexistence needs --repeats" in capsys.readouterr().err
