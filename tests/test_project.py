"""`molenv project` (issue 16, item 4): one resumable command from a molecule's crystal
structures to a PLUMED model. A tiny urea project (forms I and IV at 100 K and a melt, under a
picosecond of MD each, Gasteiger charges, five training epochs) is interrupted in its first MD
run, resumed, stopped after featurize and finished: the model file and plumed.dat it writes
run through PLUMED and give Python's numbers. The validation of project files is checked
key by key."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from _md_support import kill_in_production
from conftest import REPO
from _analysis_support import run_cli_output
from molenv.project import SCHEMA, STATE_FILE, ProjectError, load_project, project_status, run_project, write_template

# a project of tiny MD runs: every crystal run 0.2 ps of equilibration and 0.8 ps of production
# (8 frames, a checkpoint every 0.2 ps), the melt 1 ps at 800 K in the expanded box (not long
# enough to pass the melt check, so check = false, as for any deliberately short run)
TINY = """
name = "urea"
[molecule]
spec = "urea"
atom_types = "gaff"
charges = "gas"
ff_cache = "{cache}"
[forms.I]
structure = "{reference}/urea/formI.cif"
[forms.IV]
structure = "{reference}/urea/formIV_approx_P1.cif"
symmetrise = 0.3
[simulate]
temperatures = [100]
equilibrate = 0.2
production = 0.8
frame_interval = 0.1
minimise = false
checkpoint_interval = 0.2
[melt]
density = 1.24
ensemble = "nvt"
barostat = "none"
melt_time = 1
quench_time = 0.2
check = false
[featurize]
split_mode = "random"
[train.sf]
batch_size = 64
max_epochs = 5
patience = 5
[evaluate]
plots = false
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, reference_dir):
    base = tmp_path_factory.mktemp("project")
    return write(base / "urea" / "project.toml", TINY.format(cache=base / "ff", reference=reference_dir))


molenv = run_cli_output  # molenv(capsys, *args) -> (exit code, stdout, stderr)


@pytest.mark.slow
@pytest.mark.reference
def test_killed_stopped_and_finished(tiny, monkeypatch):
    pytest.importorskip("openmm")
    from molenv.analysis import read_table
    from molenv.classification import classify_trajectory
    from molenv.modelfile import read_model
    from molenv.models import SFFrameClassifier
    from molenv.plumed.reanalysis import reanalyse
    from molenv.trajectory import Trajectory

    project = load_project(tiny)
    d = project.directory
    assert [r.name for r in project.runs] == ["urea-I-100K", "urea-IV-100K", "urea-melt-350K"]
    first = project.runs[0].directory

    # killed (kill -9) in the production of its first MD run, after a checkpoint
    kill_in_production(["project", "run", str(tiny), "--until", "simulate", "--no-progress"], first, step=100, timeout=600)
    assert not (first / "trajectory.xtc").exists()
    status = dict(((s, t), v) for s, t, v in project_status(tiny))
    assert status[("simulate", "urea-I-100K")].startswith("partial") and "resumes from its last checkpoint" in status[("simulate", "urea-I-100K")]
    assert status[("simulate", "urea-IV-100K")] == "to do" and status[("train", "sf")] == "to do"

    # run again, up to featurize: the killed run resumes, the others run
    lines = []
    ran = run_project(tiny, until="featurize", progress=False, log=lines.append)
    assert [t.name for t in ran] == ["simulate urea-I-100K", "simulate urea-IV-100K", "simulate urea-melt-350K", "featurize"]
    assert any("urea-I-100K: resuming from its last checkpoint" in line for line in lines)
    assert "resuming at stage 1 (production)" in (first / "run.log").read_text()
    assert len(Trajectory(first / "trajectory.xtc", "urea", topology=first / "topology.pdb")) == 8
    assert (d / "dataset" / "manifest.json").is_file() and not (d / "train").exists()
    state = json.loads((d / STATE_FILE).read_text())["tasks"]
    assert set(state) == {"simulate urea-I-100K", "simulate urea-IV-100K", "simulate urea-melt-350K", "featurize"}
    stamps = {r.name: [(r.directory / f).stat().st_mtime_ns for f in ("trajectory.xtc", "run.log", "run.json")] for r in project.runs}

    # the rest: no MD run and no featurize again
    lines = []
    ran = run_project(tiny, progress=False, log=lines.append)
    assert [t.name for t in ran] == ["train sf", "export sf", "evaluate sf", "plumed-input sf"]
    assert stamps == {r.name: [(r.directory / f).stat().st_mtime_ns for f in ("trajectory.xtc", "run.log", "run.json")] for r in project.runs}
    assert "[simulate] 3 of 3 task(s) done already" in lines and "[featurize] 1 of 1 task(s) done already" in lines
    assert all(v.startswith("done") or v == "off" for v in (s[2] for s in project_status(tiny)))

    model = d / "models" / "urea_sf.molenv"
    m = read_model(model)
    assert m.classes == ["I", "IV", "melt"] and m.ood is not None
    metrics = json.loads((d / "evaluate" / "sf" / "metrics.json").read_text())
    assert metrics["heads"]["polymorph"]["micro_f1"] > 0.9 and "ood" in metrics
    report = (d / "report.md").read_text()
    assert "| `runs/urea-melt-350K` | melt | melt | 350 | 8 |" in report and "- polymorph: micro F1 " in report and "fraction flagged" in report
    plumed = d / "plumed" / "plumed.dat"
    text = plumed.read_text()
    assert f"MODEL={model}" in text and "MOLECULES=1-1280" in text and "   OOD\n" in text  # the first form's run: 160 urea molecules

    # the written input through PLUMED on the form I frames gives the Python classifier's numbers
    monkeypatch.chdir(plumed.parent)
    reanalyse("plumed.dat", first / "trajectory.xtc", first / "topology.pdb", stop=2, progress=False)
    colvar = read_table(plumed.parent / "COLVAR")
    python = classify_trajectory(Trajectory(first / "trajectory.xtc", "urea", topology=first / "topology.pdb", stop=2), SFFrameClassifier(model),
                                 progress=False, with_coordination=False, ood=True)
    for k, name in enumerate(m.classes):
        assert np.allclose(colvar.column(f"cls.n_{name}"), python.probabilities[:, :, k].sum(axis=1), rtol=1e-9)
    assert np.allclose(colvar.column("cls.n_other"), python.other.sum(axis=1), rtol=1e-9, atol=1e-12)

    # a changed setting reruns what it reaches, nothing else
    write(tiny, tiny.read_text() + "[plumed]\nstride = 2\n")
    ran = run_project(tiny, progress=False, log=lambda *a: None)
    assert [t.name for t in ran] == ["plumed-input sf"]
    assert "STRIDE=2" in plumed.read_text()
    # --from reruns a stage and the later ones, even where done
    ran = run_project(tiny, start="evaluate", until="evaluate", progress=False, log=lambda *a: None)
    assert [t.name for t in ran] == ["evaluate sf"]


@pytest.mark.slow
@pytest.mark.reference
def test_graph_classifier_joins_the_finished_project(tiny, monkeypatch):
    """[train.gnn] enabled in a second project file on the same directory: only the GNN's
    tasks (and the PLUMED input whose settings differ from the first file's) run."""
    pytest.importorskip("torch_geometric")
    from molenv.modelfile import model_file_kind

    run_project(tiny, progress=False, log=lambda *a: None)  # done already after the test above
    gnn = write(tiny.with_name("gnn.toml"), tiny.read_text() + "[train.gnn]\nenabled = true\nmax_epochs = 1\nframe_step = 4\nval_frame_step = 2\n")
    ran = [t.name for t in run_project(gnn, progress=False, log=lambda *a: None)]
    assert [n for n in ran if "sf" not in n] == ["train gnn", "export gnn", "evaluate gnn", "plumed-input gnn"]
    assert not [n for n in ran if n.startswith(("simulate", "featurize", "train sf", "export sf"))]
    d = load_project(gnn).directory
    assert model_file_kind(d / "models" / "urea_gnn.molenv") == "gnn"
    assert json.loads((d / "evaluate" / "gnn" / "metrics.json").read_text())["heads"]["polymorph"]["n"] > 0
    gnn_input = d / "plumed" / "plumed_gnn.dat"
    gnn_text = gnn_input.read_text()
    assert "MODEL=" + str(d / "models" / "urea_gnn.molenv") in gnn_text and "MOLECULES=1-1280" in gnn_text and "   OOD\n" in gnn_text
    # the GNN input runs through PLUMED: every molecule classified in every frame
    from molenv.analysis import read_table
    from molenv.plumed.reanalysis import reanalyse

    first = load_project(gnn).runs[0].directory
    monkeypatch.chdir(gnn_input.parent)
    reanalyse(gnn_input.name, first / "trajectory.xtc", first / "topology.pdb", stop=2, progress=False)
    colvar = read_table(gnn_input.parent / "COLVAR")
    assert np.allclose(sum(colvar.column(f"cls.n_{c}") for c in ("I", "IV", "melt")), 160, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.reference
def test_design_stage_on_the_finished_runs(tiny):
    """[design] enabled on the finished MD (a max_cutoff that needs no larger supercell): the
    design runs on the training runs, and the dataset made with the spec's descriptors is
    then out of date."""
    run_project(tiny, progress=False, log=lambda *a: None)  # done already after the tests above
    design = write(tiny.with_name("design.toml"), tiny.read_text() + "[design]\nenabled = true\nmax_cutoff = 8\nmax_frames = 4\n"
                   "max_functions = 4\nmin_functions = 2\n")
    assert [r.key for r in load_project(design).runs] == [r.key for r in load_project(tiny).runs]  # the same MD
    ran = [t.name for t in run_project(design, until="design", progress=False, log=lambda *a: None)]
    assert ran == ["design"]
    from molenv.spec import load_spec

    spec = load_spec(tiny.parent / "design" / "spec.toml")
    assert spec.name == "urea" and spec.rmax <= 8 and 2 <= len(spec.functions) <= 4
    status = {(s, t): v for s, t, v in project_status(design)}
    assert status[("design", "design")].startswith("done") and status[("featurize", "featurize")] == "stale"
    assert status[("simulate", "urea-I-100K")].startswith("done")


def test_from_a_stage_needs_the_earlier_ones(tiny, tmp_path, reference_dir):
    fresh = write(tmp_path / "p" / "project.toml", TINY.format(cache=tmp_path / "ff", reference=reference_dir))
    with pytest.raises(ProjectError, match=r"--from train: earlier tasks are not done \(simulate urea-I-100K, .*featurize\): run the project "
                                           r"without --from first"):
        run_project(fresh, start="train", progress=False, log=lambda *a: None)
    with pytest.raises(ProjectError, match="--from evaluate comes after --until featurize"):
        run_project(fresh, start="evaluate", until="featurize", progress=False, log=lambda *a: None)


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (edit of the tiny project file, the message expected after "<file>: ")
BAD = [
    (("structure = \"{reference}/urea/formI.cif\"", "structure = \"formI_missing.cif\""),
     r"\[forms.I\] structure: .*formI_missing.cif: structure file not found"),
    (("[melt]\n", "[melt]\nform = \"V\"\n"), r"\[melt\] form: unknown label 'V' \(forms: I, IV\)"),
    (("temperatures = [100]", "temperatures = []"), r"\[simulate\] temperatures: the list is empty"),
    (("temperatures = [100]", "temperatures = [100, -5]"), r"\[simulate\] temperatures: expected a number > 0, got -5"),
    (("temperatures = [100]", "temperatures = [100, 100]"), r"\[simulate\] temperatures: \[100.0, 100.0\] lists a temperature twice"),
    (("temperatures = [100]", "temperature = 100"), r"\[simulate\] temperature: unknown key \(keys of \[simulate\]: temperatures, "),
    (("temperatures = [100]\n", ""), r"\[simulate\] temperatures: missing \(K; every form at each"),
    (("spec = \"urea\"", "spec = \"urea-typo\""), r"\[molecule\] spec: "),
    (("spec = \"urea\"", "spec = \"specs/mine.toml\""), r"\[molecule\] spec: .*specs/mine.toml"),
    (("charges = \"gas\"", "charges = \"mine\""), r"\[molecule\] charges: 'mine' is neither bcc, gas nor a charge set of the spec urea "
                                                r"\(its sets: kuroshima2024\)"),
    (("[forms.IV]", "[forms.melt]"), r"\[forms.melt\]: 'melt' is the melt's class; the melt is the \[melt\] table"),
    (("[forms.IV]", "[forms.form-IV]"), r"\[forms.form-IV\]: a form label is a class name: letters, digits and _ only"),
    (("minimise = false", "minimise = \"no\""), r"\[simulate\] minimise: expected true or false, got 'no'"),
    (("frame_interval = 0.1", "frame_interval = 2"), r"\[simulate\] \(run urea-I-100K\): stage production: the frame interval of 2 ps is longer "
                                                     r"than the stage \(0.8 ps\)"),
    (("batch_size = 64", "batch_size = -1"), r"\[train.sf\] batch_size: expected an integer >= 0, got -1"),
    (("[featurize]", "[featurize]\ntrain_temperature = 200"), r"\[featurize\] train_temperature: 200 K is not one of \[simulate\] temperatures \(100\)"),
    (("[featurize]", "[featurize]\naugment_temperature = -350"), r"\[featurize\] augment_temperature: expected"),
    (("[evaluate]", "[clusters]\nforms = [\"II\"]\n[evaluate]"), r"\[clusters\] forms: unknown label 'II' \(forms: I, IV\)"),
    (("[evaluate]", "[plumed]\ntopology = \"urea-V-100K\"\n[evaluate]"),
     r"\[plumed\] topology: 'urea-V-100K' is neither a run of this project \(urea-I-100K, urea-IV-100K, urea-melt-350K\) nor a file"),
    (("[evaluate]", "[design]\nenabled = true\nmin_functions = 30\n[evaluate]"), r"\[design\] min_functions: 30 exceeds max_functions 24"),
    (("[evaluate]", "[export]\nood = false\n[plumed]\nood = true\n[evaluate]"),
     r"\[plumed\] ood = true needs the model file's ood block, and \[export\] ood is false: set \[export\] ood = true, or \[plumed\] ood = false"),
    (("[evaluate]", "[trian.sf]\n[evaluate]"), r"trian: unknown key or table"),
    (("name = \"urea\"", "name = \"urea project\""), r"name: 'urea project' names files"),
    (("name = \"urea\"\n", ""), r"name: missing"),
]


@pytest.mark.parametrize("edit, message", BAD, ids=[m.split(":")[0].replace("\\", "") + f" {k}" for k, (_, m) in enumerate(BAD)])
def test_bad_project_files_name_the_file_and_key(tmp_path, reference_dir, edit, message):
    text = _edit(TINY, *edit).format(cache=tmp_path / "ff", reference=reference_dir)
    path = write(tmp_path / "project.toml", text)
    with pytest.raises(ProjectError, match=re.escape(str(path)) + ": " + message):
        load_project(path)


def test_plumed_ood_follows_the_export(tmp_path, reference_dir):
    """[plumed] ood (OOD in plumed.dat) is on by default, and off by default where the model
    file has no ood block ([export] ood = false)."""
    text = TINY.format(cache=tmp_path / "ff", reference=reference_dir)
    assert load_project(write(tmp_path / "a.toml", text)).plumed["ood"] is True
    assert load_project(write(tmp_path / "b.toml", text + "[export]\nood = false\n")).plumed["ood"] is False
    assert load_project(write(tmp_path / "c.toml", text + "[plumed]\nood = false\n")).plumed["ood"] is False


def test_featurize_augmentation_keys(tmp_path, reference_dir):
    """[featurize] augment_temperature / augment_copies / augment_clusters: off by default, read as given."""
    text = TINY.format(cache=tmp_path / "ff", reference=reference_dir)
    plain = load_project(write(tmp_path / "a.toml", text)).featurize
    assert plain["augment_temperature"] is None and plain["augment_copies"] == 1 and plain["augment_clusters"] is False
    warm = load_project(write(tmp_path / "b.toml", _edit(text, "[featurize]", "[featurize]\naugment_temperature = 200\naugment_copies = 2\n"
                                                                        "augment_clusters = true"))).featurize
    assert warm["augment_temperature"] == 200.0 and warm["augment_copies"] == 2 and warm["augment_clusters"] is True


def test_one_class_and_not_toml(tmp_path, reference_dir):
    one = re.sub(r"\[forms.IV\]\n.*\nsymmetrise = 0.3\n", "", TINY)
    one = one[:one.index("[melt]")] + one[one.index("[featurize]"):]
    path = write(tmp_path / "one.toml", one.format(cache=tmp_path, reference=reference_dir))
    with pytest.raises(ProjectError, match="a classifier needs two classes or more, this project has I only"):
        load_project(path)
    with pytest.raises(ProjectError, match=r"bad.toml: not a valid TOML file"):
        load_project(write(tmp_path / "bad.toml", "name = \n"))
    with pytest.raises(ProjectError, match=r"absent.toml: project file not found"):
        load_project(tmp_path / "absent.toml")


def test_cli_errors_and_status(tmp_path, reference_dir, capsys):
    path = write(tmp_path / "p.toml", _edit(TINY, "temperatures = [100]", "temperatures = []").format(cache=tmp_path, reference=reference_dir))
    code, _, err = molenv(capsys, "project", "run", path)
    assert code == 2 and f"molenv project: error: {path}: [simulate] temperatures: the list is empty" in err
    good = write(tmp_path / "q" / "p.toml", TINY.format(cache=tmp_path, reference=reference_dir))
    code, out, err = molenv(capsys, "project", "status", good)
    assert code == 0, err
    assert re.search(r"simulate +urea-I-100K +to do", out) and re.search(r"design +- +off", out) and re.search(r"plumed-input +sf +to do", out)
    code, _, err = molenv(capsys, "project", "run", good, "--until", "nonsense")
    assert code == 2 and "invalid choice: 'nonsense'" in err


def test_init_writes_a_template_that_loads(tmp_path, reference_dir, capsys):
    out = tmp_path / "new" / "project.toml"
    code, printed, err = molenv(capsys, "project", "init", "--molecule", "urea", "--form", f"I={reference_dir}/urea/formI.cif",
                                "--form", f"IV={reference_dir}/urea/formIV_approx_P1.cif", "--temperature", 100, "--temperature", 200, "--out", out)
    assert code == 0, err
    assert "4 MD runs" not in printed and "5 MD runs (urea-I-100K, urea-I-200K, urea-IV-100K, urea-IV-200K, urea-melt-350K)" in printed
    project = load_project(out)
    assert project.classes == ["I", "IV", "melt"] and project.simulate["production"] == 50.0 and not project.gnn["enabled"]
    text = out.read_text()
    for table, keys in SCHEMA.items():  # every key is in the template
        for key in keys:
            assert re.search(rf"^(# )?{key.name} = ", text, re.M), (table, key.name)
    code, _, err = molenv(capsys, "project", "init", "--molecule", "urea", "--form", f"I={reference_dir}/urea/formI.cif", "--out", out)
    assert code == 2 and "exists (give another file, or --overwrite)" in err
    form = [("I", f"{reference_dir}/urea/formI.cif")]
    with pytest.raises(ProjectError, match=r"--molecule 'C1CC\(': .*neither a spec .* nor a valid SMILES"):
        write_template(tmp_path / "x.toml", molecule="C1CC(", forms=form)
    with pytest.raises(ProjectError, match=r"--molecule: .*mine.toml: spec file not found"):
        write_template(tmp_path / "x.toml", molecule="mine.toml", forms=form)
    with pytest.raises(ProjectError, match=r"--form I=formI_missing.cif: structure file not found"):
        write_template(tmp_path / "x.toml", molecule="urea", forms=[("I", "formI_missing.cif")])
    with pytest.raises(ProjectError, match=r"--symmetrise II: unknown form label \(forms: I\)"):
        write_template(tmp_path / "x.toml", molecule="urea", forms=form, symmetrise={"II": 0.3})


@pytest.mark.slow
@pytest.mark.reference
def test_init_from_a_smiles_designs_a_first_spec(tmp_path, reference_dir, capsys):
    """A molecule without a spec: init designs one from the structures (design0/) and turns
    the project's design stage on; the project file loads and names the new spec."""
    out = tmp_path / "new" / "project.toml"
    code, printed, err = molenv(capsys, "project", "init", "--molecule", "NC(=O)N", "--name", "ureasmiles", "--form", f"I={reference_dir}/urea/formI.cif",
                                "--form", f"IV={reference_dir}/urea/formIV_approx_P1.cif", "--symmetrise", "IV=0.3", "--temperature", 100,
                                "--no-progress", "--out", out)
    assert code == 0, err
    assert "is not a spec: designing a first one from the crystal structures" in printed and "3 MD runs (ureasmiles-I-100K," in printed
    project = load_project(out)
    assert project.design["enabled"] and project.spec == str(out.parent / "design0" / "spec.toml") and project.forms["IV"]["symmetrise"] == 0.3
    from molenv.spec import load_spec

    spec = load_spec(project.spec)
    assert spec.name == "ureasmiles" and spec.smiles == "NC(=O)N" and spec.atom_names[:4] == ["N1", "C2", "O3", "N4"]
    assert "--min-height" in project.runs[0].argv  # room for the design's cutoffs up to 10 A


def test_every_key_is_documented():
    doc = (REPO / "docs" / "new_molecule.md").read_text()
    for table, keys in SCHEMA.items():
        for key in keys:
            assert re.search(rf"`{re.escape(key.name)}`", doc), f"docs/new_molecule.md does not describe [{table}] {key.name}"
