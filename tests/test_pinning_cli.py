"""`molenv pinning`: dmu from made-up windows whose answer is known, the bias read from the
windows' PLUMED inputs or given on the command line, T_m from two temperatures, and clear
errors for inputs that do not describe a pinning window."""
from __future__ import annotations

import json

import pytest
from _analysis_support import run_cli_output
from _pinning_support import write_bulk_run, write_colvar

from molenv.plumed.inputs import PlumedInputError, restraints

KAPPA, ALPHA = 0.05, 0.8


def pinning_input(path, at, kappa=KAPPA, extra=""):
    path.write_text(f"cls: MOLENV_CLASSIFY MODEL=m.molenv MOLECULES=@mdatoms\n"
                    f"pin: RESTRAINT ...\n   ARG=cls.n_I AT={at} KAPPA={kappa} {extra}\n...\nPRINT ARG=cls.n_I FILE=COLVAR\n")
    return path


def test_restraints_of_a_plumed_input(tmp_path):
    (r,) = restraints(pinning_input(tmp_path / "plumed.dat", 109))
    assert (r.label, r.arg, r.at, r.kappa) == ("pin", "cls.n_I", 109.0, KAPPA)
    for bad, message in (("ARG=a,b AT=1,2 KAPPA=1,1", "2 arguments"), ("ARG=a KAPPA=1", "without AT"),
                         ("ARG=a AT=1 KAPPA=1 SLOPE=2", "no SLOPE"), ("ARG=a AT=x KAPPA=1", "must be numbers")):
        (tmp_path / "bad.dat").write_text(f"RESTRAINT {bad}\n")
        with pytest.raises(PlumedInputError, match=message):
            restraints(tmp_path / "bad.dat")


def test_analyse_and_melting_point(tmp_path, capsys):
    # dmu = mu_melt - mu_crystal = 0.04 (T_m - T) with T_m = 380 K; two windows at 360 K
    outs = {}
    for temperature, centres in ((360.0, (150, 118)), (400.0, (109,))):
        dmu = 0.04 * (380 - temperature)
        colvars = [str(write_colvar(tmp_path / f"{temperature:g}" / f"pin-{a}.colvar", a, dmu, KAPPA, ALPHA, seed=a)) for a in centres]
        inputs = [str(pinning_input(tmp_path / f"{temperature:g}" / f"pin-{a}.dat", a)) for a in centres]
        outs[temperature] = tmp_path / f"out-{temperature:g}"
        code, out, err = run_cli_output(capsys, "pinning", "analyse", *colvars, "--plumed", *inputs, "--alpha", ALPHA,
                                        "--temperature", temperature, "--out", outs[temperature])
        assert code == 0, err
        result = json.loads((outs[temperature] / "summary.json").read_text())
        assert result["temperature"] == temperature and result["discard_ps"] == "auto" and len(result["windows"]) == len(centres)
        assert result["delta_mu_kJ_mol"] == pytest.approx(dmu, abs=0.03)
        for window in result["windows"]:
            assert window["time_ps"][0] >= 180 and not window["drifting"]  # the 200 ps drift is left out
        assert (outs[temperature] / "windows.png").stat().st_size > 0
        assert "still drifting" not in out
    # the same window with the bias given by hand and a fixed discard: the drift stays in
    colvar = tmp_path / "400" / "pin-109.colvar"
    code, out, _ = run_cli_output(capsys, "pinning", "analyse", colvar, "--column", "cls.n_I", "--at", 109, "--kappa", KAPPA,
                                  "--alpha", ALPHA, "--discard", 20, "--out", tmp_path / "fixed", "--no-plot")
    assert code == 0 and not (tmp_path / "fixed" / "windows.png").exists()
    fixed = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert fixed["delta_mu_kJ_mol"] > json.loads((outs[400.0] / "summary.json").read_text())["delta_mu_kJ_mol"] + 0.1

    code, out, err = run_cli_output(capsys, "pinning", "melting-point", outs[360.0], outs[400.0] / "summary.json", "--experiment", 406,
                                    "--out", tmp_path / "tm")
    assert code == 0, err
    assert json.loads((tmp_path / "tm" / "melting_point.json").read_text())["melting_point_K"] == pytest.approx(380, abs=3)
    assert "melting point T_m" in out and (tmp_path / "tm" / "melting_point.png").is_file()

    # one temperature with the bulk runs: the enthalpy of melting (0.04 kJ/mol/K x 380 K = 15.2) gives T_m alone
    crystal, melt = write_bulk_run(tmp_path / "crystal", 160, -353.0, seed=1), write_bulk_run(tmp_path / "melt", 320, -353.0 + 15.2, seed=2)
    code, out, err = run_cli_output(capsys, "pinning", "analyse", *colvars, "--plumed", *inputs, "--alpha", ALPHA, "--temperature", 400,
                                    "--bulk", crystal, melt, "--out", tmp_path / "bulk", "--no-plot")
    assert code == 0, err
    result = json.loads((tmp_path / "bulk" / "summary.json").read_text())
    assert result["enthalpy_of_melting_kJ_mol"] == pytest.approx(15.2, abs=0.2) and result["melting_point_K"] == pytest.approx(380, abs=4)
    code, out, err = run_cli_output(capsys, "pinning", "melting-point", tmp_path / "bulk", "--out", tmp_path / "tm1")
    assert code == 0, err
    assert json.loads((tmp_path / "tm1" / "melting_point.json").read_text())["from_enthalpy"]["melting_point_K"] == pytest.approx(380, abs=4)
    assert "T_m = " in out and not (tmp_path / "tm1" / "melting_point.png").exists()  # no line through one point


def test_errors_name_the_problem(tmp_path, capsys):
    colvar = write_colvar(tmp_path / "w.colvar", 100, -1.0, KAPPA, ALPHA, seed=0)
    plumed = pinning_input(tmp_path / "pin.dat", 100)
    (tmp_path / "none.dat").write_text("PRINT ARG=x FILE=COLVAR\n")
    (tmp_path / "plain.json").write_text("{}")
    cases = [
        (("analyse", colvar), "give each window's bias with --plumed, or --column, --at, --kappa"),
        (("analyse", colvar, colvar, "--plumed", plumed), "--plumed names 1 input(s) for 2 COLVAR(s)"),
        (("analyse", colvar, "--plumed", plumed, "--at", 3), "not both"),
        (("analyse", colvar, "--plumed", tmp_path / "none.dat"), "0 RESTRAINT actions"),
        (("analyse", colvar, "--column", "cls.n_X", "--at", 1, "--kappa", 1), "no column 'cls.n_X'"),
        (("analyse", tmp_path / "missing", "--column", "c", "--at", 1, "--kappa", 1), "COLVAR not found"),
        (("analyse", colvar, "--plumed", plumed, "--alpha", 2), "must be in (0, 1]"),
        (("melting-point", tmp_path / "plain.json", tmp_path / "plain.json"), "not a summary of `molenv pinning analyse`"),
        (("analyse", colvar, "--plumed", plumed, "--bulk", tmp_path, tmp_path), "--bulk needs --temperature"),
        (("analyse", colvar, "--plumed", plumed, "--temperature", 400, "--bulk", tmp_path, tmp_path), "not a finished `molenv simulate` run"),
    ]
    for args, message in cases:
        code, _, err = run_cli_output(capsys, "pinning", *args, "--out", tmp_path / "out")
        assert code == 2 and message in err, (args, err)
    code, _, err = run_cli_output(capsys, "pinning", "analyse", colvar, "--plumed", plumed, "--discard", "soon")
    assert code == 2 and "expected a time in ps or 'auto'" in err


def test_analyse_with_a_layer_fit(tmp_path, capsys):
    """--layer: the windows' mean forces fitted periodic in one layer (4 windows: one harmonic);
    with no layer term in the made-up windows the constant is the dmu put in; 3 windows are
    too few for the fit."""
    centres, dmu = (100, 108, 116, 124), -0.4
    colvars = [str(write_colvar(tmp_path / f"pin-{a}.colvar", a, dmu, KAPPA, ALPHA, seed=a)) for a in centres]
    inputs = [str(pinning_input(tmp_path / f"pin-{a}.dat", a)) for a in centres]
    code, out, err = run_cli_output(capsys, "pinning", "analyse", *colvars, "--plumed", *inputs, "--alpha", ALPHA, "--layer", 32,
                                    "--out", tmp_path / "layer")
    assert code == 0, err
    result = json.loads((tmp_path / "layer" / "summary.json").read_text())
    assert result["layer_fit"]["harmonics"] == 1 and result["layer_fit"]["degrees_of_freedom"] == 1
    assert result["delta_mu_kJ_mol"] == pytest.approx(dmu, abs=0.05) and result["window_mean_kJ_mol"] == pytest.approx(dmu, abs=0.03)
    assert "periodic in one layer (32 molecules, 1 harmonic(s))" in out and (tmp_path / "layer" / "layer_fit.png").stat().st_size > 0
    code, _, err = run_cli_output(capsys, "pinning", "analyse", *colvars[:3], "--plumed", *inputs[:3], "--alpha", ALPHA, "--layer", 32,
                                  "--out", tmp_path / "three")
    assert code == 2 and "3 windows for 3 parameters: a layer fit with 1 harmonic(s) needs 4 windows" in err
