"""From `molenv simulate` to `molenv featurize` without repeated options (issue 16, item 4):
run directories as featurize sources, unique source names, the box-height checks of
simulate and featurize, and the melt check of both. Tiny OpenMM runs (a few fs) and the
committed data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _md_support import simulate
from conftest import REPO
from _analysis_support import run_cli_output
from molenv.dataset import DatasetError, open_dataset
from molenv.featurize import Source, featurize, source_from_run, source_name

pytest.importorskip("openmm")


molenv = run_cli_output  # molenv(capsys, *args) -> (exit code, stdout, stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, reference_dir):
    """Two finished tiny runs: urea form I (--label I, 4 frames) and a melt of it (not melted:
    a few fs at 800 K; --no-melt-check)."""
    base = tmp_path_factory.mktemp("runs")
    cache = base / "ff"
    common = ["--molecule", "urea", "--atom-types", "gaff", "--charges", "gas", "--ff-cache", cache, "--structure", reference_dir / "urea/formI.cif",
              "--equilibrate", 0.02, "--production", 0.04, "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--no-minimise"]
    assert simulate("crystal", *common, "--label", "I", "--out", base / "urea-I-100K") == 0
    assert simulate("melt", *common, "--melt-time", 0.02, "--quench-time", 0.02, "--no-melt-check", "--out", base / "urea-melt-350K") == 0
    return base


def _arrays(ds, name: str) -> dict:
    return {k: v for k, v in ds.arrays(name).items()}


def test_source_from_a_run_directory(runs):
    crystal = source_from_run(runs / "urea-I-100K")
    assert (crystal.name, crystal.label, crystal.temperature, crystal.system, crystal.molecule) == ("urea-I-100K", "I", 100.0, "crystal", "urea")
    assert crystal.trajectory == runs / "urea-I-100K" / "trajectory.xtc" and crystal.topology == runs / "urea-I-100K" / "topology.pdb"
    assert crystal.origin["command"].startswith("molenv simulate crystal") and "--label I" in crystal.origin["command"]
    melt = source_from_run(runs / "urea-melt-350K")
    assert (melt.name, melt.label, melt.temperature, melt.system) == ("urea-melt-350K", "melt", 350.0, "melt")
    # a run's trajectory named directly takes the run directory's name, not "trajectory"
    assert source_name(runs / "urea-I-100K" / "trajectory.xtc") == "urea-I-100K"
    assert source_name(REPO / "data/urea/urea-I-100K.xtc") == "urea-I-100K"
    with pytest.raises(DatasetError, match="no run.json"):
        source_from_run(runs / "ff")


def test_featurize_run_directories_equals_explicit_options(runs, tmp_path, capsys):
    """`--source RUNDIR` gives the dataset that the equivalent explicit options give."""
    I, melt = runs / "urea-I-100K", runs / "urea-melt-350K"
    common = ["--no-progress", "--no-melt-check", "--split-mode", "random", "--val-fraction", 0.25, "--test-fraction", 0.25]
    code, out, err = molenv(capsys, "featurize", "--source", I, "--source", melt, "--out", tmp_path / "runs", *common)
    assert code == 0, err
    code, out, err = molenv(capsys, "featurize", "--molecule", "urea", "--out", tmp_path / "explicit", *common,
                            "--trajectory", I / "trajectory.xtc", "--topology", I / "topology.pdb", "--label", "I", "--temperature", 100,
                            "--system", "crystal", "--name", "urea-I-100K",
                            "--trajectory", melt / "trajectory.xtc", "--topology", melt / "topology.pdb", "--label", "melt", "--temperature", 350,
                            "--system", "melt", "--name", "urea-melt-350K")
    assert code == 0, err
    a, b = open_dataset(tmp_path / "runs"), open_dataset(tmp_path / "explicit")
    assert a.classes == b.classes == ["I", "melt"] and a.source_names == b.source_names == ["urea-I-100K", "urea-melt-350K"]
    for name in a.source_names:
        x, y = _arrays(a, name), _arrays(b, name)
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k], equal_nan=True) for k in x)
    for s, t in zip(a.sources, b.sources):
        differs = {k for k in s if s[k] != t[k]}
        assert differs == {"simulation"}, differs  # the provenance: the run directory and its command
        assert s["simulation"]["run"] == str(runs / s["name"]) and s["temperature_K"] == t["temperature_K"]
    # an option overrides the run's record; default names come from the run directories
    code, out, err = molenv(capsys, "featurize", "--source", I, "--source", melt, "--label", "I", "--label", "liquid", "--system", "crystal",
                            "--system", "melt", "--out", tmp_path / "override", *common)
    assert code == 0, err
    assert open_dataset(tmp_path / "override").classes == ["I", "liquid"]


def test_featurize_refuses_a_run_without_a_label_and_an_unfinished_run(runs, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    meta = json.loads((runs / "urea-I-100K" / "run.json").read_text())
    del meta["label"]
    (plain / "run.json").write_text(json.dumps(meta))
    code, _, err = molenv(capsys, "featurize", "--source", plain, "--source", runs / "urea-melt-350K", "--out", tmp_path / "ds", "--no-progress")
    assert code == 2 and "has not finished" in err
    for f in ("progress.json", "trajectory.xtc", "topology.pdb"):
        (plain / f).write_bytes((runs / "urea-I-100K" / f).read_bytes())
    code, _, err = molenv(capsys, "featurize", "--source", plain, "--source", runs / "urea-melt-350K", "--out", tmp_path / "ds", "--no-progress")
    assert code == 2 and f"--trajectory {plain} needs a --label" in err and "molenv simulate ... --label" in err


def test_featurize_refuses_the_unmelted_melt_run(runs, tmp_path, capsys):
    code, _, err = molenv(capsys, "featurize", "--source", runs / "urea-I-100K", "--source", runs / "urea-melt-350K", "--out", tmp_path / "ds",
                          "--no-progress")
    assert code == 2
    assert "source urea-melt-350K" in err and "is labelled melt but has not melted" in err
    assert "orientational order" in err and "mobility" in err and "--no-melt-check" in err
    assert not (tmp_path / "ds").exists()


def test_simulate_melt_refuses_a_melt_that_has_not_melted(runs, reference_dir, tmp_path, capsys):
    """The same tiny melt without --no-melt-check: the run finishes, the check fails with the
    numbers, summary.json records it."""
    out = tmp_path / "melt"
    code, printed, err = molenv(capsys, "simulate", "melt", "--molecule", "urea", "--atom-types", "gaff", "--charges", "gas", "--ff-cache", runs / "ff",
                                "--structure", reference_dir / "urea/formI.cif", "--equilibrate", 0.02, "--production", 0.04, "--frame-interval", 0.01,
                                "--threads", 1, "--no-progress", "--no-minimise", "--melt-time", 0.02, "--quench-time", 0.02, "--out", out)
    assert code == 2 and (out / "trajectory.xtc").is_file()
    assert f"{out}: the melt has not melted: orientational order" in err and "mobility" in err and "A^2" in err
    check = json.loads((out / "summary.json").read_text())["melt_check"]
    assert not check["melted"] and check["aligned_fraction"] > 3 * check["max_aligned_fraction"] and check["msd_A2"] < 0.1 and len(check["failed"]) == 2
    assert check["crystal_density_g_cm3"] == pytest.approx(1.375, abs=0.001)
    assert "melt check:" in (out / "run.log").read_text() and "NOT melted" in printed


def test_duplicate_source_names_are_refused_naming_both(tmp_path):
    a, b = REPO / "data/urea/urea-I-100K.xtc", REPO / "data/urea/urea-IV-100K.xtc"
    if not (a.is_file() and b.is_file()):
        pytest.skip("the urea MD data are not there")
    sources = [Source("trajectory", a, "I", 100, a.with_suffix(".pdb.gz")), Source("trajectory", b, "IV", 100, b.with_suffix(".pdb.gz"))]
    with pytest.raises(DatasetError, match=f"sources {a} and {b} are both named 'trajectory'"):
        featurize(sources, "urea", tmp_path / "ds", progress=False)
    sources[0].name, sources[1].name = "trajectory_", "trajectory?"  # other names, but the same data file
    with pytest.raises(DatasetError, match=r"\(named 'trajectory\?'\) would both be stored as trajectory_.npz: give each a name of its own"):
        featurize(sources, "urea", tmp_path / "ds", progress=False)


def test_featurize_names_the_frame_of_a_box_too_small(tmp_path):
    path = REPO / "data/urea/urea-I-100K.xtc"
    if not path.is_file():
        pytest.skip("the urea MD data are not there")
    small = Source("I", path, "I", 100, path.with_suffix(".pdb.gz"), reader={"dimensions": [19.67, 22.26, 23.42, 90, 90, 90], "start": 3})
    other = Source("IV", REPO / "data/urea/urea-IV-100K.xtc", "IV", 100, REPO / "data/urea/urea-IV-100K.pdb.gz")
    with pytest.raises(DatasetError, match=r"source I: .*urea-I-100K.xtc frame 3 \(t = 40 ps\): the box's smallest perpendicular height is 19.67 A "
                                           r".* need more than 20 A \(twice the cutoff rmax 10 A"):
        featurize([small, other], "urea", tmp_path / "ds", progress=False)


def test_featurize_refuses_a_crystal_labelled_melt(tmp_path):
    path = REPO / "data/urea/urea-I-200K.xtc"
    if not path.is_file():
        pytest.skip("the urea MD data are not there")
    fake = Source("fake-melt", path, "melt", 350, path.with_suffix(".pdb.gz"))
    crystal = Source("I", REPO / "data/urea/urea-I-100K.xtc", "I", 100, REPO / "data/urea/urea-I-100K.pdb.gz", reader={"stop": 2})
    with pytest.raises(DatasetError, match=r"source fake-melt: .* is labelled melt but has not melted: orientational order: 0\.4\d\d of the "
                                           r"molecule pairs .*; mobility: the molecule centres moved 0\.\d\d A\^2"):
        featurize([crystal, fake], "urea", tmp_path / "ds", progress=False)
    ds = featurize([crystal, fake], "urea", tmp_path / "ds", progress=False, melt_check=False, log=lambda *a: None)
    assert "melt_check" not in ds.sources[1]


def test_featurize_records_the_melt_check(tmp_path):
    path = REPO / "data/urea/urea-melt-350K.xtc"
    if not path.is_file():
        pytest.skip("the urea MD data are not there")
    melt = Source("melt", path, "melt", 350, path.with_suffix(".pdb.gz"), reader={"stop": 2})  # two frames: the check reads them all
    crystal = Source("I", REPO / "data/urea/urea-I-100K.xtc", "I", 100, REPO / "data/urea/urea-I-100K.pdb.gz", reader={"stop": 2})
    ds = featurize([crystal, melt], "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    check = ds.sources[1]["melt_check"]
    assert check["melted"] and check["n_frames"] == 40 and check["msd_A2"] > 20 and check["aligned_fraction"] < 0.03


def test_box_check_of_a_run():
    from molenv.simulate import SimulationError
    from molenv.simulate.md import BoxCheck

    check = BoxCheck(20.0, "twice the urea descriptor cutoff rmax (10 A)")
    check.check([20.02, 22.3, 23.4, 90, 90, 90], "at t = 20 ps, as stage production starts (after equilibrate),", Path("runs/x"))
    with pytest.raises(SimulationError, match=r"runs/x: at t = 20 ps, as stage production starts \(after equilibrate\), the box's smallest "
                                              r"perpendicular height is 19.67 A \(heights 19.67, 22.30, 23.40 A\), below twice the urea "
                                              r"descriptor cutoff rmax \(10 A\), 20 A: the barostat shrank it"):
        check.check([19.67, 22.3, 23.4, 90, 90, 90], "at t = 20 ps, as stage production starts (after equilibrate),", Path("runs/x"))


def test_supercell_height_keeps_a_margin_for_the_barostat(reference_dir):
    from molenv.simulate.systems import BAROSTAT_MARGIN, crystal_system, supercell_height
    from molenv.spec import load_spec

    urea, nicotinamide = load_spec("urea"), load_spec("nicotinamide")
    assert BAROSTAT_MARGIN == 0.05
    assert supercell_height(urea, 20.0) == 21.0 and supercell_height(urea, 25.0) == 25.0
    assert supercell_height(nicotinamide, 20.0) == 20.0  # 2 x 7 x 1.05 = 14.7: the default is enough
    # an asked-for height below twice the cutoff is raised (10 A would build 2 x 2 x 3 cells, too small)
    system = crystal_system(urea, reference_dir / "urea/formI.cif", supercell_height(urea, 10.0))
    assert system.info["repeats"] == [4, 4, 5]
    assert system.check_box(9.0) is None  # 22.26 A: more than 5 % above 20 A
    # --repeats are built as asked; a box within 5 % of the height it needs gets a warning
    warning = system.check_box(10.7)
    assert "smallest perpendicular height 22.26 A is less than 5 % above the 21.4 A it needs" in warning


def test_a_run_stops_when_its_box_is_below_the_check_height(runs, reference_dir, tmp_path):
    """The runner's check, when production starts after equilibration: a height above the
    built box (22.26 A) stops the run before any frame is recorded, naming the run."""
    from molenv.simulate import SimulationError, md
    from molenv.simulate.parametrise import parametrise
    from molenv.simulate.systems import crystal_system
    from molenv.spec import load_spec

    spec = load_spec("urea")
    system = crystal_system(spec, reference_dir / "urea/formI.cif", repeats=[4, 4, 5])
    ff = parametrise(spec, atom_types="gaff", charges="gas", cache_dir=runs / "ff")

    def setup(directory):
        system.prepare(ff, directory)
        return {"description": system.description, "n_molecules": system.n_molecules, "n_atoms": system.n_atoms, "info": system.info,
                "box_vectors": system.box_vectors().tolist()}

    stages = [md.Stage("equilibrate", 0.02, 100.0, "npt"), md.Stage("production", 0.02, 100.0, "npt", frame_interval_ps=0.01)]
    settings = md.MDSettings(barostat="xy", minimise=False)
    out = tmp_path / "tight"
    with pytest.raises(SimulationError, match=rf"{out}: at t = 0.02 ps, as stage production starts \(after equilibrate\), the box's smallest "
                                              r"perpendicular height is 22.26 A .* below a test height, 22.3 A: the barostat shrank it"):
        md.run(out, {"test": 1}, setup, stages, settings, md.Runtime(threads=1, progress=False), box_check=md.BoxCheck(22.3, "a test height"))
    assert "stopped:" in (out / "run.log").read_text() and not (out / "trajectory.xtc").exists()


def test_featurize_refuses_another_molecule_than_the_runs(runs, tmp_path, capsys):
    code, _, err = molenv(capsys, "featurize", "--molecule", "nicotinamide", "--source", runs / "urea-I-100K", "--source", runs / "urea-melt-350K",
                          "--out", tmp_path / "ds", "--no-progress")
    assert code == 2 and f"{runs / 'urea-I-100K'}: the run simulated urea, but --molecule is nicotinamide" in err
    code, _, err = molenv(capsys, "featurize", "--source", runs / "urea-I-100K", "--trajectory", REPO / "data/urea/urea-IV-100K.xtc",
                          "--label", "I", "--label", "IV", "--out", tmp_path / "ds", "--no-progress")
    assert code == 2 and "give --molecule" in err
