#!/usr/bin/env python3
"""Accuracy table: train both classifiers on the MD data and write docs/results.md + .json.

The command line of `molenv.results.cli` (its docstring and ``--help`` say what it does),
run on this repository's data/ and docs/:

    .venv/bin/python scripts/results.py                  # both molecules, both models
    .venv/bin/python scripts/results.py --report-only    # rewrite the docs from the runs
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "py"))  # runs without installing molenv
from molenv.results.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(repo=REPO))
