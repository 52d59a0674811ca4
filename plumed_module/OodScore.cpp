/* molenv: the out-of-distribution score (see OodScore.h).  The sums run in the order of
   py/molenv/ood.py's definition (inputs, then features, then classes in order). */
#include "OodScore.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

double OodScore::evaluate(const double* h, unsigned stride, double* grad, double* scratch) const {
  const unsigned H = width, C = nMeans();
  double* z = scratch;
  double* D = scratch + H;
  for (unsigned j = 0; j < H; ++j) {
    const double* wj = &whitening[static_cast<std::size_t>(j) * H];
    double acc = 0.0;
    for (unsigned i = 0; i < H; ++i) acc += wj[i] * h[i * stride];
    z[j] = acc;
  }
  double low = 0.0;
  for (unsigned c = 0; c < C; ++c) {
    const double* mc = &means[static_cast<std::size_t>(c) * H];
    double acc = 0.0;
    for (unsigned j = 0; j < H; ++j) acc += (z[j] - mc[j]) * (z[j] - mc[j]);
    D[c] = acc;
    low = c == 0 ? acc : std::min(low, acc);
  }
  // soft minimum d and the weights w_c = exp(-(D_c - d)/tau) of its derivative
  double sum = 0.0;
  for (unsigned c = 0; c < C; ++c) sum += (D[c] = std::exp(-(D[c] - low) / temperature));
  const double d = low - temperature * std::log(sum);
  const double u = (d - threshold) / scale;
  const double other = u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u));
  // d other/dz = other (1 - other)/width * 2 (z - sum_c w_c m_c), then W^T
  const double f = other * (1.0 - other) / scale * 2.0;
  for (unsigned j = 0; j < H; ++j) {
    double mean = 0.0;
    for (unsigned c = 0; c < C; ++c) mean += D[c] * means[static_cast<std::size_t>(c) * H + j];
    z[j] = f * (z[j] - mean / sum);
  }
  for (unsigned i = 0; i < H; ++i) {
    double acc = 0.0;
    for (unsigned j = 0; j < H; ++j) acc += whitening[static_cast<std::size_t>(j) * H + i] * z[j];
    grad[i * stride] = acc;
  }
  return other;
}

}  // namespace molenv
}  // namespace PLMD
