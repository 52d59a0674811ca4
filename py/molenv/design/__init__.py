"""Data-driven choice of the point-vector descriptors of a molecule (`molenv design`).

`design_descriptors` takes samples of each form of a molecule (short MD trajectories, or
crystal structures with a random rigid-molecule stand-in for thermal motion) and chooses the
centre, the vectors, the cutoff and the symmetry functions from them, each by an explicit
score on held-out samples (`molenv.design.designer`); `DesignResult.write` writes the spec
and a report. See docs/design.md.

    from molenv.design import design_descriptors
    result = design_descriptors("urea", trajectories=[("I", "I.xtc", "I.pdb.gz"), ("IV", "IV.xtc", "IV.pdb.gz")])
    result.write("design/urea")          # spec.toml, report.md, design.json, plots
"""
from molenv.design.designer import DesignResult, design_descriptors, resolve_molecule
from molenv.design.samples import DesignError, ThermalNoise
from molenv.design.selection import PoolSettings, SelectionSettings

__all__ = ["design_descriptors", "DesignResult", "DesignError", "ThermalNoise", "PoolSettings", "SelectionSettings", "resolve_molecule"]
