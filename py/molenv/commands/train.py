"""Train a classifier on a dataset of `molenv featurize` (sub-commands sf and gnn).

`molenv train sf` trains the symmetry-function MLP, exported as a model file for
MOLENV_CLASSIFY; `molenv train gnn` the graph network, exported as TorchScript.

  molenv train sf datasets/urea --out runs/urea-sf
  molenv train gnn datasets/urea --out runs/urea-gnn

`molenv train sf --help` and `molenv train gnn --help` list the options.
"""
from __future__ import annotations

import argparse
import importlib

# sub-command -> module with add_arguments(parser) and run(args)
MODELS = {"sf": "molenv.sf.cli", "gnn": "molenv.gnn.cli"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, module_name in MODELS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(train_run=module.run)


def run(args: argparse.Namespace) -> int:
    return args.train_run(args)
