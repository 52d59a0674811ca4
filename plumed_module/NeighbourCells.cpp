/* molenv: linked cells in fractional coordinates (see NeighbourCells.h). */
#include "NeighbourCells.h"
#include "FastMath.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

namespace {

/// Squared distances (and difference vectors) of one centre to n candidates given by
/// contiguous coordinates: periodic: fractional coordinates, minimum image by rounding
/// the fractional difference, then Cartesian; otherwise plain Cartesian differences.
MOLENV_CLONES void candidateDistances(bool periodic, const double (&h)[3][3], double xi, double yi, double zi, std::size_t n,
                                      const double* __restrict x, const double* __restrict y, const double* __restrict z,
                                      double* __restrict dx, double* __restrict dy, double* __restrict dz, double* __restrict r2) {
  if (periodic) {
    constexpr double kRound = fastmath::kRound;  // (v + kRound) - kRound rounds to the nearest integer
    const double h00 = h[0][0], h01 = h[0][1], h02 = h[0][2], h10 = h[1][0], h11 = h[1][1], h12 = h[1][2], h20 = h[2][0],
                 h21 = h[2][1], h22 = h[2][2];
    for (std::size_t q = 0; q < n; ++q) {
      double a0 = x[q] - xi, a1 = y[q] - yi, a2 = z[q] - zi;
      a0 -= (a0 + kRound) - kRound;
      a1 -= (a1 + kRound) - kRound;
      a2 -= (a2 + kRound) - kRound;
      const double u = a0 * h00 + a1 * h10 + a2 * h20;
      const double v = a0 * h01 + a1 * h11 + a2 * h21;
      const double w = a0 * h02 + a1 * h12 + a2 * h22;
      dx[q] = u;
      dy[q] = v;
      dz[q] = w;
      r2[q] = u * u + v * v + w * w;
    }
  } else {
    for (std::size_t q = 0; q < n; ++q) {
      const double u = x[q] - xi, v = y[q] - yi, w = z[q] - zi;
      dx[q] = u;
      dy[q] = v;
      dz[q] = w;
      r2[q] = u * u + v * v + w * w;
    }
  }
}

/// One thread's pair list, filled in a vector object of the thread's own: the vector
/// objects of the lists (begin, end, capacity) lie side by side in PairLists, and a
/// push_back into them would write to a cache line that the other threads write too
/// (false sharing).  Takes the list's storage (cleared, capacity kept) and gives it back.
struct ThreadList {
  std::vector<MoleculePair>& owner;
  std::vector<MoleculePair> pairs;
  explicit ThreadList(std::vector<MoleculePair>& list) : owner(list) {
    pairs.swap(owner);
    pairs.clear();
  }
  ~ThreadList() { pairs.swap(owner); }
};

/// Appends the pair (i, j) of a candidate q of candidateDistances().
inline void addPair(std::vector<MoleculePair>& list, unsigned i, unsigned j, const double* dx, const double* dy, const double* dz,
                    const double* r2, std::size_t q) {
  MoleculePair pr;
  pr.i = i;
  pr.j = j;
  pr.d[0] = dx[q];
  pr.d[1] = dy[q];
  pr.d[2] = dz[q];
  pr.r = std::sqrt(r2[q]);
  list.push_back(pr);
}

}  // namespace

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

bool NeighbourCells::update(const std::vector<double>& centres, const CellGeometry& cell, double rcut, const std::vector<char>& active,
                            const std::vector<unsigned>& ranges, unsigned nthreads, std::vector<std::vector<MoleculePair>>& pairs) {
  if (!(skin_ > 0.0)) {
    build(centres, cell, rcut, &active, ranges, nthreads, pairs);
    return true;
  }
  const unsigned n = centres.size() / 3;
  bool rebuild = !valid_ || refCentres_.size() != centres.size() || refRcut_ != rcut || refRanges_ != ranges ||
                 refCell_.periodic != cell.periodic;
  for (unsigned i = 0; i < 3 && !rebuild; ++i)
    for (unsigned j = 0; j < 3; ++j) rebuild |= refCell_.h[i][j] != cell.h[i][j];
  if (!rebuild) {
    // largest displacement of a centre since the build (minimum image: centres may have
    // been wrapped back into the cell)
    const double limit2 = 0.25 * skin_ * skin_;
    bool moved = false;
    #pragma omp parallel for num_threads(nthreads) reduction(|| : moved)
    for (unsigned m = 0; m < n; ++m) {
      double d[3];
      cell.difference(&refCentres_[3 * m], &centres[3 * m], d);
      moved = moved || (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] > limit2);
    }
    rebuild = moved;
  }
  if (rebuild) {
    build(centres, cell, rcut + skin_, nullptr, ranges, nthreads, wide_);
    verlet_.resize(wide_.size());
    for (std::size_t t = 0; t < wide_.size(); ++t) {
      verlet_[t].resize(2 * wide_[t].size());
      for (std::size_t q = 0; q < wide_[t].size(); ++q) {
        verlet_[t][2 * q] = wide_[t][q].i;
        verlet_[t][2 * q + 1] = wide_[t][q].j;
      }
      std::vector<MoleculePair>().swap(wide_[t]);
    }
    refCentres_ = centres;
    refCell_ = cell;
    refRcut_ = rcut;
    refRanges_ = ranges;
    valid_ = true;
  }
  // distances of the listed pairs now; keep those within rcut
  const double rcut2 = rcut * rcut;
  scaled_.resize(3 * n);
  if (cell.periodic)
    for (unsigned m = 0; m < n; ++m) cell.toScaled(&centres[3 * m], &scaled_[3 * m]);
  pairs.resize(verlet_.size());
  const bool periodic = cell.periodic;
  const double* pos = periodic ? scaled_.data() : centres.data();
  double h[3][3];
  for (unsigned i = 0; i < 3; ++i)
    for (unsigned j = 0; j < 3; ++j) h[i][j] = cell.h[i][j];
  #pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (unsigned t = 0; t < verlet_.size(); ++t) {
    ThreadList list(pairs[t]);
    const std::vector<unsigned>& v = verlet_[t];
    // chunks of pairs: gather the coordinate differences, then one vectorised loop for
    // the minimum image and the distances
    constexpr std::size_t kChunk = 256;
    double ax[kChunk], ay[kChunk], az[kChunk], dx[kChunk], dy[kChunk], dz[kChunk], r2[kChunk];
    for (std::size_t q0 = 0; q0 < v.size(); q0 += 2 * kChunk) {
      const std::size_t nq = std::min(kChunk, (v.size() - q0) / 2);
      for (std::size_t q = 0; q < nq; ++q) {
        const double* pi = pos + 3 * static_cast<std::size_t>(v[q0 + 2 * q]);
        const double* pj = pos + 3 * static_cast<std::size_t>(v[q0 + 2 * q + 1]);
        ax[q] = pj[0] - pi[0];
        ay[q] = pj[1] - pi[1];
        az[q] = pj[2] - pi[2];
      }
      candidateDistances(periodic, h, 0.0, 0.0, 0.0, nq, ax, ay, az, dx, dy, dz, r2);
      for (std::size_t q = 0; q < nq; ++q) {
        if (!(r2[q] < rcut2)) continue;
        const unsigned i = v[q0 + 2 * q], j = v[q0 + 2 * q + 1];
        if (!active[i] && !active[j]) continue;
        addPair(list.pairs, i, j, dx, dy, dz, r2, q);
      }
    }
  }
  return rebuild;
}

void NeighbourCells::build(const std::vector<double>& centres, const CellGeometry& cell, double rcut,
                           const std::vector<char>* active, const std::vector<unsigned>& ranges, unsigned nthreads,
                           std::vector<std::vector<MoleculePair>>& pairs) {
  const unsigned n = centres.size() / 3;
  const double rcut2 = rcut * rcut;
  const bool periodic = cell.periodic;
  unsigned ncell[3] = {1, 1, 1};
  double thick[3] = {0, 0, 0};  // extent of the binned domain perpendicular to each cell face
  scaled_.resize(3 * n);
  if (periodic) {
    for (unsigned i = 0; i < n; ++i) {
      double* s = &scaled_[3 * i];
      cell.toScaled(&centres[3 * i], s);
      for (unsigned a = 0; a < 3; ++a) {
        s[a] -= std::floor(s[a]);
        if (s[a] >= 1.0) s[a] = 0.0;  // -1e-17 - floor() rounds up to 1
      }
    }
    for (unsigned a = 0; a < 3; ++a) thick[a] = cell.height[a];
  } else {
    // bounding box of the centres; scaled_ holds the fractional position inside it
    double lo[3], hi[3];
    for (unsigned a = 0; a < 3; ++a) { lo[a] = 1e300; hi[a] = -1e300; }
    for (unsigned i = 0; i < n; ++i)
      for (unsigned a = 0; a < 3; ++a) { lo[a] = std::min(lo[a], centres[3 * i + a]); hi[a] = std::max(hi[a], centres[3 * i + a]); }
    for (unsigned a = 0; a < 3; ++a) {
      thick[a] = n ? hi[a] - lo[a] : 0.0;
      for (unsigned i = 0; i < n; ++i) scaled_[3 * i + a] = thick[a] > 0 ? (centres[3 * i + a] - lo[a]) / thick[a] : 0.0;
    }
  }
  // cells about rcut/2 thick ...
  for (unsigned a = 0; a < 3; ++a) ncell[a] = std::max(1u, static_cast<unsigned>(std::min(1e6, std::floor(thick[a] / (0.5 * rcut)))));
  // ... but never many more cells than molecules: a dilute system would waste memory
  while (static_cast<double>(ncell[0]) * ncell[1] * ncell[2] > 2.0 * n + 125.0) {
    unsigned a = std::max_element(ncell, ncell + 3) - ncell;
    ncell[a] = std::max(1u, ncell[a] / 2);
  }
  int reach[3];
  bool halfStencil = true;  // every offset of the stencil reaches a distinct cell
  for (unsigned a = 0; a < 3; ++a) {
    reach[a] = (ncell[a] == 1 || !(thick[a] > 0)) ? 0 : static_cast<int>(std::ceil(rcut * ncell[a] / thick[a]));
    reach[a] = std::min<int>(reach[a], ncell[a]);
    if (periodic && ncell[a] < 2u * reach[a] + 1u) halfStencil = false;
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
  slotOf_.resize(n);
  sorted_.resize(3 * static_cast<std::size_t>(n));
  {
    std::vector<unsigned> fill(cellStart_.begin(), cellStart_.end() - 1);
    for (unsigned i = 0; i < n; ++i) {
      const unsigned k = fill[cellOf_[i]]++;
      cellMembers_[k] = i;
      slotOf_[i] = k;
      // periodic: fractional coordinates; otherwise Cartesian (differences taken directly)
      for (unsigned a = 0; a < 3; ++a) sorted_[a * static_cast<std::size_t>(n) + k] = periodic ? scaled_[3 * i + a] : centres[3 * i + a];
    }
  }
  const double* sx = sorted_.data();
  const double* sy = sx + n;
  const double* sz = sy + n;
  // stencil offsets: with distinct cells, the lexicographically positive half (the own
  // cell is handled separately); otherwise all of them
  std::vector<int> offsets;
  for (int ox = -reach[0]; ox <= reach[0]; ++ox)
    for (int oy = -reach[1]; oy <= reach[1]; ++oy)
      for (int oz = -reach[2]; oz <= reach[2]; ++oz) {
        const bool positive = ox > 0 || (ox == 0 && (oy > 0 || (oy == 0 && oz > 0)));
        if (halfStencil ? positive : true) { offsets.push_back(ox); offsets.push_back(oy); offsets.push_back(oz); }
      }
  const unsigned noff = offsets.size() / 3;
  double h[3][3];
  for (unsigned i = 0; i < 3; ++i)
    for (unsigned j = 0; j < 3; ++j) h[i][j] = cell.h[i][j];

  // wrapped (periodic) or clipped (-1: outside) neighbour cell coordinate along each axis,
  // indexed by cell + offset + reach: no divisions in the loop over molecules
  std::vector<int> wrapped[3];
  for (unsigned a = 0; a < 3; ++a) {
    const int na = ncell[a];
    for (int x = -reach[a]; x < na + reach[a]; ++x) wrapped[a].push_back(periodic ? ((x % na) + na) % na : (x >= 0 && x < na ? x : -1));
  }

  const unsigned nlists = ranges.size() - 1;
  pairs.resize(nlists);
  #pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
  for (unsigned t = 0; t < nlists; ++t) {
    ThreadList list(pairs[t]);
    std::vector<unsigned> cand, cells;
    std::vector<double> cx, cy, cz, dx, dy, dz, r2;
    for (unsigned i = ranges[t]; i < ranges[t + 1]; ++i) {
      const unsigned ci = cellOf_[i];
      const int c[3] = {static_cast<int>(ci / (ncell[1] * ncell[2])), static_cast<int>((ci / ncell[2]) % ncell[1]),
                        static_cast<int>(ci % ncell[2])};
      cells.clear();
      for (unsigned o = 0; o < noff; ++o) {
        const int x = wrapped[0][c[0] + offsets[3 * o] + reach[0]];
        const int y = wrapped[1][c[1] + offsets[3 * o + 1] + reach[1]];
        const int z = wrapped[2][c[2] + offsets[3 * o + 2] + reach[2]];
        if (x < 0 || y < 0 || z < 0) continue;
        cells.push_back((x * ncell[1] + y) * ncell[2] + z);
      }
      if (!halfStencil) {
        // small periodic box: several offsets reach the same cell; visit each cell once and
        // keep one of the two visits of every pair by the parity of i+j
        std::sort(cells.begin(), cells.end());
        cells.erase(std::unique(cells.begin(), cells.end()), cells.end());
      }
      // candidate slots (positions in cell order) and their coordinates, contiguous
      cand.clear();
      if (halfStencil)
        for (unsigned k = slotOf_[i] + 1; k < cellStart_[ci + 1]; ++k) cand.push_back(k);
      for (unsigned cj : cells)
        for (unsigned k = cellStart_[cj]; k < cellStart_[cj + 1]; ++k) cand.push_back(k);
      const std::size_t nc = cand.size();
      cx.resize(nc);
      cy.resize(nc);
      cz.resize(nc);
      dx.resize(nc);
      dy.resize(nc);
      dz.resize(nc);
      r2.resize(nc);
      for (std::size_t q = 0; q < nc; ++q) {
        cx[q] = sx[cand[q]];
        cy[q] = sy[cand[q]];
        cz[q] = sz[cand[q]];
      }
      const std::size_t si = slotOf_[i];
      candidateDistances(periodic, h, sx[si], sy[si], sz[si], nc, cx.data(), cy.data(), cz.data(), dx.data(), dy.data(), dz.data(), r2.data());
      for (std::size_t q = 0; q < nc; ++q) {
        if (!(r2[q] < rcut2)) continue;
        const unsigned j = cellMembers_[cand[q]];
        if (j == i) continue;
        if (!halfStencil && (i < j) != (((i + j) & 1u) != 0)) continue;  // each unordered pair once
        if (active && !(*active)[i] && !(*active)[j]) continue;
        addPair(list.pairs, i, j, dx.data(), dy.data(), dz.data(), r2.data(), q);
      }
    }
  }
}

}  // namespace molenv
}  // namespace PLMD
