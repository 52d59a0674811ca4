"""The numbers of the accuracy table, gathered from the files of the runs.

`collect_results` reads, per protocol and molecule, the dataset manifest, the step records,
and per model the training record (``train_config.json``) and the ``metrics.json`` of
`molenv evaluate` on the test and validation splits (`collect_run`), adds the diagnostics
that need the models (`molenv.results.diagnostics`), and makes results.json from them
(`results_json`). Nothing here is typed by hand but the published values
(`molenv.results.published`).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from molenv.constants import file_sha256
from molenv.protocols import extra_training
from molenv.results.diagnostics import gnn_cluster_diagnostics, sf_diagnostics
from molenv.results.layout import MODELS, MOLECULES, PAPER_TRAJECTORIES, PROTOCOLS, protocol_suffix, protocol_work, read_json
from molenv.results.published import GOAL, PUBLISHED

# results.json's key of the SF-MLPs on designed specs (`molenv.results.designed`), beside the molecules
DESIGNED_SPEC = "designed_spec"
# what results.json keeps of a training record
TRAINING_SUMMARY = ("epochs", "best_epoch", "stopped_by", "wall_s", "command")
# what a GNN training record keeps of its train_config.json
GNN_OPTIONS = ("form_names", "num_convs", "dropout", "lr", "lr_decay", "lr_patience", "batch_size", "batching", "max_epochs", "patience", "min_delta",
               "max_time_min", "seed", "frame_step", "val_frame_step", "deterministic", "position_noise")


@dataclass
class Results:
    """What docs/results.md and results.json report."""

    runs: dict[str, dict[str, dict]]  # {protocol: {molecule: collect_run()}}, molecules with a dataset
    numbers: dict  # results.json: {molecule: {model + protocol_suffix(protocol): {f1_polymorph, ...}}, DESIGNED_SPEC: ...}
    missing: dict[str, dict[str, list[str]]]  # {protocol: {molecule: planned trajectories the manifest lacks}}
    work: str  # where the runs are, as given
    date: str = field(default_factory=lambda: dt.date.today().isoformat())
    # the machine the report is written on, where the runs ran unless their hardware says otherwise
    machine: str = field(default_factory=platform.machine)
    cores: int | None = field(default_factory=os.cpu_count)


def collect_results(work: str | Path, manifest: Path, data_dir: Path, diagnostics: bool = True) -> Results:
    """The runs of every protocol in `work` (GNN cluster diagnostics unless `diagnostics` is
    False), their results.json and, per run, the trajectories that data/generate.py plans
    (`data_dir`) and the MD manifest does not list."""
    runs = {}
    for protocol in PROTOCOLS:
        pwork = protocol_work(work, protocol)
        collected = {m: c for m in MOLECULES if (c := collect_run(pwork, m)) is not None}
        for molecule, c in collected.items():
            if "sf" in c["models"]:
                c["diagnostics"] = sf_diagnostics(pwork, molecule)
            if "gnn" in c["models"] and diagnostics:
                c["cluster_diagnostics"] = gnn_cluster_diagnostics(pwork, molecule)
        runs[protocol] = collected
    numbers = {}
    for protocol, collected in runs.items():
        for molecule, r in results_json(collected, protocol).items():
            numbers.setdefault(molecule, {}).update(r)
    from molenv.results.designed import designed_results

    if designed := designed_results(work, numbers):
        numbers[DESIGNED_SPEC] = designed
    missing = {protocol: {m: planned_missing(m, manifest, data_dir, protocol) for m in collected} for protocol, collected in runs.items()}
    return Results(runs=runs, numbers=numbers, missing=missing, work=str(work))


def collect_run(work: Path, molecule: str) -> dict | None:
    """Everything the report needs about one molecule, from the files of its runs; None
    without a dataset."""
    d = work / molecule
    manifest = read_json(d / "dataset" / "manifest.json")
    if manifest is None:
        return None
    steps = read_json(d / "steps.json") or {}
    if "featurize" not in steps and manifest.get("command"):  # a dataset made outside scripts/results.py
        steps["featurize"] = {"command": manifest["command"], "wall_s": manifest.get("wall_time_s")}
    # the authors' published SF-MLP on the SF-MLP's test molecules (pipeline.evaluate_reference)
    out = {"dataset": manifest, "steps": steps, "models": {}, "reference": read_json(d / "reference" / "eval-test" / "metrics.json")}
    for model in MODELS:
        metrics = read_json(d / model / "eval-test" / "metrics.json")
        if metrics is None:
            continue
        config = read_json(d / model / "train_config.json") or {}
        entry = {"metrics": metrics, "config": config, "dir": d / model}
        trained_on = config.get("dataset_manifest_sha256") or config.get("provenance", {}).get("dataset_manifest_sha256")
        entry["earlier_dataset"] = bool(trained_on) and trained_on != file_sha256(d / "dataset" / "manifest.json")
        entry["val_metrics"] = read_json(d / model / "eval-val" / "metrics.json")
        out["models"][model] = entry
    return out


def train_record(model: str, entry: dict, steps: dict) -> dict:
    """Epochs, best epoch, stopping reason, wall time and command of a training run."""
    c = entry["config"]
    step = steps.get(f"train_{model}", {})
    if model == "sf":
        return _sf_train_record(entry, step)
    record = {"epochs": c.get("epochs"), "best_epoch": c.get("best_epoch"), "best_val_loss": c.get("best_val_loss"), "stopped_by": c.get("stopped_by"),
              "train_frames": c.get("n_train_graphs"), "val_frames": c.get("n_val_graphs"), "train_molecules": c.get("n_train_molecules"),
              "wall_s": step.get("wall_s", c.get("wall_time_s")), "fit_s": c.get("wall_time_s"),
              "command": step.get("command", c.get("command")), "hardware": c.get("hardware"), "options": {k: c.get(k) for k in GNN_OPTIONS if k in c}}
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


def _sf_train_record(entry: dict, step: dict) -> dict:
    c = entry["config"]
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


def _best_epoch(metrics_csv: Path, best_loss: float) -> int | None:
    """The epoch of the Lightning CSV log whose validation loss is the best one."""
    with open(metrics_csv) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val_loss")]
    if not rows:
        return None
    return int(min(rows, key=lambda r: abs(float(r["val_loss"]) - best_loss))["epoch"])


def train_crystal_temperatures(manifest: dict) -> list[float]:
    """Temperatures of the crystals with training frames in a dataset manifest."""
    return sorted({s["temperature_K"] for s in manifest["sources"] if s["system"] == "crystal" and s["frames"].get("train")})


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
            out[molecule][model + protocol_suffix(protocol)] = _model_numbers(molecule, model, entry, c, protocol)
    return out


def _model_numbers(molecule: str, model: str, entry: dict, c: dict, protocol: str) -> dict:
    """One model's entry of results.json."""
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
    if model == "sf" and c.get("reference"):
        ref = c["reference"]["heads"]["polymorph"]
        r["authors_model"] = {"f1_polymorph": ref.get("micro_f1"), "macro_f1_polymorph": ref.get("macro_f1"), "n_test_molecules": ref.get("n"),
                              "recall_polymorph": {k: v["recall"] for k, v in ref.get("per_class", {}).items()}}
    if model == "gnn" and entry.get("val_metrics"):
        vh = entry["val_metrics"]["heads"]
        r["val"] = {"f1_polymorph": vh["polymorph"].get("micro_f1"), "f1_topology": vh["topology"].get("micro_f1"),
                    "f1_polymorph_periodic": by_system(vh["polymorph"], c["dataset"], True),
                    "f1_polymorph_clusters": by_system(vh["polymorph"], c["dataset"], False),
                    "recall_surface": vh["topology"].get("per_class", {}).get("surface", {}).get("recall")}
    r["published"] = dict(PUBLISHED[molecule][model])
    r["meets_goal"] = all(r[k] is not None and r[k] >= GOAL for k in ("f1_polymorph", "f1_topology") if k in r)
    t = train_record(model, entry, c["steps"])
    r["training"] = {k: t[k] for k in TRAINING_SUMMARY}
    r["protocol"] = protocol
    r["train_crystal_temperatures_K"] = train_crystal_temperatures(c["dataset"])
    return r


def accelerators(runs: dict) -> set[str]:
    """The hardware, other than a CPU, that the reported trainings ran on ({protocol:
    {molecule: collect_run()}})."""
    found = set()
    for collected in runs.values():
        for c in collected.values():
            for entry in c["models"].values():
                hardware = entry["config"].get("hardware")
                if hardware and not hardware.startswith("CPU"):
                    found.add(hardware)
    return found


def planned_missing(molecule: str, manifest_path: Path, data_dir: Path, protocol: str = "method") -> list[str]:
    """Trajectories data/generate.py (in `data_dir`) plans for `molecule` that the manifest
    does not list yet (the MD data generation still running), train/test splits only; for
    the paper protocol without the extra training crystals it leaves out."""
    try:
        sys.path.insert(0, str(data_dir))
        import generate  # data/generate.py

        planned = [r for r in generate.plan() if r["molecule"] == molecule and r["split"] in ("train", "val", "test")]
        if protocol in PAPER_TRAJECTORIES:
            described = [{"name": r["name"], "molecule": r["molecule"], "system": r["mode"], "split": r["split"],
                          "temperature_K": float(r["args"][r["args"].index("--temperature") + 1]) if "--temperature" in r["args"] else None}
                         for r in planned]
            extra = {e["name"] for e in extra_training(described, molecule)}
            planned = [r for r in planned if r["name"] not in extra]
    except Exception:  # noqa: BLE001 - the plan is informative only
        return []
    finally:
        sys.path.pop(0)
    present = {t["name"] for t in json.loads(Path(manifest_path).read_text())["trajectories"]}
    return [f"{r['name']} ({r['split']})" for r in planned if r["name"] not in present]
