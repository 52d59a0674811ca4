"""Train a classifier on a dataset of `molenv featurize` (sub-commands sf and gnn).

`molenv train sf` trains the symmetry-function MLP, exported as a model file for
MOLENV_CLASSIFY; `molenv train gnn` the graph network, exported as TorchScript.

  molenv train sf datasets/urea --out runs/urea-sf
  molenv train gnn datasets/urea --out runs/urea-gnn

`molenv train sf --help` and `molenv train gnn --help` list the options.

--out is locked while a training runs in it (`molenv.runlock`: a second training on the
same --out is refused at once, naming the one running), and a directory that holds a
training (finished, stopped or killed) is refused unless --overwrite discards it; a
stopped fit continues into a new --out with --resume (docs/training.md).
"""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

# sub-command -> module with add_arguments(parser) and run(args)
MODELS = {"sf": "molenv.sf.cli", "gnn": "molenv.gnn.cli"}
# what a training writes into --out (`--overwrite` removes these, nothing else)
TRAINING_OUTPUTS = ("checkpoints", "logs", "train_config.json", "model.molenv", "model.pt")
# environment variables that give a process's rank in a multi-process (DDP) training
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, module_name in MODELS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.add_argument("--overwrite", action="store_true",
                       help="discard the training already in --out (its checkpoints, logs, train_config.json and model file; nothing else)")
        p.set_defaults(train_run=module.run)


def _secondary_rank() -> bool:
    """A process of a multi-process training other than the first (Lightning's DDP starts the
    same command again for every further device): the first one holds the lock."""
    for name in RANK_VARIABLES:
        try:
            if int(os.environ.get(name, "0")) > 0:
                return True
        except ValueError:
            continue
    return False


def training_state(out: Path) -> str | None:
    """What --out holds: None (no training), "finished" (train_config.json written) or
    "stopped" (checkpoints or logs without train_config.json: stopped, killed or failed)."""
    present = [name for name in TRAINING_OUTPUTS if (out / name).exists()]
    if not present:
        return None
    return "finished" if "train_config.json" in present else "stopped"


def _prepare(args: argparse.Namespace, out: Path) -> None:
    """Refuse an --out holding a training unless --overwrite, which removes its outputs."""
    from molenv.cli import CommandError

    state = training_state(out)
    if state is None:
        return
    if not args.overwrite:
        hint = ""
        # gnn fits from before last.ckpt have best.ckpt only
        names = ["last.ckpt"] + (["best.ckpt"] if args.model == "gnn" else [])
        last = next((out / "checkpoints" / n for n in names if (out / "checkpoints" / n).is_file()), None)
        if last is not None:
            hint = f"; to continue it, give --resume {last} and a new --out"
        what = "a finished training (train_config.json)" if state == "finished" else "a training that did not finish (checkpoints or logs, no train_config.json)"
        raise CommandError(f"{out} holds {what}{hint}; use --overwrite to discard it, or another --out")
    discard_training(out)


def discard_training(out: Path) -> bool:
    """Remove the outputs of a training in `out` (`TRAINING_OUTPUTS`, nothing else); whether there were any."""
    import shutil

    found = False
    for name in TRAINING_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        found = True
    return found


def run(args: argparse.Namespace) -> int:
    import shlex

    from molenv.cli import CommandError
    from molenv.runlock import DirectoryLock

    if _secondary_rank():
        return args.train_run(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: exists and is not a directory")
    for option in ("resume", "init_from"):
        start = getattr(args, option, None)
        if start and Path(start).resolve().is_relative_to(out.resolve()):
            raise CommandError(f"--{option.replace('_', '-')} {start} lies in --out {out}: write the new fit to another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(getattr(args, "command_line", None) or []) or None
    try:
        with DirectoryLock(out, command=command, what="training directory"):
            _prepare(args, out)
            return args.train_run(args)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # failed before writing anything: leave no empty --out behind
        raise
