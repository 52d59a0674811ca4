#!/usr/bin/env bash
# A short interface-pinning run: the urea form I / form IV interface of the paper's geometry at
# half its width (600 molecules, 4,800 atoms) at 200 K in NPzT, 2 ps unbiased, then 4 ps with
# the bias of plumed.dat, and the estimate of dmu. Run from this directory; about 2 minutes.
# The real runs are 20 ps + 2 x 200 ps (scripts/pinning.py); 4 ps only show the machinery.
set -euo pipefail
cd "$(dirname "$0")"
REF=${MOLENV_REFERENCE:-../../../shared/reference}

molenv simulate interface --molecule urea --atom-types gaff --charges kuroshima2024 \
    --structure $REF/urea/formI.cif --orient b,c,a --repeats 4 6 5 \
    --structure2 $REF/urea/formIV_approx_P1.cif --symmetrise2 0.3 --orient2 b,c,a --repeats2 3 6 10 \
    --axis z --lateral-box 21.6391 28.01799 --gap 1.1566 --barostat z --no-minimise --temperature 200 \
    --equilibrate 2 --production 4 --frame-interval 1 --checkpoint-interval 1 --threads 1 \
    --plumed plumed.dat --out run

# dmu = KAPPA (<n_IV> - AT) with a block-averaging error, the first picosecond left out (the
# bias read from plumed.dat's RESTRAINT; --discard auto, the default, needs a longer window)
molenv pinning analyse run/plumed/COLVAR --plumed plumed.dat --discard 1 --out pinning
echo "outputs: run/ (run/plumed/COLVAR, plumed.log; run/run.log, trajectory.xtc), pinning/ (summary.json, windows.png)"
