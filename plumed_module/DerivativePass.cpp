/* molenv: derivatives contracted with per-molecule seeds (see DerivativePass.h). */
#include "DerivativePass.h"
#include "PairBlocks.h"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace PLMD {
namespace molenv {

Seeds Seeds::combination(const std::vector<double>& gamma, double delta) {
  Seeds s;
  s.nclasses = gamma.size();
  s.npair = 1;
  s.sigma = gamma;
  s.tau.assign(1, delta);
  return s;
}

Seeds Seeds::populations(unsigned K) {
  Seeds s;
  s.nclasses = K;
  s.npair = K;
  s.sigma.assign(static_cast<std::size_t>(K) * K, 0.0);
  for (unsigned k = 0; k < K; ++k) s.sigma[static_cast<std::size_t>(k) * K + k] = 1.0;
  s.tau.assign(K + 1, 0.0);
  s.tau[K] = 1.0;
  return s;
}

DerivativePass::DerivativePass(const SymmetryFunctions& sf, const Network& net, const AtomSlots& slots, unsigned nthreads,
                               const RankSplit& ranks)
    : sf_(sf), net_(net), slots_(slots), nthreads_(nthreads), ranks_(ranks), dbuf_(nthreads), boxbuf_(nthreads) {}

void DerivativePass::backward(const MoleculeFrame& frame, const ValuePass& values, const Seeds& seeds) {
  const unsigned T = nthreads_, N = frame.nmol, K = seeds.nclasses, S = sf_.size();
  npair_ = seeds.npair;
  nch_ = seeds.channels();
  stride_ = npair_ == 1 ? 1 : (npair_ + 3) / 4 * 4;
  // only the rows of active molecules are read, and their blocks are all written below;
  // with several channels the padding is read too (and must be 0); with several ranks the
  // rows of the other ranks' blocks are summed (and must be 0)
  if (npair_ == 1 && !ranks_.split()) jac_.resize(static_cast<std::size_t>(N) * S);
  else jac_.assign(static_cast<std::size_t>(N) * S * stride_, 0.0);
  constexpr unsigned NB = Network::kBlock;
  const std::vector<unsigned>& netList = values.netList();
  const unsigned blk0 = values.firstBlock(), blk1 = values.lastBlock();
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> w(NB), seed(static_cast<std::size_t>(NB) * K), grad(static_cast<std::size_t>(NB) * S);
    #pragma omp for schedule(static)
    for (unsigned blk = blk0; blk < blk1; ++blk) {
      const unsigned first = blk * NB, nm = std::min<unsigned>(NB, netList.size() - first);
      bool any = false;
      for (unsigned mm = 0; mm < nm; ++mm) {
        const unsigned m = netList[first + mm];
        w[mm] = frame.active[m] ? frame.weight[m] : 0.0;
        any |= w[mm] != 0.0;
      }
      if (!any) continue;  // no molecule of the block counts (computed for the files only)
      for (unsigned j = 0; j < npair_; ++j) {
        const double* sj = &seeds.sigma[static_cast<std::size_t>(j) * K];
        for (unsigned mm = 0; mm < nm; ++mm)
          for (unsigned k = 0; k < K; ++k) seed[static_cast<std::size_t>(mm) * K + k] = w[mm] * sj[k];
        net_.backward(nm, values.activations(blk), seed.data(), grad.data());
        for (unsigned mm = 0; mm < nm; ++mm) {
          double* out = &jac_[static_cast<std::size_t>(netList[first + mm]) * S * stride_];
          const double* g = &grad[static_cast<std::size_t>(mm) * S];
          for (unsigned q = 0; q < S; ++q) out[q * stride_ + j] = g[q];
        }
      }
    }
  }
  ranks_.sum(jac_);  // the rows of the other ranks' molecules, which this rank's pairs read
}

namespace {

constexpr unsigned Bk = SymmetryFunctions::kBlock;

/* How pass 2 contracts the pair-term derivatives with C = c(I) + c(J): block() for a
   block of pairs, then pair() for pair b of it; afterwards, for the channels j,
   radial(b)[j] = dX_j/dr = sum_q C_j[q] dt_q/dr and
   angular(b, s)[j] = dX_j/dcos theta_s = sum_q C_j[q] dt_q/dcos theta_s. */

/// One channel: the kernel contracts while it evaluates, vectorised over the pairs of the
/// block, with C gathered into pair columns.
class OneChannel {
public:
  static constexpr bool kSingle = true;
  OneChannel(const SymmetryFunctions& sf, const MoleculeFrame& frame, const double* jac, unsigned /*stride*/, unsigned /*npair*/)
      : sf_(sf), frame_(frame), jac_(jac), S_(sf.size()), C_(static_cast<std::size_t>(S_) * Bk), A_(Bk),
        B_(static_cast<std::size_t>(frame.nvec) * Bk + 1), zero_(S_, 0.0) {}
  static constexpr unsigned channels() { return 1; }

  void block(unsigned nb, const MoleculePair* p, const double* r, const double* cosTheta) {
    for (unsigned b = 0; b < nb; ++b) {
      rowI_[b] = frame_.active[p[b].i] ? &jac_[static_cast<std::size_t>(p[b].i) * S_] : zero_.data();  // inactive: w = 0
      rowJ_[b] = frame_.active[p[b].j] ? &jac_[static_cast<std::size_t>(p[b].j) * S_] : zero_.data();
    }
    pairblocks::sumRowsToColumns(nb, S_, rowI_, rowJ_, C_.data());  // C[q*Bk+b] = c_I[q] + c_J[q]
    sf_.contractedDerivatives(nb, r, cosTheta, C_.data(), A_.data(), B_.data());
  }
  void pair(unsigned /*b*/, const MoleculePair& /*p*/) {}
  const double* radial(unsigned b) const { return &A_[b]; }
  const double* angular(unsigned b, unsigned s) const { return &B_[s * Bk + b]; }

private:
  const SymmetryFunctions& sf_;
  const MoleculeFrame& frame_;
  const double* jac_;
  unsigned S_;
  std::vector<double> C_, A_, B_;
  const std::vector<double> zero_;
  const double* rowI_[Bk];
  const double* rowJ_[Bk];
};

/// Several channels: the kernel gives the term derivatives of the block, and each pair
/// contracts them with the padded rows of both molecules, q outer and the channels
/// inner, one independent (vectorisable) accumulator per channel.
class Channels {
public:
  static constexpr bool kSingle = false;
  Channels(const SymmetryFunctions& sf, const MoleculeFrame& frame, const double* jac, unsigned stride, unsigned npair)
      : sf_(sf), frame_(frame), jac_(jac), S_(sf.size()), Kp_(stride), nch_(npair), radEnd_(sf.radialEnd()),
        drb_(static_cast<std::size_t>(S_) * Bk), dcb_(static_cast<std::size_t>(S_) * Bk), dr_(S_), dc_(S_), A_(Kp_),
        B_(static_cast<std::size_t>(Kp_) * frame.nvec + 1), zero_(static_cast<std::size_t>(Kp_) * S_, 0.0) {}
  unsigned channels() const { return nch_; }

  void block(unsigned nb, const MoleculePair* /*p*/, const double* r, const double* cosTheta) {
    sf_.derivatives(nb, r, cosTheta, drb_.data(), dcb_.data());
  }
  void pair(unsigned b, const MoleculePair& p) {
    for (unsigned q = 0; q < S_; ++q) {
      dr_[q] = drb_[q * Bk + b];
      dc_[q] = dcb_[q * Bk + b];
    }
    const double* Ji = frame_.active[p.i] ? &jac_[static_cast<std::size_t>(p.i) * Kp_ * S_] : zero_.data();  // inactive: w = 0
    const double* Jj = frame_.active[p.j] ? &jac_[static_cast<std::size_t>(p.j) * Kp_ * S_] : zero_.data();
    std::fill(A_.begin(), A_.end(), 0.0);
    std::fill(B_.begin(), B_.end(), 0.0);
    double* __restrict a = A_.data();
    for (unsigned q = 0; q < radEnd_; ++q) {
      const double* __restrict ji = Ji + q * Kp_;
      const double* __restrict jj = Jj + q * Kp_;
      const double d = dr_[q];
      for (unsigned k = 0; k < Kp_; ++k) a[k] += (ji[k] + jj[k]) * d;
    }
    // angular terms depend on r only in the switching shell
    const bool edge = p.r > sf_.rmin();
    for (unsigned s = 0; s < frame_.nvec; ++s) {
      double* __restrict bv = B_.data() + s * Kp_;
      for (unsigned q = sf_.angularBegin(s); q < sf_.angularEnd(s); ++q) {
        const double* __restrict ji = Ji + q * Kp_;
        const double* __restrict jj = Jj + q * Kp_;
        const double d = dc_[q];
        for (unsigned k = 0; k < Kp_; ++k) bv[k] += (ji[k] + jj[k]) * d;
        if (edge) {
          const double e = dr_[q];
          for (unsigned k = 0; k < Kp_; ++k) a[k] += (ji[k] + jj[k]) * e;
        }
      }
    }
  }
  const double* radial(unsigned /*b*/) const { return A_.data(); }
  const double* angular(unsigned /*b*/, unsigned s) const { return &B_[s * Kp_]; }

private:
  const SymmetryFunctions& sf_;
  const MoleculeFrame& frame_;
  const double* jac_;
  unsigned S_, Kp_, nch_, radEnd_;
  std::vector<double> drb_, dcb_, dr_, dc_, A_, B_;
  const std::vector<double> zero_;
};

}  // namespace

void DerivativePass::pairDerivatives(const MoleculeFrame& frame, const PairLists& pairs) {
  if (npair_ == 1) pairLoop<OneChannel>(frame, pairs);
  else pairLoop<Channels>(frame, pairs);
}

template <class Contraction>
void DerivativePass::pairLoop(const MoleculeFrame& frame, const PairLists& pairs) {
  const unsigned T = nthreads_, N = frame.nmol, V = frame.nvec;
  const unsigned FS = 3 * (1 + V);       // per molecule and channel: centre, then each vector
  const unsigned dstride = npair_ * FS;  // per molecule
  // dX_j/dd = (dX_j/dr) d/r and dX_j/dv_I,s = (dX_j/dcos_s) (u_J - cos_s u_I)/|v_I,s|: the
  // divisions by r and |v| go to the side with fewer numbers, the channel factor when
  // there is one channel, the geometry when there are several (the other side is
  // divided by 1, which the compiler drops)
  constexpr bool single = Contraction::kSingle;
  #pragma omp parallel num_threads(T)
  {
    #pragma omp for schedule(static, 1)
    for (unsigned t = 0; t < T; ++t) {
      std::vector<double>& db = dbuf_[t];
      db.assign(static_cast<std::size_t>(N) * dstride, 0.0);
      // the box sum of the thread's pairs: in a vector of its own, copied to boxbuf_[t] at
      // the end (the small per-thread vectors may share cache lines: no writes per pair)
      std::vector<double> box(9 * nch_, 0.0);
      Contraction ctr(sf_, frame, jac_.data(), stride_, npair_);
      std::vector<double> rb(Bk), cb(static_cast<std::size_t>(V) * Bk + 1);
      const std::vector<MoleculePair>& list = pairs[t];
      for (std::size_t p0 = 0; p0 < list.size(); p0 += Bk) {
        const unsigned nb = std::min<std::size_t>(Bk, list.size() - p0);
        pairblocks::pairColumns(frame, &list[p0], nb, rb.data(), cb.data());
        ctr.block(nb, &list[p0], rb.data(), cb.data());
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          if (!frame.active[p.i] && !frame.active[p.j]) continue;  // only needed for files/vectors
          if (!(p.r > 0.0)) continue;                                // coincident centres: no direction
          ctr.pair(b, p);
          double* fi = &db[static_cast<std::size_t>(p.i) * dstride];
          double* fj = &db[static_cast<std::size_t>(p.j) * dstride];
          // centres (d = r_J - r_I) and the box: -d (x) dX/dd
          const double* dXdr = ctr.radial(b);
          const double rc = single ? p.r : 1.0, rg = single ? 1.0 : 1.0 / p.r;
          const double dir[3] = {p.d[0] * rg, p.d[1] * rg, p.d[2] * rg};
          for (unsigned j = 0; j < ctr.channels(); ++j) {
            const double a = dXdr[j] / rc;
            double* bx = &box[9 * j];
            for (unsigned x = 0; x < 3; ++x) {
              const double f = a * dir[x];
              fi[j * FS + x] -= f;
              fj[j * FS + x] += f;
              for (unsigned y = 0; y < 3; ++y) bx[3 * y + x] -= p.d[y] * f;
            }
          }
          // vectors: d cos_s / d v_I = (u_J - c u_I)/|v_I|, and symmetrically for J
          for (unsigned s = 0; s < V; ++s) {
            const double c = cb[s * Bk + b];
            const double* ui = &frame.unitv[3 * (p.i * V + s)];
            const double* uj = &frame.unitv[3 * (p.j * V + s)];
            const double li = frame.vlen[p.i * V + s], lj = frame.vlen[p.j * V + s];
            const double ci = single ? li : 1.0, cj = single ? lj : 1.0, gi = single ? 1.0 : li, gj = single ? 1.0 : lj;
            const double hi[3] = {(uj[0] - c * ui[0]) / gi, (uj[1] - c * ui[1]) / gi, (uj[2] - c * ui[2]) / gi};
            const double hj[3] = {(ui[0] - c * uj[0]) / gj, (ui[1] - c * uj[1]) / gj, (ui[2] - c * uj[2]) / gj};
            const double* dXdc = ctr.angular(b, s);
            for (unsigned j = 0; j < ctr.channels(); ++j) {
              const double bs = dXdc[j];
              if (bs == 0.0) continue;
              const double ai = bs / ci, aj = bs / cj;
              double* vi = fi + j * FS + 3 * (1 + s);
              double* vj = fj + j * FS + 3 * (1 + s);
              for (unsigned x = 0; x < 3; ++x) {
                vi[x] += ai * hi[x];
                vj[x] += aj * hj[x];
              }
            }
          }
        }
      }
      boxbuf_[t] = box;
    }
  }
}

void DerivativePass::sumOverRanks(unsigned nmol) {
  const unsigned T = nthreads_;
  const std::size_t per = dbuf_[0].size() / nmol;  // numbers per molecule
  #pragma omp parallel for num_threads(T) schedule(static)
  for (unsigned m = 0; m < nmol; ++m)
    for (unsigned t = 1; t < T; ++t)
      for (std::size_t q = per * m; q < per * (m + 1); ++q) dbuf_[0][q] += dbuf_[t][q];
  for (unsigned t = 1; t < T; ++t)
    for (std::size_t q = 0; q < boxbuf_[0].size(); ++q) boxbuf_[0][q] += boxbuf_[t][q];
  ranks_.sum(dbuf_[0]);
  ranks_.sum(boxbuf_[0]);
}

void DerivativePass::reduce(const MoleculeFrame& frame, const ValuePass& values, const Seeds& seeds, const SlabRegion& region,
                            DerivativeSink& sink) {
  const unsigned T = nthreads_, N = frame.nmol, V = frame.nvec, K = seeds.nclasses, L = slots_.nlocal;
  const unsigned FS = 3 * (1 + V), dstride = npair_ * FS, nch = nch_;
  // the buffers to add per molecule: the threads' (one rank), else thread 0's holding the sum
  // over the threads and the ranks; every rank then reduces every molecule
  const unsigned nbuf = ranks_.split() ? 1 : T;
  if (ranks_.split()) sumOverRanks(N);
  const std::vector<double>& prob = values.prob();
  // a centroid centre passes the derivative with respect to it to its atoms in equal parts
  const std::vector<unsigned>& centre = slots_.centre;
  const double share = 1.0 / centre.size();
  // each thread's box sum (zeros for threads the team may not have)
  std::vector<std::vector<double>> boxPart(T, std::vector<double>(9 * nch, 0.0));
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> local(static_cast<std::size_t>(nch) * 3 * L), D(dstride);
    const int tid =
#ifdef _OPENMP
        omp_get_thread_num();
#else
        0;
#endif
    std::vector<double> part(9 * nch, 0.0);  // copied to boxPart[tid] at the end (see pairLoop)
    double* bp = part.data();
    #pragma omp for schedule(static)
    for (unsigned m = 0; m < N; ++m) {
      std::copy_n(&dbuf_[0][static_cast<std::size_t>(m) * dstride], dstride, D.begin());
      for (unsigned t = 1; t < nbuf; ++t) {
        const double* dt = &dbuf_[t][static_cast<std::size_t>(m) * dstride];
        for (unsigned q = 0; q < dstride; ++q) D[q] += dt[q];
      }
      std::fill(local.begin(), local.end(), 0.0);
      const double* dw = &frame.dweight[3 * m];
      const double* ri = &frame.rbox[3 * m];
      const bool inShell = region.enabled && (dw[0] != 0.0 || dw[1] != 0.0 || dw[2] != 0.0);
      for (unsigned j = 0; j < nch; ++j) {
        double* lj = &local[static_cast<std::size_t>(j) * 3 * L];
        double* bj = bp + 9 * j;
        if (j < npair_) {
          const double* dj = &D[j * FS];
          for (unsigned c : centre)
            for (unsigned x = 0; x < 3; ++x) lj[3 * c + x] += dj[x] * share;
          for (unsigned s = 0; s < V; ++s) {
            if (slots_.normal[s]) {
              // v = a x b: dF/da = b x g, dF/db = g x a (g = dF/dv); the box sees the arms
              const double* g = &dj[3 * (1 + s)];
              const double* a = &frame.arms[6 * (m * V + s)];
              const double* b = a + 3;
              const double ga[3] = {b[1] * g[2] - b[2] * g[1], b[2] * g[0] - b[0] * g[2], b[0] * g[1] - b[1] * g[0]};
              const double gb[3] = {g[1] * a[2] - g[2] * a[1], g[2] * a[0] - g[0] * a[2], g[0] * a[1] - g[1] * a[0]};
              for (unsigned x = 0; x < 3; ++x) {
                lj[3 * slots_.vecB[s] + x] += ga[x];
                lj[3 * slots_.vecA[s] + x] -= ga[x];
                lj[3 * slots_.vecD[s] + x] += gb[x];
                lj[3 * slots_.vecC[s] + x] -= gb[x];
                for (unsigned y = 0; y < 3; ++y) bj[3 * y + x] -= a[y] * ga[x] + b[y] * gb[x];  // -a (x) dF/da - b (x) dF/db
              }
              continue;
            }
            const double* vr = &frame.vraw[3 * (m * V + s)];
            for (unsigned x = 0; x < 3; ++x) {
              const double g = dj[3 * (1 + s) + x];
              lj[3 * slots_.vecB[s] + x] += g;
              lj[3 * slots_.vecA[s] + x] -= g;
              for (unsigned y = 0; y < 3; ++y) bj[3 * y + x] -= vr[y] * g;  // -v (x) dF/dv
            }
          }
        }
        if (inShell) {
          // X_j depends on w_I through (tau_j + sigma_j . p(I)) w_I
          double coef = seeds.tau[j];
          if (j < npair_)
            for (unsigned k = 0; k < K; ++k) coef += seeds.sigma[static_cast<std::size_t>(j) * K + k] * prob[static_cast<std::size_t>(m) * K + k];
          for (unsigned x = 0; x < 3; ++x) {
            const double g = coef * dw[x];
            for (unsigned c : centre) lj[3 * c + x] += g * share;
            for (unsigned y = 0; y < 3; ++y) bj[3 * y + x] -= ri[y] * g;  // see SlabRegion.h
          }
        }
      }
      sink.molecule(m, local.data());
    }
    boxPart[tid] = part;
  }
  // box, summed in thread order
  std::vector<double> boxTotal(9 * nch, 0.0);
  for (unsigned t = 0; t < T; ++t)
    for (unsigned q = 0; q < boxTotal.size(); ++q) boxTotal[q] += (t < nbuf ? boxbuf_[t][q] : 0.0) + boxPart[t][q];
  sink.box(boxTotal.data());
}

}  // namespace molenv
}  // namespace PLMD
