/* molenv: per-step geometry of the molecules (see MoleculeFrame.h). */
#include "MoleculeFrame.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

AtomSlots AtomSlots::ofModel(const Model& model, std::vector<unsigned>& positions) {
  positions.assign(model.centre.begin(), model.centre.end());
  for (const auto& v : model.vectors) positions.insert(positions.end(), v.atoms.begin(), v.atoms.begin() + (v.normal ? 4 : 2));
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  auto slot = [&](unsigned pos) { return static_cast<unsigned>(std::lower_bound(positions.begin(), positions.end(), pos) - positions.begin()); };
  AtomSlots slots;
  slots.nlocal = positions.size();
  for (unsigned pos : model.centre) slots.centre.push_back(slot(pos));
  for (const auto& v : model.vectors) {
    slots.vecA.push_back(slot(v.atoms[0]));
    slots.vecB.push_back(slot(v.atoms[1]));
    slots.vecC.push_back(v.normal ? slot(v.atoms[2]) : 0);
    slots.vecD.push_back(v.normal ? slot(v.atoms[3]) : 0);
    slots.normal.push_back(v.normal);
  }
  return slots;
}

unsigned MoleculeFrame::update(const std::vector<Vector>& positions, const AtomSlots& slots, double toA, const CellGeometry& cell,
                               const SlabRegion& region, bool needAll, unsigned nthreads) {
  const unsigned N = positions.size() / slots.nlocal, V = slots.vecA.size(), L = slots.nlocal;
  nmol = N;
  nvec = V;
  centres.resize(3 * N);
  vraw.resize(3 * N * V);
  unitv.resize(3 * N * V);
  vlen.resize(N * V);
  if (std::find(slots.normal.begin(), slots.normal.end(), 1) != slots.normal.end()) arms.resize(6 * N * V);
  const unsigned NC = slots.centre.size();
  weight.assign(N, 1.0);
  dweight.assign(3 * N, 0.0);
  rbox.resize(3 * N);
  active.assign(N, 1);
  computed.assign(N, 1);
  unsigned zeroVector = N;
  #pragma omp parallel for num_threads(nthreads)
  for (unsigned m = 0; m < N; ++m) {
    const Vector& c = positions[m * L + slots.centre[0]];
    for (unsigned j = 0; j < 3; ++j) centres[3 * m + j] = c[j] * toA;
    if (NC > 1) {  // centroid: the other atoms at their minimum image from the first
      const double r0[3] = {centres[3 * m], centres[3 * m + 1], centres[3 * m + 2]};
      double sum[3] = {0.0, 0.0, 0.0};
      for (unsigned k = 1; k < NC; ++k) {
        const Vector& a = positions[m * L + slots.centre[k]];
        const double ra[3] = {a[0] * toA, a[1] * toA, a[2] * toA};
        double d[3];
        cell.difference(r0, ra, d);
        for (unsigned j = 0; j < 3; ++j) sum[j] += d[j];
      }
      for (unsigned j = 0; j < 3; ++j) centres[3 * m + j] = r0[j] + sum[j] / NC;
    }
    for (unsigned s = 0; s < V; ++s) {
      const Vector& a = positions[m * L + slots.vecA[s]];
      const Vector& b = positions[m * L + slots.vecB[s]];
      // intramolecular vectors with the minimum image (molecules may be split across the
      // boundary in wrapped input); exact since they are shorter than half the smallest
      // cell height (the cell is at least 2 rmax high)
      const double ra[3] = {a[0] * toA, a[1] * toA, a[2] * toA}, rb[3] = {b[0] * toA, b[1] * toA, b[2] * toA};
      double* vr = &vraw[3 * (m * V + s)];
      cell.difference(ra, rb, vr);
      if (slots.normal[s]) {  // the normal of the arms r(b) - r(a) and r(d) - r(c)
        const Vector& c2 = positions[m * L + slots.vecC[s]];
        const Vector& d2 = positions[m * L + slots.vecD[s]];
        const double rc[3] = {c2[0] * toA, c2[1] * toA, c2[2] * toA}, rd[3] = {d2[0] * toA, d2[1] * toA, d2[2] * toA};
        double* arm = &arms[6 * (m * V + s)];
        std::copy_n(vr, 3, arm);
        cell.difference(rc, rd, arm + 3);
        vr[0] = arm[1] * arm[5] - arm[2] * arm[4];
        vr[1] = arm[2] * arm[3] - arm[0] * arm[5];
        vr[2] = arm[0] * arm[4] - arm[1] * arm[3];
      }
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
