"""The molecular crystal graph network (METHOD.md §4).

Atoms are nodes, atom pairs within the cutoff (6 A, minimum image) are edges. The network
learns a per-atom representation from atom types and distances only, max-pools it over the
atoms of each molecule and classifies every molecule twice: its polymorph (``n_forms``
classes, melt included) and its topology (bulk / surface).

Layout, with the published sizes (``hidden=256``, ``conv_channels=128``, ``num_radial=32``)::

    z -> Embedding(num_atom_types, 5) -> Linear(5, 256)                      atom features x
    |r_ij| -> DimeNet Bessel basis (32, cutoff 6, envelope p=5)                edge basis e
    per conv:  x = Linear(128, 256)(TransformerConv(Linear(256,128)(x), Linear(32,128)(e)))
               x = x + Dropout(GELU(Linear(LayerNorm(x))))                     pre-norm residual
    per molecule: max over its atoms                                          embedding (256)
    head: 2 pre-norm residual blocks -> Linear(256, n_forms + 2, no bias)     last hidden (256)
    logits[:, :n_forms] = polymorph, logits[:, n_forms:] = topology (0 bulk, 1 surface)

The convolution's output replaces x (METHOD.md gives no residual around it; the
TransformerConv's own gated skip, beta=True, carries each atom's features through).

The default urea model (7 polymorph classes, as the reference urea classifiers: I, IV,
melt, A, B, C, III; Embedding over atomic numbers 0..99 as in SchNet) has 355,988
parameters with one convolution and 574,996 with two, the published "about 356k" and
"575k". Both numbers pin n_forms = 7: each extra class adds 256 parameters.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch_geometric.nn import TransformerConv, global_max_pool
from torch_geometric.nn.models.dimenet import BesselBasisLayer
from torch_geometric.utils import scatter, softmax

from molenv.topology import TOPOLOGY_NAMES  # the topology head's outputs, in the datasets' code order

N_TOPOLOGY = len(TOPOLOGY_NAMES)  # bulk, surface


class GNNOutput(NamedTuple):
    """Everything one forward pass produces, per molecule (rows follow the molecule index)."""

    polymorph_logits: Tensor  # (n_molecules, n_forms)
    topology_logits: Tensor  # (n_molecules, 2)
    embedding: Tensor  # (n_molecules, hidden): max-pooled atom features
    hidden: Tensor  # (n_molecules, hidden): input of the output layer


class ResidualBlock(nn.Module):
    """Pre-norm residual block: x + Dropout(GELU(Linear(LayerNorm(x))))."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.act(self.linear(self.norm(x))))


class GraphConvBlock(nn.Module):
    """One message-passing step: project nodes and edge basis down to ``channels``, attend
    over neighbours with a `TransformerConv` (gated skip, ``beta=True``), project back up and
    refine node-wise with a residual block.

    The `TransformerConv` holds the parameters (the published layout) and is the reference
    definition; `forward` evaluates the same function more cheaply (`attention`), and
    ``reference=True`` calls the `TransformerConv` itself.
    """

    def __init__(self, hidden: int, channels: int, num_radial: int, dropout: float):
        super().__init__()
        self.node_in = nn.Linear(hidden, channels, bias=False)
        self.edge_in = nn.Linear(num_radial, channels, bias=False)
        self.conv = TransformerConv(channels, channels, heads=1, edge_dim=channels, beta=True)
        self.node_out = nn.Linear(channels, hidden)
        self.block = ResidualBlock(hidden, dropout)

    def forward(self, x: Tensor, edge_index: Tensor, basis: Tensor, reference: bool = False) -> Tensor:
        h = self.node_in(x)
        if reference:
            h = self.conv(h, edge_index, self.edge_in(basis))
        else:
            h = self.attention(h, edge_index, basis)
        return self.block(self.node_out(h))

    def attention(self, h: Tensor, edge_index: Tensor, basis: Tensor) -> Tensor:
        """``self.conv(h, edge_index, self.edge_in(basis))`` without per-edge projections.

        The edge feature enters the TransformerConv as e_ij = W b_ij with W = W_edge W_in
        (both bias-free), added to the key and to the value of every edge. So
        q_i.(k_j + e_ij) = q_i.k_j + (W^T q_i).b_ij and sum_j a_ij (v_j + e_ij) =
        sum_j a_ij v_j + W sum_j a_ij b_ij: the 128x128 product per edge becomes per-node
        work, and only 32-wide basis terms remain per edge. On CPU, the two 128-wide edge
        terms (q_i.k_j and sum_j a_ij v_j) are sparse-matrix kernels over the edge pattern
        (`_sparse_attention_terms`), which never build an (n_edges, 128) array: ~10x faster
        than gathering (such arrays are larger than malloc's reuse threshold, so each one
        costs fresh zeroed pages).
        """
        conv = self.conv
        source, target = edge_index[0], edge_index[1]
        n = h.size(0)
        query, key, value = conv.lin_query(h), conv.lin_key(h), conv.lin_value(h)
        w = conv.lin_edge.weight @ self.edge_in.weight  # (channels, num_radial)
        basis_score = ((query @ w)[target] * basis).sum(-1)
        scale = 1.0 / math.sqrt(conv.out_channels)
        pointer = csr_pointer(edge_index, n) if not torch.jit.is_scripting() and h.device.type == "cpu" else None
        if pointer is not None:
            alpha, out = _sparse_attention_terms(query, key, value, source, pointer, basis_score, scale)
        else:
            alpha, out = _gathered_attention_terms(query, key, value, source, target, basis_score, scale)
        out = out + scatter(basis * alpha.unsqueeze(-1), target, 0, n, reduce="sum") @ w.t()
        skip = conv.lin_skip(h)
        beta = conv.lin_beta(torch.cat([out, skip, out - skip], dim=-1)).sigmoid()
        return beta * skip + (1 - beta) * out


def csr_pointer(edge_index: Tensor, num_nodes: int) -> Tensor | None:
    """Row pointer of the edges as a CSR matrix with rows = targets, columns = sources, or
    None where CSR kernels do not apply: edges not sorted by (target, source), or an atom
    pair repeated (several periodic images of a pair, in cells thinner than twice the
    cutoff), or atom indices out of range. Graphs from `molenv.gnn.graph` are sorted."""
    source, target = edge_index[0], edge_index[1]
    if target.numel() and (int(source.min()) < 0 or int(source.max()) >= num_nodes):
        return None  # out-of-range atoms: let the gather path raise a clear IndexError
    if target.numel() > 1:
        increasing = (target[1:] > target[:-1]) | ((target[1:] == target[:-1]) & (source[1:] > source[:-1]))
        if not bool(increasing.all()):
            return None
    pointer = torch.zeros(num_nodes + 1, dtype=torch.long, device=target.device)
    pointer[1:] = torch.cumsum(torch.bincount(target, minlength=num_nodes), 0)
    return pointer


EDGE_CHUNK = 16384  # edges per block: (EDGE_CHUNK, 128) float32 arrays of 8 MB


def _gathered_attention_terms(
    query: Tensor, key: Tensor, value: Tensor, source: Tensor, target: Tensor, basis_score: Tensor, scale: float, chunk: int = EDGE_CHUNK
) -> tuple[Tensor, Tensor]:
    """The same as `_sparse_attention_terms` by gathering node features onto edges, in
    blocks of edges: arrays of (n_edges, 128) would exceed malloc's reuse threshold
    (32 MB) for a 1000-atom frame and cost fresh zeroed pages each time."""
    n, n_edges = query.size(0), source.numel()
    scores = [basis_score.new_zeros(0)]
    for start in range(0, n_edges, chunk):
        t, s = target[start : start + chunk], source[start : start + chunk]
        scores.append((query[t] * key[s]).sum(-1))
    alpha = softmax((torch.cat(scores) + basis_score) * scale, target, num_nodes=n)
    out = value.new_zeros(n, value.size(1))
    for start in range(0, n_edges, chunk):
        t, s = target[start : start + chunk], source[start : start + chunk]
        out = out.index_add(0, t, value[s] * alpha[start : start + chunk].unsqueeze(-1))
    return alpha, out


@torch.jit.unused
def _sparse_attention_terms(query: Tensor, key: Tensor, value: Tensor, source: Tensor, pointer: Tensor, basis_score: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Attention weights a_ij = softmax_j(scale (q_i.k_j + basis_score_ij)) and
    sum_j a_ij v_j, with q_i.k_j from a sampled dense-dense product (SDDMM) and the sum as a
    sparse-dense product (SpMM) over the CSR edge pattern. Eager only: TorchScript does not
    differentiate through sparse tensor construction."""
    n = query.size(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        # `csr_pointer` validated the layout, so torch's own invariant checks are skipped
        pattern = torch.sparse_csr_tensor(pointer, source, basis_score.new_zeros(source.numel()), (n, n), check_invariants=False)
        score = torch.sparse.sampled_addmm(pattern, query, key.t()).values() + basis_score
        alpha = softmax(score * scale, ptr=pointer, num_nodes=n)
        out = torch.sparse.mm(torch.sparse_csr_tensor(pointer, source, alpha, (n, n), check_invariants=False), value)
    return alpha, out


class MolecularGNN(nn.Module):
    """Graph classifier of molecular environments.

    Args:
        n_forms: number of polymorph classes (melt counts as one).
        num_convs: graph convolutions (published model: 1).
        hidden: width of atom and molecule features (256).
        conv_channels: width inside the convolutions (128).
        num_radial: Bessel basis functions (32).
        cutoff: edge cutoff in Angstrom, also the basis cutoff (6.0).
        envelope_exponent: exponent of the DimeNet polynomial envelope (5).
        num_atom_types: size of the atom-type embedding; types are atomic numbers.
        type_dim: width of the atom-type embedding (5).
        dropout: dropout of every residual block (paper 0.25, final code 0.5).
    """

    def __init__(
        self,
        n_forms: int,
        num_convs: int = 1,
        hidden: int = 256,
        conv_channels: int = 128,
        num_radial: int = 32,
        cutoff: float = 6.0,
        envelope_exponent: int = 5,
        num_atom_types: int = 100,
        type_dim: int = 5,
        dropout: float = 0.5,
    ):
        super().__init__()
        if n_forms < 1 or num_convs < 1:
            raise ValueError(f"need n_forms >= 1 and num_convs >= 1, got {n_forms}, {num_convs}")
        self.n_forms = n_forms
        self.cutoff = cutoff
        self.num_atom_types = num_atom_types
        self.type_embedding = nn.Embedding(num_atom_types, type_dim)
        self.type_linear = nn.Linear(type_dim, hidden)
        self.basis = BesselBasisLayer(num_radial, cutoff=cutoff, envelope_exponent=envelope_exponent)
        self.convs = nn.ModuleList(GraphConvBlock(hidden, conv_channels, num_radial, dropout) for _ in range(num_convs))
        self.head = nn.Sequential(ResidualBlock(hidden, dropout), ResidualBlock(hidden, dropout))
        self.output = nn.Linear(hidden, n_forms + N_TOPOLOGY, bias=False)

    def forward(self, z: Tensor, edge_index: Tensor, edge_length: Tensor, molecule: Tensor, num_molecules: int, reference: bool = False) -> GNNOutput:
        """Classify every molecule of a graph (or a batch of graphs).

        Args:
            z: (n_atoms,) atomic numbers.
            edge_index: (2, n_edges) source and target atoms; both directions present.
            edge_length: (n_edges,) distances in Angstrom, all below the cutoff.
            molecule: (n_atoms,) molecule index of each atom, 0..num_molecules-1.
            num_molecules: number of molecules (rows of every output).
            reference: evaluate the convolutions with torch_geometric's TransformerConv
                itself instead of the equivalent, faster `GraphConvBlock.attention`.
        """
        x = self.type_linear(self.type_embedding(z))
        basis = self.basis(edge_length)
        for conv in self.convs:
            x = conv(x, edge_index, basis, reference)
        embedding = global_max_pool(x, molecule, num_molecules)
        hidden = self.head(embedding)
        logits = self.output(hidden)
        return GNNOutput(logits[:, : self.n_forms], logits[:, self.n_forms :], embedding, hidden)


def edge_lengths(pos: Tensor, edge_index: Tensor, edge_shift: Tensor) -> Tensor:
    """Edge lengths |pos[source] + shift - pos[target]| (shift: the source's lattice
    translation, zero for non-periodic graphs); differentiable in ``pos``."""
    return torch.linalg.vector_norm(pos[edge_index[0]] + edge_shift - pos[edge_index[1]], dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
