#!/usr/bin/env python3
"""Interface pinning of the urea form I / form IV interface with MOLENV_CLASSIFY
(docs/applications.md, part 3; the method in molenv.pinning).

    .venv/bin/python scripts/pinning.py run --temperature 200          # hours on one core; resumable
    .venv/bin/python scripts/pinning.py analyse --temperature 200      # -> docs/applications/pinning_200K.png

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
   acts from the first step; `analyse` discards the first --discard ps).
`analyse` reads every pin-*/plumed/COLVAR: dmu = kappa (<n_IV> - a) per molecule with its
block-averaging error, the series and the block curves in one figure, and a summary JSON.
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
# the paper's geometry (docs/applications.md, part 2) with 4 instead of 8 form I cells along x
# and 3 instead of 6 form IV cells: the lateral box halves in x (21.64 A, still more than twice
# the model's 10 A cutoff)
INTERFACE = ["--orient", "b,c,a", "--repeats", "4", "6", "5", "--symmetrise2", "0.3", "--orient2", "b,c,a",
             "--repeats2", "3", "6", "10", "--axis", "z", "--lateral-box", "21.6391", "28.01799", "--gap", "1.1566"]
COMMON = ["--barostat", "z", "--no-minimise", "--threads", "1", "--no-progress", "--checkpoint-interval", "5"]

PLUMED_INPUT = """# interface pinning (scripts/pinning.py): a harmonic bias on the number of form IV molecules
LOAD FILE={lib}
cls: MOLENV_CLASSIFY MODEL={model} MOLECULES=@mdatoms NUM_THREADS=1
pin: RESTRAINT ARG=cls.n_IV AT={at:.1f} KAPPA={kappa:g}
PRINT ARG=cls.n_I,cls.n_IV,cls.n_melt,pin.bias STRIDE=50 FILE=COLVAR
"""


def molenv(*args) -> list[str]:
    return [sys.executable, "-m", "molenv", *map(str, args)]


def run(cmd: list[str], log: Path) -> None:
    shown = " ".join(shlex.quote(str(c)) for c in ["molenv", *cmd[3:]])
    print(f"$ {shown}", flush=True)
    with open(log, "a") as fh:
        fh.write(shown + "\n")
    if subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OPENMM_CPU_THREADS="1")).returncode != 0:
        sys.exit(f"pinning.py: error: the command above failed (its messages are above; the run directory keeps its log)")


def plumed_library() -> str:
    return subprocess.run(molenv("plumed-lib"), check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()


def workdir(args) -> Path:
    return Path(args.work).resolve() / f"{args.temperature:g}K"


def bias_centre(equilibration: Path, log: Path) -> float:
    """Mean soft n_IV over the second half of the equilibration's frames."""
    from molenv.analysis import read_table

    out = equilibration / "classified"
    if not (out / "populations.dat").is_file():
        run(molenv("classify", "--model", MODEL, "--spec", "urea", "-t", equilibration / "trajectory.xtc", "--topology",
                   equilibration / "topology.pdb", "--no-surface", "--no-plot", "--per-molecule", "none", "--no-progress", "--out", out), log)
    soft = read_table(out / "populations.dat").column("soft_IV")
    return float(soft[len(soft) // 2:].mean())


def last_frame(equilibration: Path) -> Path:
    """The equilibration's last frame as a PDB (our atom names, the frame's box)."""
    import MDAnalysis as mda

    out = equilibration / "last_frame.pdb"
    if not out.is_file():
        u = mda.Universe(equilibration / "topology.pdb", equilibration / "trajectory.xtc")
        u.trajectory[-1]
        u.atoms.write(out)
    return out


def pin_run(args) -> int:
    work = workdir(args)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.txt"
    eq = work / "equilibrate"
    if not (eq / "summary.json").is_file():
        run(molenv("simulate", "interface", *FORCE_FIELD, "--structure", REFERENCE / "urea" / "formI.cif",
                   "--structure2", REFERENCE / "urea" / "formIV_approx_P1.cif", *INTERFACE, *COMMON,
                   "--temperature", args.temperature, "--equilibrate", 0, "--production", args.equilibrate,
                   "--frame-interval", 1, "--ff-cache", REPO / "data" / "runs" / "forcefields", "--out", eq), log)
    centre = bias_centre(eq, log)
    start = last_frame(eq)
    lib = plumed_library()
    for offset in args.offsets:
        at = round(centre + offset)
        out = work / f"pin-{at}"
        plumed = work / f"pin-{at}.dat"
        plumed.write_text(PLUMED_INPUT.format(lib=lib, model=MODEL, at=at, kappa=args.kappa))
        (work / f"pin-{at}.json").write_text(json.dumps({"at": at, "kappa": args.kappa, "centre": centre, "temperature": args.temperature}) + "\n")
        if (out / "summary.json").is_file():
            print(f"{out}: done")
            continue
        run(molenv("simulate", "system", *FORCE_FIELD, "--structure", start, *COMMON, "--temperature", args.temperature,
                   "--equilibrate", 0, "--production", args.production, "--frame-interval", min(5.0, args.production), "--plumed", plumed,
                   "--ff-cache", REPO / "data" / "runs" / "forcefields", "--out", out), log)
    return 0


def analyse(args) -> int:
    from molenv.analysis import read_table
    from molenv.pinning import pinning_estimate

    work = workdir(args)
    runs = sorted(work.glob("pin-*.json"))
    results = {}
    for meta_path in runs:
        meta = json.loads(meta_path.read_text())
        colvar = work / meta_path.stem / "plumed" / "COLVAR"
        if not colvar.is_file():
            print(f"{colvar}: not made yet")
            continue
        table = read_table(colvar)
        results[meta["at"]] = (table, pinning_estimate(table.column("time"), table.column("cls.n_IV"), meta["kappa"], meta["at"], args.discard))
    if not results:
        sys.exit(f"no pinning run under {work}")
    summary = {}
    for at, (table, r) in sorted(results.items()):
        summary[str(at)] = {"at": at, "kappa": r.kappa, "mean_n_IV": r.mean_q, "n_IV_std": r.q_std, "delta_mu_kJ_mol": r.delta_mu,
                            "delta_mu_error_kJ_mol": r.delta_mu_error, "samples": r.n_samples, "time_ps": list(r.time_range)}
        print(f"a = {at}: <n_IV> = {r.mean_q:.2f} (std {r.q_std:.2f}) over {r.time_range[0]:g}-{r.time_range[1]:g} ps; "
              f"dmu = mu_I - mu_IV = {r.delta_mu:+.3f} +- {r.delta_mu_error:.3f} kJ/mol per molecule")
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(Path(args.figure) if args.figure else DOCS / f"pinning_{args.temperature:g}K.png", results, args)
    return 0


def plot(path: Path, results: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    for k, (at, (table, r)) in enumerate(sorted(results.items())):
        colour = plt.get_cmap("tab10")(k)
        ax.plot(table.column("time"), table.column("cls.n_IV"), color=colour, linewidth=0.6,
                label=f"a = {at}: dmu = {r.delta_mu:+.2f} +- {r.delta_mu_error:.2f} kJ/mol")
        ax.axhline(at, color=colour, linestyle=":")
        ax.axhline(r.mean_q, color=colour, linestyle="--", linewidth=0.8)
        dt = float(np.median(np.diff(table.column("time"))))
        bx.errorbar(r.blocks.block_lengths * dt, r.kappa * r.blocks.standard_errors, fmt="o-", color=colour, markersize=3)
    ax.axvline(args.discard, color="0.5", linewidth=0.8)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("n_IV (soft count)")
    ax.legend(fontsize=7)
    bx.set_xscale("log")
    bx.set_xlabel("block length (ps)")
    bx.set_ylabel("error of dmu (kJ/mol)")
    fig.suptitle(f"interface pinning of urea I/IV at {args.temperature:g} K, NPzT, kappa = {args.kappa:g} kJ/mol (dotted: a, dashed: <n_IV>)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(REPO / "data" / "runs" / "pinning"), help="run directories (default data/runs/pinning)")
    parser.add_argument("--temperature", type=float, default=200.0, help="K (default 200)")
    parser.add_argument("--kappa", type=float, default=0.05, help="bias stiffness, kJ/mol per molecule^2 (default 0.05)")
    parser.add_argument("--discard", type=float, default=20.0, help="ps left out of the analysis at the start of each pinning run (default 20)")
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run", help="equilibrate the interface, then the pinning runs")
    r.add_argument("--equilibrate", type=float, default=20.0, help="ps of unbiased NPzT (default 20)")
    r.add_argument("--production", type=float, default=200.0, help="ps per pinning run (default 200)")
    r.add_argument("--offsets", type=float, nargs="+", default=[0.0, 40.0], help="bias centres relative to the equilibrated n_IV (default 0 40)")
    r.set_defaults(run=pin_run)
    a = sub.add_parser("analyse", help="dmu from the pinning runs")
    a.add_argument("--figure", help="PNG to write (default docs/applications/pinning_<T>K.png)")
    a.set_defaults(run=analyse)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
