"""Independent brute-force implementation of what MOLENV_CLASSIFY computes, used to
make and to check the regression-test references (it shares no code with the C++
action; the network is molenv.modelfile.Network.forward).

Everything is in Angstrom and written for clarity, not speed:

* intramolecular vectors: minimum image by trying every lattice shift in -2..2;
* symmetry functions: explicit sum over all molecules J != I and all their periodic
  images with |r_IJ + n h| < rmax (no minimum-image assumption);
* region weights, populations, fractions and the path CV with the plain formulas of
  docs/plumed_action.md (no log-sum-exp);
* forces: central finite differences of any of these quantities.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from molenv.modelfile import Model


@dataclass
class System:
    """Atom positions (natoms, 3) in Angstrom; box rows are cell vectors (None: no PBC)."""

    positions: np.ndarray
    box: np.ndarray | None
    molecules: list[list[int]]  # 0-based atom indices of each molecule, in model atom order


@dataclass
class Region:
    axis: int  # 0, 1, 2
    centre: float  # Angstrom
    halfwidth: float
    smoothing: float


@dataclass
class Path:
    classes: list[int]  # indices into the model classes
    images: np.ndarray  # (P, len(classes))
    lam: float


@dataclass
class Result:
    G: np.ndarray  # (nmol, n_sf), model-file order
    p: np.ndarray  # (nmol, n_classes)
    w: np.ndarray  # (nmol,)
    n: np.ndarray  # (n_classes,)
    f: np.ndarray
    nmol: float
    s: float | None = None
    z: float | None = None
    extra: dict = field(default_factory=dict)


def _shifts(box: np.ndarray | None, reach: float) -> np.ndarray:
    if box is None:
        return np.zeros((1, 3))
    heights = 1.0 / np.linalg.norm(np.linalg.inv(box), axis=0)
    n = [int(math.ceil(reach / h)) + 1 for h in heights]
    grid = itertools.product(*(range(-k, k + 1) for k in n))
    return np.array([np.array(g, float) @ box for g in grid])


def min_image_vector(d: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Shortest of d + n h over shifts n in -2..2 (brute force)."""
    if box is None:
        return d
    cands = d + np.array([np.array(g, float) @ box for g in itertools.product(range(-2, 3), repeat=3)])
    return cands[np.argmin(np.einsum("ij,ij->i", cands, cands))]


def cutoff(r: np.ndarray, rmin: float, rmax: float) -> np.ndarray:
    r = np.asarray(r, float)
    x = np.clip((r - rmin) / (rmax - rmin), 0.0, 1.0)
    fc = 0.5 * (np.cos(np.pi * x) + 1.0)
    return np.where(r >= rmax, 0.0, np.where(r <= rmin, 1.0, fc))


def symmetry_functions(model: Model, system: System) -> np.ndarray:
    """G (nmol, n_sf) by explicit enumeration of all periodic images of every J != I."""
    d = model.descriptors
    pos = system.positions
    nmol = len(system.molecules)
    centres = np.array([pos[m[d.centre_atom - 1]] for m in system.molecules])
    vecs = np.zeros((nmol, len(d.vectors), 3))
    for i, m in enumerate(system.molecules):
        for s, (a, b) in enumerate(d.vectors):
            vecs[i, s] = min_image_vector(pos[m[b - 1]] - pos[m[a - 1]], system.box)
    units = vecs / np.linalg.norm(vecs, axis=2, keepdims=True)
    shifts = _shifts(system.box, d.rmax)
    G = np.zeros((nmol, len(d.functions)))
    for i in range(nmol):
        disp = centres[None, :, :] + shifts[:, None, :] - centres[i][None, None, :]  # (nshift, nmol, 3)
        r = np.linalg.norm(disp, axis=2)
        mask = r < d.rmax
        mask[:, i] = False  # self and self images excluded
        _, js = np.nonzero(mask)
        r = r[mask]
        fc = cutoff(r, d.rmin, d.rmax)
        for g, sf in enumerate(d.functions):
            if sf.kind == "S1":
                rs, eta = sf.params
                G[i, g] = np.sum(np.exp(-eta * (r - rs) ** 2) * fc)
            elif sf.kind == "S2":
                (kappa,) = sf.params
                G[i, g] = np.sum(np.cos(kappa * r) * fc)
            else:
                c = units[js, sf.vector - 1] @ units[i, sf.vector - 1]
                if sf.kind == "S3":
                    cs, eta = sf.params
                    G[i, g] = np.sum(np.exp(-eta * (c - cs) ** 2) * fc)
                else:
                    (kappa,) = sf.params
                    G[i, g] = np.sum(np.cos(kappa * c) * fc)
    return G


def region_weights(model: Model, system: System, region: Region | None) -> np.ndarray:
    nmol = len(system.molecules)
    if region is None:
        return np.ones(nmol)
    d = model.descriptors
    centres = np.array([system.positions[m[d.centre_atom - 1]] for m in system.molecules])
    if system.box is None:
        x = centres[:, region.axis] - region.centre
        delta = x
    else:
        recip = np.linalg.inv(system.box)[:, region.axis]
        height = 1.0 / np.linalg.norm(recip)
        normal = recip * height
        x = centres @ normal - region.centre
        # periodic minimum image along the normal: try shifts by whole heights
        cands = x[:, None] + height * np.arange(-3, 4)[None, :]
        delta = cands[np.arange(nmol), np.argmin(np.abs(cands), axis=1)]
    u = np.abs(delta) - region.halfwidth
    if region.smoothing == 0:
        return (u <= 0).astype(float)
    t = np.clip(u / region.smoothing, 0.0, 1.0)
    return 1.0 - t**3 * (10 - 15 * t + 6 * t**2)


def path_cv(q: np.ndarray, path: Path) -> tuple[float, float]:
    D = ((q[None, :] - path.images) ** 2).sum(axis=1)
    e = np.exp(-path.lam * D)
    P = len(path.images)
    s = float((np.arange(P) * e).sum() / e.sum() / (P - 1))
    z = float(-np.log(e.sum()) / path.lam)
    return s, z


def evaluate(model: Model, system: System, region: Region | None = None, path: Path | None = None) -> Result:
    G = symmetry_functions(model, system)
    p = model.network.forward(G)
    w = region_weights(model, system, region)
    n = (w[:, None] * p).sum(axis=0)
    W = float(w.sum())
    f = n / W if W > 0 else np.zeros_like(n)
    res = Result(G, p, w, n, f, W)
    if path is not None:
        res.s, res.z = path_cv(f[path.classes], path)
    return res


def component_values(model: Model, res: Result) -> dict[str, float]:
    out = {}
    for k, c in enumerate(model.classes):
        out[f"n_{c}"] = float(res.n[k])
    for k, c in enumerate(model.classes):
        out[f"f_{c}"] = float(res.f[k])
    out["nmol"] = res.nmol
    if res.s is not None:
        out["s"], out["z"] = res.s, res.z
    return out


def finite_difference_forces(energy, system: System, h: float = 1e-4, atoms=None):
    """Forces -dE/dx on every atom and PLUMED's virial-like box term by central
    differences; energy(system) -> float.  The box term is h^T dE/dh at fixed
    fractional coordinates, the bias's contribution to PLUMED's virial (for a pair
    term it equals sum d (x) dE/dd, e.g. +kappa d (x) d for a harmonic DISTANCE
    restraint at 0)."""
    pos0 = system.positions
    forces = np.zeros_like(pos0)
    used = sorted({a for m in system.molecules for a in m}) if atoms is None else atoms
    for a in used:
        for x in range(3):
            plus, minus = pos0.copy(), pos0.copy()
            plus[a, x] += h
            minus[a, x] -= h
            ep = energy(System(plus, system.box, system.molecules))
            em = energy(System(minus, system.box, system.molecules))
            forces[a, x] = -(ep - em) / (2 * h)
    virial = None
    if system.box is not None:
        box0 = system.box
        frac = pos0 @ np.linalg.inv(box0)
        dEdh = np.zeros((3, 3))
        for i in range(3):
            for j in range(3):
                bp, bm = box0.copy(), box0.copy()
                bp[i, j] += h
                bm[i, j] -= h
                ep = energy(System(frac @ bp, bp, system.molecules))
                em = energy(System(frac @ bm, bm, system.molecules))
                dEdh[i, j] = (ep - em) / (2 * h)
        virial = box0.T @ dEdh
    return forces, virial
