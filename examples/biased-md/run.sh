#!/usr/bin/env bash
# A short OPES run on the I -> IV path CV of a urea form I crystal (160 molecules, 300 K,
# NPT), then a classification of its frames. Run from this directory; about 1.5 minutes.
# Interrupt it at any time (Ctrl-C) and run it again: the run and PLUMED continue.
set -euo pipefail
cd "$(dirname "$0")"
REF=${MOLENV_REFERENCE:-../../../shared/reference}

# 2 ps unbiased NPT equilibration, then 10 ps of OPES in NPT; PLUMED's files in run/plumed/
molenv simulate crystal --molecule urea --structure $REF/urea/formI.cif --temperature 300 \
    --equilibrate 2 --production 10 --frame-interval 0.5 --report-interval 1 --checkpoint-interval 1 --threads 1 \
    --plumed plumed.dat --out run

# which molecules the bias changed: every frame classified in Python, with an extended XYZ for OVITO
molenv classify --model ../../models/urea_sf.molenv -t run/trajectory.xtc --topology run/topology.pdb \
    --no-progress --xyz --out classified

echo "outputs: run/ (run/plumed/COLVAR, KERNELS, plumed.log; run/run.log) classified/"
