"""`molenv design` (molenv.design): a design from a few frames of the committed urea MD
data with a small candidate pool writes a spec that featurize accepts, and is the same
design when run again with the same seed; the stand-in samples of crystal structures; bad
input refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REFERENCE, REPO
from test_faults import molenv_exit

from molenv.design import DesignError, PoolSettings, SelectionSettings, design_descriptors
from molenv.design.geometry import equivalent_atoms
from molenv.spec import load_spec

DATA = REPO / "data" / "urea"
FORMS = {"I": "urea-I-100K", "IV": "urea-IV-100K", "melt": "urea-melt-350K"}
SMALL_POOL = PoolSettings(radial_step=1.0, radial_etas=(1.0,), kappa_step=2.0, radial_kappa_max=6.0, angular_points=5, angular_etas=(4.0,),
                          angular_kappa_max=6.0)
SMALL_SELECTION = SelectionSettings(max_functions=4, min_functions=2, max_samples=300)


def trajectories():
    if not all((DATA / f"{n}.xtc").is_file() for n in FORMS.values()):
        pytest.skip("the urea MD data (data/urea) are not there")
    return [(label, DATA / f"{n}.xtc", DATA / f"{n}.pdb.gz") for label, n in FORMS.items()]


def small_design(**options):
    return design_descriptors("urea", trajectories=trajectories(), max_frames=3, max_cutoff=7.0, pool=SMALL_POOL, selection=SMALL_SELECTION,
                              progress=False, log=lambda *a: None, **options)


def test_design_from_md_is_accepted_by_featurize_and_deterministic(tmp_path, capsys):
    first = small_design(seed=3)
    files = first.write(tmp_path / "design", command="molenv design ...", log=lambda *a: None)
    spec = load_spec(files["spec"])
    assert spec.name == "urea" and spec.atom_names == load_spec("urea").atom_names
    assert len(spec.functions) == len(first.selection.steps) <= 4 and len(spec.vectors) == 2
    assert spec.rmax == first.rc <= 7.0 and spec.rmax - spec.rmin == pytest.approx(0.2)
    assert spec.charge_sets.keys() == load_spec("urea").charge_sets.keys()  # the molecule's force-field sets travel along
    report = files["report"].read_text()
    for part in ("## Centre", "## Vectors", "## Cutoff", "## Symmetry functions", "expected accuracy", "](rdf.png)", "](angles.png)"):
        assert part in report
    assert all(files[k].stat().st_size > 1000 for k in ("rdf", "angles", "selection"))
    assert json.loads(files["summary"].read_text())["centre"] == first.chosen_centre.label
    # urea's N1 -> N2 joins the two N the bond graph cannot tell apart: it is scored and offered sign-invariant
    assert "| N1->N2 | atom pair; **sign-invariant** (cos^2): relabelling N1 <-> N2 reverses it |" in report
    scores = {v["vector"]: v for v in json.loads(files["summary"].read_text())["vector_scores"]}
    assert scores["N1->N2"]["sign_invariant"] and scores["(C->O)x(N1->N2)"]["kind"] == "normal" and scores["O->N1"]["symmetry"] == "convention"

    # the same samples and seed: the same design, function for function
    again = small_design(seed=3)
    assert again.spec_toml() == first.spec_toml()
    assert [(s.macro_f1, s.log_loss) for s in again.selection.steps] == [(s.macro_f1, s.log_loss) for s in first.selection.steps]

    # featurize takes the spec as --molecule
    code, out, err = molenv_exit(capsys, "featurize", "--molecule", files["spec"], "--out", tmp_path / "ds", "--no-progress", "--stop", "3",
                                 "--trajectory", DATA / "urea-I-100K.xtc", "--topology", DATA / "urea-I-100K.pdb.gz", "--label", "I",
                                 "--trajectory", DATA / "urea-IV-100K.xtc", "--topology", DATA / "urea-IV-100K.pdb.gz", "--label", "IV",
                                 "--split", "train")
    assert code == 0, err
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert len(manifest["descriptors"]["functions"]) == len(spec.functions)
    assert manifest["descriptors"]["rmax"] == spec.rmax


def test_stand_in_samples_from_structures(tmp_path, capsys, reference_dir):
    """--structure only: random rigid-molecule motion of the crystal supercells (reported as a
    stand-in), through the command line."""
    out = tmp_path / "design"
    code, stdout, err = molenv_exit(capsys, "design", "--molecule", "urea", "--out", out, "--no-progress", "--symmetrise", "IV=0.3",
                                    "--structure", f"I={reference_dir / 'urea' / 'formI.cif'}",
                                    "--structure", f"IV={reference_dir / 'urea' / 'formIV_approx_P1.cif'}",
                                    "--frames", "3", "--max-cutoff", "6", "--max-functions", "3", "--min-functions", "1", "--max-samples", "200",
                                    "--warm-held-out", "0.1", "3", "--expand-held-out", "0.01")
    assert code == 0, err
    assert "expected held-out macro F1" in stdout
    load_spec(out / "spec.toml")
    report = (out / "report.md").read_text()
    assert "random rigid-molecule motion (stand-in)" in report and "**Stand-in samples**" in report
    settings = json.loads((out / "design.json").read_text())["settings"]
    assert "**Warmed held-out frames**" in report and settings["warm_held_out"] == [0.1, 3.0]
    assert "**Expanded held-out frames**: every periodic held-out frame stretched by 1 %" in report and settings["expand_held_out"] == 0.01
    assert "expected accuracy on the held-out samples (warmed and expanded):" in report


def test_held_out_frames_warmed_per_form(tmp_path):
    """A mapping of widths warms the held-out frames of the forms it names only (each crystal
    by its own, the melt not at all); a label without samples is refused before any reading."""
    from molenv.design.samples import from_trajectory

    result = small_design(seed=3, warm_held_out={"I": (0.1, 3.0), "IV": (0.05, 2.0)})
    melt, held_out, _ = from_trajectory(load_spec("urea"), DATA / "urea-melt-350K.xtc", DATA / "urea-melt-350K.pdb.gz", max_frames=3,
                                        held_out_fraction=0.3)
    assert any(held_out)
    for mine, read in zip(result.forms["melt"].frames, melt):
        assert np.array_equal(mine.positions, read.positions)
    form_i, held_out, _ = from_trajectory(load_spec("urea"), DATA / "urea-I-100K.xtc", DATA / "urea-I-100K.pdb.gz", max_frames=3,
                                          held_out_fraction=0.3)
    moved = [not np.array_equal(mine.positions, read.positions) for mine, read in zip(result.forms["I"].frames, form_i)]
    assert moved == held_out
    files = result.write(tmp_path / "design", command="molenv design ...", log=lambda *a: None)
    assert json.loads(files["summary"].read_text())["settings"]["warm_held_out"] == {"I": [0.1, 3.0], "IV": [0.05, 2.0]}
    assert "I 0.1 / 3, IV 0.05 / 2; the other forms none" in files["report"].read_text()
    with pytest.raises(DesignError, match="warm_held_out names II, which no sample has"):
        design_descriptors("urea", structures=[("I", "a.cif"), ("IV", "b.cif")], warm_held_out={"II": (0.1, 3.0)})


def test_held_out_frames_expanded(tmp_path):
    """expand_held_out stretches the cells of the held-out frames only (of the forms named),
    and the report says so."""
    from molenv.design.samples import from_trajectory

    result = small_design(seed=3, expand_held_out={"I": 0.02})
    form_i, held_out, _ = from_trajectory(load_spec("urea"), DATA / "urea-I-100K.xtc", DATA / "urea-I-100K.pdb.gz", max_frames=3,
                                          held_out_fraction=0.3)
    assert any(held_out) and not all(held_out)
    for mine, read, h in zip(result.forms["I"].frames, form_i, held_out):
        assert np.allclose(mine.box[:3], read.box[:3] * (1.02 if h else 1.0))
    assert all(np.array_equal(f.box, g.box) for f, g in zip(result.forms["IV"].frames, from_trajectory(
        load_spec("urea"), DATA / "urea-IV-100K.xtc", DATA / "urea-IV-100K.pdb.gz", max_frames=3, held_out_fraction=0.3)[0]))
    files = result.write(tmp_path / "design", command="molenv design ...", log=lambda *a: None)
    assert json.loads(files["summary"].read_text())["settings"]["expand_held_out"] == {"I": 0.02}
    report = files["report"].read_text()
    assert "**Expanded held-out frames**: the periodic held-out frames of each form named stretched by I 2 %" in report
    assert "expected accuracy on the held-out samples (expanded):" in report
    with pytest.raises(DesignError, match="expand_held_out names II, which no sample has"):
        design_descriptors("urea", structures=[("I", "a.cif"), ("IV", "b.cif")], expand_held_out={"II": 0.01})


def test_equivalent_atoms():
    # urea's two N cannot be told apart by the bond graph; nicotinamide's heavy atoms all can
    urea = load_spec("urea")
    n1, n2 = urea.position("N1"), urea.position("N2")
    assert equivalent_atoms(urea) == {n1: {n2}, n2: {n1}}
    assert equivalent_atoms(load_spec("nicotinamide")) == {}


@pytest.mark.parametrize("argv, message", [
    (["--structure", "I=x.cif"], "only one label (I): a design separates forms"),
    ([], "no samples: give --structure LABEL=FILE"),
    (["--structure", "I=nothing.cif", "--structure", "IV=nothing.cif"], "nothing.cif: file not found"),
    (["--structure", "formI.cif"], "--structure 'formI.cif': expected LABEL=FILE"),
    (["--structure", "form-I=x.cif"], "the label 'form-I' must match [A-Za-z0-9_]+"),
    (["--trajectory", "I=a.xtc", "--max-frames", "1"], "argument --max-frames: expected an integer >= 2, got 1"),
    (["--structure", "I=a.cif", "--structure", "II=b.cif", "--symmetrise", "IV=0.3"], "--symmetrise names IV, which no --structure has"),
    (["--structure", "I=a.cif", "--structure", "II=b.cif", "--symmetrise", "I=-1"], "--symmetrise 'I=-1': expected LABEL=TOL"),
])
def test_bad_input(tmp_path, capsys, argv, message):
    code, _, err = molenv_exit(capsys, "design", "--molecule", "urea", "--out", tmp_path / "d", *argv)
    assert code == 2
    assert message in err.strip().splitlines()[-1]


def test_bad_molecule(tmp_path, capsys):
    code, _, err = molenv_exit(capsys, "design", "--molecule", "C1CC(", "--out", tmp_path / "d", "--structure", "I=a.cif", "--structure", "II=b.cif")
    assert code == 2 and "neither a spec (shipped: urea, nicotinamide; or a .toml file) nor a valid SMILES" in err
    with pytest.raises(DesignError, match="held_out_fraction must lie in"):
        design_descriptors("urea", structures=[("I", "a.cif"), ("II", "b.cif")], held_out_fraction=1.0)


def test_smiles_molecule():
    from molenv.design import resolve_molecule

    spec = resolve_molecule("NC(=O)N", name="urea2")
    assert spec.name == "urea2" and sorted(spec.elements) == sorted(load_spec("urea").elements) and len(spec.bonds) == 7
    assert np.all([n[0] in "CNOH" for n in spec.atom_names])
