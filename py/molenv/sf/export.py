"""A trained SF checkpoint -> molenv model file (docs/model_format.md), with provenance.

The model file carries, as ``meta`` records, where the model came from: the dataset (path
and SHA-256 of its manifest), the training sources and sizes, the training configuration,
the best validation loss and epoch, the checkpoint, the date and the command; and the
molecule spec (atoms, bonds, SMILES: `molenv.modelspec`), so that its readers need no
``--spec``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["export_sf"]


def export_sf(checkpoint: str | os.PathLike, out: str | os.PathLike, name: str | None = None, command: str | None = None, molecule=None, *,
              dataset=None, ood: bool = True, log=print):
    """Write the model file of an SF checkpoint (`molenv.sf.train.train_sf`); returns the `Model`.

    With ``ood`` (default) the file carries the out-of-distribution score (`molenv.ood`),
    fitted on the training molecules and calibrated on the validation molecules of `dataset`
    (default: the training dataset the checkpoint records); where that dataset is gone, the
    file is written without it and `log` says so.

    ``molecule`` (a `MoleculeSpec`, a shipped name or a spec path; default the training
    dataset's spec, `molenv.modelspec.dataset_spec`) is written into the file, after a check
    that its descriptors are the checkpoint's (ValueError naming both where not). Where the
    dataset's spec cannot be found, or differs from the checkpoint's descriptors, the file is
    written without it and `log` says why."""
    import torch

    from molenv.modelfile import write_model
    from molenv.modelspec import dataset_spec, spec_meta
    from molenv.sf.train import load_sf
    from molenv.spec import load_spec

    checkpoint = Path(checkpoint)
    classifier = load_sf(checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    provenance = dict(classifier.hparams.get("provenance") or {})
    config = provenance.pop("config", {})
    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trained_with": f"molenv {__import__('molenv').__version__} (molenv train sf, SFClassifier)",
        "checkpoint": str(checkpoint.resolve()),
        "epoch": str(state.get("epoch")),
    }
    callbacks = state.get("callbacks", {})
    scores = [v.get("best_model_score") for k, v in callbacks.items() if k.startswith("ModelCheckpoint") and isinstance(v, dict)]
    if scores and scores[0] is not None:
        meta["best_val_loss"] = repr(float(scores[0]))
    for key, value in provenance.items():
        meta[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    meta["config"] = json.dumps(config, separators=(",", ":"))
    if command:
        meta["command"] = command
    model = classifier.to_model(name=name, meta=meta)
    spec = load_spec(molecule) if isinstance(molecule, (str, os.PathLike)) else molecule
    problem = None
    if spec is not None:
        if problem := _descriptor_mismatch(spec, model):
            raise ValueError(f"{checkpoint}: the model does not fit the molecule given: {problem}")
    else:
        spec = dataset_spec(provenance.get("dataset"))
        problem = (f"the training dataset's spec ({provenance.get('dataset')}) cannot be found" if spec is None
                   else _descriptor_mismatch(spec, model))
        if problem:
            spec = None
            log(f"note: {out} carries no molecule spec ({problem}); its readers need --spec, or export with --molecule")
    if spec is not None:
        model.meta.update(spec_meta(spec, geometry=False))
    if ood:
        model.ood = _ood_score(model, dataset, provenance, config, log)
    write_model(model, out)
    return model


def _ood_score(model, dataset, provenance: dict, config: dict, log):
    from molenv.ood import calibrate_sf, describe, training_dataset

    if dataset is None:
        dataset = training_dataset(provenance.get("dataset"), provenance.get("dataset_manifest_sha256"), log)
        if dataset is None:
            return None
    score = calibrate_sf(model, dataset, bool(config.get("include_clusters", False)))
    log(describe(score))
    return score


def _descriptor_mismatch(spec, model) -> str | None:
    """Why the descriptors of `spec` are not those of the SF `model`, or None."""
    d, s = model.descriptors, spec.descriptor_set()
    fields = ("atoms_per_molecule", "centre_atom", "vectors", "sign_invariant", "rmin", "rmax", "functions")
    differ = [f for f in fields if _canonical(getattr(d, f)) != _canonical(getattr(s, f))]
    if differ:
        where = f" ({spec.path})" if spec.path else ""
        return f"spec {spec.name}{where} and the checkpoint differ in their {', '.join(differ)}"
    return None


def _canonical(value):
    """Lists and tuples alike, for comparing descriptor fields."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value
