/* molenv: the per-step geometry of the molecules that the pair passes read.

   The action requests, for every molecule, only the atoms the descriptors use (the
   centre atoms and the end points of the intramolecular vectors: "local slots"),
   molecule-major.  Once per step MoleculeFrame::update() turns their positions into
   Angstrom centres, intramolecular vectors (raw, unit, length) and region weights, and
   marks which molecules count (active: w > 0) and which need descriptors (computed:
   active, or every molecule at steps with per-molecule output).

   Geometry (docs/model_format.md): the centre is one atom or the centroid (unweighted
   mean) of several, each taken at its minimum image from the first, so that molecules
   split across the boundary have the right centroid; a vector is r(b) - r(a) (minimum
   image) or a plane normal a x b of two such vectors ("arms", kept for the derivatives:
   d(a x b) = da x b + a x db, and the virial sees the arms, not the normal). */
#ifndef __MOLENV_MoleculeFrame_h
#define __MOLENV_MoleculeFrame_h

#include "ModelFile.h"
#include "NeighbourCells.h"
#include "SlabRegion.h"

#include "tools/Vector.h"

#include <vector>

namespace PLMD {
namespace molenv {

/// Where the atoms of a molecule are among the requested ones: atom slot q of molecule m
/// is m*nlocal+q; slots are the distinct model positions among the centre atoms and the
/// vector end points.
struct AtomSlots {
  unsigned nlocal = 0;
  std::vector<unsigned> centre;      ///< the centre is the centroid of these slots (one: that atom)
  std::vector<unsigned> vecA, vecB;  ///< vector s is r(vecB[s]) - r(vecA[s]) (a normal: its first arm)
  std::vector<unsigned> vecC, vecD;  ///< a normal's second arm r(vecD[s]) - r(vecC[s]) (unused otherwise)
  std::vector<char> normal;          ///< vector s is the normal (first arm) x (second arm)

  /// The slots of an SF model; `positions` receives the model positions (0-based, sorted)
  /// of the slots, the atoms to request of each molecule.
  static AtomSlots ofModel(const Model& model, std::vector<unsigned>& positions);
};

/// Pairs of molecules closer than the cutoff, one list per thread (see NeighbourCells).
using PairLists = std::vector<std::vector<MoleculePair>>;

struct MoleculeFrame {
  unsigned nmol = 0, nvec = 0;
  std::vector<double> centres;                ///< 3 per molecule
  std::vector<double> vraw, unitv, vlen;      ///< intramolecular vectors: [3*(m*nvec+s)+x], unit, length
  std::vector<double> arms;                   ///< a normal's arms: [6*(m*nvec+s) + 3*arm + x] (unset for other vectors)
  std::vector<double> weight, dweight, rbox;  ///< region weight w, dw/dr, box position (SlabRegion::weight)
  std::vector<char> active, computed;         ///< counted (w > 0); needs descriptors

  /// Geometry of the step from the requested positions (PLUMED length units, toA
  /// Angstrom each).  Molecules with w = 0 are computed only when needAll.  Returns the
  /// first molecule with a zero-length vector, or nmol if there is none.
  unsigned update(const std::vector<Vector>& positions, const AtomSlots& slots, double toA, const CellGeometry& cell,
                  const SlabRegion& region, bool needAll, unsigned nthreads);

  /// cos theta_s of a pair: the product of the two unit vectors s
  double cosine(const MoleculePair& p, unsigned s) const {
    const double* ui = &unitv[3 * (p.i * nvec + s)];
    const double* uj = &unitv[3 * (p.j * nvec + s)];
    return ui[0] * uj[0] + ui[1] * uj[1] + ui[2] * uj[2];
  }
};

}  // namespace molenv
}  // namespace PLMD

#endif
