#!/usr/bin/env python3
"""Interface pinning of urea with MOLENV_CLASSIFY (docs/applications.md, part 3; the method in
molenv.pinning): the form I / form IV interface (``--system I-IV``, the default) or form I and
its melt (``--system I-melt``, the melting point of the force field).

    .venv/bin/python scripts/pinning.py --temperature 200 run          # hours on one core; resumable
    .venv/bin/python scripts/pinning.py --temperature 200 analyse      # -> docs/applications/pinning_200K.png
    .venv/bin/python scripts/pinning.py --system I-melt --temperature 400 run        # one temperature of the melting point
    .venv/bin/python scripts/pinning.py --system I-melt --temperature 400 analyse    # dmu(400 K)
    .venv/bin/python scripts/pinning.py --system I-melt melting-point                # T_m from every analysed temperature
    .venv/bin/python scripts/pinning.py --system I-melt archive --to data/pinning-melt # the record to commit

The system is the paper's interface geometry (form I a along x paired with form IV b, c with
c, stacked along z, the authors' lateral box) at half its width in x: 240 form I and 360 form
IV molecules (4,800 atoms), GAFF with the authors' urea charges, NPzT (x and y fixed, so the
interface area is constant and G is linear in the number of IV molecules).

`run` makes, each in its own `molenv simulate` directory under <work>/<T>K/ (resumable: run
the same command again after an interruption):
1. `equilibrate`: the interface built and run unbiased for --equilibrate ps (NPzT, no
   minimisation, which would relax the strained form IV towards form I);
2. the bias centre a = the mean soft n_IV of the last half of the equilibration (our urea
   SF-MLP, `molenv classify`), plus the --offsets;
3. `pin-<a>`: from the last frame of the equilibration, --production ps with
   RESTRAINT ARG=cls.n_IV AT=a KAPPA=--kappa on MOLENV_CLASSIFY of every molecule (the bias
   acts from the first step; `analyse` discards the first --discard ps). --bias-stride N
   applies it every N steps with N times the force (multiple time stepping: the classifier,
   which bounds the speed on a GPU, then runs on every N-th step only).
`analyse` reads every pin-*/plumed/COLVAR: dmu = kappa (<n_IV> - a) per molecule with its
block-averaging error, the series and the block curves in one figure, and a summary JSON.

``--system I-melt``: form I and its melt stacked along z (the (001) face: 4 x 4 cells
laterally, 22.3 A, more than twice the model's 10 A cutoff; 16 cell layers, 8 crystal and 8
melt: 512 molecules, 4,096 atoms), Q = n_I, so dmu = mu_melt - mu_I (> 0: the crystal grows,
T below the melting point). Under <work>/<T>K/:
1. `lattice`: an NPT crystal run of form I at T (4 x 4 x 5 cells); its mean cell (a = b
   averaged, the crystal is tetragonal) is the lattice of the two-phase system, so that NPzT
   holds the crystal unstrained (or --lattice A B C);
2. `bulk-melt`: a melt at T (`molenv simulate melt`, 4 x 4 x 5 cells); `lattice` and
   `bulk-melt` classified give the soft count of a crystal and of a melt molecule, alpha =
   q_I(crystal) - q_I(melt) (calibration.json; molenv.pinning);
3. `equilibrate`: `molenv simulate coexistence`, the upper half melted at 800 K while the
   crystal is held, quenched to T, then --equilibrate ps unbiased NPzT (frames classified: the
   bias centre a = mean soft n_I of the last half);
4. `pin-<a>`: as for I-IV, RESTRAINT ARG=cls.n_I AT=a KAPPA=--kappa.
A flat face moves a layer at a time and short windows remember where they started, so a
measurement scans the centres of a layer from both sides: `run --chain --tag down --offsets 0
-4 ... -28` runs the windows one after another, each from the last frame of the one before,
and `run --chain --tag up --start <a window below> --offsets -28 ... 0` the way back, in the
same work directory (windows pin-<a>-down, pin-<a>-up); `analyse --layer 32` fits them
together and says where the two scans disagree (molenv.pinning.hysteresis).
`analyse` gives dmu(T) = kappa alpha (<n_I> - a) per window and their mean over the centres a;
`melting-point` fits a line through dmu(T) of every analysed temperature: its zero is T_m.
The energies the `lattice` and `bulk-melt` runs logged give the enthalpy of melting dh(T), and
with it T_m from each temperature alone (T / (1 - dmu/dh), Gibbs-Helmholtz): `analyse` and
`melting-point` report both.
A crystal/melt window drifts for hundreds of ps before the interface settles: analyse it with
`--discard auto` (the start of each window's stationary part, molenv.pinning). `archive --to
DIR` copies what the analysis reads (no trajectories) to DIR, e.g. data/pinning-melt, the
committed record of these runs: `--work data/pinning-melt analyse` repeats the analysis.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get("MOLENV_REFERENCE", REPO.parent / "shared" / "reference"))
DOCS = REPO / "docs" / "applications"
MODEL = REPO / "models" / "urea_sf.molenv"
FORCE_FIELD = ["--molecule", "urea", "--atom-types", "gaff", "--charges", "kuroshima2024"]
FORCE_FIELD_NAME = "GAFF, authors' charges"
# the paper's geometry (docs/applications.md, part 2) with 4 instead of 8 form I cells along x
# and 3 instead of 6 form IV cells: the lateral box halves in x (21.64 A, still more than twice
# the model's 10 A cutoff)
INTERFACE = ["--orient", "b,c,a", "--repeats", "4", "6", "5", "--symmetrise2", "0.3", "--orient2", "b,c,a",
             "--repeats2", "3", "6", "10", "--axis", "z", "--lateral-box", "21.6391", "28.01799", "--gap", "1.1566"]
COMMON = ["--barostat", "z", "--no-minimise", "--threads", "1", "--no-progress", "--checkpoint-interval", "5"]

PLUMED_INPUT = """# interface pinning (scripts/pinning.py): a harmonic bias on the number of form {phase} molecules
LOAD FILE={lib}
cls: MOLENV_CLASSIFY MODEL={model} MOLECULES=@mdatoms NUM_THREADS={threads}
pin: RESTRAINT ARG=cls.n_{phase} AT={at:.1f} KAPPA={kappa:g} STRIDE={stride}
PRINT ARG=cls.n_I,cls.n_IV,cls.n_melt,pin.bias STRIDE=50 FILE=COLVAR
"""
# the crystal/melt system: form I's (001) face, 4 x 4 cells laterally (22.3 A > 2 x 10 A, the
# model's cutoff), 8 crystal + 8 melt cell layers along z
MELT_REPEATS = [4, 4, 16]
LATTICE_REPEATS = [4, 4, 5]
SYSTEMS = {"I-IV": {"phase": "IV", "work": "pinning"}, "I-melt": {"phase": "I", "work": "pinning-melt"}}


def molenv(*args) -> list[str]:
    return [sys.executable, "-m", "molenv", *map(str, args)]


def run(cmd: list[str], log: Path) -> None:
    shown = " ".join(shlex.quote(str(c)) for c in ["molenv", *cmd[3:]])
    print(f"$ {shown}", flush=True)
    with open(log, "a") as fh:
        fh.write(shown + "\n")
    if subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OPENMM_CPU_THREADS="1")).returncode != 0:
        sys.exit("pinning.py: error: the command above failed (its messages are above; the run directory keeps its log)")


def plumed_library() -> str:
    return subprocess.run(molenv("plumed-lib"), check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()


def workroot(args) -> Path:
    return Path(args.work or REPO / "data" / "runs" / SYSTEMS[args.system]["work"]).resolve()


def workdir(args) -> Path:
    return workroot(args) / f"{args.temperature:g}K"


def classified(run_dir: Path, log: Path, per_molecule: str = "none", model: Path = MODEL) -> Path:
    """<run_dir>/classified/populations.dat of the run's frames (our urea SF-MLP); with
    ``per_molecule="npz"`` also every molecule's probabilities (molecules.npz)."""
    out = run_dir / "classified"
    if (out / "populations.dat").is_file():
        same_model(out / "populations.dat", model)
    else:
        run(molenv("classify", "--model", model, "--spec", "urea", "-t", run_dir / "trajectory.xtc", "--topology",
                   run_dir / "topology.pdb", "--no-surface", "--no-plot", "--per-molecule", per_molecule, "--no-progress", "--out", out), log)
    return out / "populations.dat"


def same_model(populations: Path, model: Path) -> None:
    """Refuse a classification (or a calibration made from one) by another model than --model:
    a work directory holds one model's counts; another model needs another --work."""
    if not populations.is_file():
        return
    header = next((line for line in populations.read_text().splitlines()[:5] if line.startswith("# classified by")), "")
    if header and f" {model.name} " not in header + " ":
        sys.exit(f"{populations}: {header[2:]}, not by --model {model.name}; use another --work for another model")


def bias_centre(equilibration: Path, log: Path, phase: str = "IV", model: Path = MODEL) -> float:
    """Mean soft n_<phase> over the second half of the equilibration's frames."""
    from molenv.analysis import read_table

    soft = read_table(classified(equilibration, log, "none" if phase == "IV" else "npz", model)).column(f"soft_{phase}")
    return float(soft[len(soft) // 2:].mean())


def last_frame(equilibration: Path) -> Path:
    """The last frame of a run (the equilibration, a window) as a PDB (our atom names, the frame's box)."""
    import MDAnalysis as mda

    out = equilibration / "last_frame.pdb"
    if not out.is_file():
        u = mda.Universe(equilibration / "topology.pdb", equilibration / "trajectory.xtc")
        u.trajectory[-1]
        u.atoms.write(out)
    return out


def ff_cache(args) -> Path:
    """The force-field cache: data/runs/forcefields; for I-melt next to the work directory
    (the default's is the same one)."""
    return workroot(args).parent / "forcefields" if args.system == "I-melt" else REPO / "data" / "runs" / "forcefields"


def lattice_at_temperature(args, work: Path, log: Path) -> list[float]:
    """Form I's cell (a, b, c, A) at the temperature: the mean box of an NPT crystal run (a = b
    averaged: tetragonal), or --lattice (the run is made anyway: `calibration` classifies it)."""
    out = work / "lattice"
    if not (out / "summary.json").is_file():
        run(molenv("simulate", "crystal", *FORCE_FIELD, "--structure", REFERENCE / "urea" / "formI.cif", "--repeats", *LATTICE_REPEATS,
                   "--temperature", args.temperature, "--equilibrate", args.lattice_equilibrate, "--production", args.lattice_production,
                   "--frame-interval", 0.5, "--threads", 1, "--no-progress", "--checkpoint-interval", 5, "--label", "I", *platform(args),
                   "--ff-cache", ff_cache(args), "--out", out), log)
    if args.lattice:
        return list(args.lattice)
    boxes = np.load(out / "frame_boxes.npz")["dimensions"][:, :3] / LATTICE_REPEATS
    a = float(boxes[:, :2].mean())
    return [round(a, 4), round(a, 4), round(float(boxes[:, 2].mean()), 4)]


def calibration(args, work: Path, log: Path) -> dict:
    """alpha = q_I(crystal) - q_I(melt): the soft n_I per molecule of the bulk crystal
    (`lattice`) and of a bulk melt at the temperature (`bulk-melt`), classified."""
    from molenv.analysis import read_table

    path = work / "calibration.json"
    if path.is_file():
        same_model(work / "lattice" / "classified" / "populations.dat", args.model)
        return json.loads(path.read_text())
    melt = work / "bulk-melt"
    if not (melt / "summary.json").is_file():
        run(molenv("simulate", "melt", *FORCE_FIELD, "--structure", REFERENCE / "urea" / "formI.cif", "--repeats", *LATTICE_REPEATS,
                   "--temperature", args.temperature, "--melt-time", 10, "--quench-time", 10, "--equilibrate", args.lattice_equilibrate,
                   "--production", args.lattice_production, "--frame-interval", 0.5, "--threads", 1, "--no-progress", "--checkpoint-interval", 5,
                   *platform(args), "--ff-cache", ff_cache(args), "--out", melt), log)
    result = {"temperature": args.temperature}
    for name, run_dir in (("crystal", work / "lattice"), ("melt", melt)):
        table = read_table(classified(run_dir, log, model=args.model))
        for phase in ("I", "IV", "melt"):
            result[f"q_{phase}_{name}"] = float((table.column(f"soft_{phase}") / table.column("nmol")).mean())
        result[f"frames_{name}"] = len(table.column("nmol"))
    result["alpha"] = result["q_I_crystal"] - result["q_I_melt"]
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"calibration at {args.temperature:g} K: a crystal molecule counts {result['q_I_crystal']:.3f} in n_I, a melt molecule "
          f"{result['q_I_melt']:.3f}: alpha = {result['alpha']:.3f}")
    return result


def bulk_density(run_dir: Path) -> float | None:
    """Mean density (g/cm3) of a bulk urea run from its summary (mean box, molecules), or None
    where the run is missing: with the calibration it says on which side of the melting line
    the two phases' volumes lie (the slope dT_m/dP = dv / ds, Clausius-Clapeyron)."""
    from molenv.order import box_density

    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    return round(box_density(s["n_molecules"] * urea_molar_mass(), s["mean_box"]), 4)


def enthalpy_of_melting_at(work: Path) -> tuple[float, float] | None:
    """dh per molecule and its error from the energies the `lattice` and `bulk-melt` runs
    logged (molenv.pinning.bulk_enthalpy_of_melting), or None where either run or its log is
    missing (records archived before the logs were)."""
    from molenv.pinning import bulk_enthalpy_of_melting

    runs = (work / "lattice", work / "bulk-melt")
    if not all((r / "run.log").is_file() and (r / "summary.json").is_file() for r in runs):
        return None
    return bulk_enthalpy_of_melting(*runs)


def urea_molar_mass() -> float:
    """g/mol, from the elements of molenv's urea spec."""
    import gemmi

    from molenv.spec import load_spec

    return sum(gemmi.Element(e).weight for e in load_spec("urea").elements)


def platform(args) -> list:
    """--platform for OpenMM, where it is not the CPU (a GPU: CUDA or OpenCL)."""
    return [] if args.platform == "CPU" else ["--platform", args.platform]


def equilibrate_i_iv(args, eq: Path, log: Path) -> None:
    run(molenv("simulate", "interface", *FORCE_FIELD, "--structure", REFERENCE / "urea" / "formI.cif",
               "--structure2", REFERENCE / "urea" / "formIV_approx_P1.cif", *INTERFACE, *COMMON,
               "--temperature", args.temperature, "--equilibrate", 0, "--production", args.equilibrate,
               "--frame-interval", 1, "--ff-cache", ff_cache(args), "--out", eq), log)


def equilibrate_i_melt(args, eq: Path, log: Path, lattice: list[float]) -> None:
    # a log line every 0.5 ps: the quench's temperature steps at every log line (molenv.simulate.md)
    run(molenv("simulate", "coexistence", *FORCE_FIELD, "--structure", REFERENCE / "urea" / "formI.cif", "--repeats", *MELT_REPEATS,
               "--lattice", *lattice, "--melt-time", args.melt_time, "--quench-time", args.quench_time, "--threads", 1, "--no-progress",
               "--report-interval", 0.5,
               "--checkpoint-interval", 5, "--temperature", args.temperature, "--equilibrate", 0, "--production", args.equilibrate,
               "--frame-interval", 0.5, *platform(args), "--ff-cache", ff_cache(args), "--out", eq), log)


def pin_run(args) -> int:
    work = workdir(args)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.txt"
    eq = work / "equilibrate"
    phase = SYSTEMS[args.system]["phase"]
    melt = args.system == "I-melt"
    if melt:
        lattice = lattice_at_temperature(args, work, log)
        alpha = calibration(args, work, log)["alpha"]
    if not (eq / "summary.json").is_file():
        equilibrate_i_melt(args, eq, log, lattice) if melt else equilibrate_i_iv(args, eq, log)
    centre = bias_centre(eq, log, phase, args.model)
    # --start: the windows begin from another run's last frame (a window at another centre: the
    # front then approaches each centre from the other side, a check for hysteresis)
    start = last_frame(Path(args.start) if args.start else eq)
    lib = plumed_library()
    for offset in args.offsets:
        at = round(centre + offset)
        name = f"pin-{at}-{args.tag}" if args.tag else f"pin-{at}"
        out = work / name
        plumed = work / f"{name}.dat"
        plumed.write_text(PLUMED_INPUT.format(lib=lib, model=args.model, at=at, kappa=args.kappa, phase=phase, threads=args.plumed_threads,
                                              stride=args.bias_stride))
        meta = {"at": at, "kappa": args.kappa, "centre": centre, "temperature": args.temperature, "bias_stride": args.bias_stride,
                "start": str(start.parent.relative_to(work) if start.parent.is_relative_to(work) else start.parent)}
        if melt:
            meta |= {"system": args.system, "column": f"cls.n_{phase}", "alpha": alpha, "lattice": lattice}
        (work / f"{name}.json").write_text(json.dumps(meta) + "\n")
        if (out / "summary.json").is_file():
            print(f"{out}: done")
        else:
            run(molenv("simulate", "system", *FORCE_FIELD, "--structure", start, *COMMON, "--temperature", args.temperature,
                       "--equilibrate", 0, "--production", args.production, "--frame-interval", min(5.0, args.production), "--plumed", plumed,
                       *platform(args), "--ff-cache", ff_cache(args), "--out", out), log)
        if args.chain:
            start = last_frame(out)
    return 0


def analyse(args) -> int:
    from molenv.pinning import describe, describe_summary, plot_summary_layer_fit, plot_windows, read_window, summary

    work = workdir(args)
    windows = []
    for meta_path in sorted(work.glob("pin-*.json")):
        meta = json.loads(meta_path.read_text())
        colvar = work / meta_path.stem / "plumed" / "COLVAR"
        if not colvar.is_file():
            print(f"{colvar}: not made yet")
            continue
        windows.append(read_window(colvar, meta.get("column", "cls.n_IV"), meta["kappa"], meta["at"], args.discard, meta.get("alpha", 1.0),
                                   name=meta_path.stem))
    if not windows:
        sys.exit(f"no pinning run under {work}")
    windows.sort(key=lambda w: w.result.at)
    phase = SYSTEMS[args.system]["phase"]
    stable = "mu_I - mu_IV" if phase == "IV" else "mu_melt - mu_I"
    for w in windows:
        print(describe(w, stable))
    # dmu(T): the mean over the windows' bias centres (molenv.pinning.average_windows); with the
    # enthalpy of melting of the bulk runs, T_m from this temperature too
    result = summary(windows, args.temperature, args.discard, None if phase == "IV" else enthalpy_of_melting_at(work), args.layer,
                     system=args.system)
    print(describe_summary(result, f"dmu = {stable}"))
    if phase != "IV":
        result["density_crystal_g_cm3"], result["density_melt_g_cm3"] = bulk_density(work / "lattice"), bulk_density(work / "bulk-melt")
        if None not in (result["density_crystal_g_cm3"], result["density_melt_g_cm3"]):
            print(f"bulk phases at {args.temperature:g} K (1 bar): crystal {result['density_crystal_g_cm3']:.4f}, melt "
                  f"{result['density_melt_g_cm3']:.4f} g/cm3")
    (work / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    name = f"pinning_{args.temperature:g}K.png" if phase == "IV" else f"pinning_melt_{args.temperature:g}K.png"
    path = Path(args.figure) if args.figure else DOCS / name
    what = "I/IV" if phase == "IV" else "form I / melt"
    print(f"wrote {plot_windows(path, windows, f'interface pinning of urea {what} at {args.temperature:g} K, NPzT, kappa = {args.kappa:g} kJ/mol')}")
    if phase != "IV" and (work / "equilibrate" / "classified" / "molecules.npz").is_file():
        plot_profile(path.with_name(path.stem + "_profile.png"), work / "equilibrate" / "classified" / "molecules.npz", args)
    if "layer_fit" in result:
        title = f"{what} at {args.temperature:g} K: the mean force across a layer"
        print(f"wrote {plot_summary_layer_fit(path.with_name(path.stem + '_layer_fit.png'), windows, result, title)}")
    return 0


# what `analyse` and `melting-point` read, and every run's summary (settings, wall time): the
# files `archive` copies (kilobytes to a megabyte per window; no trajectory, no checkpoint)
ARCHIVED = ("melting_point.json", "*K/commands.txt", "*K/calibration.json", "*K/summary.json", "*K/pin-*.json", "*K/pin-*.dat",
            "*K/pin-*/plumed/COLVAR", "*K/*/summary.json", "*K/lattice/run.log", "*K/bulk-melt/run.log", "*K/lattice/frame_boxes.npz", "*K/equilibrate/classified/populations.dat",
            "*K/equilibrate/classified/molecules.npz")


def archive(args) -> int:
    """Copy the ARCHIVED files of every temperature under --work to --to, in the same layout,
    so that `analyse` and `melting-point` run on the copy (--work <copy>): the record of long
    runs, small enough to commit. Windows still running are copied as far as they are."""
    import shutil

    source, target = workroot(args), Path(args.to).resolve()
    if source == target:
        sys.exit("archive: --to is the work directory itself")
    copied = 0
    for pattern in ARCHIVED:
        for path in sorted(source.glob(pattern)):
            out = target / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
            copied += path.stat().st_size
    if not copied:
        sys.exit(f"archive: nothing to copy under {source}")
    print(f"copied {copied / 1e6:.2f} MB from {source} to {target}")
    return 0


def plot_profile(path: Path, molecules: Path, args) -> None:
    """Mean class probabilities of the molecules in slices along z (one cell layer of form I
    thick: a crystal's molecules sit in planes, and thinner slices can fall between them), at
    the first and the last frame of the unbiased equilibration: where the crystal, the melt
    and the two interfaces are."""
    import matplotlib

    from molenv.analysis import ClassificationResult

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = ClassificationResult.load(molecules)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.0), sharey=True)
    for ax, f in zip(axes, (0, len(res.times) - 1)):
        height = res.boxes[f, 2]
        z = res.centres[f, :, 2] % height
        edges = np.linspace(0, height, max(2, int(round(height / 4.7))) + 1)
        which = np.clip(np.digitize(z, edges) - 1, 0, len(edges) - 2)
        mid = (edges[1:] + edges[:-1]) / 2
        for k, name in enumerate(res.classes):
            mean = np.array([res.probabilities[f, which == b, k].mean() if np.any(which == b) else np.nan for b in range(len(mid))])
            ax.plot(mid, mean, "o-", markersize=3, label=name)
        ax.set_title(f"t = {res.times[f]:g} ps", fontsize=9)
        ax.set_xlabel("z (A)")
    axes[0].set_ylabel("mean class probability")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"urea form I / melt at {args.temperature:g} K, unbiased NPzT after the quench: class profile along z", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def melting_point_step(args) -> int:
    """T_m from every temperature `analyse` has summarised: the zero of a line through dmu(T)
    (two temperatures or more) and the mean of the single-temperature T_m of Gibbs-Helmholtz
    (molenv.pinning.melting_point_estimates)."""
    from molenv.pinning import melting_point_estimates, plot_melting_point

    summaries = [s for s in (json.loads(p.read_text()) for p in sorted(workroot(args).glob("*K/summary.json"))) if s.get("system") == "I-melt"]
    try:
        fit, result, report = melting_point_estimates(summaries, "dmu = mu_melt - mu_I")
    except ValueError as err:
        sys.exit(f"melting-point: {err}, under {workroot(args)}; `analyse` first")
    print(report + "\nexperiment: 406 K at 1 bar")
    volume_change = [1 / s["density_melt_g_cm3"] - 1 / s["density_crystal_g_cm3"] for s in summaries  # cm3/g
                     if s.get("density_crystal_g_cm3") and s.get("density_melt_g_cm3")]
    # the entropy of melting: dh / T_m where the enthalpy is measured, else the line's slope
    gibbs_helmholtz = result.get("from_enthalpy")
    entropy = (float(np.mean(gibbs_helmholtz["enthalpies_of_melting_kJ_mol"])) / gibbs_helmholtz["melting_point_K"] if gibbs_helmholtz
               else fit.entropy_of_melting)
    if volume_change and entropy > 0:
        # Clausius-Clapeyron with the bulk runs' mean volume change on melting: dT_m/dP = dv / ds
        dv = float(np.mean(volume_change)) * urea_molar_mass()  # cm3/mol
        result["volume_of_melting_cm3_mol"] = round(dv, 3)
        result["clapeyron_K_per_kbar"] = round(dv * 1e-6 * 1e8 / (1000 * entropy), 2)
        print(f"volume of melting {dv:+.2f} cm3/mol (bulk runs at 1 bar; the melt is {'denser' if dv < 0 else 'lighter'} than the crystal), "
              f"entropy of melting {1000 * entropy:.1f} J/mol/K: dT_m/dP = {result['clapeyron_K_per_kbar']:+.1f} K/kbar")
    (workroot(args) / "melting_point.json").write_text(json.dumps(result, indent=1) + "\n")
    if fit is not None:
        figure = Path(args.figure) if args.figure else DOCS / "pinning_melting_point.png"
        print(f"wrote {plot_melting_point(figure, fit, label=FORCE_FIELD_NAME, experiment=406, from_enthalpy=gibbs_helmholtz)}")
    return 0


def main() -> int:
    from molenv.commands.pinning import discard_time

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", choices=tuple(SYSTEMS), default="I-IV",
                        help="I-IV: the form I / form IV interface (default); I-melt: form I and its melt (the melting point)")
    parser.add_argument("--work", help="run directories (default data/runs/pinning, I-melt: data/runs/pinning-melt)")
    parser.add_argument("--temperature", type=float, default=200.0, help="K (default 200)")
    parser.add_argument("--kappa", type=float, default=0.05, help="bias stiffness, kJ/mol per molecule^2 (default 0.05)")
    parser.add_argument("--model", type=lambda p: Path(p).resolve(), default=MODEL,
                        help="the classifier of the bias and of the classified frames (default models/urea_sf.molenv)")
    parser.add_argument("--platform", default="CPU", help="OpenMM platform of the runs (default CPU; CUDA on a GPU)")
    parser.add_argument("--plumed-threads", type=int, default=1, help="threads of MOLENV_CLASSIFY in the pinning runs (default 1)")
    parser.add_argument("--bias-stride", type=int, default=1,
                        help="apply the bias every N MD steps with N times its force (PLUMED's multiple time stepping: the classifier "
                             "runs only on those steps; default 1)")
    parser.add_argument("--discard", type=discard_time, default=20.0,
                        help="ps left out of the analysis at the start of each pinning run (default 20), or 'auto': the start of the "
                             "stationary part of each run (molenv.pinning.equilibration_time)")
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run", help="equilibrate the interface, then the pinning runs")
    r.add_argument("--equilibrate", type=float, default=20.0, help="ps of unbiased NPzT (default 20)")
    r.add_argument("--production", type=float, default=200.0, help="ps per pinning run (default 200)")
    r.add_argument("--offsets", type=float, nargs="+", default=[0.0, 40.0], help="bias centres relative to the equilibrated n_IV (default 0 40)")
    r.add_argument("--start", metavar="RUN",
                   help="start the windows from the last frame of this run directory (e.g. a window at another centre, so that the front "
                        "approaches from the other side: a hysteresis check) instead of the equilibration's")
    r.add_argument("--chain", action="store_true",
                   help="run the windows one after the other in the order of --offsets, each from the last frame of the one before "
                        "(the first from --start or the equilibration): a scan that approaches every centre from one side")
    r.add_argument("--tag", help="name the windows pin-<a>-<TAG> (e.g. down, up), so that scans of the same centres from both sides "
                                 "share one work directory and `analyse` reads them together")
    m = r.add_argument_group("I-melt")
    m.add_argument("--lattice", type=float, nargs=3, metavar="A", help="form I cell a b c at the temperature, A (default: the mean cell of the `lattice` run, which is made anyway for the calibration)")
    m.add_argument("--lattice-equilibrate", type=float, default=10.0, help="ps of equilibration of the bulk crystal and melt runs (default 10)")
    m.add_argument("--lattice-production", type=float, default=40.0, help="ps of frames of the bulk crystal and melt runs (default 40)")
    m.add_argument("--melt-time", type=float, default=20.0, help="ps at 800 K, the crystal held, to melt the upper half (default 20)")
    m.add_argument("--quench-time", type=float, default=10.0, help="ps of the quench to the temperature, the crystal held (default 10)")
    r.set_defaults(run=pin_run)
    a = sub.add_parser("analyse", help="dmu from the pinning runs")
    a.add_argument("--layer", type=float, metavar="MOLECULES",
                   help="molecules of one crystal layer of the face (I-melt: 32, the (001) layer of 4 x 4 cells): dmu from a fit of the "
                        "windows' mean forces periodic in the layer (molenv.pinning.layer_periodic_fit), not their plain mean")
    a.add_argument("--figure", help="PNG to write (default docs/applications/pinning_<T>K.png)")
    a.set_defaults(run=analyse)
    c = sub.add_parser("archive", help="copy what analyse and melting-point read (no trajectories) to --to, e.g. to commit")
    c.add_argument("--to", required=True, help="the copy's directory (the layout of --work; analyse it with --work <it>)")
    c.set_defaults(run=archive)
    t = sub.add_parser("melting-point", help="I-melt: T_m from dmu(T) of every analysed temperature")
    t.add_argument("--figure", help="PNG to write (default docs/applications/pinning_melting_point.png)")
    t.set_defaults(run=melting_point_step)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
