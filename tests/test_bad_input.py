"""Bad input is refused up front, in one line (issue 17, "nothing silently wrong").

Every command given nonsense (a time step of 20 fs, NaN kelvin, a stride of 0, a frame
interval the time step does not divide), the wrong kind of file (a directory or a FIFO as a
model, a file as a dataset directory, a model file named .pt), a damaged one (a truncated
XTC, NaN coordinates, an unreadable checkpoint or .npz) or files that do not belong together
(weights and SF input of another molecule than --spec, a model whose classes are not the
dataset's) exits with status 2 and ends in one line ``molenv <command>: error: ...``: after
argparse's usage for an option out of range, alone otherwise, never after a traceback.

`CASES` is the table: (command line, part of the error line). Adding a case is one line.
Command lines name the test files by ``{placeholders}`` (see `files`); a case whose files
this machine lacks (the committed urea data, ../shared/reference) is skipped.
"""
from __future__ import annotations

import gzip
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REFERENCE, REPO
from test_faults import ENV, molenv_exit, synthetic_dataset

SIM = "simulate crystal --molecule urea --structure {nothing} --out {out}"  # refused before the structure is read
CLASSIFY = "classify --model {model} --topology {pdb} --no-progress --out {out}"
TRAIN_SF = "train sf {dataset} --out {out} --no-progress"
TRAIN_GNN = "train gnn {dataset} --out {out}"
EVALUATE = "evaluate {model} {dataset} --out {out} --no-plots"
FEATURIZE = "featurize --molecule urea --topology {pdb} --label I --temperature 100 --no-progress --out {out}"
REANALYSE = "reanalyse --plumed {plumed} --topology {pdb} --no-progress"
PLUMED_INPUT = "plumed-input --model {model} --topology {pdb} -o {out}"
IMPORT = "import-reference --out {out}/m.molenv"

CASES = [
    # --- molenv simulate: physics out of range (argparse) ...
    (SIM + " --timestep 20", "argument --timestep: expected a finite number > 0 and <= 10 (fs), got 20"),
    (SIM + " --timestep 0", "argument --timestep: expected a finite number > 0 and <= 10 (fs), got 0"),
    (SIM + " --temperature nan", "argument --temperature: expected a finite number > 0, got nan"),
    (SIM + " --temperature 0", "argument --temperature: expected a finite number > 0, got 0"),
    (SIM + " --temperature inf", "argument --temperature: expected a finite number > 0, got inf"),
    (SIM + " --friction -1", "argument --friction: expected a finite number >= 0, got -1"),
    (SIM + " --production -5", "argument --production: expected a finite number >= 0, got -5"),
    (SIM + " --equilibrate -1", "argument --equilibrate: expected a finite number >= 0, got -1"),
    (SIM + " --pressure nan", "argument --pressure: expected a finite number, got nan"),
    (SIM + " --frame-interval 0", "argument --frame-interval: expected a finite number > 0, got 0"),
    (SIM + " --checkpoint-interval 0", "argument --checkpoint-interval: expected a finite number > 0, got 0"),
    (SIM + " --threads 0", "argument --threads: expected a number of threads >= 1 (leave --threads out for the default), got 0"),
    ("simulate melt --molecule urea --structure {nothing} --out {out} --melt-temperature -800", "argument --melt-temperature: expected a finite number > 0"),
    ("simulate cluster --molecule urea --structure {nothing} --out {out} --diameter 0", "argument --diameter: expected a finite number > 0, got 0"),
    # ... and frames that would not be the ones asked for
    (SIM + " --production 0 --frame-interval 1", "--frame-interval 1 asks for frames, but --production 0 records none"),
    (SIM + " --production 10 --frame-interval 20", "stage production: the frame interval of 20 ps is longer than the stage (10 ps): no frame would be recorded"),
    (SIM + " --production 0.5", "stage production: the frame interval of 1 ps is longer than the stage (0.5 ps)"),  # the default interval
    (SIM + " --frame-interval 0.003", "a frame interval of 0.003 ps is not a whole number of 2 fs time steps; the nearest that are: 0.002 ps and 0.004 ps"),
    (SIM + " --frame-interval 0.0015", "a frame interval of 0.0015 ps is not a whole number of 2 fs time steps; the nearest that are: 0.002 ps"),
    (SIM + " --timestep 1.5 --frame-interval 0.01", "not a whole number of 1.5 fs time steps; the nearest that are: 0.009 ps and 0.0105 ps"),
    # --- molenv plumed-input
    (PLUMED_INPUT + " --stride 0", "argument --stride: expected an integer >= 1, got 0"),
    (PLUMED_INPUT + " --stride -2", "argument --stride: expected an integer >= 1, got -2"),
    (PLUMED_INPUT + " --file-stride 0", "argument --file-stride: expected an integer >= 1, got 0"),
    (PLUMED_INPUT + " --num-threads 0", "argument --num-threads: expected an integer >= 1, got 0"),
    ("plumed-input --model {directory} --topology {pdb}", "directory: is a directory, not a model file"),
    # --- molenv import-reference: weights and SF input of one molecule, --spec of another
    (IMPORT + " --weights {ref}/nicotinamide/sf_mlp_weights_molstruc.txt --sf-input {ref}/nicotinamide/sf_input_molstruc.dat --spec urea "
     "--classes I,II,III,IV,V,VI,VII,VIII,IX,Melt", "nicotinamide/sf_input_molstruc.dat: its 24 symmetry functions (cutoff 6.8-7 A) are not those of spec urea (24, cutoff 9.8-10 A)"),
    (IMPORT + " --weights {ref}/urea/sf_mlp_weights_molstruc.txt --sf-input {ref}/urea/sf_input_molstruc.dat --spec nicotinamide "
     "--classes I,IV,Melt,A,B,C,III", "urea/sf_input_molstruc.dat: its 24 symmetry functions (cutoff 9.8-10 A) are not those of spec nicotinamide"),
    (IMPORT + " --weights {ref}/nicotinamide/sf_mlp_weights_molstruc.txt --sf-input {ref}/urea/sf_input_molstruc.dat --spec urea "
     "--classes I,IV,Melt,A,B,C,III", "nicotinamide/sf_mlp_weights_molstruc.txt: the network has 10 outputs, 7 class names were given"),
    (IMPORT + " --weights {directory} --sf-input {ref}/urea/sf_input_molstruc.dat --spec urea --classes I", "directory: is a directory, not a weight file"),
    # --- molenv export: the extension says what the file is
    ("export {sf_checkpoint} --out {out}/m.pt", "an SF classifier is written as a molenv model file, which takes the extension .molenv"),
    ("export {sf_checkpoint} --out {out}/m.txt", "an SF classifier is written as a molenv model file, which takes the extension .molenv"),
    ("export {fifo} --out {out}/m.molenv", "fifo: is a FIFO (named pipe), not a model"),
    # --- molenv train sf / gnn
    (TRAIN_SF + " --batch-size -1", "argument --batch-size: expected an integer >= 0, got -1"),
    (TRAIN_GNN + " --batch-size 0", "argument --batch-size: expected an integer >= 1, got 0"),
    (TRAIN_SF + " --patience -1", "argument --patience: expected an integer >= 0, got -1"),
    (TRAIN_GNN + " --patience -1", "argument --patience: expected an integer >= 0, got -1"),
    (TRAIN_SF + " --max-epochs 0", "argument --max-epochs: expected an integer >= 1, got 0"),
    (TRAIN_GNN + " --max-epochs 0", "argument --max-epochs: expected an integer >= 1, got 0"),
    (TRAIN_SF + " --min-delta -0.001", "argument --min-delta: expected a finite number >= 0, got -0.001"),
    (TRAIN_SF + " --lr nan", "argument --lr: expected a finite number > 0, got nan"),
    (TRAIN_SF + " --input-noise -0.1", "argument --input-noise: expected a finite number >= 0, got -0.1"),
    (TRAIN_SF + " --threads 0", "argument --threads: expected a number of threads >= 1"),
    (TRAIN_GNN + " --threads -1", "argument --threads: expected a number of threads >= 1"),
    (TRAIN_GNN + " --dropout 1", "argument --dropout: expected a finite number >= 0 and < 1, got 1"),
    (TRAIN_GNN + " --lr-decay 0", "argument --lr-decay: expected a finite number > 0 and <= 1, got 0"),
    (TRAIN_GNN + " --frame-step 0", "argument --frame-step: expected an integer >= 1, got 0"),
    (TRAIN_GNN + " --devices 0", "argument --devices: expected an integer >= 1, got 0"),
    (TRAIN_GNN + " --max-time 0", "argument --max-time: expected a finite number > 0, got 0"),
    ("train sf {file} --out {out}", "file: is a file, not a dataset directory"),
    ("train sf {fifo} --out {out}", "fifo: is a FIFO (named pipe), not a dataset directory"),
    (TRAIN_SF + " --resume {garbage}", "garbage.ckpt: cannot read the checkpoint"),
    (TRAIN_GNN + " --resume {garbage}", "garbage.ckpt: cannot read the checkpoint"),
    (TRAIN_GNN + " --resume {directory}", "directory: is a directory, not a checkpoint"),
    ("train sf {damaged_dataset} --out {out}", "I.npz: cannot read the data file of source 'I'"),
    # --- molenv evaluate
    (EVALUATE + " --batch-size 0", "argument --batch-size: expected an integer >= 1, got 0"),
    (EVALUATE + " --tsne-samples -1", "argument --tsne-samples: expected an integer >= 0, got -1"),
    ("evaluate {fifo} {dataset} --out {out}", "fifo: is a FIFO (named pipe), not a model"),
    ("evaluate {model} {file} --out {out}", "file: is a file, not a dataset directory"),
    ("evaluate {model} {dataset} --out {file}", "file: is a file, not a directory"),
    ("evaluate {model_other_classes} {dataset} --out {out}",
     "the model's classes (a, b) do not include I, IV of the dataset"),
    ("evaluate {model_one_class} {dataset} --out {out}", "the model's classes (I, melt) do not include IV of the dataset"),
    # --- molenv classify
    (CLASSIFY + " -t {xtc} --step 0", "argument --step: expected an integer >= 1, got 0"),
    (CLASSIFY + " -t {xtc} --step -1", "argument --step: expected an integer >= 1, got -1"),
    (CLASSIFY + " -t {xtc} --threshold -0.1", "argument --threshold: expected a finite number >= 0 and <= 1, got -0.1"),
    (CLASSIFY + " -t {xtc} --threshold 1.5", "argument --threshold: expected a finite number >= 0 and <= 1, got 1.5"),
    (CLASSIFY + " -t {xtc} --cn-threshold -1", "argument --cn-threshold: expected an integer >= 0, got -1"),
    (CLASSIFY + " -t {xtc} --workers 0", "argument --workers: expected an integer >= 1, got 0"),
    ("classify --model {directory} -t {xtc} --topology {pdb}", "directory: is a directory, not a model file"),
    ("classify --model {fifo} -t {xtc} --topology {pdb}", "fifo: is a FIFO (named pipe), not a model file"),
    (CLASSIFY + " -t {directory}", "directory: is a directory, not a file"),
    (CLASSIFY + " -t {cut_xtc}", "cut.xtc: the file ends inside frame 3 (only 20 bytes of it are there): it is truncated"),
    (CLASSIFY + " -t {short_xtc}", "short.xtc: the file ends inside frame 3 (cannot read it: XTC read error"),
    (CLASSIFY + " -t {short_xtc} --stop 4", "--stop 3 reads its 3 whole frames"),  # a --stop past the whole frames
    (CLASSIFY + " -t {nan_pdb}", "nan.pdb: frame 0: non-finite coordinates (NaN or inf) for 1 of 1440 atoms, the first atom 21"),
    ("classify --model {model} -t {xtc} --topology {pdb} --out {file}", "file: is a file, not a directory"),
    # --- molenv featurize
    (FEATURIZE + " --trajectory {cut_xtc}", "cut.xtc: the file ends inside frame 3 (only 20 bytes of it are there)"),
    (FEATURIZE + " --trajectory {nan_pdb}", "nan.pdb: frame 0: non-finite coordinates (NaN or inf)"),
    (FEATURIZE + " --trajectory {xtc} --step 0", "argument --step: expected an integer >= 1, got 0"),
    (FEATURIZE + " --trajectory {xtc} --workers 0", "argument --workers: expected a number of threads >= 1"),
    (FEATURIZE + " --trajectory {xtc} --cn-threshold -1", "argument --cn-threshold: expected an integer >= 0, got -1"),
    # --- molenv reanalyse
    (REANALYSE + " -t {cut_xtc}", "cut.xtc: the file ends inside frame 3 (only 20 bytes of it are there)"),
    (REANALYSE + " -t {short_xtc}", "short.xtc: the file ends inside frame 3 (cannot read it"),
    ("reanalyse --plumed {plumed} -t {nan_pdb} --no-progress", "nan.pdb: frame 0: non-finite coordinates (NaN or inf) for 1 of 1440 atoms, the first atom 21"),
    (REANALYSE + " -t {xtc} --step 0", "argument --step: expected an integer >= 1, got 0"),
    (REANALYSE + " -t {xtc} --timestep 0", "argument --timestep: expected a finite number > 0, got 0"),
    (REANALYSE + " -t {directory}", "directory: is a directory, not a file"),
    (REANALYSE + " -t {xtc} --workers 0", "argument --workers: expected an integer >= 1, got 0"),
    (REANALYSE + " -t {cut_xtc} --backend multiprocessing", "cut.xtc: the file ends inside frame 3 (only 20 bytes of it are there)"),
    ("reanalyse --plumed {plumed} -t {nan_pdb} --no-progress --backend multiprocessing",
     "nan.pdb: frame 0: non-finite coordinates (NaN or inf) for 1 of 1440 atoms, the first atom 21"),  # raised on a worker
]

# cases also run as a separate process: stderr must be the error line and nothing else (no
# MDAnalysis or torch noise, no traceback from a destructor at exit)
SUBPROCESS_CASES = [
    (CLASSIFY + " -t {cut_xtc}", "the file ends inside frame 3"),
    (FEATURIZE + " --trajectory {short_xtc}", "the file ends inside frame 3"),
    (REANALYSE + " -t {cut_xtc}", "the file ends inside frame 3"),
    ("reanalyse --plumed {plumed} -t {nan_pdb} --no-progress", "non-finite coordinates"),
    ("classify --model {fifo} -t {xtc} --topology {pdb}", "is a FIFO (named pipe), not a model file"),
    (TRAIN_GNN + " --resume {garbage}", "garbage.ckpt: cannot read the checkpoint"),
]


def _model(path: Path, classes: list[str], rows: list[float]) -> Path:
    """An SF model file on urea's descriptors: one linear layer whose output k is rows[k] x
    the sum of the (scaled) descriptors (the synthetic dataset's class IV has the larger)."""
    from molenv.modelfile import Model, Network, write_model
    from molenv.spec import load_spec

    d = load_spec("urea").descriptor_set()
    n = d.n_features
    network = Network(np.zeros(n), np.ones(n), [np.array([[r] * n for r in rows])], [np.zeros(len(rows))])
    write_model(Model(f"toy {'/'.join(classes)}", classes, d, network, {}), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The files the cases name: those made here, and what this machine has of the urea data
    and ../shared/reference."""
    import torch

    tmp = tmp_path_factory.mktemp("bad-input")
    f = {"nothing": tmp / "nothing.cif", "directory": tmp / "directory", "file": tmp / "file", "fifo": tmp / "fifo",
         "garbage": tmp / "garbage.ckpt", "sf_checkpoint": tmp / "sf.ckpt", "plumed": tmp / "plumed.dat"}
    f["directory"].mkdir()
    f["file"].write_text("not a directory\n")
    os.mkfifo(f["fifo"])
    f["garbage"].write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {}, "molenv_kind": "sf"}, f["sf_checkpoint"])  # what `molenv export` recognises as an SF checkpoint
    f["plumed"].write_text("d: DISTANCE ATOMS=1,2\nPRINT ARG=d FILE=COLVAR\n")
    f["dataset"] = synthetic_dataset(tmp / "dataset").path  # classes I and IV
    f["damaged_dataset"] = synthetic_dataset(tmp / "damaged", hashes=False).path  # (without hashes, which would catch it first)
    (f["damaged_dataset"] / "I.npz").write_bytes((f["damaged_dataset"] / "I.npz").read_bytes()[:200])
    f["model"] = _model(tmp / "model.molenv", ["I", "IV"], [-1.0, 1.0])
    f["model_other_classes"] = _model(tmp / "other.molenv", ["a", "b"], [-1.0, 1.0])
    f["model_one_class"] = _model(tmp / "one.molenv", ["I", "melt"], [-1.0, 1.0])
    source = REPO / "data" / "urea" / "urea-IV-100K.xtc"
    if source.is_file():
        from MDAnalysis.lib.formats.libmdaxdr import XTCFile

        f["xtc"] = tmp / "full.xtc"
        shutil.copy(source, f["xtc"])  # read a copy: MDAnalysis writes an offsets file beside what it reads
        f["pdb"] = tmp / "top.pdb"
        f["pdb"].write_text(gzip.open(REPO / "data" / "urea" / "urea-IV-100K.pdb.gz", "rt").read())
        with XTCFile(str(f["xtc"])) as xtc:
            offsets = xtc.offsets
        data = f["xtc"].read_bytes()
        f["cut_xtc"], f["short_xtc"] = tmp / "cut.xtc", tmp / "short.xtc"
        f["cut_xtc"].write_bytes(data[: offsets[3] + 20])  # 20 bytes of frame 3, less than its header: MDAnalysis counts 3 frames
        f["short_xtc"].write_bytes(data[: offsets[4] - 10])  # frame 3 all but its last 10 bytes: MDAnalysis counts 4
        lines = f["pdb"].read_text().splitlines(keepends=True)
        atom = [k for k, line in enumerate(lines) if line.startswith(("ATOM", "HETATM"))][20]  # atom 21, a hydrogen
        lines[atom] = lines[atom][:30] + f"{'nan':>8s}" + lines[atom][38:]
        f["nan_pdb"] = tmp / "nan.pdb"
        f["nan_pdb"].write_text("".join(lines))
    if REFERENCE.is_dir():
        f["ref"] = REFERENCE
    return f


def command_line(case: str, files: dict, tmp_path: Path) -> list[str]:
    try:
        text = case.format(**files, out=tmp_path / "out")
    except KeyError as missing:
        pytest.skip(f"needs {missing} (the committed urea data or ../shared/reference), absent here")
    return shlex.split(text)


def assert_one_line_error(code: int, err: str, command: str, fragment: str) -> None:
    """Exit status 2 and stderr ending in ``molenv COMMAND...: error: ...FRAGMENT...``,
    preceded by argparse's usage or by nothing."""
    lines = err.rstrip("\n").splitlines()
    assert code == 2 and lines, err
    assert "Traceback" not in err, err
    assert lines[-1].startswith(f"molenv {command}") and ": error: " in lines[-1], err
    assert fragment in lines[-1], f"expected {fragment!r} in\n{lines[-1]}"
    before = lines[:-1]
    assert not before or (before[0].startswith("usage: ") and all(line.startswith(" ") for line in before[1:])), err


@pytest.mark.parametrize("case, fragment", CASES, ids=[c[0].split("{")[0].strip() + " | " + c[1][:40] for c in CASES])
def test_refused_in_one_line(case, fragment, files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # reanalyse: PLUMED's files land in the current directory
    args = command_line(case, files, tmp_path)
    code, _, err = molenv_exit(capsys, *args)
    assert_one_line_error(code, err, args[0], fragment)
    assert not (tmp_path / "out").exists() or args[0] in ("import-reference",), "wrote into --out before refusing"


@pytest.mark.parametrize("case, fragment", SUBPROCESS_CASES, ids=[c[0].split("{")[0].strip() for c in SUBPROCESS_CASES])
def test_refused_in_one_line_by_a_process(case, fragment, files, tmp_path):
    args = command_line(case, files, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "molenv", *args], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.stderr.count("\n") == 1, proc.stderr  # the error line and nothing else
    assert_one_line_error(proc.returncode, proc.stderr, args[0], fragment)


def test_truncated_file_reads_with_stop(files, tmp_path, capsys):
    """--stop at the whole frames, as the message says, reads them."""
    args = command_line(CLASSIFY + " -t {cut_xtc} --stop 3 --no-plot", files, tmp_path)
    code, out, err = molenv_exit(capsys, *args)
    assert code == 0 and "3 frames, 180 molecules" in out, err


def test_too_many_threads_are_clamped_with_a_warning(capsys):
    from molenv.cli import build_parser
    from molenv.commands._options import THREADS_PER_CPU

    limit = THREADS_PER_CPU * (os.cpu_count() or 1)
    args = build_parser().parse_args(["train", "sf", "ds", "--out", "o", "--threads", str(limit + 1)])
    assert args.threads == limit
    assert f"molenv: warning: --threads {limit + 1} is more than {THREADS_PER_CPU} x the {os.cpu_count()} CPUs of this machine; using {limit}" in capsys.readouterr().err
    assert build_parser().parse_args(["train", "sf", "ds", "--out", "o", "--threads", str(limit)]).threads == limit


def test_evaluate_maps_classes_by_name(files, tmp_path, capsys):
    """A model with the dataset's classes in another order (its outputs swapped with them),
    or with a class more, scores the same: classes are matched by name, not position."""
    metrics = {}
    for name, classes, rows in (("same", ["I", "IV"], [-1.0, 1.0]), ("swapped", ["IV", "I"], [1.0, -1.0]), ("more", ["IV", "melt", "i"], [1.0, 0.0, -1.0])):
        model = _model(tmp_path / f"{name}.molenv", classes, rows)
        code, _, err = molenv_exit(capsys, "evaluate", model, files["dataset"], "--out", tmp_path / name, "--no-plots", "--split", "train")
        assert code == 0, err
        import json

        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())["heads"]["polymorph"]
    assert metrics["same"]["micro_f1"] > 0.6  # the toy model does separate the classes
    for name in ("swapped", "more"):
        assert metrics[name]["micro_f1"] == metrics["same"]["micro_f1"]
        assert {c.upper(): v["recall"] for c, v in metrics[name]["per_class"].items()} == {c: v["recall"] for c, v in metrics["same"]["per_class"].items()}


def test_results_file_damaged_is_one_error(tmp_path):
    """molecules.npz (`ClassificationResult.save`) cut short, or another .npz."""
    from molenv.analysis import AnalysisError, ClassificationResult

    result = ClassificationResult(["a", "b"], np.arange(3.0), np.full((3, 4, 2), 0.5))
    path = result.save(tmp_path / "molecules.npz")
    assert ClassificationResult.load(path).n_frames == 3
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(AnalysisError, match=r"cut.npz: cannot read it as an .npz of per-molecule results .*damaged or truncated"):
        ClassificationResult.load(cut)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(AnalysisError, match=r"other.npz: not a file of per-molecule results written by molenv .lacks classes"):
        ClassificationResult.load(tmp_path / "other.npz")
    with pytest.raises(AnalysisError, match=r"is a directory, not a file"):
        ClassificationResult.load(tmp_path)


# MD settings in Python (`molenv.simulate.md`): the same limits as the command line, NaN included
MD_CASES = [
    (dict(stage=("production", 10.0, float("nan"))), "temperatures > 0"),
    (dict(stage=("production", -1.0, 300.0)), "time must be >= 0"),
    (dict(stage=("production", 10.0, 300.0, "nvt", float("nan"))), "frame interval must be >= 0"),
    (dict(settings={"timestep_fs": 20.0}), "time step must be > 0 and at most 10 fs, got 20.0 fs"),
    (dict(settings={"timestep_fs": float("nan")}), "time step must be > 0"),
    (dict(settings={"friction_ps": -1.0}), "friction must be >= 0"),
    (dict(settings={"pressure_bar": float("nan")}), "pressure must be a finite number"),
    (dict(settings={"report_ps": float("nan")}), "checkpoint and report intervals must be > 0"),
    (dict(stage=("production", 10.0, 300.0, "nvt", 0.003)), "not a whole number of 2 fs time steps; the nearest that are: 0.002 ps and 0.004 ps"),
    (dict(stage=("production", 1.0, 300.0, "nvt", 2.0)), "longer than the stage (1 ps)"),
]


@pytest.mark.parametrize("given, message", MD_CASES)
def test_md_settings_refused(given, message, tmp_path):
    from molenv.simulate import SimulationError, md

    called = []
    with pytest.raises(SimulationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stage = md.Stage(*given.get("stage", ("production", 10.0, 300.0, "nvt", 1.0)))
        md.run(tmp_path / "run", {}, called.append, [stage], md.MDSettings(**given.get("settings", {})))
    assert not called and not (tmp_path / "run").exists()  # refused before anything was made
