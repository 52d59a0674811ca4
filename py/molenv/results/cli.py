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
in them is typed by hand except the published values (METHOD.md §6,
`molenv.results.published`).

Runs (datasets, checkpoints, logs) go to ``--work`` (default /work/runs, outside
the repository). Every step's command, wall time and end date are kept in
``WORK/<molecule>/steps.json``, so that a later call with ``--reuse`` (skip steps whose
outputs exist) or ``--report-only`` still reports them.

    .venv/bin/python scripts/results.py                           # both molecules, both models
    .venv/bin/python scripts/results.py --molecule urea --model gnn --reuse
    .venv/bin/python scripts/results.py --report-only             # rewrite the docs from the runs
    .venv/bin/python scripts/results.py --quick --work /tmp/q     # smoke test (a few minutes per molecule)

GNN training on a 2-core CPU is the bottleneck (~0.5 s per urea frame of ~1500 atoms,
forward + backward, one thread). The defaults (`GNN_DEFAULTS`, `GNN_MOLECULE_DEFAULTS` in
`molenv.results.pipeline`) make it fit in 100 min (urea, two graph convolutions) and 60 min
(nicotinamide, one, as published): every 2nd training frame for urea
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
(nicotinamide crystals at 250 and 300 K and a molten droplet at 350 K, urea crystals and
clusters at 150 K), and tests on
the same split. Its runs go to ``WORK/multi-temperature/<molecule>`` and are
reported in their own section and as ``<model>_multi_temperature`` in results.json; the
paper-protocol dataset leaves those trajectories out (``featurize --only``). ``--report-only``
reports the runs of every protocol that exist. ``thermal-augmentation`` (not the paper's)
trains on the paper's trajectories, the training crystals with warmed copies for the test
crystals' temperature (`molenv featurize --augment-temperature`, molenv.augment; the
training clusters too where the test has clusters, `--augment-clusters`), in
``WORK/thermal-augmentation/<molecule>`` (``<model>_thermal_augmentation`` in results.json).

    .venv/bin/python scripts/results.py --protocol multi-temperature --molecule nicotinamide
    .venv/bin/python scripts/results.py --protocol thermal-augmentation --molecule nicotinamide --model sf

``--designed-spec MOLECULE=SPEC`` (a spec written by `molenv design`, docs/design.md) runs
the SF-MLP steps with that spec's descriptors instead, in ``WORK/designed`` (and
``WORK/designed/<protocol>``); results.json reports them as ``designed_spec`` with the SF-MLP
of the published spec of the same protocol beside them (`molenv.results.designed`).

    .venv/bin/python scripts/results.py --designed-spec urea=docs/design/urea/spec.toml --protocol method multi-temperature

The command line lives here, in the package, next to the steps it runs
(`molenv.results.pipeline`), the collection of the numbers (`molenv.results.collect`) and
the page (`molenv.results.render`); scripts/results.py calls `main` with the repository it
is in, whose data/ and docs/ it works on.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from molenv.results.collect import DESIGNED_SPEC, collect_results
from molenv.results.designed import run_designed
from molenv.results.figures import copy_figures
from molenv.results.layout import MODELS, MOLECULES, PROTOCOLS, protocol_suffix
from molenv.results.pipeline import GNN_DEFAULTS, SF_DEFAULTS, run_molecule
from molenv.results.render import number, render_report


def build_parser(repo: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for details.")
    parser.add_argument("--protocol", nargs="+", choices=PROTOCOLS, default=["method"],
                        help="training protocols to run (default method, the paper's; multi-temperature: also the training crystals "
                             "and clusters at further temperatures, runs in WORK/multi-temperature; thermal-augmentation: the paper's "
                             "trajectories, training crystals warmed for the test temperature, in WORK/thermal-augmentation); the "
                             "report covers the runs of every protocol")
    parser.add_argument("--molecule", nargs="+", choices=MOLECULES, default=list(MOLECULES), help="molecules (default both)")
    parser.add_argument("--model", nargs="+", choices=MODELS, default=list(MODELS), help="models (default both)")
    parser.add_argument("--manifest", default="data/manifest.json", help="MD manifest, relative to the repository (default data/manifest.json)")
    parser.add_argument("--only", nargs="+", metavar="PATTERN", help="only these manifest trajectories (shell patterns; passed to featurize --only)")
    parser.add_argument("--work", default="/work/runs", help="directory for datasets, runs and logs, one folder per molecule (default /work/runs)")
    parser.add_argument("--docs", help="directory for results.md, results.json and results/*.png (default docs/, with --quick WORK/docs)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset and runs of the molecule; only run the missing steps")
    parser.add_argument("--update-dataset", action="store_true",
                        help="featurize again (e.g. after new test trajectories); keep trained runs whose training and validation frames are unchanged and evaluate them again")
    parser.add_argument("--designed-spec", action="append", default=[], metavar="MOLECULE=SPEC",
                        help="run the SF-MLP steps with the descriptors of SPEC (a `molenv design` spec.toml) in WORK/designed instead of the "
                             "runs of --model; results.json reports them as designed_spec next to the published spec's (repeatable)")
    parser.add_argument("--reference", default=os.environ.get("MOLENV_REFERENCE", "../shared/reference"),
                        help="folder of the original authors' files (<molecule>/sf_mlp_weights_molstruc.txt, sf_input_molstruc.dat), relative to the "
                             "repository: their published SF-MLP is evaluated on our SF-MLP's test molecules (default $MOLENV_REFERENCE or ../shared/reference; "
                             "skipped where absent)")
    parser.add_argument("--report-only", action="store_true", help="run nothing; write the documents from the runs in --work")
    parser.add_argument("--quick", action="store_true", help="smoke test: every 10th frame, 5 SF epochs, 1 GNN epoch, 100-point t-SNE")
    parser.add_argument("--no-diagnostics", action="store_true", help="leave out the GNN cluster diagnostics (a forward pass over the cluster frames)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the steps (default 10; 0: not niced)")
    parser.add_argument("--tsne-samples", type=int, default=1000, help="molecules per t-SNE map (default 1000)")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the copied PNGs (default 100)")
    parser.add_argument("--notes", default=str(repo / "docs" / "results_notes.md"),
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
    return parser


def main(argv: list[str] | None = None, *, repo: str | Path) -> int:
    """scripts/results.py: run the steps that `argv` asks for, then write the documents
    from every run in --work. `repo`: the repository (data/, docs/, py/)."""
    repo = Path(repo)
    parser = build_parser(repo)
    args = parser.parse_args(argv)
    work = Path(args.work)
    if args.quick and args.work == parser.get_default("work"):
        work = Path(args.work) / "quick"
        args.work = str(work)
    docs = Path(args.docs) if args.docs else (work / "docs" if args.quick else repo / "docs")

    designed = {}
    for item in args.designed_spec:
        molecule, sep, spec = item.partition("=")
        if not sep or molecule not in MOLECULES or not spec:
            parser.error(f"--designed-spec {item!r}: expected MOLECULE=SPEC with MOLECULE one of {', '.join(MOLECULES)}")
        designed[molecule] = str(Path(spec).resolve())
    if not args.report_only:
        for protocol in args.protocol:
            for molecule, spec in designed.items():
                run_designed(molecule, spec, args, protocol, repo)
            for molecule in [] if designed else args.molecule:
                run_molecule(molecule, args.model, args, protocol, repo)
    if args.dry_run:
        return 0

    results = collect_results(args.work, repo / args.manifest, repo / "data", diagnostics=not args.no_diagnostics)
    if not any(results.runs.values()):
        raise SystemExit(f"{work}: no runs to report")
    figure_dir = docs / "results"
    figures = {}
    for protocol, collected in results.runs.items():
        # the paper protocol's figures all; the other protocols' polymorph confusion matrix only
        figures.update(copy_figures(collected, figure_dir, args.dpi, protocol_suffix(protocol), None if protocol == "method" else ("confusion_polymorph",)))
    notes = Path(args.notes).read_text() if args.notes and Path(args.notes).is_file() else None
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "results.json").write_text(json.dumps(results.numbers, indent=1) + "\n")
    (docs / "results.md").write_text(render_report(results, figures, os.path.relpath(figure_dir, docs), notes))
    print(f"wrote {docs / 'results.md'}, {docs / 'results.json'} and {sum(map(len, figures.values()))} figures in {figure_dir}")
    for molecule, r in results.numbers.items():
        if molecule == DESIGNED_SPEC:
            for m, by_protocol in r.items():
                for key, v in by_protocol.items():
                    print(f"  {m} {key} on the designed spec: polymorph {number(v['f1_polymorph'], 4)} (published spec {number(v['f1_polymorph_published_spec'], 4)})")
            continue
        for model, v in r.items():
            print(f"  {molecule} {model}: polymorph {number(v['f1_polymorph'], 4)}" + (f", topology {number(v['f1_topology'], 4)}" if "f1_topology" in v else ""))
    return 0
