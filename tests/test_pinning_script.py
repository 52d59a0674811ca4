"""scripts/pinning.py --system I-melt on made-up windows: `analyse` with --discard auto leaves
out the drift of a window and finds the dmu that was put in, `archive` copies what the analysis
reads, and `melting-point` on the copy finds the zero of dmu(T)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _pinning_support import write_bulk_run, write_colvar

REPO = Path(__file__).resolve().parent.parent
KAPPA, ALPHA = 0.05, 0.8


def window(work: Path, temperature: float, at: int, dmu: float, seed: int, tag: str = "") -> None:
    """A pin-<at> (pin-<at>-<tag>) window of scripts/pinning.py's layout (`write_colvar`)."""
    run = work / f"{temperature:g}K"
    name = f"pin-{at}-{tag}" if tag else f"pin-{at}"
    write_colvar(run / name / "plumed" / "COLVAR", at, dmu, KAPPA, ALPHA, seed)
    (run / f"{name}.json").write_text(json.dumps({"at": at, "kappa": KAPPA, "alpha": ALPHA, "column": "cls.n_I", "system": "I-melt",
                                                     "temperature": temperature}))


def pinning(*args: str, work: Path) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "pinning.py"), "--system", "I-melt", "--work", str(work), *args],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_analyse_archive_and_melting_point(tmp_path):
    work = tmp_path / "work"
    # dmu = mu_melt - mu_I = s (T_m - T) with T_m = 350 K: the crystal grows below 350 K
    for k, temperature in enumerate((330.0, 370.0)):
        window(work, temperature, 130, 0.05 * (350 - temperature), seed=k)
        # the bulk runs (mean box, molecules, logged energies): 160 urea molecules, the melt 2 % smaller and
        # 17.5 kJ/mol per molecule higher in energy, the enthalpy of melting of dmu's slope (0.05 kJ/mol/K x 350 K)
        for run, edge, energy in (("lattice", 22.3, -353.0), ("bulk-melt", 22.3 * 0.98 ** 0.5, -353.0 + 17.5)):
            write_bulk_run(work / f"{temperature:g}K" / run, 160, energy, seed=k, mean_box=[edge, edge, 23.5, 90, 90, 90])
    for temperature in ("330", "370"):
        out = pinning("--temperature", temperature, "--discard", "auto", "analyse", "--figure", str(tmp_path / f"{temperature}.png"), work=work)
        assert "still drifting" not in out
        summary = json.loads((work / f"{temperature}K" / "summary.json").read_text())
        (window_summary,) = summary["windows"]
        assert window_summary["time_ps"][0] >= 180  # the drift is left out
        assert summary["discard_ps"] == "auto"
        assert abs(summary["delta_mu_kJ_mol"] - 0.05 * (350 - float(temperature))) < 0.05
        assert (tmp_path / f"{temperature}.png").stat().st_size > 0
        # 160 x 60.06 g/mol in 22.3 x 22.3 x 23.5 A^3
        assert abs(summary["density_crystal_g_cm3"] - 1.365) < 0.001 and abs(summary["density_melt_g_cm3"] / summary["density_crystal_g_cm3"] - 1 / 0.98) < 1e-3
        # Gibbs-Helmholtz: T_m from this temperature alone
        assert abs(summary["enthalpy_of_melting_kJ_mol"] - 17.5) < 0.2 and abs(summary["melting_point_K"] - 350) < 3
        assert "from this temperature (Gibbs-Helmholtz)" in out
    # a fixed 20 ps keeps most of the drift: dmu comes out too small
    auto = json.loads((work / "330K" / "summary.json").read_text())["delta_mu_kJ_mol"]
    pinning("--temperature", "330", "--discard", "20", "analyse", "--figure", str(tmp_path / "fixed.png"), work=work)
    assert json.loads((work / "330K" / "summary.json").read_text())["delta_mu_kJ_mol"] < auto - 0.1
    pinning("--temperature", "330", "--discard", "auto", "analyse", "--figure", str(tmp_path / "330.png"), work=work)

    copy = tmp_path / "archive"
    pinning("archive", "--to", str(copy), work=work)
    assert (copy / "330K" / "pin-130" / "plumed" / "COLVAR").is_file() and (copy / "370K" / "summary.json").is_file()
    assert (copy / "370K" / "bulk-melt" / "run.log").is_file()  # the enthalpy of melting, analysed again from the copy
    out = pinning("melting-point", "--figure", str(tmp_path / "tm.png"), work=copy)
    assert abs(json.loads((copy / "melting_point.json").read_text())["melting_point_K"] - 350) < 2
    assert "melting point T_m" in out
    fit = json.loads((copy / "melting_point.json").read_text())
    assert abs(fit["from_enthalpy"]["melting_point_K"] - 350) < 2 and fit["from_enthalpy"]["temperatures"] == [330.0, 370.0]
    assert "melting point from the enthalpy of melting: T_m = " in out
    # Clausius-Clapeyron: dv = -2 % of 60.06 / 1.365 cm3/mol, ds = dh / T_m = 50 J/mol/K -> dT_m/dP = dv / ds, negative: the melt is denser
    dv = 60.06 / 1.365 * (0.98 - 1)
    entropy = 1000 * np.mean(fit["from_enthalpy"]["enthalpies_of_melting_kJ_mol"]) / fit["from_enthalpy"]["melting_point_K"]
    assert abs(entropy - 50) < 1
    assert abs(fit["volume_of_melting_cm3_mol"] - dv) < 0.02 and abs(fit["clapeyron_K_per_kbar"] - dv * 100 / entropy) < 0.05
    assert "the melt is denser than the crystal" in out


def test_analyse_reads_scans_from_both_sides_together(tmp_path):
    """Windows of `run --chain --tag down` and `--tag up` in one work directory: `analyse
    --layer` fits them all and reports, centre by centre, whether the two scans agree."""
    work = tmp_path / "work"
    for k, at in enumerate((100, 108, 116, 124)):
        window(work, 360.0, at, -0.4, seed=k, tag="down")
        window(work, 360.0, at, -0.4 if at < 124 else 0.6, seed=10 + k, tag="up")
    out = pinning("--temperature", "360", "--discard", "auto", "analyse", "--layer", "32", "--figure", str(tmp_path / "both.png"), work=work)
    summary = json.loads((work / "360K" / "summary.json").read_text())
    assert len(summary["windows"]) == 8 and [g["agree"] for g in summary["hysteresis"]] == [True, True, True, False]
    assert summary["hysteresis"][-1]["windows"] == ["pin-124-down", "pin-124-up"]
    assert "4 centre(s) with more than one window: 1 disagree beyond 3 errors" in out
    assert set(summary["scans"]) == {"down", "up"} and abs(summary["scans"]["down"]["delta_mu_kJ_mol"] + 0.4) < 0.05
    assert "the mean of the layer fits of 2 scans" in out
    assert (tmp_path / "both_layer_fit.png").stat().st_size > 0


def test_discard_is_a_time_or_auto(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "pinning.py"), "--discard", "soon", "analyse"], capture_output=True, text=True)
    assert done.returncode == 2 and "expected a time in ps or 'auto'" in done.stderr


def test_a_work_directory_holds_one_models_counts(tmp_path):
    """`same_model` refuses counts made by another model than --model (a calibration made with
    models/urea_sf.molenv must not serve a run with models/urea_sf_hot.molenv)."""
    import importlib.util

    import pytest

    spec = importlib.util.spec_from_file_location("pinning_script", REPO / "scripts" / "pinning.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    populations = tmp_path / "populations.dat"
    populations.write_text("#! FIELDS time frame nmol n_I\n# classified by SF model urea_sf.molenv (urea SF-MLP)\n0 0 160 150\n")
    script.same_model(populations, REPO / "models" / "urea_sf.molenv")
    script.same_model(tmp_path / "missing.dat", REPO / "models" / "urea_sf_hot.molenv")
    with pytest.raises(SystemExit, match="use another --work"):
        script.same_model(populations, REPO / "models" / "urea_sf_hot.molenv")
