"""Bulk vs surface: THE coordination-number rule (METHOD.md §4), used by every part of molenv.

A molecule is at the *surface* if its coordination number CN_I is below ``threshold`` (20),
where CN_I is the number of molecule centres within ``R + offset`` (offset 6 A) of molecule
I's centre, I itself counted and, in a periodic frame, every periodic image counted. R is the
molecule radius of the frame: the largest distance of any molecule's atom from its own
centre atom, one value for the whole frame (or a fixed radius given by the user).

The same rule makes the topology labels of a dataset (`molenv featurize`, what the GNN's
topology head is trained on) and the core/surface split of an analysis (`molenv classify`,
`molenv reanalyse`, `molenv.classify`), so that the split a user sees is the label the
network learnt. `TopologyRule` is the one implementation; nothing else counts neighbours for
this purpose.

Why one radius per frame, the largest (and not each molecule's own radius):

- it is what the original authors' code does (MXtalTools, ``identify_surface_molecules``:
  one cutoff, the largest molecule radius + the 6 A graph cutoff, for all molecules);
- the committed datasets and every trained model's topology labels were made with it;
- one cutoff makes the count symmetric (I counts J exactly when J counts I); with each
  molecule's own radius a vibrating hydrogen would change one molecule's shell only.

Deliberate differences from the authors' code, all without effect on the labels in practice:
the centre is the spec's centre atom (the molecule's point in every other part of molenv)
rather than the mean of the atom positions; a centre exactly at the cutoff counts (``<=``,
theirs ``<``); and no molecule is dropped as "fragmented" before taking the largest radius
(the radius uses minimum-image vectors, so molecules split across the cell are whole).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# numpy and the neighbour search are imported inside the functions: the command-line parser
# reads the defaults below (--cn-threshold) and must start without numpy.
if TYPE_CHECKING:
    import numpy as np

    from molenv.frames import Centre, MolecularFrame

__all__ = ["CN_OFFSET", "CN_THRESHOLD", "TOPOLOGY_NAMES", "TopologyRule", "complete_environment", "coordination_numbers", "molecule_radius"]

CN_OFFSET = 6.0  # A added to the molecule radius (the GNN's 6 A graph cutoff in the authors' code)
CN_THRESHOLD = 20  # surface if the coordination number (self counted) is below this
TOPOLOGY_NAMES = ("bulk", "surface")  # topology codes 0, 1 (the order of the GNN's topology head)


@dataclass(frozen=True)
class TopologyRule:
    """Surface if CN < threshold, CN = molecule centres within R + offset (self counted),
    R the largest molecule radius of the frame unless `radius` fixes it (module docstring)."""

    offset: float = CN_OFFSET  # A
    threshold: int = CN_THRESHOLD
    radius: float | None = None  # A; None: the largest molecule radius of each frame

    def frame_radius(self, frame: MolecularFrame, centre: Centre) -> float:
        """R of `frame`: the fixed radius, or the largest atom-centre distance of its molecules."""
        if self.radius is not None:
            return float(self.radius)
        if frame.n_molecules == 0:
            return 0.0
        return float(molecule_radius(frame, centre).max())

    def coordination(self, frame: MolecularFrame, centre: Centre) -> np.ndarray:
        """(n_molecules,) int64 coordination numbers CN_I of `frame` under this rule."""
        return coordination_numbers(frame, centre, self.frame_radius(frame, centre) + self.offset)

    def surface(self, coordination: np.ndarray) -> np.ndarray:
        """bool array, True where a coordination number makes the molecule a surface molecule."""
        import numpy as np

        return np.asarray(coordination) < self.threshold

    def describe(self) -> str:
        radius = f"{self.radius:g} A" if self.radius is not None else "the largest molecule radius of the frame"
        return (f"surface if CN < {self.threshold}; CN = molecule centres within {radius} + {self.offset:g} A "
                "of the centre, self and periodic images counted")


def coordination_numbers(frame: MolecularFrame, centre: Centre, radius) -> np.ndarray:
    """(n_molecules,) int64: molecule centres within `radius` of each centre, the molecule
    itself counted. The counting step of `TopologyRule.coordination`.

    `radius` is a number or a per-molecule array. In a periodic frame every periodic image of a
    centre within the radius counts, so the radius may exceed half the cell.
    """
    import numpy as np

    from molenv.descriptors import DescriptorError, centre_pairs

    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (frame.n_molecules,))
    if frame.n_molecules == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(radius)) or np.any(radius < 0):
        raise DescriptorError("the coordination radius must be a finite number >= 0")
    if radius.max() == 0:
        return np.ones(frame.n_molecules, dtype=np.int64)
    pairs = centre_pairs(frame, centre, float(radius.max()), single_image=False)
    within = pairs.distances <= radius[pairs.i]
    return 1 + np.bincount(pairs.i[within], minlength=frame.n_molecules).astype(np.int64)


def molecule_radius(frame: MolecularFrame, centre: Centre) -> np.ndarray:
    """(n_molecules,) largest minimum-image distance of a molecule's atoms from its centre."""
    import numpy as np

    centres = frame.centres(centre)
    rel = frame.minimum_image(frame.positions[frame.molecules] - centres[:, None, :])
    return np.sqrt(np.einsum("mak,mak->ma", rel, rel)).max(axis=1)


def complete_environment(frame: MolecularFrame, centre: Centre, cutoff: float) -> np.ndarray:
    """(n_molecules,) bool: the molecules whose whole descriptor sphere (`cutoff` around the
    centre) lies inside the system, where a classifier trained on periodic bulk only (an
    SF-MLP, the authors' models) sees what it was trained for. Every molecule of a periodic
    frame; in a cluster, those whose centre lies at least `cutoff` inside the cluster's
    radius, taken as that of a uniform sphere with the same median centre distance from the
    cluster's middle (median / 0.5^(1/3); the middle the coordinate-wise median of the
    centres): robust to a molecule that has evaporated, unlike the largest distance, the RMS
    or the centroid. Not the core/surface rule (`TopologyRule`, CN < 20), which keeps
    molecules with a partial sphere in the core."""
    import numpy as np

    if frame.periodic:
        return np.ones(frame.n_molecules, dtype=bool)
    centres = frame.centres(centre)
    distance = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    radius = np.median(distance) / 0.5 ** (1.0 / 3.0)
    return distance <= radius - cutoff
