#!/usr/bin/env bash
# The PLUMED sources of the kernel that `make install` bundles: the sdist of the `hillclimber`
# release pinned in molenv.plumed.kernel (HILLCLIMBER), unpacked into DEST/plumed2. Shared by
# bench/optimised_kernel.sh (-O3 build) and bench/mpi_kernel.sh (MPI build).
#
#   bench/plumed_sources.sh DEST        # does nothing when DEST/plumed2/configure is there
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=$(realpath -m "$1")
[ -x "$DEST/plumed2/configure" ] && exit 0
version=$(PYTHONPATH=py "$PY" -c "from molenv.plumed.kernel import HILLCLIMBER; print(HILLCLIMBER.split('==')[1])")
echo "fetching the sdist of hillclimber $version (the PLUMED sources of the bundled kernel)"
mkdir -p "$DEST"
"$PY" - "$version" "$DEST" <<'PYTHON'
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
