/* molenv: path CV over class fractions with log-sum-exp (see PathCV.h). */
#include "PathCV.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

PathCV::PathCV(const std::vector<std::vector<double>>& images, double lambda) : images_(images), lambda_(lambda) {}

void PathCV::evaluate(const double* Q, double& s, double& z, double* dsdQ, double* dzdQ) const {
  const unsigned P = images_.size(), D = dimension();
  std::vector<double> dist(P), pi(P);
  for (unsigned i = 0; i < P; ++i) {
    double d2 = 0.0;
    for (unsigned k = 0; k < D; ++k) {
      const double x = Q[k] - images_[i][k];
      d2 += x * x;
    }
    dist[i] = d2;
  }
  // shift by the smallest distance: the largest weight is exactly 1, none overflows,
  // and the sum never underflows to zero
  const double dmin = *std::min_element(dist.begin(), dist.end());
  double sum = 0.0;
  for (unsigned i = 0; i < P; ++i) sum += (pi[i] = std::exp(-lambda_ * (dist[i] - dmin)));
  double sbar = 0.0;
  for (unsigned i = 0; i < P; ++i) {
    pi[i] /= sum;
    sbar += i * pi[i];
  }
  z = dmin - std::log(sum) / lambda_;
  s = sbar / (P - 1);
  // dz/dQ = sum_i pi_i dD_i/dQ ;  ds/dQ = -lambda/(P-1) sum_i pi_i (i - sbar) dD_i/dQ
  for (unsigned k = 0; k < D; ++k) {
    double gz = 0.0, gs = 0.0;
    for (unsigned i = 0; i < P; ++i) {
      const double dD = 2.0 * (Q[k] - images_[i][k]);
      gz += pi[i] * dD;
      gs += pi[i] * (i - sbar) * dD;
    }
    dzdQ[k] = gz;
    dsdQ[k] = -lambda_ * gs / (P - 1);
  }
}

}  // namespace molenv
}  // namespace PLMD
