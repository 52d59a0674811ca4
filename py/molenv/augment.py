"""Thermal augmentation: training crystals made warmer by rigid-molecule motion.

A classifier trained on crystals at one temperature (the paper's protocol: 100 K) and used
at a higher one (nicotinamide's test crystals at 350 K) meets environments broader than any
it has seen: its class boundaries lie too close to the cold crystals (docs/results_notes.md).
Thermal augmentation adds, for each training crystal, copies of its training frames in which
every molecule is displaced and turned as a rigid body, by as much more as the target
temperature asks for in the harmonic approximation:

- measure the crystal's own rigid-molecule fluctuations at its temperature T from its
  training frames (`rigid_fluctuations`): the RMS displacement of each molecule's centroid
  about its mean position (per Cartesian component, the cell's drift removed) and the RMS
  rotation of the molecule about its mean orientation (per component of the rotation
  vector, from the best superposition of its atoms on the first frame's);
- in a harmonic crystal the variance of both grows in proportion to T, so the extra motion
  that takes the crystal from T to the target T' is Gaussian with widths
  sigma * sqrt(T' / T - 1) (`warming`), added by `rigid_motion`.

Clusters in vacuum (`cluster_fluctuations`, used where featurize is asked to warm clusters
too) have no cell: the cluster's own drift and turn are removed by superposing each frame's
molecule centroids on the first frame's, and the widths are measured separately for core and
surface molecules (surface ones move more) and robustly, 1.4826 times the median absolute
value (a Gaussian's sigma), because some molecules of a cold cluster already jump to new
orientations (molenv.order), which is no harmonic vibration and would dominate an RMS.

The copies get the descriptors and labels of real frames (featurize computes them; the graph
network trains on their positions). Nothing about the target temperature's data is used:
only its temperature. Molecules' internal motion, thermal expansion and anharmonic motion
are left out, so the augmented crystal is an approximation of the warmer one. On the
remade nicotinamide data the widths it gives for 350 K are within about 25 % of those
measured on the 350 K test crystals (docs/results_notes.md), and the paper-protocol SF-MLP
went from 0.873 to 0.974.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from molenv.frames import MolecularFrame

__all__ = ["RigidFluctuations", "rigid_fluctuations", "cluster_fluctuations", "per_molecule", "warming", "rigid_motion", "expanded", "warmed_frames"]


@dataclass(frozen=True)
class RigidFluctuations:
    """RMS rigid-molecule motion per Cartesian component: ``translation`` (A) of the
    centroids, ``rotation`` (degrees) of the rotation vectors; one number for every molecule
    (a crystal) or an array with one per molecule (a cluster)."""

    translation: float | np.ndarray
    rotation: float | np.ndarray

    def scaled(self, factor: float) -> RigidFluctuations:
        return RigidFluctuations(self.translation * factor, self.rotation * factor)


def rigid_fluctuations(frames: Sequence[MolecularFrame]) -> RigidFluctuations:
    """The rigid-molecule fluctuations of a crystal from its frames (module docstring): every
    molecule's centroid displacement from the first frame (minimum image in the first frame's
    cell), the cell's mean drift and each molecule's mean displacement removed; its rotation
    from the first frame (best superposition of its atoms, made whole), each molecule's mean
    rotation removed. Needs two or more frames of a periodic crystal."""
    if len(frames) < 2:
        raise ValueError(f"rigid fluctuations need two or more frames, got {len(frames)}")
    if frames[0].box is None:
        raise ValueError("rigid fluctuations are measured on a periodic crystal; this frame has no box")
    whole = np.stack([f.molecule_positions(1) for f in frames])  # (F, M, A, 3)
    centroids = whole.mean(axis=2)
    box = frames[0].box_matrix()
    fractional = (centroids - centroids[0]) @ np.linalg.inv(box)
    shift = (fractional - np.round(fractional)) @ box
    shift -= shift.mean(axis=1, keepdims=True)  # the cell's drift
    shift -= shift.mean(axis=0, keepdims=True)  # each molecule's mean position
    turns = _turns(whole - centroids[:, :, None, :])
    return RigidFluctuations(float(np.sqrt((shift**2).mean())), float(np.degrees(np.sqrt((turns**2).mean()))))


def cluster_fluctuations(frames: Sequence[MolecularFrame], surface: np.ndarray) -> dict[str, RigidFluctuations]:
    """The rigid-molecule fluctuations of a cluster in vacuum (module docstring), ``{"core":
    ..., "surface": ...}``: each frame superposed on the first by its molecule centroids (the
    cluster's drift and turn removed), then every molecule's centroid displacement and rotation
    from the first frame, each molecule's mean removed, and the width of each group robustly,
    1.4826 x the median absolute value over frames, molecules and components. `surface` (one
    flag per molecule) says which molecules are surface ones. Needs two or more frames, and a
    group with no molecule gets the other's widths."""
    from scipy.spatial.transform import Rotation

    if len(frames) < 2:
        raise ValueError(f"rigid fluctuations need two or more frames, got {len(frames)}")
    surface = np.asarray(surface, dtype=bool)
    whole = np.stack([f.molecule_positions(1) for f in frames])  # (F, M, A, 3)
    if surface.shape != whole.shape[1:2]:
        raise ValueError(f"one surface flag per molecule expected ({whole.shape[1]}), got shape {surface.shape}")
    centroids = whole.mean(axis=2)
    first = centroids[0] - centroids[0].mean(axis=0)
    aligned = np.empty_like(whole)
    for f in range(len(frames)):
        centre = centroids[f].mean(axis=0)
        turn, _ = Rotation.align_vectors(first, centroids[f] - centre)
        aligned[f] = turn.apply((whole[f] - centre).reshape(-1, 3)).reshape(whole.shape[1:])
    centroids = aligned.mean(axis=2)
    shift = centroids - centroids.mean(axis=0, keepdims=True)
    turns = _turns(aligned - centroids[:, :, None, :])

    def robust(values):
        return float(1.4826 * np.median(np.abs(values))) if values.size else None

    groups = {}
    for name, members in (("core", ~surface), ("surface", surface)):
        groups[name] = (robust(shift[:, members]), robust(np.degrees(turns[:, members])))
    for name, other in (("core", "surface"), ("surface", "core")):
        if groups[name][0] is None:
            groups[name] = groups[other]
    return {name: RigidFluctuations(*widths) for name, widths in groups.items()}


def per_molecule(groups: dict[str, RigidFluctuations], surface: np.ndarray) -> RigidFluctuations:
    """The widths of `cluster_fluctuations` (or `warming` of them) spread to the molecules:
    the surface group's for the `surface` ones, the core's for the others."""
    surface = np.asarray(surface, dtype=bool)
    return RigidFluctuations(np.where(surface, groups["surface"].translation, groups["core"].translation),
                             np.where(surface, groups["surface"].rotation, groups["core"].rotation))


def _turns(relative: np.ndarray) -> np.ndarray:
    """(F, M, 3) rotation vectors that take each molecule's atoms (`relative` to its centroid,
    (F, M, A, 3)) from the first frame to each frame, by best superposition, each molecule's
    mean rotation removed."""
    from scipy.spatial.transform import Rotation

    n_frames, n_molecules = relative.shape[:2]
    turns = np.zeros((n_frames, n_molecules, 3))
    for f in range(1, n_frames):
        for m in range(n_molecules):
            turn, _ = Rotation.align_vectors(relative[f, m], relative[0, m])
            turns[f, m] = turn.as_rotvec()
    return turns - turns.mean(axis=0, keepdims=True)


def warming(fluctuations: RigidFluctuations, temperature: float, target: float) -> RigidFluctuations:
    """The extra Gaussian rigid motion that takes a harmonic crystal with `fluctuations` at
    `temperature` to `target` (K): widths times sqrt(target / temperature - 1). A target at or
    below the temperature is an error: cooling is not an added motion."""
    if not temperature > 0:
        raise ValueError(f"the crystal's temperature must be positive, got {temperature}")
    if not target > temperature:
        raise ValueError(f"the target temperature ({target:g} K) must lie above the crystal's ({temperature:g} K)")
    return fluctuations.scaled(math.sqrt(target / temperature - 1.0))


def rigid_motion(frame: MolecularFrame, translation: float, rotation: float, rng: np.random.Generator) -> MolecularFrame:
    """A copy of `frame` with every molecule (made whole by the minimum image) translated by
    a Gaussian vector (`translation` A per component) and turned about its centroid by a
    Gaussian rotation vector (`rotation` degrees per component); each width one number or one
    per molecule."""
    from scipy.spatial.transform import Rotation

    whole = frame.molecule_positions(1)  # (n_mol, n_atoms, 3)
    n = len(whole)
    translation = np.broadcast_to(np.asarray(translation, dtype=float), (n,))
    rotation = np.broadcast_to(np.asarray(rotation, dtype=float), (n,))
    centroids = whole.mean(axis=1, keepdims=True)
    shift = rng.normal(size=(n, 1, 3)) * translation[:, None, None]
    turn = Rotation.from_rotvec(rng.normal(size=(n, 3)) * np.radians(rotation)[:, None])
    moved = centroids + np.einsum("mij,maj->mai", turn.as_matrix(), whole - centroids) + shift
    positions = frame.positions.copy()
    positions[frame.molecules] = moved
    return frame.replace(positions=positions)


def expanded(frame: MolecularFrame, strain: float) -> MolecularFrame:
    """A copy of the periodic `frame` stretched isotropically by the linear `strain` (0.016:
    every length 1.6 % longer): the cell edges and every molecule's centroid (whole by the
    minimum image) scaled by 1 + strain, the molecules themselves rigid, as in the thermal
    expansion of a molecular crystal. The fractional coordinates of the centroids are kept."""
    if frame.box is None:
        raise ValueError("expanded: the frame has no cell (a cluster cannot be stretched this way)")
    if not strain > -1.0:
        raise ValueError(f"expanded: the strain must be > -1, got {strain:g}")
    factor = 1.0 + strain
    whole = frame.molecule_positions(1)
    centroids = whole.mean(axis=1, keepdims=True)
    positions = frame.positions.copy()
    positions[frame.molecules] = whole + centroids * strain
    box = frame.box.copy()
    box[:3] *= factor
    return frame.replace(positions=positions, box=box)


def warmed_frames(frames: Sequence[MolecularFrame], motion: RigidFluctuations, copies: int, rng: np.random.Generator) -> list[MolecularFrame]:
    """`copies` warmed copies of every frame (`rigid_motion` with the widths of `motion`),
    copy after copy."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    return [rigid_motion(f, motion.translation, motion.rotation, rng) for _ in range(copies) for f in frames]
