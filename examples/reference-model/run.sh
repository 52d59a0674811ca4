#!/usr/bin/env bash
# Import the original authors' urea model and classify their form I dump with it, in PLUMED
# (molenv reanalyse) and in Python (molenv classify). Run from this directory; about 15 s.
# The reference files are read from ../shared/reference next to the repository (or
# $MOLENV_REFERENCE); they are not copied here.
set -euo pipefail
cd "$(dirname "$0")"
REF=${MOLENV_REFERENCE:-../../../shared/reference}
DUMP=$REF/urea/formI_6x6x6_molstruc.dump

# 1. the reference weight file and SF input -> a molenv model file
molenv import-reference --weights $REF/urea/sf_mlp_weights_molstruc.txt --sf-input $REF/urea/sf_input_molstruc.dat \
    --spec urea --classes I,IV,Melt,A,B,C,III --out urea_ref.molenv

# 2. MOLENV_CLASSIFY in PLUMED over the dump: COLVAR (fractions, path CV), prob.dat, and
#    with --analyse the populations table, plot and an extended XYZ (element column 1 H, 2 O, 3 C, 4 N)
molenv reanalyse --plumed plumed.dat -t $DUMP --no-progress --analyse --type-elements 1:H,2:O,3:C,4:N --out reanalysed --xyz

# 3. the same model in Python (symmetry functions and network in numpy)
molenv classify --model urea_ref.molenv -t $DUMP --type-elements 1:H,2:O,3:C,4:N --no-progress --out classified

# 4. a PLUMED input for any other topology: molenv plumed-input works out the molecules
molenv plumed-input --model urea_ref.molenv --topology $DUMP --type-elements 1:H,2:O,3:C,4:N -o plumed-generated.dat

echo "outputs: urea_ref.molenv COLVAR prob.dat plumed.log reanalysed/ classified/ plumed-generated.dat"
