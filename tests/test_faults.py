"""Faults, interruptions and concurrency (issue 17): output directories locked against a
second process, datasets written atomically and checked against their hashes, `featurize`
killed and run again giving the uninterrupted dataset, `train sf` and `train gnn` refusing
to overwrite and, killed with kill -9, continuing with --resume to the uninterrupted model
bit for bit, `molenv plumed` passing on signals, non-finite probabilities and degenerate
boxes refused (kill -9 of `simulate`: tests/test_simulate.py, tests/test_simulate_plumed.py
and the lock test below).

The cases of a kind are lists (``*_CASES``): adding a case is one line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from molenv.cli import main
from molenv.constants import file_sha256
from molenv.dataset import DatasetError, open_dataset, write_manifest, write_source
from molenv.descriptors import descriptor_set_to_dict
from molenv.runlock import LOCK_NAME, DirectoryLock, DirectoryLocked, holder
from molenv.spec import load_spec

from _torch_support import one_torch_thread  # noqa: F401
from conftest import REPO

PY = [sys.executable]
ENV = dict(os.environ, PYTHONPATH=str(REPO / "py"), OMP_NUM_THREADS="1")


def molenv_exit(capsys, *args) -> tuple[int, str, str]:
    """``molenv ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def start_holder(directory: Path, script: str) -> subprocess.Popen:
    """A Python process running `script` (with ``OUT`` = `directory`) that takes the lock of
    `directory`; returns once the lock file names it."""
    proc = subprocess.Popen([*PY, "-c", f"OUT = {str(directory)!r}\n" + textwrap.dedent(script)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while (holder(directory) or {}).get("pid") != proc.pid:
        if proc.poll() is not None:
            pytest.fail(f"the holder ended: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("the holder did not take the lock within 60 s")
        time.sleep(0.05)
    return proc


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


# ----------------------------------------------------------------------------- the lock


def test_lock_refuses_a_second_holder_and_dies_with_the_first(tmp_path):
    proc = start_holder(tmp_path, """
        import time
        from molenv.runlock import DirectoryLock
        with DirectoryLock(OUT, command="molenv simulate crystal --out x"):
            time.sleep(600)
    """)
    with pytest.raises(DirectoryLocked) as err:
        DirectoryLock(tmp_path).acquire()
    message = str(err.value)
    assert f"pid {proc.pid} on " in message and "molenv simulate crystal --out x" in message and "since 20" in message
    kill9(proc)
    assert (tmp_path / LOCK_NAME).is_file()  # left by the killed holder, but no longer locked
    with DirectoryLock(tmp_path, command="second") as lock:
        assert lock.held and holder(tmp_path)["pid"] == os.getpid() and holder(tmp_path)["command"] == "second"
    assert not (tmp_path / LOCK_NAME).exists()  # a clean release removes the file


def test_lock_file_without_a_holder_is_no_obstacle(tmp_path):
    (tmp_path / LOCK_NAME).write_text("not json")  # e.g. from a killed holder, or garbage
    with DirectoryLock(tmp_path):
        pass
    with DirectoryLock(tmp_path):  # and no lock file at all (a run directory older than the lock)
        pass


SIMULATE_HOLDER = """
    import time
    from molenv.simulate import md

    def setup(directory):  # holds the run directory's lock while "setting up"
        time.sleep(600)

    md.run(OUT, {"molecule": "urea"}, setup, [md.Stage("production", 1.0, 100.0, "nvt")], md.MDSettings(), command="molenv simulate holder")
"""


def test_simulate_run_directory_is_locked(tmp_path):
    from molenv.simulate import md

    out = tmp_path / "run"
    proc = start_holder(out, SIMULATE_HOLDER)
    called = []
    with pytest.raises(DirectoryLocked, match=rf"run directory is in use by another molenv process \(pid {proc.pid} .*molenv simulate holder"):
        md.run(out, {"molecule": "urea"}, called.append, [md.Stage("production", 1.0, 100.0, "nvt")], md.MDSettings())
    assert not called  # refused before anything was done
    kill9(proc)

    def setup(directory):
        raise RuntimeError("set up past the lock")

    with pytest.raises(RuntimeError, match="past the lock"):  # the killed holder's lock is gone
        md.run(out, {"molecule": "urea"}, setup, [md.Stage("production", 1.0, 100.0, "nvt")], md.MDSettings())
    assert sorted(p.name for p in out.iterdir()) == []  # the failed set-up removed its files and released the lock


@pytest.mark.reference
def test_second_simulate_on_a_running_directory_is_refused(tmp_path, reference_dir, capsys):
    """A real run in a subprocess: the same command on its --out is refused at once, naming
    it, and leaves its files alone; after a kill -9 the same command resumes it."""
    pytest.importorskip("openmm")
    out = tmp_path / "cluster"
    args = ["simulate", "cluster", "--molecule", "urea", "--atom-types", "gaff", "--charges", "gas", "--ff-cache", str(tmp_path / "ff"),
            "--structure", str(reference_dir / "urea/formI.cif"), "--diameter", "10", "--temperature", "100",
            "--equilibrate", "0.2", "--production", "40", "--frame-interval", "0.5", "--checkpoint-interval", "1",
            "--threads", "1", "--no-progress", "--no-minimise", "--out", str(out)]
    proc = subprocess.Popen([*PY, "-m", "molenv", *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not ((out / "progress.json").is_file() and json.loads((out / "progress.json").read_text())["stage"] == 1):
            if proc.poll() is not None:
                pytest.fail(f"the first run ended early: {proc.stderr.read().decode()[-2000:]}")
            assert time.time() < deadline, "the first run reached no checkpoint in production within 300 s"
            time.sleep(0.05)
        code, _, err = molenv_exit(capsys, *args)  # the same command again, while the first runs
        assert code == 2 and f"in use by another molenv process (pid {proc.pid} on " in err and "molenv simulate cluster" in err, err
        assert proc.poll() is None and (out / "progress.json").is_file() and (out / "run.json").is_file()
    finally:
        kill9(proc)
    assert not json.loads((out / "progress.json").read_text())["done"]
    code, _, err = molenv_exit(capsys, *args)  # after kill -9: resumes
    assert code == 0, err
    assert "resuming at stage 1 (production)" in (out / "run.log").read_text()
    assert json.loads((out / "summary.json").read_text())["n_frames"] == 80 and not (out / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- datasets


def synthetic_dataset(path: Path, frames: int = 10, molecules: int = 40, seed: int = 0, hashes: bool = True):
    """A small urea dataset of random descriptors (two classes, shifted means) written as
    `molenv featurize` would: per source 60 % train, 30 % val, 10 % test frames."""
    spec = load_spec("urea")
    d = spec.descriptor_set()
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    n_atoms = molecules * spec.atoms_per_molecule
    z = {"H": 1, "C": 6, "N": 7, "O": 8}
    split = np.array([0] * (frames - frames * 4 // 10) + [1] * (frames * 3 // 10) + [2] * (frames // 10), dtype=np.int8)
    entries = []
    for k, label in enumerate(["I", "IV"]):
        arrays = {
            "positions": rng.uniform(0, 30, (frames, n_atoms, 3)), "boxes": np.tile([30.0, 30, 30, 90, 90, 90], (frames, 1)),
            "times": np.arange(frames, dtype=float), "atomic_numbers": np.tile([z[e] for e in spec.elements], molecules),
            "molecules": np.arange(n_atoms).reshape(molecules, -1), "features": rng.normal(0.7 * k, 1.0, (frames, molecules, d.n_features)),
            "labels": np.full((frames, molecules), k), "topology": np.zeros((frames, molecules)), "cn": np.full((frames, molecules), 30),
            "cn_radius": np.full(frames, 2.2), "split": split,
        }
        write_source(path / f"{label}.npz", arrays)
        entries.append({"name": label, "file": f"{label}.npz", "label": label, "temperature_K": 100.0, "system": "crystal", "periodic": True,
                        "split": None, "frames": {s: int((split == i).sum()) for i, s in enumerate(["train", "val", "test"])},
                        "n_frames": frames, "n_molecules": molecules} | ({"sha256": file_sha256(path / f"{label}.npz")} if hashes else {}))
    write_manifest(path, {"molecule": "urea", "descriptors": descriptor_set_to_dict(d), "classes": ["I", "IV"], "sources": entries, "counts": {}})
    return open_dataset(path)


def urea_sources(stop: int = 2):
    """Two short sources of the committed urea data (form IV and the melt)."""
    from molenv.featurize import sources_from_manifest

    names = ["urea-IV-100K", "urea-melt-350K"]
    if not all((REPO / "data" / "urea" / f"{n}.xtc").is_file() for n in names):
        pytest.skip("the urea MD data (data/urea) are not there")
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for s in sources:
        s.reader["stop"] = stop
    return sources


def snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_featurize_records_hashes_and_replaces_a_dataset_whole(tmp_path):
    from molenv.featurize import featurize

    ds = featurize(urea_sources(), "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    assert all(s["sha256"] == file_sha256(ds.path / s["file"]) for s in ds.sources)
    before = snapshot(tmp_path / "ds")
    again = featurize(urea_sources(3), "urea", tmp_path / "ds", overwrite=True, progress=False, log=lambda *a: None)
    assert [s["n_frames"] for s in again.sources] == [3, 3] and snapshot(tmp_path / "ds") != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary or replaced directory left
    assert oct((tmp_path / "ds").stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# where featurize is interrupted: (function of molenv.featurize to wrap, call on which it fails)
INTERRUPTIONS = [
    ("write_source", 2),  # the second source file: one new file written
    ("write_manifest", 1),  # every source file written, no manifest yet
    ("_fsync", 3),  # after the first source file
]


@pytest.mark.parametrize("function, call", INTERRUPTIONS)
def test_interrupted_featurize_leaves_the_previous_dataset(tmp_path, monkeypatch, function, call):
    import molenv.featurize as featurize_module

    featurize_module.featurize(urea_sources(), "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    before = snapshot(tmp_path / "ds")
    real, calls = getattr(featurize_module, function), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt  # as Ctrl-C, or any error
        return real(*args, **kwargs)

    monkeypatch.setattr(featurize_module, function, failing)
    with pytest.raises(KeyboardInterrupt):
        featurize_module.featurize(urea_sources(3), "urea", tmp_path / "ds", overwrite=True, progress=False, log=lambda *a: None)
    assert snapshot(tmp_path / "ds") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert [s["n_frames"] for s in open_dataset(tmp_path / "ds").sources] == [2, 2]


def test_featurize_failing_between_the_renames_puts_the_old_dataset_back(tmp_path, monkeypatch):
    import molenv.featurize as featurize_module

    featurize_module.featurize(urea_sources(), "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    before = snapshot(tmp_path / "ds")
    real, calls = os.replace, []

    def failing(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new dataset into place, after the old one was moved aside
            raise OSError("disk gone")
        return real(src, dst)

    monkeypatch.setattr(featurize_module.os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        featurize_module.featurize(urea_sources(3), "urea", tmp_path / "ds", overwrite=True, progress=False, log=lambda *a: None)
    monkeypatch.undo()
    assert snapshot(tmp_path / "ds") == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_featurize_killed_leaves_the_previous_dataset(tmp_path):
    """kill -9 (no clean-up at all) after the first new source file."""
    from molenv.featurize import featurize

    featurize(urea_sources(), "urea", tmp_path / "ds", progress=False, log=lambda *a: None)
    before = snapshot(tmp_path / "ds")
    script = f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import molenv.featurize as f
        from test_faults import urea_sources
        real = f.write_source
        def write_then_die(path, arrays):
            real(path, arrays)
            os.kill(os.getpid(), signal.SIGKILL)
        f.write_source = write_then_die
        f.featurize(urea_sources(3), "urea", {str(tmp_path / 'ds')!r}, overwrite=True, progress=False)
    """
    proc = subprocess.run([*PY, "-c", textwrap.dedent(script)], env=ENV, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert snapshot(tmp_path / "ds") == before
    [left] = [p for p in tmp_path.iterdir() if p.name != "ds"]
    assert left.name.startswith(".ds.featurize-") and len(list(left.glob("*.npz"))) == 1
    notes = []
    featurize(urea_sources(), "urea", tmp_path / "other", progress=False, log=notes.append)
    featurize(urea_sources(), "urea", tmp_path / "ds", overwrite=True, progress=False, log=notes.append)
    assert any(str(left) in n and "interrupted" in n for n in notes)


def kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 300) -> bool:
    """Poll `ready()` and kill -9 `proc` once it is true; False where the process ended first
    (a machine too fast for the test), failing the test where it ended in an error."""
    deadline = time.time() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                if proc.returncode != 0:
                    pytest.fail(f"the run ended early: {proc.stderr.read().decode()[-2000:]}")
                return False
            assert time.time() < deadline, f"no {what} within {timeout:g} s"
            time.sleep(0.01)
        running = proc.poll() is None
    finally:
        kill9(proc)
    return running


FEATURIZE_ARGS = ["featurize", "--manifest", REPO / "data" / "manifest.json", "--only", "urea-IV-100K", "urea-melt-350K", "urea-I-100K",
                  "--molecule", "urea", "--stop", "24", "--no-progress"]


def test_featurize_killed_then_rerun_gives_the_uninterrupted_dataset(tmp_path, capsys):
    """kill -9 of `molenv featurize` once its first data file is written; the same command
    again makes the dataset of an uninterrupted run, file for file, byte for byte (the
    manifest but for its command, time stamp and wall time)."""
    urea_sources()  # skips without the MD data
    code, _, err = molenv_exit(capsys, *FEATURIZE_ARGS, "--out", tmp_path / "whole")
    assert code == 0, err
    out = tmp_path / "ds"
    command = [str(a) for a in FEATURIZE_ARGS] + ["--out", str(out)]
    proc = subprocess.Popen([*PY, "-m", "molenv", *command], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not kill_when(proc, lambda: any(p.glob("*.npz") for p in tmp_path.glob(".ds.featurize-*")), "data file"):
        pytest.skip("featurize finished before it could be killed (machine too fast for this test)")
    assert not out.exists()  # nothing at --out: the partial dataset is in the temporary directory
    [left] = tmp_path.glob(".ds.featurize-*")
    code, text, err = molenv_exit(capsys, *command)  # the same command again
    assert code == 0, err
    assert f"{left} holds" in text + err and "interrupted" in text + err
    whole = tmp_path / "whole"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in whole.iterdir())
    for path in whole.glob("*.npz"):
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    volatile = ("command", "created", "wall_time_s")
    manifests = [{k: v for k, v in json.loads((d / "manifest.json").read_text()).items() if k not in volatile} for d in (whole, out)]
    assert manifests[0] == manifests[1]
    assert [s["n_frames"] for s in manifests[1]["sources"]] == [24, 24, 24]


# (what is in --out, overwrite, expected error or None)
DESTINATION_CASES = [
    ({"notes.txt": "mine"}, True, "is not empty and holds no molenv dataset"),
    ({"manifest.json": '{"sources": []}', "notes.txt": "mine"}, True, "holds files that are not part of its dataset .notes.txt"),
    ({"manifest.json": '{"sources": []}'}, False, "a dataset is already there"),
    ({"old.npz": "x"}, False, "holds .npz files but no manifest.json"),
    ({"old.npz": "x"}, True, None),  # an unfinished dataset of an earlier featurize is replaced
    ({}, False, None),  # an empty directory
]


@pytest.mark.parametrize("files, overwrite, error", DESTINATION_CASES)
def test_featurize_destination(tmp_path, files, overwrite, error):
    from molenv.featurize import featurize

    out = tmp_path / "ds"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    if error is None:
        featurize(urea_sources(), "urea", out, overwrite=overwrite, progress=False, log=lambda *a: None)
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "urea-IV-100K.npz", "urea-melt-350K.npz"]
    else:
        with pytest.raises(DatasetError, match=error):
            featurize(urea_sources(), "urea", out, overwrite=overwrite, progress=False, log=lambda *a: None)
        assert sorted(p.name for p in out.iterdir()) == sorted(files)


def test_changed_or_swapped_data_files_are_refused(tmp_path, capsys):
    ds = synthetic_dataset(tmp_path / "ds")
    ds.arrays("I")  # intact: reads
    (tmp_path / "ds" / "IV.npz").write_bytes((tmp_path / "ds" / "I.npz").read_bytes())  # one source's file replaced by another's
    with pytest.raises(DatasetError, match=r"IV.npz: the data file of source 'IV' differs from the one the dataset manifest records"):
        open_dataset(tmp_path / "ds").molecules("train")
    code, _, err = molenv_exit(capsys, "train", "sf", tmp_path / "ds", "--out", tmp_path / "run", "--max-epochs", "1", "--no-progress")
    assert code == 2 and "molenv train: error:" in err and "IV.npz: the data file of source 'IV' differs" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # a dataset from before the hashes: read without the check
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    for s in manifest["sources"]:
        del s["sha256"]
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    assert len(open_dataset(tmp_path / "ds").molecules("train")) > 0
    (tmp_path / "ds" / "I.npz").write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(DatasetError, match=r"I.npz: cannot read the data file of source 'I'"):
        open_dataset(tmp_path / "ds").arrays("I")


# ----------------------------------------------------------------------------- train sf


SF_OPTIONS = ["--batch-size", "16", "--max-epochs", "6", "--patience", "50", "--input-noise", "0.1", "--seed", "3", "--no-progress"]


def _state(path: Path) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    return {"epoch": state["epoch"], **{k: v.numpy() for k, v in state["state_dict"].items()}}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _assert_resumed_to_the_uninterrupted_run(whole: Path, resumed: Path) -> None:
    """The checkpoints of the resumed training equal those of the uninterrupted one, bit for
    bit, and its metrics are the last rows of the uninterrupted training's."""
    for name in ("best.ckpt", "last.ckpt"):
        assert _same(_state(whole / "checkpoints" / name), _state(resumed / "checkpoints" / name)), name
    metrics = (whole / "logs" / "metrics.csv").read_text().splitlines()
    continued = (resumed / "logs" / "metrics.csv").read_text().splitlines()
    assert continued[0] == metrics[0] and continued[1:] == metrics[-len(continued) + 1:] and len(continued) < len(metrics)


def test_train_sf_killed_resumes_to_the_uninterrupted_model(tmp_path, capsys, one_torch_thread):  # noqa: F811
    """kill -9 in the middle of `molenv train sf`; the same command is refused while it runs
    and after it died; --resume LAST --out NEW ends with the model, checkpoints and metrics
    of the uninterrupted fit, bit for bit."""
    ds = tmp_path / "ds"
    synthetic_dataset(ds, frames=20, molecules=200)
    whole = tmp_path / "whole"
    code, _, err = molenv_exit(capsys, "train", "sf", ds, "--out", whole, *SF_OPTIONS)
    assert code == 0, err
    first = tmp_path / "first"
    command = ["train", "sf", str(ds), "--out", str(first), *SF_OPTIONS]
    proc = subprocess.Popen([*PY, "-m", "molenv", *command], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (first / "checkpoints" / "last.ckpt").is_file():
            if proc.poll() is not None:
                pytest.fail(f"the fit ended early: {proc.stderr.read().decode()[-2000:]}")
            assert time.time() < deadline, "no epoch within 300 s"
            time.sleep(0.02)
        code, _, err = molenv_exit(capsys, *command)  # while it runs
        running = proc.poll() is None
    finally:
        kill9(proc)
    if not running:
        pytest.skip("the fit finished before it could be killed (machine too fast for this test)")
    assert code == 2 and f"training directory is in use by another molenv process (pid {proc.pid} on " in err and "train sf" in err, err
    stopped_at = _state(first / "checkpoints" / "last.ckpt")["epoch"]
    assert stopped_at < 5 and not (first / "train_config.json").exists()
    code, _, err = molenv_exit(capsys, *command)  # after the kill: refused, pointing to --resume
    assert code == 2 and "holds a training that did not finish" in err and f"--resume {first / 'checkpoints' / 'last.ckpt'}" in err, err
    code, _, err = molenv_exit(capsys, *command[:3], "--out", first, "--resume", first / "checkpoints" / "last.ckpt", *SF_OPTIONS)
    assert code == 2 and "lies in --out" in err
    code, _, err = molenv_exit(capsys, *command[:3], "--out", tmp_path / "x", "--resume", first / "checkpoints" / "last.ckpt", *SF_OPTIONS, "--lr", "0.1")
    assert code == 2 and "lr: 0.01 in the checkpoint, 0.1 now" in err
    resumed = tmp_path / "resumed"
    code, out, err = molenv_exit(capsys, *command[:3], "--out", resumed, "--resume", first / "checkpoints" / "last.ckpt", *SF_OPTIONS)
    assert code == 0, err
    _assert_resumed_to_the_uninterrupted_run(whole, resumed)
    from molenv.modelfile import read_model

    a, b = read_model(whole / "model.molenv").network, read_model(resumed / "model.molenv").network
    assert all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))
    config = json.loads((resumed / "train_config.json").read_text())
    assert config["epochs"] == json.loads((whole / "train_config.json").read_text())["epochs"] == 6
    assert config["provenance"]["resumed_fit"]["epoch"] == stopped_at
    # a finished training is refused too; --overwrite discards it (and only its files)
    (whole / "notes.txt").write_text("mine")
    code, _, err = molenv_exit(capsys, "train", "sf", ds, "--out", whole, *SF_OPTIONS)
    assert code == 2 and "holds a finished training" in err and "--overwrite" in err
    code, _, err = molenv_exit(capsys, "train", "sf", ds, "--out", whole, *SF_OPTIONS[:2], "--max-epochs", "1", "--no-progress", "--overwrite")
    assert code == 0, err
    assert json.loads((whole / "train_config.json").read_text())["epochs"] == 1 and (whole / "notes.txt").read_text() == "mine"
    assert (whole / "logs" / "metrics.csv").read_text().splitlines()[-1].startswith("0,")


# ----------------------------------------------------------------------------- train gnn


GNN_FORMS = ["parallel", "antiparallel"]
# the published network (1 convolution, dropout 0.5, stratified batches: a generator of
# their own, seeded per epoch) on toy graphs; dropout and --position-noise draw from torch's
# generator at every step (so would --batching shuffle, once per epoch)
GNN_OPTIONS = ["--accelerator", "cpu", "--devices", "1", "--threads", "1", "--lr", "1e-3", "--max-epochs", "6", "--patience", "50",
               "--position-noise", "0.05", "--seed", "3", "--no-export"]


def gnn_graph_files(folder: Path) -> tuple[Path, Path]:
    from molenv.gnn import synthetic
    from molenv.gnn.graph import frame_to_graph, save_graphs

    rng = np.random.default_rng(0)

    def graphs(n):  # 12 molecules of each form per frame
        return [frame_to_graph(synthetic.crystal(GNN_FORMS[k % 2], [(2, 2, 3), (2, 1, 3)][k % 2], rng), polymorph=k % 2, topology=0) for k in range(n)]

    folder.mkdir(parents=True, exist_ok=True)
    save_graphs(folder / "train.pt", graphs(4), GNN_FORMS)
    save_graphs(folder / "val.pt", graphs(2), GNN_FORMS)
    return folder / "train.pt", folder / "val.pt"


def test_train_gnn_killed_resumes_to_the_uninterrupted_model(tmp_path, capsys, one_torch_thread):  # noqa: F811
    """kill -9 in the middle of `molenv train gnn`; the same command is refused after it
    died, pointing to --resume LAST; --resume LAST --out NEW ends with the model,
    checkpoints and metrics of the uninterrupted fit, bit for bit."""
    train, val = gnn_graph_files(tmp_path / "graphs")
    options = GNN_OPTIONS
    whole = tmp_path / "whole"
    code, _, err = molenv_exit(capsys, "train", "gnn", "--train", train, "--val", val, "--out", whole, *options)
    assert code == 0, err
    first = tmp_path / "first"
    command = ["train", "gnn", "--train", str(train), "--val", str(val), "--out", str(first), *options]
    proc = subprocess.Popen([*PY, "-m", "molenv", *command], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not kill_when(proc, (first / "checkpoints" / "last.ckpt").is_file, "epoch"):
        pytest.skip("the fit finished before it could be killed (machine too fast for this test)")
    last = first / "checkpoints" / "last.ckpt"
    stopped_at = _state(last)["epoch"]
    assert stopped_at < 5 and not (first / "train_config.json").exists()
    code, _, err = molenv_exit(capsys, *command)  # after the kill: refused, pointing to --resume
    assert code == 2 and "holds a training that did not finish" in err and f"--resume {last}" in err, err
    if _state(first / "checkpoints" / "best.ckpt")["epoch"] > stopped_at:  # killed between writing best.ckpt and last.ckpt
        last = first / "checkpoints" / "best.ckpt"  # the same point of the fit: as good to continue from
    resumed = tmp_path / "resumed"
    code, _, err = molenv_exit(capsys, *command[:6], "--out", resumed, "--resume", last, *options)
    assert code == 0, err
    _assert_resumed_to_the_uninterrupted_run(whole, resumed)
    reports = [json.loads((d / "train_config.json").read_text()) for d in (whole, resumed)]
    assert reports[0]["epochs"] == reports[1]["epochs"] == 6 and reports[0]["best_epoch"] == reports[1]["best_epoch"]
    assert reports[0]["best_val_loss"] == reports[1]["best_val_loss"] and reports[1]["resumed_fit"]["checkpoint_epoch"] == _state(last)["epoch"]


# (files already in --out, part of the refusal): for both trainings; nothing is trained
TRAINING_DIRECTORY_CASES = [
    (["train_config.json", "checkpoints/best.ckpt", "logs/metrics.csv"], "holds a finished training (train_config.json)"),
    (["checkpoints/best.ckpt"], "holds a training that did not finish"),
    (["logs/metrics.csv"], "holds a training that did not finish"),
]


@pytest.mark.parametrize("model", ["sf", "gnn"])
@pytest.mark.parametrize("files, message", TRAINING_DIRECTORY_CASES)
def test_training_directory_in_use_is_refused(tmp_path, capsys, model, files, message):
    out = tmp_path / "run"
    for name in files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    code, _, err = molenv_exit(capsys, "train", model, tmp_path / "no-dataset", "--out", out)
    assert code == 2 and f"molenv train: error: {out} {message}" in err and "use --overwrite to discard it" in err, err
    if "checkpoints/best.ckpt" in files and model == "gnn":
        assert f"give --resume {out / 'checkpoints' / 'best.ckpt'} and a new --out" in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(files)  # untouched
    proc = start_holder(out, """
        import time
        from molenv.runlock import DirectoryLock
        with DirectoryLock(OUT, command="molenv train gnn DS --out run"):
            time.sleep(600)
    """)
    try:  # running: refused even with --overwrite
        code, _, err = molenv_exit(capsys, "train", model, tmp_path / "no-dataset", "--out", out, "--overwrite")
        assert code == 2 and f"training directory is in use by another molenv process (pid {proc.pid} on " in err, err
    finally:
        kill9(proc)
    code, _, err = molenv_exit(capsys, "train", model, tmp_path / "no-dataset", "--out", out, "--overwrite")
    assert code == 2 and "no-dataset" in err, err  # got past the lock and discarded the old training: then no dataset
    assert not any(out.iterdir())


def test_resume_checks_the_checkpoint(tmp_path, one_torch_thread):  # noqa: F811
    from molenv.sf.train import SFTrainConfig, train_sf

    ds = synthetic_dataset(tmp_path / "ds")
    config = SFTrainConfig(max_epochs=2, batch_size=64)
    train_sf(ds, config, tmp_path / "a")
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="hidden: \\[25, 25\\] in the checkpoint, \\[10\\] now"):
        train_sf(ds, SFTrainConfig(max_epochs=3, batch_size=64, hidden=[10]), tmp_path / "b", resume_from=last)
    other = synthetic_dataset(tmp_path / "other", seed=5)
    with pytest.raises(ValueError, match="trained on other molecules"):
        train_sf(other, SFTrainConfig(max_epochs=3, batch_size=64), tmp_path / "c", resume_from=last)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt: cannot read the checkpoint"):
        train_sf(ds, config, tmp_path / "d", resume_from=tmp_path / "junk.ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        train_sf(ds, config, tmp_path / "e", resume_from=tmp_path / "missing.ckpt")
    # the best checkpoint must be the fit's
    (tmp_path / "a" / "checkpoints" / "best.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="best checkpoint best.ckpt is not beside it"):
        train_sf(ds, SFTrainConfig(max_epochs=3, batch_size=64), tmp_path / "f", resume_from=last)


# ----------------------------------------------------------------------------- molenv plumed


def fake_plumed(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "plumed"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


PARENT = """
    import sys
    import molenv.plumed.kernel as pe
    pe.installed = lambda: pe.PlumedInstall("user", {exe!r}, "", "", {{}})
    from molenv.cli import main
    main(["plumed", "driver"])
"""


@pytest.mark.parametrize("signame", ["SIGSEGV", "SIGABRT", "SIGKILL"])
def test_plumed_killed_by_a_signal_is_reported_by_name(tmp_path, monkeypatch, capsys, signame):
    import molenv.plumed.kernel as pe

    exe = fake_plumed(tmp_path, f"kill -{signame[3:]} $$")
    monkeypatch.setattr(pe, "installed", lambda: pe.PlumedInstall("user", str(exe), "", "", {}))
    code, _, err = molenv_exit(capsys, "plumed", "driver")
    assert code == 128 + getattr(signal, signame) and f"molenv plumed: plumed was killed by {signame}" in err
    exe.write_text("#!/bin/sh\nexit 3\n")
    assert molenv_exit(capsys, "plumed", "driver")[0] == 3  # an exit status is passed on as it is
    monkeypatch.setattr(pe, "installed", lambda: pe.PlumedInstall("user", str(tmp_path / "missing"), "", "", {}))
    code, _, err = molenv_exit(capsys, "plumed", "driver")
    assert code == 2 and "molenv plumed: error:" in err and "missing" in err


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """The process has ended (no longer in /proc, or a zombie waiting for its new parent)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_plumed_child_ends_with_molenv(tmp_path, signame):
    """molenv plumed gets a signal: SIGTERM/SIGINT are passed on (plumed is reported killed
    by it, exit 128 + signal); after SIGKILL of molenv, plumed gets SIGTERM from the kernel."""
    pidfile = tmp_path / "pid"
    exe = fake_plumed(tmp_path, f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nexec sleep 120")
    proc = subprocess.Popen([*PY, "-c", textwrap.dedent(PARENT.format(exe=str(exe)))], env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not pidfile.is_file():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else "no child within 60 s"
        time.sleep(0.02)
    child = int(pidfile.read_text())
    sig = getattr(signal, signame)
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=20)
    finally:
        proc.kill()
    err = proc.stderr.read()
    proc.stderr.close()
    assert _gone(child), f"plumed ({child}) still runs after molenv got {signame}"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + sig and f"molenv plumed: plumed was killed by {signame}" in err, err


# ----------------------------------------------------------------------------- non-finite probabilities


def _broken_model(tmp_path: Path, how: str) -> Path:
    """models/urea_sf.molenv with finite parameters that make its network give NaN."""
    from molenv.modelfile import read_model, write_model

    model = read_model(REPO / "models" / "urea_sf.molenv")
    if how == "negative eta":
        k = next(i for i, f in enumerate(model.descriptors.functions) if f.kind == "S1")
        f = model.descriptors.functions[k]
        model.descriptors.functions[k] = type(f)(f.kind, f.vector, (f.params[0], -1e3))  # exp(+1000 r^2): inf
    else:
        model.network.weights[-1] = np.full_like(model.network.weights[-1], 1e308)  # logits overflow: inf - inf in the softmax
    path = tmp_path / f"{how.replace(' ', '_')}.molenv"
    write_model(model, path)
    return path


@pytest.mark.parametrize("how", ["negative eta", "huge weights"])
def test_non_finite_probabilities_are_an_error(tmp_path, capsys, how):
    if not (REPO / "data" / "urea" / "urea-IV-100K.xtc").is_file():
        pytest.skip("no urea MD data")
    model = _broken_model(tmp_path, how)
    with np.errstate(all="ignore"):
        code, _, err = molenv_exit(capsys, "classify", "--model", model, "--trajectory", REPO / "data/urea/urea-IV-100K.xtc",
                                   "--topology", REPO / "data/urea/urea-IV-100K.pdb.gz", "--stop", "2", "--no-progress", "--out", tmp_path / "out")
    assert code == 2 and f"{model}: the model gives non-finite class probabilities (NaN or inf) for " in err and "in frame 0" in err, err
    assert not (tmp_path / "out" / "populations.dat").exists()


def test_results_with_non_finite_probabilities_are_refused():
    from molenv.analysis import AnalysisError, ClassificationResult

    p = np.full((3, 4, 2), 0.5)
    p[1, 2] = np.nan
    with pytest.raises(AnalysisError, match=r"m.molenv: non-finite probabilities .NaN or inf. for 1 molecule.s. in 1 frame.s., first frame 1 .1 of 4"):
        ClassificationResult(["a", "b"], np.arange(3.0), p, source="m.molenv")


# ----------------------------------------------------------------------------- degenerate boxes


# (box as a file gives it, None if it is "no box", else part of the error)
BOX_CASES = [
    (None, None),
    ([0, 0, 0, 0, 0, 0], None),  # XTC/DCD without a box
    ([0, 0, 0, 90, 90, 90], None),
    ([30, 30, 30, 90, 90, 90], "ok"),
    ([30, 30, 0, 90, 90, 90], "degenerate: a length <= 0"),
    ([30, -30, 30, 90, 90, 90], "degenerate: a length <= 0"),
    ([30, 30, 0.05, 90, 90, 90], "near. zero volume"),
    ([30, 30, 30, 90, 90, 179.99], "near. zero volume"),
    ([30, 30, 30, 120, 120, 120], "not a valid cell"),  # angles that make no cell
    ([30, 30, np.nan, 90, 90, 90], "a box is"),
]


@pytest.mark.parametrize("dims, expected", BOX_CASES)
def test_box_from_file(dims, expected):
    from molenv.frames import FrameError, box_from_file

    if expected is None:
        assert box_from_file(dims) is None
    elif expected == "ok":
        assert np.array_equal(box_from_file(dims), dims)
    else:
        with pytest.raises(FrameError, match=expected):
            box_from_file(dims)


def test_degenerate_box_in_a_file_is_an_error(tmp_path, capsys):
    import gzip
    import re

    from molenv.trajectory import Trajectory, TrajectoryError

    source = REPO / "data" / "urea" / "urea-IV-100K.pdb.gz"
    if not source.is_file():
        pytest.skip("no urea MD data")
    text = gzip.open(source, "rt").read()
    flat = tmp_path / "flat.pdb"
    flat.write_text(re.sub(r"^CRYST1.*$", "CRYST1   21.677   21.420    0.000  90.00  90.00  90.00 P 1           1", text, count=1, flags=re.M))
    with pytest.raises(TrajectoryError, match=r"flat.pdb: frame 0: box \[21.677, 21.42, 0, 90, 90, 90\] is not a valid cell .degenerate"):
        Trajectory(flat, "urea")[0]
    assert Trajectory(flat, "urea", periodic=False)[0].box is None  # read as a cluster on purpose
    code, _, err = molenv_exit(capsys, "classify", "--model", REPO / "models/urea_sf.molenv", "--trajectory", flat, "--no-progress", "--out", tmp_path / "out")
    assert code == 2 and "flat.pdb: frame 0: box" in err and "degenerate" in err, err


def test_truncated_compressed_topology_is_a_one_line_error(tmp_path, capsys):
    """A .pdb.gz cut short (e.g. read while it is still being written) is a clean error, not
    an EOFError traceback."""
    source = REPO / "data" / "urea" / "urea-IV-100K.pdb.gz"
    if not source.is_file():
        pytest.skip("no urea MD data")
    cut = tmp_path / "cut.pdb.gz"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    from molenv.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["labelling", "--spec", "urea", "-t", str(REPO / "data" / "urea" / "urea-IV-100K.xtc"), "--topology", str(cut)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "cut.pdb.gz" in err and "cannot read it" in err and "Traceback" not in err
