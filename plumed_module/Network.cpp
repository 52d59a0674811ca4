/* molenv: network forward pass and vector-Jacobian product for blocks of molecules (see
   Network.h).  The sums run in the same order as py/molenv/modelfile.py (bias, then
   inputs in order); the logistic function is 1/(1+exp(-x)) evaluated without overflow,
   equal to numpy's 0.5*(1+tanh(x/2)) to rounding. */
#include "Network.h"
#include "FastMath.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

namespace {

constexpr unsigned B = Network::kBlock;

/// Per-thread scratch space, grown on demand.
struct Scratch {
  std::vector<double> a, b;
  void reserve(std::size_t n) {
    if (a.size() < n) { a.resize(n); b.resize(n); }
  }
};
thread_local Scratch scratch;

/// out[j*B+m] = bias[j] + sum_i w[j*nin+i] in[i*B+m]: the loop over the molecules of
/// the block is the vectorised one, with one accumulator per molecule.
MOLENV_CLONES void denseForward(unsigned nin, unsigned nout, const double* __restrict w, const double* __restrict bias,
                                const double* __restrict in, double* __restrict out) {
  for (unsigned j = 0; j < nout; ++j) {
    double acc[B];
    for (unsigned m = 0; m < B; ++m) acc[m] = bias[j];
    const double* __restrict wj = w + static_cast<std::size_t>(j) * nin;
    for (unsigned i = 0; i < nin; ++i) {
      const double wi = wj[i];
      for (unsigned m = 0; m < B; ++m) acc[m] += wi * in[i * B + m];
    }
    for (unsigned m = 0; m < B; ++m) out[j * B + m] = acc[m];
  }
}

/// back[i*B+m] = sum_j w[j*nin+i] delta[j*B+m], with wT[i*nout+j] = w[j*nin+i]
MOLENV_CLONES void denseBackward(unsigned nin, unsigned nout, const double* __restrict wT, const double* __restrict delta,
                                 double* __restrict back) {
  for (unsigned i = 0; i < nin; ++i) {
    double acc[B];
    for (unsigned m = 0; m < B; ++m) acc[m] = 0.0;
    const double* __restrict wi = wT + static_cast<std::size_t>(i) * nout;
    for (unsigned j = 0; j < nout; ++j) {
      const double w = wi[j];
      for (unsigned m = 0; m < B; ++m) acc[m] += w * delta[j * B + m];
    }
    for (unsigned m = 0; m < B; ++m) back[i * B + m] = acc[m];
  }
}

MOLENV_CLONES void sigmoidBlock(std::size_t n, double* __restrict x) {
  for (std::size_t i = 0; i < n; ++i) x[i] = fastmath::sigmoid(x[i]);
}

/// Element-wise activation of n values in place (softmax is done by the caller).
void activate(Activation a, std::size_t n, double* x) {
  switch (a) {
    case Activation::sigmoid: sigmoidBlock(n, x); break;
    case Activation::tanh:
      for (std::size_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case Activation::softplus:
      for (std::size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0) + std::log1p(std::exp(-std::fabs(x[i])));
      break;
    default: break;  // identity
  }
}

/// d act/d x in terms of the activation y alone: sigmoid y(1-y), tanh 1-y^2,
/// softplus 1-exp(-y) (= the logistic function of x), identity 1.
inline double derivativeFromOutput(Activation a, double y) {
  switch (a) {
    case Activation::sigmoid: return y * (1.0 - y);
    case Activation::tanh: return 1.0 - y * y;
    case Activation::softplus: return -std::expm1(-y);
    default: return 1.0;
  }
}

}  // namespace

Network::Network(const Model& model, const std::vector<unsigned>& order, bool ood)
    : model_(model), order_(order), nin_(model.nFeatures()), nout_(model.nClasses() + (ood ? 1 : 0)), ncls_(model.nClasses()),
      widest_(model.nFeatures()), ood_(ood) {
  std::size_t off = 0;
  for (const auto& layer : model_.layers) {
    std::vector<double> t(static_cast<std::size_t>(layer.nin) * layer.nout);
    for (unsigned j = 0; j < layer.nout; ++j)
      for (unsigned i = 0; i < layer.nin; ++i) t[static_cast<std::size_t>(i) * layer.nout + j] = layer.w[static_cast<std::size_t>(j) * layer.nin + i];
    wT_.push_back(std::move(t));
    offset_.push_back(off);
    off += static_cast<std::size_t>(layer.nout) * B;
    widest_ = std::max(widest_, layer.nout);
  }
  oodOffset_ = off;
  if (ood_) off += static_cast<std::size_t>(1 + model_.ood.width) * B;
  storeSize_ = off;
}

void Network::forward(unsigned nm, const double* G, double* p, double* store) const {
  const auto& layers = model_.layers;
  const std::size_t L = layers.size();
  scratch.reserve(static_cast<std::size_t>(widest_) * B);
  double* x0 = scratch.a.data();
  for (unsigned i = 0; i < nin_; ++i) {
    const unsigned f = order_[i];
    for (unsigned m = 0; m < B; ++m) x0[f * B + m] = m < nm ? (G[static_cast<std::size_t>(m) * nin_ + i] - model_.mean[f]) * model_.stretch[f] : 0.0;
  }
  const double* in = x0;
  for (std::size_t l = 0; l < L; ++l) {
    const DenseLayer& D = layers[l];
    double* out = store + offset_[l];
    denseForward(D.nin, D.nout, D.w.data(), D.b.data(), in, out);
    const Activation act = (l + 1 == L) ? model_.output : model_.hidden;
    if (act == Activation::softmax) {
      for (unsigned m = 0; m < B; ++m) {
        double zmax = out[m], sum = 0.0;
        for (unsigned j = 1; j < D.nout; ++j) zmax = std::max(zmax, out[j * B + m]);
        for (unsigned j = 0; j < D.nout; ++j) sum += (out[j * B + m] = std::exp(out[j * B + m] - zmax));
        for (unsigned j = 0; j < D.nout; ++j) out[j * B + m] /= sum;
      }
    } else {
      activate(act, static_cast<std::size_t>(D.nout) * B, out);
    }
    in = out;
  }
  for (unsigned m = 0; m < nm; ++m)
    for (unsigned k = 0; k < ncls_; ++k) p[static_cast<std::size_t>(m) * nout_ + k] = in[k * B + m];
  if (ood_) {
    // the features: the inputs of layer ood.layer, feature-major (the scaled descriptors in
    // the scratch x0, or a hidden layer's outputs in the store)
    const OodScore& ood = model_.ood;
    const double* h = ood.layer == 1 ? x0 : store + offset_[ood.layer - 2];
    double* other = store + oodOffset_;
    double* grad = other + B;
    double small[64];  // z and D_c of one molecule: on the stack for up to 64 features + means
    std::vector<double> large(ood.width + ood.nMeans() > 64 ? ood.width + ood.nMeans() : 0);
    double* work = large.empty() ? small : large.data();
    for (unsigned m = 0; m < nm; ++m) {
      other[m] = ood.evaluate(h + m, B, grad + m, work);
      p[static_cast<std::size_t>(m) * nout_ + ncls_] = other[m];
    }
  }
}

void Network::backward(unsigned nm, const double* store, const double* seed, double* grad) const {
  const auto& layers = model_.layers;
  const std::size_t L = layers.size();
  scratch.reserve(static_cast<std::size_t>(widest_) * B);
  double* delta = scratch.a.data();
  double* back = scratch.b.data();
  // delta = d(sum_k seed_k p_k)/d(pre-activation of the output layer)
  const double* y = store + offset_[L - 1];
  for (unsigned m = 0; m < B; ++m) {
    if (m >= nm) {
      for (unsigned k = 0; k < ncls_; ++k) delta[k * B + m] = 0.0;
      continue;
    }
    const double* sm = seed + static_cast<std::size_t>(m) * nout_;
    if (model_.output == Activation::softmax) {
      double s = 0.0;  // dp_k/dz_j = p_k (delta_kj - p_j)
      for (unsigned k = 0; k < ncls_; ++k) s += sm[k] * y[k * B + m];
      for (unsigned j = 0; j < ncls_; ++j) delta[j * B + m] = y[j * B + m] * (sm[j] - s);
    } else {
      for (unsigned k = 0; k < ncls_; ++k) delta[k * B + m] = sm[k] * derivativeFromOutput(model_.output, y[k * B + m]);
    }
  }
  for (std::size_t l = L; l-- > 0;) {
    const DenseLayer& D = layers[l];
    denseBackward(D.nin, D.nout, wT_[l].data(), delta, back);
    if (ood_ && l + 1 == model_.ood.layer) {
      // back = d/d(inputs of layer l), the features: add the seed of other times d other/d h
      const double* grad = store + oodOffset_ + B;
      for (unsigned m = 0; m < nm; ++m) {
        const double so = seed[static_cast<std::size_t>(m) * nout_ + ncls_];
        if (so == 0.0) continue;
        for (unsigned i = 0; i < D.nin; ++i) back[i * B + m] += so * grad[i * B + m];
      }
    }
    if (l == 0) break;
    // back = d/d(output of layer l-1); chain through its activation
    const double* out = store + offset_[l - 1];
    const std::size_t n = static_cast<std::size_t>(D.nin) * B;
    if (model_.hidden == Activation::sigmoid) {
      for (std::size_t i = 0; i < n; ++i) delta[i] = back[i] * (out[i] * (1.0 - out[i]));
    } else {
      for (std::size_t i = 0; i < n; ++i) delta[i] = back[i] * derivativeFromOutput(model_.hidden, out[i]);
    }
  }
  for (unsigned m = 0; m < nm; ++m)
    for (unsigned i = 0; i < nin_; ++i) {
      const unsigned f = order_[i];
      grad[static_cast<std::size_t>(m) * nin_ + i] = back[f * B + m] * model_.stretch[f];
    }
}

}  // namespace molenv
}  // namespace PLMD
