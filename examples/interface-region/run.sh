#!/usr/bin/env bash
# Classify the committed urea I/IV interface run in PLUMED (MOLENV_CLASSIFY with a region
# slab and the path CV) and in Python, and compare. Run from this directory; about 20 s.
set -euo pipefail
cd "$(dirname "$0")"
DATA=../../data/urea/urea-I-IV-interface-100K

# 1. the PLUMED input over the 40 frames: COLVAR, COLVAR_slabs, prob.dat; --analyse turns the
#    probabilities of the action `all` into populations, plots and an extended XYZ for OVITO
molenv reanalyse --plumed plumed.dat -t $DATA.xtc --topology $DATA.pdb.gz --no-progress \
    --analyse all --out reanalysed --xyz

# 2. the same model in Python (molenv.descriptors + numpy), counting only the slab at the
#    interface: reanalysed/ and classified-interface/ hold the same numbers as COLVAR_slabs
molenv classify --model ../../models/urea_sf.molenv -t $DATA.xtc --topology $DATA.pdb.gz \
    --region y:20:3:1 --no-progress --out classified-interface

echo "outputs: COLVAR COLVAR_slabs prob.dat plumed.log reanalysed/ classified-interface/"
