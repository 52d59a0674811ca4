#!/usr/bin/env bash
# The melting point of GAFF urea form I (the authors' charges) by interface pinning on n_I of
# MOLENV_CLASSIFY (docs/applications.md, part 3, "Form I and its melt"). Resumable: every
# step is a `molenv simulate` run directory or a file that is made once, so running this
# script again after an interruption continues where it stopped (a step that is running in
# another process is refused by its lock, and this script stops there).
#
#   scripts/pinning-melt-queue.sh                      # CPU, one thread per run: weeks
#   PLATFORM=CUDA PLUMED_THREADS=8 scripts/pinning-melt-queue.sh   # a GPU: see the docs for the cost
#   TEMPERATURES="390 410" PRODUCTION=300 scripts/pinning-melt-queue.sh
#
# Environment: TEMPERATURES (K, default 320 340 360: the force field's T_m is below 340 K or so,
# docs/applications.md), PRODUCTION (ps per pinning window,
# default 200: at KAPPA 0.2 a window relaxes in 10-40 ps), EQUILIBRATE (ps of unbiased NPzT
# before the windows, default 10), OFFSETS (bias centres relative to the equilibrated n_I,
# default "0 -16": half a crystal layer of 32 molecules apart; where the two disagree the
# front did not move freely, molenv.pinning.average_windows; add -8 -24 to cover the layer), KAPPA (kJ/mol per molecule^2, default 0.2: at 0.05 a front relaxes in
# 450 ps or more), DISCARD (ps of each window left out, default auto: where it becomes stationary), WORK (default
# data/runs/pinning-melt), PLATFORM (OpenMM, default CPU), PLUMED_THREADS (default 1),
# BIAS_STRIDE (apply the bias every N steps with N times the force, default 1: see
# scripts/pinning.py --bias-stride), MODEL (the SF model of the count, default
# models/urea_sf_hot.molenv, which reads hot form I as form I: with models/urea_sf.molenv a
# bias on the count disordered the crystal instead of moving the front, docs/applications.md),
# PYTHON (default .venv/bin/python), NICE (default 10).
#
# Status (docs/applications.md, part 3, 2026-12-04): on form I's (001) face the front moves a
# layer at a time, and windows of 30-100 ps remember where they started, so the windows this
# queue runs from the equilibration do not measure dmu by themselves. What did: scans of one
# layer from both sides (`scripts/pinning.py run --chain --tag down`, then `--tag up --start`
# a window below, KAPPA 1, 8 centres 4 molecules apart) and `analyse --layer 32`, which
# brackets dmu between the two scans' fits (400 K: -4.3 < dmu < -2.9 kJ/mol per molecule,
# T_m about 250 K; the commands are in docs/applications.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
TEMPERATURES=${TEMPERATURES:-320 340 360}
PRODUCTION=${PRODUCTION:-200}
EQUILIBRATE=${EQUILIBRATE:-10}
OFFSETS=${OFFSETS:-0 -16}
KAPPA=${KAPPA:-0.2}
DISCARD=${DISCARD:-auto}
WORK=${WORK:-data/runs/pinning-melt}
PLATFORM=${PLATFORM:-CPU}
PLUMED_THREADS=${PLUMED_THREADS:-1}
BIAS_STRIDE=${BIAS_STRIDE:-1}
NICE=${NICE:-10}
MODEL=${MODEL:-models/urea_sf_hot.molenv}

pinning() {
    nice -n "$NICE" "$PYTHON" scripts/pinning.py --system I-melt --work "$WORK" --kappa "$KAPPA" --discard "$DISCARD" \
        --platform "$PLATFORM" --plumed-threads "$PLUMED_THREADS" --bias-stride "$BIAS_STRIDE" --model "$MODEL" "$@"
}

mkdir -p "$WORK"
for T in $TEMPERATURES; do
    echo "== $(date -u +%FT%TZ) $T K" | tee -a "$WORK/queue.log"
    # shellcheck disable=SC2086
    pinning --temperature "$T" run --equilibrate "$EQUILIBRATE" --production "$PRODUCTION" --offsets $OFFSETS 2>&1 | tee -a "$WORK/queue.log"
    pinning --temperature "$T" analyse 2>&1 | tee -a "$WORK/queue.log"
done
pinning melting-point 2>&1 | tee -a "$WORK/queue.log"
