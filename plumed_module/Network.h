/* molenv: the per-molecule classifier network (input scaling + dense layers), evaluated
   for blocks of molecules, and its vector-Jacobian product with respect to the unscaled
   descriptors.

   Molecules are processed kBlock at a time with the activations stored feature-major
   ([unit][molecule of the block]), so that every loop over molecules is a
   vectorisable loop without reductions, and the exp of the sigmoid/tanh units is the
   branch-free one of FastMath.h.

   Derivatives are taken in reverse mode: backward() returns, for each molecule m of a
   block, sum_k seed[m][k] dp_k(m)/dG(m) from the activations forward() stored.  The
   action seeds it with the bias forces on its components (one sweep per step,
   whatever the number of classes), or with unit vectors when the full Jacobian is
   needed (one sweep per class).

   With the model's ood block enabled (MOLENV_CLASSIFY OOD), the network has one output
   more, the out-of-distribution score other (OodScore.h) of the inputs of one dense layer,
   after the class probabilities; backward() takes its seed like a class's and adds its
   gradient to that of those inputs, so the same sweep carries it. */
#ifndef __MOLENV_Network_h
#define __MOLENV_Network_h

#include "ModelFile.h"

#include <cstddef>
#include <vector>

namespace PLMD {
namespace molenv {

class Network {
public:
  /// molecules per block
  static constexpr unsigned kBlock = 8;

  /// `order[i]` is the model-file index of the i-th descriptor as the caller stores
  /// them (the symmetry-function kernel groups descriptors by kind).
  /// `ood`: also the out-of-distribution output (the model must have an ood block).
  Network(const Model& model, const std::vector<unsigned>& order, bool ood = false);

  unsigned nInputs() const { return nin_; }
  unsigned nOutputs() const { return nout_; }
  /// doubles of activations stored per block by forward() for backward()
  std::size_t storeSize() const { return storeSize_; }

  /// Probabilities p[m*nOutputs+k] (then, with ood, other at k = nOutputs - 1) of the nm <= kBlock molecules whose descriptors
  /// (caller order) are G[m*nInputs+i]; keeps in `store` (storeSize() doubles) what
  /// backward() needs.
  void forward(unsigned nm, const double* G, double* p, double* store) const;

  /// grad[m*nInputs+i] = sum_k seed[m*nOutputs+k] dp_k(m)/dG_i(m) (caller order) for
  /// the block whose activations forward() left in `store`.
  void backward(unsigned nm, const double* store, const double* seed, double* grad) const;

private:
  const Model& model_;
  std::vector<unsigned> order_;
  unsigned nin_, nout_, ncls_, widest_;
  bool ood_;
  std::size_t storeSize_, oodOffset_ = 0;  ///< with ood: other (kBlock), then d other/d h (H x kBlock) in a block's store
  std::vector<std::size_t> offset_;  ///< offset_[l]: start of the outputs of layer l in a block's store
  std::vector<std::vector<double>> wT_;  ///< transposed weights of each layer (nin x nout), for backward()
};

}  // namespace molenv
}  // namespace PLMD

#endif
