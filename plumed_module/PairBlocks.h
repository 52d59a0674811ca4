/* molenv: moving data between per-molecule rows and the pair-column blocks of the
   symmetry-function kernels.

   The kernels (SymmetryFunctions) work on blocks of pairs stored by columns,
   x[q*kBlock + b] for term q of pair b, so that their loops over pairs vectorise.  The
   per-molecule data (descriptors G, contracted Jacobian rows) are rows of S contiguous
   numbers.  Going from one layout to the other is a transposition; done element by
   element it costs as much as the kernels themselves, so on CPUs with AVX2 it is done in
   4x4 tiles in registers (a scalar version is used elsewhere and for the tails).
   pairColumns() fills a block's inputs (distances, cosines of the unit vectors). */
#ifndef __MOLENV_PairBlocks_h
#define __MOLENV_PairBlocks_h

#include "MoleculeFrame.h"
#include "SymmetryFunctions.h"

namespace PLMD {
namespace molenv {
namespace pairblocks {

constexpr unsigned B = SymmetryFunctions::kBlock;

/// The kernels' inputs for the nb <= B pairs p[0..nb): r[b] and cosTheta[s*B+b].
inline void pairColumns(const MoleculeFrame& f, const MoleculePair* p, unsigned nb, double* r, double* cosTheta) {
  for (unsigned b = 0; b < nb; ++b) {
    r[b] = p[b].r;
    for (unsigned s = 0; s < f.nvec; ++s) cosTheta[s * B + b] = f.cosine(p[b], s);
  }
}

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
