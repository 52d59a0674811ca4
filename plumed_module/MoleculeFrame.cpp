/* molenv: per-step geometry of the molecules (see MoleculeFrame.h). */
#include "MoleculeFrame.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

unsigned MoleculeFrame::update(const std::vector<Vector>& positions, const AtomSlots& slots, double toA, const CellGeometry& cell,
                               const SlabRegion& region, bool needAll, unsigned nthreads) {
  const unsigned N = positions.size() / slots.nlocal, V = slots.vecA.size(), L = slots.nlocal;
  nmol = N;
  nvec = V;
  centres.resize(3 * N);
  vraw.resize(3 * N * V);
  unitv.resize(3 * N * V);
  vlen.resize(N * V);
  weight.assign(N, 1.0);
  dweight.assign(3 * N, 0.0);
  rbox.resize(3 * N);
  active.assign(N, 1);
  computed.assign(N, 1);
  unsigned zeroVector = N;
  #pragma omp parallel for num_threads(nthreads)
  for (unsigned m = 0; m < N; ++m) {
    const Vector& c = positions[m * L + slots.centre];
    for (unsigned j = 0; j < 3; ++j) centres[3 * m + j] = c[j] * toA;
    for (unsigned s = 0; s < V; ++s) {
      const Vector& a = positions[m * L + slots.vecA[s]];
      const Vector& b = positions[m * L + slots.vecB[s]];
      // intramolecular vectors with the minimum image (molecules may be split across the
      // boundary in wrapped input); exact since they are shorter than half the smallest
      // cell height (the cell is at least 2 rmax high)
      const double ra[3] = {a[0] * toA, a[1] * toA, a[2] * toA}, rb[3] = {b[0] * toA, b[1] * toA, b[2] * toA};
      double* vr = &vraw[3 * (m * V + s)];
      cell.difference(ra, rb, vr);
      const double len = std::sqrt(vr[0] * vr[0] + vr[1] * vr[1] + vr[2] * vr[2]);
      vlen[m * V + s] = len;
      if (!(len > 0.0)) {
        #pragma omp critical
        zeroVector = std::min(zeroVector, m);
        continue;
      }
      for (unsigned j = 0; j < 3; ++j) unitv[3 * (m * V + s) + j] = vr[j] / len;
    }
    if (region.enabled) {
      weight[m] = region.weight(cell, &centres[3 * m], &dweight[3 * m], &rbox[3 * m]);
      active[m] = weight[m] > 0.0;
      computed[m] = active[m] || needAll;
    }
  }
  return zeroVector;
}

}  // namespace molenv
}  // namespace PLMD
