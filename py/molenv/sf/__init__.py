"""The symmetry-function classifier (SF-MLP, METHOD.md §3), trained with Lightning.

- `model`: `SFClassifier`, the network (input scaling stored with it, dense sigmoid hidden
  layers, softmax outputs) as a LightningModule, and its conversion to a molenv model file.
- `train`: `SFTrainConfig`, `train_sf` (early stopping, checkpoints, fixed seeds),
  `load_sf`.
- `cli`: arguments and entry point of ``molenv train sf``.

Import the submodules directly; this package imports nothing heavy itself.
"""
