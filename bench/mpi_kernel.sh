#!/usr/bin/env bash
# A PLUMED kernel with MPI, built from the same sources as the bundled kernel, and
# MOLENV_CLASSIFY compiled against it: what `make test-mpi` and bench/mpi_scaling.py run.
#
#   bench/mpi_kernel.sh [OUT]      # default OUT=build/mpi-plumed; needs mpicxx (Debian:
#                                  # apt-get install libopenmpi-dev openmpi-bin)
#
# Only what the MPI tests and the benchmark use is built (the driver, PRINT, DUMPDERIVATIVES,
# RESTRAINT of scalars), without optimisation, as the bundled kernel is: it is the module that
# is under test, and it is compiled with the Makefile's CXXFLAGS, as `make module` compiles it.
# The kernel is built once (logs in OUT); the module is compiled again on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=$(realpath -m "${1:-build/mpi-plumed}")
MODULES=none:+setup:+bias:+generic:+cltools:+molfile:+xdrfile
JOBS=${JOBS:-$(nproc)}
command -v mpicxx > /dev/null || { echo "mpicxx not found (apt-get install libopenmpi-dev openmpi-bin)" >&2; exit 1; }

if [ ! -f "$OUT/lib/libplumedKernel.so" ]; then
    PY="$PY" bench/plumed_sources.sh "$OUT/src"
    echo "building PLUMED $(tail -n 1 "$OUT/src/plumed2/VERSION.txt") with MPI into $OUT (logs there)"
    start=$SECONDS
    cd "$OUT/src/plumed2"
    # rpath: $OUT/bin/plumed runs without LD_LIBRARY_PATH
    ./configure --prefix="$OUT" CXX=mpicxx CC=mpicc CXXFLAGS=-O0 --enable-modules="$MODULES" \
        --enable-mpi --disable-python --disable-doc --enable-shared --enable-rpath > "$OUT/configure.log"
    grep -q -- '-D__PLUMED_HAS_MPI' Makefile.conf || { echo "PLUMED's configure did not enable MPI" >&2; exit 1; }
    make -j"$JOBS" > "$OUT/make.log"
    make install > "$OUT/install.log"
    cd - > /dev/null
    echo "PLUMED built in $((SECONDS - start)) s"
fi
echo "kernel: $OUT/lib/libplumedKernel.so"
# the module, every time: its sources may have changed since the last run. This PLUMED's
# `plumed mklib` compiles it with mpicxx and PLUMED's preprocessor flags (-D__PLUMED_HAS_MPI
# among them), then the module's own flags (`make print-cxxflags`), whose -O3 comes last
CXXFLAGS=$(make -s --no-print-directory print-cxxflags)  # no "Entering directory" lines under a parent make (make test)
sources=$(cd plumed_module && ls *.cpp)
rm -rf "$OUT/mklib" && mkdir -p "$OUT/mklib" && cp plumed_module/*.cpp plumed_module/*.h "$OUT/mklib"
# (PLUMED's headers, not system headers here, warn under the module's -Wextra: to the log)
(cd "$OUT/mklib" && PLUMED_MKLIB_CFLAGS="$CXXFLAGS" PLUMED_MKLIB_LDFLAGS=-fopenmp "$OUT/bin/plumed" --no-mpi mklib $sources \
    > mklib.log 2>&1) || { cat "$OUT/mklib/mklib.log"; exit 1; }
first=$(echo $sources | cut -d' ' -f1)
mv "$OUT/mklib/${first%.cpp}.so" "$OUT/libmolenv_plumed.so"
echo "module: $OUT/libmolenv_plumed.so"
