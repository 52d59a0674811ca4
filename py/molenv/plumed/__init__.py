"""Everything that talks to PLUMED, one module per concept.

- `molenv.plumed.kernel`: which PLUMED installation (the user's or the one bundled in the
  `hillclimber` wheel), where the compiled `MOLENV_CLASSIFY` module is, running `plumed`;
  ``python -m molenv.plumed.kernel`` is what `make install` / `make module` call.
- `molenv.plumed.engine`: loading that kernel into Python, starting a PLUMED instance, handing
  it a step's data, and PLUMED's error messages.
- `molenv.plumed.inputs`: PLUMED input text: writing a `MOLENV_CLASSIFY` input, reading the
  `MOLENV_CLASSIFY` actions of one (their molecules as PLUMED reads the atom lists), and
  making the input files it names absolute.
- `molenv.plumed.reanalysis`: frames of any trajectory MDAnalysis reads fed to PLUMED
  (`molenv reanalyse`).
- `molenv.plumed.openmm_bridge`: PLUMED as a bias force inside OpenMM (`molenv simulate --plumed`).

Submodules are imported where used, so that ``python -m molenv.plumed.kernel`` needs nothing
but the standard library.
"""
