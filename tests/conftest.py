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
    from molenv.plumed.kernel import module_path

    return module_path()


@pytest.fixture(scope="session")
def urea_md_dataset(tmp_path_factory):
    """A small dataset (`molenv featurize`) of the committed urea MD data: every 10th frame
    of forms I and IV at 100 K and 200 K, the melt and the form I cluster (skipped where
    data/ lacks them)."""
    from molenv.featurize import featurize, sources_from_manifest

    manifest = REPO / "data" / "manifest.json"
    names = ["urea-I-100K", "urea-IV-100K", "urea-melt-350K", "urea-I-200K", "urea-IV-200K", "urea-I-cluster-100K"]
    if not all((REPO / "data" / "urea" / f"{n}.xtc").is_file() for n in names):
        pytest.skip("the urea MD data (data/urea) are not there")
    sources = sources_from_manifest(manifest, "urea", names)
    for s in sources:
        s.reader["step"] = 10
    return featurize(sources, "urea", tmp_path_factory.mktemp("urea-dataset") / "ds", progress=False, log=lambda *a: None)
