#!/usr/bin/env bash
# An optimised build of the PLUMED kernel that `make install` bundles, for the benchmarks and for
# `make install PLUMED=optimised` (docs/install.md).
#
# The kernel in the PyPI wheel `hillclimber` is compiled without optimisation: its build
# passes CXXFLAGS=-Wno-error to PLUMED's configure, which then drops its default -O3
# (`molenv plumed info --configuration` shows the flags). Timings of PLUMED's own actions
# (COORDINATION) and of PLUMED's work around MOLENV_CLASSIFY would flatter the module. This
# script builds the same PLUMED sources (the sdist of the `hillclimber` release that
# molenv.plumed.kernel pins, same version) with PLUMED's defaults and only the modules the
# benchmarks use, then compiles MOLENV_CLASSIFY against it:
#
#   bench/optimised_kernel.sh [OUT]     # default OUT=bench/out/plumed-O3; ~15 min on 2 cores the
#                                       # first time, then only the module is compiled again (40 s)
#   MODULES=default bench/optimised_kernel.sh --kernel-only OUT
#       # the kernel alone, with PLUMED's default modules (what `make install PLUMED=optimised`
#       # runs; it then builds the module with that kernel's `plumed mklib`)
#
# bench/plumed_action.py uses bench/out/plumed-O3 when it is there (`make bench` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
KERNEL_ONLY=no
if [ "${1:-}" = --kernel-only ]; then KERNEL_ONLY=yes; shift; fi
PY=${PY:-.venv/bin/python}
OUT=$(realpath -m "${1:-bench/out/plumed-O3}")
MODULES=${MODULES:-none:+setup:+colvar:+bias:+generic:+function:+cltools:+molfile:+xdrfile}
JOBS=${JOBS:-$(nproc)}

if [ ! -f "$OUT/lib/libplumedKernel.so" ]; then
    src="$OUT/src"
    PY="$PY" bench/plumed_sources.sh "$src"
    echo "building PLUMED $(tail -n 1 "$src/plumed2/VERSION.txt") with -O3 into $OUT (logs there)"
    cd "$src/plumed2"
    modules=(--enable-modules="$MODULES")
    [ "$MODULES" = default ] && modules=()
    # CXXFLAGS left unset: PLUMED's configure then uses its default, -O3; rpath: $OUT/bin/plumed
    # runs without LD_LIBRARY_PATH (molenv runs it as a PLUMED of yours)
    env -u CXXFLAGS ./configure --prefix="$OUT" "${modules[@]}" --disable-python --disable-doc \
        --enable-shared --enable-rpath > "$OUT/configure.log"
    make -j"$JOBS" > "$OUT/make.log"
    make install > "$OUT/install.log"
    cd - > /dev/null
fi
echo "kernel: $OUT/lib/libplumedKernel.so"
[ "$KERNEL_ONLY" = yes ] && exit 0
# the module, every time: its sources may have changed since the last run
CXXFLAGS=$(make -s --no-print-directory print-cxxflags)  # no "Entering directory" lines under a parent make
g++ $CXXFLAGS -isystem "$OUT/include/plumed" plumed_module/*.cpp -shared -o "$OUT/libmolenv_plumed.so"
echo "module: $OUT/libmolenv_plumed.so"
