"""scripts/expansion_check.py on the committed urea crystals: the strain it measures between
two runs, and its table for the committed urea SF-MLP (100 K -> 200 K)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="module")
def expansion_check():
    import expansion_check

    if not (REPO / "data" / "urea" / "urea-I-200K.xtc").is_file():
        pytest.skip("no urea MD data")
    return expansion_check


def test_linear_strain_of_a_stretched_run(expansion_check):
    from molenv.augment import expanded

    cold = expansion_check.frames(expansion_check.crystals("urea", 100.0)["I"], 10)
    assert expansion_check.linear_strain([expanded(f, 0.02) for f in cold], cold) == pytest.approx(0.02, abs=1e-12)
    assert expansion_check.linear_strain(cold, cold) == 0.0


def test_table_for_the_committed_urea_model(expansion_check, capsys):
    assert expansion_check.main(["--molecule", "urea", "--warm", "200", "--step", "10", "--model", str(REPO / "models" / "urea_sf.molenv")]) == 0
    out = capsys.readouterr().out
    rows = {m[0]: (float(m[1]), float(m[2]), float(m[3])) for m in re.findall(r"^\| (I|IV) \| ([-\d.]+) % \| ([\d.]+) \| ([\d.]+) \|$", out, re.M)}
    assert set(rows) == {"I", "IV"}
    for strain, as_is, scaled_back in rows.values():
        assert 0 < strain < 3  # per cent: urea's crystals lengthen a little between 100 and 200 K
        assert as_is >= 0.95 and scaled_back >= 0.95  # the committed model reads the 200 K crystals either way
    assert re.search(r"^\| mean of the forms \| \| [\d.]+ \| [\d.]+ \|$", out, re.M)
