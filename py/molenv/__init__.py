"""molenv: classify the local environment of molecules in molecular crystals.

Python side of molenv: descriptors, datasets, training (SF-MLP and GNN), evaluation and
export to the model file read by the PLUMED action `MOLENV_CLASSIFY`.
"""
__version__ = "0.1.0"
