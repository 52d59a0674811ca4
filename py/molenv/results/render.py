"""docs/results.md from the collected results (`molenv.results.collect.Results`).

The prose is in templates.toml (string.Template texts, one per paragraph or phrase); this
module formats the numbers, makes the tables and chooses which paragraphs a run gets. The
page is built as a list of lines: a template's text is split into lines, and a block's
trailing newline becomes the blank line after it.
"""
from __future__ import annotations

import functools
import math
import tomllib
from pathlib import Path
from string import Template

from molenv.order import REORIENTED_P2
from molenv.results.collect import (
    DESIGNED_SPEC,
    Results,
    accelerators,
    train_crystal_temperatures,
    train_record,
)
from molenv.results.layout import MODELS, MOLECULES, PROTOCOLS, protocol_suffix
from molenv.results.published import GOAL, PUBLISHED

TEMPLATES = Path(__file__).resolve().parent / "templates.toml"
MODEL_NAMES = {"sf": "SF-MLP", "gnn": "GNN"}
MODEL_TITLES = {"sf": "SF-MLP (symmetry functions + MLP)", "gnn": "GNN (graph network)"}
# the order of the steps in "How these numbers were made"
STEPS = ("featurize", "train_sf", "evaluate_sf", "evaluate_sf_val", "train_gnn", "evaluate_gnn", "evaluate_gnn_val")


@functools.cache
def _templates() -> dict[str, Template]:
    with open(TEMPLATES, "rb") as fh:
        return {name: Template(text) for name, text in tomllib.load(fh).items()}


def text(name: str, **values) -> str:
    """The template `name` filled in with `values`."""
    return _templates()[name].substitute(values)


def lines(name: str, **values) -> list[str]:
    """The template `name` filled in, as lines of the page."""
    return text(name, **values).split("\n")


# ----------------------------------------------------------------------------- numbers


def number(x, digits: int = 3) -> str:
    """x with `digits` decimals; '-' for None (not measured)."""
    return "-" if x is None else f"{x:.{digits}f}"


def reoriented_rule() -> str:
    """When the diagnostics count a molecule as reoriented, in words (`REORIENTED_P2`)."""
    angle = math.degrees(math.acos(math.sqrt((2 * REORIENTED_P2 + 1) / 3)))  # P2 = (3 cos^2 - 1) / 2
    return f"P2 < {REORIENTED_P2:g} (an angle above {angle:.0f} degrees) on some axis"


def minutes(seconds) -> str:
    """A wall time: seconds below 90 s, else minutes."""
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def every(n) -> str:
    """'every frame', 'every 2nd frame', ..."""
    if n in (None, 1):
        return "every frame"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, "th")
    return f"every {n}{suffix} frame"


def convolutions(n) -> str:
    """The GNN's graph convolutions, against the published model's one (METHOD.md §4)."""
    return "1 convolution (published architecture)" if n == 1 else f"{n} convolutions (the published model has 1)"


def goal_met(r: dict) -> str:
    return "yes" if r["meets_goal"] else "**no**"


# ----------------------------------------------------------------------------- tables


def md_table(header: list[str], rows: list[list]) -> str:
    table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    table += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(table)


def code_block(code: list[str]) -> str:
    return "\n".join(["```", *code, "```"])


def confusion_table(head: dict) -> str:
    """A head's confusion matrix, with each count's share of its true class."""
    cm = head["confusion_matrix"]
    rows = []
    for name, counts in zip(cm["rows_true"], cm["counts"]):
        total = max(sum(counts), 1)
        rows.append([f"**{name}**"] + [f"{c}" if c == 0 or c == total else f"{c} ({100 * c / total:.1f} %)" for c in counts])
    return md_table(["true \\ predicted"] + cm["columns_predicted"], rows)


def largest_confusions(head: dict, n: int = 4) -> list[tuple[str, str, int, float]]:
    """The `n` largest off-diagonal counts: (true, predicted, count, share of the true class)."""
    cm = head["confusion_matrix"]
    out = []
    for true, counts in zip(cm["rows_true"], cm["counts"]):
        total = sum(counts)
        for pred, count in zip(cm["columns_predicted"], counts):
            if pred != true and count:
                out.append((true, pred, count, count / total))
    return sorted(out, key=lambda x: -x[2])[:n]


def summary_table(numbers: dict) -> str:
    """The paper protocol's micro F1 of each model and molecule, against the published ones."""
    rows = []
    for molecule in MOLECULES:
        for model in MODELS:
            r = numbers.get(molecule, {}).get(model)
            pub = PUBLISHED[molecule][model]
            name = MODEL_NAMES[model]
            if r is None:
                rows.append([molecule, name, "not run"] + [""] * 7)
                continue
            published = pub["note"] if pub["f1_polymorph"] is None or model == "sf" else f"{number(pub['f1_polymorph'])} ({pub['note']})"
            if model == "sf":
                authors = number(r["authors_model"]["f1_polymorph"]) if r.get("authors_model") else "-"
                rows.append([molecule, name, f"**{number(r['f1_polymorph'])}**", number(r["f1_polymorph"]), "(bulk only)", published, authors, "(bulk only)", "-", "-",
                             goal_met(r)])
            else:
                rows.append([molecule, name, f"**{number(r['f1_polymorph'])}**", number(r.get("f1_polymorph_periodic")), number(r.get("f1_polymorph_clusters")),
                             published, "-", f"**{number(r.get('f1_topology'))}**", number(r.get("f1_topology_clusters")), number(pub.get("f1_topology")), goal_met(r)])
    return md_table(["molecule", "model", "polymorph, test", "crystals + melt", "clusters", "published", "authors' model, our test", "topology, test", "clusters",
                     "published", f">= {GOAL}"], rows)


def multi_temperature_table(numbers: dict, protocol: str = "multi-temperature") -> str:
    """Micro F1 of the runs of `protocol`, against the paper protocol's."""
    rows = []
    for molecule in MOLECULES:
        for model in MODELS:
            r = numbers.get(molecule, {}).get(model + protocol_suffix(protocol))
            if r is None:
                continue
            base = numbers.get(molecule, {}).get(model)
            change = f"{r['f1_polymorph'] - base['f1_polymorph']:+.3f}" if base and base.get("f1_polymorph") is not None and r["f1_polymorph"] is not None else "-"
            temps = " + ".join(f"{t:g}" for t in r["train_crystal_temperatures_K"])
            rows.append([molecule, MODEL_NAMES[model], temps, f"**{number(r['f1_polymorph'])}**", number(base["f1_polymorph"]) if base else "-",
                         change, f"{number(r['macro_f1_polymorph'])}", f"**{number(r.get('f1_topology'))}**" if model == "gnn" else "(bulk only)",
                         number(r.get("val", {}).get("f1_polymorph")), goal_met(r)])
    return md_table(["molecule", "model", "training crystals (K)", "polymorph, test", "paper protocol", "change", "macro F1", "topology, test",
                     "polymorph, held-out val", f">= {GOAL}"], rows)


def designed_table(designed: dict) -> str:
    """Micro F1 of the SF-MLPs on designed specs against those on the published specs."""
    rows = []
    for molecule, by_protocol in designed.items():
        for key, r in by_protocol.items():
            change = "-" if r["f1_polymorph_published_spec"] is None or r["f1_polymorph"] is None else f"{r['f1_polymorph'] - r['f1_polymorph_published_spec']:+.3f}"
            rows.append([molecule, r["protocol"], r["n_functions"], f"{r['cutoff_A'][1]:g}", f"**{number(r['f1_polymorph'])}**",
                         number(r["f1_polymorph_published_spec"]), change, number(r["macro_f1_polymorph"]), f"`{r['spec']['path']}`"])
    return md_table(["molecule", "protocol", "functions", "rmax (A)", "polymorph, test", "published spec", "change", "macro F1", "spec"], rows)


# ----------------------------------------------------------------------------- the page


def render_report(results: Results, figures: dict, figure_rel: str, notes: str | None = None) -> str:
    """results.md: the summary, the summaries of the other protocols (if run), a section per
    molecule and protocol, the `notes` (markdown, as they are) and how the numbers were
    made. `figures`: {(molecule, model + protocol suffix): [PNG names]} in `figure_rel`."""
    page = summary(results)
    for protocol in PROTOCOLS[1:]:
        if results.runs.get(protocol):
            page += beyond_paper(results, protocol)
    for protocol in PROTOCOLS:
        for molecule in MOLECULES:
            c = results.runs.get(protocol, {}).get(molecule)
            if c is not None:
                page += molecule_section(molecule, c, protocol, results.numbers, figures, figure_rel)
    if DESIGNED_SPEC in results.numbers:
        page += lines("designed_spec", table=designed_table(results.numbers[DESIGNED_SPEC]))
    if notes is not None:
        page += [notes.strip(), ""]
    page += how_made(results)
    return "\n".join(page)


def summary(results: Results) -> list[str]:
    page = lines("summary", date=results.date, goal=GOAL, table=summary_table(results.numbers))
    for molecule, c in results.runs.get("method", {}).items():
        page += data_caveats(molecule, c, results.missing["method"][molecule])
    return page


def data_caveats(molecule: str, c: dict, missing: list[str]) -> list[str]:
    """What to bear in mind about the data of a molecule's paper-protocol runs."""
    remarks = []
    if missing:
        remarks.append(text("unfinished_md", trajectories=", ".join(missing)))
    test_clusters = any(not s["periodic"] and s["frames"].get("test") for s in c["dataset"]["sources"])
    if "gnn" in c["models"] and not test_clusters:
        test_topology = c["dataset"].get("topology_counts", {}).get("test", {})
        remarks.append(text("no_test_clusters", surface=test_topology.get("surface", 0)))
    return [line for remark in remarks for line in lines("caveat", run=molecule, remark=remark)]


def beyond_paper(results: Results, protocol: str) -> list[str]:
    """The summary of a protocol that is not the paper's (its template: the protocol's name
    with underscores), against the paper protocol's numbers."""
    page = lines(protocol.replace("-", "_"), table=multi_temperature_table(results.numbers, protocol))
    for molecule in results.runs[protocol]:
        missing = results.missing[protocol][molecule]
        if missing:
            page += lines("caveat", run=f"{molecule}, {protocol}", remark=text("unfinished_md", trajectories=", ".join(missing)))
    return page


def molecule_section(molecule: str, c: dict, protocol: str, numbers: dict, figures: dict, figure_rel: str) -> list[str]:
    """The dataset of a molecule's runs of one protocol, then a part per model."""
    ds = c["dataset"]
    if protocol == "method":
        heading = text("heading_method", molecule=molecule)
    else:
        temps = " + ".join(f"{t:g}" for t in train_crystal_temperatures(ds))
        heading = text("heading_protocol", molecule=molecule, protocol=protocol, temperatures=temps)
    trajectories = []
    for s in ds["sources"]:
        fr = s["frames"]
        trajectories.append([s["name"], s["label"], s["system"], f"{s['temperature_K']:g}", s["n_molecules"],
                             fr.get("train", 0), fr.get("val", 0), fr.get("test", 0), s.get("surface_molecules", "-")])
    classes = ds["classes"]
    counts = []
    for split, by_class in ds.get("counts", {}).items():
        topo = ds.get("topology_counts", {}).get(split, {})
        counts.append([split] + [by_class.get(k, 0) for k in classes] + [sum(by_class.values()), topo.get("bulk", 0), topo.get("surface", 0)])
    page = lines("data", heading=heading, n_trajectories=len(ds["sources"]), classes=", ".join(classes), featurize_time=minutes(ds.get("wall_time_s")),
                 trajectories=md_table(["trajectory", "label", "system", "T (K)", "molecules", "train frames", "val frames", "test frames",
                                        "surface molecules (all frames)"], trajectories),
                 counts=md_table(["split"] + classes + ["total", "bulk", "surface"], counts))
    for model in MODELS:
        if model in c["models"]:
            page += model_section(molecule, model, c, protocol, numbers[molecule][model + protocol_suffix(protocol)],
                                  figures.get((molecule, model + protocol_suffix(protocol)), []), figure_rel)
    return page


def model_section(molecule: str, model: str, c: dict, protocol: str, r: dict, figure_names: list[str], figure_rel: str) -> list[str]:
    """One model's runs: test metrics, training, the confusion matrices and accuracies by
    trajectory, the diagnostics, the figures and the commands."""
    entry = c["models"][model]
    t = train_record(model, entry, c["steps"])
    heads = entry["metrics"]["heads"]
    p = heads["polymorph"]
    topology = text("topology", micro_f1=number(heads["topology"]["micro_f1"], 4), n=heads["topology"]["n"]) if model == "gnn" else ""
    page = lines("model", title=MODEL_TITLES[model], micro_f1=number(p["micro_f1"], 4), macro_f1=number(p["macro_f1"], 4), n=p["n"], topology=topology)
    page += sf_training(t) if model == "sf" else gnn_training(t)
    if entry.get("earlier_dataset"):
        page.append(text("earlier_dataset"))
    ev = c["steps"].get(f"evaluate_{model}", {})
    if ev.get("wall_s") is not None:
        page.append(text("evaluation_time", wall_time=minutes(ev["wall_s"])))
    page.append("")
    page += lines("recall", table=md_table(["class"] + list(p["per_class"]), [["recall"] + [number(v["recall"], 4) for v in p["per_class"].values()],
                                                                                ["support"] + [v["support"] for v in p["per_class"].values()]]))
    page += lines("polymorph_confusion", table=confusion_table(p))
    if model == "gnn":
        page += gnn_accuracies(entry, c.get("cluster_diagnostics"))
    else:
        worst = sorted(p.get("accuracy_by_source", {}).items(), key=lambda kv: kv[1]["accuracy"])
        if worst:
            page += lines("accuracy_by_test_trajectory", accuracies=", ".join(f"{k} {number(v['accuracy'], 4)} (n {v['n']})" for k, v in worst))
    if not r["meets_goal"]:
        confusions = [text("confusion", true=a, predicted=b, count=n, percent=f"{100 * x:.1f}") for a, b, n, x in largest_confusions(p)]
        if confusions:
            page += lines("largest_confusions", confusions="; ".join(confusions))
    if model == "sf":
        page += authors_model(r.get("authors_model"), c["steps"]) + sf_validation(entry, protocol) + sf_diagnostics(c.get("diagnostics"))
    page += [f"![{name}]({figure_rel}/{name})" for name in figure_names]
    page.append("")
    if t.get("command"):
        page += [code_block([t["command"]] + ([ev["command"]] if ev.get("command") else [])), ""]
    return page


def sf_training(t: dict) -> list[str]:
    """The SF-MLP's training paragraph (without its blank line)."""
    opts = t["options"]
    return [text("sf_training", train_molecules=t["train_molecules"], hidden=opts.get("hidden"), activation=opts.get("activation"), lr=opts.get("lr"),
                 batch_size=opts.get("batch_size"), patience=opts.get("patience"), min_delta=opts.get("min_delta"), max_epochs=opts.get("max_epochs"),
                 seed=opts.get("seed"), epochs=t["epochs"], best_epoch=t["best_epoch"], best_val_loss=number(t["best_val_loss"], 5),
                 stopped_by=t["stopped_by"], wall_time=minutes(t["wall_s"]))]


def gnn_training(t: dict) -> list[str]:
    """The GNN's training paragraph and, for a fit in two parts, the first part's (without
    the blank line after them)."""
    opts = t["options"]
    limit = text("time_limit", minutes=f"{opts['max_time_min']:g}") if opts.get("max_time_min") else text("no_time_limit")
    page = [text("gnn_training", train_frames=t["train_frames"], train_molecules=t["train_molecules"], frame_step=every(opts.get("frame_step")),
                 val_frames=t["val_frames"], val_frame_step=every(opts.get("val_frame_step")), convolutions=convolutions(opts.get("num_convs")),
                 position_noise=text("position_noise", noise=f"{opts['position_noise']:g}") if opts.get("position_noise") else "",
                 dropout=opts.get("dropout"), lr=opts.get("lr"), lr_decay=opts.get("lr_decay"), lr_patience=opts.get("lr_patience"),
                 batch_size=opts.get("batch_size"), batching=opts.get("batching"), patience=opts.get("patience"), max_epochs=opts.get("max_epochs"),
                 time_limit=limit, seed=opts.get("seed"), hardware=t.get("hardware") or text("hardware_default"), epochs=t["epochs"],
                 best_epoch=t["best_epoch"], best_val_loss=number(t["best_val_loss"], 4), stopped_by=t["stopped_by"], fit_time=minutes(t["fit_s"]),
                 wall_time=text("gnn_wall_time", wall_time=minutes(t["wall_s"])) if t.get("wall_s") is not None else "")]
    first = t.get("first_fit")
    if first:
        part = dict(epochs=first.get("epochs"), fit_time=minutes(first.get("wall_time_s")), stopped_by=first.get("stopped_by"),
                    checkpoint_epoch=first.get("checkpoint_epoch"))
        page += ["", text("resumed", continued_time=minutes(t["continued_s"]), **part) if t["two_parts"] == "resumed" else text("fine_tuned", **part)]
    return page


def gnn_accuracies(entry: dict, cluster_diagnostics: list[dict] | None) -> list[str]:
    """The GNN's topology confusion matrices (test, validation), its accuracy per
    trajectory and the cluster diagnostics."""
    page = lines("topology_confusion", table=confusion_table(entry["metrics"]["heads"]["topology"]))
    vm = entry.get("val_metrics")
    if vm:
        vp, vt = vm["heads"]["polymorph"], vm["heads"]["topology"]
        page += lines("gnn_validation", n=vp["n"], polymorph_f1=number(vp["micro_f1"], 4), topology_f1=number(vt["micro_f1"], 4), table=confusion_table(vt))
    rows = []
    for split, m in [("test", entry["metrics"])] + ([("val", vm)] if vm else []):
        pol, top = m["heads"]["polymorph"].get("accuracy_by_source", {}), m["heads"]["topology"].get("accuracy_by_source", {})
        rows += [[k, split, v["n"], number(v["accuracy"], 4), number(top.get(k, {}).get("accuracy"), 4)] for k, v in pol.items()]
    page += lines("accuracy_by_trajectory", table=md_table(["trajectory", "split", "molecules", "polymorph", "topology"], rows))
    if cluster_diagnostics:
        page += lines("clusters", reoriented_rule=reoriented_rule(), table=md_table(
            ["trajectory", "split", "frames", "surface share", "polymorph", "core", "surface", "order, core", "order, surface", "reoriented, core",
             "reoriented, surface", "kept orientation", "polymorph, kept"],
            [[x["source"], x["split"], x["frames"], number(x["surface_fraction"], 2), number(x["accuracy"]), number(x["accuracy_core"]),
              number(x["accuracy_surface"]), number(x["order_core"]), number(x["order_surface"]), number(x["reoriented_core"], 2),
              number(x["reoriented_surface"], 2), number(x.get("kept_fraction"), 2), number(x.get("accuracy_kept"))]
             for x in cluster_diagnostics]))
    return page


def authors_model(a: dict | None, steps: dict) -> list[str]:
    """The original authors' published SF-MLP on the same test molecules, with its commands."""
    if not a:
        return []
    commands = [steps[k]["command"] for k in ("import_reference", "evaluate_reference") if k in steps]
    recalls = ", ".join(f"{k} {number(v)}" for k, v in a["recall_polymorph"].items())
    return lines("authors_model", micro_f1=number(a["f1_polymorph"], 4), macro_f1=number(a["macro_f1_polymorph"], 4), n=a["n_test_molecules"],
                 recalls=recalls) + ([code_block(commands), ""] if commands else [])


def sf_validation(entry: dict, protocol: str) -> list[str]:
    if not entry.get("val_metrics"):
        return []
    vp = entry["val_metrics"]["heads"]["polymorph"]
    temperatures = text("training_temperature" if protocol == "method" else "training_temperatures")
    return lines("sf_validation", temperatures=temperatures, n=vp["n"], micro_f1=number(vp["micro_f1"], 4))


def sf_diagnostics(diagnostics: list[dict] | None) -> list[str]:
    if not diagnostics:
        return []
    rows = [[d["source"], f"{d['temperature']:g}", d["split"], number(d["order"]), number(d["reoriented"], 2), number(d.get("accuracy")), number(d.get("lowest")), number(d.get("first_half")),
             number(d.get("second_half")), f"{d['main_error']} ({100 * d['main_error_fraction']:.1f} %)" if d.get("main_error") else "-"]
            for d in diagnostics]
    return lines("sf_diagnostics", reoriented_rule=reoriented_rule(), table=md_table(["trajectory", "T (K)", "split", "order", "reoriented", "accuracy", "lowest frame", "1st half", "2nd half",
                                                   "most common error"], rows))


def how_made(results: Results) -> list[str]:
    """The commands of every step behind the page, with their wall times, and the machine."""
    steps = []
    for c in (results.runs.get(p, {}).get(m) for p in PROTOCOLS for m in MOLECULES):
        if c is None:
            continue
        for step in STEPS:
            s = c["steps"].get(step)
            gnn = c["models"].get("gnn") if step == "train_gnn" else None
            t = train_record("gnn", gnn, c["steps"]) if gnn else {}
            if t.get("first_fit"):  # a fit in two parts: both commands, with their fitting times
                steps.append(f"{t['first_fit'].get('command')}    # {minutes(t['first_fit'].get('wall_time_s'))} of fitting")
                steps.append(f"{gnn['config'].get('command')}    # {minutes(t['continued_s'])} of fitting")
            elif s:
                steps.append(f"{s['command']}    # {minutes(s['wall_s'])}")
    elsewhere = sorted(accelerators(results.runs))
    return lines("how_made", work=results.work, steps=code_block(steps), machine=results.machine, cores=results.cores,
                 other_hardware=text("other_hardware", hardware=", ".join(elsewhere)) if elsewhere else "")
