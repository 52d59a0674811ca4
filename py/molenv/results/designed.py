"""SF-MLPs on designed specs (`molenv design`), next to those on the published specs.

``scripts/results.py --designed-spec MOLECULE=SPEC`` runs, per protocol, the steps of the
accuracy table for the SF-MLP with the descriptors of SPEC (``molenv featurize --molecule
SPEC``, ``molenv train sf``, ``molenv evaluate``) in ``WORK/designed`` (paper protocol) or
``WORK/designed/<protocol>``, laid out as the other runs (`molenv.results.layout`).
`designed_results` makes results.json's ``designed_spec`` entry from them:
``{molecule: {"sf" + protocol suffix: {"f1_polymorph": designed, "f1_polymorph_published_spec":
the same protocol's SF-MLP on the published spec, ...}}}``.
"""
from __future__ import annotations

from pathlib import Path

from molenv.constants import file_sha256
from molenv.results.layout import MOLECULES, PROTOCOLS, protocol_suffix, protocol_work, read_json

DESIGNED_DIR = "designed"


def designed_work(work: str | Path, protocol: str) -> Path:
    """Where a protocol's designed-spec runs are."""
    return protocol_work(Path(work) / DESIGNED_DIR, protocol)


def run_designed(molecule: str, spec: str, args, protocol: str, repo: Path) -> None:
    """featurize with the designed `spec`, train and evaluate the SF-MLP (the options of
    scripts/results.py in `args`)."""
    from molenv.protocols import extra_training, manifest_entries
    from molenv.results.pipeline import Runner, evaluate, featurize, train_sf

    entries = manifest_entries(repo / args.manifest)
    if protocol != "method" and not extra_training(entries, molecule):
        print(f"{molecule}: no training crystals beyond the lowest temperature; the {protocol} protocol is the paper's, skipped", flush=True)
        return
    runner = Runner(designed_work(args.work, protocol), molecule, args.nice, repo, args.dry_run)
    dataset = runner.dir / "dataset"
    featurize(runner, molecule, dataset, entries, args, protocol, spec=spec)
    train_sf(runner, molecule, dataset, args, protocol, name=f"{molecule}-sf-designed")
    from molenv.results.pipeline import QUICK

    evaluate(runner, "sf", dataset, QUICK["tsne_samples"] if args.quick else args.tsne_samples, args.reuse)


def designed_results(work: str | Path, numbers: dict) -> dict:
    """results.json's ``designed_spec``: per molecule and protocol with a designed-spec SF
    run, its test micro F1 and that of the SF run on the published spec (`numbers`, the
    molecules' entries of results.json; None where that run is missing)."""
    from molenv.results.collect import collect_run

    out = {}
    for protocol in PROTOCOLS:
        for molecule in MOLECULES:
            c = collect_run(designed_work(work, protocol), molecule)
            if c is None or "sf" not in c["models"]:
                continue
            key = "sf" + protocol_suffix(protocol)
            polymorph = c["models"]["sf"]["metrics"]["heads"]["polymorph"]
            published = numbers.get(molecule, {}).get(key, {})
            spec = c["dataset"].get("spec", {})
            design = read_json(Path(spec["path"]).parent / "design.json") if spec.get("path") else None
            val = c["models"]["sf"].get("val_metrics")
            out.setdefault(molecule, {})[key] = {
                "f1_polymorph": polymorph.get("micro_f1"),
                "f1_polymorph_published_spec": published.get("f1_polymorph"),
                "macro_f1_polymorph": polymorph.get("macro_f1"),
                "macro_f1_polymorph_published_spec": published.get("macro_f1_polymorph"),
                "n_test_molecules": polymorph.get("n"),
                "recall_polymorph": {k: v["recall"] for k, v in polymorph.get("per_class", {}).items()},
                "val": {"f1_polymorph": val["heads"]["polymorph"].get("micro_f1")} if val else None,
                "n_functions": len(c["dataset"]["descriptors"]["functions"]),
                "cutoff_A": [c["dataset"]["descriptors"]["rmin"], c["dataset"]["descriptors"]["rmax"]],
                "spec": {"path": spec.get("path"), "sha256": spec.get("sha256"),
                         "current": bool(spec.get("path")) and Path(spec["path"]).is_file() and file_sha256(spec["path"]) == spec.get("sha256")},
                "design_command": design.get("command") if design else None,
                "featurize_command": c["steps"].get("featurize", {}).get("command"),
                "train_command": c["steps"].get("train_sf", {}).get("command"),
                "protocol": protocol,
            }
    return out
