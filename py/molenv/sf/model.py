"""`SFClassifier`: the per-molecule MLP on symmetry functions, as a LightningModule.

    x (unscaled SFs) -> (x - mean) * stretch -> [Linear -> sigmoid] x n_hidden -> Linear -> softmax

The input scaling is part of the model (buffers ``mean``, ``stretch``), set once from the
training set as in the reference code (METHOD.md §3): mean = training mean,
stretch = 2 / (max - min) (1 for a feature that is constant in the training set). The
loss is the cross-entropy of the softmax outputs. Everything is float64: the data are small
and the exported model file (`to_model`) then gives PLUMED's numbers to ~1e-15.
"""
from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from molenv.descriptors import descriptor_set_from_dict
from molenv.modelfile import HIDDEN_ACTIVATIONS, Model, Network

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": F.softplus, "identity": lambda x: x}
assert set(ACTIVATIONS) == set(HIDDEN_ACTIVATIONS)  # every activation the model file knows


def input_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, stretch) of the reference scaling x' = (x - mean) * 2 / (max - min)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"input scaling needs a non-empty (n_samples, n_features) array, got shape {features.shape}")
    span = features.max(axis=0) - features.min(axis=0)
    stretch = np.where(span > 0, 2.0 / np.where(span > 0, span, 1.0), 1.0)
    return features.mean(axis=0), stretch


class SFClassifier(L.LightningModule):
    """MLP over symmetry functions with softmax outputs.

    Args:
        class_names: class names in output order.
        descriptors: the descriptor set as a dict (`molenv.descriptors.descriptor_set_to_dict`),
            kept so that a checkpoint alone can be exported to a model file.
        hidden: sizes of the hidden layers (published: 25, 25).
        activation: hidden activation, one the model file supports (sigmoid, tanh, softplus, identity).
        lr, weight_decay: Adam.
        input_noise: standard deviation of Gaussian noise added to the scaled inputs of
            the training steps (not validation, not the exported model): blurs the narrow
            descriptor distributions of cold training crystals, so that the same crystals'
            broader distributions at a higher temperature stay on their side of the
            class boundaries (0: none, the published training).
        provenance: free-form facts about the training data (written into exported models).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        descriptors: dict,
        hidden: Sequence[int] = (25, 25),
        activation: str = "sigmoid",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        provenance: dict | None = None,
        input_noise: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (one of {', '.join(ACTIVATIONS)})")
        if not input_noise >= 0.0:
            raise ValueError(f"input_noise must be >= 0, got {input_noise}")
        if len(class_names) < 2:
            raise ValueError(f"a classifier needs two or more classes, got {list(class_names)}")
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.descriptors = descriptor_set_from_dict(descriptors)
        n_in = self.descriptors.n_features
        sizes = [n_in, *hidden, len(self.class_names)]
        self.layers = nn.ModuleList(nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]
        self.register_buffer("mean", torch.zeros(n_in, dtype=torch.float64))
        self.register_buffer("stretch", torch.ones(n_in, dtype=torch.float64))

    def set_scaling(self, features: np.ndarray) -> None:
        """Set the input scaling from the training features (unscaled SFs)."""
        mean, stretch = input_scaling(features)
        self.mean.copy_(torch.as_tensor(mean))
        self.stretch.copy_(torch.as_tensor(stretch))

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Scaled input, each hidden layer's output, and the logits (pre-softmax)."""
        h = (x - self.mean) * self.stretch
        outputs = [h]
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if k < len(self.layers) - 1:
                h = self.activation(h)
            outputs.append(h)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, n_classes) from unscaled SFs; probabilities are their softmax."""
        return self.layer_outputs(x)[-1]

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}_loss", loss, prog_bar=stage == "val", on_step=False, on_epoch=True, batch_size=len(y))
        # micro F1 of single-label classification = accuracy
        self.log(f"{stage}_f1", (logits.argmax(1) == y).double().mean(), prog_bar=stage == "val", on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.input_noise > 0:
            # noise of the given width in scaled units: x' = (x - mean) * stretch + noise
            x = x + self.hparams.input_noise * torch.randn_like(x) / self.stretch
        return self._step((x, y), "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["molenv_kind"] = "sf"  # tells `molenv.models.open_model` an SF checkpoint from a GNN one

    def to_model(self, name: str | None = None, meta: dict | None = None) -> Model:
        """The molenv model file content (docs/model_format.md) of this network."""
        network = Network(
            mean=self.mean.detach().cpu().numpy().copy(),
            stretch=self.stretch.detach().cpu().numpy().copy(),
            weights=[layer.weight.detach().cpu().double().numpy().copy() for layer in self.layers],
            biases=[layer.bias.detach().cpu().double().numpy().copy() for layer in self.layers],
            hidden_activation=self.hparams.activation,
            output_activation="softmax",
        )
        model = Model(
            name=name or f"{(self.hparams.provenance or {}).get('molecule', '')} SF-MLP ({', '.join(self.class_names)})".lstrip(),
            classes=list(self.class_names),
            descriptors=self.descriptors,
            network=network,
            meta=dict(meta or {}),
        )
        model.validate()
        return model
