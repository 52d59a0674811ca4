/* molenv: the graph classifier and its reverse pass (see GraphNetwork.h). */
#include "GraphNetwork.h"
#include "FastMath.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

namespace {

using Dense = GraphNetwork::Dense;
using Block = GraphNetwork::Block;

Dense dense(const GnnLinear& L) {
  Dense d;
  d.nin = L.nin;
  d.nout = L.nout;
  d.w = L.w;
  d.wT.resize(d.w.size());
  for (unsigned j = 0; j < L.nout; ++j)
    for (unsigned i = 0; i < L.nin; ++i) d.wT[static_cast<std::size_t>(i) * L.nout + j] = L.w[static_cast<std::size_t>(j) * L.nin + i];
  d.b = L.hasBias() ? L.b : std::vector<double>(L.nout, 0.0);
  return d;
}

Block block(const GnnBlock& b) {
  Block out;
  out.linear = dense(b.linear);
  out.lnWeight = b.norm.weight;
  out.lnBias = b.norm.bias;
  out.eps = b.norm.eps;
  return out;
}

// The dense layers and the basis are the hot loops: like the symmetry-function kernels
// they carry an AVX2/FMA copy chosen at load time (MOLENV_CLONES, FastMath.h).

/// y = b + W x, as a sum of the scaled rows of W^T
MOLENV_CLONES void affine(const Dense& L, const double* __restrict x, double* __restrict y) {
  const unsigned no = L.nout;
  std::copy_n(L.b.data(), no, y);
  for (unsigned i = 0; i < L.nin; ++i) {
    const double xi = x[i];
    const double* __restrict w = &L.wT[static_cast<std::size_t>(i) * no];
    for (unsigned j = 0; j < no; ++j) y[j] += w[j] * xi;
  }
}

/// dx += W^T dy, as a sum of the scaled rows of W
MOLENV_CLONES void affineBackward(const Dense& L, const double* __restrict dy, double* __restrict dx) {
  const unsigned ni = L.nin;
  for (unsigned j = 0; j < L.nout; ++j) {
    const double g = dy[j];
    if (g == 0.0) continue;
    const double* __restrict w = &L.w[static_cast<std::size_t>(j) * ni];
    for (unsigned i = 0; i < ni; ++i) dx[i] += w[i] * g;
  }
}

inline double dot(const double* __restrict a, const double* __restrict b, unsigned n) {
  double s = 0.0;
  for (unsigned i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// y += a x
inline void axpy(double a, const double* __restrict x, double* __restrict y, unsigned n) {
  for (unsigned i = 0; i < n; ++i) y[i] += a * x[i];
}

/// One edge's Bessel basis b_k = env sin(f_k x) and, with de, db_k/dr = (denv sin(f_k x) +
/// env f_k cos(f_k x)) / cutoff: the branch-free sin/cos of FastMath.h, vectorised over k.
MOLENV_CLONES void besselRow(unsigned R, const double* __restrict f, double x, double env, double denv, double invCut,
                             double* __restrict be, double* __restrict de) {
  if (!de) {
    for (unsigned k = 0; k < R; ++k) {
      double s, c;
      fastmath::sinCos(f[k] * x, s, c);
      be[k] = env * s;
    }
    return;
  }
  for (unsigned k = 0; k < R; ++k) {
    double s, c;
    fastmath::sinCos(f[k] * x, s, c);
    be[k] = env * s;
    de[k] = (denv * s + env * f[k] * c) * invCut;
  }
}

/// torch.nn.GELU(): 0.5 u (1 + erf(u / sqrt 2)), and its derivative Phi(u) + u phi(u)
inline double gelu(double u) { return 0.5 * u * (1.0 + std::erf(u * M_SQRT1_2)); }
inline double geluPrime(double u) { return 0.5 * (1.0 + std::erf(u * M_SQRT1_2)) + u * std::exp(-0.5 * u * u) * (0.5 * M_2_SQRTPI * M_SQRT1_2); }

/// 1 / (1 + exp(-t)) written without overflow, as the reference does
inline double sigmoid(double t) { return 0.5 * (1.0 + std::tanh(0.5 * t)); }

/// The pre-norm residual block y = x + GELU(linear(LayerNorm(x))) of one row; keeps the
/// pre-activation u and (mean, 1/sqrt(var + eps)) for blockBackward().
void blockForward(const Block& B, const double* x, double* y, double* u, double* stats, double* z) {
  const unsigned H = B.linear.nin;
  double mean = 0.0;
  for (unsigned f = 0; f < H; ++f) mean += x[f];
  mean /= H;
  double var = 0.0;
  for (unsigned f = 0; f < H; ++f) var += (x[f] - mean) * (x[f] - mean);
  var /= H;
  const double rstd = 1.0 / std::sqrt(var + B.eps);
  for (unsigned f = 0; f < H; ++f) z[f] = (x[f] - mean) * rstd * B.lnWeight[f] + B.lnBias[f];
  affine(B.linear, z, u);
  for (unsigned f = 0; f < H; ++f) y[f] = x[f] + gelu(u[f]);
  stats[0] = mean;
  stats[1] = rstd;
}

/// dx = dy + LayerNorm^T(linear^T(GELU'(u) dy)) for the block of blockForward(); gu and
/// dz are scratch of H numbers.
void blockBackward(const Block& B, const double* x, const double* u, const double* stats, const double* dy, double* dx, double* gu,
                   double* dz) {
  const unsigned H = B.linear.nin;
  for (unsigned f = 0; f < H; ++f) gu[f] = dy[f] * geluPrime(u[f]);
  std::fill(dz, dz + H, 0.0);
  affineBackward(B.linear, gu, dz);
  // LayerNorm: with yhat = (x - mean) rstd and g = dz * weight,
  // dx = rstd (g - mean(g) - yhat mean(g yhat))
  const double mean = stats[0], rstd = stats[1];
  double m1 = 0.0, m2 = 0.0;
  for (unsigned f = 0; f < H; ++f) {
    const double g = dz[f] * B.lnWeight[f];
    m1 += g;
    m2 += g * (x[f] - mean) * rstd;
  }
  m1 /= H;
  m2 /= H;
  for (unsigned f = 0; f < H; ++f) {
    const double yhat = (x[f] - mean) * rstd;
    dx[f] = dy[f] + rstd * (dz[f] * B.lnWeight[f] - m1 - yhat * m2);
  }
}

}  // namespace

GraphNetwork::GraphNetwork(const GnnModel& model, unsigned nmol, unsigned nthreads, const RankSplit& ranks, bool ood)
    : model_(model), nmol_(nmol), apm_(model.moleculeAtoms.size()), nthreads_(nthreads), H_(model.hidden()), C_(model.channels()),
      R_(model.numRadial()), F_(model.nForms()), G_(model.nTopology()), ood_(ood), nout_(model.nForms() + (ood ? 1 : 0)), ranks_(ranks), mol0_(ranks.first(nmol)), mol1_(ranks.last(nmol)),
      invSqrtC_(1.0 / std::sqrt(double(model.channels()))) {
  // atom features before the first convolution: type_in(embedding row of the element)
  const Dense typeIn = dense(model.typeIn);
  typeFeatures_.resize(static_cast<std::size_t>(apm_) * H_);
  for (unsigned a = 0; a < apm_; ++a) {
    const auto it = std::find(model.atomTypes.begin(), model.atomTypes.end(), model.moleculeAtoms[a]);  // the reader checked it is there
    const std::size_t t = it - model.atomTypes.begin();
    affine(typeIn, &model.embedding[t * model.typeDim], &typeFeatures_[static_cast<std::size_t>(a) * H_]);
  }
  for (const GnnConv& c : model.convs) {
    Conv k;
    k.nodeIn = dense(c.nodeIn);
    k.query = dense(c.query);
    k.key = dense(c.key);
    k.value = dense(c.value);
    k.skip = dense(c.skip);
    k.nodeOut = dense(c.nodeOut);
    // W_e = W_edge W_edge_in (C x R): the edge feature is a function of r alone
    k.we.assign(static_cast<std::size_t>(C_) * R_, 0.0);
    for (unsigned i = 0; i < C_; ++i)
      for (unsigned m = 0; m < C_; ++m) {
        const double a = c.edge.w[static_cast<std::size_t>(i) * C_ + m];
        for (unsigned r = 0; r < R_; ++r) k.we[static_cast<std::size_t>(i) * R_ + r] += a * c.edgeIn.w[static_cast<std::size_t>(m) * R_ + r];
      }
    k.weT.resize(k.we.size());
    for (unsigned i = 0; i < C_; ++i)
      for (unsigned r = 0; r < R_; ++r) k.weT[static_cast<std::size_t>(r) * C_ + i] = k.we[static_cast<std::size_t>(i) * R_ + r];
    // gate t = w_o . o + w_s . s + w_d . (o - s): dt/do = w_o + w_d, dt/ds = w_s - w_d
    k.betaW = c.beta.w;
    k.betaO.resize(C_);
    k.betaS.resize(C_);
    for (unsigned i = 0; i < C_; ++i) {
      k.betaO[i] = c.beta.w[i] + c.beta.w[2 * C_ + i];
      k.betaS[i] = c.beta.w[C_ + i] - c.beta.w[2 * C_ + i];
    }
    k.block = block(c.block);
    convs_.push_back(std::move(k));
  }
  for (const GnnBlock& b : model.head) head_.push_back(block(b));
  output_ = dense(model.output);
  store_.resize(convs_.size());
}

std::vector<double> GraphNetwork::allProbabilities() const {
  const unsigned K = nout_, W = K + G_;
  std::vector<double> all(static_cast<std::size_t>(nmol_) * W);
  for (unsigned m = 0; m < nmol_; ++m) {
    std::copy_n(&poly_[static_cast<std::size_t>(m) * K], K, &all[static_cast<std::size_t>(m) * W]);
    std::copy_n(&topo_[static_cast<std::size_t>(m) * G_], G_, &all[static_cast<std::size_t>(m) * W + K]);
  }
  return all;
}

void GraphNetwork::radialBasis(const AtomGraph& graph, bool derivatives) {
  // x = r / c, P = p + 1; u(x) = 1/x + a x^(P-1) + b x^P + c x^(P+1) for x < 1, else 0;
  // b_k = u(x) sin(f_k x); db_k/dr = (u'(x) sin(f_k x) + u(x) f_k cos(f_k x)) / c
  const double cut = model_.cutoff;
  const int P = model_.envelopeExponent + 1;
  const double a = -(P + 1) * (P + 2) / 2.0, b = P * (P + 2), c = -P * (P + 1) / 2.0;
  const std::vector<double>& f = model_.radialFrequencies;
  // the branch-free sin/cos of FastMath.h (vectorised over the R functions; ~1e-16
  // absolute) holds for |f_k x| < 2^20, x < 1: every trained frequency is far below
  double fmax = 0.0;
  for (double fk : f) fmax = std::max(fmax, std::fabs(fk));
  const bool fastTrig = fmax < 1e5;
  basis_.resize(E_ * R_);
  if (derivatives) dbasis_.resize(E_ * R_);
  // the edges into this rank's atoms (all of them with one rank)
  const long e0 = graph.start[mol0_ * apm_], e1 = graph.start[mol1_ * apm_];
  #pragma omp parallel for num_threads(nthreads_) schedule(static)
  for (long e = e0; e < e1; ++e) {
    const double x = graph.r[e] / cut;
    const bool inside = x < 1.0;
    const double xP1 = std::pow(x, P - 1), xP = std::pow(x, P), xP2 = std::pow(x, P + 1);
    const double env = inside ? 1.0 / x + a * xP1 + b * xP + c * xP2 : 0.0;
    double* be = &basis_[e * R_];
    double* de = derivatives ? &dbasis_[e * R_] : nullptr;
    const double denv = inside && derivatives ? -1.0 / (x * x) + a * (P - 1) * std::pow(x, P - 2) + b * P * xP1 + c * (P + 1) * xP : 0.0;
    if (fastTrig) {
      besselRow(R_, f.data(), x, env, denv, 1.0 / cut, be, de);
    } else {
      for (unsigned k = 0; k < R_; ++k) {
        const double s = std::sin(f[k] * x);
        be[k] = env * s;
        if (de) de[k] = (denv * s + env * f[k] * std::cos(f[k] * x)) / cut;
      }
    }
  }
  dbasisValid_ = derivatives;
}

void GraphNetwork::forward(const AtomGraph& graph, bool derivatives) {
  n_ = graph.natoms;
  E_ = graph.edges();
  const unsigned n = n_, H = H_, C = C_, R = R_, T = nthreads_;
  const unsigned lo = mol0_ * apm_, hi = mol1_ * apm_;  // this rank's atoms
  const bool split = ranks_.split();
  radialBasis(graph, derivatives);

  // 4. atom features
  x_.resize(static_cast<std::size_t>(n) * H);
  xnext_.resize(x_.size());
  for (unsigned i = 0; i < n; ++i) std::copy_n(&typeFeatures_[static_cast<std::size_t>(i % apm_) * H], H, &x_[static_cast<std::size_t>(i) * H]);

  // 5. graph convolutions
  for (std::size_t ci = 0; ci < convs_.size(); ++ci) {
    const Conv& cv = convs_[ci];
    ConvStore& st = store_[ci];
    for (auto* v : {&st.q, &st.k, &st.v, &st.s, &st.o}) v->resize(static_cast<std::size_t>(n) * C);
    st.qe.resize(static_cast<std::size_t>(n) * R);
    st.beta.resize(n);
    st.xo.resize(static_cast<std::size_t>(n) * H);
    st.u.resize(static_cast<std::size_t>(n) * H);
    st.stats.resize(2 * static_cast<std::size_t>(n));
    st.alpha.resize(E_);
    if (split)  // what the other ranks' atoms read is summed over the ranks: zeros outside this rank's atoms
      for (auto* v : {&st.q, &st.k, &st.v, &st.alpha}) std::fill(v->begin(), v->end(), 0.0);
    // projections of every atom
    #pragma omp parallel num_threads(T)
    {
      std::vector<double> h(C);
      #pragma omp for schedule(static)
      for (unsigned i = lo; i < hi; ++i) {
        affine(cv.nodeIn, &x_[static_cast<std::size_t>(i) * H], h.data());
        double* q = &st.q[static_cast<std::size_t>(i) * C];
        affine(cv.query, h.data(), q);
        affine(cv.key, h.data(), &st.k[static_cast<std::size_t>(i) * C]);
        affine(cv.value, h.data(), &st.v[static_cast<std::size_t>(i) * C]);
        affine(cv.skip, h.data(), &st.s[static_cast<std::size_t>(i) * C]);
        // qe = W_e^T q: the score's edge term is qe . b_ij
        double* qe = &st.qe[static_cast<std::size_t>(i) * R];
        std::fill(qe, qe + R, 0.0);
        for (unsigned c = 0; c < C; ++c) axpy(q[c], &cv.we[static_cast<std::size_t>(c) * R], qe, R);
      }
    }
    // the neighbours' keys and values (and queries, which the reverse pass reads)
    for (auto* v : {&st.q, &st.k, &st.v}) ranks_.sum(*v);
    // attention over the incoming edges, gate, node_out, residual block
    #pragma omp parallel num_threads(T)
    {
      std::vector<double> hh(C), ab(R), z(H), score;
      #pragma omp for schedule(static)
      for (unsigned i = lo; i < hi; ++i) {
        const unsigned e0 = graph.start[i], ne = graph.start[i + 1] - e0;
        const double* q = &st.q[static_cast<std::size_t>(i) * C];
        const double* qe = &st.qe[static_cast<std::size_t>(i) * R];
        double* o = &st.o[static_cast<std::size_t>(i) * C];
        std::fill(o, o + C, 0.0);
        if (ne) {
          score.resize(ne);
          double top = -HUGE_VAL;
          for (unsigned k = 0; k < ne; ++k) {
            const std::size_t e = e0 + k;
            const double* kj = &st.k[static_cast<std::size_t>(graph.source[e]) * C];
            score[k] = (dot(q, kj, C) + dot(qe, &basis_[e * R], R)) * invSqrtC_;
            top = std::max(top, score[k]);
          }
          double total = 0.0;
          for (unsigned k = 0; k < ne; ++k) {
            score[k] = std::exp(score[k] - top);
            total += score[k];
          }
          std::fill(ab.begin(), ab.end(), 0.0);
          for (unsigned k = 0; k < ne; ++k) {
            const std::size_t e = e0 + k;
            const double a = score[k] / total;
            st.alpha[e] = a;
            axpy(a, &st.v[static_cast<std::size_t>(graph.source[e]) * C], o, C);
            axpy(a, &basis_[e * R], ab.data(), R);
          }
          // o += W_e sum_j a_ij b_ij
          for (unsigned r = 0; r < R; ++r) axpy(ab[r], &cv.weT[static_cast<std::size_t>(r) * C], o, C);
        }
        const double* s = &st.s[static_cast<std::size_t>(i) * C];
        double t = 0.0;
        for (unsigned c = 0; c < C; ++c) t += cv.betaW[c] * o[c] + cv.betaW[C + c] * s[c] + cv.betaW[2 * C + c] * (o[c] - s[c]);
        const double beta = sigmoid(t);
        st.beta[i] = beta;
        for (unsigned c = 0; c < C; ++c) hh[c] = beta * s[c] + (1.0 - beta) * o[c];
        double* xo = &st.xo[static_cast<std::size_t>(i) * H];
        affine(cv.nodeOut, hh.data(), xo);
        blockForward(cv.block, xo, &xnext_[static_cast<std::size_t>(i) * H], &st.u[static_cast<std::size_t>(i) * H], &st.stats[2 * i], z.data());
      }
    }
    ranks_.sum(st.alpha);  // the reverse pass reads the attention of the edges out of this rank's atoms
    x_.swap(xnext_);
  }

  // 6. max pooling over the atoms of each molecule; 7. head and outputs; 8. with ood, the
  // score of the features of layer oodLayer (1: the radial sums of the molecule's atoms;
  // k >= 2: the inputs of head block k - 1, or of the output layer)
  const unsigned N = nmol_, L = head_.size(), F = F_, G = G_, K = nout_;
  const OodScore& ood = model_.ood;
  const unsigned oodLayer = ood_ ? ood.layer : 0;
  const unsigned apm = apm_;
  pooled_.resize(static_cast<std::size_t>(N) * H);
  argmax_.resize(static_cast<std::size_t>(N) * H);
  headIn_.resize(static_cast<std::size_t>(L) * N * H);
  headU_.resize(static_cast<std::size_t>(L) * N * H);
  headStats_.resize(static_cast<std::size_t>(L) * N * 2);
  poly_.resize(static_cast<std::size_t>(N) * K);
  topo_.resize(static_cast<std::size_t>(N) * G);
  if (ood_) oodGrad_.resize(static_cast<std::size_t>(N) * ood.width);
  if (split) {
    std::fill(poly_.begin(), poly_.end(), 0.0);
    std::fill(topo_.begin(), topo_.end(), 0.0);
  }
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> y(H), z(H), logits(F + G), scratch(ood_ ? ood.width + ood.nMeans() : 0), sums(oodLayer == 1 ? ood.width : 0);
    #pragma omp for schedule(static)
    for (unsigned m = mol0_; m < mol1_; ++m) {
      double* p = &pooled_[static_cast<std::size_t>(m) * H];
      unsigned* am = &argmax_[static_cast<std::size_t>(m) * H];
      for (unsigned f = 0; f < H; ++f) {
        const unsigned first = m * apm_;
        double best = x_[static_cast<std::size_t>(first) * H + f];
        unsigned where = first;
        for (unsigned a = 1; a < apm_; ++a) {
          const double v = x_[static_cast<std::size_t>(first + a) * H + f];
          if (v > best) {
            best = v;
            where = first + a;
          }
        }
        p[f] = best;
        am[f] = where;
      }
      std::copy_n(p, H, y.data());
      for (unsigned l = 0; l < L; ++l) {
        const std::size_t row = (static_cast<std::size_t>(l) * N + m) * H;
        std::copy_n(y.data(), H, &headIn_[row]);
        blockForward(head_[l], &headIn_[row], y.data(), &headU_[row], &headStats_[(static_cast<std::size_t>(l) * N + m) * 2], z.data());
      }
      if (ood_) {
        const double* h;
        if (oodLayer == 1) {  // sum of the basis over the edges into each atom of the molecule, in edge order
          std::fill(sums.begin(), sums.end(), 0.0);
          for (unsigned a = 0; a < apm; ++a)
            for (unsigned e = graph.start[m * apm + a]; e < graph.start[m * apm + a + 1]; ++e)
              for (unsigned r = 0; r < R; ++r) sums[a * R + r] += basis_[static_cast<std::size_t>(e) * R + r];
          h = sums.data();
        } else {  // the inputs of head block oodLayer - 1, or (oodLayer = L + 2) of the output layer: y
          h = oodLayer <= L + 1 ? &headIn_[(static_cast<std::size_t>(oodLayer - 2) * N + m) * H] : y.data();
        }
        poly_[static_cast<std::size_t>(m) * K + F] = ood.evaluate(h, 1, &oodGrad_[static_cast<std::size_t>(m) * ood.width], scratch.data());
      }
      affine(output_, y.data(), logits.data());
      // softmax over the polymorph logits and, separately, over the topology logits
      for (unsigned part = 0; part < 2; ++part) {
        const unsigned k0 = part ? F : 0, nk = part ? G : F;
        double* out = part ? &topo_[static_cast<std::size_t>(m) * G] : &poly_[static_cast<std::size_t>(m) * K];
        double top = -HUGE_VAL, total = 0.0;
        for (unsigned k = 0; k < nk; ++k) top = std::max(top, logits[k0 + k]);
        for (unsigned k = 0; k < nk; ++k) {
          out[k] = std::exp(logits[k0 + k] - top);
          total += out[k];
        }
        for (unsigned k = 0; k < nk; ++k) out[k] /= total;
      }
    }
  }
  ranks_.sum(poly_);
  ranks_.sum(topo_);
}

void GraphNetwork::backward(const AtomGraph& graph, const double* seed, double* grad, double* box) {
  const unsigned n = n_, H = H_, C = C_, R = R_, T = nthreads_, N = nmol_, L = head_.size(), F = F_, K = nout_;
  const unsigned lo = mol0_ * apm_, hi = mol1_ * apm_;  // this rank's atoms
  const bool split = ranks_.split();
  const unsigned oodLayer = ood_ ? model_.ood.layer : 0;
  if (!dbasisValid_) radialBasis(graph, true);

  // head: softmax, output layer, head blocks in reverse, then max pooling
  dx_.assign(static_cast<std::size_t>(n) * H, 0.0);
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> dy(H), dprev(H), gu(H), dz(H), dl(F);
    #pragma omp for schedule(static)
    for (unsigned m = mol0_; m < mol1_; ++m) {
      const double* p = &poly_[static_cast<std::size_t>(m) * K];
      const double* g = &seed[static_cast<std::size_t>(m) * K];
      double pg = 0.0;
      for (unsigned k = 0; k < F; ++k) pg += p[k] * g[k];
      for (unsigned k = 0; k < F; ++k) dl[k] = p[k] * (g[k] - pg);  // the topology logits get no seed
      std::fill(dy.begin(), dy.end(), 0.0);
      for (unsigned k = 0; k < F; ++k) axpy(dl[k], &output_.w[static_cast<std::size_t>(k) * H], dy.data(), H);
      // other's seed times its gradient enters with the gradient of the inputs of its layer
      const double gOther = ood_ ? g[F] : 0.0;
      const double* oodGrad = ood_ ? &oodGrad_[static_cast<std::size_t>(m) * model_.ood.width] : nullptr;
      if (gOther != 0.0 && oodLayer == L + 2) axpy(gOther, oodGrad, dy.data(), H);
      for (unsigned l = L; l-- > 0;) {
        const std::size_t row = (static_cast<std::size_t>(l) * N + m) * H;
        blockBackward(head_[l], &headIn_[row], &headU_[row], &headStats_[(static_cast<std::size_t>(l) * N + m) * 2], dy.data(), dprev.data(),
                      gu.data(), dz.data());
        dy.swap(dprev);
        if (gOther != 0.0 && oodLayer == l + 2) axpy(gOther, oodGrad, dy.data(), H);  // dy: the gradient of the inputs of head block l + 1
      }
      // each pooled feature came from one atom of the molecule (atoms of other molecules
      // are not written: no conflicts between threads)
      const unsigned* am = &argmax_[static_cast<std::size_t>(m) * H];
      for (unsigned f = 0; f < H; ++f) dx_[static_cast<std::size_t>(am[f]) * H + f] += dy[f];
    }
  }

  // convolutions in reverse order; gr_[e] accumulates dX/dr of edge e
  gr_.assign(E_, 0.0);
  if (oodLayer == 1) {  // other of the radial sums: seed dother/dG_i . db_ij/dr on every edge into atom i
    #pragma omp parallel for num_threads(T) schedule(static)
    for (unsigned m = mol0_; m < mol1_; ++m) {
      const double gOther = seed[static_cast<std::size_t>(m) * K + F];
      if (gOther == 0.0) continue;
      const double* oodGrad = &oodGrad_[static_cast<std::size_t>(m) * model_.ood.width];
      for (unsigned a = 0; a < apm_; ++a)
        for (unsigned e = graph.start[m * apm_ + a]; e < graph.start[m * apm_ + a + 1]; ++e)
          gr_[e] += gOther * dot(&oodGrad[a * R], &dbasis_[static_cast<std::size_t>(e) * R], R);
    }
  }
  dO_.resize(static_cast<std::size_t>(n) * C);
  dS_.resize(static_cast<std::size_t>(n) * C);
  dH_.resize(static_cast<std::size_t>(n) * C);
  dsc_.resize(E_);
  for (std::size_t ci = convs_.size(); ci-- > 0;) {
    const Conv& cv = convs_[ci];
    const ConvStore& st = store_[ci];
    const bool needInput = ci > 0;  // the first convolution's input does not depend on the positions
    if (split) {  // summed over the ranks below: zeros outside this rank's atoms and their edges
      std::fill(dO_.begin(), dO_.end(), 0.0);
      std::fill(dsc_.begin(), dsc_.end(), 0.0);
    }
    #pragma omp parallel num_threads(T)
    {
      std::vector<double> dxo(H), gu(H), dz(H), dhh(C), ude(R), dq(C), sb(R), da, dh(C);
      // (0) residual block, node_out and the gate of every atom: dX/do_i, dX/ds_i
      #pragma omp for schedule(static)
      for (unsigned i = lo; i < hi; ++i) {
        const std::size_t iH = static_cast<std::size_t>(i) * H, iC = static_cast<std::size_t>(i) * C;
        blockBackward(cv.block, &st.xo[iH], &st.u[iH], &st.stats[2 * i], &dx_[iH], dxo.data(), gu.data(), dz.data());
        std::fill(dhh.begin(), dhh.end(), 0.0);
        affineBackward(cv.nodeOut, dxo.data(), dhh.data());
        // h = beta s + (1 - beta) o, beta = sigmoid(t)
        const double beta = st.beta[i];
        const double* s = &st.s[iC];
        const double* o = &st.o[iC];
        double dbeta = 0.0;
        for (unsigned c = 0; c < C; ++c) dbeta += dhh[c] * (s[c] - o[c]);
        const double dt = dbeta * beta * (1.0 - beta);
        double* dO = &dO_[iC];
        double* dS = &dS_[iC];
        for (unsigned c = 0; c < C; ++c) {
          dO[c] = (1.0 - beta) * dhh[c] + dt * cv.betaO[c];
          dS[c] = beta * dhh[c] + dt * cv.betaS[c];
        }
      }
      // (A) attention of every target atom i: softmax over its incoming edges, query, and
      // the edge terms (through the basis to dX/dr_ij)
      #pragma omp for schedule(static)
      for (unsigned i = lo; i < hi; ++i) {
        const unsigned e0 = graph.start[i], ne = graph.start[i + 1] - e0;
        const std::size_t iC = static_cast<std::size_t>(i) * C;
        const double* dO = &dO_[iC];
        std::fill(dh.begin(), dh.end(), 0.0);
        affineBackward(cv.skip, &dS_[iC], dh.data());
        if (ne) {
          // ude = W_e^T dO: the value's edge term is ude . b_ij
          std::fill(ude.begin(), ude.end(), 0.0);
          for (unsigned c = 0; c < C; ++c) axpy(dO[c], &cv.we[static_cast<std::size_t>(c) * R], ude.data(), R);
          da.resize(ne);
          double S = 0.0;
          for (unsigned k = 0; k < ne; ++k) {
            const std::size_t e = e0 + k;
            da[k] = dot(dO, &st.v[static_cast<std::size_t>(graph.source[e]) * C], C) + dot(ude.data(), &basis_[e * R], R);
            S += st.alpha[e] * da[k];
          }
          std::fill(dq.begin(), dq.end(), 0.0);
          std::fill(sb.begin(), sb.end(), 0.0);
          const double* qe = &st.qe[static_cast<std::size_t>(i) * R];
          for (unsigned k = 0; k < ne; ++k) {
            const std::size_t e = e0 + k;
            const double a = st.alpha[e];
            const double dsc = a * (da[k] - S);  // dX/dscore_ij
            dsc_[e] = dsc;
            axpy(dsc, &st.k[static_cast<std::size_t>(graph.source[e]) * C], dq.data(), C);
            axpy(dsc, &basis_[e * R], sb.data(), R);
            // dX/db_ij = a_ij ude + dsc_ij qe_i / sqrt(C), contracted with db_ij/dr
            const double w = dsc * invSqrtC_;
            const double* db = &dbasis_[e * R];
            double g = 0.0;
            for (unsigned r = 0; r < R; ++r) g += (a * ude[r] + w * qe[r]) * db[r];
            gr_[e] += g;
          }
          // dX/dq_i = (sum_j dsc_ij k_j + W_e sum_j dsc_ij b_ij) / sqrt(C)
          for (unsigned r = 0; r < R; ++r) axpy(sb[r], &cv.weT[static_cast<std::size_t>(r) * C], dq.data(), C);
          for (unsigned c = 0; c < C; ++c) dq[c] *= invSqrtC_;
          affineBackward(cv.query, dq.data(), dh.data());
        }
        std::copy(dh.begin(), dh.end(), &dH_[iC]);
      }
    }
    // what the neighbours' atoms of other ranks received
    ranks_.sum(dO_);
    ranks_.sum(dsc_);
    #pragma omp parallel num_threads(T)
    {
      std::vector<double> dk(C), dv(C), dh(C);
      // (B) what atom j sent along its outgoing edges (j -> i, the reverse of the edges
      // into j): key and value; then node_in down to the convolution's input
      #pragma omp for schedule(static)
      for (unsigned j = lo; j < hi; ++j) {
        const std::size_t jC = static_cast<std::size_t>(j) * C;
        std::copy_n(&dH_[jC], C, dh.data());
        std::fill(dk.begin(), dk.end(), 0.0);
        std::fill(dv.begin(), dv.end(), 0.0);
        for (unsigned e = graph.start[j]; e < graph.start[j + 1]; ++e) {
          const unsigned i = graph.source[e], back = graph.reverse[e];  // edge i <- j
          axpy(dsc_[back] * invSqrtC_, &st.q[static_cast<std::size_t>(i) * C], dk.data(), C);
          axpy(st.alpha[back], &dO_[static_cast<std::size_t>(i) * C], dv.data(), C);
        }
        affineBackward(cv.key, dk.data(), dh.data());
        affineBackward(cv.value, dv.data(), dh.data());
        if (needInput) {
          double* dx = &dx_[static_cast<std::size_t>(j) * H];  // (0) has read it: free to overwrite
          std::fill(dx, dx + H, 0.0);
          affineBackward(cv.nodeIn, dh.data(), dx);
        }
      }
    }
  }

  // edges -> atoms and box: d_ij = r_j - r_i depends on r_i with -1; both directions of a
  // pair have the same length
  ranks_.sum(gr_);  // the edges into other ranks' atoms
  atomBox_.resize(9 * static_cast<std::size_t>(n));
  if (split) {  // summed over the ranks below
    std::fill(grad, grad + 3 * static_cast<std::size_t>(n), 0.0);
    std::fill(atomBox_.begin(), atomBox_.end(), 0.0);
  }
  #pragma omp parallel for num_threads(T) schedule(static)
  for (unsigned i = lo; i < hi; ++i) {
    double g[3] = {0, 0, 0}, b[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (unsigned e = graph.start[i]; e < graph.start[i + 1]; ++e) {
      const double* d = &graph.d[3 * static_cast<std::size_t>(e)];
      const double invr = 1.0 / graph.r[e];
      const double pair = (gr_[e] + gr_[graph.reverse[e]]) * invr, own = gr_[e] * invr;
      for (unsigned x = 0; x < 3; ++x) {
        g[x] -= pair * d[x];
        for (unsigned y = 0; y < 3; ++y) b[3 * y + x] -= own * d[y] * d[x];
      }
    }
    std::copy_n(g, 3, &grad[3 * static_cast<std::size_t>(i)]);
    std::copy_n(b, 9, &atomBox_[9 * static_cast<std::size_t>(i)]);
  }
  ranks_.sum(grad, 3 * static_cast<std::size_t>(n));
  ranks_.sum(atomBox_);  // every rank adds the box terms of all atoms in atom order
  std::fill(box, box + 9, 0.0);
  for (unsigned i = 0; i < n; ++i)
    for (unsigned q = 0; q < 9; ++q) box[q] += atomBox_[9 * static_cast<std::size_t>(i) + q];
}

void GraphNetwork::derivatives(const AtomGraph& graph, const Seeds& seeds, DerivativeSink& sink) {
  const unsigned nch = seeds.channels(), npair = seeds.npair, K = seeds.nclasses, n = n_, F = nout_;
  const std::size_t per = 3 * static_cast<std::size_t>(n);
  // channels beyond npair depend on W = nmol only: zero derivatives
  std::vector<double> grads(nch * per, 0.0), box(9 * static_cast<std::size_t>(nch), 0.0), seed(static_cast<std::size_t>(nmol_) * F);
  for (unsigned j = 0; j < npair; ++j) {
    for (unsigned m = 0; m < nmol_; ++m)
      for (unsigned k = 0; k < F; ++k) seed[static_cast<std::size_t>(m) * F + k] = k < K ? seeds.sigma[static_cast<std::size_t>(j) * K + k] : 0.0;
    backward(graph, seed.data(), &grads[j * per], &box[9 * j]);
  }
  #pragma omp parallel num_threads(nthreads_)
  {
    std::vector<double> local(static_cast<std::size_t>(nch) * 3 * apm_);
    #pragma omp for schedule(static)
    for (unsigned m = 0; m < nmol_; ++m) {
      for (unsigned j = 0; j < nch; ++j)
        std::copy_n(&grads[j * per + 3 * static_cast<std::size_t>(m) * apm_], 3 * apm_, &local[static_cast<std::size_t>(j) * 3 * apm_]);
      sink.molecule(m, local.data());
    }
  }
  sink.box(box.data());
}

}  // namespace molenv
}  // namespace PLMD
