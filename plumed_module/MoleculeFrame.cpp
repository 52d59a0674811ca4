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
  this->cell = cell;
  pairPos.resize(3 * N);
  unsigned zeroVector = N;
  #pragma omp parallel for num_threads(nthreads)
  for (unsigned m = 0; m < N; ++m) {
    const Vector& c = positions[m * L + slots.centre];
    for (unsigned j = 0; j < 3; ++j) centres[3 * m + j] = c[j] * toA;
    if (cell.periodic) cell.toScaled(&centres[3 * m], &pairPos[3 * m]);
    else std::copy_n(&centres[3 * m], 3, &pairPos[3 * m]);
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

void MoleculeFrame::pairGeometry(std::size_t n, const PairIndex* p, double* dx, double* dy, double* dz, double* r2) const {
  constexpr std::size_t kChunk = 64;
  double ax[kChunk], ay[kChunk], az[kChunk];
  for (std::size_t q0 = 0; q0 < n; q0 += kChunk) {
    const std::size_t nq = std::min(kChunk, n - q0);
    for (std::size_t q = 0; q < nq; ++q) {
      const double* pi = &pairPos[3 * static_cast<std::size_t>(p[q0 + q].i)];
      const double* pj = &pairPos[3 * static_cast<std::size_t>(p[q0 + q].j)];
      ax[q] = pj[0] - pi[0];
      ay[q] = pj[1] - pi[1];
      az[q] = pj[2] - pi[2];
    }
    pairDifferences(cell.periodic, cell.h, nq, ax, ay, az, dx + q0, dy + q0, dz + q0, r2 + q0);
  }
}

}  // namespace molenv
}  // namespace PLMD
