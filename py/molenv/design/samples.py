"""Thermal samples of each form for `molenv design`: frames of short MD trajectories, or
frames made from a crystal structure by random rigid-molecule displacements.

A design compares forms (crystal polymorphs, the melt) through samples of their thermal
motion. The real samples are MD frames (`from_trajectory`: every trajectory of a form,
evenly thinned to ``max_frames``). Where a form has only a crystal structure,
`from_structure` makes a cheap stand-in: the supercell of the structure, every molecule
moved as a rigid body by a Gaussian translation (``translation`` A per Cartesian
component) and a rotation about its centroid by a Gaussian rotation vector (``rotation``
degrees per component), independently per molecule and frame. This is an Einstein-crystal
caricature of thermal motion: no correlated motion, no thermal expansion, no
intramolecular flexibility, so the accuracies a design reports from it are optimistic for
real MD at the same amplitude. It serves to explore a new molecule before any MD exists;
the report says which forms were sampled this way.

Each form's frames are split in time order: the last ``held_out_fraction`` of each
trajectory's frames (of the generated frames, the last ones) are the held-out samples on
which the design scores its choices, the others the fitting samples; as in
`molenv.featurize`, trailing blocks keep time-correlated frames out of different parts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.augment import rigid_motion
from molenv.frames import MolecularFrame
from molenv.spec import MoleculeSpec

__all__ = ["DesignError", "FormSamples", "parse_labelled", "from_trajectory", "from_structure", "ThermalNoise"]


class DesignError(ValueError):
    """Input that `molenv design` cannot use; the message names the problem."""


@dataclass(frozen=True)
class ThermalNoise:
    """Amplitudes of the rigid-molecule stand-in for thermal motion (`from_structure`)."""

    translation: float = 0.15  # Angstrom, standard deviation per Cartesian component
    rotation: float = 6.0  # degrees, standard deviation per component of the rotation vector
    frames: int = 12  # frames made per structure


@dataclass
class FormSamples:
    """The frames of one form (class) and where they came from."""

    label: str
    frames: list[MolecularFrame] = field(default_factory=list)
    held_out: list[bool] = field(default_factory=list)  # per frame: scoring (True) or fitting (False)
    origins: list[str] = field(default_factory=list)  # one line per input file
    generated: bool = False  # frames made by `from_structure` (the stand-in)

    def extend(self, frames: list[MolecularFrame], held_out: list[bool], origin: str, generated: bool = False) -> None:
        self.frames += frames
        self.held_out += held_out
        self.origins.append(origin)
        self.generated |= generated

    @property
    def n_molecules(self) -> int:
        return sum(f.n_molecules for f in self.frames)


def parse_labelled(text: str, option: str) -> tuple[str, str]:
    """``LABEL=VALUE`` -> (label, value); DesignError naming the option otherwise."""
    from molenv.modelfile import CLASS_NAME

    label, sep, value = text.partition("=")
    label, value = label.strip(), value.strip()
    if not sep or not label or not value:
        raise DesignError(f"{option} {text!r}: expected LABEL=FILE (e.g. I=formI.cif)")
    if not CLASS_NAME.match(label):
        raise DesignError(f"{option} {text!r}: the label {label!r} must match [A-Za-z0-9_]+ (it becomes a class name)")
    return label, value


def _held_out(n: int, fraction: float) -> list[bool]:
    """The last `fraction` of n frames (at least one, if n >= 2) are held out."""
    k = 0 if n < 2 else min(n - 1, max(1, int(round(fraction * n))))
    return [i >= n - k for i in range(n)]


def from_trajectory(spec: MoleculeSpec, trajectory: str | Path, topology: str | Path | None, *, max_frames: int, held_out_fraction: float,
                    reader: dict | None = None) -> tuple[list[MolecularFrame], list[bool], str]:
    """Up to `max_frames` evenly spaced periodic frames of a trajectory, their held-out
    flags and a line saying what was read."""
    from molenv.trajectory import Trajectory, TrajectoryError

    try:
        traj = Trajectory(trajectory, spec, topology=topology, **(reader or {}))
        n = len(traj)
        if n == 0:
            raise DesignError(f"{trajectory}: no frames")
        step = max(1, -(-n // max_frames))
        frames = [traj[k] for k in range(0, n, step)]
    except TrajectoryError as err:
        raise DesignError(str(err)) from None
    if any(f.box is None for f in frames):
        raise DesignError(f"{trajectory}: frames without a periodic box (a cluster?); a design needs periodic samples of each form")
    return frames, _held_out(len(frames), held_out_fraction), f"{trajectory} ({len(frames)} of {n} frames, every {step})"


def from_structure(spec: MoleculeSpec, structure: str | Path, *, noise: ThermalNoise, min_height: float, held_out_fraction: float,
                   rng: np.random.Generator, symmetrise: float | None = None) -> tuple[list[MolecularFrame], list[bool], str]:
    """`noise.frames` frames of the structure's supercell (every perpendicular height at
    least `min_height`) with rigid molecules displaced and rotated at random (module docstring)."""
    from molenv.crystals import CrystalError, build_supercell

    try:
        cell = build_supercell(structure, spec, min_height=min_height, symmetrise_tolerance=symmetrise)
    except CrystalError as err:
        hint = "" if symmetrise else " (an approximate structure may need --symmetrise LABEL=TOL)"
        raise DesignError(f"{err}{hint}") from None
    base = cell.frame()
    frames = [rigid_motion(base, noise.translation, noise.rotation, rng).replace(time=float(k)) for k in range(noise.frames)]
    origin = (f"{structure}: {cell.n_molecules} molecules ({'x'.join(map(str, cell.repeats))} cells, {cell.spacegroup}), {noise.frames} frames of "
              f"random rigid-molecule motion (translation {noise.translation:g} A, rotation {noise.rotation:g} deg per component; a stand-in for MD)")
    return frames, _held_out(len(frames), held_out_fraction), origin
