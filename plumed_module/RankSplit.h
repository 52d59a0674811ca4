/* molenv: how the work of a step is split over the MPI ranks PLUMED runs the action on.

   With several ranks in PLUMED's communicator (an MD engine or `plumed driver` under
   mpirun), every rank holds all the atoms, and each computes a contiguous share of the
   molecules (SF: the pairs its molecules own, their network blocks; GNN: the atoms of its
   molecules), with the action's OpenMP threads inside its share.  The per-molecule numbers
   the other ranks need (descriptors, probabilities, network Jacobians, per-molecule
   derivatives and the virial; GNN: the projections and gradients exchanged between
   neighbouring atoms) are combined with sum(): each rank's buffer holds its own share and
   zeros elsewhere, so the sum is the whole array on every rank, exact where one rank
   wrote an entry, and in a different order (rounding) where several did.  Every rank then
   has the same values and forces, as PLUMED expects.  Contiguous shares (rather than
   PLUMED's rank-strided loops) keep the contiguous molecule ranges of the threads, so that
   one rank is exactly the serial code.

   Kept free of PLUMED: the action supplies the communicator's sum. */
#ifndef __MOLENV_RankSplit_h
#define __MOLENV_RankSplit_h

#include <cstddef>
#include <functional>
#include <vector>

namespace PLMD {
namespace molenv {

struct RankSplit {
  unsigned rank = 0, size = 1;
  /// element-wise sum over the ranks, in place, the result on every rank
  std::function<void(double* data, std::size_t n)> allSum;

  bool split() const { return size > 1; }
  /// this rank's share of n items: first(n) .. last(n) - 1
  unsigned first(unsigned n) const { return static_cast<unsigned long long>(n) * rank / size; }
  unsigned last(unsigned n) const { return static_cast<unsigned long long>(n) * (rank + 1) / size; }
  /// sum over the ranks (nothing with one rank)
  void sum(double* data, std::size_t n) const {
    if (split() && n) allSum(data, n);
  }
  void sum(std::vector<double>& v) const { sum(v.data(), v.size()); }
};

}  // namespace molenv
}  // namespace PLMD

#endif
