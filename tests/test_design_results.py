"""results.json's designed_spec (molenv.results.designed): the SF-MLP of a designed spec in
WORK/designed reported next to the SF-MLP of the published spec (made-up evaluations of a
real dataset manifest, as tests/test_results.py), and the steps --designed-spec runs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from test_results import NICOTINAMIDE_ENTRIES, fake_head, results_script

from molenv.evaluate import evaluate_outputs


def test_designed_spec_in_results(urea_md_dataset, tmp_path):
    rng = np.random.default_rng(2)
    work, docs = tmp_path / "work", tmp_path / "docs"
    classes = urea_md_dataset.classes
    y = rng.integers(0, len(classes), 200)
    for base, errors in ((work, 10), (work / "designed", 4)):
        shutil.copytree(urea_md_dataset.path, base / "urea" / "dataset")
        evaluate_outputs(base / "urea" / "sf" / "eval-test", [fake_head("polymorph", classes, y, errors, rng)], {"descriptors": rng.normal(size=(200, 4))},
                         tsne_samples=0, plots=False)
        (base / "urea" / "sf" / "train_config.json").write_text(json.dumps({"config": {"max_epochs": 500, "patience": 30}, "epochs": 40}))
    assert results_script(["--report-only", "--molecule", "urea", "--work", str(work), "--docs", str(docs)]) == 0
    results = json.loads((docs / "results.json").read_text())
    assert set(results) == {"urea", "designed_spec"}
    designed = results["designed_spec"]["urea"]["sf"]
    assert designed["f1_polymorph"] == pytest.approx(0.98) and designed["f1_polymorph_published_spec"] == pytest.approx(0.95)
    assert designed["protocol"] == "method" and designed["n_functions"] == urea_md_dataset.descriptor_set.n_features
    assert results["urea"]["sf"]["f1_polymorph"] == pytest.approx(0.95)  # the published spec's run stays where it was
    text = (docs / "results.md").read_text()
    assert "## Designed descriptors" in text and "| urea | method | 24 | 10 | **0.980** | 0.950 | +0.030 |" in text


def test_designed_spec_commands(tmp_path, capsys):
    """--dry-run: featurize with the designed spec in WORK/designed, then the SF steps only."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"trajectories": NICOTINAMIDE_ENTRIES}))
    spec = tmp_path / "spec.toml"
    argv = ["--dry-run", "--designed-spec", f"nicotinamide={spec}", "--manifest", str(manifest), "--work", str(tmp_path / "work")]
    assert results_script(argv) == 0
    steps = [l for l in capsys.readouterr().out.splitlines() if l.startswith("[")]
    assert [l.split("] ")[1].split(":")[0] for l in steps] == ["featurize", "train_sf", "evaluate_sf", "evaluate_sf_val"]
    assert f"--molecule {spec} --out {tmp_path}/work/designed/nicotinamide/dataset" in steps[0]
    assert "--name nicotinamide-sf-designed" in steps[1]
    with pytest.raises(SystemExit):
        results_script(["--dry-run", "--designed-spec", "water=x.toml", "--work", str(tmp_path / "work")])
