/* molenv: the atom graph of a GNN model: every ordered pair (target i, source j) of
   distinct atoms closer than the graph cutoff, j at its minimum image
   (docs/model_format.md, "The GNN kind", step 2; Python: molenv.gnn.numpy_model.graph_edges).

   Nodes are the atoms of all molecules, molecule-major (atom a of molecule m is node
   m * atoms_per_molecule + a, the order in which the action requests them).  The edges
   are stored by target (CSR): the incoming edges of node i are start[i] .. start[i+1]-1,
   sorted by source, which is the order of the Python reference, so that the sums over
   incoming edges are taken in the same order, and the graph does not depend on the thread
   count.  Both directions of each pair are edges; reverse[e] is the opposite edge, so
   that the reverse pass can gather what an atom sends along its outgoing edges instead
   of scattering into other atoms (no write conflicts between threads).

   Cell.  As in Python, the periodic cell is first reduced (greedy Lagrange-Gauss
   reduction, molenv.frames.reduced_basis: the same lattice, described by short,
   near-orthogonal vectors), and every perpendicular height of the reduced cell must
   exceed twice the cutoff.  Then each pair has at most one image within the cutoff, it
   is the one the fractional rounding of NeighbourCells finds, and an atom never sees
   its own images.  The reduction changes neither the distances nor the virial (a
   function of the pair vectors only), only which description of the lattice is used.

   Search: NeighbourCells (linked cells in fractional coordinates, O(N)) over the atoms,
   with its Verlet list.  Its skin is capped at half the smallest height minus the
   cutoff, so that a pair listed by the fractional rounding at the list's build is still
   the right image of every pair within the cutoff later. */
#ifndef __MOLENV_AtomGraph_h
#define __MOLENV_AtomGraph_h

#include "MoleculeFrame.h"
#include "NeighbourCells.h"

#include <string>
#include <vector>

namespace PLMD {
namespace molenv {

struct AtomGraph {
  unsigned natoms = 0;
  std::vector<unsigned> start;    ///< natoms + 1: incoming edges of node i are start[i] .. start[i+1]-1
  std::vector<unsigned> source;   ///< source node j of each edge (i <- j), ascending within a target
  std::vector<unsigned> reverse;  ///< the edge (j <- i) of each edge (i <- j)
  std::vector<double> d;          ///< 3 per edge: r_j - r_i, minimum image (Angstrom)
  std::vector<double> r;          ///< |d| per edge
  unsigned coincidentA = 0, coincidentB = 0;  ///< a pair of coincident atoms (r = 0), if coincident
  bool coincident = false;

  std::size_t edges() const { return source.size(); }
};

/// The periodic cell of the graph from the cell vectors h (rows, Angstrom): the reduced
/// basis of their lattice, in `cell`.  Returns the error message when a perpendicular
/// height of the reduced cell is not above 2 * cutoff (the Python message), else "".
std::string graphCell(const double h[3][3], double cutoff, CellGeometry& cell);

class AtomGraphBuilder {
public:
  explicit AtomGraphBuilder(unsigned nthreads) : nthreads_(nthreads) {}
  /// Verlet skin (Angstrom; 0: search at every step), see NeighbourCells.
  void setSkin(double skin) { skin_ = skin; }
  double skin() const { return skin_; }

  /// The edges of the atoms at `positions` (3 per atom, Angstrom) in `cell` (periodic:
  /// from graphCell()).  Returns true when the neighbour list was rebuilt.
  bool build(const std::vector<double>& positions, const CellGeometry& cell, double cutoff, AtomGraph& graph);

private:
  unsigned nthreads_;
  double skin_ = 0.0;
  NeighbourCells cells_;
  std::vector<unsigned> ranges_;
  std::vector<char> active_;
  PairLists pairs_;
  std::vector<unsigned> fill_;
  std::vector<std::pair<unsigned, unsigned>> order_;
};

}  // namespace molenv
}  // namespace PLMD

#endif
