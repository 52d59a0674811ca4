#!/usr/bin/env python
"""Train the SF-MLP the way the original authors' code does (full batch, quasi-Newton, a
fixed number of iterations, no early stopping) and print its test accuracy after each block
of iterations: does their trainer explain why their published model transfers to hot
crystals better than ours (docs/results_notes.md)?

    .venv/bin/python scripts/sf_full_batch.py RUNS/nicotinamide/dataset --iterations 100,300,1000,2000

METHOD.md §3: the reference trainer runs full-batch conjugate gradient for 1000-2000
iterations on the periodic bulk molecules. Here torch's L-BFGS (strong Wolfe line search),
the same network as `molenv train sf` (`molenv.sf.model.SFClassifier`: 25-25 sigmoid
hidden units, the input scaling of the training molecules, softmax cross-entropy), the same
training molecules (`molenv.sf.train.training_molecules`) and seed. One line of JSON per
block: iterations, training loss, validation and test micro F1, test recall per class.
Nothing is written; use `molenv train sf` for models.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from molenv.dataset import Dataset
from molenv.sf.model import SFClassifier
from molenv.sf.train import training_molecules

ITERATIONS_PER_STEP = 50  # L-BFGS iterations per optimiser step (one evaluation of the blocks below)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="dataset directory of `molenv featurize`")
    parser.add_argument("--iterations", default="100,300,1000,2000", help="report after these numbers of iterations (comma separated)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    dataset = Dataset(args.dataset)
    train, val = training_molecules(dataset, "train"), training_molecules(dataset, "val")
    test = dataset.molecules("test", periodic_only=True)
    if len(test) == 0:
        parser.error(f"{args.dataset}: no periodic test molecules to score")
    model = SFClassifier(dataset.classes, dataset.manifest["descriptors"])
    model.set_scaling(train.features)
    x, y = torch.as_tensor(train.features), torch.as_tensor(train.labels, dtype=torch.long)
    optimiser = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=ITERATIONS_PER_STEP, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def predicted(features) -> np.ndarray:
        with torch.no_grad():
            return model(torch.as_tensor(features)).argmax(1).numpy()

    done, start = 0, time.perf_counter()
    for target in sorted(int(n) for n in args.iterations.split(",")):
        while done < target:
            optimiser.step(closure)
            done += ITERATIONS_PER_STEP
        with torch.no_grad():
            loss = F.cross_entropy(model(x), y)
        right = predicted(test.features) == test.labels
        recall = {c: round(float(right[test.labels == k].mean()), 3) for k, c in enumerate(dataset.classes) if (test.labels == k).any()}
        print(json.dumps({"iterations": done, "train_loss": float(loss), "val_f1": round(float((predicted(val.features) == val.labels).mean()), 4),
                          "test_f1": round(float(right.mean()), 4), "test_recall": recall, "seconds": round(time.perf_counter() - start)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
