"""The main job on the built-in data: what `make demo` runs.

From the committed urea MD data (``data/``, made with `molenv simulate`):

1. ``molenv featurize``  - label the frames (form I, form IV, melt), split them the way the
   method does (train 100 K crystals + melt, test 200 K crystals + held-out melt frames);
2. ``molenv train sf``   - train the SF-MLP (early stopping) and export the model file;
3. ``molenv evaluate``   - micro F1, confusion matrix, t-SNE maps on the test split;
4. ``molenv plumed-input`` + ``molenv reanalyse`` - run ``MOLENV_CLASSIFY`` through PLUMED on a
   trajectory the classifier never saw, a form I / form IV interface (two slabs stacked
   along y), with the I -> IV path CV of METHOD.md §7 and per-molecule probabilities;
5. a short report (``report.md``) with the F1, the confusion matrix and the class
   populations over time, as pictures.

Every step is the command a user would type; the report lists them.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from molenv.protocols import manifest_entries, method_only

if TYPE_CHECKING:  # for the annotations: the functions import numpy where they use it
    import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
INTERFACE = "urea-I-IV-interface-100K"
# METHOD.md §7: reference I -> IV path, 10 images from (0.9, 0.1) to (0.27, 0.73), lambda 200
PATH_CV = "I,IV:0.9,0.1:0.27,0.73:10:200"


class DemoError(RuntimeError):
    pass


def _run(command: list[str], log, cwd: Path | None = None) -> float:
    """Run a `molenv` sub-command as a user would; stream it into the log; return seconds."""
    printable = "molenv " + " ".join(shlex.quote(str(c)) for c in command)
    print(f"\n$ {printable}", flush=True)
    log.write(f"\n$ {printable}\n")
    log.flush()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "molenv", *map(str, command)], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise DemoError(f"`{printable}` failed (exit {proc.returncode}); see {log.name}")
    return time.perf_counter() - start


def _read_colvar(path: Path) -> tuple[list[str], np.ndarray]:
    import numpy as np

    names = path.read_text().splitlines()[0].split()[2:]  # '#! FIELDS time ...'
    return names, np.atleast_2d(np.loadtxt(path, comments="#"))


def _plot_colvar(colvar: Path, out: Path) -> Path:
    """f_<class> and the path CV s over time, from the action's COLVAR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, data = _read_colvar(colvar)
    time_ps = data[:, 0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.5), sharex=True)
    for i, name in enumerate(names):
        if name.startswith("cls.f_"):
            top.plot(time_ps, data[:, i], label=name.removeprefix("cls.f_"))
    top.set_ylabel("class fraction f")
    top.set_ylim(-0.02, 1.02)
    top.legend(title="MOLENV_CLASSIFY", ncol=3)
    for name, style in (("cls.s", "-"), ("cls.z", "--")):
        if name in names:
            bottom.plot(time_ps, data[:, names.index(name)], style, label=name.removeprefix("cls."))
    bottom.set_xlabel("time (ps)")
    bottom.set_ylabel("path CV (I -> IV)")
    bottom.legend()
    fig.suptitle("urea form I / form IV interface, 100 K")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _true_forms(topology: Path) -> np.ndarray:
    """The form each molecule of the interface run was built as: chain A = I, chain B = IV."""
    import MDAnalysis as mda
    import numpy as np

    chains = mda.Universe(str(topology)).residues.segids
    return np.where(chains == "A", "I", "IV")


def _plot_profile(molecules_npz: Path, truth: np.ndarray, out: Path) -> Path:
    """Time-averaged class probability against the molecule's y (the stacking axis), with the
    form each molecule was built as: the picture of where the classifier puts the interfaces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.load(molecules_npz)
    classes = [str(c) for c in data["classes"]]
    y = np.mod(data["centres"][:, :, 1], data["boxes"][:, None, 1])  # wrapped into the box
    p = data["probabilities"]
    edges = np.linspace(0.0, float(data["boxes"][0, 1]), 31)
    mids = 0.5 * (edges[1:] + edges[:-1])
    bins = np.clip(np.digitize(y, edges) - 1, 0, len(mids) - 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k, name in enumerate(classes):
        mean = [p[..., k][bins == b].mean() if np.any(bins == b) else np.nan for b in range(len(mids))]
        ax.plot(mids, mean, "o-", ms=3, label=f"p({name})")
    y_iv = y[:, truth == "IV"].ravel()
    ax.axvspan(y_iv.min(), y_iv.max(), color="0.9", zorder=0, label="built as form IV")
    ax.set_xlabel("y (A), stacking axis")
    ax.set_ylabel("mean class probability")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(f"class probability across the I/IV interface ({len(y)} frames)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _report(out: Path, metrics: dict, colvar: Path, commands: list[tuple[str, float]], interface_dir: Path, truth) -> Path:
    import numpy as np

    poly = metrics["heads"]["polymorph"]
    names, data = _read_colvar(colvar)
    mean = {n.removeprefix("cls."): float(np.mean(data[:, i])) for i, n in enumerate(names) if n.startswith("cls.")}
    lines = [
        "# molenv demo: urea form I / form IV / melt",
        "",
        "SF-MLP (24 symmetry functions, 25-25 sigmoid hidden units, softmax over I, IV, melt) trained",
        "on the committed MD data (`data/urea`, GAFF/AM1-BCC, OpenMM): crystals at 100 K and the melt",
        "at 350 K; tested on crystals at 200 K and held-out melt frames.",
        "",
        "## Test accuracy",
        "",
        f"micro F1 (polymorph) = **{poly['micro_f1']:.4f}** on {poly['n']} molecules "
        "(published SF-MLP for urea: >= 0.98)",
        "",
        "| class | recall | precision | support |",
        "|---|---|---|---|",
    ]
    for name, row in poly["per_class"].items():
        lines.append(f"| {name} | {row['recall']:.4f} | {row['precision']:.4f} | {row['support']} |")
    lines += [
        "",
        "![confusion matrix](evaluation/confusion_polymorph.png)",
        "",
        "## MOLENV_CLASSIFY on a form I / form IV interface",
        "",
        f"`{INTERFACE}`: {len(truth)} molecules ({np.sum(truth == 'I')} form I, {np.sum(truth == 'IV')} form IV, slabs stacked along y), 40 ps at",
        "100 K, never seen in training. PLUMED (`MOLENV_CLASSIFY` with the exported model, the",
        "I -> IV path CV of METHOD.md §7, s in 0..1) through `molenv reanalyse`.",
        "",
        "mean over the run: " + ", ".join(f"{k} = {v:.3f}" for k, v in mean.items()),
        f"(as built: f_I = {np.mean(truth == 'I'):.3f}, f_IV = {np.mean(truth == 'IV'):.3f}; molecules at the two",
        "interfaces are neither bulk I nor bulk IV)",
        "",
        "![fractions and path CV](interface/colvar.png)",
        "",
        "![profile](interface/profile.png)",
        "",
        "![populations](interface/analysis/populations.png)",
        "",
        "## Commands",
        "",
        "```",
        *[f"{c}    # {s:.0f} s" for c, s in commands],
        "```",
        "",
        f"Outputs: `{interface_dir.relative_to(out)}/COLVAR`, `prob.dat` (per-molecule probabilities), ",
        "`analysis/populations.dat`, `evaluation/metrics.json`, `sf/model.molenv`.",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_demo(out: str | Path = "out/demo", *, quick: bool = False) -> Path:
    """Run the whole demo into `out`; returns the report path. ``quick`` uses every 5th frame."""
    out = Path(out).resolve()
    manifest = DATA / "manifest.json"
    if not manifest.exists():
        raise DemoError(f"{manifest} not found: the demo needs the committed MD data of this repository")
    out.mkdir(parents=True, exist_ok=True)
    interface_dir = out / "interface"
    interface_dir.mkdir(exist_ok=True)
    dataset, sf, evaluation = out / "dataset", out / "sf", out / "evaluation"
    model = sf / "model.molenv"
    step = ["--step", "5"] if quick else []
    # the paper's protocol: data/ also holds training data at further temperatures
    only = method_only(manifest_entries(manifest), "urea")
    selection = ["--only", *only] if only else []
    steps = [
        (["featurize", "--manifest", manifest, "--molecule", "urea", "--out", dataset, "--overwrite", *selection, *step], None),
        (["train", "sf", dataset, "--out", sf, "--name", "urea SF-MLP (molenv demo)"], None),
        (["evaluate", sf, dataset, "--out", evaluation, "--tsne-samples", "600"], None),
        (["plumed-input", "--model", model, "--topology", DATA / "urea" / f"{INTERFACE}.pdb.gz", "--out", interface_dir / "plumed.dat",
          "--prob-file", "prob.dat", "--path", PATH_CV], None),
        (["reanalyse", "--plumed", "plumed.dat", "--trajectory", DATA / "urea" / f"{INTERFACE}.xtc",
          "--topology", DATA / "urea" / f"{INTERFACE}.pdb.gz", "--analyse", "--out", "analysis", "--no-progress"], interface_dir),
    ]
    commands = []
    with open(out / "demo.log", "w") as log:
        for command, cwd in steps:
            seconds = _run(command, log, cwd)
            shown = " ".join(shlex.quote(str(c).replace(str(out) + "/", "").replace(str(REPO) + "/", "")) for c in command)
            commands.append((("cd interface && " if cwd else "") + "molenv " + shown, seconds))
    metrics = json.loads((evaluation / "metrics.json").read_text())
    truth = _true_forms(DATA / "urea" / f"{INTERFACE}.pdb.gz")
    _plot_colvar(interface_dir / "COLVAR", interface_dir / "colvar.png")
    _plot_profile(interface_dir / "analysis" / "molecules.npz", truth, interface_dir / "profile.png")
    return _report(out, metrics, interface_dir / "COLVAR", commands, interface_dir, truth)
