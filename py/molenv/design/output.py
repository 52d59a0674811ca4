"""What `molenv design` writes: DIR/spec.toml (a spec featurize, train and classify take as
--molecule), DIR/report.md with its PNG plots, and DIR/design.json (the numbers of the report)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from molenv.design.selection import function_label
from molenv.spec import PARAMETER_KEYS

__all__ = ["spec_toml", "write_design", "centre_entry", "vector_entries"]


def _toml_value(x) -> str:
    if isinstance(x, str):
        return json.dumps(x)  # a JSON string is a TOML basic string
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float, np.integer, np.floating)):
        return repr(float(x)) if isinstance(x, (float, np.floating)) else str(int(x))
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in x.items()) + " }"
    raise TypeError(f"no TOML form for {type(x).__name__}")


def _blocks(functions) -> list[tuple[str, int | None, list]]:
    """Consecutive functions of one kind and vector, as spec blocks."""
    blocks = []
    for sf in functions:
        if blocks and blocks[-1][0] == sf.kind and blocks[-1][1] == sf.vector:
            blocks[-1][2].append(sf)
        else:
            blocks.append((sf.kind, sf.vector, [sf]))
    return blocks


def centre_entry(spec):
    """The spec's centre as written in a spec file: an atom name, or a list of names (centroid)."""
    return [spec.atom_names[p - 1] for p in spec.centre] if isinstance(spec.centre, tuple) else spec.atom_names[spec.centre - 1]


def vector_entries(spec) -> list:
    """The spec's vectors as written in a spec file (docs/spec.md, "Geometry"): ``[a, b]``,
    ``{ atoms = [a, b], sign_invariant = true }`` or ``{ normal = [[a, b], [c, d]] }`` (with
    ``sign_invariant = true`` where it is)."""
    out = []
    for k, atoms in enumerate(spec.vectors, 1):
        names = [spec.atom_names[p - 1] for p in atoms]
        entry = {"atoms": names} if len(names) == 2 else {"normal": [names[:2], names[2:]]}
        if k in spec.sign_invariant:
            entry["sign_invariant"] = True
        out.append(names if entry == {"atoms": names} else entry)
    return out


def spec_toml(s) -> str:
    """A designed spec (`MoleculeSpec`) as TOML: the molecule as given (atoms, bonds, named
    charge and Lennard-Jones sets) with the chosen centre, vectors, cutoff and functions."""
    out = [f"# {s.name}: point-vector descriptors chosen by `molenv design` (report.md beside this file:",
           "# the candidates, their scores and the selection). Feature order as written below."]
    out.append(f"name = {_toml_value(s.name)}")
    if s.smiles:
        out.append(f"smiles = {_toml_value(s.smiles)}")
    out.append("")
    out.append("atoms = [")
    out += [f"  {{ name = {_toml_value(a)}, element = {_toml_value(e)} }}," for a, e in zip(s.atom_names, s.elements)]
    out.append("]")
    out.append("bonds = " + _toml_value([[s.atom_names[a], s.atom_names[b]] for a, b in s.bonds]))
    out.append("")
    out.append(f"centre = {_toml_value(centre_entry(s))}" + ("   # the centroid of these atoms" if isinstance(s.centre, tuple) else ""))
    normals = any(len(v) == 4 for v in s.vectors)
    out.append("vectors = " + _toml_value(vector_entries(s)) + ("   # [a, b]: r(b) - r(a); normal [[a, b], [c, d]]: (r(b) - r(a)) x (r(d) - r(c))"
                                                             if normals else "   # v = r(second) - r(first)"))
    out += ["", "[cutoff]          # Angstrom, on the centre-centre distance", f"rmin = {s.rmin:.6g}", f"rmax = {s.rmax:.6g}"]
    for kind, vector, functions in _blocks(s.functions):
        out += ["", "[[descriptors]]", f"kind = {_toml_value(kind)}"]
        if vector is not None:
            out.append(f"vector = {vector}")
        for k, key in enumerate(PARAMETER_KEYS[kind]):
            out.append(f"{key} = " + _toml_value([round(float(sf.params[k]), 6) for sf in functions]))
    for table, sets in (("charges", s.charge_sets), ("lennard_jones", s.lennard_jones_sets)):
        for set_name, entry in sets.items():
            values = entry.by_atom(s)
            out += ["", f"[{table}.{set_name}]", f"source = {_toml_value(entry.source)}", f"values = {_toml_value(values)}"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- plots


def _save(fig, path: Path) -> None:
    """A figure as a 100 dpi PNG with a 256-colour palette (a few tens of kB: small enough to commit)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as img:
        img.convert("RGB").quantize(colors=256).save(path, optimize=True)


def _plots(result, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, (r, g) in result.rdfs.items():
        ax.plot(r, g, label=label, lw=1.2)
    for t in result.cutoffs:
        ax.axvline(t.rc, color="0.6" if t.rc != result.rc else "k", ls=":" if t.rc != result.rc else "--", lw=1)
    ax.set_xlabel(f"centre-centre distance r (A), centre {result.chosen_centre.label}")
    ax.set_ylabel("g(r)")
    ax.set_title("centre-centre RDF per form (dotted: cutoff candidates, dashed: chosen)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    _save(fig, out / "rdf.png")
    files["rdf"] = "rdf.png"

    n = len(result.cosines)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, v in zip(axes[0], result.chosen_vectors):
        edges = np.linspace(*v.value_range, 41)
        for form, cos in result.cosines[v.label].items():
            ax.hist(cos, bins=edges, density=True, histtype="step", label=form, lw=1.2)
        ax.set_xlabel(f"{'cos^2' if v.sign_invariant else 'cos'} theta_IJ of {v.label}")
        ax.set_title(f"pairs within {result.probe_radius:g} A", fontsize=9)
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out / "angles.png")
    files["angles"] = "angles.png"

    steps = result.selection.steps
    fig, ax = plt.subplots(figsize=(7, 3.5))
    k = np.arange(1, len(steps) + 1)
    ax.plot(k, [s.macro_f1 for s in steps], "o-", label="held-out macro F1")
    ax.plot(k, [s.micro_f1 for s in steps], "s-", label="held-out micro F1", ms=3)
    ax.set_xlabel("functions selected")
    ax.set_ylabel("F1")
    ax2 = ax.twinx()
    losses = [s.log_loss for s in steps]
    ax2.plot(k, losses, "^-", color="C3", label="log loss", ms=3)
    if any(loss > 0 for loss in losses):  # forms told apart perfectly from the first function give losses of 0
        ax2.set_yscale("log")
    ax2.set_ylabel("held-out log loss")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("greedy forward selection (linear discriminant)")
    fig.tight_layout()
    _save(fig, out / "selection.png")
    files["selection"] = "selection.png"
    return files


# ----------------------------------------------------------------------------- report


def loss_text(x: float) -> str:
    """A log loss: 4 decimals, or 2 significant digits below 1e-3 (the selection goes on
    lowering it after the F1 saturates)."""
    return f"{x:.4f}" if x >= 1e-3 or x == 0 else f"{x:.1e}"


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


VECTORS_SHOWN = 15  # best candidate vectors in the report's table (with every normal and sign-invariant one)


def _report(result, files: dict[str, str], command: str | None) -> str:
    from molenv.design import designer

    s = result.spec
    lines = [f"# Descriptor design: {s.name}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"Written by `molenv design` (molenv {__import__('molenv').__version__}, {time.strftime('%Y-%m-%d %H:%M')}); "
              "see docs/design.md for the method.", "", "## Samples", ""]
    rows = []
    for label, form in result.forms.items():
        held = sum(form.held_out)
        rows.append([label, len(form.frames) - held, held, form.n_molecules, "random rigid-molecule motion (stand-in)" if form.generated else "MD",
                     "<br>".join(form.origins)])
    lines += _table(["form", "fitting frames", "held-out frames", "molecules", "samples", "from"], rows)
    if any(f.generated for f in result.forms.values()):
        noise = result.settings["noise"]
        lines += ["", f"**Stand-in samples**: forms marked so were sampled by moving every molecule of the crystal as a rigid body "
                      f"(Gaussian translation {noise['translation']:g} A and rotation {noise['rotation']:g} deg per component, "
                      "independent per molecule): no correlated motion, no expansion, no flexibility. Accuracies from them are "
                      "optimistic; design again from short MD runs (--trajectory) before relying on the spec."]
    if result.settings.get("warm_held_out"):
        widths = result.settings["warm_held_out"]
        if not isinstance(widths, dict):  # one pair for every form
            t, r = widths
            what = f"every held-out frame got extra random rigid-molecule motion (translation {t:g} A, rotation {r:g} deg per component)"
        else:
            what = ("the held-out frames of each form named got extra random rigid-molecule motion (translation A / rotation deg per "
                    "component: " + ", ".join(f"{label} {t:.3g} / {r:.3g}" for label, (t, r) in widths.items()) + "; the other forms none)")
        lines += ["", f"**Warmed held-out frames**: {what}, so the choices are scored on samples hotter than those they are fitted on."]
    if result.settings.get("expand_held_out"):
        strains = result.settings["expand_held_out"]
        what = (f"every periodic held-out frame stretched by {100 * strains:.3g} %" if not isinstance(strains, dict) else
                "the periodic held-out frames of each form named stretched by " + ", ".join(f"{label} {100 * e:.3g} %" for label, e in strains.items()))
        lines += ["", f"**Expanded held-out frames**: {what} (cell edges and molecule centroids, molecules rigid), as a crystal expands "
                      "when it warms: the choices are scored on a lattice longer than the one they are fitted on."]
    lines += ["", f"Fitting / held-out molecules used in the scores: {result.n_rows['fitting']} / {result.n_rows['held_out']} "
                  "(stratified by form).", ""]

    lines += ["## Centre", "", f"Separability of the forms' centre-centre distance distributions up to {result.probe_radius:g} A "
              "(Jensen-Shannon distance, mean over pairs of forms, and the worst pair). Chosen: the centre closest to the "
              f"molecule's centroid (mean distance over a frame's molecules) among those within {designer.CENTRE_TOLERANCE:g} x the best "
              f"score; an atom rather than a centroid unless the centroid is over {designer.CENTRAL_TOLERANCE:g} A more central.", ""]
    lines += _table(["centre", "what", "mean JS", "worst JS", "worst pair", "from centroid (A)", ""],
                    [[c.candidate.label, c.candidate.explained, f"{c.mean:.3f}", f"{c.worst:.3f}", " / ".join(c.worst_pair or ()),
                      f"{result.centre_offsets[c.candidate.label]:.2f}", "**chosen**" if c.candidate == result.chosen_centre else ""]
                     for c in result.centres])
    lines += ["", f"![centre-centre RDF]({files['rdf']})", ""]

    lines += ["## Vectors", "", f"Separability of the forms' cos(theta_IJ) distributions (cos^2 for a sign-invariant vector; pairs of centres "
              f"within {result.probe_radius:g} A). v1 is the best; each further vector the one whose cosines together with those of the vectors "
              f"already chosen separate the forms best (joint histogram), skipping vectors nearly parallel (mean |cos| > {designer.PARALLEL_LIMIT:g}) "
              "to a chosen one. Candidates: every heavy-atom pair, the plane normals of rings and of trigonal centres; a vector that "
              "relabelling equivalent atoms only reverses is sign-invariant (S3/S4 of cos^2 theta, docs/spec.md).", ""]
    chosen = {v: k + 1 for k, v in enumerate(result.chosen_vectors)}
    shown = [(k, v) for k, v in enumerate(result.vectors, 1) if k <= VECTORS_SHOWN or v.candidate.kind != "atoms" or v.candidate.sign_invariant]
    lines += _table(["rank", "vector", "what", "mean JS", "worst JS", "worst pair", ""],
                    [[k, v.candidate.label, v.candidate.explained, f"{v.mean:.3f}", f"{v.worst:.3f}", " / ".join(v.worst_pair or ()),
                      f"**v{chosen[v.candidate]}**" if v.candidate in chosen else ""] for k, v in shown])
    for k, j in enumerate(result.joint, 2):
        lines.append(f"\nv{k} {j.candidate.label}: joint separability with the vectors before it {j.mean:.3f} (worst pair "
                     f"{' / '.join(j.worst_pair or ())}: {j.worst:.3f}).")
    if result.equivalent:
        groups = sorted({tuple(sorted({p, *o})) for p, o in result.equivalent.items()})
        lines.append("\nThe bond graph cannot tell apart " + "; ".join(", ".join(s.atom_names[p - 1] for p in g) for g in groups)
                     + ". A candidate that relabelling them makes another relies on the labelling convention of the input files, which "
                     "must then keep it the same way in every molecule of every file (as molenv's crystal building does); one that "
                     "relabelling only reverses is scored and used sign-invariant, and needs no convention.")
    if len(result.vectors) > len(shown):
        lines.append(f"\n({len(result.vectors) - len(shown)} more candidates with lower scores in design.json.)")
    lines += ["", f"![angle distributions]({files['angles']})", ""]

    lines += ["## Cutoff", "", "Candidates: the shell boundaries (minima) of the crystal forms' mean RDF and the largest usable cutoff. "
              "Score: held-out accuracy of the selection's linear discriminant on the whole candidate pool at that cutoff. Chosen: the smallest "
              f"cutoff with macro F1 within {designer.CUTOFF_F1_TOLERANCE:g} of the best and log loss at most "
              f"{designer.CUTOFF_LOSS_FACTOR:g} x the best; rmin = rmax - {designer.SWITCH_WIDTH:g} A.", ""]
    lines += _table(["rmax (A)", "pool", "macro F1", "micro F1", "log loss", ""],
                    [[f"{t.rc:g}", t.n_pool, f"{t.macro_f1:.4f}", f"{t.micro_f1:.4f}", loss_text(t.log_loss), "**chosen**" if t.rc == result.rc else ""]
                     for t in result.cutoffs])

    sel = result.settings["selection"]
    lines += ["", "## Symmetry functions", "", f"Pool at rmax {result.rc:g} A: {len(result.pool)} functions "
              + "(" + ", ".join(f"{n} {k}" for k, n in _counts(result.pool).items()) + "). Greedy forward selection on held-out "
              f"macro F1, then log loss, of a shrunk linear discriminant (shrinkage {sel['shrinkage']:g}); at most {sel['max_functions']}, stopping after "
              f"{sel['min_functions']} when an addition gains < {sel['min_gain']:g} macro F1 and < {100 * sel['min_loss_gain']:g} % log loss.",
              "", f"Stopped by: {result.selection.stopped_by}.", ""]
    lines += _table(["step", "function added", "macro F1", "micro F1", "log loss"],
                    [[k + 1, function_label(st.function), f"{st.macro_f1:.4f}", f"{st.micro_f1:.4f}", loss_text(st.log_loss)]
                     for k, st in enumerate(result.selection.steps)])
    lines += ["", f"![selection]({files['selection']})", ""]

    lines += ["## Result", "", f"- centre **{result.chosen_centre.label}**, vectors "
              + ", ".join(f"**v{k} {v.label}**" + (" (sign-invariant)" if v.sign_invariant else "") for k, v in enumerate(result.chosen_vectors, 1)),
              f"- cutoff rmin {s.rmin:g} A, rmax {s.rmax:g} A", f"- {len(s.functions)} functions: " + ", ".join(f"{n} {k}" for k, n in _counts(s.functions).items()),
              "- expected accuracy on the held-out samples" + (_held_out_made(result.settings) or
              " (same temperature as the fitting samples; warmer test crystals score lower)") + ":"]
    for model, e in result.expected.items():
        lines.append(f"  - {model.replace('_', ' ')}: macro F1 {e['macro_f1']:.4f}, micro F1 {e['micro_f1']:.4f}")
    lines += ["", "spec.toml holds the spec: `molenv featurize --molecule spec.toml ...`, then `molenv train sf`.", ""]
    return "\n".join(lines)


def _counts(functions) -> dict[str, int]:
    out = {}
    for sf in functions:
        key = sf.kind + (f"(v{sf.vector})" if sf.vector else "")
        out[key] = out.get(key, 0) + 1
    return out


def _candidate_summary(scored, key: str) -> dict:
    c = scored.candidate
    return {key: c.label, "kind": c.kind, "atoms": list(c.atoms), "what": c.origin, "symmetry": c.symmetry, "sign_invariant": c.sign_invariant,
            "relabelling": c.relabelling, "mean_js": scored.mean, "worst_js": scored.worst}


def _summary(result, command: str | None) -> dict:
    s = result.spec
    return {
        "molecule": s.name,
        "command": command,
        "centre": centre_entry(s),
        "vectors": vector_entries(s),
        "cutoff": {"rmin": s.rmin, "rmax": s.rmax},
        "functions": [function_label(f) for f in s.functions],
        "expected": result.expected,
        "forms": {k: {"frames": len(f.frames), "held_out_frames": int(sum(f.held_out)), "generated": f.generated, "from": f.origins}
                  for k, f in result.forms.items()},
        "centres": [{**_candidate_summary(c, "centre"), "from_centroid": result.centre_offsets[c.candidate.label]} for c in result.centres],
        "vector_scores": [_candidate_summary(v, "vector") for v in result.vectors],
        "cutoffs": [vars(t) for t in result.cutoffs],
        "selection": [{"function": function_label(st.function), "macro_f1": st.macro_f1, "micro_f1": st.micro_f1, "log_loss": st.log_loss}
                      for st in result.selection.steps],
        "stopped_by": result.selection.stopped_by,
        "rows": result.n_rows,
        "settings": result.settings,
    }


def write_design(result, out: Path, *, command: str | None = None, log=print) -> dict[str, Path]:
    """spec.toml, report.md, design.json and the plots into `out` (created; files replaced)."""
    from molenv.spec import load_spec

    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.toml"
    spec_path.write_text(spec_toml(result.spec))
    load_spec(spec_path)  # what featurize will read: refuse to leave a spec it would not accept
    files = _plots(result, out)
    (out / "report.md").write_text(_report(result, files, command))
    (out / "design.json").write_text(json.dumps(_summary(result, command), indent=1) + "\n")
    log(f"wrote {spec_path}, {out / 'report.md'}, {out / 'design.json'} and {len(files)} plots")
    return {"spec": spec_path, "report": out / "report.md", "summary": out / "design.json", **{k: out / v for k, v in files.items()}}


def _held_out_made(settings: dict) -> str:
    """" (warmed)", " (expanded)", " (warmed and expanded)" or "": what was done to the held-out frames."""
    made = [what for what, key in (("warmed", "warm_held_out"), ("expanded", "expand_held_out")) if settings.get(key)]
    return f" ({' and '.join(made)})" if made else ""
