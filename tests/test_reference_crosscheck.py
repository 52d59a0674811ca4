"""Standing cross-check of our committed MD data with the original authors' SF models
(Kuroshima et al. 2024, imported from ../shared/reference): their models, trained on their
LAMMPS data, must recognise our training systems. A failure here means our data (labelling of
equivalent atoms, force field, density) differ from the method's, whatever our own models say.
Table of every crystal and melt: scripts/reference_crosscheck.py (data/crosscheck.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

pytestmark = pytest.mark.reference


def entries(names):
    manifest = json.loads((REPO / "data" / "manifest.json").read_text())
    found = {e["name"]: e for e in manifest["trajectories"] if e["name"] in names}
    missing = [n for n in names if n not in found]
    if missing:
        pytest.skip(f"not in data/manifest.json: {', '.join(missing)}")
    return [found[n] for n in names]


@pytest.mark.parametrize("name, minimum", [("urea-I-100K", 0.95), ("urea-IV-100K", 0.95), ("urea-melt-350K", 0.90)])
def test_authors_model_recognises_our_urea(reference_dir, name, minimum):
    from reference_crosscheck import crosscheck

    (row,) = crosscheck(entries([name]), step=4, progress=lambda line: None)
    assert row["fraction"] >= minimum, f"{name}: the authors' model calls {row['fraction']:.3f} {row['label']} (predicted {row['predicted']})"


def test_authors_model_recognises_our_nicotinamide_crystals(reference_dir):
    from reference_crosscheck import crosscheck

    forms = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")
    rows = crosscheck(entries([f"nicotinamide-{f}-100K" for f in forms]), step=4, progress=lambda line: None)
    mean = np.mean([r["fraction"] for r in rows])
    assert mean >= 0.97, "; ".join(f"{r['name']} {r['fraction']:.3f}" for r in rows)


@pytest.mark.parametrize("name", ["urea-I-cluster-100K", "urea-IV-cluster-100K"])
def test_authors_model_recognises_the_inner_core_of_our_cold_urea_clusters(reference_dir, name):
    """A bulk model judges only a cluster's inner core (molecules with a complete descriptor
    sphere): at 100 K it is still the cluster's form (the warm 200 K clusters' is not,
    data/crosscheck.md)."""
    from reference_crosscheck import crosscheck

    (row,) = crosscheck(entries([name]), step=4, progress=lambda line: None)
    assert row["molecules"] == "inner core" and 5 <= row["n_molecules"] / row["n_frames"] <= 15
    assert row["fraction"] >= 0.9, f"{name}: the authors' model calls {row['fraction']:.3f} {row['label']} (predicted {row['predicted']})"
