#!/usr/bin/env python3
"""Accuracy table: train both classifiers on the MD data and write docs/results.md + .json.

For each molecule (urea, nicotinamide) this runs, as subprocesses, the same `molenv`
commands a user would type:

1. ``molenv featurize --manifest data/manifest.json --molecule M`` (every train/test
   trajectory of M in the manifest: crystals, melt, clusters; the method's split);
2. ``molenv train sf`` and ``molenv evaluate`` on the test split;
3. ``molenv train gnn`` and ``molenv evaluate`` on the test split (polymorph and topology
   heads), plus an evaluation on the held-out validation frames, which hold the cluster
   frames (surface molecules) when the test split has none;

then copies the confusion-matrix and t-SNE PNGs (downscaled to 100 dpi, 256-colour
palette) into ``docs/results/`` and writes ``docs/results.md`` and ``docs/results.json``
from the ``metrics.json`` files, the dataset manifests and the training records: nothing
in them is typed by hand except the published values (METHOD.md §6, `PUBLISHED` below).

Runs (datasets, checkpoints, logs) go to ``--work`` (default /work/runs, outside
the repository). Every step's command, wall time and end date are kept in
``WORK/<molecule>/steps.json``, so that a later call with ``--reuse`` (skip steps whose
outputs exist) or ``--report-only`` still reports them.

    .venv/bin/python scripts/results.py                           # both molecules, both models
    .venv/bin/python scripts/results.py --molecule urea --model gnn --reuse
    .venv/bin/python scripts/results.py --report-only             # rewrite the docs from the runs
    .venv/bin/python scripts/results.py --quick --work /tmp/q     # smoke test (a few minutes per molecule)

GNN training on a 2-core CPU is the bottleneck (~0.5 s per urea frame of ~1500 atoms,
forward + backward, one thread). The defaults (`GNN_DEFAULTS`, `GNN_MOLECULE_DEFAULTS`)
make it fit in 100 min (urea, two graph convolutions) and 60 min (nicotinamide, one, as
published): every 2nd training frame for urea
(neighbouring 1 ps frames are strongly correlated; nicotinamide, with 16 training frames
per form, uses all), 4 frames per step in stratified batches (every batch mixes classes;
shuffled batches of a few single-class frames did not learn), Adam lr 1e-3 (10x the
published 1e-4, which needs far more steps than a CPU affords) halved when the validation
loss stalls for 2 epochs, dropout 0.1 (paper 0.25, published code 0.5), early stopping
(patience 10) and a wall-clock limit. ``--quick`` uses every 10th frame, 5 SF epochs and
one GNN epoch, and writes its documents into <work>/docs instead of docs/ (work default
/work/runs/quick).
docs/results_notes.md, if present, is appended to results.md as the discussion.

Protocols (``--protocol``): ``method`` (default) is the paper's: training crystals at one
temperature (the lowest training-crystal temperature in the MD manifest, 100 K) and the
melt; ``multi-temperature`` (not the paper's) trains on every training trajectory of the
manifest, i.e. also on crystals (and clusters) at further training temperatures
(nicotinamide crystals at 250 and 300 K, urea crystals and clusters at 150 K), and tests on
the same split. Its runs go to ``WORK/multi-temperature/<molecule>`` and are
reported in their own section and as ``<model>_multi_temperature`` in results.json; the
paper-protocol dataset leaves those trajectories out (``featurize --only``). ``--report-only``
reports the runs of both protocols that exist.

    .venv/bin/python scripts/results.py --protocol multi-temperature --molecule nicotinamide
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))
from molenv.protocols import extra_training, manifest_entries, method_only  # noqa: E402
MOLECULES = ("urea", "nicotinamide")
MODELS = ("sf", "gnn")
GOAL = 0.98

# METHOD.md §6 (Kuroshima et al., JCTC 2024): micro F1 on their test data. None: not
# published as a number; the note says what was published instead.
PUBLISHED = {
    "urea": {
        "sf": {"f1_polymorph": 0.98, "note": ">= 0.98 (bulk only)"},
        "gnn": {"f1_polymorph": 0.969, "f1_topology": 0.960, "note": "crystals 200 K + melt 350 K"},
    },
    "nicotinamide": {
        "sf": {"f1_polymorph": None, "note": "\"excellent\" (confusion matrix in the SI; bulk only)"},
        "gnn": {"f1_polymorph": 0.875, "f1_topology": 0.922, "note": "350 K"},
    },
}

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


def gnn_option(args, molecule: str, name: str):
    """An option given on the command line, else the molecule's default, else the general one."""
    value = getattr(args, f"gnn_{name}")
    if value is not None:
        return value
    return GNN_MOLECULE_DEFAULTS.get(molecule, {}).get(name, GNN_DEFAULTS[name])
QUICK = {"featurize_step": 10, "sf_max_epochs": 5, "gnn_max_epochs": 1, "gnn_frame_step": 2, "tsne_samples": 100}


# ----------------------------------------------------------------------------- protocols

# method: the paper's (METHOD.md §4): crystals at the lowest training temperature + the melt.
# multi-temperature: not the paper's: every training trajectory of the MD manifest, crystals
# and clusters at further training temperatures included; the same test split
# (molenv.protocols selects the trajectories).
PROTOCOLS = ("method", "multi-temperature")


def protocol_suffix(protocol: str) -> str:
    """Key suffix in results.json and figure names: '' for the paper protocol."""
    return "" if protocol == "method" else "_" + protocol.replace("-", "_")


def protocol_work(work: Path, protocol: str) -> Path:
    """Where a protocol's molecule folders are: WORK (paper protocol), WORK/<protocol>."""
    return Path(work) if protocol == "method" else Path(work) / protocol


def train_crystal_temperatures(manifest: dict) -> list[float]:
    """Temperatures of the crystals with training frames in a dataset manifest."""
    return sorted({s["temperature_K"] for s in manifest["sources"] if s["system"] == "crystal" and s["frames"].get("train")})


# ----------------------------------------------------------------------------- running


def molenv_command(*args) -> list[str]:
    """The command line as a user types it (``molenv ...``) and as it is run here."""
    return ["molenv", *[str(a) for a in args]]


class Runner:
    """Runs steps as subprocesses (``python -m molenv``), niced, with logs, and keeps a
    record (command, wall time, date) per step in ``<work>/<molecule>/steps.json``."""

    def __init__(self, work: Path, molecule: str, nice: int, dry_run: bool = False):
        self.dir = work / molecule
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record_path = self.dir / "steps.json"
        self.records = json.loads(self.record_path.read_text()) if self.record_path.is_file() else {}
        self.nice = nice
        self.dry_run = dry_run

    def run(self, step: str, command: list) -> None:
        command = [str(c) for c in command]
        log = self.dir / f"{step}.log"
        print(f"[{time.strftime('%H:%M:%S')}] {step}: {shlex.join(command)}  (log {log})", flush=True)
        if self.dry_run:
            return
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "py"), env.get("PYTHONPATH")]))
        real = [sys.executable, "-m", "molenv", *command[1:]]
        if self.nice:
            real = ["nice", "-n", str(self.nice), *real]
        start = time.perf_counter()
        with open(log, "w") as fh:
            result = subprocess.run(real, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
        wall = time.perf_counter() - start
        if result.returncode:
            tail = "\n".join(log.read_text().splitlines()[-25:])
            raise SystemExit(f"{step} failed (exit {result.returncode}); last lines of {log}:\n{tail}")
        self.records[step] = {"command": shlex.join(command), "wall_s": round(wall, 1), "finished": dt.datetime.now().isoformat(timespec="seconds")}
        self.record_path.write_text(json.dumps(self.records, indent=1) + "\n")
        print(f"    done in {wall:.0f} s", flush=True)


def run_molecule(molecule: str, models: list[str], args, protocol: str = "method") -> None:
    work = protocol_work(Path(args.work), protocol)
    entries = manifest_entries(REPO / args.manifest)
    if protocol != "method" and not extra_training(entries, molecule):
        print(f"{molecule}: no training crystals beyond the lowest temperature in {args.manifest}; "
              f"the {protocol} protocol is the paper's, skipped", flush=True)
        return
    runner = Runner(work, molecule, args.nice, args.dry_run)
    d = runner.dir
    dataset, sf, gnn = d / "dataset", d / "sf", d / "gnn"
    tsne = QUICK["tsne_samples"] if args.quick else args.tsne_samples

    old = _json(dataset / "manifest.json")
    if args.update_dataset or not (args.reuse and old is not None):
        cmd = molenv_command("featurize", "--manifest", args.manifest, "--molecule", molecule, "--out", dataset, "--no-progress", "--overwrite")
        only = args.only or (method_only(entries, molecule) if protocol == "method" else None)
        if only:
            cmd += ["--only", *only]
        if args.quick:
            cmd += ["--step", QUICK["featurize_step"]]
        runner.run("featurize", cmd)
        new = _json(dataset / "manifest.json")
        keep = args.update_dataset and old is not None and new is not None and training_data(old) == training_data(new)
        if args.update_dataset:
            print("    training and validation frames " + ("unchanged: runs kept, evaluated again" if keep else "changed: runs discarded"), flush=True)
        for model in (sf, gnn):  # runs of another dataset are stale, or at least their evaluations
            for stale in ([model / "eval-test", model / "eval-val"] if keep else [model]):
                if stale.exists() and not args.dry_run:
                    shutil.rmtree(stale)
        for step in ("evaluate_sf", "evaluate_sf_val", "evaluate_gnn", "evaluate_gnn_val") + (() if keep else ("train_sf", "train_gnn")):
            runner.records.pop(step, None)

    if "sf" in models:
        if not (args.reuse and (sf / "checkpoints" / "best.ckpt").is_file()):
            if sf.exists() and not args.dry_run:
                shutil.rmtree(sf)
            cmd = molenv_command(
                "train", "sf", dataset, "--out", sf, "--name", f"{molecule}-sf" + ("" if protocol == "method" else f"-{protocol}"), "--threads", 1, "--no-progress",
                "--lr", args.sf_lr, "--batch-size", args.sf_batch_size, "--patience", args.sf_patience,
                "--max-epochs", QUICK["sf_max_epochs"] if args.quick else args.sf_max_epochs,
            )
            runner.run("train_sf", cmd)
        if not (args.reuse and (sf / "eval-test" / "metrics.json").is_file() and "evaluate_sf" in runner.records):
            runner.run("evaluate_sf", molenv_command("evaluate", sf, dataset, "--out", sf / "eval-test", "--split", "test", "--tsne-samples", tsne))
        if not (args.reuse and (sf / "eval-val" / "metrics.json").is_file() and "evaluate_sf_val" in runner.records):
            runner.run("evaluate_sf_val", molenv_command("evaluate", sf, dataset, "--out", sf / "eval-val", "--split", "val", "--no-plots"))

    if "gnn" in models:
        if not (args.reuse and (gnn / "checkpoints" / "best.ckpt").is_file()):
            if gnn.exists() and not args.dry_run:
                shutil.rmtree(gnn)
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
        if not (args.reuse and (gnn / "eval-test" / "metrics.json").is_file() and "evaluate_gnn" in runner.records):
            runner.run("evaluate_gnn", molenv_command("evaluate", gnn, dataset, "--out", gnn / "eval-test", "--split", "test", "--tsne-samples", tsne))
        if not (args.reuse and (gnn / "eval-val" / "metrics.json").is_file() and "evaluate_gnn_val" in runner.records):
            runner.run("evaluate_gnn_val", molenv_command("evaluate", gnn, dataset, "--out", gnn / "eval-val", "--split", "val", "--no-plots"))


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


# ----------------------------------------------------------------------------- collecting


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(work: Path, molecule: str) -> dict | None:
    """Everything the report needs about one molecule, from the files of its runs."""
    d = work / molecule
    manifest = _json(d / "dataset" / "manifest.json")
    if manifest is None:
        return None
    steps = _json(d / "steps.json") or {}
    if "featurize" not in steps and manifest.get("command"):  # a dataset made outside this script
        steps["featurize"] = {"command": manifest["command"], "wall_s": manifest.get("wall_time_s")}
    out = {"dataset": manifest, "steps": steps, "models": {}}
    for model in MODELS:
        metrics = _json(d / model / "eval-test" / "metrics.json")
        if metrics is None:
            continue
        config = _json(d / model / "train_config.json") or {}
        entry = {"metrics": metrics, "config": config, "dir": d / model}
        trained_on = config.get("dataset_manifest_sha256") or config.get("provenance", {}).get("dataset_manifest_sha256")
        entry["earlier_dataset"] = bool(trained_on) and trained_on != _sha256(d / "dataset" / "manifest.json")
        entry["val_metrics"] = _json(d / model / "eval-val" / "metrics.json")
        out["models"][model] = entry
    return out


def train_record(model: str, entry: dict, steps: dict) -> dict:
    """Epochs, best epoch, stopping reason, wall time and command of a training run."""
    c = entry["config"]
    step = steps.get(f"train_{model}", {})
    if model == "sf":
        epochs, best = c.get("epochs"), None
        metrics_csv = entry["dir"] / "logs" / "metrics.csv"
        if metrics_csv.is_file() and c.get("best_val_loss") is not None:
            best = _best_epoch(metrics_csv, c["best_val_loss"])
        options = c.get("config", {})
        stopped = None
        if epochs is not None and options.get("max_epochs") is not None:
            stopped = f"max_epochs ({options['max_epochs']})" if epochs >= options["max_epochs"] else f"early stopping (patience {options.get('patience')})"
        return {"epochs": epochs, "best_epoch": best, "best_val_loss": c.get("best_val_loss"), "stopped_by": stopped,
                "train_molecules": c.get("provenance", {}).get("train_molecules"), "wall_s": step.get("wall_s"),
                "command": step.get("command"), "options": options}
    keys = ("form_names", "num_convs", "dropout", "lr", "lr_decay", "lr_patience", "batch_size", "batching", "max_epochs", "patience", "min_delta", "max_time_min", "seed", "frame_step", "val_frame_step", "deterministic", "position_noise")
    record = {"epochs": c.get("epochs"), "best_epoch": c.get("best_epoch"), "best_val_loss": c.get("best_val_loss"), "stopped_by": c.get("stopped_by"),
              "train_frames": c.get("n_train_graphs"), "val_frames": c.get("n_val_graphs"), "train_molecules": c.get("n_train_molecules"),
              "wall_s": step.get("wall_s", c.get("wall_time_s")), "fit_s": c.get("wall_time_s"),
              "command": step.get("command", c.get("command")), "hardware": c.get("hardware"), "options": {k: c.get(k) for k in keys if k in c}}
    # a fit in two parts: `molenv train gnn --resume` (a first fit, continued from its best
    # checkpoint) or `--init-from` (a new fit from the first one's weights: fine-tuning); the
    # script's step record (if any) is the first fit's
    for key, kind in (("resumed_fit", "resumed"), ("initial_weights", "fine-tuned")):
        first = c.get(key)
        if first:
            record.update(first_fit=first, two_parts=kind, wall_s=None, continued_s=c.get("wall_time_s"),
                          fit_s=(c.get("wall_time_s") or 0) + (first.get("wall_time_s") or 0),
                          command="\n".join(x for x in (first.get("command"), c.get("command")) if x))
    return record


def convolutions(n) -> str:
    """The GNN's graph convolutions, against the published model's one (METHOD.md §4)."""
    return "1 convolution (published architecture)" if n == 1 else f"{n} convolutions (the published model has 1)"


def _best_epoch(metrics_csv: Path, best_loss: float) -> int | None:
    import csv

    with open(metrics_csv) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val_loss")]
    if not rows:
        return None
    return int(min(rows, key=lambda r: abs(float(r["val_loss"]) - best_loss))["epoch"])


def by_system(head: dict, manifest: dict, periodic: bool) -> float | None:
    """Micro F1 (= accuracy) of a head over the periodic (crystals, melt) or the
    non-periodic (cluster) trajectories, from its per-trajectory accuracies."""
    kinds = {s["name"]: bool(s["periodic"]) for s in manifest["sources"]}
    parts = [(v["n"], v["accuracy"]) for k, v in head.get("accuracy_by_source", {}).items() if kinds.get(k) == periodic]
    n = sum(p[0] for p in parts)
    return sum(p[0] * p[1] for p in parts) / n if n else None


def results_json(collected: dict, protocol: str = "method") -> dict:
    """{molecule: {model + protocol_suffix(protocol): {f1_polymorph, ...}}}."""
    out = {}
    for molecule, c in collected.items():
        out[molecule] = {}
        for model, entry in c["models"].items():
            heads = entry["metrics"]["heads"]
            r = {"f1_polymorph": heads["polymorph"].get("micro_f1")}
            if model == "gnn":
                r["f1_topology"] = heads["topology"].get("micro_f1")
                r["f1_polymorph_periodic"] = by_system(heads["polymorph"], c["dataset"], True)  # crystals + melt: the paper's test systems
                r["f1_polymorph_clusters"] = by_system(heads["polymorph"], c["dataset"], False)
                r["f1_topology_clusters"] = by_system(heads["topology"], c["dataset"], False)
            r["macro_f1_polymorph"] = heads["polymorph"].get("macro_f1")
            r["n_test_molecules"] = heads["polymorph"].get("n")
            r["recall_polymorph"] = {k: v["recall"] for k, v in heads["polymorph"].get("per_class", {}).items()}
            if model == "sf" and entry.get("val_metrics"):
                r["val"] = {"f1_polymorph": entry["val_metrics"]["heads"]["polymorph"].get("micro_f1")}
            if model == "gnn" and entry.get("val_metrics"):
                vh = entry["val_metrics"]["heads"]
                r["val"] = {"f1_polymorph": vh["polymorph"].get("micro_f1"), "f1_topology": vh["topology"].get("micro_f1"),
                            "f1_polymorph_periodic": by_system(vh["polymorph"], c["dataset"], True),
                            "f1_polymorph_clusters": by_system(vh["polymorph"], c["dataset"], False),
                            "recall_surface": vh["topology"].get("per_class", {}).get("surface", {}).get("recall")}
            r["published"] = {k: v for k, v in PUBLISHED[molecule][model].items()}
            r["meets_goal"] = all(r[k] is not None and r[k] >= GOAL for k in ("f1_polymorph", "f1_topology") if k in r)
            t = train_record(model, entry, c["steps"])
            r["training"] = {k: t[k] for k in ("epochs", "best_epoch", "stopped_by", "wall_s", "command")}
            r["protocol"] = protocol
            r["train_crystal_temperatures_K"] = train_crystal_temperatures(c["dataset"])
            out[molecule][model + protocol_suffix(protocol)] = r
    return out


def sf_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per test trajectory, from the SF model file and the dataset: accuracy, per-frame
    accuracy (lowest, first and second half of the frames: does it drift?), the most
    common wrong class, and the orientational order of the molecules (mean cosine between
    each molecule's first intramolecular vector and its direction in the first frame, at
    the last frame): ~1 for an intact crystal, lower for a melt. For the training
    trajectories too (order only), for comparison."""
    import numpy as np

    model_path = work / molecule / "sf" / "model.molenv"
    if not model_path.is_file():
        return None
    sys.path.insert(0, str(REPO / "py"))
    from molenv.dataset import open_dataset
    from molenv.frames import minimum_image
    from molenv.modelfile import read_model

    ds = open_dataset(work / molecule / "dataset")
    model = read_model(model_path)
    names = [n.lower() for n in model.classes]
    to_model = np.array([names.index(c.lower()) if c.lower() in names else -1 for c in ds.classes])
    rows = []
    for source in ds.sources:
        if not source["periodic"]:
            continue
        a = ds.arrays(source["name"])
        i, j = ds.descriptor_set.vectors[0]
        first = last = None
        for f in (0, len(a["positions"]) - 1):
            v = minimum_image(a["positions"][f][a["molecules"][:, j]].astype(float) - a["positions"][f][a["molecules"][:, i]], a["boxes"][f])
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            first, last = (v, last) if f == 0 else (first, v)
        row = {"source": source["name"], "label": source["label"], "temperature": source["temperature_K"], "split": source["split"],
               "order": float(np.mean(np.sum(first * last, axis=1)))}
        test = np.flatnonzero(a["split"] == 2)
        if len(test):
            truth = to_model[a["labels"][test]]
            pred = model.predict_proba(a["features"][test].reshape(-1, a["features"].shape[2])).argmax(1).reshape(truth.shape)
            per_frame = (pred == truth).mean(axis=1)
            half = len(per_frame) // 2
            wrong = pred[pred != truth]
            row.update(accuracy=float((pred == truth).mean()), lowest=float(per_frame.min()), first_half=float(per_frame[:half].mean()) if half else None,
                       second_half=float(per_frame[half:].mean()), frames=int(len(test)))
            if len(wrong):
                k = np.bincount(wrong).argmax()
                row.update(main_error=model.classes[k], main_error_fraction=float((wrong == k).sum() / truth.size))
        rows.append(row)
    return rows


def _orientation(a: dict, vector: tuple[int, int], frames: tuple[int, int]):
    """cos between each molecule's first intramolecular vector in two frames."""
    import numpy as np

    from molenv.frames import minimum_image

    i, j = vector
    out = []
    for f in frames:
        box = a["boxes"][f]
        v = a["positions"][f][a["molecules"][:, j]].astype(float) - a["positions"][f][a["molecules"][:, i]]
        v = minimum_image(v, None if np.isnan(box).any() else box)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.sum(out[0] * out[1], axis=1)


def gnn_cluster_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per cluster trajectory and split (val, test): the GNN's polymorph accuracy on the
    core (bulk-labelled) and on the surface molecules, and their orientational order (as
    in `sf_diagnostics`, first vs last frame of the trajectory; core/surface as labelled in
    the first frame). Cached in gnn/cluster_diagnostics.json for the checkpoint and dataset."""
    import numpy as np

    d = work / molecule
    checkpoint = d / "gnn" / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        return None
    key = {"checkpoint_mtime": checkpoint.stat().st_mtime, "dataset": _sha256(d / "dataset" / "manifest.json")}
    cache = d / "gnn" / "cluster_diagnostics.json"
    cached = _json(cache)
    if cached and cached.get("key") == key:
        return cached["rows"]
    sys.path.insert(0, str(REPO / "py"))
    import torch

    from molenv.dataset import open_dataset
    from molenv.gnn.graph import frame_to_graph
    from molenv.gnn.lightning import load_classifier, predict_graphs

    torch.set_num_threads(1)
    ds = open_dataset(d / "dataset")
    classifier = load_classifier(checkpoint)
    names = [n.lower() for n in classifier.form_names]
    to_model = np.array([names.index(c.lower()) if c.lower() in names else -1 for c in ds.classes])
    rows = []
    for source in ds.sources:
        if source["periodic"]:
            continue
        a = ds.arrays(source["name"])
        cos = _orientation(a, ds.descriptor_set.vectors[0], (0, len(a["positions"]) - 1))
        surface0 = a["topology"][0] == 1
        for split in ("val", "test"):
            items = list(ds.frames(split, sources=[source["name"]]))
            if not items:
                continue
            pred = predict_graphs(classifier, [frame_to_graph(it.frame, it.polymorph, it.topology) for it in items], embeddings=False)
            right = pred.polymorph == to_model[pred.y_polymorph]
            surface = pred.y_topology == 1
            rows.append({"source": source["name"], "split": split, "frames": len(items), "temperature": source["temperature_K"],
                         "accuracy": float(right.mean()), "accuracy_core": float(right[~surface].mean()) if (~surface).any() else None,
                         "accuracy_surface": float(right[surface].mean()) if surface.any() else None, "surface_fraction": float(surface.mean()),
                         "order_core": float(cos[~surface0].mean()), "order_surface": float(cos[surface0].mean()) if surface0.any() else None})
    cache.write_text(json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
    return rows


# ----------------------------------------------------------------------------- figures


def copy_figures(collected: dict, figure_dir: Path, dpi: int, suffix: str = "", only: tuple[str, ...] | None = None) -> dict:
    """Downscaled palette copies of the PNGs of each evaluation (those named in `only`, or
    all); {(molecule, model + suffix): [names]}."""
    from PIL import Image

    figure_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for molecule, c in collected.items():
        for model, entry in c["models"].items():
            names = []
            for key, file in entry["metrics"].get("files", {}).items():
                src = entry["dir"] / "eval-test" / file
                if not src.is_file() or (only is not None and key not in only):
                    continue
                dst = figure_dir / f"{molecule}_{model}{suffix}_{file}"
                with Image.open(src) as img:
                    scale = dpi / 120.0  # molenv.evaluate writes 120 dpi
                    small = img.convert("RGB").resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
                    small.quantize(colors=256).save(dst, optimize=True)
                names.append(dst.name)
            files[(molecule, model + suffix)] = names
    return files


# ----------------------------------------------------------------------------- report


def f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def minutes(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def every(n) -> str:
    """'every frame', 'every 2nd frame', ..."""
    if n in (None, 1):
        return "every frame"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, "th")
    return f"every {n}{suffix} frame"


def accelerators(by_protocol: dict) -> set[str]:
    """The hardware, other than a CPU, that the reported trainings ran on."""
    found = set()
    for collected in by_protocol.values():
        for c in collected.values():
            for entry in c["models"].values():
                hardware = entry["config"].get("hardware")
                if hardware and not hardware.startswith("CPU"):
                    found.add(hardware)
    return found


def md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return lines


def confusion_table(head: dict) -> list[str]:
    cm = head["confusion_matrix"]
    rows = []
    for name, counts in zip(cm["rows_true"], cm["counts"]):
        total = max(sum(counts), 1)
        rows.append([f"**{name}**"] + [f"{c}" if c == 0 or c == total else f"{c} ({100 * c / total:.1f} %)" for c in counts])
    return md_table(["true \\ predicted"] + cm["columns_predicted"], rows)


def largest_confusions(head: dict, n: int = 4) -> list[tuple[str, str, int, float]]:
    cm = head["confusion_matrix"]
    out = []
    for true, counts in zip(cm["rows_true"], cm["counts"]):
        total = sum(counts)
        for pred, count in zip(cm["columns_predicted"], counts):
            if pred != true and count:
                out.append((true, pred, count, count / total))
    return sorted(out, key=lambda x: -x[2])[:n]


def planned_missing(molecule: str, manifest_path: Path, protocol: str = "method") -> list[str]:
    """Trajectories data/generate.py plans for `molecule` that the manifest does not list
    yet (the MD data generation still running), train/test splits only; for the paper
    protocol without the extra training crystals it leaves out."""
    try:
        sys.path.insert(0, str(REPO / "data"))
        import generate  # data/generate.py

        planned = [r for r in generate.plan() if r["molecule"] == molecule and r["split"] in ("train", "val", "test")]
        if protocol == "method":
            described = [{"name": r["name"], "molecule": r["molecule"], "system": r["mode"], "split": r["split"],
                          "temperature_K": float(r["args"][r["args"].index("--temperature") + 1]) if "--temperature" in r["args"] else None}
                         for r in planned]
            extra = {e["name"] for e in extra_training(described, molecule)}
            planned = [r for r in planned if r["name"] not in extra]
    except Exception:  # noqa: BLE001 - the plan is informative only
        return []
    finally:
        sys.path.pop(0)
    present = {t["name"] for t in json.loads(manifest_path.read_text())["trajectories"]}
    return [f"{r['name']} ({r['split']})" for r in planned if r["name"] not in present]


def report(by_protocol: dict, results: dict, figures: dict, args, figure_rel: str) -> str:
    """results.md from the collected runs of each protocol ({protocol: {molecule: collect()}})."""
    collected = by_protocol.get("method", {})
    multi = by_protocol.get("multi-temperature", {})
    L: list[str] = []
    add = L.append
    add("# Accuracy of the classifiers on our MD data")
    add("")
    add(f"Written by `scripts/results.py` on {dt.date.today().isoformat()} from the `metrics.json` of `molenv evaluate`, the dataset "
        "manifests and the training records; do not edit by hand (rerun `.venv/bin/python scripts/results.py --report-only`). "
        "Published values: METHOD.md §6 (Kuroshima et al., JCTC 2024), micro F1 on *their* test data (their LAMMPS GAFF "
        f"trajectories), not on ours. Goal: micro F1 >= {GOAL} for both models on both molecules.")
    add("")
    add("## Summary (test split, micro F1)")
    add("")
    rows = []
    for molecule in MOLECULES:
        for model in MODELS:
            r = results.get(molecule, {}).get(model)
            pub = PUBLISHED[molecule][model]
            name = "SF-MLP" if model == "sf" else "GNN"
            if r is None:
                rows.append([molecule, name, "not run"] + [""] * 7)
                continue
            published = pub["note"] if pub["f1_polymorph"] is None or model == "sf" else f"{f(pub['f1_polymorph'])} ({pub['note']})"
            if model == "sf":
                rows.append([molecule, name, f"**{f(r['f1_polymorph'])}**", f(r["f1_polymorph"]), "(bulk only)", published, "(bulk only)", "-", "-",
                             "yes" if r["meets_goal"] else "**no**"])
            else:
                rows.append([molecule, name, f"**{f(r['f1_polymorph'])}**", f(r.get("f1_polymorph_periodic")), f(r.get("f1_polymorph_clusters")), published,
                             f"**{f(r.get('f1_topology'))}**", f(r.get("f1_topology_clusters")), f(pub.get("f1_topology")), "yes" if r["meets_goal"] else "**no**"])
    L += md_table(["molecule", "model", "polymorph, test", "crystals + melt", "clusters", "published", "topology, test", "clusters", "published",
                   f">= {GOAL}"], rows)
    add("")
    add("Test split (the paper's protocol, `molenv featurize --split-mode method`): crystals at a higher temperature than the "
        "training crystals (urea 200 K, nicotinamide 350 K; trained at 100 K) and the last 20 % of the melt frames. "
        "The SF-MLP is evaluated on the periodic bulk molecules (as the reference SF classifier), the GNN on every molecule of "
        "every test frame, clusters included where the test split has them ('test'), with the accuracy split into the periodic "
        "systems (crystals + melt, the systems of the published GNN numbers) and the clusters; '-': none in the test split. "
        "The goal column asks for the 'test' numbers.")
    # data caveats
    for molecule, c in collected.items():
        missing = planned_missing(molecule, REPO / args.manifest, "method")
        test_topology = c["dataset"].get("topology_counts", {}).get("test", {})
        notes = []
        if missing:
            notes.append(f"the dataset was made while the MD generation was still running: planned trajectories not yet in "
                         f"`data/manifest.json` then: {', '.join(missing)}")
        test_clusters = any(not s["periodic"] and s["frames"].get("test") for s in c["dataset"]["sources"])
        if "gnn" in c["models"] and not test_clusters:
            notes.append(f"the test split has no cluster frames ({test_topology.get('surface', 0)} molecules of the periodic test frames "
                         "fall below the surface CN threshold), so the test topology F1 mostly shows that bulk molecules are called bulk; "
                         "the GNN section below also evaluates the held-out validation frames, which include cluster frames (100 K) "
                         "and so surface molecules")
        for note in notes:
            add("")
            add(f"*{molecule}*: {note}.")
    add("")

    if multi:
        add("## Beyond the paper: multi-temperature training")
        add("")
        add("Not the paper's protocol: the training set adds crystals of every form (for urea also the clusters) at intermediate temperatures (their last 20 % "
            "of frames join the validation set, so early stopping also sees them); the test split is the same as above (crystals at "
            "the test temperature, held-out melt frames), which stays unseen. Training options as for the paper-protocol runs, except "
            "where the training command in the sections below differs. "
            "Micro F1 on the test split:")
        add("")
        rows = []
        for molecule in MOLECULES:
            for model in MODELS:
                r = results.get(molecule, {}).get(model + protocol_suffix("multi-temperature"))
                if r is None:
                    continue
                base = results.get(molecule, {}).get(model)
                change = f"{r['f1_polymorph'] - base['f1_polymorph']:+.3f}" if base and base.get("f1_polymorph") is not None and r["f1_polymorph"] is not None else "-"
                temps = " + ".join(f"{t:g}" for t in r["train_crystal_temperatures_K"])
                rows.append([molecule, "SF-MLP" if model == "sf" else "GNN", temps, f"**{f(r['f1_polymorph'])}**", f(base["f1_polymorph"]) if base else "-",
                             change, f"{f(r['macro_f1_polymorph'])}", f"**{f(r.get('f1_topology'))}**" if model == "gnn" else "(bulk only)",
                             f(r.get("val", {}).get("f1_polymorph")), "yes" if r["meets_goal"] else "**no**"])
        L += md_table(["molecule", "model", "training crystals (K)", "polymorph, test", "paper protocol", "change", "macro F1", "topology, test",
                       "polymorph, held-out val", f">= {GOAL}"], rows)
        for molecule, c in multi.items():
            missing = planned_missing(molecule, REPO / args.manifest, "multi-temperature")
            if missing:
                add("")
                add(f"*{molecule}, multi-temperature*: the dataset was made while the MD generation was still running: planned "
                    f"trajectories not yet in `data/manifest.json` then: {', '.join(missing)}.")
        add("")

    def molecule_section(molecule: str, c: dict, protocol: str) -> None:
        nonlocal L
        ds = c["dataset"]
        suffix = protocol_suffix(protocol)
        if protocol == "method":
            add(f"## {molecule}")
        else:
            temps = " + ".join(f"{t:g}" for t in train_crystal_temperatures(ds))
            add(f"## {molecule}: {protocol} training (crystals at {temps} K; not the paper's protocol)")
        add("")
        add("### Data")
        add("")
        add(f"Dataset from `data/manifest.json` ({len(ds['sources'])} trajectories, classes {', '.join(ds['classes'])}; "
            f"featurized in {minutes(ds.get('wall_time_s'))}). Frames per split of each trajectory:")
        add("")
        rows = []
        for s in ds["sources"]:
            fr = s["frames"]
            rows.append([s["name"], s["label"], s["system"], f"{s['temperature_K']:g}", s["n_molecules"],
                         fr.get("train", 0), fr.get("val", 0), fr.get("test", 0), s.get("surface_molecules", "-")])
        L += md_table(["trajectory", "label", "system", "T (K)", "molecules", "train frames", "val frames", "test frames", "surface molecules (all frames)"], rows)
        add("")
        add("Molecules per split and class, and per topology class (all molecules of all frames; the SF-MLP trains and is "
            "evaluated on the periodic bulk ones, the GNN trains on a subsample of the training frames, see below):")
        add("")
        classes = ds["classes"]
        rows = []
        for split, counts in ds.get("counts", {}).items():
            topo = ds.get("topology_counts", {}).get(split, {})
            rows.append([split] + [counts.get(k, 0) for k in classes] + [sum(counts.values()), topo.get("bulk", 0), topo.get("surface", 0)])
        L += md_table(["split"] + classes + ["total", "bulk", "surface"], rows)
        add("")
        for model in MODELS:
            entry = c["models"].get(model)
            if entry is None:
                continue
            r = results[molecule][model + suffix]
            t = train_record(model, entry, c["steps"])
            heads = entry["metrics"]["heads"]
            title = "SF-MLP (symmetry functions + MLP)" if model == "sf" else "GNN (graph network)"
            add(f"### {title}")
            add("")
            p = heads["polymorph"]
            line = f"Test: polymorph micro F1 **{f(p['micro_f1'], 4)}**, macro F1 {f(p['macro_f1'], 4)} ({p['n']} molecules)"
            if model == "gnn":
                tp = heads["topology"]
                line += f"; topology micro F1 **{f(tp['micro_f1'], 4)}** ({tp['n']} molecules)"
            add(line + ".")
            add("")
            opts = t["options"]
            if model == "sf":
                add(f"Training: {t['train_molecules']} periodic bulk training molecules, hidden {opts.get('hidden')} {opts.get('activation')}, "
                    f"Adam lr {opts.get('lr')}, batch {opts.get('batch_size')} molecules, early stopping patience {opts.get('patience')} "
                    f"(min delta {opts.get('min_delta')}), max {opts.get('max_epochs')} epochs, seed {opts.get('seed')}, 1 thread. "
                    f"Ran {t['epochs']} epochs (best epoch {t['best_epoch']}, validation loss {f(t['best_val_loss'], 5)}; stopped by {t['stopped_by']}) "
                    f"in {minutes(t['wall_s'])}.")
            else:
                limit = f"wall-clock limit {opts['max_time_min']:g} min" if opts.get("max_time_min") else "no wall-clock limit"
                add(f"Training: {t['train_frames']} training frames ({t['train_molecules']} molecules; {every(opts.get('frame_step'))} of each trajectory's "
                    f"training frames), {t['val_frames']} validation frames ({every(opts.get('val_frame_step'))}); {convolutions(opts.get('num_convs'))}, "
                    + (f"position noise {opts['position_noise']:g} A, " if opts.get("position_noise") else "")
                    + f"dropout {opts.get('dropout')}, Adam lr {opts.get('lr')} (x {opts.get('lr_decay')} after {opts.get('lr_patience')} epochs without a better validation loss), {opts.get('batch_size')} frames per step ({opts.get('batching')} batches), "
                    f"early stopping patience {opts.get('patience')}, at most {opts.get('max_epochs')} epochs, {limit}, "
                    f"seed {opts.get('seed')}, deterministic kernels, on {t.get('hardware') or '1 CPU thread'}. Ran {t['epochs']} epochs (best epoch {t['best_epoch']}, validation "
                    f"loss {f(t['best_val_loss'], 4)}; stopped by {t['stopped_by']}) in {minutes(t['fit_s'])} of fitting"
                    + (f", {minutes(t['wall_s'])} in all (with building the graphs)." if t.get("wall_s") is not None else "."))
                first = t.get("first_fit")
                if first and t["two_parts"] == "resumed":
                    add("")
                    add(f"The fit ran in two parts (`molenv train gnn --resume`, the wall-clock limit counting both): a first fit of "
                        f"{first.get('epochs')} epochs in {minutes(first.get('wall_time_s'))} (stopped by {first.get('stopped_by')}), continued from its best "
                        f"checkpoint (epoch {first.get('checkpoint_epoch')}) for {minutes(t['continued_s'])}; the commands are below.")
                elif first:
                    add("")
                    add(f"The fit ran in two parts: a first fit from random weights of {first.get('epochs')} epochs in {minutes(first.get('wall_time_s'))} "
                        f"(stopped by {first.get('stopped_by')}; its own options are in its command below), then the fit above, started from that fit's best "
                        f"checkpoint (epoch {first.get('checkpoint_epoch')}; `molenv train gnn --init-from`, fine-tuning); the commands are below.")
            if entry.get("earlier_dataset"):
                add("The model was trained on another featurization of the same trajectories with the same training and validation frames "
                    "(an earlier one, before `--update-dataset` added test trajectories, or one made where the model was trained) "
                    "and evaluated on the current dataset.")
            ev = c["steps"].get(f"evaluate_{model}", {})
            if ev.get("wall_s") is not None:
                add(f"Evaluation (with t-SNE maps): {minutes(ev['wall_s'])}.")
            add("")
            add("Recall per class (test):")
            add("")
            L += md_table(["class"] + list(p["per_class"]), [["recall"] + [f(v["recall"], 4) for v in p["per_class"].values()],
                                                              ["support"] + [v["support"] for v in p["per_class"].values()]])
            add("")
            add("Polymorph confusion matrix (test; rows true, columns predicted):")
            add("")
            L += confusion_table(p)
            add("")
            if model == "gnn":
                add("Topology confusion matrix (test):")
                add("")
                L += confusion_table(heads["topology"])
                add("")
                vm = entry.get("val_metrics")
                if vm:
                    vp, vt = vm["heads"]["polymorph"], vm["heads"]["topology"]
                    add(f"Held-out validation frames (used for early stopping, {vp['n']} molecules): polymorph micro F1 {f(vp['micro_f1'], 4)}, "
                        f"topology micro F1 {f(vt['micro_f1'], 4)}; topology confusion:")
                    add("")
                    L += confusion_table(vt)
                    add("")
            worst = sorted(p.get("accuracy_by_source", {}).items(), key=lambda kv: kv[1]["accuracy"])
            if model == "gnn":
                rows = []
                splits = [("test", entry["metrics"])] + ([("val", entry["val_metrics"])] if entry.get("val_metrics") else [])
                for split, m in splits:
                    pol, top = m["heads"]["polymorph"].get("accuracy_by_source", {}), m["heads"]["topology"].get("accuracy_by_source", {})
                    rows += [[k, split, v["n"], f(v["accuracy"], 4), f(top.get(k, {}).get("accuracy"), 4)] for k, v in pol.items()]
                add("Accuracy per trajectory (test, and the held-out validation frames):")
                add("")
                L += md_table(["trajectory", "split", "molecules", "polymorph", "topology"], rows)
                add("")
                if c.get("cluster_diagnostics"):
                    add("Clusters: polymorph accuracy of the core (bulk-labelled) and the surface molecules, and the orientational order "
                        "of the core and surface molecules (mean cos between each molecule's first intramolecular vector in the first and "
                        "the last frame of the trajectory; ~1: crystalline, molecules keep their orientation):")
                    add("")
                    L += md_table(["trajectory", "split", "frames", "surface share", "polymorph", "core", "surface", "order, core", "order, surface"],
                                  [[x["source"], x["split"], x["frames"], f(x["surface_fraction"], 2), f(x["accuracy"]), f(x["accuracy_core"]),
                                    f(x["accuracy_surface"]), f(x["order_core"]), f(x["order_surface"])] for x in c["cluster_diagnostics"]])
                    add("")
            elif worst:
                add("Accuracy by test trajectory: " + ", ".join(f"{k} {f(v['accuracy'], 4)} (n {v['n']})" for k, v in worst) + ".")
                add("")
            if not r["meets_goal"]:
                conf = largest_confusions(p)
                if conf:
                    add("Largest polymorph confusions (true -> predicted): " + "; ".join(f"{a} -> {b}: {n} ({100 * x:.1f} % of {a})" for a, b, n, x in conf) + ".")
                    add("")
            if model == "sf" and entry.get("val_metrics"):
                vp = entry["val_metrics"]["heads"]["polymorph"]
                add(f"Held-out validation frames ({'training temperature' if protocol == 'method' else 'training temperatures'}; used for early stopping, {vp['n']} molecules): polymorph micro F1 "
                    f"{f(vp['micro_f1'], 4)}.")
                add("")
            if model == "sf" and c.get("diagnostics"):
                rows = [[d["source"], f"{d['temperature']:g}", d["split"], f(d["order"]), f(d.get("accuracy")), f(d.get("lowest")), f(d.get("first_half")),
                         f(d.get("second_half")), f"{d['main_error']} ({100 * d['main_error_fraction']:.1f} %)" if d.get("main_error") else "-"]
                        for d in c["diagnostics"]]
                add("Per periodic trajectory: orientational order (mean cos between each molecule's first intramolecular vector in the first "
                    "and in the last frame: ~1 intact crystal, lower for a liquid) and, for the test frames, the SF-MLP's accuracy, its lowest "
                    "per-frame accuracy, its mean over the first and the second half of the frames (a drift would mean the structure changes "
                    "during the run) and the most common wrong class (share of all test molecules of the trajectory):")
                add("")
                L += md_table(["trajectory", "T (K)", "split", "order", "accuracy", "lowest frame", "1st half", "2nd half", "most common error"], rows)
                add("")
            for name in figures.get((molecule, model + suffix), []):
                add(f"![{name}]({figure_rel}/{name})")
            add("")
            if t.get("command"):
                add("```")
                add(t["command"])
                if ev.get("command"):
                    add(ev["command"])
                add("```")
                add("")


    for molecule in MOLECULES:
        if collected.get(molecule) is not None:
            molecule_section(molecule, collected[molecule], "method")
    for molecule in MOLECULES:
        if multi.get(molecule) is not None:
            molecule_section(molecule, multi[molecule], "multi-temperature")

    if args.notes and Path(args.notes).is_file():
        add(Path(args.notes).read_text().strip())
        add("")

    add("## How these numbers were made")
    add("")
    add("`.venv/bin/python scripts/results.py` (both molecules, the defaults above) runs everything and writes this page; "
        "`--molecule`, `--model`, `--reuse`, `--update-dataset` and `--report-only` redo parts, `--protocol multi-temperature` runs the "
        "multi-temperature training (`--help`). The steps behind the "
        "numbers on this page, with their wall times (the runs are in `" + str(args.work) + "`):")
    add("")
    add("```")
    for molecule, c in [(m, by_protocol.get(p, {}).get(m)) for p in PROTOCOLS for m in MOLECULES]:
        if c is None:
            continue
        for step in ("featurize", "train_sf", "evaluate_sf", "evaluate_sf_val", "train_gnn", "evaluate_gnn", "evaluate_gnn_val"):
            s = c["steps"].get(step)
            gnn = c["models"].get("gnn") if step == "train_gnn" else None
            t = train_record("gnn", gnn, c["steps"]) if gnn else {}
            if t.get("first_fit"):  # a fit in two parts: both commands, with their fitting times
                add(f"{t['first_fit'].get('command')}    # {minutes(t['first_fit'].get('wall_time_s'))} of fitting")
                add(f"{gnn['config'].get('command')}    # {minutes(t['continued_s'])} of fitting")
            elif s:
                add(f"{s['command']}    # {minutes(s['wall_s'])}")
    add("```")
    add("")
    elsewhere = sorted(accelerators(by_protocol))
    add(f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work (MD data generation, builds); every step niced, "
        "one torch/OpenMP thread. Wall times include waiting for the shared CPU. "
        + (f"Trainings whose paragraph names other hardware ({', '.join(elsewhere)}) ran on that machine, in the folders their commands name, "
           "and were evaluated here. " if elsewhere else "")
        + "PNGs in `docs/results/` are 100 dpi copies of "
        "`molenv evaluate`'s; t-SNE maps show 1000 randomly chosen test molecules (seeded), misclassified ones marked x.")
    add("")
    return "\n".join(L)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for details.")
    parser.add_argument("--protocol", nargs="+", choices=PROTOCOLS, default=["method"],
                        help="training protocols to run (default method, the paper's; multi-temperature: also the training crystals "
                             "and clusters at further temperatures, runs in WORK/multi-temperature); the report covers the runs of both")
    parser.add_argument("--molecule", nargs="+", choices=MOLECULES, default=list(MOLECULES), help="molecules (default both)")
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS), help="models (default both)")
    parser.add_argument("--manifest", default="data/manifest.json", help="MD manifest, relative to the repository (default data/manifest.json)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN", help="only these manifest trajectories (shell patterns; passed to featurize --only)")
    parser.add_argument("--work", default="/work/runs", help="directory for datasets, runs and logs, one folder per molecule (default /work/runs)")
    parser.add_argument("--docs", help="directory for results.md, results.json and results/*.png (default docs/, with --quick WORK/docs)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset and runs of the molecule; only run the missing steps")
    parser.add_argument("--update-dataset", action="store_true",
                        help="featurize again (e.g. after new test trajectories); keep trained runs whose training and validation frames are unchanged and evaluate them again")
    parser.add_argument("--report-only", action="store_true", help="run nothing; write the documents from the runs in --work")
    parser.add_argument("--quick", action="store_true", help="smoke test: every 10th frame, 5 SF epochs, 1 GNN epoch, 100-point t-SNE")
    parser.add_argument("--no-diagnostics", action="store_true", help="leave out the GNN cluster diagnostics (a forward pass over the cluster frames)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the steps (default 10; 0: not niced)")
    parser.add_argument("--tsne-samples", type=int, default=1000, help="molecules per t-SNE map (default 1000)")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the copied PNGs (default 100)")
    parser.add_argument("--notes", default=str(REPO / "docs" / "results_notes.md"),
                        help="markdown appended as the discussion (default docs/results_notes.md, if present)")
    sf = parser.add_argument_group("SF-MLP training (molenv train sf)")
    sf.add_argument("--sf-lr", type=float, default=SF_DEFAULTS["lr"])
    sf.add_argument("--sf-batch-size", type=int, default=SF_DEFAULTS["batch_size"])
    sf.add_argument("--sf-max-epochs", type=int, default=SF_DEFAULTS["max_epochs"])
    sf.add_argument("--sf-patience", type=int, default=SF_DEFAULTS["patience"])
    g = parser.add_argument_group("GNN training (molenv train gnn)")
    g.add_argument("--gnn-frame-step", type=int, help=f"every N-th training frame of each trajectory (default {GNN_DEFAULTS['frame_step']}, nicotinamide 1)")
    g.add_argument("--gnn-val-frame-step", type=int, default=GNN_DEFAULTS["val_frame_step"], help="every N-th validation frame (default %(default)s)")
    g.add_argument("--gnn-batch-size", type=int, default=GNN_DEFAULTS["batch_size"], help="frames per step (default %(default)s)")
    g.add_argument("--gnn-batching", choices=["stratified", "shuffle"], default=GNN_DEFAULTS["batching"], help="order of the training frames (default %(default)s)")
    g.add_argument("--gnn-lr", type=float, default=GNN_DEFAULTS["lr"], help="Adam learning rate (default %(default)s; published 1e-4)")
    g.add_argument("--gnn-lr-decay", type=float, default=GNN_DEFAULTS["lr_decay"], help="lr factor when the validation loss stalls (default %(default)s; 1: constant)")
    g.add_argument("--gnn-lr-patience", type=int, default=GNN_DEFAULTS["lr_patience"], help="epochs without improvement before the lr decays (default %(default)s)")
    g.add_argument("--gnn-dropout", type=float, default=GNN_DEFAULTS["dropout"], help="dropout (default %(default)s; paper 0.25, published code 0.5)")
    g.add_argument("--gnn-max-epochs", type=int, default=GNN_DEFAULTS["max_epochs"], help="(default %(default)s)")
    g.add_argument("--gnn-patience", type=int, default=GNN_DEFAULTS["patience"], help="early-stopping patience in epochs (default %(default)s)")
    g.add_argument("--gnn-accelerator", choices=["cpu", "gpu"], default="cpu", help="where the GNN trains (default cpu; gpu: one CUDA device)")
    g.add_argument("--gnn-threads", type=int, default=1, help="torch CPU threads of the fit (default %(default)s; recorded in train_config.json)")
    g.add_argument("--gnn-convs", type=int, help=f"graph convolutions (default {GNN_DEFAULTS['convs']}, the published model; urea 2)")
    g.add_argument("--gnn-max-time", type=float, help=f"wall-clock limit of the fit in minutes (default {GNN_DEFAULTS['max_time']:g}, urea 100, nicotinamide 60; 0: none)")
    args = parser.parse_args(argv)
    args.command_line = shlex.join(argv if argv is not None else sys.argv[1:])
    work = Path(args.work)
    if args.quick and args.work == parser.get_default("work"):
        work = Path(args.work) / "quick"
        args.work = str(work)
    docs = Path(args.docs) if args.docs else (work / "docs" if args.quick else REPO / "docs")

    if not args.report_only:
        for protocol in args.protocol:
            for molecule in args.molecule:
                run_molecule(molecule, args.model, args, protocol)
    if args.dry_run:
        return 0

    by_protocol = {}
    for protocol in PROTOCOLS:
        pwork = protocol_work(work, protocol)
        collected = {m: c for m in MOLECULES if (c := collect(pwork, m)) is not None}
        for molecule, c in collected.items():
            if "sf" in c["models"]:
                c["diagnostics"] = sf_diagnostics(pwork, molecule)
            if "gnn" in c["models"] and not args.no_diagnostics:
                c["cluster_diagnostics"] = gnn_cluster_diagnostics(pwork, molecule)
        by_protocol[protocol] = collected
    if not any(by_protocol.values()):
        raise SystemExit(f"{work}: no runs to report")
    results = {}
    figure_dir = docs / "results"
    figures = {}
    for protocol, collected in by_protocol.items():
        for molecule, r in results_json(collected, protocol).items():
            results.setdefault(molecule, {}).update(r)
        # the paper protocol's figures all; the other protocols' polymorph confusion matrix only
        figures.update(copy_figures(collected, figure_dir, args.dpi, protocol_suffix(protocol), None if protocol == "method" else ("confusion_polymorph",)))
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (docs / "results.md").write_text(report(by_protocol, results, figures, args, os.path.relpath(figure_dir, docs)))
    print(f"wrote {docs / 'results.md'}, {docs / 'results.json'} and {sum(map(len, figures.values()))} figures in {figure_dir}")
    for molecule, r in results.items():
        for model, v in r.items():
            print(f"  {molecule} {model}: polymorph {f(v['f1_polymorph'], 4)}" + (f", topology {f(v['f1_topology'], 4)}" if "f1_topology" in v else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
