/* molenv: the values of a step: descriptors of every computed molecule (pass 1 over the
   pairs) and their class probabilities (the network, on blocks of molecules).

   Pass 1 visits each unordered pair once and adds its terms t(I,J) to both molecules,
   G(I) = sum_J t(I,J).  The network keeps its activations per block of molecules, so
   that DerivativePass can run the backward sweeps without evaluating it again.

   Threads: pairs are owned by contiguous molecule ranges, one list per thread; each
   thread sums into its own copy of G, and the copies are added in thread order, so the
   result does not depend on the scheduling.

   MPI ranks (RankSplit.h): the pair lists hold the pairs of this rank's molecules, and
   the network runs on this rank's share of the blocks; G and the probabilities are then
   summed over the ranks, so that every rank has those of all molecules.  The activations
   are kept for this rank's blocks only (the backward sweeps run on the same share). */
#ifndef __MOLENV_ValuePass_h
#define __MOLENV_ValuePass_h

#include "MoleculeFrame.h"
#include "Network.h"
#include "RankSplit.h"
#include "SymmetryFunctions.h"

#include <cstddef>
#include <vector>

namespace PLMD {
namespace molenv {

class ValuePass {
public:
  ValuePass(const SymmetryFunctions& sf, const Network& net, unsigned nthreads, const RankSplit& ranks);

  /// pass 1: G[m*S+i] (internal descriptor order, SymmetryFunctions::order()) for the
  /// computed molecules, 0 for the others
  void descriptors(const MoleculeFrame& frame, const PairLists& pairs);
  /// p_k(m) = prob[m*K+k] for the computed molecules (0 for the others)
  void network(const MoleculeFrame& frame);

  const std::vector<double>& G() const { return G_; }
  const std::vector<double>& prob() const { return prob_; }

  // what the backward sweeps need: the computed molecules in blocks of Network::kBlock
  // (block b: netList()[b*kBlock ...]), this rank's blocks and their activations
  const std::vector<unsigned>& netList() const { return netList_; }
  unsigned nBlocks() const { return (netList_.size() + Network::kBlock - 1) / Network::kBlock; }
  unsigned firstBlock() const { return ranks_.first(nBlocks()); }
  unsigned lastBlock() const { return ranks_.last(nBlocks()); }
  const double* activations(unsigned block) const { return &store_[block * net_.storeSize()]; }

private:
  const SymmetryFunctions& sf_;
  const Network& net_;
  unsigned nthreads_;
  const RankSplit& ranks_;
  std::vector<double> G_, prob_, store_;
  std::vector<unsigned> netList_;
  std::vector<std::vector<double>> gbuf_;  ///< per-thread G (more than one thread)
};

}  // namespace molenv
}  // namespace PLMD

#endif
