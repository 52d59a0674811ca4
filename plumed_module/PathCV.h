/* molenv: path collective variable in class-fraction space (METHOD.md section 7).

   Images Q^(i), i = 0..P-1; D_i = sum_k (Q_k - Q^(i)_k)^2;
     s = (1/(P-1)) sum_i i exp(-lambda D_i) / sum_i exp(-lambda D_i)     (0..1)
     z = -(1/lambda) ln sum_i exp(-lambda D_i)
   Note: PLUMED's own PATH / FUNCPATHGENERAL report s in 1..P; here s runs from 0
   (first image) to 1 (last image), as in the reference implementation.
   Both are evaluated with the log-sum-exp shift by min_i D_i, so that neither
   underflows however large lambda*D_i gets (z then stays finite and exact). */
#ifndef __MOLENV_PathCV_h
#define __MOLENV_PathCV_h

#include <vector>

namespace PLMD {
namespace molenv {

class PathCV {
public:
  PathCV() = default;
  /// images[i][k]: coordinate k of image i (at least 2 images, all of equal length)
  PathCV(const std::vector<std::vector<double>>& images, double lambda);

  unsigned nImages() const { return images_.size(); }
  unsigned dimension() const { return images_.empty() ? 0 : images_[0].size(); }
  double lambda() const { return lambda_; }
  const std::vector<std::vector<double>>& images() const { return images_; }

  /// s, z at the point Q (dimension() entries) and their gradients with respect to Q.
  void evaluate(const double* Q, double& s, double& z, double* dsdQ, double* dzdQ) const;

private:
  std::vector<std::vector<double>> images_;
  double lambda_ = 0.0;
};

}  // namespace molenv
}  // namespace PLMD

#endif
