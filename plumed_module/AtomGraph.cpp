/* molenv: the atom graph of a GNN model (see AtomGraph.h). */
#include "AtomGraph.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace PLMD {
namespace molenv {

namespace {

double dot3(const double* a, const double* b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

/// molenv.frames.reduced_basis: subtract integer multiples of one cell vector from
/// another while that shortens it (pairs in the order of itertools.permutations(3, 2));
/// then a right-handed basis.  np.round rounds halves to even, as nearbyint does.
void reducedBasis(const double h[3][3], double b[3][3]) {
  for (unsigned i = 0; i < 3; ++i)
    for (unsigned j = 0; j < 3; ++j) b[i][j] = h[i][j];
  static const unsigned pairs[6][2] = {{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}};
  for (int iter = 0; iter < 1000; ++iter) {
    bool changed = false;
    for (const auto& p : pairs) {
      const unsigned i = p[0], j = p[1];
      const double m = std::nearbyint(dot3(b[i], b[j]) / dot3(b[j], b[j]));
      if (m == 0.0) continue;
      const double c[3] = {b[i][0] - m * b[j][0], b[i][1] - m * b[j][1], b[i][2] - m * b[j][2]};
      if (dot3(c, c) < dot3(b[i], b[i]) * (1 - 1e-12)) {
        for (unsigned x = 0; x < 3; ++x) b[i][x] = c[x];
        changed = true;
      }
    }
    if (!changed) break;
  }
  const double det = b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1]) - b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0]) +
                     b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0]);
  if (det < 0)
    for (unsigned x = 0; x < 3; ++x) b[2][x] = -b[2][x];
}

std::string format(const char* fmt, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, x);
  return buf;
}

}  // namespace

std::string graphCell(const double h[3][3], double cutoff, CellGeometry& cell) {
  double b[3][3];
  reducedBasis(h, b);
  cell = CellGeometry();
  cell.setBox(b);
  if (cell.height[0] > 2 * cutoff && cell.height[1] > 2 * cutoff && cell.height[2] > 2 * cutoff) return "";
  // the words of molenv.gnn.numpy_model.graph_edges
  return "the box is too small for the GNN's graph cutoff of " + format("%g", cutoff) + " A: its perpendicular heights are " +
         format("%.4g", cell.height[0]) + ", " + format("%.4g", cell.height[1]) + ", " + format("%.4g", cell.height[2]) +
         " A, and each must exceed twice the cutoff (" + format("%g", 2 * cutoff) + " A); use a larger supercell";
}

bool AtomGraphBuilder::build(const std::vector<double>& positions, const CellGeometry& cell, double cutoff, AtomGraph& g) {
  const unsigned n = positions.size() / 3, T = nthreads_;
  // the skin must keep cutoff + skin <= half the smallest height (see AtomGraph.h); the
  // list is rebuilt when the skin changes (setSkin invalidates it)
  double skin = skin_;
  if (cell.periodic) skin = std::min(skin, 0.5 * std::min({cell.height[0], cell.height[1], cell.height[2]}) - cutoff);
  if (skin != cells_.skin()) cells_.setSkin(std::max(skin, 0.0));
  if (ranges_.size() != T + 1 || ranges_.back() != n) {
    ranges_.resize(T + 1);
    for (unsigned t = 0; t <= T; ++t) ranges_[t] = static_cast<unsigned long>(n) * t / T;
  }
  active_.assign(n, 1);
  const bool rebuilt = cells_.update(positions, cell, cutoff, active_, ranges_, T, pairs_);

  // CSR by target: degrees, then both directions of every pair in list order
  g.natoms = n;
  g.coincident = false;
  g.start.assign(n + 1, 0);
  for (const auto& list : pairs_)
    for (const auto& p : list) {
      ++g.start[p.i + 1];
      ++g.start[p.j + 1];
      if (!(p.r > 0.0) && !g.coincident) {
        g.coincident = true;
        g.coincidentA = std::min(p.i, p.j);
        g.coincidentB = std::max(p.i, p.j);
      }
    }
  for (unsigned i = 0; i < n; ++i) g.start[i + 1] += g.start[i];
  const std::size_t E = g.start[n];
  std::vector<unsigned> src(E);
  std::vector<double> dd(3 * E), rr(E);
  fill_.assign(g.start.begin(), g.start.end() - 1);
  for (const auto& list : pairs_)
    for (const auto& p : list) {
      const unsigned ei = fill_[p.i]++, ej = fill_[p.j]++;
      src[ei] = p.j;
      src[ej] = p.i;
      rr[ei] = rr[ej] = p.r;
      for (unsigned x = 0; x < 3; ++x) {
        dd[3 * ei + x] = p.d[x];   // edge i <- j: r_j - r_i
        dd[3 * ej + x] = -p.d[x];  // edge j <- i: r_i - r_j
      }
    }
  // each target's edges sorted by source
  g.source.resize(E);
  g.d.resize(3 * E);
  g.r.resize(E);
  g.reverse.resize(E);
  #pragma omp parallel num_threads(T)
  {
    std::vector<std::pair<unsigned, unsigned>> row;
    #pragma omp for schedule(static)
    for (unsigned i = 0; i < n; ++i) {
      row.clear();
      for (unsigned e = g.start[i]; e < g.start[i + 1]; ++e) row.emplace_back(src[e], e);
      std::sort(row.begin(), row.end());
      for (unsigned k = 0; k < row.size(); ++k) {
        const unsigned e = g.start[i] + k, from = row[k].second;
        g.source[e] = row[k].first;
        g.r[e] = rr[from];
        for (unsigned x = 0; x < 3; ++x) g.d[3 * e + x] = dd[3 * from + x];
      }
    }
    // the opposite edge: i in the (sorted) row of the source
    #pragma omp for schedule(static)
    for (unsigned i = 0; i < n; ++i)
      for (unsigned e = g.start[i]; e < g.start[i + 1]; ++e) {
        const unsigned j = g.source[e];
        const unsigned* first = g.source.data() + g.start[j];
        const unsigned* last = g.source.data() + g.start[j + 1];
        g.reverse[e] = static_cast<unsigned>(std::lower_bound(first, last, i) - g.source.data());
      }
  }
  return rebuilt;
}

}  // namespace molenv
}  // namespace PLMD
