/* molenv: derivatives of a step, contracted with per-molecule seeds.

   Every output of the action is a function of the populations n_k = sum_I w_I p_k(I) and
   of W = sum_I w_I.  This pass computes the derivatives, with respect to the atoms and
   the cell, of nch linear combinations ("channels")
       X_j = sum_k sigma_jk n_k + tau_j W,
   of which the first npair have pair terms (sigma_j != 0) and the others depend on the
   atoms through the region weights only.  The action uses it in two ways:
     forces:           1 channel, sigma = gamma, tau = delta: the bias forces contracted
                       with the derivatives of the components (MolenvClassify.cpp);
     full derivatives: K + 1 channels, n_0 .. n_{K-1} (sigma = unit vectors) and W,
                       which the action combines into every component's derivatives.

   With J_I = dp(I)/dG(I) the network Jacobian and t(I,J) the pair terms,
       d X_j = sum_pairs (c_j(I) + c_j(J)) . d t(I,J) + sum_I (tau_j + sigma_j . p(I)) d w_I,
       c_j(I) = w_I sigma_j J_I.
   Three steps, each timed separately by the action:
     backward():        c_j(I): one vector-Jacobian sweep of the network per channel and
                        block of molecules (seed w_I sigma_j);
     pairDerivatives(): pass 2: each unordered pair once, its term derivatives with
                        respect to r and cos theta_s contracted with c_j(I) + c_j(J) on the
                        fly and accumulated per molecule (centre and vectors) and for the
                        box; nothing of size pairs x descriptors is stored;
     reduce():          per molecule: the threads' buffers summed, the centre derivatives
                        shared by the centre atoms (a centroid's atoms in equal parts), the
                        vector derivatives moved to the vector end atoms (a plane normal's
                        through its two arms), the region terms added; the result goes to a
                        DerivativeSink.
   The pair contraction is written once for any number of channels; how the term
   derivatives are contracted is chosen by the number of channels: one channel is
   contracted inside the symmetry-function kernel (vectorised over the pairs of a block),
   several per pair over the channels (vectorised over the channels).

   MPI ranks (RankSplit.h): backward() runs on this rank's network blocks and pass 2 on
   its pairs; the Jacobian rows are summed over the ranks before pass 2 (a pair of this
   rank may have a molecule of another), and the per-molecule buffers and the pairs' box
   sum before reduce(), which then hands the same numbers to the sink on every rank.

   Box derivatives: -sum_pairs d (x) dX/dd - sum_(I,s) v (x) dX/dv (a normal v = a x b:
   -a (x) dX/da - b (x) dX/db, the arms being what scales with the cell) plus the region term
   (SlabRegion.h).  Units: Angstrom in, Angstrom out (the sink converts). */
#ifndef __MOLENV_DerivativePass_h
#define __MOLENV_DerivativePass_h

#include "MoleculeFrame.h"
#include "Network.h"
#include "RankSplit.h"
#include "SymmetryFunctions.h"
#include "ValuePass.h"

#include <vector>

namespace PLMD {
namespace molenv {

/// The channels X_j = sum_k sigma[j*K+k] n_k + tau[j] W (see above).
struct Seeds {
  unsigned nclasses = 0, npair = 0;
  std::vector<double> sigma;  ///< npair x nclasses
  std::vector<double> tau;    ///< one per channel; nch = tau.size() >= npair
  unsigned channels() const { return tau.size(); }

  /// one channel: sum_k gamma_k n_k + delta W
  static Seeds combination(const std::vector<double>& gamma, double delta);
  /// K + 1 channels: n_0, ..., n_{K-1}, W
  static Seeds populations(unsigned K);
};

/// Receives the derivatives of every channel: per molecule (from several threads at
/// once, each molecule once), then for the cell.
class DerivativeSink {
public:
  virtual ~DerivativeSink() = default;
  /// local[(j*nlocal + q)*3 + x]: dX_j/d(atom slot q of molecule m)_x, 1/Angstrom
  virtual void molecule(unsigned m, const double* local) = 0;
  /// box[9*j + 3*a + b]: the box derivative of X_j (dimensionless)
  virtual void box(const double* box) = 0;
};

class DerivativePass {
public:
  DerivativePass(const SymmetryFunctions& sf, const Network& net, const AtomSlots& slots, unsigned nthreads, const RankSplit& ranks);

  void backward(const MoleculeFrame& frame, const ValuePass& values, const Seeds& seeds);
  void pairDerivatives(const MoleculeFrame& frame, const PairLists& pairs);
  void reduce(const MoleculeFrame& frame, const ValuePass& values, const Seeds& seeds, const SlabRegion& region, DerivativeSink& sink);

private:
  const SymmetryFunctions& sf_;
  const Network& net_;
  const AtomSlots& slots_;
  unsigned nthreads_;
  const RankSplit& ranks_;
  unsigned npair_ = 0, nch_ = 0;  ///< of the current seeds
  /// c_j(I) = jac_[(I*S + q)*stride_ + j]: descriptor-major, the channels padded to
  /// stride_ (a multiple of 4 for several channels, so that the contraction over the
  /// channels vectorises; 1 for one channel, a plain row per molecule)
  std::vector<double> jac_;
  unsigned stride_ = 1;
  std::vector<std::vector<double>> dbuf_, boxbuf_;  ///< per thread: per molecule and channel, centre + vectors; box

  template <class Contraction>
  void pairLoop(const MoleculeFrame& frame, const PairLists& pairs);
  /// several ranks: the threads' buffers added into those of thread 0, then summed over the ranks
  void sumOverRanks(unsigned nmol);
};

}  // namespace molenv
}  // namespace PLMD

#endif
