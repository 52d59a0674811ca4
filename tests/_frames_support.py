"""The cells of the tests' toy frames: periodic boxes from cell vectors (`box_of`), every
atom wrapped into the cell (`wrapped`: molecules at the faces split) and an orthorhombic
frame sheared into a triclinic cell (`sheared`), for the frame kinds every descriptor and
force test covers (orthorhombic, split across the boundary, triclinic, no box)."""
from __future__ import annotations

import numpy as np

from molenv.frames import MolecularFrame, wrap_into_cell

SHEAR = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.25, 1.0]])  # the default of `sheared`


def box_of(matrix: np.ndarray) -> np.ndarray:
    """[a, b, c, alpha, beta, gamma] of cell vectors (rows) with a along x and b in the xy plane."""
    lengths = np.linalg.norm(matrix, axis=1)

    def angle(u, v):
        return np.degrees(np.arccos(matrix[u] @ matrix[v] / (lengths[u] * lengths[v])))

    return np.r_[lengths, angle(1, 2), angle(0, 2), angle(0, 1)]


def wrapped(frame: MolecularFrame) -> MolecularFrame:
    """Every atom wrapped into the cell: molecules at the faces are split."""
    return frame.replace(positions=wrap_into_cell(frame.positions, frame.box_matrix()))


def sheared(frame: MolecularFrame, shear: np.ndarray = SHEAR) -> MolecularFrame:
    """An orthorhombic frame sheared into a triclinic cell: positions and cell vectors times
    `shear` (lower triangular with a unit diagonal: a stays along x, b in the xy plane)."""
    return frame.replace(positions=frame.positions @ shear, box=box_of(np.diag(frame.box[:3]) @ shear))
