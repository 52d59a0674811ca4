"""The `molenv` command line: one sub-command per module in `molenv.commands`.

Each command module has a docstring (its help), `add_arguments(parser)` and `run(args)`.
Command modules import heavy libraries (torch, MDAnalysis) inside `run`, so that
`molenv --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module in molenv.commands
COMMANDS = {
    "plumed-lib": "plumed_lib",
    "plumed": "plumed",
    "import-reference": "import_reference",
    "simulate": "simulate",
    "reanalyse": "reanalyse",
    "classify": "classify",
    "plumed-input": "plumed_input",
    "demo": "demo",
    "featurize": "featurize",
    "train": "train",
    "evaluate": "evaluate",
    "export": "export",
    "ood-calibrate": "ood_calibrate",
    "labelling": "labelling",
    "pinning": "pinning",
    "design": "design",
    "project": "project",
}


class CommandError(RuntimeError):
    """A user error: printed as `molenv <command>: error: <message>` without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molenv", description=__import__("molenv").__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"molenv {__import__('molenv').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"molenv.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    # `molenv plumed ARGS` passes everything after `plumed` to the PLUMED tool untouched
    if argv and argv[0] == "plumed":
        from molenv.commands.plumed import passthrough

        sys.exit(passthrough(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["molenv", *argv]  # provenance for the files a command writes
    try:
        result = args.run(args)
    except (CommandError, FileNotFoundError, ValueError) as err:
        parser.exit(2, f"molenv {args.command}: error: {err}\n")
    sys.exit(result or 0)
