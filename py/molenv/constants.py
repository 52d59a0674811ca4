"""Constants and tiny helpers that several layers share, so that each has one home.

Physical constants are in the units OpenMM and PLUMED use (kJ/mol, nm, ps, K).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Boltzmann's constant in kJ/mol/K (CODATA 2018, the value OpenMM and PLUMED use).
BOLTZMANN = 0.00831446261815324


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (provenance of inputs and outputs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
