"""Shared fixtures: the reference folder (skip where absent) and the PLUMED runner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference; tests that need it are skipped with a message where it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE to its location)")
    return REFERENCE


@pytest.fixture(scope="session")
def plumed_module() -> Path:
    """Absolute path of the compiled MOLENV_CLASSIFY module (built by `make module`)."""
    from molenv.plumed_env import module_path

    return module_path()
