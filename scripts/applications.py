#!/usr/bin/env python3
"""The paper's applications (Kuroshima et al. 2024, section 3.2; docs/applications.md), from
the committed runs of data/manifest.json (split `application`).

    .venv/bin/python scripts/applications.py cluster --model sf=models/nicotinamide_sf.molenv \\
        --model authors=reference [--model gnn=models/nicotinamide_gnn.pt]

`cluster` (paper Fig. 7): the 148-molecule nicotinamide form I nanocluster, by default the
runs with the authors' force field at 100 K and 350 K (three realisations); `--run LABEL=NAME`
picks others (e.g. `--run "350 K, AM1-BCC=nicotinamide-I-cluster148-350K"`). Every frame of
every run is classified with each model by `molenv classify` (the commands are printed and
kept in <work>/commands.txt), then this script draws, per model, the number of molecules per
class against time for the core and the surface molecules (coordination number < 20,
METHOD.md section 4), one row per run (docs/applications/cluster_<model>.png), and
snapshots coloured by class (docs/applications/cluster_<model>_snapshots.png); the extended
XYZ files for OVITO stay in <work> (default out/applications). It also writes the counts
table of docs/applications.md (<work>/cluster/counts.md) and the core's melting times, the
time from which the core's form-I share stays below 50 % and 10 % of its first frame's, per run and as mean and
standard deviation over the realisations of one experiment (`--realisations LABEL ...`,
default the three 350 K runs; <work>/cluster/melting.md).

    .venv/bin/python scripts/applications.py interface --model sf=models/urea_sf.molenv --model authors=reference

`interface` (paper Fig. 8): the authors' urea form I / form IV interface run as it is (NPzT,
100 K). Every frame is classified with each model; the script draws the molecules per class
in the central region against time (the molecules between the three outermost layers of each
slab, which the authors held fixed; our run moves them too) with the box height beside it
(docs/applications/interface_<model>.png), and the class profile along z at several times
(docs/applications/interface_<model>_profile.png).

A model `authors=reference` is the original authors' published SF-MLP, imported from
../shared/reference (molenv import-reference). Frames are classified serially; the 2 x 101
cluster frames take about a minute per SF model, the 51 interface frames about two.
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
# row label -> run of data/manifest.json (the default of `cluster --run`)
CLUSTER_RUNS = {"100 K": "nicotinamide-I-cluster148-kuroshima-100K", "350 K": "nicotinamide-I-cluster148-kuroshima-350K",
                "350 K, seed 2": "nicotinamide-I-cluster148-kuroshima-350K-seed2",
                "350 K, seed 3": "nicotinamide-I-cluster148-kuroshima-350K-seed3"}
# the rows that are realisations of one experiment (the default of `cluster --realisations`)
CLUSTER_REALISATIONS = ["350 K", "350 K, seed 2", "350 K, seed 3"]
# the core's form-I shares of the melting times (core_melting_times)
MELTING_SHARES = (0.5, 0.1)
INTERFACE_RUN = "urea-I-IV-interface-paper-100K"
# The authors' interface file: molecules 1-480 are the form I slab (upper), 481-1200 the form
# IV slab (lower); `simulate system` keeps that order. They held the three outermost molecular
# layers of each slab fixed: the lowest 3 x 36 of form IV and the highest 3 x 48 of form I,
# left out of the central region (ranked by height in the first frame).
INTERFACE_SLABS = {"I": slice(0, 480), "IV": slice(480, 1200)}
OUTER_MOLECULES = {"IV": 3 * 36, "I": 3 * 48}


def molenv(*args) -> list[str]:
    return [sys.executable, "-m", "molenv", *map(str, args)]


def run(cmd: list[str], log: Path) -> None:
    shown = " ".join(shlex.quote(c) for c in ["molenv", *cmd[3:]])
    print(f"$ {shown}", flush=True)
    with open(log, "a") as fh:
        fh.write(shown + "\n")
    subprocess.run(cmd, check=True, cwd=REPO)


def manifest_entry(name: str) -> dict | None:
    """The manifest entry of a run, None (with a message) where it is not made yet."""
    entries = {e["name"]: e for e in json.loads((REPO / "data" / "manifest.json").read_text())["trajectories"]}
    if name not in entries:
        print(f"skipping {name}: not in data/manifest.json (make it with `data/generate.py --only {name}`)")
    return entries.get(name)


def model_path(spec: str, molecule: str, work: Path, log: Path) -> Path:
    """NAME=PATH -> PATH; PATH 'reference' imports the authors' model of `molecule`."""
    if spec != "reference":
        return Path(spec).resolve()
    out = work / f"{molecule}_authors.molenv"
    if not out.is_file():
        ref = REFERENCE / molecule
        classes = {"urea": "I,IV,Melt,A,B,C,III", "nicotinamide": "I,II,III,IV,V,VI,VII,VIII,IX,Melt"}[molecule]
        run(molenv("import-reference", "--weights", ref / "sf_mlp_weights_molstruc.txt", "--sf-input", ref / "sf_input_molstruc.dat",
                   "--spec", molecule, "--classes", classes, "--out", out), log)
    return out


# ----------------------------------------------------------------------------- cluster melting


def cluster(args) -> int:
    from molenv.analysis import ClassificationResult, read_table

    work = Path(args.work) / "cluster"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.txt"
    DOCS.mkdir(parents=True, exist_ok=True)
    runs = cluster_runs(args.runs)
    rows = {label: [] for label in runs}  # the counts table: the runs' rows, model after model
    melting = {}  # model -> run label -> melting times
    for name, spec in (m.split("=", 1) for m in args.model):
        path = model_path(spec, "nicotinamide", work, log)
        tables, results = {}, {}
        for t, run_name in runs.items():
            e = manifest_entry(run_name)
            if e is None:
                continue
            out = work / name / run_name
            if args.reuse and (out / "populations.dat").is_file():
                print(f"reusing {out}")
            else:
                run(molenv("classify", "--model", path, "--spec", "nicotinamide", "-t", REPO / "data" / e["files"]["trajectory"],
                           "--topology", REPO / "data" / e["files"]["topology"], "--no-pbc", "--xyz", "--no-progress", "--out", out), log)
            tables[t] = read_table(out / "populations.dat")
            results[t] = ClassificationResult.load(out / "molecules.npz")
        if not results:
            sys.exit("no cluster run to classify")
        classes = next(iter(results.values())).classes
        plot_cluster_series(DOCS / f"cluster_{name}.png", tables, classes, f"nicotinamide form I cluster (148 molecules), model: {name}")
        plot_snapshots(DOCS / f"cluster_{name}_snapshots.png", results, args.snapshot_times, f"model: {name}")
        summary = {t: cluster_summary(tables[t], classes, args.table_times) for t in tables}
        (work / name / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        for t, s in summary.items():
            rows[t].append(cluster_row(f"{t}, `{name}`", s))
        melting[name] = {t: core_melting_times(tables[t]) for t in tables}
    # the tables of docs/applications.md
    head = "| run, model | " + " | ".join(f"{t:g} ps" for t in args.table_times) + " |"
    text = "\n".join([head, "|---" * (len(args.table_times) + 1) + "|", *(r for label in runs for r in rows[label])]) + "\n"
    (work / "counts.md").write_text(text)
    print(text + f"(also in {work / 'counts.md'})")
    text = melting_table(melting, args.realisations)
    (work / "melting.md").write_text(text)
    print(text + f"(also in {work / 'melting.md'})")
    return 0


def cluster_runs(pairs: list[str] | None) -> dict[str, str]:
    """`--run LABEL=NAME` arguments -> {label: run name}, in the order given (CLUSTER_RUNS
    without any)."""
    if not pairs:
        return dict(CLUSTER_RUNS)
    runs = {}
    for pair in pairs:
        label, sep, name = pair.rpartition("=")
        if not sep or not label or not name:
            sys.exit(f"--run wants LABEL=NAME (a run of data/manifest.json), got {pair!r}")
        runs[label] = name
    return runs


def cluster_summary(table, classes, times) -> dict:
    """{time: counts}: the molecules called form I and melt and all molecules, core and
    surface, in the frame nearest each time (ps), rounded to whole molecules."""
    time = table.column("time")
    out = {}
    for want in times:
        f = int(np.argmin(np.abs(time - want)))
        out[float(want)] = {f"{part}_{c}": int(round(table.column(f"{part}_n_{c}")[f]))
                            for part in ("core", "surface") for c in ("I", classes[-1])}
        out[float(want)] |= {f"{part}_nmol": int(round(table.column(f"{part}_nmol")[f])) for part in ("core", "surface")}
    return out


def core_melting_times(table, shares=MELTING_SHARES) -> dict[float, float | None]:
    """{share: time}: for each share, the first frame time (ps) from which the core's form-I
    share (molecules called form I over core molecules, the CN rule of every frame) stays
    below that share of its value in the first frame to the end of the run; None where the
    last frame is not below it. Relative to the first frame, because the models do not call
    the same share of a hot crystalline core form I (the authors' SF-MLP about half)."""
    time = table.column("time")
    share = table.column("core_n_I") / np.maximum(table.column("core_nmol"), 1)
    out = {}
    for s in shares:
        above = np.flatnonzero(share >= s * share[0])
        if not len(above):
            out[s] = float(time[0])
        elif above[-1] == len(time) - 1:
            out[s] = None
        else:
            out[s] = float(time[above[-1] + 1])
    return out


def melting_table(melting: dict, realisations: list[str], shares=MELTING_SHARES) -> str:
    """Markdown: the core's melting times per run and model (`core_melting_times` at
    `shares`; `melting` is model -> run label -> times), then per model the mean and standard
    deviation (n - 1) over the `realisations` (run labels) where every one of them melted."""
    head = "| run, model | " + " | ".join(f"core form I < {s:.0%} of the first frame's" for s in shares) + " |"
    lines = [head, "|---" * (len(shares) + 1) + "|"]

    def ps(t):
        return "not by the end" if t is None else f"{t:g} ps"

    labels = list(dict.fromkeys(label for times in melting.values() for label in times))
    for label in labels:
        for name, times in melting.items():
            lines.append(f"| {label}, `{name}` | " + " | ".join(ps(times[label][s]) for s in shares) + " |")
    found = [r for r in realisations if r in labels]
    if len(found) >= 2:
        for name, times in melting.items():
            cells = []
            for s in shares:
                values = [times[r][s] for r in found]
                if any(v is None for v in values):
                    cells.append("not all melted")
                else:
                    cells.append(f"{np.mean(values):.0f} +- {np.std(values, ddof=1):.0f} ps")
            lines.append(f"| mean +- sd over {len(found)} ({', '.join(found)}), `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cluster_row(label: str, summary: dict) -> str:
    """A markdown row of `cluster_summary`: per time, form I / melt / all, core | surface."""
    def cell(s):
        i, m = (k for k in s if k.startswith("core_") and not k.endswith("nmol"))
        return (f"{s[i]} / {s[m]} / {s['core_nmol']} \\| "
                f"{s['surface' + i[4:]]} / {s['surface' + m[4:]]} / {s['surface_nmol']}")
    return f"| {label} | " + " | ".join(cell(s) for s in summary.values()) + " |"


def plot_cluster_series(path: Path, tables: dict, classes: list[str], title: str) -> None:
    """Fig. 7 layout: rows = runs (in the order given), columns = core / surface; molecules per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*classes, "uncertain"]
    melt = classes[-1]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(tables), 2, figsize=(10, 2.6 * len(tables) + 0.8), sharex=True, squeeze=False)
    for row, (t, table) in enumerate(tables.items()):
        time = table.column("time")
        for col, part in enumerate(("core", "surface")):
            ax = axes[row, col]
            # form I, the melt and uncertain on their own; the other forms summed (each is a
            # few molecules at most: misreadings of a distorted form I or of the surface)
            others = sum(table.column(f"{part}_n_{c}") for c in labels if c not in ("I", melt, "uncertain"))
            ax.plot(time, table.column(f"{part}_n_I"), color=colours(0), label="I")
            ax.plot(time, table.column(f"{part}_n_{melt}"), color=colours(9), label=melt)
            ax.plot(time, others, color=colours(3), label="other forms")
            ax.plot(time, table.column(f"{part}_n_uncertain"), color="0.5", linestyle="--", label="uncertain")
            ax.plot(time, table.column(f"{part}_nmol"), color="k", alpha=0.4, linewidth=0.8, label="total")
            ax.set_title(f"{t}, {part} molecules", fontsize=9)
            ax.set_ylim(bottom=0)
            if col == 0:
                ax.set_ylabel("molecules")
    axes[0, 1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    for ax in axes[-1]:
        ax.set_xlabel("time (ps)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def plot_snapshots(path: Path, results: dict, times: list[float], title: str) -> None:
    """Molecule centres coloured by class: a 6 A thick slice through the cluster's centre
    (so that core and surface both show), rows = runs, columns = times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(results), len(times), figsize=(2.6 * len(times), 2.3 * len(results) + 0.5), squeeze=False)
    for row, (t, r) in enumerate(results.items()):
        labels = r.labels(0.5)
        names = r.label_names
        for col, want in enumerate(times):
            f = int(np.argmin(np.abs(r.times - want)))
            centres = r.centres[f] - r.centres[f].mean(axis=0)
            ax = axes[row, col]
            inside = np.abs(centres[:, 2]) < 3.0
            ax.scatter(centres[~inside, 0], centres[~inside, 1], s=6, color="0.85")
            for k in np.unique(labels[f][inside]):
                sel = inside & (labels[f] == k)
                ax.scatter(centres[sel, 0], centres[sel, 1], s=22, color="0.5" if names[k] == "uncertain" else colours(k % 10),
                           label=names[k], edgecolors="k", linewidths=0.3)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{t}, {r.times[f]:.0f} ps", fontsize=9)
            ax.legend(fontsize=6, loc="lower right", markerscale=0.7)
    fig.suptitle(f"{title}: centres within 3 A of the mid-plane (grey: others)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


# ----------------------------------------------------------------------------- interface


def interface(args) -> int:
    from molenv.analysis import ClassificationResult

    work = Path(args.work) / "interface"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.txt"
    DOCS.mkdir(parents=True, exist_ok=True)
    e = manifest_entry(INTERFACE_RUN)
    if e is None:
        sys.exit("no interface run to classify")
    summaries = {}
    for name, spec in (m.split("=", 1) for m in args.model):
        path = model_path(spec, "urea", work, log)
        out = work / name
        if args.reuse and (out / "molecules.npz").is_file():
            print(f"reusing {out}")
        else:
            run(molenv("classify", "--model", path, "--spec", "urea", "-t", REPO / "data" / e["files"]["trajectory"],
                       "--topology", REPO / "data" / e["files"]["topology"], "--no-surface", "--no-progress", "--out", out), log)
        result = ClassificationResult.load(out / "molecules.npz")
        heights = interface_heights(result)
        central = central_molecules(heights[0])
        groups = interface_groups(result.classes)
        counts = group_counts(result, groups, central)
        plot_interface_series(DOCS / f"interface_{name}.png", result, counts, int(central.sum()), f"urea form I / form IV interface (authors' file), 100 K, model: {name}")
        plot_interface_profile(DOCS / f"interface_{name}_profile.png", result, heights, groups, args.profile_times, f"model: {name}")
        summaries[name] = {g: [float(c[0]), float(c[-1])] for g, c in counts.items()} | {
            "central_molecules": int(central.sum()), "times_ps": [float(result.times[0]), float(result.times[-1])],
            "box_z_A": [float(result.boxes[0, 2]), float(result.boxes[-1, 2])]}
        print(f"{name}: central region, first -> last frame: " + ", ".join(f"{g} {c[0]:.0f} -> {c[-1]:.0f}" for g, c in counts.items()))
        # the starting structure itself (the run's first frame is at 2 ps): the authors' file
        start = work / f"{name}-file"
        if not (args.reuse and (start / "molecules.npz").is_file()):
            run(molenv("classify", "--model", path, "--spec", "urea", "-t", REFERENCE / "urea" / "formI_formIV_interface.data",
                       "--name-map", "4:N1,5:N2", "--type-elements", "1:H,2:O,3:C,4:N,5:N", "--no-surface", "--no-plot",
                       "--no-progress", "--out", start), log)
        first = ClassificationResult.load(start / "molecules.npz")
        at_start = group_counts(first, interface_groups(first.classes), central_molecules(interface_heights(first)[0]))
        summaries[name]["file"] = {g: float(c[0]) for g, c in at_start.items()}
        print(f"{name}: central region of the authors' file (t = 0): " + ", ".join(f"{g} {c[0]:.0f}" for g, c in at_start.items()))
    (work / "summary.json").write_text(json.dumps(summaries, indent=1) + "\n")
    return 0


def interface_heights(result) -> np.ndarray:
    """(F, N) height of every molecule centre above the bottom of the form IV slab in the first
    frame (minus 1 A, half a layer spacing), in A.

    The MD writes centres wrapped into the box, and the barostat scales them with L_z, so the
    heights are taken in fractional z (unchanged by the scaling), wrapped into [0, 1) from the
    bottom of the stack, then times the frame's L_z. The form IV slab is found by molecule order
    (INTERFACE_SLABS) and is thinner than the box, so its lowest centre is well defined once its
    fractional heights are unwrapped around their circular mean. The box is orthorhombic, as in
    the paper."""
    lz = result.boxes[:, 2][:, None]
    s = np.mod(result.centres[:, :, 2] / lz, 1.0)
    iv = s[0, INTERFACE_SLABS["IV"]]
    middle = np.angle(np.exp(2j * np.pi * iv).mean()) / (2 * np.pi)
    lowest = middle + (np.mod(iv - middle + 0.5, 1.0) - 0.5).min()
    bottom = lowest - 1.0 / lz[0, 0]
    return np.mod(s - bottom, 1.0) * lz


def central_molecules(first_heights: np.ndarray) -> np.ndarray:
    """Mask of the molecules between the outer layers that the authors held fixed: all but the
    lowest OUTER_MOLECULES of the form IV slab and the highest of the form I slab."""
    central = np.ones(len(first_heights), dtype=bool)
    for slab, lowest in (("IV", True), ("I", False)):
        index = np.arange(len(first_heights))[INTERFACE_SLABS[slab]]
        order = index[np.argsort(first_heights[index])]
        n = OUTER_MOLECULES[slab]
        central[order[:n] if lowest else order[len(order) - n:]] = False
    return central


def interface_groups(classes: list[str]) -> dict[str, list[int]]:
    """Class columns plotted together: form I, form IV, the melt, and the other forms of a model
    (the authors' model also knows urea A, B, C and III)."""
    melt = [k for k, c in enumerate(classes) if c.lower() == "melt"]
    groups = {"I": [classes.index("I")], "IV": [classes.index("IV")], "melt": melt}
    groups["other forms"] = [k for k in range(len(classes)) if not any(k in g for g in groups.values())]
    return {g: ks for g, ks in groups.items() if ks}


def group_counts(result, groups: dict, mask: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Molecules of `mask` per class group per frame (hard labels; below `threshold`: uncertain)."""
    labels = result.labels(threshold)[:, mask]
    counts = {g: np.isin(labels, ks).sum(axis=1).astype(float) for g, ks in groups.items()}
    counts["uncertain"] = (labels < 0).sum(axis=1).astype(float)
    return counts


GROUP_COLOURS = {"I": "tab:blue", "IV": "tab:orange", "melt": "tab:gray", "other forms": "tab:red", "uncertain": "0.75"}


def plot_interface_series(path: Path, result, counts: dict, n_central: int, title: str) -> None:
    """Fig. 8 layout: molecules per class in the central region against time; the box height beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2.2, 1]})
    for g, y in counts.items():
        ax.plot(result.times, y, color=GROUP_COLOURS[g], label=g, linestyle="--" if g == "uncertain" else "-")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel(f"molecules (central region, {n_central})")
    ax.set_ylim(0, n_central * 1.02)
    ax.legend(fontsize=8)
    bx.plot(result.times, result.boxes[:, 2], color="k")
    bx.set_xlabel("time (ps)")
    bx.set_ylabel("box height L_z (A)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def plot_interface_profile(path: Path, result, heights: np.ndarray, groups: dict, times: list[float], title: str, width: float = 2.0) -> None:
    """Class fractions along z in slabs of `width` A, one panel per time; the bottom of the box
    is form IV, the top form I (the authors' file), and the box's periodic faces are the second
    interface."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result.labels(0.5)
    fig, axes = plt.subplots(len(times), 1, figsize=(8, 1.5 * len(times) + 0.8), sharex=True, squeeze=False)
    for ax, want in zip(axes[:, 0], times):
        f = int(np.argmin(np.abs(result.times - want)))
        edges = np.arange(0.0, result.boxes[f, 2] + width, width)
        slab = np.digitize(heights[f], edges) - 1
        n = np.bincount(slab, minlength=len(edges) - 1)[: len(edges) - 1].astype(float)
        bottom = np.zeros_like(n)
        centres = 0.5 * (edges[1:] + edges[:-1])
        members = {g: np.isin(labels[f], ks) for g, ks in groups.items()} | {"uncertain": labels[f] < 0}
        for g, sel in members.items():
            k = np.bincount(slab[sel], minlength=len(n))[: len(n)] / np.maximum(n, 1)
            ax.bar(centres, k, width=width, bottom=bottom, color=GROUP_COLOURS[g], label=g, linewidth=0)
            bottom += k
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction", fontsize=8)
        ax.set_title(f"{result.times[f]:.0f} ps", fontsize=9, loc="left")
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel(f"height above the bottom of the stack (A), slabs of {width:g} A")
    fig.suptitle(f"class profile along z (form IV below, form I above), {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(REPO / "out" / "applications"), help="classification outputs (default out/applications)")
    parser.add_argument("--reuse", action="store_true", help="keep classifications that exist")
    sub = parser.add_subparsers(dest="application", required=True)
    c = sub.add_parser("cluster", help="nicotinamide nanocluster melting (paper Fig. 7)")
    c.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help="a model to classify with (PATH 'reference': the authors' SF-MLP); repeatable")
    c.add_argument("--run", action="append", dest="runs", metavar="LABEL=NAME",
                   help="a cluster run of data/manifest.json and its row label; repeatable (default: " + ", ".join(f"'{k}={v}'" for k, v in CLUSTER_RUNS.items()) + ")")
    c.add_argument("--table-times", type=float, nargs="+", default=[5, 100, 200, 300, 500],
                   help="ps, the columns of the counts table <work>/cluster/counts.md (default 5 100 200 300 500)")
    c.add_argument("--snapshot-times", type=float, nargs="+", default=[0, 100, 250, 500], help="ps (default 0 100 250 500)")
    c.add_argument("--realisations", nargs="+", default=CLUSTER_REALISATIONS, metavar="LABEL",
                   help="run labels that are realisations of one experiment: mean and sd of their melting times "
                        f"(default {' '.join(repr(r) for r in CLUSTER_REALISATIONS)})")
    c.set_defaults(run=cluster)
    i = sub.add_parser("interface", help="urea form I / form IV interface (paper Fig. 8)")
    i.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help="a model to classify with (PATH 'reference': the authors' SF-MLP); repeatable")
    i.add_argument("--profile-times", type=float, nargs="+", default=[0, 20, 50, 100], help="ps (default 0 20 50 100)")
    i.set_defaults(run=interface)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
