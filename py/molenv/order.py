"""Model-free order and mobility of a system of molecules, and the melt check built on them.

Measures (frames are `molenv.frames.MolecularFrame`s; molecule axes are the spec's vectors,
e.g. urea's C -> O and N1 -> N2, nicotinamide's ring C6 -> C3 and amide C7 -> N7):

- `aligned_fraction(frame, vectors)`: the fraction of molecule pairs of one frame that have
  the same orientation, every axis of one within `ALIGNED_ANGLE` (25 degrees) of the other's
  (a flip counts as the same). A crystal whose molecules take k orientations has about 1/k
  (urea forms I and IV: 2 orientations, 0.49; the nicotinamide forms 0.22-0.50 from 100 to
  350 K); orientations without order give the isotropic value, 0.023 for urea's axes and
  0.014 for nicotinamide's. It needs no reference structure and no time.
- `orientational_order(frame, reference, vectors)`: per molecule and axis, the second
  Legendre polynomial P2(cos) = (3 cos^2 - 1) / 2 of the angle between the molecule's axis
  in `frame` and in `reference` (the same molecules, e.g. an earlier frame or the built
  crystal). 1: the orientation the molecule had (up to a flip); 0 on average for
  orientations uncorrelated with it. Without a periodic box (a cluster) the overall rotation
  of the system is removed first (best superposition of the molecule centres, Kabsch); a
  periodic box holds the lattice's orientation fixed, so nothing is removed there.
  `reoriented(p2)` marks the molecules with an axis below `REORIENTED_P2` (P2 0.5: turned by
  more than 35 degrees); `turned(frame, reference, vectors, centre)` is the two together.
- `centre_msd(frames, centre)`: mean-square displacement of the molecule centres from
  the first frame, A^2, per frame: centres unwrapped frame to frame (minimum image of each
  step, so frames must be closer in time than a molecule takes to cross half the box), the
  drift of the centre of all centres removed and, without a box, the overall rotation.
- `density(frame)`: g/cm3 (gemmi's standard atomic weights).

`check_melt(frames, vectors, centre)` applies them to a trajectory labelled melt: no
frame may have crystal-like orientational order (`aligned_fraction` at most
`MELT_MAX_ALIGNED`), and the molecule centres must diffuse (`centre_msd` from the first
to the last frame at least `MELT_MIN_MSD`). The density (against the crystal's, where
known) is reported, not decisive: an NPT melt of a force field can be as dense as its
crystal (urea with the authors' charges: 1.40 g/cm3 at 350 K and 1 bar). The thresholds
and the data that justify them: docs/simulate.md, "The melt check".

The same measures serve analysis, e.g. how the molecules of a cluster lose the
orientations they had::

    from molenv.order import orientational_order
    from molenv.trajectory import Trajectory
    traj = Trajectory("data/urea/urea-I-cluster-200K.xtc", "urea", topology="data/urea/urea-I-cluster-200K.pdb.gz", periodic=False)
    first = traj[0]
    [orientational_order(f, first, traj.spec.vectors, centre=traj.spec.centre).mean() for f in traj]
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from molenv.frames import Centre, MolecularFrame, box_matrix

__all__ = [
    "ALIGNED_ANGLE",
    "MELT_MAX_ALIGNED",
    "MELT_MIN_MSD",
    "REORIENTED_P2",
    "MeltCheck",
    "aligned_fraction",
    "axes",
    "box_density",
    "centre_msd",
    "check_melt",
    "density",
    "orientational_order",
    "reoriented",
    "turned",
]

# Two molecules have the same orientation when each axis of one is within this angle of the
# other's (up to a flip): wide enough for the thermal libration of crystals at 350 K (the
# fraction of nicotinamide's forms at 350 K is within 15 % of its 100 K value at 25 degrees,
# within 40 % at 15), narrow enough that random orientations rarely pass (urea 2 %).
ALIGNED_ANGLE = 25.0
# A melt has no frame with more aligned pairs than this: 1/16, what a crystal of 16 equally
# populated orientations would have. In every frame the committed crystals have >= 0.237
# (nicotinamide II and IV: four orientations), the committed melts at most 0.015
# (nicotinamide) and 0.026 (urea), the isotropic values.
MELT_MAX_ALIGNED = 1 / 16
# A melt's molecules diffuse: centre MSD from the first to the last frame at least this, A^2.
# The committed crystals stay at <= 0.77 A^2 (thermal vibration; 100-350 K, over 28-195 ps);
# the committed melts move 4.3 A^2 (nicotinamide, 28 ps) and 68 A^2 (urea, 195 ps).
MELT_MIN_MSD = 2.0
# A molecule has reoriented when the P2 of one of its axes (first vs last frame) is below
# this: P2 = 0.5 is an angle of 35 degrees (cos^2 = 2/3), beyond the thermal libration of
# a crystal. In the committed MD data (first vs last frame, 195 ps) no molecule of the
# crystals urea I and IV at 100-200 K and nicotinamide I at 350 K is below it (1 % of the
# molecules below 0.63-0.77), 2 % of nicotinamide II at 350 K, 94 % of the urea melt.
REORIENTED_P2 = 0.5
# Pairs are counted among at most this many molecules of a frame (evenly spaced): the
# fraction of 500,000 pairs is exact to ~0.001, and the cost stays bounded for large systems.
ALIGNED_MAX_MOLECULES = 1000


def axes(frame: MolecularFrame, vectors: Sequence[tuple[int, ...]]) -> np.ndarray:
    """(n_molecules, n_axes, 3) unit vectors along the molecule axes `vectors` (1-based atom
    tuples as specs give them, `MolecularFrame.vectors`: (a, b) r(b) - r(a), minimum image;
    (a, b, c, d) a plane normal)."""
    v = frame.vectors(vectors)
    return v / np.linalg.norm(v, axis=2, keepdims=True)


def aligned_fraction(frame: MolecularFrame, vectors: Sequence[tuple[int, ...]], *, max_angle: float = ALIGNED_ANGLE) -> float:
    """The fraction of the frame's molecule pairs whose every axis (`vectors`) lies within
    `max_angle` degrees of the other molecule's, a flip counting as the same orientation
    (among at most `ALIGNED_MAX_MOLECULES` evenly spaced molecules)."""
    u = axes(frame, vectors)
    if len(u) > ALIGNED_MAX_MOLECULES:
        u = u[np.linspace(0, len(u) - 1, ALIGNED_MAX_MOLECULES).round().astype(int)]
    n = len(u)
    if n < 2:
        return float("nan")
    limit = np.cos(np.radians(max_angle))
    same = np.ones((n, n), dtype=bool)
    for k in range(u.shape[1]):
        same &= np.abs(u[:, k] @ u[:, k].T) >= limit
    return float((same.sum() - n) / (n * (n - 1)))


def _rotation(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The rotation R that best superposes `points` onto `reference` (both centred): R @ p ~ r."""
    from scipy.spatial.transform import Rotation

    rotation, _ = Rotation.align_vectors(reference, points)
    return rotation.as_matrix()


def orientational_order(frame: MolecularFrame, reference: MolecularFrame, vectors: Sequence[tuple[int, ...]], *,
                        centre: Centre = 1, remove_rotation: bool | None = None) -> np.ndarray:
    """(n_molecules, n_axes) P2 of the angle between each molecule's axes in `frame` and in
    `reference` (the same molecules in the same order). ``remove_rotation`` (default: only
    without a periodic box) first turns `frame` by the rotation that best superposes its
    molecule centres (`centre`: a 1-based atom position, or a tuple whose centroid is the
    centre, as specs give it) on the reference's."""
    if frame.molecules.shape != reference.molecules.shape:
        raise ValueError(f"the frame has {frame.n_molecules} molecules of {frame.atoms_per_molecule} atoms, the reference "
                         f"{reference.n_molecules} of {reference.atoms_per_molecule}: not the same system")
    now, before = axes(frame, vectors), axes(reference, vectors)
    if remove_rotation is None:
        remove_rotation = frame.box is None
    if remove_rotation:
        p, r = frame.centres(centre), reference.centres(centre)
        now = now @ _rotation(p - p.mean(axis=0), r - r.mean(axis=0)).T
    cos = np.einsum("mvk,mvk->mv", now, before)
    return 1.5 * cos**2 - 0.5


def reoriented(p2: np.ndarray) -> np.ndarray:
    """(n_molecules,) bool: the molecules of `p2` (`orientational_order` of a frame against a
    reference) with an axis whose P2 is below `REORIENTED_P2`: turned out of their orientation."""
    return (p2 < REORIENTED_P2).any(axis=1)


def turned(frame: MolecularFrame, reference: MolecularFrame, vectors: Sequence[tuple[int, ...]], centre: Centre = 1) -> np.ndarray:
    """(n_molecules,) bool: the molecules of `frame` that have turned out of their orientation
    in `reference` (`reoriented` of `orientational_order`, the overall rotation of a cluster
    removed)."""
    return reoriented(orientational_order(frame, reference, vectors, centre=centre))


def centre_msd(frames: Iterable[MolecularFrame], centre: Centre, *, remove_rotation: bool | None = None) -> np.ndarray:
    """Mean-square displacement (A^2) of the molecule centres (`centre`, as specs give it) from the
    first frame, one value per frame (0 for the first). Centres are unwrapped step by step
    (minimum image of each frame-to-frame displacement); the mean displacement of all
    centres (drift) is removed, and without a box (default: where the first frame has none)
    the overall rotation too."""
    frames = iter(frames)
    first = next(frames)
    start = first.centres(centre)
    origin = start - start.mean(axis=0)
    if remove_rotation is None:
        remove_rotation = first.box is None
    previous, unwrapped, out = start, start.copy(), [0.0]
    for frame in frames:
        here = frame.centres(centre)
        if len(here) != len(start):
            raise ValueError(f"the frame at {frame.time:g} ps has {len(here)} molecules, the first {len(start)}")
        step = here - previous
        unwrapped = unwrapped + (frame.minimum_image(step) if frame.box is not None else step)
        previous = here
        moved = unwrapped - unwrapped.mean(axis=0)
        if remove_rotation:
            moved = moved @ _rotation(moved, origin).T
        out.append(float(np.mean(np.sum((moved - origin) ** 2, axis=1))))
    return np.array(out)


def density(frame: MolecularFrame) -> float | None:
    """Mass density of a periodic frame, g/cm3 (None without a box)."""
    if frame.box is None:
        return None
    import gemmi

    numbers, counts = np.unique(frame.atomic_numbers, return_counts=True)
    mass = sum(gemmi.Element(int(z)).weight * c for z, c in zip(numbers, counts))  # g/mol
    return box_density(mass, frame.box)


def box_density(mass: float, box) -> float:
    """Mass density, g/cm3, of `mass` g/mol in a cell ``[a, b, c, alpha, beta, gamma]`` (A, degrees)."""
    return mass / abs(np.linalg.det(box_matrix(box))) / 0.602214076  # g/mol / A^3 -> g/cm3


@dataclass
class MeltCheck:
    """The outcome of `check_melt`: the measures, the thresholds and the verdict."""

    aligned: float  # the largest aligned_fraction of the frames
    aligned_time_ps: float  # the time of that frame
    msd: float  # centre MSD from the first to the last frame, A^2
    time_ps: float  # time from the first to the last frame
    n_frames: int
    density: float | None  # mean density of the frames, g/cm3 (None without a box)
    crystal_density: float | None = None  # the crystal's, where known
    max_aligned: float = MELT_MAX_ALIGNED
    min_msd: float = MELT_MIN_MSD

    @property
    def ordered(self) -> bool:
        return not self.aligned <= self.max_aligned

    @property
    def immobile(self) -> bool:
        return not self.msd >= self.min_msd

    @property
    def melted(self) -> bool:
        return not (self.ordered or self.immobile)

    def failures(self) -> list[str]:
        """One phrase per failed criterion, with the numbers."""
        out = []
        if self.ordered:
            out.append(f"orientational order: {self.aligned:.3f} of the molecule pairs share an orientation (the frame at "
                       f"{self.aligned_time_ps:g} ps), a melt has at most {self.max_aligned:.4g} (a crystal of k orientations ~1/k)")
        if self.immobile:
            out.append(f"mobility: the molecule centres moved {self.msd:.2f} A^2 (mean square) in {self.time_ps:g} ps, "
                       f"a melt's at least {self.min_msd:g} A^2")
        return out

    def describe(self) -> str:
        """One line: the numbers and the verdict."""
        rho = ""
        if self.density is not None:
            rho = f"; density {self.density:.3f} g/cm3"
            if self.crystal_density:
                rho += f", {self.density / self.crystal_density:.3f} x the crystal's {self.crystal_density:.3f} (not a criterion)"
        verdict = "melted" if self.melted else "NOT melted: " + "; ".join(self.failures())
        return (f"aligned molecule pairs {self.aligned:.3f} in the most ordered frame (a melt <= {self.max_aligned:.4g}), centre MSD "
                f"{self.msd:.2f} A^2 in {self.time_ps:g} ps (a melt >= {self.min_msd:g}), {self.n_frames} frames{rho}: {verdict}")

    def as_dict(self) -> dict:
        return {"melted": self.melted, "aligned_fraction": round(self.aligned, 4), "aligned_time_ps": self.aligned_time_ps,
                "msd_A2": round(self.msd, 3), "time_ps": self.time_ps, "n_frames": self.n_frames,
                "density_g_cm3": None if self.density is None else round(self.density, 4),
                "crystal_density_g_cm3": None if self.crystal_density is None else round(self.crystal_density, 4),
                "max_aligned_fraction": round(self.max_aligned, 6), "aligned_angle_deg": ALIGNED_ANGLE, "min_msd_A2": self.min_msd,
                "failed": self.failures()}


def check_melt(frames: Iterable[MolecularFrame], vectors: Sequence[tuple[int, ...]], centre: Centre, *,
               crystal_density: float | None = None, max_aligned: float = MELT_MAX_ALIGNED, min_msd: float = MELT_MIN_MSD) -> MeltCheck:
    """Whether the frames (in time order) are a melt (module docstring): no frame with
    crystal-like orientational order, and diffusing molecule centres. `crystal_density`
    (g/cm3) is only reported beside the frames' density."""
    frames = list(frames)
    if len(frames) < 2:
        raise ValueError(f"a melt check needs two frames or more (to see the molecules move), got {len(frames)}")
    fractions = [aligned_fraction(f, vectors) for f in frames]
    worst = int(np.argmax(fractions))
    msd = centre_msd(frames, centre)[-1]
    rhos = [density(f) for f in frames]
    return MeltCheck(aligned=fractions[worst], aligned_time_ps=round(frames[worst].time, 3), msd=float(msd),
                     time_ps=round(frames[-1].time - frames[0].time, 3), n_frames=len(frames),
                     density=None if rhos[0] is None else float(np.mean(rhos)), crystal_density=crystal_density,
                     max_aligned=max_aligned, min_msd=min_msd)
