# the unbiased 300 K coexistence run of docs/applications.md, part 3 (data/coexistence-300K)
cd "$(dirname "$0")/../.."   # the repository root
export OPENMM_CPU_THREADS=1
nice -n 5 .venv/bin/molenv simulate coexistence --molecule urea --atom-types gaff --charges kuroshima2024 --structure ../shared/reference/urea/formI.cif --repeats 4 4 16 --lattice 5.5548 5.5548 4.6857 --melt-time 20.0 --quench-time 10.0 --threads 1 --no-progress --report-interval 1 --checkpoint-interval 5 --temperature 300.0 --equilibrate 0 --production 400 --frame-interval 5 --ff-cache /work/runs/forcefields --out /work/runs/dc300/300K
