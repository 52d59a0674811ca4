#!/usr/bin/env python3
"""Pressure tensor diagonal (P_xx, P_yy, P_zz) of frames of a `molenv simulate` run, from the
molecular virial: the derivative of the potential energy when the box is stretched along one
axis and every molecule moved rigidly with it (its centre of mass scaled, its shape kept, so
that the intramolecular terms do not change and the 0.01 A rounding of XTC coordinates does
not matter), plus the kinetic term of the molecules' centres at the run's temperature:

    P_aa = (N_mol k T - dU/d(eps_aa)) / V,    dU/d(eps_aa) by central differences (eps 1e-4).

Used for docs/applications.md, part 2 (why the urea I/IV front does not move in NPzT: P_zz is
held at 1 bar by the barostat, P_xx and P_yy are what the fixed lateral box imposes):

    .venv/bin/python scripts/interface_stress.py data/runs/urea-I-IV-interface-paper-100K --frames 0 10 20 30 40 49

The run directory must hold system.prmtop, run.json, trajectory.xtc and topology.pdb (data/runs/<name>/ of
data/generate.py, not committed). Same force-field settings as the MD (PME, the run's cutoff).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BAR_PER_KJ_MOL_NM3 = 16.6054  # 1 kJ/mol/nm^3 in bar
KB = 0.0083144626  # kJ/mol/K


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a molenv simulate run directory")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, -1], help="frame indices (default: first and last)")
    parser.add_argument("--eps", type=float, default=1e-4, help="strain of the central differences (default 1e-4)")
    args = parser.parse_args()

    import MDAnalysis as mda
    import openmm
    from openmm import app, unit

    run = Path(args.run)
    meta = json.loads((run / "run.json").read_text())
    settings = meta["settings"]
    temperature = float(meta["stages"][-1]["temperature"])  # the production stage
    prmtop = app.AmberPrmtopFile(str(run / "system.prmtop"))
    system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=settings["cutoff"] * unit.angstrom, ewaldErrorTolerance=5e-4)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    u = mda.Universe(str(run / "topology.pdb"), str(run / "trajectory.xtc"))
    residues = u.residues
    masses = u.atoms.masses
    n_mol = len(residues)

    def energy(positions_nm: np.ndarray, box_nm: np.ndarray) -> float:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*v) for v in np.diag(box_nm)))
        context.setPositions(positions_nm)
        return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    print(f"{run.name}: {n_mol} molecules, T = {temperature:g} K; P_aa in bar (molecular virial)")
    print("frame  time/ps  Lx/A  Ly/A  Lz/A  P_xx  P_yy  P_zz")
    rows = []
    for f in args.frames:
        ts = u.trajectory[f]
        box = ts.dimensions[:3] / 10.0  # nm; the run's box is orthorhombic
        x = u.atoms.positions / 10.0
        com = np.array([np.average(x[r.atoms.indices], axis=0, weights=masses[r.atoms.indices]) for r in residues])
        shift = np.zeros_like(x)
        volume = float(np.prod(box))
        p = []
        for a in range(3):
            derivative = 0.0
            for sign in (+1, -1):
                scale = np.ones(3)
                scale[a] += sign * args.eps
                for r, c in zip(residues, com):
                    shift[r.atoms.indices] = c * (scale - 1.0)
                derivative += sign * energy(x + shift, box * scale)
            derivative /= 2 * args.eps
            p.append((n_mol * KB * temperature - derivative) / volume * BAR_PER_KJ_MOL_NM3)
        rows.append(p)
        print(f"{ts.frame:5d}  {ts.time:7.1f}  {10 * box[0]:.2f}  {10 * box[1]:.2f}  {10 * box[2]:.2f}  {p[0]:8.0f}  {p[1]:8.0f}  {p[2]:8.0f}")
    rows = np.array(rows)
    mean, error = rows.mean(axis=0), rows.std(axis=0, ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.full(3, np.nan)
    print(f"mean over {len(rows)} frames (+- standard error, frames taken as independent): "
          + ", ".join(f"P_{a}{a} {m:.0f} +- {e:.0f}" for a, m, e in zip("xyz", mean, error)) + " bar")
    return 0


if __name__ == "__main__":
    sys.exit(main())
