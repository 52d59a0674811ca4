/* molenv: moving data between per-molecule rows and the pair-column blocks of the
   symmetry-function kernels.

   The kernels (SymmetryFunctions) work on blocks of pairs stored by columns,
   x[q*kBlock + b] for term q of pair b, so that their loops over pairs vectorise.  The
   per-molecule data (descriptors G, contracted Jacobian rows) are rows of S contiguous
   numbers.  Going from one layout to the other is a transposition; done element by
   element it costs as much as the kernels themselves, so on CPUs with AVX2 it is done in
   4x4 tiles in registers (a scalar version is used elsewhere and for the tails).
   PairBlock gathers the pairs of a block from a candidate list (NeighbourCells) with their
   geometry and the kernels' inputs (distances, cosines of the unit vectors). */
#ifndef __MOLENV_PairBlocks_h
#define __MOLENV_PairBlocks_h

#include "MoleculeFrame.h"
#include "SymmetryFunctions.h"

#include <cstddef>
#include <vector>

namespace PLMD {
namespace molenv {
namespace pairblocks {

constexpr unsigned B = SymmetryFunctions::kBlock;

/// A block of up to B pairs with their geometry, by columns: pair b is (i[b], j[b]),
/// d = r_j - r_i = (dx[b], dy[b], dz[b]), r[b] = |d|, cosTheta[s*B+b].
class PairBlock {
public:
  explicit PairBlock(unsigned nvec) : cosTheta(static_cast<std::size_t>(nvec) * B + 1) {}

  /// The next pairs of the candidates list[pos..) that are closer than rcut and have a
  /// molecule that needs descriptors (frame.computed), in list order; advances pos.
  /// Returns false when there are none left.
  bool fill(const MoleculeFrame& f, const std::vector<PairIndex>& list, std::size_t& pos, double rcut);

  unsigned n = 0;
  unsigned i[B], j[B];
  double dx[B], dy[B], dz[B], r[B];
  std::vector<double> cosTheta;
};

/// C[q*B+b] = rowI[b][q] + rowJ[b][q] for b < nb, q < S.
void sumRowsToColumns(unsigned nb, unsigned S, const double* const* rowI, const double* const* rowJ, double* C);

/// rows[b*S+q] = t[q*B+b] for b < nb, q < S.
void columnsToRows(unsigned nb, unsigned S, const double* t, double* rows);

/// true when the AVX2 versions are used (CPU support checked once)
bool usingAvx2();

}  // namespace pairblocks
}  // namespace molenv
}  // namespace PLMD

#endif
