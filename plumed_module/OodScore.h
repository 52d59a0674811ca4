/* molenv: the out-of-distribution ("none of these") score of an SF model's molecules, the
   optional `ood` block of the model file (docs/model_format.md, "The ood block"); mirror of
   py/molenv/ood.py: OODScore.  With h the inputs of the block's dense layer (the scaled
   descriptors for layer 1, else a hidden layer's outputs),
       z = W h,  D_c = |z - m_c|^2,  d = -tau ln sum_c exp(-D_c/tau),
       other = 1 / (1 + exp(-(d - threshold)/width)),
   and the derivative d other/d h = other (1 - other)/width W^T 2 (z - sum_c w_c m_c), w_c =
   softmax_c(-D_c/tau), which Network::backward() adds to the gradient of that layer's
   inputs: the score shares the network's reverse pass, and so its pair terms, with the class
   probabilities. */
#ifndef __MOLENV_OodScore_h
#define __MOLENV_OodScore_h

#include <string>
#include <vector>

namespace PLMD {
namespace molenv {

struct OodScore {
  bool enabled = false;           ///< the model file has an ood block
  unsigned layer = 0;             ///< the features are the inputs of this dense layer (1-based, as in the file)
  unsigned width = 0;             ///< H: the number of features
  std::vector<std::string> classNames;  ///< the classes with a mean, in class order
  std::vector<double> whitening;  ///< H x H, row major: z_j = sum_i W[j*H+i] h_i
  std::vector<double> means;      ///< C x H whitened class means
  double temperature = 1.0, threshold = 0.0, scale = 1.0;  ///< tau, d_threshold, width
  double quantile = 0.0, lowQuantile = 0.0;
  long nValidation = 0;

  unsigned nMeans() const { return classNames.size(); }
  /// other of one molecule from its features h (H values, stride apart), and d other/d h
  /// into grad (H values, stride apart); scratch: H + C doubles
  double evaluate(const double* h, unsigned stride, double* grad, double* scratch) const;
};

}  // namespace molenv
}  // namespace PLMD

#endif
