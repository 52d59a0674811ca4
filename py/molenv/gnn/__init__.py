"""Graph neural network classifier of molecular environments (METHOD.md §4).

Modules, one concept each:

- `graph`: `MolecularFrame` -> `MolecularGraph` (atoms, edges within 6 A with periodic
  images, molecule index per atom, per-molecule labels); batching offsets molecule indices.
- `model`: `MolecularGNN`, the network (Bessel radial basis, TransformerConv, per-molecule
  max pooling, polymorph + topology head).
- `lightning`: `GNNClassifier` (loss, optimiser, metrics), `train_gnn`, `predict_graphs`.
- `export`: TorchScript export and loading, and conversion to the GNN model file, for use
  outside Python.
- `modelfile`: the molenv model file of kind gnn (`GNNModel`, read / write / validate; no torch).
- `numpy_model`: the reference evaluator of a GNN model file in numpy (float64), the
  specification of the C++ action.
- `synthetic`: toy urea solids for tests and examples.
- `cli`: arguments and entry point of ``molenv train gnn``.

Import the submodules directly (``from molenv.gnn.model import MolecularGNN``); this package
imports nothing heavy itself.
"""
