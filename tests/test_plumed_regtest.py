"""The PLUMED regression tests (regtest/rt-*) from pytest, and a check that their
comparison really reports differences (file, line, column, values, tolerance)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from compare import compare_files  # noqa: E402
from run import run_test  # noqa: E402

TESTS = sorted(d.name for d in REGTEST.glob("rt-*") if (d / "config").exists())


def test_there_are_regression_tests():
    assert {"rt-ortho-nm", "rt-ortho-A", "rt-triclinic", "rt-region", "rt-nopbc", "rt-forces", "rt-gnn"} <= set(TESTS)


@pytest.mark.parametrize("name", TESTS)
def test_regression(name, plumed_module):
    problems = run_test(REGTEST / name, plumed_module)
    assert not problems, "\n".join(problems)


def test_compare_reports_differences(tmp_path):
    ref = REGTEST / "rt-ortho-A" / "colvar_c.reference"
    lines = ref.read_text().splitlines()
    fields = lines[0].split()[2:]
    row = lines[2].split()
    row[4] = repr(float(row[4]) * (1 + 1e-7))  # f_A? column 5 of the second data line
    lines[2] = " " + " ".join(row)
    out = tmp_path / "colvar_c"
    out.write_text("\n".join(lines) + "\n")
    problems = compare_files(out, ref, rtol=1e-9, atol=1e-11)
    assert len(problems) == 1
    assert f"{out}:3 column 5 ({fields[4]}):" in problems[0] and "tolerance" in problems[0]
    assert compare_files(ref, ref) == []
    assert "missing" in compare_files(tmp_path / "nothing", ref)[0]
