/* molenv: linked cells in fractional coordinates (see NeighbourCells.h). */
#include "NeighbourCells.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

void CellGeometry::setBox(const double box[3][3]) {
  periodic = true;
  for (unsigned i = 0; i < 3; ++i)
    for (unsigned j = 0; j < 3; ++j) h[i][j] = box[i][j];
  const double det = h[0][0] * (h[1][1] * h[2][2] - h[1][2] * h[2][1]) - h[0][1] * (h[1][0] * h[2][2] - h[1][2] * h[2][0]) +
                     h[0][2] * (h[1][0] * h[2][1] - h[1][1] * h[2][0]);
  hinv[0][0] = (h[1][1] * h[2][2] - h[1][2] * h[2][1]) / det;
  hinv[0][1] = (h[0][2] * h[2][1] - h[0][1] * h[2][2]) / det;
  hinv[0][2] = (h[0][1] * h[1][2] - h[0][2] * h[1][1]) / det;
  hinv[1][0] = (h[1][2] * h[2][0] - h[1][0] * h[2][2]) / det;
  hinv[1][1] = (h[0][0] * h[2][2] - h[0][2] * h[2][0]) / det;
  hinv[1][2] = (h[0][2] * h[1][0] - h[0][0] * h[1][2]) / det;
  hinv[2][0] = (h[1][0] * h[2][1] - h[1][1] * h[2][0]) / det;
  hinv[2][1] = (h[0][1] * h[2][0] - h[0][0] * h[2][1]) / det;
  hinv[2][2] = (h[0][0] * h[1][1] - h[0][1] * h[1][0]) / det;
  // column a of h^-1 is the reciprocal vector of face a; the height is 1/|it|
  for (unsigned a = 0; a < 3; ++a)
    height[a] = 1.0 / std::sqrt(hinv[0][a] * hinv[0][a] + hinv[1][a] * hinv[1][a] + hinv[2][a] * hinv[2][a]);
}

void CellGeometry::toScaled(const double* r, double* s) const {
  for (unsigned a = 0; a < 3; ++a) s[a] = r[0] * hinv[0][a] + r[1] * hinv[1][a] + r[2] * hinv[2][a];
}

void CellGeometry::faceNormal(unsigned a, double* n) const {
  if (!periodic) {
    n[0] = n[1] = n[2] = 0.0;
    n[a] = 1.0;
    return;
  }
  for (unsigned j = 0; j < 3; ++j) n[j] = hinv[j][a] * height[a];
}

void CellGeometry::difference(const double* r1, const double* r2, double* d) const {
  if (!periodic) {
    for (unsigned j = 0; j < 3; ++j) d[j] = r2[j] - r1[j];
    return;
  }
  double dr[3] = {r2[0] - r1[0], r2[1] - r1[1], r2[2] - r1[2]}, ds[3];
  toScaled(dr, ds);
  for (unsigned a = 0; a < 3; ++a) ds[a] -= std::nearbyint(ds[a]);
  for (unsigned j = 0; j < 3; ++j) d[j] = ds[0] * h[0][j] + ds[1] * h[1][j] + ds[2] * h[2][j];
}

void NeighbourCells::build(const std::vector<double>& centres, const CellGeometry& cell, double rcut,
                           const std::vector<char>& active, const std::vector<unsigned>& ranges, unsigned nthreads,
                           std::vector<std::vector<MoleculePair>>& pairs) {
  const unsigned n = centres.size() / 3;
  const double rcut2 = rcut * rcut;
  unsigned ncell[3] = {1, 1, 1};
  scaled_.resize(3 * n);
  if (cell.periodic) {
    for (unsigned i = 0; i < n; ++i) {
      double* s = &scaled_[3 * i];
      cell.toScaled(&centres[3 * i], s);
      for (unsigned a = 0; a < 3; ++a) {
        s[a] -= std::floor(s[a]);
        if (s[a] >= 1.0) s[a] = 0.0;  // -1e-17 - floor() rounds up to 1
      }
    }
    for (unsigned a = 0; a < 3; ++a) ncell[a] = std::max(1u, static_cast<unsigned>(std::floor(cell.height[a] / rcut)));
  } else {
    // bounding box of the centres, cut into cells at least rcut wide; scaled_ holds
    // the fractional position inside the bounding box
    double lo[3], hi[3];
    for (unsigned a = 0; a < 3; ++a) { lo[a] = 1e300; hi[a] = -1e300; }
    for (unsigned i = 0; i < n; ++i)
      for (unsigned a = 0; a < 3; ++a) { lo[a] = std::min(lo[a], centres[3 * i + a]); hi[a] = std::max(hi[a], centres[3 * i + a]); }
    for (unsigned a = 0; a < 3; ++a) {
      const double extent = n ? hi[a] - lo[a] : 0.0;
      ncell[a] = std::max(1u, static_cast<unsigned>(std::min(1e6, std::floor(extent / rcut))));
      for (unsigned i = 0; i < n; ++i) scaled_[3 * i + a] = extent > 0 ? (centres[3 * i + a] - lo[a]) / extent : 0.0;
    }
  }
  // never more cells than needed: a dilute system would otherwise waste memory
  while (static_cast<double>(ncell[0]) * ncell[1] * ncell[2] > 8.0 * n + 27.0) {
    unsigned a = std::max_element(ncell, ncell + 3) - ncell;
    ncell[a] = std::max(1u, ncell[a] / 2);
  }
  const unsigned total = ncell[0] * ncell[1] * ncell[2];
  cellOf_.resize(n);
  cellStart_.assign(total + 1, 0);
  for (unsigned i = 0; i < n; ++i) {
    unsigned c[3];
    for (unsigned a = 0; a < 3; ++a) c[a] = std::min(ncell[a] - 1, static_cast<unsigned>(scaled_[3 * i + a] * ncell[a]));
    cellOf_[i] = (c[0] * ncell[1] + c[1]) * ncell[2] + c[2];
    ++cellStart_[cellOf_[i] + 1];
  }
  for (unsigned c = 0; c < total; ++c) cellStart_[c + 1] += cellStart_[c];
  cellMembers_.resize(n);
  {
    std::vector<unsigned> fill(cellStart_.begin(), cellStart_.end() - 1);
    for (unsigned i = 0; i < n; ++i) cellMembers_[fill[cellOf_[i]]++] = i;
  }

  const unsigned nlists = ranges.size() - 1;
  pairs.resize(nlists);
  #pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (unsigned t = 0; t < nlists; ++t) {
    std::vector<MoleculePair>& list = pairs[t];
    list.clear();
    std::vector<unsigned> stencil;
    for (unsigned i = ranges[t]; i < ranges[t + 1]; ++i) {
      // distinct neighbour cells (with 1 or 2 cells along a direction, +1 and -1 coincide)
      const unsigned ci = cellOf_[i];
      const int c[3] = {static_cast<int>(ci / (ncell[1] * ncell[2])), static_cast<int>((ci / ncell[2]) % ncell[1]),
                        static_cast<int>(ci % ncell[2])};
      int offs[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
      unsigned noff[3];
      for (unsigned a = 0; a < 3; ++a) {
        noff[a] = 0;
        const int na = ncell[a];
        for (int o = -1; o <= 1; ++o) {
          int x = c[a] + o;
          if (cell.periodic) x = (x + na) % na;
          else if (x < 0 || x >= na) continue;
          bool seen = false;
          for (unsigned q = 0; q < noff[a]; ++q) seen |= offs[a][q] == x;
          if (!seen) offs[a][noff[a]++] = x;
        }
      }
      stencil.clear();
      for (unsigned p = 0; p < noff[0]; ++p)
        for (unsigned q = 0; q < noff[1]; ++q)
          for (unsigned w = 0; w < noff[2]; ++w) stencil.push_back((offs[0][p] * ncell[1] + offs[1][q]) * ncell[2] + offs[2][w]);
      std::sort(stencil.begin(), stencil.end());  // fixed visiting order
      const double* ri = &centres[3 * i];
      const double* si = &scaled_[3 * i];
      for (unsigned cj : stencil) {
        for (unsigned m = cellStart_[cj]; m < cellStart_[cj + 1]; ++m) {
          const unsigned j = cellMembers_[m];
          if (j == i || (i < j) != (((i + j) & 1u) != 0)) continue;  // each unordered pair once
          if (!active[i] && !active[j]) continue;
          MoleculePair pr;
          pr.i = i;
          pr.j = j;
          if (cell.periodic) {
            // fractional coordinates are wrapped into [0,1): the difference is in (-1,1)
            // and the minimum image needs no rounding call
            const double* sj = &scaled_[3 * j];
            double ds[3];
            for (unsigned a = 0; a < 3; ++a) {
              const double x = sj[a] - si[a];
              ds[a] = x > 0.5 ? x - 1.0 : (x < -0.5 ? x + 1.0 : x);
            }
            for (unsigned y = 0; y < 3; ++y) pr.d[y] = ds[0] * cell.h[0][y] + ds[1] * cell.h[1][y] + ds[2] * cell.h[2][y];
          } else {
            for (unsigned y = 0; y < 3; ++y) pr.d[y] = centres[3 * j + y] - ri[y];
          }
          const double r2 = pr.d[0] * pr.d[0] + pr.d[1] * pr.d[1] + pr.d[2] * pr.d[2];
          if (r2 >= rcut2) continue;
          pr.r = std::sqrt(r2);
          list.push_back(pr);
        }
      }
    }
  }
}

}  // namespace molenv
}  // namespace PLMD
