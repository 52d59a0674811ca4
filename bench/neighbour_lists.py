"""Neighbour lists on the Python side (issue #18): `molenv.frames.neighbour_pairs` on vesin's
cell list against the KD-tree over periodic images it replaced (a private copy below,
`kdtree_pairs`, kept only for this comparison).

Systems: a urea form I supercell of 1280 molecules (8 x 8 x 10 cells, 10,240 atoms) and
nicotinamide form I with every height >= 20 A (144 molecules, 2,160 atoms), from the
reference structures (../shared/reference) with `molenv.crystals`; frames are thermal-like
copies (every atom displaced by a Gaussian of 0.1 A). Timed per frame, old and new
interleaved (each cycle runs both on the same frame, which goes first alternating):

- ``atom_pairs``: every image of every atom within the GNN cutoff (6 A), what graphs use;
  ``vesin_alone`` is vesin's search by itself (what neighbour_pairs adds: the float64
  vectors and distances of molenv's arithmetic, the (i, j) order, shifts in the given cell);
- ``graph``: `frame_to_graph` (pairs, wrapping, lattice shifts, tensors), with the old
  search and shift reconstruction swapped in for the old side;
- ``gnn``: graph + forward pass of the published architecture (random weights, one torch
  thread), i.e. inference end to end;
- ``centre_pairs``: molecule centres within the SF cutoff (descriptors, coordination numbers).

Medians of wall and process CPU times, and the median over cycles of old / new. Every
cycle also checks that the outputs are identical: the same pairs in the same order with
bitwise-equal vectors and distances, equal graph tensors, equal logits. A last check builds
the graph of the urea unit cell (2 molecules, heights < 12 A: several images of each atom
within 6 A, where the old order of those images was the KD-tree's and the new one is by
lattice shift) and reports how far the GNN's logits move with the edge order.

    .venv/bin/python bench/neighbour_lists.py [--frames 7] [--json bench/out/neighbour_lists.json]
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

# numpy's BLAS only sees 3x3 matrices here: its threads add nothing but contention
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from _common import FORM_I, REFERENCE  # noqa: E402

# system -> (spec, supercell repeats or None for min_height 20 A, GNN classes)
SYSTEMS = {"urea": ("urea", (8, 8, 10), 7), "nicotinamide": ("nicotinamide", None, 10)}


# ------------------------------------------------------------------------- the old search


def kdtree_pairs(points, box, cutoff, *, single_image=True):
    """`molenv.frames.neighbour_pairs` as it was before vesin (commit d53dba3): a KD-tree
    over the points and those of their periodic images within the cutoff of the cell."""
    from scipy.spatial import cKDTree

    from molenv.frames import NeighbourPairs, box_matrix, perpendicular_heights, reduced_basis

    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    search = cutoff * (1 + 1e-9) + 1e-9
    if box is None:
        primary = image = points
        image_of = np.arange(n)
        is_self = lambda i, k: i == k  # noqa: E731
    else:
        box = np.asarray(box, dtype=np.float64)
        matrix = reduced_basis(box if box.shape == (3, 3) else box_matrix(box))
        heights = perpendicular_heights(matrix)
        assert not (single_image and cutoff >= 0.5 * heights.min())
        frac = points @ np.linalg.inv(matrix)
        frac -= np.floor(frac)
        primary = frac @ matrix
        margin = search / heights
        reach = np.ceil(margin).astype(int)
        shifts = np.array(list(itertools.product(*(range(-m, m + 1) for m in reach))), dtype=np.float64)
        shifted = frac[None, :, :] + shifts[:, None, :]
        keep = np.all((shifted >= -margin) & (shifted <= 1 + margin), axis=2)
        shift_index, image_of = np.nonzero(keep)
        image = shifted[shift_index, image_of] @ matrix
        zero = int(np.flatnonzero(~shifts.any(axis=1))[0])
        is_self = lambda i, k: (image_of[k] == i) & (shift_index[k] == zero)  # noqa: E731
    found = cKDTree(primary).sparse_distance_matrix(cKDTree(image), search, output_type="ndarray")
    i, k = found["i"].astype(np.int64), found["j"].astype(np.int64)
    keep = ~is_self(i, k)
    i, k = i[keep], k[keep]
    vectors = image[k] - primary[i]
    distances = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    keep = distances <= cutoff
    i, j, vectors, distances = i[keep], image_of[k[keep]].astype(np.int64), vectors[keep], distances[keep]
    order = np.lexsort((j, i))
    return NeighbourPairs(i[order], j[order], vectors[order], distances[order], np.zeros((len(i), 3), dtype=np.int64))


def kdtree_graph_edges(positions, box, cutoff=6.0):
    """`molenv.gnn.graph.graph_edges` as it was: shifts rounded back from the vectors."""
    from molenv.frames import box_matrix

    positions = np.asarray(positions, dtype=np.float64)
    pairs = kdtree_pairs(positions, box, cutoff, single_image=False)
    inside = pairs.distances < cutoff
    target, source, vectors = pairs.i[inside], pairs.j[inside], pairs.vectors[inside]
    if box is None:
        return np.stack([source, target]), np.zeros((len(source), 3)), positions
    cell = box_matrix(box)
    inverse = np.linalg.inv(cell)
    frac = positions @ inverse
    wrapped = (frac - np.floor(frac)) @ cell
    cells = np.rint((vectors - (wrapped[source] - wrapped[target])) @ inverse)
    return np.stack([source, target]), cells @ cell, wrapped


@contextlib.contextmanager
def old_graph_edges():
    """`frame_to_graph` with the old edges (it looks `graph_edges` up in its module)."""
    import molenv.gnn.graph as graph

    new = graph.graph_edges
    graph.graph_edges = kdtree_graph_edges
    try:
        yield
    finally:
        graph.graph_edges = new


# ------------------------------------------------------------------------- systems and checks


def crystal(system: str):
    from molenv.crystals import build_supercell
    from molenv.spec import load_spec

    spec, repeats, _ = SYSTEMS[system]
    return build_supercell(REFERENCE / FORM_I[system], load_spec(spec), min_height=20.0, repeats=repeats).frame()


def jittered(frame, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [frame.replace(positions=frame.positions + rng.normal(scale=0.1, size=frame.positions.shape)) for _ in range(n)]


def same_pairs(a, b) -> bool:
    """Bitwise the same pairs, vectors and distances, in the same order (the old search had
    no shifts: the graph check compares the shifts the two versions give the graph)."""
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in ((a.i, b.i), (a.j, b.j), (a.vectors, b.vectors), (a.distances, b.distances)))


def same_graph(a, b) -> bool:
    import torch

    return all(torch.equal(a[key], b[key]) for key in ("z", "pos", "edge_index", "edge_shift", "molecule"))


def timed(run):
    """(result, wall s, process CPU s)"""
    t0, c0 = time.perf_counter(), time.process_time()
    out = run()
    return out, time.perf_counter() - t0, time.process_time() - c0


def interleaved(frames, old, new, same, **more) -> dict:
    """old, new (and the peers in `more`) on every frame, the first frame once more untimed
    to warm up, the order rotating from cycle to cycle; medians and the median per-cycle
    ratio old / new, and whether old and new gave the same output on every frame."""
    peers = {"old": old, "new": new, **more}
    for run in peers.values():
        run(frames[0])
    names = list(peers)
    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    identical = True
    for k, frame in enumerate(frames):
        out = {}
        for name in names[k % len(names):] + names[:k % len(names)]:
            out[name], wall, used = timed(lambda: peers[name](frame))
            times[name].append(wall)
            cpu[name].append(used)
        identical &= bool(same(out["old"], out["new"]))
    row = {}
    for name in names:
        row[f"{name}_ms"] = 1000 * statistics.median(times[name])
        row[f"{name}_cpu_ms"] = 1000 * statistics.median(cpu[name])
    row["old / new"] = statistics.median(a / b for a, b in zip(times["old"], times["new"]))
    row["old / new cpu"] = statistics.median(a / b for a, b in zip(cpu["old"], cpu["new"]))
    row.update(identical=identical, cycles=len(frames))
    return row


def vesin_alone(points, box, cutoff):
    """The search that `neighbour_pairs` asks vesin for, alone: pairs in vesin's order, no
    float64 vectors, no sort, no shifts in the given cell."""
    import vesin

    from molenv.frames import box_matrix, reduced_basis

    matrix = reduced_basis(box_matrix(box))
    frac = points @ np.linalg.inv(matrix)
    primary = (frac - np.floor(frac)) @ matrix
    return vesin.NeighborList(cutoff=cutoff * (1 + 1e-9) + 1e-9, full_list=True, n_threads=1).compute(primary, matrix, True, "ijS")


def small_cell_order(classifier) -> dict:
    """The urea unit cell: the same edges (as a set) old and new, and how much the logits
    move with their order."""
    import torch

    from molenv.crystals import build_supercell
    from molenv.gnn.graph import frame_to_graph
    from molenv.spec import load_spec

    frame = build_supercell(REFERENCE / FORM_I["urea"], load_spec("urea"), repeats=(1, 1, 1)).frame()
    new = frame_to_graph(frame)
    with old_graph_edges():
        old = frame_to_graph(frame)

    def rows(g):
        r = torch.cat([g.edge_index.T.double(), g.edge_shift.double()], dim=1).numpy()
        return r[np.lexsort(r.T[::-1])]

    with torch.inference_mode():
        a, b = classifier(old).polymorph_logits, classifier(new).polymorph_logits
    return {"atoms": int(new.num_nodes), "edges": int(new.num_edges), "box": [round(float(x), 3) for x in frame.box],
            "same_edge_set": bool(np.array_equal(rows(old), rows(new))),
            "same_edge_order": bool(torch.equal(old.edge_index, new.edge_index) and torch.equal(old.edge_shift, new.edge_shift)),
            "logits_max_abs_diff": float((a - b).abs().max()), "logits_max_abs": float(a.abs().max()),
            "same_argmax": bool(torch.equal(a.argmax(-1), b.argmax(-1)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=7, help="timed frames (cycles) per system")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--no-gnn", action="store_true", help="leave out the end-to-end GNN inference")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if not REFERENCE.is_dir():
        print(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)", file=sys.stderr)
        return 1

    import torch
    import vesin

    from molenv.frames import neighbour_pairs
    from molenv.gnn.graph import frame_to_graph
    from molenv.gnn.lightning import GNNClassifier
    from molenv.spec import load_spec

    torch.set_num_threads(1)
    results = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "vesin": vesin.__version__, "torch": torch.__version__,
               "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "systems": {}}
    for system in args.systems:
        spec_name, _, n_forms = SYSTEMS[system]
        frame = crystal(system)
        frames = jittered(frame, args.frames)
        rmax = load_spec(spec_name).descriptor_set().rmax
        centre = load_spec(spec_name).descriptor_set().centre_atom
        row = {"molecules": frame.n_molecules, "atoms": frame.n_atoms, "box": [round(float(x), 2) for x in frame.box],
               "atom_pairs_6A": len(neighbour_pairs(frame.positions, frame.box, 6.0, single_image=False)), "sf_cutoff": rmax}
        row["atom_pairs"] = interleaved(frames, lambda f: kdtree_pairs(f.positions, f.box, 6.0, single_image=False),
                                        lambda f: neighbour_pairs(f.positions, f.box, 6.0, single_image=False), same_pairs,
                                        vesin_alone=lambda f: vesin_alone(f.positions, f.box, 6.0))

        def old_graph(f):
            with old_graph_edges():
                return frame_to_graph(f)

        row["graph"] = interleaved(frames, old_graph, frame_to_graph, same_graph)
        if not args.no_gnn:
            torch.manual_seed(0)
            classifier = GNNClassifier([f"form{k}" for k in range(n_forms)]).eval()

            def logits(build):
                def run(f):
                    with torch.inference_mode():
                        return classifier(build(f)).polymorph_logits
                return run

            row["gnn"] = interleaved(frames, logits(old_graph), logits(frame_to_graph), torch.equal)
        row["centre_pairs"] = interleaved(frames, lambda f: kdtree_pairs(f.centres(centre), f.box, rmax),
                                          lambda f: neighbour_pairs(f.centres(centre), f.box, rmax), same_pairs)
        results["systems"][system] = row
        print(system, json.dumps(row), flush=True)
    if not args.no_gnn:
        torch.manual_seed(0)
        results["small_cell_order"] = small_cell_order(GNNClassifier([f"form{k}" for k in range(7)]).eval())
        print("small_cell_order", json.dumps(results["small_cell_order"]), flush=True)
    results["load_average_end"] = os.getloadavg()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    identical = all(v["identical"] for row in results["systems"].values() for v in row.values() if isinstance(v, dict) and "identical" in v)
    if not identical:
        print("old and new outputs differ", file=sys.stderr)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
