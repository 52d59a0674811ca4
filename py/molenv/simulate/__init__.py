"""Simulation pipeline: crystal structure -> force field -> system -> OpenMM MD -> frames.

- :mod:`molenv.simulate.parametrise`: GAFF/GAFF2 atom types and AM1-BCC charges with
  AmberTools (antechamber, parmchk2), cached per molecule, or a user's mol2/frcmod.
- :mod:`molenv.simulate.systems`: crystal supercells, melts (start cell), spherical
  clusters, two-crystal interfaces; OpenMM topology, PDB, tleap prmtop.
- :mod:`molenv.simulate.md`: the staged, resumable OpenMM run (checkpoints, log, progress
  bar, frames as XTC + PDB topology that MDAnalysis reads with residues = molecules).

The command line is ``molenv simulate`` (docs/simulate.md).
"""


class SimulationError(ValueError):
    """A user error in setting up or running a simulation; the message says what to fix."""


# The longest time step accepted, fs: 2 fs with H-bond constraints is usual, 4 fs needs
# heavy hydrogens; beyond 10 fs any molecular system blows up, so a larger value is a typo
# (e.g. ps for fs).
MAX_TIMESTEP_FS = 10.0

# The smallest perpendicular height of a crystal supercell, A (`molenv simulate --min-height`
# default); `molenv.simulate.systems.supercell_height` raises it for the descriptor cutoff.
DEFAULT_MIN_HEIGHT = 20.0
