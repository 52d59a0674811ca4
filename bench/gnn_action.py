"""Cost per MD step of MOLENV_CLASSIFY with a graph network (GNN) model, with forces, against torch and OpenMM.

Measured side by side in the same process and the same run, on urea form I supercells of 160
and 1,280 molecules and nicotinamide form I of 144 molecules.

Configurations, for each system and each thread count T (``--threads``, default 1 and 2):

* ``molenv T=t``: ``MOLENV_CLASSIFY MODEL=<the GNN .molenv> NUM_THREADS=t TIMINGS`` with
  ``RESTRAINT ARG=c.f_I AT=0.5 KAPPA=100``, so that every step runs the forward pass, the
  reverse pass and applies forces; one ``plumed.Plumed`` instance per configuration fed
  through the Python interface, a step's time the wall time of ``cmd("calc")`` (as
  bench/plumed_action.py: PLUMED's data sharing, the action, the bias, the forces);
* ``torch T=t``: the same network with the same weights in torch (eager ``MolecularGNN``
  loaded from the TorchScript export, whose CPU attention runs on sparse CSR kernels),
  ``torch.set_num_threads(t)``: positions to a tensor, forward, the same restraint on
  f_I = mean over molecules of p_I, ``torch.autograd.grad`` of the bias with respect to the
  positions, forces back to numpy;
* ``torchscript T=t``: the same with the TorchScript file itself (what libtorch would run
  inside an MD code; scripted, its attention gathers node features onto edge blocks);
* ``graph``: building the atom graph the torch network needs from the positions
  (`molenv.gnn.graph.frame_to_graph`: its neighbour search (vesin since issue 18; a scipy KD-tree in the run of docs/benchmarks.md), one thread), timed as its own
  configuration once per cycle. In MD, torch needs it at every step: the headline ratio
  to torch is molenv / (graph + torch) of the same cycle; the ratio to the network alone is
  given too (the action itself keeps a Verlet list and searches again only when atoms have
  moved by half its skin, which never happens here);
* ``openmm T=t``: the force and energy call of the same system on OpenMM's CPU platform
  (``context.getState(getForces=True, getEnergy=True)``), PME with a 9 A cutoff, error
  tolerance 5e-4, HBonds constraints (the settings of ``molenv simulate``); urea GAFF +
  AM1-BCC as in bench/plumed_action.py, nicotinamide GAFF2 with its ``kuroshima2024``
  charge set (the project's nicotinamide MD runs), both through
  ``molenv.simulate.parametrise``; topologies cached in bench/out/openmm.

Models: nicotinamide, models/nicotinamide_gnn.pt and .molenv (the same checkpoint). Urea:
no trained GNN is committed, and the time does not depend on the weights, so an untrained
``GNNClassifier(["I", "IV", "melt"], num_convs=1, dropout=0.1)`` (the architecture and
options of the urea ``molenv train gnn`` run; torch seed 0) is exported with
`molenv.gnn.export` to bench/out/gnn_action/urea_gnn_untrained.pt and .molenv. After the
measurement the script checks that all run the same function: the bias forces of the eager
network evaluated in float64 against the action's (~1e-13 relative to the largest force),
those of the float32 torch and TorchScript networks against the action's (float32 rounding,
and max-pooling near-ties that float32 resolves to another atom: up to a few per cent on a
few atoms of the large systems), and torch's probabilities against TorchScript's.

Positions: the ideal crystal plus Gaussian noise of 0.05 A, the same at every step.
Measurement as in bench/plumed_action.py: configurations interleaved step by step (a cycle
runs each once), ``--rounds`` x ``--min-time`` seconds per configuration, the first step
discarded; per configuration the median and minimum wall time and the median CPU time per
step; every ratio the median over cycles of the ratio of two step times of the same cycle;
the load average before and after each system.

    .venv/bin/python bench/gnn_action.py                   # urea 160, 1280; nicotinamide 144
    .venv/bin/python bench/gnn_action.py --systems urea-160 --threads 1 --rounds 1 --min-time 0.1
    .venv/bin/python bench/gnn_action.py --json bench/out/gnn_action.json --markdown

Options: ``--systems`` (comma separated: urea-160, urea-1280, nicotinamide-144),
``--threads 1,2``, ``--rounds``, ``--min-time``, ``--no-openmm``, ``--no-torchscript``, and
the PLUMED options of bench/plumed_action.py (``--kernel``, ``--bundled-kernel``,
``--module``, ``--spin-count``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (FORM_I, OUT, REFERENCE, REPO, OpenMMPeer, PlumedPeer, add_plumed_arguments, choose_kernel, idle_speedup,
                     import_plumed, machine_record, measure, noisy_crystal, num, openmm_system, print_ratios, ratio, software_record,
                     step_row, step_rows, step_times_ms, thread_environment)

# label -> (molecule, supercell repeats, OpenMM atom types and charges)
SYSTEMS = {
    "urea-160": ("urea", (4, 4, 5), ("gaff", "bcc")),  # 22.3 x 22.3 x 23.4 A
    "urea-1280": ("urea", (8, 8, 10), ("gaff", "bcc")),  # 44.5 x 44.5 x 46.8 A
    "nicotinamide-144": ("nicotinamide", (6, 2, 3), ("gaff2", "kuroshima2024")),  # monoclinic, heights 23.1, 31.3, 27.9 A
}
JITTER = 0.05  # Angstrom
RESTRAINT = {"component": "I", "at": 0.5, "kappa": 100.0}  # kJ/mol, on the fraction f_I
UREA_FORMS = ["I", "IV", "melt"]  # the urea GNN's classes (the `molenv train gnn` urea run)
MODELS = OUT / "gnn_action"


# ---------------------------------------------------------------------------------------
# models


def urea_model() -> tuple[Path, Path]:
    """An untrained urea GNN of the urea run's architecture, as TorchScript and model file."""
    import torch

    from molenv.gnn.export import export_model_file, export_torchscript, molecule_elements
    from molenv.gnn.lightning import GNNClassifier

    MODELS.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    classifier = GNNClassifier(UREA_FORMS, num_convs=1, dropout=0.1).eval()
    pt, molenv_file = MODELS / "urea_gnn_untrained.pt", MODELS / "urea_gnn_untrained.molenv"
    export_torchscript(classifier.model, pt, classifier.form_names)
    export_model_file(classifier.model, molenv_file, classifier.form_names, molecule_elements("urea"), name="urea GNN, untrained (bench/gnn_action.py)",
                      meta={"weights": "random (torch.manual_seed(0)): for timing only"})
    return pt, molenv_file


def model_files(molecule: str) -> tuple[Path, Path]:
    if molecule == "urea":
        return urea_model()
    return REPO / "models" / f"{molecule}_gnn.pt", REPO / "models" / f"{molecule}_gnn.molenv"


def eager_model(scripted, metadata: dict, gnn):
    """The eager torch network holding the weights of a TorchScript export: its sizes from
    the model file ``gnn`` of the same network (`molenv.gnn.modelfile.GNNModel`), its
    weights loaded strictly (every tensor, every shape) from the export."""
    from molenv.gnn.export import ExportedClassifier
    from molenv.gnn.model import MolecularGNN

    model = MolecularGNN(n_forms=len(metadata["form_names"]), num_convs=len(gnn.convs), hidden=gnn.type_in.n_out,
                         conv_channels=gnn.convs[0].node_in.n_out, num_radial=len(gnn.radial_frequencies), cutoff=gnn.cutoff,
                         envelope_exponent=gnn.envelope_exponent, num_atom_types=metadata["num_atom_types"], type_dim=gnn.embedding.shape[1])
    eager = ExportedClassifier(model)
    eager.load_state_dict(scripted.state_dict(), strict=True)
    return eager.eval()


# ---------------------------------------------------------------------------------------
# torch peers


class GraphPeer:
    """The atom graph torch needs at every MD step, from the positions."""

    def __init__(self, frame, cutoff: float):
        from molenv.gnn.graph import frame_to_graph

        self.name, self.frame, self.cutoff, self.build = "graph", frame, cutoff, frame_to_graph
        self.graph = frame_to_graph(frame, cutoff=cutoff)

    def step(self) -> tuple[float, float, float]:
        m0, c0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        self.build(self.frame, cutoff=self.cutoff)
        t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
        return t1 - t0, c1 - c0, m1 - m0


def bias_forces(network, graph, positions: np.ndarray, edge_shift, class_index: int) -> tuple[np.ndarray, np.ndarray]:
    """One evaluation in the dtype of ``edge_shift``: positions (n_atoms, 3; Angstrom, wrapped
    as the graph's) to a tensor, forward, the restraint on f = mean over molecules of p_k,
    autograd to the positions. Returns the bias forces (kJ/mol/A) and the polymorph
    probabilities, as float64 numpy arrays."""
    import torch

    pos = torch.from_numpy(positions).to(edge_shift.dtype).requires_grad_(True)
    probabilities, _ = network(graph.z, pos, graph.edge_index, edge_shift, graph.molecule, graph.num_molecules)
    fraction = probabilities[:, class_index].mean()
    bias = 0.5 * RESTRAINT["kappa"] * (fraction - RESTRAINT["at"]) ** 2
    (gradient,) = torch.autograd.grad(bias, pos)
    return (-gradient).double().numpy(), probabilities.detach().double().numpy()


class TorchPeer:
    """Forward, the restraint on f_I and the backward pass to the positions (float32, as
    exported), on a graph built once (`GraphPeer` times building it)."""

    def __init__(self, name: str, network, graph, class_index: int, threads: int):
        import torch

        self.name, self.network, self.graph, self.k, self.threads, self.torch = name, network, graph, class_index, threads, torch
        self.positions = graph.pos.double().numpy()  # what an MD code hands over: float64, Angstrom
        for _ in range(2):  # TorchScript's profiling executor specialises the graph in its first runs
            self.step()

    def forces_and_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        return bias_forces(self.network, self.graph, self.positions, self.graph.edge_shift, self.k)

    def step(self) -> tuple[float, float, float]:
        self.torch.set_num_threads(self.threads)
        m0, c0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        self.forces_and_probabilities()
        t1, c1, m1 = time.perf_counter(), time.process_time(), time.thread_time()
        return t1 - t0, c1 - c0, m1 - m0


def network_check(molenv_forces: np.ndarray, torch_peers: list, frame, cutoff: float) -> dict:
    """How well the networks agree, as max |difference| / max |F| of the bias forces: the
    eager torch network in float64 (positions and cell shifts in float64 too) against the
    action (the same function: ~1e-12 expected), and each float32 network against the
    action (float32 rounding, and max-pooling near-ties that float32 resolves to another
    atom, give ~1e-5 to a few 1e-2 on a few atoms); torch's probabilities against TorchScript's."""
    import copy

    import torch

    from molenv.gnn.graph import graph_edges

    scale = np.abs(molenv_forces).max()
    out = {"molenv_max_force_kj_mol_A": float(scale)}
    eager = torch_peers[0]
    edge_index, shift, wrapped = graph_edges(frame.positions, frame.box, cutoff)
    if not np.array_equal(edge_index, eager.graph.edge_index.numpy()):
        raise RuntimeError("the float64 graph has other edges than the torch graph")
    forces64, _ = bias_forces(copy.deepcopy(eager.network).double(), eager.graph, wrapped, torch.from_numpy(shift), eager.k)
    out["torch float64 force deviation from molenv"] = float(np.abs(forces64 - molenv_forces).max() / scale)
    reference = None
    for peer in torch_peers:
        forces, probabilities = peer.forces_and_probabilities()
        kind = peer.name.split()[0]
        deviation = np.abs(forces - molenv_forces).max(axis=1) / scale
        out[f"{kind} (float32) force deviation from molenv"] = float(deviation.max())
        out[f"{kind} (float32) atoms deviating by more than 1e-3"] = int((deviation > 1e-3).sum())
        if reference is None:
            reference = probabilities
            out["mean p_I"] = float(probabilities[:, peer.k].mean())
        else:
            out[f"{kind} max probability difference from {torch_peers[0].name.split()[0]}"] = float(np.abs(probabilities - reference).max())
    return out


# ---------------------------------------------------------------------------------------
# one system


def run_system(plumed, label: str, args, workdir: Path) -> dict:

    from molenv.constants import file_sha256
    from molenv.gnn.export import load_exported, molecule_elements
    from molenv.gnn.modelfile import read_gnn_model

    molecule, repeats, (atom_types, charges) = SYSTEMS[label]
    system, positions = noisy_crystal(molecule, REFERENCE / FORM_I[molecule], repeats=repeats, jitter=JITTER)
    nmol, natoms = system.n_molecules, system.n_atoms
    box = system.box_vectors()  # rows, Angstrom (OpenMM's reduced form)
    pt, molenv_file = model_files(molecule)
    scripted, metadata = load_exported(pt)
    gnn = read_gnn_model(molenv_file)
    if gnn.molecule_atoms != molecule_elements(molecule) or gnn.classes != metadata["form_names"]:
        raise RuntimeError(f"{pt} and {molenv_file} do not describe the same {molecule} network")
    class_index = gnn.classes.index(RESTRAINT["component"])
    frame = system.frame().replace(positions=positions)
    graph_peer = GraphPeer(frame, gnn.cutoff)
    graph = graph_peer.graph
    print(f"\n== {label}: {molecule} form I {'x'.join(map(str, repeats))} cells, {nmol} molecules, {natoms} atoms, "
          f"{graph.num_edges} graph edges, box {np.round(np.diag(box), 2).tolist()} A; model {molenv_file.name}", flush=True)
    load_before = os.getloadavg()

    restraint = f"RESTRAINT ARG=c.f_{RESTRAINT['component']} AT={RESTRAINT['at']} KAPPA={RESTRAINT['kappa']:g}"
    peers = []
    for t in args.threads:
        action = f"c: MOLENV_CLASSIFY MODEL={molenv_file} MOLECULES=1-{natoms} NUM_THREADS={t} TIMINGS"
        name = f"molenv T={t}"
        peers.append(PlumedPeer(plumed, name, ["UNITS LENGTH=A", f"LOAD FILE={args.module}", action, restraint], positions, box,
                                workdir / f"molenv_T{t}.log", t))
    networks = {"torch": eager_model(scripted, metadata, gnn)}
    if not args.no_torchscript:
        networks["torchscript"] = scripted
    torch_peers = [TorchPeer(f"{kind} T={t}", network, graph, class_index, t) for kind, network in networks.items() for t in args.threads]
    peers += torch_peers + [graph_peer]
    openmm_info = {}
    if not args.no_openmm:
        t0 = time.perf_counter()
        mm = openmm_system(system, OUT / "openmm" / f"{molecule}-{'x'.join(map(str, repeats))}-{atom_types}-{charges}", atom_types, charges)
        for t in args.threads:
            peer = OpenMMPeer(mm, positions, t)
            peers.append(peer)
            openmm_info = peer.describe()
        openmm_info["setup_s"] = time.perf_counter() - t0
    result = measure(peers, args.rounds, args.min_time)
    load_after = os.getloadavg()

    first = next(p for p in peers if isinstance(p, PlumedPeer))
    if not np.abs(first.forces).max() > 0:
        raise RuntimeError(f"{first.name}: the restraint produced no forces")
    check = network_check(first.forces, [p for p in torch_peers if p.threads == first.threads], frame, gnn.cutoff)
    logs = {peer.name: peer.close() for peer in peers if isinstance(peer, PlumedPeer)}
    first_s = {peer.name: peer.first_s for peer in peers if isinstance(peer, PlumedPeer)}

    rows = step_rows(result, logs, first_s, nmol)
    # graph + network of the same cycle: the torch step of an MD code
    for kind in networks:
        for t in args.threads:
            total = [g + n for g, n in zip(result["steps"]["graph"], result["steps"][f"{kind} T={t}"])]
            cpu = [g + n for g, n in zip(result["cpu"]["graph"], result["cpu"][f"{kind} T={t}"])]
            result["steps"][f"graph + {kind} T={t}"], result["cpu"][f"graph + {kind} T={t}"] = total, cpu
            rows[f"graph + {kind} T={t}"] = step_row(total, cpu, None, nmol)

    ratios = {}
    for t in args.threads:
        me = f"molenv T={t}"
        for kind in networks:
            ratios[f"{me} / graph + {kind} T={t}"] = ratio(result, me, f"graph + {kind} T={t}")
            ratios[f"{me} / {kind} T={t} (network only)"] = ratio(result, me, f"{kind} T={t}")
        if not args.no_openmm:
            ratios[f"{me} / openmm T={t}"] = ratio(result, me, f"openmm T={t}")
            ratios[f"graph + torch T={t} / openmm T={t}"] = ratio(result, f"graph + torch T={t}", f"openmm T={t}")
    for t in (t for t in args.threads if t > 1 and 1 in args.threads):
        for kind in ("molenv", *networks, *(() if args.no_openmm else ("openmm",))):
            ratios[f"{kind} speed-up T={t} vs T=1"] = ratio(result, f"{kind} T=1", f"{kind} T={t}")
        if t == 2:
            for kind in ("molenv", *networks):
                ratios[f"{kind} speed-up T=2 vs T=1 upper bound on idle cores (CPU times)"] = idle_speedup(result, f"{kind} T=1", f"{kind} T=2")
    if 1 in args.threads:  # single-thread configurations by CPU time: not inflated by time slices lost to other processes
        for kind in networks:
            ratios[f"CPU time: molenv T=1 / graph + {kind} T=1"] = ratio(result, "molenv T=1", f"graph + {kind} T=1", "cpu")
        if not args.no_openmm:
            ratios["CPU time: molenv T=1 / openmm T=1"] = ratio(result, "molenv T=1", "openmm T=1", "cpu")

    for name, row in rows.items():
        first_text = "" if row["first_step_s"] is None else f"  first {row['first_step_s']:.2f} s"
        print(f"  {name:24s} median {row['median_ms']:9.2f} ms  min {row['min_ms']:9.2f} ms  CPU {row['median_cpu_ms']:9.2f} ms  "
              f"{row['median_us_per_molecule']:8.1f} (min {row['min_us_per_molecule']:.1f}) us/molecule{first_text}  n={row['samples']}")
        if row.get("action_ms_per_step") is not None:
            stages = row["stages_us_per_molecule"]
            print(f"  {'':24s} mean: the action {row['action_ms_per_step']:.2f} ms (TIMINGS, after the first step; forward "
                  f"{stages.get('graph network forward', float('nan')) * nmol / 1e3:.2f} ms, reverse pass "
                  f"{stages.get('reverse pass (backprop)', float('nan')) * nmol / 1e3:.2f} ms), PLUMED outside it {row['outside_action_ms_per_step']:.2f} ms")
    for name, value in check.items():
        print(f"  check: {name} {value:.3g}")
    print_ratios(ratios, load_before, load_after)
    return {"label": label, "molecule": molecule, "repeats": list(repeats), "molecules": nmol, "atoms": natoms, "graph_edges": int(graph.num_edges),
            "box_A": np.round(np.diag(box), 3).tolist(), "dimensions": np.round(system.dimensions, 3).tolist(),
            "model": {"molenv": str(molenv_file), "molenv_sha256": file_sha256(molenv_file), "torchscript": str(pt), "torchscript_sha256": file_sha256(pt)},
            "restraint": restraint, "openmm_force_field": f"{atom_types} {charges}",
            "load_average_before": load_before, "load_average_after": load_after, "peers": rows, "ratios": ratios, "check": check,
            "openmm": openmm_info, **step_times_ms(result)}


def markdown(results: dict, threads: list[int]) -> str:
    """One row per system and thread count: step times and the ratios of the action to the peers."""
    lines = ["| system | molecules (atoms) | threads | molenv ms/step | graph + torch ms/step | torch network only | graph + TorchScript | "
             "OpenMM force call | molenv / (graph + torch) | same, CPU time | molenv / torch network | molenv / (graph + TorchScript) | molenv / OpenMM | "
             "same, CPU time | molenv speed-up vs 1 thread (idle-core bound) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system in results["systems"]:
        peers, ratios = system["peers"], system["ratios"]
        for t in threads:
            row = peers.get(f"molenv T={t}")
            if row is None:
                continue

            def median(name):
                return peers[name]["median_ms"] if name in peers else None

            lines.append(" | ".join([
                f"| {system['label']}", f"{system['molecules']} ({system['atoms']})", str(t),
                f"{row['median_ms']:.0f} (min {row['min_ms']:.0f})",
                num(median(f"graph + torch T={t}"), ".0f"), num(median(f"torch T={t}"), ".0f"),
                num(median(f"graph + torchscript T={t}"), ".0f"), num(median(f"openmm T={t}"), ".1f"),
                num(ratios.get(f"molenv T={t} / graph + torch T={t}"), ".2f"),
                num(ratios.get("CPU time: molenv T=1 / graph + torch T=1") if t == 1 else None, ".2f"),
                num(ratios.get(f"molenv T={t} / torch T={t} (network only)"), ".2f"),
                num(ratios.get(f"molenv T={t} / graph + torchscript T={t}"), ".2f"),
                num(ratios.get(f"molenv T={t} / openmm T={t}"), ".1f"),
                num(ratios.get("CPU time: molenv T=1 / openmm T=1") if t == 1 else None, ".1f"),
                (f"{num(ratios.get(f'molenv speed-up T={t} vs T=1'), '.2f')} "
                 f"({num(ratios.get(f'molenv speed-up T={t} vs T=1 upper bound on idle cores (CPU times)'), '.2f')})" if t > 1 else "") + " |"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma separated: {', '.join(SYSTEMS)}")
    parser.add_argument("--threads", default="1,2", help="comma separated thread counts (action NUM_THREADS, torch threads, OpenMM Threads)")
    parser.add_argument("--rounds", type=int, default=5, help="measurement rounds")
    parser.add_argument("--min-time", type=float, default=1.5, help="seconds per configuration and round (at least one cycle)")
    parser.add_argument("--no-openmm", action="store_true")
    parser.add_argument("--no-torchscript", action="store_true", help="time the eager torch network only")
    add_plumed_arguments(parser)
    parser.add_argument("--json", help="write all results here")
    parser.add_argument("--markdown", action="store_true", help="print the summary table in Markdown")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    labels = args.systems.split(",")
    unknown = [label for label in labels if label not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if not REFERENCE.is_dir():
        print(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)", file=sys.stderr)
        return 1
    thread_environment(args.spin_count)  # before torch and PLUMED start their OpenMP runtimes
    choose_kernel(args)
    plumed = import_plumed()
    import torch

    results = machine_record()
    results["systems"] = []
    software_record(results, args)
    results["torch"] = torch.__version__
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="molenv-bench-gnn-") as tmp:
        for label in labels:
            workdir = Path(tmp) / label
            workdir.mkdir()
            results["systems"].append(run_system(plumed, label, args, workdir))
            results["wall_s"] = time.perf_counter() - t0
            if args.json:  # after each system: a run stopped early keeps what it measured
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(results, indent=2))
    if args.markdown:
        print()
        print(markdown(results, args.threads))
    print(f"\ntotal {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
