"""Fixtures and helpers shared by the analysis tests (test_reanalyse, test_analysis,
test_classify, test_plumed_input): the reference urea model written as a molenv model file,
the committed urea MD data, running `molenv` commands in-process, and reading a PROB_FILE."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "urea"
UREA_TYPES = "1:H,2:O,3:C,4:N"  # element codes of the reference urea dump


def md_files(name: str) -> tuple[Path, Path]:
    """(trajectory, topology) of a committed urea run, e.g. 'urea-I-100K'."""
    xtc, pdb = DATA / f"{name}.xtc", DATA / f"{name}.pdb.gz"
    if not (xtc.exists() and pdb.exists()):
        pytest.skip(f"committed MD data {xtc.name} not found")
    return xtc, pdb


@pytest.fixture(scope="session")
def urea_model(reference_dir, tmp_path_factory) -> Path:
    """The reference urea SF-MLP (classes I, IV, Melt, A, B, C, III) as a molenv model file."""
    from molenv.modelfile import write_model
    from molenv.reference import shipped_reference_model

    path = tmp_path_factory.mktemp("model") / "urea_ref.molenv"
    write_model(shipped_reference_model("urea", reference_dir), path)
    return path


def run_cli(argv: list[str]) -> int:
    """Run `molenv ARGV` in this process; returns the exit code (errors print to stderr)."""
    from molenv.cli import main

    try:
        main([str(a) for a in argv])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def run_cli_output(capsys, *args) -> tuple[int, str, str]:
    """`molenv ARGS` in this process: (exit code, stdout, stderr)."""
    code = run_cli(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def urea_dataset(folder: Path, names: list[str], *, step: int = 10, also_needed: tuple[str, ...] = ()):
    """A dataset (`molenv.featurize`) of every `step`-th frame of the committed urea runs
    `names`, in `folder`/ds; skips the test where those runs (or `also_needed`) are not there."""
    from molenv.featurize import featurize, sources_from_manifest

    if not all((DATA / f"{n}.xtc").is_file() for n in [*names, *also_needed]):
        pytest.skip("the urea MD data (data/urea) are not there")
    sources = sources_from_manifest(REPO / "data" / "manifest.json", "urea", names)
    for source in sources:
        source.reader["step"] = step
    return featurize(sources, "urea", folder / "ds", progress=False, log=lambda *a: None)


def read_prob_file(path, n_molecules: int, classes: list[str]):
    """(times (F,), probabilities (F, N, K)) of a ``PROB_FILE`` of `MOLENV_CLASSIFY`
    (``#! FIELDS time mol <classes>``, N rows per written step)."""
    from molenv.analysis import read_table

    table = read_table(path)
    assert table.names == ["time", "mol", *classes], table.names
    data = table.data.reshape(-1, n_molecules, len(table.names))
    assert np.array_equal(data[:, :, 1], np.broadcast_to(np.arange(1, n_molecules + 1), data.shape[:2]))
    return data[:, 0, 0], data[:, :, 2:]
