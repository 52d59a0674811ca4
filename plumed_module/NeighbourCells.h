/* molenv: O(N) neighbour search between molecule centres with linked cells built in
   scaled (fractional) coordinates, so that the same code serves orthorhombic,
   triclinic and non-periodic systems.

   Why not PLMD::LinkCells: its interface changed between PLUMED 2.9, 2.10 and 2.11;
   this small cell list keeps the module compilable against a user's older PLUMED.

   Correctness of the minimum image: the action requires every perpendicular cell
   height to be at least 2*rcut.  Two centres closer than rcut then differ by at most
   rcut/height <= 1/2 in every fractional coordinate, so (i) a stencil of
   +-reach[a] cells along cell vector a, reach[a] = ceil(rcut * ncell[a] / height[a]),
   finds every such pair, and (ii) wrapping the fractional difference into [-1/2, 1/2)
   gives exactly the image within rcut (if there is one, it is unique).

   Cost: cells are about rcut/2 thick, so the stencil (5x5x5 cells) holds ~3.7 times
   the volume of the cutoff sphere instead of ~6.4 times for cells rcut thick (3x3x3),
   and each unordered pair is examined once: a molecule scans the later molecules of
   its own cell and all molecules of the cells at the lexicographically positive half of
   the offsets, with the coordinates stored contiguously in cell order so that the
   distances of all candidates of a molecule are computed in one vectorised loop.  When
   a periodic direction has too few cells for the offsets to reach distinct cells
   (small boxes), the full stencil is scanned with de-duplicated cells instead, and a
   parity rule picks one of the two visits of each pair. */
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
  /// Verlet skin (Angstrom): update() lists the pairs closer than rcut + skin and reuses
  /// that list until a centre has moved by more than skin/2 (minimum image) since it was
  /// built, or the cell, the cutoff or the ranges change.  0: search at every step.
  void setSkin(double skin) { skin_ = skin; valid_ = false; }
  double skin() const { return skin_; }

  /// Pairs of centres closer than rcut (each unordered pair once, pairs of two inactive
  /// molecules skipped) into `pairs`, distributed like build(), from the Verlet list
  /// (rebuilt when needed).  Returns true when the list was rebuilt.
  bool update(const std::vector<double>& centres, const CellGeometry& cell, double rcut, const std::vector<char>& active,
              const std::vector<unsigned>& ranges, unsigned nthreads, std::vector<std::vector<MoleculePair>>& pairs);

  /// Find all pairs of centres closer than rcut, each unordered pair once, skipping
  /// pairs of two inactive molecules (all pairs if `active` is null).  Pairs are
  /// distributed over `ranges.size()-1` lists: list t holds the pairs owned by
  /// molecules ranges[t] <= i < ranges[t+1] (the owner is the molecule whose scan finds
  /// the pair: the same number of neighbour cells per molecule, which balances the work
  /// of the ranges).  Lists are filled in parallel with `nthreads` OpenMP threads; their
  /// content does not depend on nthreads.
  void build(const std::vector<double>& centres, const CellGeometry& cell, double rcut, const std::vector<char>* active,
             const std::vector<unsigned>& ranges, unsigned nthreads, std::vector<std::vector<MoleculePair>>& pairs);

private:
  std::vector<unsigned> cellOf_, cellStart_, cellMembers_, slotOf_;
  std::vector<double> scaled_, sorted_;  ///< fractional coordinates; sorted_: by cell, [x..., y..., z...]
  // Verlet list
  double skin_ = 0.0;
  bool valid_ = false;
  std::vector<std::vector<MoleculePair>> wide_;          ///< pairs within rcut + skin at the last build
  std::vector<std::vector<unsigned>> verlet_;            ///< (i, j) of those pairs, per list
  std::vector<double> refCentres_;                       ///< centres at the last build
  CellGeometry refCell_;
  double refRcut_ = 0.0;
  std::vector<unsigned> refRanges_;
};

}  // namespace molenv
}  // namespace PLMD

#endif
