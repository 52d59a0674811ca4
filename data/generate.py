#!/usr/bin/env python
"""Generate the committed MD trajectories under data/ with `molenv simulate`, and the manifest.

Usage (from the repository root, outside CI: it takes hours on one core):

    nohup .venv/bin/python data/generate.py > data/runs/generate.log 2>&1 &
    .venv/bin/python data/generate.py --list          # what exists, what is left
    .venv/bin/python data/generate.py --only urea-I-100K urea-melt-350K
    .venv/bin/python data/generate.py --collect       # only (re)collect finished runs

Each run works in data/runs/<name>/ (not committed) with one OpenMM CPU thread, so the
other core stays free. Stopping the script is safe: running it again skips finished runs and
resumes an interrupted one from its last checkpoint. A finished run is collected at once:
data/<molecule>/<name>.xtc (frames) and data/<molecule>/<name>.pdb.gz (topology: residue =
molecule, atoms in spec order; chain A/B = the two crystals of an interface), and its entry
in data/manifest.json (structure, force field, temperature, ensemble, lengths, frame stride,
wall times, the exact command).

Temperatures follow the method: training crystals at 100 K and melts at 350 K; test crystals
at 200 K (urea) and 350 K (nicotinamide); gas-phase clusters (~30 A) for the surface/bulk
label; a urea form I / form IV interface for the demo. Beyond the method: nicotinamide crystals at
250 K and 300 K, urea crystals and clusters at 150 K and a molten nicotinamide droplet at
350 K (split train), used only by the multi-temperature protocol of scripts/results.py.
"""
from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent
REPO = DATA.parent
RUNS = DATA / "runs"
REF = "../shared/reference"  # relative to the repository root, as the commands are run there
MANIFEST = DATA / "manifest.json"

UREA = {"I": f"{REF}/urea/formI.cif", "IV": f"{REF}/urea/formIV_approx_P1.cif"}
UREA_SYMMETRISE = {"IV": ["--symmetrise", "0.3"]}  # the form IV cell is approximate (P1 close to P2(1)2(1)2)
NICOTINAMIDE = {"I": "NICOAM13", "II": "NICOAM14", "III": "NICOAM15", "IV": "NICOAM16", "V": "NICOAM07",
                "VI": "NICOAM18", "VII": "NICOAM08", "VIII": "NICOAM09", "IX": "NICOAM17"}

COMMON = ["--no-progress", "--threads", "1", "--ff-cache", "data/runs/forcefields"]
# the paper: GAFF for urea, GAFF2 for nicotinamide, with the authors' charges (their LAMMPS
# settings; AM1-BCC made the urea crystals 4.5 % and the melt 10 % too dense). The nicotinamide
# nanocluster runs of the application (Fig. 7) were made with AM1-BCC charges (NIC_FF_BCC)
# before the nicotinamide training data moved to the authors' charges; they stay as made.
# Nicotinamide also takes the authors' Lennard-Jones parameters (their gaff.settings: GAFF v1
# values; AmberTools' GAFF2 2.2 refitted them).
UREA_FF = ["--molecule", "urea", "--atom-types", "gaff", "--charges", "kuroshima2024"]
NIC_FF = ["--molecule", "nicotinamide", "--atom-types", "gaff2", "--charges", "kuroshima2024", "--lennard-jones", "kuroshima2024"]
NIC_FF_BCC = ["--molecule", "nicotinamide", "--atom-types", "gaff2"]
# 200 ps of production with a frame every 5 ps: the thermal fluctuations of a temperature
# sampled by decorrelated frames (the first data had 50 ps with a frame every ps; the paper
# 1 ns with a frame every 10 ps)
UREA_MD = ["--equilibrate", "20", "--production", "200", "--frame-interval", "5"]
# Nicotinamide crystals keep their cell shape (isotropic barostat): with a shape-flexible
# barostat (or x, y, z scaled independently) GAFF2 form I deforms at 100 K within 100 ps (a +9 %,
# b -11 %, beta 97.5 -> 92.7 deg), with AmberTools' and with the authors' Lennard-Jones and
# ring-amide torsions alike, into a structure the authors' model calls 25 % form V; at constant
# shape it stays 100 % form I (docs/simulate.md, "Cell shape of the nicotinamide crystals").
NIC_MD = [*UREA_MD, "--barostat", "iso"]
CLUSTER_MD = ["--equilibrate", "10", "--production", "200", "--frame-interval", "5"]
MELT = ["--melt-temperature", "800", "--melt-time", "20", "--quench-time", "20"]
# urea's melt at the density of the authors' melt (~1.24 g/cm3), all NVT: at 1 bar GAFF urea
# with their charges gives a supercooled liquid of 1.40 g/cm3 at 350 K (denser than its crystal
# at 100 K, 1.41-1.42), which their model does not call a melt (0.3)
UREA_MELT = [*MELT, "--melt-ensemble", "nvt", "--density", "1.24", "--barostat", "none"]
MULTI_T_NICOTINAMIDE = (250, 300)  # K, the extra training temperatures of the multi-temperature protocol
MULTI_T_UREA = (150,)  # K, the same for urea (crystals and clusters; the urea test systems are at 200 K)


def plan() -> list[dict]:
    """All runs, in the order they are made (urea first, so a first dataset exists early)."""
    runs = []

    def add(name, molecule, mode, label, split, args, start=None):
        runs.append({"name": name, "molecule": molecule, "mode": mode, "label": label, "split": split, "args": args, "start": start})

    def urea(form, t, split, cluster=False):
        """A urea crystal (or a 30 A cluster cut from it) of `form` at `t` K."""
        shape = ["--diameter", "30"] if cluster else []
        add(f"urea-{form}-{'cluster-' if cluster else ''}{t}K", "urea", "cluster" if cluster else "crystal", form, split,
            [*UREA_FF, "--structure", UREA[form], *UREA_SYMMETRISE.get(form, []), *shape, "--temperature", str(t),
             *(CLUSTER_MD if cluster else UREA_MD)])

    def nicotinamide(form, t, split):
        """A nicotinamide crystal of `form` at `t` K."""
        add(f"nicotinamide-{form}-{t}K", "nicotinamide", "crystal", form, split,
            [*NIC_FF, "--structure", f"{REF}/nicotinamide/{NICOTINAMIDE[form]}.pdb", "--temperature", str(t), *NIC_MD])

    for form in ("I", "IV"):
        urea(form, 100, "train")
    add("urea-melt-350K", "urea", "melt", "melt", "train",
        [*UREA_FF, "--structure", UREA["I"], "--temperature", "350", *UREA_MELT, *UREA_MD])
    for form in ("I", "IV"):
        urea(form, 200, "test")
    for form in ("I", "IV"):
        urea(form, 100, "train", cluster=True)
    add("urea-I-IV-interface-100K", "urea", "interface", "I/IV", "demo",
        [*UREA_FF, "--structure", UREA["I"], "--structure2", UREA["IV"], "--symmetrise2", "0.3", "--axis", "y",
         "--temperature", "100", "--equilibrate", "10", "--production", "40", "--frame-interval", "1"])
    for form in NICOTINAMIDE:
        nicotinamide(form, 100, "train")
    add("nicotinamide-melt-350K", "nicotinamide", "melt", "melt", "train",
        [*NIC_FF, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--temperature", "350", *MELT, *NIC_MD])
    for form in NICOTINAMIDE:
        nicotinamide(form, 350, "test")
    add("nicotinamide-I-cluster-100K", "nicotinamide", "cluster", "I", "train",
        [*NIC_FF, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--diameter", "30", "--temperature", "100", *CLUSTER_MD])
    for form in ("I", "IV"):
        urea(form, 200, "test", cluster=True)
    # not the paper's protocol: crystals (and, for urea, clusters) at intermediate
    # temperatures, extra training data for the multi-temperature protocol of
    # scripts/results.py (the paper protocol leaves them out: molenv.protocols)
    for t in MULTI_T_NICOTINAMIDE:
        for form in NICOTINAMIDE:
            nicotinamide(form, t, "train")
    for t in MULTI_T_UREA:
        for form in ("I", "IV"):
            urea(form, t, "train")
        for form in ("I", "IV"):
            urea(form, t, "train", cluster=True)
    # a molten droplet: a 30 A sphere cut from the last frame of the nicotinamide melt (at 350 K
    # after 800 K), run at 350 K, labelled melt; for the multi-temperature protocol only (a
    # cluster above the lowest cluster temperature: molenv.protocols.extra_training). The
    # training data had no molten surface, and the GNN called ~45 % of the melted application
    # cluster's surface form I (docs/applications.md)
    add("nicotinamide-melt-cluster-350K", "nicotinamide", "cluster", "melt", "train",
        [*NIC_FF, "--structure", "data/runs/nicotinamide-melt-350K-last.pdb", "--diameter", "30", "--temperature", "350", *CLUSTER_MD],
        start=("nicotinamide-melt-350K", "data/runs/nicotinamide-melt-350K-last.pdb"))
    # warm form I clusters (30 A, as the 100 K one) at the multi-temperature protocol's
    # temperatures: how the GNN reads a hot crystalline surface (docs/applications.md, Fig. 7).
    # Not training data: their surfaces premelt (a third of the surface molecules turn by more
    # than 35 degrees in 200 ps), so "form I" is not true of every molecule; like the
    # application runs, their label is their starting structure
    for t in MULTI_T_NICOTINAMIDE:
        add(f"nicotinamide-I-cluster-{t}K", "nicotinamide", "cluster", "I", "application",
            [*NIC_FF, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--diameter", "30", "--temperature", str(t), *CLUSTER_MD])
    # the paper's first application (Fig. 7): a 34 A form I nanocluster (148 molecules at 34.4 A) in
    # vacuum, 500 ps at 100 K (stays crystalline) and at 350 K (melts from the surface)
    for t in (100, 350):
        add(f"nicotinamide-I-cluster148-{t}K", "nicotinamide", "cluster", "I", "application",
            [*NIC_FF_BCC, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--diameter", "34.4", "--temperature", str(t),
             "--equilibrate", "0", "--production", "500", "--frame-interval", "5"])
    # the same cluster with the authors' force field (that of the training data): at 100 K, at
    # 350 K and two more realisations at 350 K (other seeds): how much of the melting rate is
    # the force field, how much chance (issue 14; the AM1-BCC runs above stay as the first data)
    add("nicotinamide-I-cluster148-kuroshima-100K", "nicotinamide", "cluster", "I", "application",
        [*NIC_FF, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--diameter", "34.4", "--temperature", "100",
         "--equilibrate", "0", "--production", "500", "--frame-interval", "5"])
    for seed in (None, 2, 3):
        add(f"nicotinamide-I-cluster148-kuroshima-350K{f'-seed{seed}' if seed else ''}", "nicotinamide", "cluster", "I", "application",
            [*NIC_FF, "--structure", f"{REF}/nicotinamide/NICOAM13.pdb", "--diameter", "34.4", "--temperature", "350",
             "--equilibrate", "0", "--production", "500", "--frame-interval", "5", *(["--seed", str(seed)] if seed else [])])
    # the paper's second application (Fig. 8): the authors' own urea form I / form IV interface
    # (a snapshot of their MD, 1200 molecules stacked along z) run as it is, NPzT at 100 K with
    # their charges; no minimisation, which would relax the strained form IV towards form I
    add("urea-I-IV-interface-paper-100K", "urea", "system", "I/IV", "application",
        [*UREA_FF, "--structure", f"{REF}/urea/formI_formIV_interface.data", "--name-map", "4:N1,5:N2",
         "--type-elements", "1:H,2:O,3:C,4:N,5:N", "--barostat", "z", "--no-minimise", "--temperature", "100",
         "--equilibrate", "0", "--production", "100", "--frame-interval", "2"])
    return runs


def command(run: dict) -> list[str]:
    return [sys.executable, "-m", "molenv", "simulate", run["mode"], *run["args"], *COMMON, "--out", f"data/runs/{run['name']}"]


def write_last_frame(run_name: str, path: str) -> None:
    """The last frame of the committed run `run_name` as a PDB with its cell (the starting
    structure of a run cut from it); made again only if missing."""
    import warnings

    import MDAnalysis as mda

    out = REPO / path
    if out.is_file():
        return
    entry = next(e for e in json.loads(MANIFEST.read_text())["trajectories"] if e["name"] == run_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis's notes on missing PDB fields
        u = mda.Universe(DATA / entry["files"]["topology"], DATA / entry["files"]["trajectory"])
        u.trajectory[-1]
        u.atoms.write(out)


def finished(run: dict) -> bool:
    p = RUNS / run["name"] / "summary.json"
    return p.is_file()


def collected(run: dict) -> bool:
    return (DATA / run["molecule"] / f"{run['name']}.xtc").is_file()


def collect(run: dict) -> dict:
    """Copy a finished run's frames and topology into data/<molecule>/ and describe it."""
    rd = RUNS / run["name"]
    meta = json.loads((rd / "run.json").read_text())
    summary = json.loads((rd / "summary.json").read_text())
    out = DATA / run["molecule"]
    out.mkdir(exist_ok=True)
    xtc, pdb = out / f"{run['name']}.xtc", out / f"{run['name']}.pdb.gz"
    shutil.copyfile(rd / "trajectory.xtc", xtc)
    with open(rd / "topology.pdb", "rb") as src, gzip.GzipFile(pdb, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    system, settings, request = meta["system"], meta["settings"], meta["request"]
    production = next(s for s in summary["stages"] if s["name"] == "production")
    return {
        "name": run["name"],
        "molecule": run["molecule"],
        "system": run["mode"],
        "label": run["label"],
        "split": run["split"],
        "description": system["description"],
        "structure": [request[k] for k in ("structure", "structure2") if k in request],
        "symmetrised_tolerance_A": [request[k] for k in ("symmetrise", "symmetrise2") if k in request] or None,
        "groups": system["groups"],
        "n_molecules": system["n_molecules"],
        "n_atoms": system["n_atoms"],
        "force_field": system["forcefield"],
        "temperature_K": production["temperature"],
        "ensemble": production["ensemble"].upper(),
        "barostat": system.get("barostat"),
        "pressure_bar": settings["pressure_bar"] if system.get("barostat") else None,
        "thermostat": settings["thermostat"],
        "timestep_fs": settings["timestep_fs"],
        "constraints": settings["constraints"],
        "cutoff_A": settings["cutoff"] if system["box_vectors"] else None,
        "stages": [{k: s[k] for k in ("name", "time_ps", "temperature", "temperature_end", "ensemble", "frame_interval_ps", "wall_s", "ns_per_day")}
                   for s in summary["stages"]],
        "production_ps": production["time_ps"],
        "frame_interval_ps": production["frame_interval_ps"],
        "n_frames": summary["n_frames"],
        "first_frame_time_ps": summary["frame_times_ps"][0] if summary["frame_times_ps"] else None,
        "mean_box": summary.get("mean_box"),
        "wall_time_s": summary["wall_s"],
        "setup_wall_time_s": summary.get("setup_wall_s"),
        "machine": f"{os.cpu_count()}-core {meta.get('host', '')}, 1 OpenMM CPU thread",
        "command": meta["command"],
        "files": {"trajectory": str(xtc.relative_to(DATA)), "topology": str(pdb.relative_to(DATA))},
        "bytes": xtc.stat().st_size + pdb.stat().st_size,
        "created": meta.get("created"),
    }


def update_manifest(entry: dict) -> None:
    # Several queues may collect at once: read-modify-write under an exclusive lock, and replace
    # the file in one step so that no reader ever sees it half-written.
    RUNS.mkdir(exist_ok=True)
    with open(RUNS / "manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _update_manifest(entry)


def _update_manifest(entry: dict) -> None:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    manifest.setdefault("description", "MD trajectories made with `molenv simulate` by data/generate.py; "
                        "paths relative to data/; read with MDAnalysis.Universe(topology, trajectory)")
    entries = {e["name"]: e for e in manifest.get("trajectories", [])}
    entries[entry["name"]] = entry
    order = [r["name"] for r in plan()]
    manifest["trajectories"] = sorted(entries.values(), key=lambda e: order.index(e["name"]) if e["name"] in order else len(order))
    manifest["total_bytes"] = sum(e["bytes"] for e in manifest["trajectories"])
    partial = MANIFEST.with_name(".manifest.json.partial")
    partial.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(partial, MANIFEST)


def density(entry: dict) -> float | None:
    """Mean density of a periodic run's production (g/cm3), from its mean box; None for clusters."""
    import gemmi
    import numpy as np

    from molenv.frames import box_matrix
    from molenv.spec import load_spec

    if not entry.get("mean_box"):
        return None
    mass = sum(gemmi.Element(e).weight for e in load_spec(entry["molecule"]).elements) * entry["n_molecules"]
    return mass / abs(np.linalg.det(box_matrix(entry["mean_box"]))) / 0.602214076


def charges(entry: dict) -> str:
    """Short name of a run's charges: the spec charge set, AM1-BCC, ..."""
    ff = entry["force_field"]
    return ff["charge_set"]["name"] if ff.get("charge_set") else ff.get("charges", "").replace(" charges", "").replace(" (sqm)", "")


def table() -> str:
    """The manifest as a markdown table (for data/README.md)."""
    rows = ["| name | split | molecules (atoms) | charges | T (K) | ensemble | equil. + prod. (ps) | frames | density (g/cm3) | MD wall time (s) | ns/day (prod.) | MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in json.loads(MANIFEST.read_text())["trajectories"]:
        prod = e["stages"][-1]
        before = sum(s["time_ps"] for s in e["stages"][:-1])
        ens = e["ensemble"] + (f" ({e['barostat']})" if e["barostat"] else "")
        rho = density(e)
        rows.append(f"| {e['name']} | {e['split']} | {e['n_molecules']} ({e['n_atoms']}) | {charges(e)} | {e['temperature_K']:g} | {ens} | {before:g} + {prod['time_ps']:g} "
                    f"| {e['n_frames']} | {'-' if rho is None else f'{rho:.3f}'} | {e['wall_time_s']:.0f} | {prod['ns_per_day']:.1f} | {e['bytes'] / 1e6:.2f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these runs")
    parser.add_argument("--list", action="store_true", help="list the runs and their state")
    parser.add_argument("--collect", action="store_true", help="only collect finished runs into data/ and the manifest")
    parser.add_argument("--table", action="store_true", help="print the manifest as a markdown table")
    args = parser.parse_args()
    if args.table:
        print(table())
        return 0
    runs = [r for r in plan() if not args.only or r["name"] in args.only]
    if args.only and len(runs) != len(args.only):
        parser.error(f"unknown run name(s); known: {', '.join(r['name'] for r in plan())}")
    if args.list:
        for r in runs:
            state = "collected" if collected(r) else "finished" if finished(r) else "started" if (RUNS / r["name"] / "run.json").is_file() else "-"
            print(f"{r['name']:32s} {state}")
        return 0
    os.chdir(REPO)
    RUNS.mkdir(exist_ok=True)
    env = dict(os.environ, OPENMM_CPU_THREADS="1")
    for r in runs:
        if not finished(r) and not args.collect:
            if r["start"]:
                write_last_frame(*r["start"])
            cmd = command(r)
            print(f"[{time.strftime('%H:%M:%S')}] {r['name']}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.time()
            with open(RUNS / f"{r['name']}.out", "a") as log:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            print(f"[{time.strftime('%H:%M:%S')}] {r['name']}: exit {proc.returncode} after {time.time() - t0:.0f} s", flush=True)
            if proc.returncode != 0:
                print(f"  see data/runs/{r['name']}.out and data/runs/{r['name']}/run.log", flush=True)
                continue
        if finished(r):
            update_manifest(collect(r))
            print(f"  collected {r['name']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
