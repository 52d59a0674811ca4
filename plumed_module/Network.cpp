/* molenv: network forward pass and reverse-mode Jacobian (see Network.h).
   The activations are written exactly as in py/molenv/modelfile.py (e.g. the
   logistic function as 0.5*(1+tanh(x/2)), overflow free) so that C++ and numpy
   agree to rounding. */
#include "Network.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

namespace {

inline double activate(Activation a, double x) {
  switch (a) {
    case Activation::sigmoid: return 0.5 * (1.0 + std::tanh(0.5 * x));
    case Activation::tanh: return std::tanh(x);
    case Activation::softplus: return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x)));
    default: return x;  // identity (softmax is handled on the whole layer)
  }
}

/// d act / d x, written in terms of the pre-activation x and the activation y.
inline double activationDerivative(Activation a, double x, double y) {
  switch (a) {
    case Activation::sigmoid: return y * (1.0 - y);
    case Activation::tanh: return 1.0 - y * y;
    case Activation::softplus: return 0.5 * (1.0 + std::tanh(0.5 * x));
    default: return 1.0;
  }
}

}  // namespace

Network::Network(const Model& model, const std::vector<unsigned>& order)
    : model_(model), order_(order), nin_(model.nFeatures()), nout_(model.nClasses()) {}

Network::Workspace Network::workspace() const {
  Workspace ws;
  ws.a.resize(model_.layers.size() + 1);
  ws.a[0].resize(nin_);
  std::size_t widest = nin_;
  for (std::size_t l = 0; l < model_.layers.size(); ++l) {
    // pre-activations are kept in the second half so the backward sweep can use them
    ws.a[l + 1].resize(2 * model_.layers[l].nout);
    widest = std::max<std::size_t>(widest, model_.layers[l].nout);
  }
  ws.delta.resize(widest);
  ws.back.resize(widest);
  return ws;
}

void Network::evaluate(const double* G, double* p, double* J, Workspace& ws) const {
  const auto& layers = model_.layers;
  const std::size_t L = layers.size();
  double* x0 = ws.a[0].data();
  for (unsigned i = 0; i < nin_; ++i) {
    const unsigned f = order_[i];
    x0[f] = (G[i] - model_.mean[f]) * model_.stretch[f];
  }
  for (std::size_t l = 0; l < L; ++l) {
    const DenseLayer& D = layers[l];
    const double* in = ws.a[l].data();
    double* out = ws.a[l + 1].data();
    double* pre = out + D.nout;
    for (unsigned j = 0; j < D.nout; ++j) {
      const double* w = D.w.data() + static_cast<std::size_t>(j) * D.nin;
      double s = D.b[j];
      for (unsigned i = 0; i < D.nin; ++i) s += w[i] * in[i];
      pre[j] = s;
    }
    const Activation act = (l + 1 == L) ? model_.output : model_.hidden;
    if (act == Activation::softmax) {
      double zmax = *std::max_element(pre, pre + D.nout), sum = 0.0;
      for (unsigned j = 0; j < D.nout; ++j) sum += (out[j] = std::exp(pre[j] - zmax));
      for (unsigned j = 0; j < D.nout; ++j) out[j] /= sum;
    } else {
      for (unsigned j = 0; j < D.nout; ++j) out[j] = activate(act, pre[j]);
    }
  }
  const double* y = ws.a[L].data();
  std::copy(y, y + nout_, p);
  if (!J) return;

  // Reverse sweep for each class k: delta = dp_k/d(pre-activation of the current layer).
  double* delta = ws.delta.data();
  double* back = ws.back.data();
  for (unsigned k = 0; k < nout_; ++k) {
    if (model_.output == Activation::softmax) {
      for (unsigned j = 0; j < nout_; ++j) delta[j] = y[k] * ((j == k ? 1.0 : 0.0) - y[j]);
    } else {
      std::fill(delta, delta + nout_, 0.0);
      delta[k] = y[k] * (1.0 - y[k]);
    }
    for (std::size_t l = L; l-- > 0;) {
      const DenseLayer& D = layers[l];
      std::fill(back, back + D.nin, 0.0);
      for (unsigned j = 0; j < D.nout; ++j) {
        const double dj = delta[j];
        if (dj == 0.0) continue;
        const double* w = D.w.data() + static_cast<std::size_t>(j) * D.nin;
        for (unsigned i = 0; i < D.nin; ++i) back[i] += dj * w[i];
      }
      if (l == 0) break;
      // back = dp_k / d(output of layer l-1); chain through its activation
      const double* out = ws.a[l].data();
      const double* pre = out + D.nin;
      for (unsigned i = 0; i < D.nin; ++i) delta[i] = back[i] * activationDerivative(model_.hidden, pre[i], out[i]);
    }
    double* row = J + static_cast<std::size_t>(k) * nin_;
    for (unsigned i = 0; i < nin_; ++i) {
      const unsigned f = order_[i];
      row[i] = back[f] * model_.stretch[f];
    }
  }
}

}  // namespace molenv
}  // namespace PLMD
