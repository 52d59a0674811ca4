"""Where the runs of the accuracy table are, and what they are called.

A protocol's runs are in ``WORK`` (the paper's protocol) or ``WORK/<protocol>``, one folder
per molecule: ``dataset/`` (`molenv featurize`), ``sf/`` and ``gnn/`` (`molenv train`, with
``eval-test/`` and ``eval-val/`` of `molenv evaluate`) and ``steps.json``, the record of the
steps that made them (`molenv.results.pipeline.Runner`).
"""
from __future__ import annotations

import json
from pathlib import Path

MOLECULES = ("urea", "nicotinamide")
MODELS = ("sf", "gnn")

# method: the paper's (METHOD.md §4): crystals at the lowest training temperature + the melt.
# multi-temperature: not the paper's: every training trajectory of the MD manifest, crystals
# and clusters at further training temperatures included; the same test split
# (molenv.protocols selects the trajectories).
# thermal-augmentation: not the paper's: the paper's trajectories, the training crystals with
# warmed copies for the test temperature (`molenv featurize --augment-temperature`,
# molenv.augment), and the training clusters too where the test has clusters (urea:
# --augment-clusters); the same test split.
PROTOCOLS = ("method", "multi-temperature", "thermal-augmentation")
# the protocols that train on the paper's trajectories only
PAPER_TRAJECTORIES = ("method", "thermal-augmentation")


def protocol_suffix(protocol: str) -> str:
    """Key suffix in results.json and figure names: '' for the paper protocol."""
    return "" if protocol == "method" else "_" + protocol.replace("-", "_")


def protocol_work(work: str | Path, protocol: str) -> Path:
    """Where a protocol's molecule folders are: WORK (paper protocol), WORK/<protocol>."""
    return Path(work) if protocol == "method" else Path(work) / protocol


def read_json(path: Path):
    """The content of a JSON file of a run, None where the run has not written it (yet)."""
    return json.loads(path.read_text()) if path.is_file() else None
