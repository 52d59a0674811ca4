/* molenv: the per-molecule classifier network (input scaling + dense layers) with
   its Jacobian with respect to the unscaled descriptors.

   The Jacobian is taken in reverse mode (one backward sweep per class), which costs
   n_classes * sum(n_in * n_out) multiply-adds: cheaper than forward mode whenever
   there are fewer classes than descriptors, as in every model of the paper. */
#ifndef __MOLENV_Network_h
#define __MOLENV_Network_h

#include "ModelFile.h"

#include <vector>

namespace PLMD {
namespace molenv {

class Network {
public:
  /// Per-thread scratch space (activations of every layer).
  struct Workspace {
    std::vector<std::vector<double>> a;  ///< a[0] = scaled input, a[l] = output of layer l
    std::vector<double> delta, back;
  };

  /// `order[i]` is the model-file index of the i-th descriptor as the caller stores
  /// them (the symmetry-function kernel groups descriptors by kind).
  Network(const Model& model, const std::vector<unsigned>& order);

  unsigned nInputs() const { return nin_; }
  unsigned nOutputs() const { return nout_; }
  Workspace workspace() const;

  /// Class probabilities p (nOutputs) of descriptors G (nInputs, caller order); if J is
  /// not null also J[k*nInputs+i] = dp_k/dG_i (caller order).
  void evaluate(const double* G, double* p, double* J, Workspace& ws) const;

private:
  const Model& model_;
  std::vector<unsigned> order_;
  unsigned nin_, nout_;
};

}  // namespace molenv
}  // namespace PLMD

#endif
