"""Running the steps behind the accuracy table: the `molenv` commands a user would type.

Per molecule and protocol: ``molenv featurize`` of the MD manifest, then for each model
``molenv train`` and ``molenv evaluate`` on the test and on the validation split (with the
SF-MLP also the original authors' published SF-MLP, ``molenv import-reference``, on the
same test molecules), each as a
niced subprocess with its log; `Runner` keeps every step's command, wall time and end date
in ``steps.json`` so that the report can name them (and ``--reuse`` skip them).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from molenv.protocols import crystal_test_temperature, extra_training, has_test_clusters, manifest_entries, method_only
from molenv.reference import REFERENCE_CLASSES, REFERENCE_SF_INPUT, REFERENCE_WEIGHTS
from molenv.results.layout import PAPER_TRAJECTORIES, protocol_work, read_json

SF_DEFAULTS = {"lr": 1e-2, "batch_size": 256, "max_epochs": 500, "patience": 30}
GNN_DEFAULTS = {
    "frame_step": 2,
    "val_frame_step": 1,
    "batch_size": 4,
    "batching": "stratified",
    "lr": 1e-3,
    "lr_decay": 0.5,
    "lr_patience": 2,
    "dropout": 0.1,
    "max_epochs": 100,
    "patience": 10,
    "max_time": 40.0,
    "convs": 1,
}
# per molecule: nicotinamide has 16 training frames per crystal form (urea 40) and 10
# classes, so it trains on every frame and gets more time; urea's clusters need two graph
# convolutions (one underfits the surface molecules: docs/results_notes.md), which cost
# ~1.7x per epoch on a CPU thread (docs/benchmarks.md), and more epochs
GNN_MOLECULE_DEFAULTS = {"urea": {"convs": 2, "max_time": 100.0}, "nicotinamide": {"frame_step": 1, "max_time": 60.0}}
# --quick: a smoke test of the whole pipeline in a few minutes per molecule
QUICK = {"featurize_step": 10, "sf_max_epochs": 5, "gnn_max_epochs": 1, "gnn_frame_step": 2, "tsne_samples": 100}

# the steps whose records a new dataset makes stale
EVALUATION_STEPS = ("evaluate_sf", "evaluate_sf_val", "evaluate_gnn", "evaluate_gnn_val", "import_reference", "evaluate_reference")
TRAINING_STEPS = ("train_sf", "train_gnn")


def gnn_option(args, molecule: str, name: str):
    """An option given on the command line, else the molecule's default, else the general one."""
    value = getattr(args, f"gnn_{name}")
    if value is not None:
        return value
    return GNN_MOLECULE_DEFAULTS.get(molecule, {}).get(name, GNN_DEFAULTS[name])


def molenv_command(*args) -> list[str]:
    """The command line as a user types it (``molenv ...``) and as it is run here."""
    return ["molenv", *[str(a) for a in args]]


def training_data(manifest: dict) -> dict:
    """What a model learns from in a dataset manifest: classes, descriptors, topology rule
    and, per source with training or validation frames, its trajectory (SHA-256), reader
    options and frames per split."""
    sources = {
        s["name"]: (s["trajectory_sha256"], json.dumps(s.get("reader"), sort_keys=True), s["frames"].get("train", 0), s["frames"].get("val", 0))
        for s in manifest["sources"]
        if s["frames"].get("train") or s["frames"].get("val")
    }
    return {"classes": manifest["classes"], "descriptors": manifest["descriptors"], "topology": manifest["topology"], "split": manifest["split"], "sources": sources}


class Runner:
    """Runs steps as subprocesses (``python -m molenv`` in the repository `repo`), niced,
    with logs, and keeps a record (command, wall time, date) per step in
    ``<work>/<molecule>/steps.json``."""

    def __init__(self, work: Path, molecule: str, nice: int, repo: Path, dry_run: bool = False):
        self.dir = work / molecule
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_path = self.dir / "steps.json"
        self.records = json.loads(self.record_path.read_text()) if self.record_path.is_file() else {}
        self.nice = nice
        self.repo = Path(repo)
        self.dry_run = dry_run

    def run(self, step: str, command: list) -> None:
        command = [str(c) for c in command]
        log = self.dir / f"{step}.log"
        print(f"[{time.strftime('%H:%M:%S')}] {step}: {shlex.join(command)}  (log {log})", flush=True)
        if self.dry_run:
            return
        # one thread per step: the wall times in the report are those of one CPU thread
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.repo / "py"), env.get("PYTHONPATH")]))
        real = [sys.executable, "-m", "molenv", *command[1:]]
        if self.nice:
            real = ["nice", "-n", str(self.nice), *real]
        start = time.perf_counter()
        with open(log, "w") as fh:
            result = subprocess.run(real, cwd=self.repo, stdout=fh, stderr=subprocess.STDOUT, env=env)
        wall = time.perf_counter() - start
        if result.returncode:
            tail = "\n".join(log.read_text().splitlines()[-25:])
            raise SystemExit(f"{step} failed (exit {result.returncode}); last lines of {log}:\n{tail}")
        self.records[step] = {"command": shlex.join(command), "wall_s": round(wall, 1), "finished": dt.datetime.now().isoformat(timespec="seconds")}
        self.record_path.write_text(json.dumps(self.records, indent=1) + "\n")
        print(f"    done in {wall:.0f} s", flush=True)


def run_molecule(molecule: str, models: list[str], args, protocol: str, repo: Path) -> None:
    """The steps of one molecule and protocol that `args` (the options of scripts/results.py)
    ask for: featurize, then train and evaluate each model in `models`."""
    work = protocol_work(args.work, protocol)
    entries = manifest_entries(repo / args.manifest)
    if protocol not in PAPER_TRAJECTORIES and not extra_training(entries, molecule):
        print(f"{molecule}: no training crystals beyond the lowest temperature in {args.manifest}; "
              f"the {protocol} protocol is the paper's, skipped", flush=True)
        return
    runner = Runner(work, molecule, args.nice, repo, args.dry_run)
    dataset = runner.dir / "dataset"
    featurize(runner, molecule, dataset, entries, args, protocol)
    tsne = QUICK["tsne_samples"] if args.quick else args.tsne_samples
    if "sf" in models:
        train_sf(runner, molecule, dataset, args, protocol)
        evaluate(runner, "sf", dataset, tsne, args.reuse)
        evaluate_reference(runner, molecule, dataset, args.reference, args.reuse)
    if "gnn" in models:
        train_gnn(runner, molecule, dataset, args)
        evaluate(runner, "gnn", dataset, tsne, args.reuse)


def featurize(runner: Runner, molecule: str, dataset: Path, entries: list[dict], args, protocol: str, spec: str | None = None) -> None:
    """`molenv featurize` (with the descriptors of `spec`, default the shipped spec of
    `molecule`) unless --reuse finds a dataset; a new dataset makes the runs on the old one
    stale: with --update-dataset and the same training and validation frames only their
    evaluations, else the runs."""
    old = read_json(dataset / "manifest.json")
    if args.reuse and old is not None and not args.update_dataset:
        return
    cmd = molenv_command("featurize", "--manifest", args.manifest, "--molecule", spec or molecule, "--out", dataset, "--no-progress", "--overwrite")
    only = args.only or (method_only(entries, molecule) if protocol in PAPER_TRAJECTORIES else None)
    if only:
        cmd += ["--only", *only]
    if protocol == "thermal-augmentation":
        cmd += ["--augment-temperature", f"{crystal_test_temperature(entries, molecule):g}"]
        if has_test_clusters(entries, molecule):
            cmd += ["--augment-clusters"]
    if args.quick:
        cmd += ["--step", QUICK["featurize_step"]]
    runner.run("featurize", cmd)
    new = read_json(dataset / "manifest.json")
    keep = args.update_dataset and old is not None and new is not None and training_data(old) == training_data(new)
    if args.update_dataset:
        print("    training and validation frames " + ("unchanged: runs kept, evaluated again" if keep else "changed: runs discarded"), flush=True)
    for model in (runner.dir / "sf", runner.dir / "gnn"):
        for stale in ([model / "eval-test", model / "eval-val"] if keep else [model]):
            if stale.exists() and not args.dry_run:
                shutil.rmtree(stale)
    if (runner.dir / "reference").exists() and not args.dry_run:
        shutil.rmtree(runner.dir / "reference")
    for step in EVALUATION_STEPS + (() if keep else TRAINING_STEPS):
        runner.records.pop(step, None)


def _fresh(runner: Runner, run_dir: Path, reuse: bool) -> bool:
    """Whether to train (again) into run_dir: not where --reuse finds its best checkpoint;
    an older run there is removed first."""
    if reuse and (run_dir / "checkpoints" / "best.ckpt").is_file():
        return False
    if run_dir.exists() and not runner.dry_run:
        shutil.rmtree(run_dir)
    return True


def train_sf(runner: Runner, molecule: str, dataset: Path, args, protocol: str, name: str | None = None) -> None:
    sf = runner.dir / "sf"
    if not _fresh(runner, sf, args.reuse):
        return
    cmd = molenv_command(
        "train", "sf", dataset, "--out", sf, "--name", (name or f"{molecule}-sf") + ("" if protocol == "method" else f"-{protocol}"), "--threads", 1, "--no-progress",
        "--lr", args.sf_lr, "--batch-size", args.sf_batch_size, "--patience", args.sf_patience,
        "--max-epochs", QUICK["sf_max_epochs"] if args.quick else args.sf_max_epochs,
    )
    runner.run("train_sf", cmd)


def train_gnn(runner: Runner, molecule: str, dataset: Path, args) -> None:
    gnn = runner.dir / "gnn"
    if not _fresh(runner, gnn, args.reuse):
        return
    cmd = molenv_command(
        "train", "gnn", dataset, "--out", gnn,
        "--frame-step", QUICK["gnn_frame_step"] if args.quick else gnn_option(args, molecule, "frame_step"),
        "--val-frame-step", args.gnn_val_frame_step,
        "--batch-size", args.gnn_batch_size, "--batching", args.gnn_batching, "--lr", args.gnn_lr,
        "--lr-decay", args.gnn_lr_decay, "--lr-patience", args.gnn_lr_patience, "--dropout", args.gnn_dropout,
        "--max-epochs", QUICK["gnn_max_epochs"] if args.quick else args.gnn_max_epochs,
        "--patience", args.gnn_patience, "--threads", args.gnn_threads, "--accelerator", args.gnn_accelerator, "--devices", 1,
    )
    convs = gnn_option(args, molecule, "convs")
    if convs != 1:
        cmd += ["--convs", convs]
    max_time = gnn_option(args, molecule, "max_time")
    if max_time and not args.quick:
        cmd += ["--max-time", max_time]
    if args.quick:
        cmd += ["--no-export"]
    runner.run("train_gnn", cmd)


def evaluate(runner: Runner, model: str, dataset: Path, tsne_samples: int, reuse: bool) -> None:
    """`molenv evaluate` of a model on the test split (with plots) and on the validation
    split (metrics only), unless --reuse finds the metrics of a recorded step."""
    run_dir = runner.dir / model
    for step, split, options in ((f"evaluate_{model}", "test", ["--tsne-samples", tsne_samples]), (f"evaluate_{model}_val", "val", ["--no-plots"])):
        out = run_dir / f"eval-{split}"
        if not (reuse and (out / "metrics.json").is_file() and step in runner.records):
            runner.run(step, molenv_command("evaluate", run_dir, dataset, "--out", out, "--split", split, *options))


def evaluate_reference(runner: Runner, molecule: str, dataset: Path, reference: str | os.PathLike | None, reuse: bool) -> None:
    """The original authors' published SF-MLP of `molecule` (their weight and SF input files
    in `reference`/<molecule>, imported with `molenv import-reference`) evaluated on the test
    molecules of our SF-MLP: the same frames, their training instead of ours. Skipped, with a
    message, where the files are not there."""
    folder = Path(reference) / molecule if reference else None  # as given: the commands run in the repository
    files = [folder / REFERENCE_WEIGHTS, folder / REFERENCE_SF_INPUT] if folder else []
    if molecule not in REFERENCE_CLASSES or not files or not all((runner.repo / f).is_file() for f in files):
        print(f"{molecule}: the authors' model is not evaluated (no {REFERENCE_WEIGHTS} and {REFERENCE_SF_INPUT} in {folder}; --reference)", flush=True)
        return
    out = runner.dir / "reference"
    model, metrics = out / "model.molenv", out / "eval-test" / "metrics.json"
    if reuse and metrics.is_file() and "evaluate_reference" in runner.records:
        return
    runner.run("import_reference", molenv_command("import-reference", "--weights", files[0], "--sf-input", files[1], "--spec", molecule,
                                                  "--classes", ",".join(REFERENCE_CLASSES[molecule]), "--out", model))
    runner.run("evaluate_reference", molenv_command("evaluate", model, dataset, "--out", out / "eval-test", "--split", "test", "--no-plots"))
