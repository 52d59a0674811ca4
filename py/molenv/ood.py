"""The out-of-distribution ("none of these") score of a classifier's molecules (issue 16).

A classifier assigns every molecule to one of the classes it was trained on, also a
molecule of a form it never saw; and its softmax confidence is no warning, since a network
extrapolates with confidence far from its data (Hendrycks & Gimpel 2017; Lee et al. 2018).
So the score is a distance in the network's feature space instead: the features h of a
molecule are the inputs of one dense layer of the SF-MLP (the scaled descriptors, or the
outputs of a hidden layer), and each class c is a Gaussian with its own mean mu_c and a
covariance Sigma shared by all classes (Lee et al., NeurIPS 2018, "A simple unified
framework for detecting out-of-distribution samples"):

    D_c = (h - mu_c)^T Sigma^-1 (h - mu_c) = |W h - m_c|^2     W^T W = Sigma^-1, m_c = W mu_c
    d   = -tau ln sum_c exp(-D_c / tau)                          a soft minimum over the classes
    other = sigmoid((d - d_threshold) / width)                   in (0, 1); > 0.5 beyond d_threshold

The soft minimum (temperature tau, squared-Mahalanobis units) keeps d smooth where the
nearest class changes, so that ``other`` and its sum n_other have continuous derivatives
and can be biased (MOLENV_CLASSIFY). d is the squared distance: for a molecule of a known
class it is about chi-square distributed with H degrees of freedom (H the feature width).

Which features: the scaled descriptors (the inputs of layer 1, `DEFAULT_LAYER`). Lee et
al. take a deep network's last hidden layer, but the small SF-MLP trained on few classes
compresses it to what separates those classes: an unseen form then lands on the features of
the nearest known one. Urea, trained on form I and melt (docs/training.md, "The
out-of-distribution score"): the last hidden layer flags 0.1 % of the form IV molecules at
100 K; the scaled descriptors 100 %, with 1 % of the validation molecules and 8 % of the
hotter (200 K) form I test molecules flagged. The layer is a field of the ood block, so a
model can carry another.

The GNN kind (`calibrate_gnn`): the features of a molecule are, by default
(`GNN_DEFAULT_LAYER` 1), the model's radial basis summed over each atom's neighbours, the
molecule's atoms concatenated (n_atoms x R numbers); or (layer k >= 2) the inputs of a layer
of the head (k = 2 the max-pooled embedding, then the head blocks' outputs). For the same
reason as for the SF-MLP: urea trained on form I + melt, the trained features (pooled
embedding, head blocks, also mean pooling, the atoms' features after the convolution) flag
0-11 % of the form IV molecules, the radial sums most of them (docs/training.md). In float64
from the model file's network (`molenv.gnn.numpy_model`), over every labelled molecule of
the training (fit) and validation (threshold) frames; the same statistics, the same block
(docs/model_format.md, "The ood block of the GNN kind"), evaluated by
`plumed_module/GraphNetwork.cpp` in C++.

Fit and calibration (`fit_ood`): mu_c and Sigma from the training molecules' features (Sigma
pooled over the classes, about their own class means, with Ledoit-Wolf shrinkage: a
descriptor constant in the training crystals, or a saturated sigmoid unit, makes the plain
estimate singular); d_threshold is the `quantile` (0.99)
of d over the known-class validation molecules, so about 1 % of them get other > 0.5; width
puts other = 0.01 at the `low_quantile` (0.90): width = (d_threshold - d_low) / ln 99. The
numbers go into the model file's ``ood`` block (docs/model_format.md) and the training
report; `OODScore` evaluates it in numpy, `plumed_module/OodScore.cpp` (within the network's
forward and reverse passes, Network.cpp) in C++ with the same definition, derivatives included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OOD_METHOD", "OTHER", "OODError", "OODScore", "fit_ood", "calibrate_sf", "calibrate_gnn", "calibration_record", "describe"]

OOD_METHOD = "mahalanobis"
#: the name of the out-of-distribution output: component n_other, column other
OTHER = "other"
DEFAULT_LAYER = 1  # the features: the inputs of dense layer 1, the scaled descriptors
GNN_DEFAULT_LAYER = 1  # GNN: the radial basis summed over each atom's neighbours, the molecule's atoms concatenated
THRESHOLD_QUANTILE = 0.99
LOW_QUANTILE = 0.90
SOFTMIN_TEMPERATURE = 1.0


class OODError(ValueError):
    """An OOD score that cannot be fitted or does not fit its model."""


@dataclass
class OODScore:
    """The calibrated score of the ``ood`` block of a model file (module docstring).

    layer:        the features h are the inputs of this dense layer (1-based as in the model
                  file: 1 = the scaled descriptors, k > 1 = the outputs of hidden layer k - 1).
    whitening:    (H, H) W with W^T W = Sigma^-1; z = W h.
    class_names:  the classes that have a mean (those with training molecules), in the
                  model's class order.
    means:        (C, H) whitened class means m_c = W mu_c.
    temperature:  tau of the soft minimum.
    threshold, width: other = sigmoid((d - threshold) / width).
    quantile, low_quantile, n_validation: the calibration (fractions of the known-class
                  validation molecules below threshold and below other = 0.01, their number).
    """

    layer: int
    whitening: np.ndarray
    class_names: list[str]
    means: np.ndarray
    temperature: float
    threshold: float
    width: float
    quantile: float
    low_quantile: float
    n_validation: int

    @property
    def n_features(self) -> int:
        return self.whitening.shape[1]

    def validate(self, classes: list[str], layer_inputs: list[int]) -> None:
        """OODError unless the score fits a network whose dense layers have `layer_inputs`
        inputs and a model with `classes` (the readers check the same, with line numbers)."""
        if OTHER in classes:
            raise OODError(f"a model with an ood block cannot have a class named '{OTHER}': its out-of-distribution component is n_{OTHER}")
        if not 1 <= self.layer <= len(layer_inputs):
            raise OODError(f"ood: layer {self.layer} is not a layer of the network (1..{len(layer_inputs)})")
        h = self.whitening.shape[0]
        if self.whitening.shape != (h, h) or h != layer_inputs[self.layer - 1]:
            raise OODError(f"ood: {self.whitening.shape} whitening for layer {self.layer} of {layer_inputs[self.layer - 1]} inputs")
        order = [classes.index(c) if c in classes else -1 for c in self.class_names]
        if not self.class_names or min(order) < 0 or order != sorted(set(order)):
            raise OODError(f"ood: class means {self.class_names} must be of distinct classes of the model ({', '.join(classes)}), in their order")
        if self.means.shape != (len(self.class_names), h):
            raise OODError(f"ood: means of shape {self.means.shape}, expected {(len(self.class_names), h)}")
        if not (self.temperature > 0 and self.width > 0 and 0 < self.low_quantile < self.quantile < 1 and self.n_validation >= 1):
            raise OODError("ood: needs a positive temperature and width, 0 < low quantile < quantile < 1 and a validation molecule")
        numbers = [self.whitening, self.means, np.array([self.temperature, self.threshold, self.width])]
        if not all(np.isfinite(a).all() for a in numbers):
            raise OODError("ood: holds non-finite numbers")

    def class_distances(self, features: np.ndarray) -> np.ndarray:
        """(n, C) squared Mahalanobis distances D_c of the features (n, H) to each class."""
        z = np.asarray(features, dtype=float) @ self.whitening.T
        return ((z[:, None, :] - self.means[None, :, :]) ** 2).sum(axis=2)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """(n,) d: the soft minimum over the classes of D_c."""
        D = self.class_distances(features)
        low = D.min(axis=1)
        return low - self.temperature * np.log(np.exp(-(D - low[:, None]) / self.temperature).sum(axis=1))

    def other(self, features: np.ndarray) -> np.ndarray:
        """(n,) the out-of-distribution score in (0, 1) of each molecule."""
        return _sigmoid((self.distance(features) - self.threshold) / self.width)

    def other_gradient(self, features: np.ndarray) -> np.ndarray:
        """(n, H) d other / d h (the C++ action's reverse pass does the same)."""
        h = np.asarray(features, dtype=float)
        z = h @ self.whitening.T
        D = ((z[:, None, :] - self.means[None, :, :]) ** 2).sum(axis=2)
        w = np.exp(-(D - D.min(axis=1, keepdims=True)) / self.temperature)
        w /= w.sum(axis=1, keepdims=True)
        dd_dz = 2.0 * (z - w @ self.means)
        o = self.other(h)
        return (o * (1.0 - o) / self.width)[:, None] * (dd_dz @ self.whitening)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic, as the network's


def fit_ood(features: np.ndarray, labels: np.ndarray, classes: list[str], val_features: np.ndarray, *, layer: int = DEFAULT_LAYER,
            quantile: float = THRESHOLD_QUANTILE, low_quantile: float = LOW_QUANTILE, temperature: float = SOFTMIN_TEMPERATURE) -> OODScore:
    """Fit the class-conditional Gaussians to the training `features` (n, H) with `labels`
    (indices into `classes`; classes with fewer than two molecules get no mean) and calibrate
    the threshold on the features of the known-class validation molecules `val_features`;
    `layer` records which layer's inputs the features are."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels)
    val_features = np.asarray(val_features, dtype=float)
    if not 0 < low_quantile < quantile < 1:
        raise OODError(f"need 0 < low quantile < quantile < 1, got {low_quantile} and {quantile}")
    present = [k for k in range(len(classes)) if (labels == k).sum() >= 2]
    if not present:
        raise OODError("no class has two or more training molecules: no class means for the ood score")
    if len(val_features) == 0:
        raise OODError("no validation molecules to calibrate the ood threshold on")
    mu = np.array([features[labels == k].mean(axis=0) for k in present])
    keep = np.isin(labels, present)
    centred = features[keep] - mu[np.searchsorted(present, labels[keep])]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, values.max() * 1e-12)  # shrinkage keeps them positive; guard rounding
    whitening = vectors.T / np.sqrt(values)[:, None]
    score = OODScore(layer=int(layer), whitening=whitening, class_names=[classes[k] for k in present], means=mu @ whitening.T, temperature=float(temperature),
                     threshold=0.0, width=1.0, quantile=float(quantile), low_quantile=float(low_quantile), n_validation=int(len(val_features)))
    d = score.distance(val_features)
    score.threshold = float(np.quantile(d, quantile))
    low = float(np.quantile(d, low_quantile))
    score.width = float(max(score.threshold - low, 1e-6 * max(abs(score.threshold), 1.0)) / math.log(99.0))
    return score


def calibrate_sf(model, dataset, include_clusters: bool = False, layer: int = DEFAULT_LAYER, **options) -> OODScore:
    """The ood score of an SF `molenv.modelfile.Model` (the inputs of dense layer `layer`) fitted on the
    training molecules of `dataset` and calibrated on its validation molecules (periodic bulk
    ones unless ``include_clusters``, as `molenv train sf` trains). Dataset classes are
    matched to the model's by name (ignoring case); molecules of classes the model does not
    know are left out. ``options`` go to `fit_ood`."""
    from dataclasses import asdict

    from molenv.sf.train import training_molecules

    if asdict(model.descriptors) != asdict(dataset.descriptor_set):
        raise OODError(f"the model's descriptor definition differs from the one the dataset {dataset.path} was featurized with")
    if not 1 <= layer <= len(model.network.weights):
        raise OODError(f"layer {layer} is not a layer of the network (1..{len(model.network.weights)})")
    index = {c.lower(): k for k, c in enumerate(model.classes)}
    to_model = np.array([index.get(c.lower(), -1) for c in dataset.classes])

    def known(split: str) -> tuple[np.ndarray, np.ndarray]:
        table = training_molecules(dataset, split, include_clusters)
        labels = to_model[table.labels] if len(table) else np.zeros(0, dtype=int)
        keep = labels >= 0
        if not keep.any():
            raise OODError(f"{dataset.path}: no {split} molecules of the model's classes ({', '.join(model.classes)}) to fit the ood score on")
        return model.network.layer_outputs(table.features[keep])[layer - 1], labels[keep]

    train, labels = known("train")
    val, _ = known("val")
    return fit_ood(train, labels, list(model.classes), val, layer=layer, **options)


def calibrate_gnn(model, dataset, layer: int = GNN_DEFAULT_LAYER, step: int = 1, **options) -> OODScore:
    """The ood score of a GNN `molenv.gnn.modelfile.GNNModel` on the features of `layer`
    (`GNNModel.ood_layer_inputs`: 1 the radial sums of the molecule's atoms, 2 the pooled
    molecule embedding, len(model.head) + 2 the last hidden features)
    fitted on the labelled molecules of the training frames of `dataset` and calibrated on
    those of its validation frames (every frame, clusters included, as `molenv train gnn`
    trains; with `step` > 1 every step-th frame of each source). The features are the model
    file's network in float64 (`molenv.gnn.numpy_model`, the numbers MOLENV_CLASSIFY
    computes). Dataset classes are matched to the model's by name (ignoring case); molecules
    of classes the model does not know are left out. ``options`` go to `fit_ood`."""
    from molenv.gnn.numpy_model import classify_frame

    if not 1 <= layer <= len(model.ood_layer_inputs):
        raise OODError(f"layer {layer} is not a layer of the network (1..{len(model.ood_layer_inputs)})")
    if step < 1:
        raise OODError(f"frame step must be >= 1, got {step}")
    index = {c.lower(): k for k, c in enumerate(model.classes)}
    to_model = np.array([index.get(c.lower(), -1) for c in dataset.classes] + [-1])  # [-1]: an unlabelled molecule (-1)

    def known(split: str) -> tuple[np.ndarray, np.ndarray]:
        features, labels, seen = [], [], {}
        for item in dataset.frames(split):
            k = seen[item.source] = seen.get(item.source, -1) + 1
            if k % step:
                continue
            label = to_model[item.polymorph]
            if (label >= 0).any():
                features.append(classify_frame(model, item.frame).ood_features[layer - 1][label >= 0])
                labels.append(label[label >= 0])
        if not features:
            raise OODError(f"{dataset.path}: no {split} molecules of the model's classes ({', '.join(model.classes)}) to fit the ood score on")
        return np.concatenate(features), np.concatenate(labels)

    train, labels = known("train")
    val, _ = known("val")
    return fit_ood(train, labels, list(model.classes), val, layer=layer, **options)


def training_dataset(path, manifest_sha256: str | None, log=print):
    """The training dataset a checkpoint records (its directory and the SHA-256 of its
    manifest at training time), to fit an exported model's ood score on; None, saying why,
    where it is not readable or has changed since the training."""
    from molenv.dataset import DatasetError, open_dataset

    try:
        dataset = open_dataset(path or "")
    except (DatasetError, OSError) as err:
        log(f"no ood score: the training dataset is not readable ({err}); add one with `molenv ood-calibrate`")
        return None
    if manifest_sha256 not in (None, dataset.manifest_sha256()):
        log(f"no ood score: the training dataset {dataset.path} changed since the training (its manifest's SHA-256 differs); "
            "add one with `molenv ood-calibrate`")
        return None
    return dataset


def describe(score: OODScore, kind: str = "sf") -> str:
    """One line of the calibration (of a model of `kind`), for training reports and logs."""
    what = layer_name(score.layer, kind)
    return (f"ood score (Mahalanobis distance of {what}, {score.n_features} features, to {len(score.class_names)} class means): "
            f"threshold d = {score.threshold:.6g} (the {score.quantile:g} quantile of {score.n_validation} known-class validation molecules), "
            f"width {score.width:.6g} (other = 0.01 at the {score.low_quantile:g} quantile)")


def layer_name(layer: int, kind: str = "sf") -> str:
    """What the features of an ood score on the inputs of `layer` are, in words."""
    if kind == "gnn":
        return {1: "the radial sums of the molecule's atoms", 2: "the pooled molecule embedding"}.get(layer, f"the outputs of head block {layer - 2}")
    return "the scaled descriptors" if layer == 1 else f"the outputs of hidden layer {layer - 1}"


def calibration_record(score: OODScore, val_other: np.ndarray | None = None) -> dict:
    """The calibration as a JSON-able record (training reports); with the validation
    molecules' scores, the fraction of them flagged (other > 0.5) and their mean score."""
    record = {"method": OOD_METHOD, "layer": score.layer, "features": score.n_features, "class_means": list(score.class_names), "softmin_temperature": score.temperature,
              "threshold": score.threshold, "width": score.width, "quantile": score.quantile, "low_quantile": score.low_quantile,
              "validation_molecules": score.n_validation}
    if val_other is not None:
        record["validation_flagged_fraction"] = float(np.mean(np.asarray(val_other) > 0.5))
        record["validation_mean_other"] = float(np.mean(val_other))
    return record
