#!/usr/bin/env bash
# A short version of the paper's nanocluster melting (Fig. 7; docs/applications.md): the
# 148-molecule nicotinamide form I cluster at 350 K for 20 ps (the committed run is 500 ps),
# classified frame by frame in PLUMED and in Python. Run from this directory; about 5 min on
# one core.
set -euo pipefail
cd "$(dirname "$0")"
REF=${MOLENV_REFERENCE:-../../../shared/reference}

# 1. MD: the cluster (molecules whose centre lies within 17.2 A of a form I supercell's
#    centre) with the authors' force field (that of the models' training data), minimised,
#    then 20 ps at 350 K from t = 0, a frame every 1 ps
molenv simulate cluster --molecule nicotinamide --atom-types gaff2 --charges kuroshima2024 --lennard-jones kuroshima2024 \
    --structure $REF/nicotinamide/NICOAM13.pdb \
    --diameter 34.4 --temperature 350 --equilibrate 0 --production 20 --frame-interval 1 \
    --threads 1 --no-progress --out run

# 2. PLUMED (MOLENV_CLASSIFY) over the frames, with populations split into core and surface
molenv reanalyse --plumed plumed.dat -t run/trajectory.xtc --topology run/topology.pdb --no-progress \
    --analyse cls --out reanalysed --xyz

# 3. the same model in Python, core and surface by the coordination rule (CN < 20: surface)
molenv classify --model ../../models/nicotinamide_sf.molenv -t run/trajectory.xtc --topology run/topology.pdb \
    --no-pbc --no-progress --out classified

echo "outputs: run/ COLVAR prob.dat reanalysed/ classified/ (populations.png: all, core, surface)"
