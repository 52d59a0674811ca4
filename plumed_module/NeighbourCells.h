/* molenv: O(N) neighbour search between molecule centres with linked cells built in
   scaled (fractional) coordinates, so that the same code serves orthorhombic,
   triclinic and non-periodic systems.

   Why not PLMD::LinkCells: its interface changed between PLUMED 2.9, 2.10 and 2.11;
   this small cell list keeps the module compilable against a user's older PLUMED.

   Correctness of the minimum image: the action requires every perpendicular cell
   height to be at least 2*rcut.  Two centres closer than rcut then differ by at most
   rcut/height <= 1/2 in every fractional coordinate, so (i) the cell stencil +-1
   along each cell vector with cells at least rcut high finds every such pair, and
   (ii) wrapping the fractional difference into [-1/2, 1/2) gives exactly the image
   within rcut (if there is one, it is unique). */
#ifndef __MOLENV_NeighbourCells_h
#define __MOLENV_NeighbourCells_h

#include <vector>

namespace PLMD {
namespace molenv {

/// Simulation cell in Angstrom; rows of h are the cell vectors (PLUMED convention).
struct CellGeometry {
  bool periodic = false;
  double h[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  double hinv[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  double height[3] = {0, 0, 0};  ///< perpendicular heights (distance between opposite faces)

  /// Periodic cell from the box rows; computes the inverse and the heights.
  void setBox(const double box[3][3]);
  /// Fractional coordinates s = r h^-1 (row vector), not wrapped.
  void toScaled(const double* r, double* s) const;
  /// Unit normal of the cell face spanned by the two cell vectors other than `a`.
  void faceNormal(unsigned a, double* n) const;
  /// Minimum-image difference r2 - r1 (exact when |r2-r1|_min < min height / 2).
  void difference(const double* r1, const double* r2, double* d) const;
};

/// One unordered pair of molecules closer than the cutoff; d = r_j - r_i (Angstrom).
struct MoleculePair {
  unsigned i, j;
  double d[3];
  double r;
};

class NeighbourCells {
public:
  /// Find all pairs of centres closer than rcut, each unordered pair once, skipping
  /// pairs of two inactive molecules.  Pairs are distributed over `ranges.size()-1`
  /// lists: list t holds the pairs owned by molecules ranges[t] <= i < ranges[t+1]
  /// (ownership alternates between the lower and the higher index by the parity of
  /// i+j, which balances the work of the ranges).  Lists are filled in parallel with
  /// `nthreads` OpenMP threads; their content does not depend on nthreads.
  void build(const std::vector<double>& centres, const CellGeometry& cell, double rcut, const std::vector<char>& active,
             const std::vector<unsigned>& ranges, unsigned nthreads, std::vector<std::vector<MoleculePair>>& pairs);

private:
  std::vector<unsigned> cellOf_, cellStart_, cellMembers_;
  std::vector<double> scaled_;
};

}  // namespace molenv
}  // namespace PLMD

#endif
