#!/usr/bin/env bash
# An optimised build of the PLUMED kernel that `make install` bundles, for the benchmarks.
#
# The kernel in the PyPI wheel `hillclimber` is compiled without optimisation: its build
# passes CXXFLAGS=-Wno-error to PLUMED's configure, which then drops its default -O3
# (`molenv plumed info --configuration` shows the flags). Timings of PLUMED's own actions
# (COORDINATION) and of PLUMED's work around MOLENV_CLASSIFY would flatter the module. This
# script builds the same PLUMED sources (the wheel's sdist, same version) with PLUMED's
# defaults and only the modules the benchmarks use, then compiles MOLENV_CLASSIFY against it:
#
#   bench/optimised_kernel.sh [OUT]     # default OUT=bench/out/plumed-O3; ~15 min on 2 cores the
#                                       # first time, then only the module is compiled again (40 s)
#
# bench/plumed_action.py uses bench/out/plumed-O3 when it is there (`make bench` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=$(realpath -m "${1:-bench/out/plumed-O3}")
MODULES=${MODULES:-none:+setup:+colvar:+bias:+generic:+function:+cltools:+molfile:+xdrfile}
JOBS=${JOBS:-$(nproc)}

if [ ! -f "$OUT/lib/libplumedKernel.so" ]; then
    version=$("$PY" -c "import importlib.metadata as m; print(m.version('hillclimber'))")
    src="$OUT/src"
    mkdir -p "$src"
    if [ ! -x "$src/plumed2/configure" ]; then
        echo "fetching the sdist of hillclimber $version (the PLUMED sources of the bundled kernel)"
        "$PY" - "$version" "$src" <<'PYTHON'
import io, json, sys, tarfile, urllib.request
version, dest = sys.argv[1], sys.argv[2]
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/hillclimber/json"))
url = next(u["url"] for u in meta["releases"][version] if u["packagetype"] == "sdist")
prefix = f"hillclimber-{version}/external/plumed2/"
with tarfile.open(fileobj=io.BytesIO(urllib.request.urlopen(url).read())) as tar:
    members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.name != prefix + ".git"]
    for m in members:
        m.name = "plumed2/" + m.name[len(prefix):]
    tar.extractall(dest, members=members, filter="data")
PYTHON
    fi
    echo "building PLUMED $(tail -n 1 "$src/plumed2/VERSION.txt") with -O3 into $OUT (logs there)"
    cd "$src/plumed2"
    # CXXFLAGS left unset: PLUMED's configure then uses its default, -O3
    env -u CXXFLAGS ./configure --prefix="$OUT" --enable-modules="$MODULES" --disable-python --disable-doc \
        --enable-shared > "$OUT/configure.log"
    make -j"$JOBS" > "$OUT/make.log"
    make install > "$OUT/install.log"
    cd - > /dev/null
fi
# the module, every time: its sources may have changed since the last run
CXXFLAGS=$(make -s print-cxxflags)
g++ $CXXFLAGS -isystem "$OUT/include/plumed" plumed_module/*.cpp -shared -o "$OUT/libmolenv_plumed.so"
echo "kernel: $OUT/lib/libplumedKernel.so"
echo "module: $OUT/libmolenv_plumed.so"
