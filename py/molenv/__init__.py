"""molenv: classify the local environment of molecules in molecular crystals.

Python side of molenv: descriptors, datasets, training (SF-MLP and GNN), evaluation and
export to the model file read by the PLUMED action `MOLENV_CLASSIFY`.

The Python API (docs/api.md), imported on first use so that ``import molenv`` stays light:

- ``molenv.classify(obj, model, spec=None, **options)``: classify the molecules of an
  MDAnalysis Universe or AtomGroup, ASE Atoms (or a list of them) or a file; returns a
  `ClassificationResult` (the function `molenv.classification.classify`, where the rest of
  the classifying API lives);
- ``molenv.ClassifyFrames``: the same as an MDAnalysis analysis (``.run(...)``);
- ``molenv.open_model(path)``: a model of any kind (`molenv.models`), opened once for many
  calls;
- ``molenv.ClassificationResult``: per-molecule probabilities and their summaries.
"""
__version__ = "0.1.0"

# name -> (module, attribute)
_LAZY = {
    "classify": ("molenv.classification", "classify"),
    "ClassifyFrames": ("molenv.classification", "ClassifyFrames"),
    "open_model": ("molenv.models", "open_model"),
    "ClassificationResult": ("molenv.analysis", "ClassificationResult"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'molenv' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
