"""The molenv model file: the contract between training (Python) and `MOLENV_CLASSIFY` (C++).

The format is specified in ``docs/model_format.md``; the C++ reader is
``plumed_module/ModelFile.cpp``. This module holds the in-memory model (the descriptor
definitions, `molenv.descriptors.DescriptorSet`, + network), reads and writes the file with
the same validation rules as the C++ reader, and evaluates the network with numpy so that
Python and PLUMED can be compared number by number.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.descriptors import DescriptorError, DescriptorSet, SymmetryFunction
from molenv.ood import OOD_METHOD, OTHER, OODError, OODScore

FORMAT_VERSION = 1
# Version 3: version 1 plus the records added since: in the molecule geometry a centroid
# centre (``centre_atoms``), plane-normal and sign-invariant vectors, and the optional ``ood``
# block before ``end`` (docs/model_format.md). Written only for a model that uses one of them, so that every other SF file stays version 1
# and a reader of version 1 alone refuses a version 3 file at its first record.
GEOMETRY_FORMAT_VERSION = 3
SF_FORMAT_VERSIONS = (FORMAT_VERSION, GEOMETRY_FORMAT_VERSION)
# Versions whose second record is ``kind`` (the GNN kind, molenv.gnn.modelfile): 2, and 4 =
# version 2 plus the ood block, written only for a model that has one (as version 3 for SF)
KIND_FORMAT_VERSIONS = (2, 4)
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "softplus", "identity")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
CLASS_NAME = re.compile(r"^[A-Za-z0-9_]+$")

# The syntax of the model file (docs/model_format.md, "Syntax"), as the C++ reader has it
MAX_INTEGER = 1_000_000  # every count, size and index: nothing can announce more than this
_INTEGER = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab (0x09) and line feed (0x0a)
_FIELD_SEPARATOR = re.compile(r"[ \t]+")
_REALS = re.compile(rf"{_REAL.pattern}(?: {_REAL.pattern})*")  # a row of reals joined by single spaces


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file, line and problem."""


@dataclass
class Network:
    """Input scaling followed by dense layers; weights[k] has shape (n_out, n_in)."""

    mean: np.ndarray
    stretch: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    hidden_activation: str = "sigmoid"
    output_activation: str = "softmax"

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def validate(self, n_inputs: int, n_outputs: int) -> None:
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ModelFileError(f"unknown hidden activation '{self.hidden_activation}' (expected one of {', '.join(HIDDEN_ACTIVATIONS)})")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ModelFileError(f"unknown output activation '{self.output_activation}' (expected one of {', '.join(OUTPUT_ACTIVATIONS)})")
        if self.mean.shape != (n_inputs,) or self.stretch.shape != (n_inputs,):
            raise ModelFileError(f"input scaling has {self.mean.shape[0]} entries for {n_inputs} descriptors")
        if not self.weights or len(self.weights) != len(self.biases):
            raise ModelFileError("the network needs at least one layer, each with weights and biases")
        n_in = n_inputs
        for k, (w, b) in enumerate(zip(self.weights, self.biases), 1):
            if w.ndim != 2 or w.shape[1] != n_in or b.shape != (w.shape[0],):
                raise ModelFileError(f"layer {k} has shape {w.shape} (bias {b.shape}); expected {n_in} inputs")
            n_in = w.shape[0]
        if n_in != n_outputs:
            raise ModelFileError(f"the last layer has {n_in} outputs for {n_outputs} classes")
        for name, arr in [("scaling mean", self.mean), ("scaling stretch", self.stretch), *[(f"layer {k}", a) for k, a in enumerate(self.weights + self.biases, 1)]]:
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{name} holds non-finite numbers")

    def forward(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_molecules, n_classes), from unscaled descriptors."""
        return self.layer_outputs(features)[-1]

    def layer_outputs(self, features: np.ndarray) -> list[np.ndarray]:
        """Scaled inputs, then the output of every layer (after its activation): the last
        is the class probabilities, the one before it the last hidden layer (for t-SNE)."""
        h = (np.asarray(features, dtype=float) - self.mean) * self.stretch
        outputs = [h]
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T + b
            h = _activation(self.output_activation if k == last else self.hidden_activation, h)
            outputs.append(h)
        return outputs


def _activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":
        return np.logaddexp(0.0, x)
    if name == "identity":
        return x
    if name == "softmax":
        z = np.exp(x - x.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


@dataclass
class Model:
    name: str
    classes: list[str]
    descriptors: DescriptorSet
    network: Network
    meta: dict[str, str] = field(default_factory=dict)
    ood: OODScore | None = None  # the optional out-of-distribution score (molenv.ood)

    def validate(self) -> None:
        if not self.classes:
            raise ModelFileError("no classes")
        for c in self.classes:
            if not CLASS_NAME.match(c):
                raise ModelFileError(f"class name '{c}' must match [A-Za-z0-9_]+ (it becomes a PLUMED component name)")
        if len(set(self.classes)) != len(self.classes):
            raise ModelFileError(f"duplicate class names in {self.classes}")
        try:
            self.descriptors.validate()
        except DescriptorError as err:
            raise ModelFileError(str(err)) from None
        self.network.validate(self.descriptors.n_features, len(self.classes))
        if self.ood is not None:
            try:
                self.ood.validate(self.classes, self.network.sizes[:-1])
            except OODError as err:
                raise ModelFileError(str(err)) from None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.network.forward(features)

    def other(self, features: np.ndarray) -> np.ndarray:
        """(n,) the out-of-distribution score of each molecule (`molenv.ood`) from its
        unscaled descriptors; ModelFileError for a model without an ood block."""
        if self.ood is None:
            raise ModelFileError(f"the model '{self.name}' has no ood block (no calibrated out-of-distribution score): "
                                 "add one with `molenv ood-calibrate` (docs/training.md)")
        return self.ood.other(self.ood_features(features))

    def ood_features(self, features: np.ndarray) -> np.ndarray:
        """The features of the ood score (the inputs of its layer) from unscaled descriptors."""
        return self.network.layer_outputs(features)[self.ood.layer - 1]


# ----------------------------------------------------------------------------- writing


def _num(x: float) -> str:
    return repr(float(x))


_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")


def _text(value, what: str) -> str:
    """Free text for a record (a name, a meta value): its whitespace (newlines included)
    collapsed to single spaces, as a reader reads it back; control characters refused."""
    text = " ".join(str(value).split())
    if _CONTROL_TEXT.search(text):
        raise ModelFileError(f"{what} {text!r} holds a control character, which a model file cannot hold")
    return text


def _meta_records(meta: dict) -> list[str]:
    out = []
    for key, value in meta.items():
        if not key or _text(key, "meta key") != key or " " in key or "#" in key:
            raise ModelFileError(f"meta key {key!r} must be one word without '#'")
        out.append(f"meta {key} {_text(value, f'meta {key}')}")
    return out


def write_model(model: Model, path: str | Path) -> Path:
    """Write `model` to `path` (validated first); returns the path."""
    model.validate()
    d, net = model.descriptors, model.network
    # records added since version 1 (richer geometry, the ood block) make a version 3 file
    version = GEOMETRY_FORMAT_VERSION if d.uses_richer_geometry or model.ood is not None else FORMAT_VERSION
    out = ["# molenv model file, see docs/model_format.md", f"molenv_model {version}", f"name {_text(model.name, 'name')}"]
    out += _meta_records(model.meta)
    out.append(f"classes {len(model.classes)} {' '.join(model.classes)}")
    out.append(f"atoms_per_molecule {d.atoms_per_molecule}")
    if len(d.centre_atoms) > 1:
        out.append(f"centre_atoms {len(d.centre_atoms)} {' '.join(map(str, d.centre_atoms))}")
    else:
        out.append(f"centre_atom {d.centre_atom}")
    out.append(f"vector_count {len(d.vectors)}")
    for k, atoms in enumerate(d.vectors, 1):
        kind = "" if len(atoms) == 2 else "normal "
        flag = " sign_invariant" if k in d.sign_invariant else ""
        out.append(f"vector {k} {kind}{' '.join(map(str, atoms))}{flag}")
    out.append(f"cutoff {_num(d.rmin)} {_num(d.rmax)}")
    out.append(f"descriptor_count {d.n_features}")
    for i, sf in enumerate(d.functions, 1):
        vec = "-" if sf.vector is None else str(sf.vector)
        out.append(f"descriptor {i} {sf.kind} {vec} {' '.join(map(_num, sf.params))}")
    out += [f"scaling {i} {_num(m)} {_num(s)}" for i, (m, s) in enumerate(zip(net.mean, net.stretch), 1)]
    out.append(f"hidden_activation {net.hidden_activation}")
    out.append(f"output_activation {net.output_activation}")
    out.append(f"layer_count {len(net.weights)}")
    for k, (w, b) in enumerate(zip(net.weights, net.biases), 1):
        out.append(f"layer {k} {w.shape[1]} {w.shape[0]}")
        out += [" ".join(map(_num, [b[j], *w[j]])) for j in range(w.shape[0])]
    if model.ood is not None:
        out += _ood_records(model.ood)
    out.append("end")
    path = Path(path)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _ood_records(ood: OODScore) -> list[str]:
    out = [f"ood {OOD_METHOD} {ood.layer} {ood.n_features} {len(ood.class_names)}",
           f"ood_softmin {_num(ood.temperature)}",
           f"ood_threshold {_num(ood.threshold)} {_num(ood.width)}",
           f"ood_calibration {_num(ood.quantile)} {_num(ood.low_quantile)} {ood.n_validation}",
           "ood_whitening"]
    out += [" ".join(map(_num, row)) for row in ood.whitening]
    out += [f"ood_mean {name} {' '.join(map(_num, m))}" for name, m in zip(ood.class_names, ood.means)]
    return out


# ----------------------------------------------------------------------------- reading


class _Records:
    """Line-numbered records of a model file, consumed in order.

    The syntax (docs/model_format.md, "Syntax") is checked here, byte for byte as the C++
    tokenizer (plumed_module/ModelRecords.cpp) checks it: UTF-8 text without a byte order
    mark, no control characters but tab and line feed, ``#`` comments, fields separated by
    spaces and tabs only; numbers by `integer` and `number`."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ModelFileError(f"{path}: cannot read the model file ({err.strerror})") from None
        _check_text(path, data)
        lines = data.decode("utf-8").split("\n")
        if lines[-1] == "":  # the line feed ending the last line (or an empty file)
            lines.pop()
        self.items: list[tuple[int, list[str]]] = []
        for lineno, line in enumerate(lines, 1):
            line = line.split("#", 1)[0]
            # only spaces and tabs separate fields; str.split() splits on them alone in ASCII
            # text free of control characters, not in other text (U+00A0, U+2028, ...)
            tokens = line.split() if line.isascii() else [t for t in _FIELD_SEPARATOR.split(line) if t]
            if tokens:
                self.items.append((lineno, tokens))
        self.pos = 0

    def error(self, message: str, lineno: int | None = None) -> ModelFileError:
        where = f"{self.path}:{lineno}" if lineno else str(self.path)
        return ModelFileError(f"{where}: {message}")

    def next(self, keyword: str | None = None) -> tuple[int, list[str]]:
        if self.pos >= len(self.items):
            raise self.error(f"unexpected end of file, expected {keyword or 'more records'}")
        lineno, tokens = self.items[self.pos]
        if keyword is not None and tokens[0] != keyword:
            raise self.error(f"expected record '{keyword}', found '{tokens[0]}'", lineno)
        self.pos += 1
        return lineno, tokens

    def peek(self) -> str | None:
        return self.items[self.pos][1][0] if self.pos < len(self.items) else None

    def fields(self, keyword: str, n: int | None = None) -> tuple[int, list[str]]:
        lineno, tokens = self.next(keyword)
        if n is not None and len(tokens) - 1 != n:
            raise self.error(f"'{keyword}' takes {n} fields, found {len(tokens) - 1}", lineno)
        return lineno, tokens[1:]

    def integer(self, text: str, lineno: int, what: str) -> int:
        """An integer field: ``[+-]?[0-9]+`` with a magnitude of at most MAX_INTEGER."""
        if not _INTEGER.fullmatch(text):
            raise self.error(f"{what}: '{text}' is not an integer", lineno)
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) > len(str(MAX_INTEGER)) or int(digits or "0") > MAX_INTEGER:
            raise self.error(f"{what}: '{text}' is out of range (integers in a model file lie between -{MAX_INTEGER} and {MAX_INTEGER})", lineno)
        return int(text)

    def number(self, text: str, lineno: int, what: str) -> float:
        """A real field: decimal, ``[+-]?(digits[.[digits]] | .digits)([eE][+-]?digits)?``, finite."""
        if not _REAL.fullmatch(text):
            if _NON_FINITE.fullmatch(text):
                raise self.error(f"{what}: non-finite number '{text}'", lineno)
            raise self.error(f"{what}: '{text}' is not a number", lineno)
        value = float(text)  # correctly rounded, as strtod
        if not math.isfinite(value):  # beyond the double range: 1e999
            raise self.error(f"{what}: non-finite number '{text}'", lineno)
        return value

    def numbers(self, tokens: list[str], lineno: int, what: str) -> list[float]:
        """`number` of every token (a row of a matrix), checked at once where all are fine."""
        if _REALS.fullmatch(" ".join(tokens)):
            values = [float(t) for t in tokens]
            if all(map(math.isfinite, values)):
                return values
        return [self.number(t, lineno, what) for t in tokens]

    def index(self, text: str, lineno: int, expected: int, what: str) -> None:
        if self.integer(text, lineno, what) != expected:
            raise self.error(f"{what}: expected index {expected}, found {text}", lineno)

    def count(self, keyword: str, n_fields: int = 1) -> tuple[int, list[int]]:
        """A record of ``n_fields`` non-negative integers."""
        lineno, f = self.fields(keyword, n_fields)
        values = [self.integer(x, lineno, keyword) for x in f]
        if any(v < 0 for v in values):
            raise self.error(f"'{keyword}' needs non-negative counts, found {' '.join(f)}", lineno)
        return lineno, values

    def meta(self) -> dict[str, str]:
        """The ``meta KEY TEXT`` records at this point (keys unique)."""
        meta = {}
        while self.peek() == "meta":
            lineno, f = self.fields("meta")
            if not f:
                raise self.error("'meta' needs a key", lineno)
            if f[0] in meta:
                raise self.error(f"'meta' key '{f[0]}' given twice", lineno)
            meta[f[0]] = " ".join(f[1:])
        return meta


def _check_text(path: Path, data: bytes) -> None:
    """The file is UTF-8 text without a byte order mark and without control characters but
    tab and line feed; else ModelFileError naming the line and the byte."""

    def where(pos: int) -> tuple[int, int]:
        return data.count(b"\n", 0, pos) + 1, pos - (data.rfind(b"\n", 0, pos) + 1) + 1

    if data.startswith(b"\xef\xbb\xbf"):
        raise ModelFileError(f"{path}:1: the file starts with a byte order mark (BOM); a model file is UTF-8 text without one")
    if control := _CONTROL.search(data):
        line, column = where(control.start())
        if data[control.start() : control.start() + 2] == b"\r\n":
            raise ModelFileError(f"{path}:{line}: the line ends with CR LF (a Windows line ending); a model file ends its lines with LF alone")
        raise ModelFileError(f"{path}:{line}: control character 0x{data[control.start()]:02x} at byte {column} of the line; "
                             "a model file holds no control characters but tab and line feed")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = where(err.start)
        raise ModelFileError(f"{path}:{line}: byte {column} of the line (0x{data[err.start]:02x}) is not UTF-8; a model file is UTF-8 text") from None


def read_model(path: str | Path) -> Model:
    """Read and validate a model file; raises ModelFileError naming the file, line and problem."""
    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "model file"):
        raise ModelFileError(problem)
    r = _Records(path)
    lineno, f = r.fields("molenv_model", 1)
    if f[0] not in map(str, SF_FORMAT_VERSIONS):
        if f[0] in map(str, KIND_FORMAT_VERSIONS) and r.peek() == "kind":  # a newer kind of model (docs/model_format.md)
            kind = r.items[r.pos][1][1:2] or ["?"]
            raise r.error(
                f"unsupported model file version {f[0]} for read_model, which reads SF model files (versions {FORMAT_VERSION} and {GEOMETRY_FORMAT_VERSION}): this is a model of kind "
                f"'{kind[0]}'; read a GNN model file with molenv.gnn.modelfile.read_gnn_model",
                lineno,
            )
        raise r.error(f"unsupported model file version {f[0]} (this molenv reads versions {FORMAT_VERSION} and {GEOMETRY_FORMAT_VERSION})", lineno)
    version3 = f[0] == str(GEOMETRY_FORMAT_VERSION)  # the records added since version 1 may appear
    _, name_tokens = r.fields("name")
    meta = r.meta()
    lineno, f = r.fields("classes")
    n_classes = r.integer(f[0], lineno, "classes") if f else 0
    if n_classes < 1 or len(f) - 1 != n_classes:
        raise r.error(f"'classes' announces {n_classes} names, found {len(f) - 1}", lineno)
    classes = f[1:]
    lineno, f = r.fields("atoms_per_molecule", 1)
    atoms = r.integer(f[0], lineno, "atoms_per_molecule")
    if version3 and r.peek() == "centre_atoms":
        lineno, f = r.fields("centre_atoms")
        n_centre = r.integer(f[0], lineno, "centre_atoms") if f else 0
        if len(f) - 1 != n_centre:
            raise r.error(f"'centre_atoms' announces {n_centre} atoms, found {len(f) - 1}", lineno)
        centre = tuple(r.integer(x, lineno, "centre atom") for x in f[1:])
    else:
        lineno, f = r.fields("centre_atom", 1)
        centre = r.integer(f[0], lineno, "centre_atom")
    _, (n_vectors,) = r.count("vector_count")
    vectors, sign_invariant = [], []
    for k in range(1, n_vectors + 1):
        if not version3:
            lineno, f = r.fields("vector", 3)
        else:  # index a b | index normal a b c d, then optionally sign_invariant
            lineno, f = r.fields("vector")
            if f and f[-1] == "sign_invariant":
                sign_invariant.append(k)
                f = f[:-1]
            if not (len(f) == 3 or (len(f) == 6 and f[1] == "normal")):
                raise r.error("'vector' needs: index a b, or index normal a b c d; then optionally sign_invariant", lineno)
        r.index(f[0], lineno, k, "vector")
        vectors.append(tuple(r.integer(x, lineno, "vector atom") for x in (f[2:] if len(f) == 6 else f[1:])))
    lineno, f = r.fields("cutoff", 2)
    rmin, rmax = (r.number(x, lineno, "cutoff") for x in f)
    _, (n_sf,) = r.count("descriptor_count")
    functions = []
    for i in range(1, n_sf + 1):
        lineno, f = r.fields("descriptor")
        if len(f) < 3:
            raise r.error("'descriptor' needs: index kind vector parameters...", lineno)
        r.index(f[0], lineno, i, "descriptor")
        vector = None if f[2] == "-" else r.integer(f[2], lineno, "descriptor vector")
        functions.append(SymmetryFunction(f[1], vector, tuple(r.number(x, lineno, "descriptor parameter") for x in f[3:])))
    scaling = []  # nothing is allocated from a count before its records are read
    for i in range(1, n_sf + 1):
        lineno, f = r.fields("scaling", 3)
        r.index(f[0], lineno, i, "scaling")
        scaling.append([r.number(x, lineno, "scaling") for x in f[1:]])
    scaling = np.array(scaling, dtype=float).reshape(n_sf, 2)
    _, f = r.fields("hidden_activation", 1)
    hidden = f[0]
    _, f = r.fields("output_activation", 1)
    output = f[0]
    _, (n_layers,) = r.count("layer_count")
    weights, biases = [], []
    for k in range(1, n_layers + 1):
        lineno, f = r.fields("layer", 3)
        r.index(f[0], lineno, k, "layer")
        n_in, n_out = r.integer(f[1], lineno, "layer inputs"), r.integer(f[2], lineno, "layer outputs")
        if n_in < 1 or n_out < 1:
            raise r.error(f"layer {k} has {n_in} inputs and {n_out} outputs", lineno)
        rows = []
        for j in range(n_out):
            lineno, tokens = r.next()
            if len(tokens) != n_in + 1:
                raise r.error(f"layer {k} row {j + 1} has {len(tokens)} numbers, expected {n_in + 1} (bias + {n_in} weights)", lineno)
            rows.append(r.numbers(tokens, lineno, f"layer {k}"))
        rows = np.array(rows, dtype=float)
        biases.append(rows[:, 0].copy())
        weights.append(rows[:, 1:].copy())
    # the ood block is a version 3 record: in a version 1 file it is refused as any unknown record
    ood = _read_ood(r, classes, [w.shape[1] for w in weights]) if version3 and r.peek() == "ood" else None
    r.fields("end", 0)
    if r.peek() is not None:
        raise r.error(f"unexpected record '{r.peek()}' after 'end'", r.items[r.pos][0])
    model = Model(
        name=" ".join(name_tokens),
        classes=classes,
        descriptors=DescriptorSet(atoms, centre, vectors, rmin, rmax, functions, tuple(sign_invariant)),
        network=Network(scaling[:, 0].copy(), scaling[:, 1].copy(), weights, biases, hidden, output),
        meta=meta,
        ood=ood,
    )
    try:
        model.validate()
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    return model


def _read_ood(r: _Records, classes: list[str], layer_inputs: list[int], names: list[str] | None = None) -> OODScore:
    """The optional ``ood`` block (docs/model_format.md, "The ood block") of a network whose
    layers have `layer_inputs` inputs (SF: the dense layers; GNN: the head blocks and the
    output layer) and whose per-molecule outputs are `names` (default `classes`, the classes
    that may have a mean); C++: readOod."""
    lineno, f = r.fields("ood", 4)
    if f[0] != OOD_METHOD:
        raise r.error(f"unknown ood method '{f[0]}' (expected {OOD_METHOD})", lineno)
    layer = r.integer(f[1], lineno, "ood layer")
    width, n_means = r.integer(f[2], lineno, "ood features"), r.integer(f[3], lineno, "ood classes")
    if OTHER in (classes if names is None else names):
        raise r.error(f"a model with an ood block cannot have a class named '{OTHER}': its out-of-distribution component is n_{OTHER}", lineno)
    if not 1 <= layer <= len(layer_inputs):
        raise r.error(f"ood: layer {layer} is not a layer of the network (1..{len(layer_inputs)})", lineno)
    if width != layer_inputs[layer - 1]:
        raise r.error(f"ood: {width} features, but layer {layer} has {layer_inputs[layer - 1]} inputs", lineno)
    if not 1 <= n_means <= len(classes):
        raise r.error(f"ood: {n_means} class means for a model of {len(classes)} classes", lineno)
    lineno, f = r.fields("ood_softmin", 1)
    temperature = r.number(f[0], lineno, "ood_softmin")
    if not temperature > 0:
        raise r.error(f"ood_softmin: the temperature must be positive, got {f[0]}", lineno)
    lineno, f = r.fields("ood_threshold", 2)
    threshold, scale = (r.number(x, lineno, "ood_threshold") for x in f)
    if not scale > 0:
        raise r.error(f"ood_threshold: the width must be positive, got {f[1]}", lineno)
    lineno, f = r.fields("ood_calibration", 3)
    quantile, low = (r.number(x, lineno, "ood_calibration") for x in f[:2])
    n_validation = r.integer(f[2], lineno, "ood_calibration")
    if not (0 < low < quantile < 1 and n_validation >= 1):
        raise r.error(f"ood_calibration: needs 0 < low quantile < quantile < 1 and a validation molecule, got {f[0]} {f[1]} {f[2]}", lineno)
    r.fields("ood_whitening", 0)
    rows = []
    for j in range(width):
        lineno, tokens = r.next()
        if len(tokens) != width:
            raise r.error(f"ood_whitening row {j + 1} has {len(tokens)} numbers, expected {width}", lineno)
        rows.append(r.numbers(tokens, lineno, "ood_whitening"))
    names, means, last = [], [], -1
    for _ in range(n_means):
        lineno, f = r.fields("ood_mean")
        if len(f) != width + 1:
            raise r.error(f"'ood_mean' takes {width + 1} fields (a class and {width} numbers), found {len(f)}", lineno)
        if f[0] not in classes:
            raise r.error(f"ood_mean: '{f[0]}' is not a class of the model", lineno)
        if classes.index(f[0]) <= last:
            raise r.error(f"ood_mean: class '{f[0]}' is repeated or out of the classes' order", lineno)
        last = classes.index(f[0])
        names.append(f[0])
        means.append(r.numbers(f[1:], lineno, "ood_mean"))
    return OODScore(layer=layer, whitening=np.array(rows, dtype=float).reshape(width, width), class_names=names,
                    means=np.array(means, dtype=float).reshape(n_means, width), temperature=temperature, threshold=threshold,
                    width=scale, quantile=quantile, low_quantile=low, n_validation=n_validation)


def model_file_kind(path: str | Path) -> str:
    """``'gnn'`` or ``'sf'``: the reader `MOLENV_CLASSIFY` gives a model file (C++:
    modelFileKind). A file whose first two records are ``molenv_model 2`` (or 4) and ``kind ...``
    is for the GNN reader (which then judges the kind); every other file, a missing or
    unreadable one included, for the SF reader, which reports what is wrong with it."""
    from molenv.paths import file_problem

    path = Path(path)
    if file_problem(path, "model file"):
        return "sf"
    try:
        r = _Records(path)
    except ModelFileError:
        return "sf"
    if r.peek() != "molenv_model" or r.items[0][1][1:] not in [[str(v)] for v in KIND_FORMAT_VERSIONS]:
        return "sf"
    r.pos = 1
    return "gnn" if r.peek() == "kind" else "sf"


def read_model_file(path: str | Path):
    """Read a model file of either kind as `MOLENV_CLASSIFY` does (`model_file_kind`): a
    `Model` (SF) or a `molenv.gnn.modelfile.GNNModel`; ModelFileError with the action's
    message where the action refuses the file."""
    if model_file_kind(path) == "gnn":
        from molenv.gnn.modelfile import read_gnn_model

        return read_gnn_model(path)
    return read_model(path)
