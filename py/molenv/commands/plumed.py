"""Run the PLUMED command-line tool (e.g. `molenv plumed driver ...`) with the environment
the kernel that MOLENV_CLASSIFY was compiled against needs.

Everything after `plumed` is passed to PLUMED unchanged."""
import argparse


def add_arguments(parser):
    parser.add_argument("plumed_args", nargs=argparse.REMAINDER, help="arguments for plumed")


def passthrough(plumed_args: list[str]) -> int:
    from molenv.plumed_env import run_plumed

    return run_plumed(plumed_args).returncode


def run(args):
    return passthrough(args.plumed_args)
