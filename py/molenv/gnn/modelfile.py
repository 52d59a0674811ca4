"""The molenv model file of kind ``gnn``: a trained graph classifier as plain text.

The format is specified in ``docs/model_format.md`` ("The GNN kind"). It uses the syntax of
the SF model file (`molenv.modelfile`: one record per line, a keyword and
whitespace-separated fields, ``#`` comments, matrices as rows of numbers after a header
record, shortest round-trip floats), so that the C++ reader of ``MOLENV_CLASSIFY`` can parse
both kinds with one tokenizer. A GNN file starts with ``molenv_model 2`` and ``kind gnn``:
readers of version 1 (SF only) refuse it with "unsupported model file version 2" instead of
misreading it, and SF files stay version 1, byte for byte.

This module holds the in-memory model (`GNNModel`: numpy float64 arrays, no torch), its
validation, and the writer and reader. The network it describes is
`molenv.gnn.model.MolecularGNN`; `molenv.gnn.export.gnn_model_file` converts one, and
`molenv.gnn.numpy_model` evaluates a `GNNModel` (the reference for the C++ port).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.modelfile import CLASS_NAME, KIND_FORMAT_VERSIONS, ModelFileError, _meta_records, _num, _ood_records, _read_ood, _Records, _text
from molenv.ood import OTHER, OODError, OODScore

__all__ = ["GNN_FORMAT_VERSION", "GNN_OOD_FORMAT_VERSION", "GNNModel", "GraphConv", "LayerNorm", "Linear", "ResidualBlock", "read_gnn_model", "write_gnn_model"]

GNN_FORMAT_VERSION = 2  # `molenv_model 2`: the file's second record is `kind <kind>`
# `molenv_model 4`: version 2 plus the optional ood block before `end`; written only for a
# model with one, so that every other GNN file stays version 2, byte for byte, and a reader
# of version 2 alone refuses it at its first record (docs/model_format.md)
GNN_OOD_FORMAT_VERSION = 4
assert (GNN_FORMAT_VERSION, GNN_OOD_FORMAT_VERSION) == KIND_FORMAT_VERSIONS
KIND = "gnn"
RADIAL_BASIS = "bessel"  # DimeNet's spherical Bessel basis of order 0 with polynomial envelope
ATTENTION = "transformer"  # torch_geometric TransformerConv, one head, gated skip (beta)
ACTIVATION = "gelu_erf"  # GELU with the exact error function (torch nn.GELU(), not the tanh form)
POOLING = "max"  # per-molecule max over the atoms' features

# the keywords of a GNN file (a record whose keyword is none of these is "unknown")
KEYWORDS = {
    "molenv_model", "kind", "name", "meta", "classes", "topology_classes", "molecule_atoms", "graph_cutoff",
    "atom_types", "atom_type", "radial_basis", "radial_frequencies", "activation", "conv_count", "conv",
    "attention", "pooling", "head_block_count", "head_block", "linear", "layer_norm", "end",
    "ood", "ood_softmin", "ood_threshold", "ood_calibration", "ood_whitening", "ood_mean",
}
# the linear layers of one graph convolution, in file order: name -> has a bias
CONV_LINEARS_IN = {"node_in": False, "edge_in": False}
ATTENTION_LINEARS = {"query": True, "key": True, "value": True, "edge": False, "skip": True, "beta": False}


@dataclass
class Linear:
    """y = x W^T + b; ``weight`` (n_out, n_in), ``bias`` (n_out,) or None (a bias-free layer)."""

    weight: np.ndarray
    bias: np.ndarray | None

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass
class LayerNorm:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance)."""

    weight: np.ndarray  # (n,)
    bias: np.ndarray  # (n,)
    eps: float


@dataclass
class ResidualBlock:
    """Pre-norm residual block: x + GELU(linear(norm(x))) (dropout is off at inference)."""

    norm: LayerNorm
    linear: Linear


@dataclass
class GraphConv:
    """One message-passing step of `molenv.gnn.model.GraphConvBlock`.

    node_in (hidden -> channels, no bias) and edge_in (basis -> channels, no bias) project
    atoms and edges down; query, key, value, edge (no bias), skip and beta (3 channels -> 1,
    no bias) are the TransformerConv's lin_* layers; node_out (channels -> hidden) projects
    back up and ``block`` refines each atom."""

    node_in: Linear
    edge_in: Linear
    query: Linear
    key: Linear
    value: Linear
    edge: Linear
    skip: Linear
    beta: Linear
    node_out: Linear
    block: ResidualBlock

    def linears(self) -> dict[str, Linear]:
        """The linear layers in file order (block's last)."""
        names = [*CONV_LINEARS_IN, *ATTENTION_LINEARS, "node_out"]
        return {n: getattr(self, n) for n in names}


@dataclass
class GNNModel:
    """A graph classifier as the model file holds it (float64 numpy arrays).

    Attributes:
        classes: polymorph class names, in logit order (the first ``n_forms`` outputs).
        topology_classes: topology class names (``bulk``, ``surface``), the last outputs.
        molecule_atoms: atomic number of each atom of one molecule, in molecule (spec /
            MOLECULES) order: the elements ``MOLENV_CLASSIFY`` gives the atoms it is given.
        cutoff: graph cutoff in Angstrom: atom pairs closer than this are edges; also the
            radial basis' cutoff.
        atom_types: atomic numbers the embedding knows, and ``embedding`` their rows
            (n_types, type_dim): the rows of torch's Embedding over atomic numbers.
        type_in: the linear layer from the embedding to the atom features (type_dim -> hidden).
        radial_frequencies: (num_radial,) frequencies of the Bessel basis (trained).
        envelope_exponent: DimeNet envelope exponent (torch_geometric's; polynomial p = it + 1).
        convs: the graph convolutions, in order; head: the residual blocks after pooling;
        output: hidden -> n_forms + n_topology logits, no bias.
    """

    name: str
    classes: list[str]
    topology_classes: list[str]
    molecule_atoms: list[int]
    cutoff: float
    atom_types: list[int]
    embedding: np.ndarray
    type_in: Linear
    radial_frequencies: np.ndarray
    envelope_exponent: int
    convs: list[GraphConv]
    head: list[ResidualBlock]
    output: Linear
    meta: dict[str, str] = field(default_factory=dict)
    ood: OODScore | None = None  # the optional out-of-distribution score (molenv.ood) on a head layer's inputs

    @property
    def ood_layer_inputs(self) -> list[int]:
        """The widths of the features an ood score may take (its ``layer``): layer 1 the
        radial basis summed over each atom's incoming edges, the molecule's atoms
        concatenated (len(molecule_atoms) x num_radial: a radial fingerprint of the
        environment that training does not compress); layer k = 2 .. len(head) + 1 the
        inputs of head block k - 1 (layer 2: the pooled molecule embedding); layer
        len(head) + 2 the inputs of the output layer (the last hidden features)."""
        return [len(self.molecule_atoms) * self.num_radial] + [self.hidden] * (len(self.head) + 1)

    @property
    def n_forms(self) -> int:
        return len(self.classes)

    @property
    def hidden(self) -> int:
        return self.type_in.n_out

    @property
    def channels(self) -> int:
        return self.convs[0].query.n_out if self.convs else 0

    @property
    def num_radial(self) -> int:
        return len(self.radial_frequencies)

    @property
    def type_dim(self) -> int:
        return self.embedding.shape[1] if self.embedding.ndim == 2 else 0

    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistency (names, elements, shapes)."""
        names = list(self.classes) + list(self.topology_classes)
        if not self.classes or not self.topology_classes:
            raise ModelFileError(f"need at least one polymorph and one topology class, got {len(self.classes)} and {len(self.topology_classes)}")
        for c in names:
            if not CLASS_NAME.match(c):
                raise ModelFileError(f"class name '{c}' must match [A-Za-z0-9_]+ (it becomes a PLUMED component name)")
        if len(set(names)) != len(names):
            raise ModelFileError(f"duplicate class names in {self.classes} + topology {self.topology_classes}")
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ModelFileError(f"graph_cutoff must be a positive number, got {self.cutoff}")
        if not self.atom_types or any(z < 1 for z in self.atom_types) or len(set(self.atom_types)) != len(self.atom_types):
            raise ModelFileError(f"atom types must be distinct atomic numbers >= 1, got {self.atom_types}")
        if self.embedding.ndim != 2 or self.embedding.shape[0] != len(self.atom_types) or self.embedding.shape[1] < 1:
            raise ModelFileError(f"the embedding has shape {self.embedding.shape}, expected one row per atom type ({len(self.atom_types)})")
        if not self.molecule_atoms:
            raise ModelFileError("molecule_atoms lists no atoms")
        unknown = sorted(set(self.molecule_atoms) - set(self.atom_types))
        if unknown:
            raise ModelFileError(f"molecule_atoms has elements {unknown} that are not atom types {self.atom_types}")
        if self.radial_frequencies.ndim != 1 or len(self.radial_frequencies) < 1:
            raise ModelFileError("the radial basis needs at least one frequency")
        if self.envelope_exponent < 1:
            raise ModelFileError(f"the envelope exponent must be >= 1, got {self.envelope_exponent}")
        if not self.convs:
            raise ModelFileError("the model needs at least one graph convolution")
        hidden, channels, radial = self.type_in.n_out, self.convs[0].query.n_out, self.num_radial
        _check_linear(self.type_in, "linear 'type_in'", self.type_dim, hidden, True)
        for k, conv in enumerate(self.convs, 1):
            where = f"conv {k} linear"
            _check_linear(conv.node_in, f"{where} 'node_in'", hidden, channels, False)
            _check_linear(conv.edge_in, f"{where} 'edge_in'", radial, channels, False)
            for name, has_bias in ATTENTION_LINEARS.items():
                n_in, n_out = (3 * channels, 1) if name == "beta" else (channels, channels)
                _check_linear(getattr(conv, name), f"{where} '{name}'", n_in, n_out, has_bias)
            _check_linear(conv.node_out, f"{where} 'node_out'", channels, hidden, True)
            _check_block(conv.block, f"conv {k}", hidden)
        if not self.head:
            raise ModelFileError("the head needs at least one residual block")
        for k, block in enumerate(self.head, 1):
            _check_block(block, f"head_block {k}", hidden)
        _check_linear(self.output, "linear 'output'", hidden, len(names), False)
        if self.ood is not None:
            if OTHER in names:
                raise ModelFileError(f"a model with an ood block cannot have a class named '{OTHER}': its out-of-distribution component is n_{OTHER}")
            try:
                self.ood.validate(self.classes, self.ood_layer_inputs)
            except OODError as err:
                raise ModelFileError(str(err)) from None
        arrays = [("embedding", self.embedding), ("radial frequencies", self.radial_frequencies)]
        for where, linear in self._linears():
            arrays += [(where, linear.weight)] + ([(where, linear.bias)] if linear.bias is not None else [])
        for where, norm in self._norms():
            arrays += [(where, norm.weight), (where, norm.bias)]
        for where, array in arrays:
            if not np.all(np.isfinite(array)):
                raise ModelFileError(f"{where} holds non-finite numbers")

    def _linears(self):
        yield "linear 'type_in'", self.type_in
        for k, conv in enumerate(self.convs, 1):
            for name, linear in conv.linears().items():
                yield f"conv {k} linear '{name}'", linear
            yield f"conv {k} linear 'block_linear'", conv.block.linear
        for k, block in enumerate(self.head, 1):
            yield f"head_block {k} linear 'block_linear'", block.linear
        yield "linear 'output'", self.output

    def _norms(self):
        for k, conv in enumerate(self.convs, 1):
            yield f"conv {k} layer_norm 'block_norm'", conv.block.norm
        for k, block in enumerate(self.head, 1):
            yield f"head_block {k} layer_norm 'block_norm'", block.norm


def _check_linear(linear: Linear, where: str, n_in: int, n_out: int, has_bias: bool) -> None:
    if linear.weight.ndim != 2 or linear.weight.shape != (n_out, n_in):
        raise ModelFileError(f"{where} has shape {linear.weight.shape} (outputs, inputs); the model needs ({n_out}, {n_in})")
    if has_bias and (linear.bias is None or linear.bias.shape != (n_out,)):
        raise ModelFileError(f"{where} needs a bias of {n_out} numbers")
    if not has_bias and linear.bias is not None:
        raise ModelFileError(f"{where} takes no bias")


def _check_block(block: ResidualBlock, where: str, hidden: int) -> None:
    norm = block.norm
    if norm.weight.shape != (hidden,) or norm.bias.shape != (hidden,):
        raise ModelFileError(f"{where} layer_norm 'block_norm' has {norm.weight.shape[0]} features; the model needs {hidden}")
    if not (math.isfinite(norm.eps) and norm.eps > 0):
        raise ModelFileError(f"{where} layer_norm 'block_norm' eps must be a positive number, got {norm.eps}")
    _check_linear(block.linear, f"{where} linear 'block_linear'", hidden, hidden, True)


# ----------------------------------------------------------------------------- writing


def _linear_records(name: str, linear: Linear) -> list[str]:
    """``linear NAME n_in n_out bias|nobias`` and n_out rows ``[b_j] w_j1 ... w_j,n_in``."""
    has_bias = linear.bias is not None
    out = [f"linear {name} {linear.n_in} {linear.n_out} {'bias' if has_bias else 'nobias'}"]
    for j in range(linear.n_out):
        row = ([linear.bias[j]] if has_bias else []) + list(linear.weight[j])
        out.append(" ".join(map(_num, row)))
    return out


def _block_records(block: ResidualBlock) -> list[str]:
    norm = block.norm
    return [
        f"layer_norm block_norm {len(norm.weight)} {_num(norm.eps)}",
        " ".join(map(_num, norm.weight)),
        " ".join(map(_num, norm.bias)),
        *_linear_records("block_linear", block.linear),
    ]


def write_gnn_model(model: GNNModel, path: str | Path) -> Path:
    """Write ``model`` (validated first) to ``path``; returns the path."""
    model.validate()
    version = GNN_FORMAT_VERSION if model.ood is None else GNN_OOD_FORMAT_VERSION
    out = ["# molenv model file, kind gnn: see docs/model_format.md", f"molenv_model {version}", f"kind {KIND}", f"name {_text(model.name, 'name')}"]
    out += _meta_records(model.meta)
    out.append(f"classes {len(model.classes)} {' '.join(model.classes)}")
    out.append(f"topology_classes {len(model.topology_classes)} {' '.join(model.topology_classes)}")
    out.append(f"molecule_atoms {len(model.molecule_atoms)} {' '.join(map(str, model.molecule_atoms))}")
    out.append(f"graph_cutoff {_num(model.cutoff)}")
    out.append(f"atom_types {len(model.atom_types)} {model.type_dim}")
    out += [f"atom_type {k} {z} {' '.join(map(_num, row))}" for k, (z, row) in enumerate(zip(model.atom_types, model.embedding), 1)]
    out += _linear_records("type_in", model.type_in)
    out.append(f"radial_basis {RADIAL_BASIS} {model.num_radial} {model.envelope_exponent}")
    out.append(f"radial_frequencies {' '.join(map(_num, model.radial_frequencies))}")
    out.append(f"activation {ACTIVATION}")
    out.append(f"conv_count {len(model.convs)}")
    for k, conv in enumerate(model.convs, 1):
        out.append(f"conv {k}")
        out += _linear_records("node_in", conv.node_in) + _linear_records("edge_in", conv.edge_in)
        out.append(f"attention {ATTENTION} 1")
        for name in ATTENTION_LINEARS:
            out += _linear_records(name, getattr(conv, name))
        out += _linear_records("node_out", conv.node_out)
        out += _block_records(conv.block)
    out.append(f"pooling {POOLING}")
    out.append(f"head_block_count {len(model.head)}")
    for k, block in enumerate(model.head, 1):
        out.append(f"head_block {k}")
        out += _block_records(block)
    out += _linear_records("output", model.output)
    if model.ood is not None:
        out += _ood_records(model.ood)
    out.append("end")
    path = Path(path)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- reading


class _GNNRecords(_Records):
    """`molenv.modelfile._Records` that calls a keyword outside the GNN format "unknown"."""

    def next(self, keyword: str | None = None):
        if keyword is not None and self.pos < len(self.items):
            lineno, tokens = self.items[self.pos]
            if tokens[0] != keyword and tokens[0] not in KEYWORDS:
                raise self.error(f"unknown record '{tokens[0]}' (expected '{keyword}')", lineno)
        return super().next(keyword)

    def names(self, keyword: str) -> list[str]:
        """``keyword n name_1 ... name_n``."""
        lineno, f = self.fields(keyword)
        n = self.integer(f[0], lineno, keyword) if f else 0
        if n < 1 or len(f) - 1 != n:
            raise self.error(f"'{keyword}' announces {n} names, found {len(f) - 1}", lineno)
        return f[1:]

    def row(self, n: int, what: str) -> np.ndarray:
        """A row of exactly ``n`` numbers (a record without keyword)."""
        lineno, tokens = self.next()
        if len(tokens) != n:
            raise self.error(f"{what} has {len(tokens)} numbers, expected {n}", lineno)
        return np.array(self.numbers(tokens, lineno, what))

    def linear(self, name: str, where: str = "") -> Linear:
        """``linear NAME n_in n_out bias|nobias`` and its rows; the name must be ``name``."""
        lineno, f = self.fields("linear", 4)
        label = f"{where}linear '{name}'"
        if f[0] != name:
            raise self.error(f"expected {label}, found linear '{f[0]}'", lineno)
        n_in, n_out = self.integer(f[1], lineno, f"{label} inputs"), self.integer(f[2], lineno, f"{label} outputs")
        if n_in < 1 or n_out < 1:
            raise self.error(f"{label} has {n_in} inputs and {n_out} outputs", lineno)
        if f[3] not in ("bias", "nobias"):
            raise self.error(f"{label}: last field must be 'bias' or 'nobias', found '{f[3]}'", lineno)
        has_bias = f[3] == "bias"
        width = n_in + int(has_bias)
        rows = np.array([self.row(width, f"{label} row {j + 1} ({'bias + ' if has_bias else ''}{n_in} weights)") for j in range(n_out)])
        return Linear(rows[:, 1:].copy(), rows[:, 0].copy()) if has_bias else Linear(rows, None)

    def block(self, where: str) -> ResidualBlock:
        lineno, f = self.fields("layer_norm", 3)
        if f[0] != "block_norm":
            raise self.error(f"expected {where}layer_norm 'block_norm', found '{f[0]}'", lineno)
        n = self.integer(f[1], lineno, f"{where}layer_norm features")
        if n < 1:
            raise self.error(f"{where}layer_norm has {n} features", lineno)
        eps = self.number(f[2], lineno, f"{where}layer_norm eps")
        weight = self.row(n, f"{where}layer_norm weight")
        bias = self.row(n, f"{where}layer_norm bias")
        return ResidualBlock(LayerNorm(weight, bias, eps), self.linear("block_linear", where))

    def keyword_value(self, keyword: str, expected: str) -> None:
        lineno, f = self.fields(keyword)
        if not f or f[0] != expected:
            raise self.error(f"unsupported {keyword} '{' '.join(f)}' (this molenv knows '{expected}')", lineno)


def read_gnn_model(path: str | Path) -> GNNModel:
    """Read and validate a GNN model file; raises ModelFileError naming the file, line and problem."""
    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "model file"):
        raise ModelFileError(problem)
    r = _GNNRecords(path)
    lineno, f = r.fields("molenv_model", 1)
    if f[0] not in map(str, KIND_FORMAT_VERSIONS):
        what = "an SF model file: read it with molenv.modelfile.read_model" if f[0] in ("1", "3") else "not a version this molenv reads"
        raise r.error(f"a GNN model file starts with 'molenv_model {GNN_FORMAT_VERSION}' (or {GNN_OOD_FORMAT_VERSION}), found version {f[0]} ({what})", lineno)
    with_ood = f[0] == str(GNN_OOD_FORMAT_VERSION)  # the ood block may appear
    lineno, f = r.fields("kind", 1)
    if f[0] != KIND:
        raise r.error(f"unknown model kind '{f[0]}' (this molenv reads kind '{KIND}' in version {GNN_FORMAT_VERSION} and {GNN_OOD_FORMAT_VERSION} files)", lineno)
    _, name_tokens = r.fields("name")
    meta = r.meta()
    classes = r.names("classes")
    topology = r.names("topology_classes")
    lineno, f = r.fields("molecule_atoms")
    n_atoms = r.integer(f[0], lineno, "molecule_atoms") if f else 0
    if n_atoms < 1 or len(f) - 1 != n_atoms:
        raise r.error(f"'molecule_atoms' announces {n_atoms} atoms, found {len(f) - 1}", lineno)
    molecule_atoms = [r.integer(x, lineno, "molecule_atoms element") for x in f[1:]]
    lineno, f = r.fields("graph_cutoff", 1)
    cutoff = r.number(f[0], lineno, "graph_cutoff")
    lineno, (n_types, type_dim) = r.count("atom_types", 2)
    if n_types < 1 or type_dim < 1:
        raise r.error(f"'atom_types' needs at least one type and an embedding width >= 1, found {n_types} {type_dim}", lineno)
    atom_types, embedding = [], []  # nothing is allocated from a count before its records are read
    for k in range(1, n_types + 1):
        lineno, f = r.fields("atom_type")
        if len(f) != 2 + type_dim:
            raise r.error(f"'atom_type' {k} has {max(len(f) - 2, 0)} embedding numbers, expected {type_dim} (atom_types announces width {type_dim})", lineno)
        r.index(f[0], lineno, k, "atom_type")
        atom_types.append(r.integer(f[1], lineno, "atom_type atomic number"))
        embedding.append([r.number(x, lineno, f"atom_type {k} embedding") for x in f[2:]])
    embedding = np.array(embedding, dtype=float).reshape(n_types, type_dim)
    type_in = r.linear("type_in")
    lineno, f = r.fields("radial_basis", 3)
    if f[0] != RADIAL_BASIS:
        raise r.error(f"unsupported radial_basis '{f[0]}' (this molenv knows '{RADIAL_BASIS}')", lineno)
    num_radial, exponent = r.integer(f[1], lineno, "radial_basis size"), r.integer(f[2], lineno, "radial_basis envelope exponent")
    if num_radial < 1:
        raise r.error(f"radial_basis needs at least one function, found {num_radial}", lineno)
    lineno, f = r.fields("radial_frequencies")
    if len(f) != num_radial:
        raise r.error(f"'radial_frequencies' has {len(f)} numbers, radial_basis announces {num_radial}", lineno)
    frequencies = np.array([r.number(x, lineno, "radial_frequencies") for x in f])
    r.keyword_value("activation", ACTIVATION)
    lineno, (n_convs,) = r.count("conv_count")
    convs = []
    for k in range(1, n_convs + 1):
        lineno, f = r.fields("conv", 1)
        r.index(f[0], lineno, k, "conv")
        where = f"conv {k} "
        node_in, edge_in = r.linear("node_in", where), r.linear("edge_in", where)
        lineno, f = r.fields("attention", 2)
        if f[0] != ATTENTION or f[1] != "1":
            raise r.error(f"unsupported attention '{' '.join(f)}' (this molenv knows '{ATTENTION} 1': one head)", lineno)
        attention = {name: r.linear(name, where) for name in ATTENTION_LINEARS}
        node_out = r.linear("node_out", where)
        convs.append(GraphConv(node_in, edge_in, **attention, node_out=node_out, block=r.block(where)))
    r.keyword_value("pooling", POOLING)
    lineno, (n_blocks,) = r.count("head_block_count")
    head = []
    for k in range(1, n_blocks + 1):
        lineno, f = r.fields("head_block", 1)
        r.index(f[0], lineno, k, "head_block")
        head.append(r.block(f"head_block {k} "))
    output = r.linear("output")
    # the ood block is a version 4 record: in a version 2 file it is refused as any record out of place
    ood = None
    if with_ood and r.peek() == "ood":
        layer_inputs = [len(molecule_atoms) * num_radial] + [block.linear.n_in for block in head] + [output.n_in]
        ood = _read_ood(r, classes, layer_inputs, classes + topology)
    r.fields("end", 0)
    if r.peek() is not None:
        raise r.error(f"unexpected record '{r.peek()}' after 'end'", r.items[r.pos][0])
    model = GNNModel(
        name=" ".join(name_tokens),
        classes=classes,
        topology_classes=topology,
        molecule_atoms=molecule_atoms,
        cutoff=cutoff,
        atom_types=atom_types,
        embedding=embedding,
        type_in=type_in,
        radial_frequencies=frequencies,
        envelope_exponent=exponent,
        convs=convs,
        head=head,
        output=output,
        meta=meta,
        ood=ood,
    )
    try:
        model.validate()
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    return model
