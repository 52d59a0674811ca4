"""Benchmark of the graph classifier on CPU: inference frames per second and training time
per epoch, for ~100-molecule urea and nicotinamide crystal boxes.

Boxes are built from the reference crystal structures (../shared/reference: urea form I,
nicotinamide form I = NICOAM13) with `molenv.crystals`; frames are thermal-like copies
(every atom displaced by a Gaussian of 0.1 A), so every frame gets its own neighbour search.
Timings per frame include building the graph (neighbour search) and the forward pass of
the published architecture (1 convolution, random weights: speed does not depend on them);
"pipelined" is what `predict_graphs` over a `FrameGraphs` dataset does with one worker
process building graphs while the network runs (2 cores); "two processes" splits the frames
over two processes of one torch thread each, as `molenv classify --backend multiprocessing
--workers 2` does. The peer measured in the same
run on the same frames is the SF classifier in Python (`molenv.models.SFFrameClassifier`'s
path: `compute_descriptors` with the molecule spec's symmetry functions, then a
24-25-25-K network in numpy), one process. The load average is recorded:
on a CPU shared with other jobs, several torch threads slow down badly (use --threads 1).

    .venv/bin/python bench/gnn_inference.py [--threads 2] [--frames 100] [--json out.json]

``--gpu`` also times, on a CUDA GPU, the forward pass (graph built on the CPU and copied)
and a training epoch of the same frames (Lightning, ``accelerator="gpu"``), and reports
the CPU / GPU ratio of the epoch time.

The issue's target: 500 frames of a 20 A urea box classified in under a minute on 2 cores;
``--frames 500`` measures it directly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# numpy's BLAS only sees 3x3 matrices here: its threads add nothing but contention
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from _common import FORM_I, REFERENCE  # noqa: E402

# system -> (spec, structure, supercell repeats): 100-160 molecules, every height > 2 x the SF cutoff
SYSTEMS = {
    "urea": ("urea", FORM_I["urea"], (4, 4, 5)),  # 160 molecules, 22.3 x 22.3 x 23.4 A (SF cutoff 10 A)
    "nicotinamide": ("nicotinamide", FORM_I["nicotinamide"], None),  # min height 20 A
}


def box(system: str):
    from molenv.crystals import build_supercell
    from molenv.spec import load_spec

    spec, structure, repeats = SYSTEMS[system]
    return build_supercell(REFERENCE / structure, load_spec(spec), min_height=20.0, repeats=repeats).frame()


def jittered(frame, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [frame.replace(positions=frame.positions + rng.normal(scale=0.1, size=frame.positions.shape), time=float(k)) for k in range(n)]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _classify_frames(classifier, frames) -> int:
    """Graph and forward pass of every frame, one torch thread (a worker of `two_processes`)."""
    import torch

    from molenv.gnn.graph import frame_to_graph

    with torch.inference_mode():
        for frame in frames:
            classifier(frame_to_graph(frame)).polymorph_logits.softmax(-1)
    return len(frames)


def two_processes(frames, classifier) -> float:
    """Seconds for all frames split over two processes of one torch thread each: what
    `molenv classify --backend multiprocessing --workers 2` does (process start-up included)."""
    import multiprocessing

    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2, initializer=_one_thread) as pool:
        done = pool.starmap(_classify_frames, [(classifier, frames[0::2]), (classifier, frames[1::2])])
    assert sum(done) == len(frames)
    return time.perf_counter() - t0


def bench_inference(frames, classifier, exported, threads: int) -> dict:
    """Sequential (graph then network, one process, ``threads`` torch threads) and
    pipelined timings (`predict_graphs` with one worker process building graphs while the
    main process runs the network on one thread: two cores in all)."""
    import torch

    from molenv.gnn.graph import FrameGraphs, frame_to_graph
    from molenv.gnn.lightning import predict_graphs

    torch.set_num_threads(threads)
    graph_s = forward_s = script_s = graph_cpu = forward_cpu = 0.0
    n_script = max(5, len(frames) // 5)  # TorchScript on a subset of the frames
    with torch.inference_mode():
        for k, frame in enumerate(frames):
            t0, c0 = time.perf_counter(), time.process_time()
            g = frame_to_graph(frame)
            t1, c1 = time.perf_counter(), time.process_time()
            classifier(g).polymorph_logits.softmax(-1)
            t2, c2 = time.perf_counter(), time.process_time()
            if k <= n_script:
                exported(g.z, g.pos, g.edge_index, g.edge_shift, g.molecule, g.num_molecules)
                if k > 0:
                    script_s += time.perf_counter() - t2
            if k > 0:  # the first frame warms up allocators and the TorchScript executor
                graph_s += t1 - t0
                forward_s += t2 - t1
                graph_cpu += c1 - c0
                forward_cpu += c2 - c1
    n = len(frames) - 1
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    predictions = predict_graphs(classifier, FrameGraphs(frames), batch_size=1, num_workers=1, embeddings=False)
    pipelined_s = time.perf_counter() - t0
    assert len(predictions.times) == len(frames)
    two_s = two_processes(frames, classifier)
    return {
        "atoms": int(g.num_nodes),
        "molecules": int(g.num_molecules),
        "edges": int(g.num_edges),
        "threads": threads,
        "graph_ms": 1000 * graph_s / n,
        "forward_ms": 1000 * forward_s / n,
        # CPU time of this process: close to the wall time on an idle core
        "graph_cpu_ms": 1000 * graph_cpu / n,
        "forward_cpu_ms": 1000 * forward_cpu / n,
        "torchscript_forward_ms": 1000 * script_s / n_script,
        "sequential_frames_per_s": n / (graph_s + forward_s),
        "pipelined_frames_per_s": len(frames) / pipelined_s,
        "pipelined_seconds_per_500_frames": 500 * pipelined_s / len(frames),
        "two_processes_frames_per_s": len(frames) / two_s,
        "two_processes_seconds_per_500_frames": 500 * two_s / len(frames),
    }


def bench_sf_peer(frames, spec_name: str, n_classes: int) -> dict:
    """Time per frame of the SF classifier in Python on the same frames (the peer)."""
    from molenv.descriptors import compute_descriptors
    from molenv.modelfile import Network
    from molenv.spec import load_spec

    descriptors = load_spec(spec_name).descriptor_set()
    rng = np.random.default_rng(0)
    sizes = [descriptors.n_features, 25, 25, n_classes]
    network = Network(np.zeros(sizes[0]), np.ones(sizes[0]), [rng.normal(size=(b, a)) for a, b in zip(sizes, sizes[1:])],
                      [np.zeros(b) for b in sizes[1:]])
    network.forward(compute_descriptors(frames[0], descriptors))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for frame in frames[1:]:
        network.forward(compute_descriptors(frame, descriptors))
    n = len(frames) - 1
    return {"sf_python_ms": 1000 * (time.perf_counter() - t0) / n, "sf_python_cpu_ms": 1000 * (time.process_time() - c0) / n}


def bench_training(frames, n_forms: int, epochs: int = 2, batch_size: int = 4, accelerator: str = "cpu", num_convs: int = 1) -> dict:
    import lightning as L

    from molenv.gnn.graph import frame_to_graph
    from molenv.gnn.lightning import GNNTrainConfig, train_gnn

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self.start)

    rng = np.random.default_rng(1)
    graphs = [frame_to_graph(f, polymorph=int(rng.integers(n_forms)), topology=0) for f in frames]
    timer = EpochTimer()
    config = GNNTrainConfig(form_names=[f"form{k}" for k in range(n_forms)], batch_size=batch_size, max_epochs=epochs, accelerator=accelerator, devices=1,
                            num_convs=num_convs)
    with tempfile.TemporaryDirectory() as out:
        train_gnn(graphs, graphs[:batch_size], config, out, callbacks=[timer])
    per_epoch = min(timer.times)
    return {"train_frames": len(graphs), "batch_size": batch_size, "epoch_s": per_epoch, "train_ms_per_frame": 1000 * per_epoch / len(graphs)}


def bench_gpu(frames, classifier, n_forms: int) -> dict:
    """The network's forward pass on the GPU (graphs built on the CPU and copied, the copy
    included) and a training epoch there (Lightning, accelerator gpu)."""
    import torch

    from molenv.gnn.graph import frame_to_graph

    graphs = [frame_to_graph(frame) for frame in frames]
    model = classifier.to("cuda")
    with torch.inference_mode():
        for k, g in enumerate(graphs):
            if k == 1:  # the first frame warms up CUDA and the allocator
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            model(g.to("cuda")).polymorph_logits.softmax(-1).cpu()
    forward_ms = 1000 * (time.perf_counter() - t0) / (len(graphs) - 1)
    classifier.to("cpu")
    train = bench_training(frames, n_forms, accelerator="gpu")
    return {"gpu": torch.cuda.get_device_name(), "gpu_forward_ms": forward_ms, "gpu_epoch_s": train["epoch_s"],
            "gpu_train_ms_per_frame": train["train_ms_per_frame"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the sequential timing and of training")
    parser.add_argument("--frames", type=int, default=100, help="inference frames per system")
    parser.add_argument("--train-frames", type=int, default=16, help="frames of the training epoch")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--train-convs", type=int, nargs="+", default=[1],
                        help="graph convolutions of the timed training epochs (the first gives epoch_s; each further N adds "
                        "epoch_s_convsN and its ratio to the first)")
    parser.add_argument("--gpu", action="store_true", help="also time the forward pass and a training epoch on the GPU (CUDA)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import torch

    from molenv.gnn.export import export_torchscript, load_exported
    from molenv.gnn.lightning import GNNClassifier

    if args.gpu and not torch.cuda.is_available():
        print("--gpu: torch sees no CUDA device", file=sys.stderr)
        return 1
    if not REFERENCE.is_dir():
        print(f"reference data not found at {REFERENCE} (set MOLENV_REFERENCE)", file=sys.stderr)
        return 1
    results = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "systems": {}}
    n_forms = {"urea": 7, "nicotinamide": 10}  # reference class counts
    for system in args.systems:
        torch.manual_seed(0)
        classifier = GNNClassifier([f"form{k}" for k in range(n_forms[system])]).eval()
        with tempfile.TemporaryDirectory() as tmp:
            exported, _ = load_exported(export_torchscript(classifier.model, Path(tmp) / "m.pt", classifier.form_names))
        frame = box(system)
        row = {"box": [round(float(x), 2) for x in frame.box]}
        frames = jittered(frame, args.frames)
        row.update(bench_inference(frames, classifier, exported, args.threads))
        row.update(bench_sf_peer(frames, SYSTEMS[system][0], n_forms[system]))
        row["gnn_sequential_frame / sf_python_frame"] = (row["graph_ms"] + row["forward_ms"]) / row["sf_python_ms"]
        torch.set_num_threads(args.threads)
        train_frames = jittered(frame, args.train_frames, seed=2)
        row.update(bench_training(train_frames, n_forms[system], num_convs=args.train_convs[0]))
        for n in args.train_convs[1:]:
            row[f"epoch_s_convs{n}"] = bench_training(train_frames, n_forms[system], num_convs=n)["epoch_s"]
            row[f"epoch_convs{n} / epoch_convs{args.train_convs[0]}"] = row[f"epoch_s_convs{n}"] / row["epoch_s"]
        if args.gpu:
            row.update(bench_gpu(train_frames, classifier, n_forms[system]))
            row["cpu_epoch / gpu_epoch"] = row["epoch_s"] / row["gpu_epoch_s"]
        results["systems"][system] = row
        print(system, json.dumps(row), flush=True)
    results["load_average_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
