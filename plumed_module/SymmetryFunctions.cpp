/* molenv: symmetry-function pair terms and derivatives (see SymmetryFunctions.h).

   S1 = sum_J exp(-eta (r - Rs)^2) fc(r)          S2 = sum_J cos(kappa r) fc(r)
   S3 = sum_J exp(-eta (c_s - cs)^2) fc(r)        S4 = sum_J cos(kappa c_s) fc(r)
   with c_s = cos theta_IJ,s and r in Angstrom (METHOD.md section 2). */
#include "SymmetryFunctions.h"
#include "FastMath.h"

#include <algorithm>
#include <cmath>

namespace PLMD {
namespace molenv {

SymmetryFunctions::SymmetryFunctions(const Model& model)
    : nvec_(model.vectors.size()), rmin_(model.rmin), rmax_(model.rmax), piOverWidth_(M_PI / (model.rmax - model.rmin)) {
  const auto& d = model.descriptors;
  for (unsigned i = 0; i < d.size(); ++i)
    if (d[i].kind == SFKind::S1) { order_.push_back(i); s1Rs_.push_back(d[i].p0); s1Eta_.push_back(d[i].p1); }
  nS1_ = order_.size();
  for (unsigned i = 0; i < d.size(); ++i)
    if (d[i].kind == SFKind::S2) { order_.push_back(i); s2Kappa_.push_back(d[i].p0); }
  nS2_ = order_.size() - nS1_;
  angOff_.push_back(order_.size());
  for (unsigned s = 0; s < nvec_; ++s) {
    unsigned before = order_.size();
    for (unsigned i = 0; i < d.size(); ++i)
      if (d[i].kind == SFKind::S3 && d[i].vector == static_cast<int>(s)) {
        order_.push_back(i); s3Cos_.push_back(d[i].p0); s3Eta_.push_back(d[i].p1); s4Kappa_.push_back(0.0);
      }
    nS3_.push_back(order_.size() - before);
    for (unsigned i = 0; i < d.size(); ++i)
      if (d[i].kind == SFKind::S4 && d[i].vector == static_cast<int>(s)) {
        order_.push_back(i); s3Cos_.push_back(0.0); s3Eta_.push_back(0.0); s4Kappa_.push_back(d[i].p0);
      }
    angOff_.push_back(order_.size());
  }
  // FastMath::sinCos is exact for |x| < 2^20; kappa*r (r < rmax) or kappa*cos beyond that
  // would need libm's full argument reduction
  double big = 0.0;
  for (double k : s2Kappa_) big = std::max(big, std::fabs(k) * rmax_);
  for (double k : s4Kappa_) big = std::max(big, std::fabs(k));
  libm_ = big >= 1e6;
}

void SymmetryFunctions::cutoff(double r, double& fc, double& dfc) const {
  if (r <= rmin_) { fc = 1.0; dfc = 0.0; return; }
  if (r >= rmax_) { fc = 0.0; dfc = 0.0; return; }
  const double x = piOverWidth_ * (r - rmin_);
  fc = 0.5 * (std::cos(x) + 1.0);
  dfc = -0.5 * piOverWidth_ * std::sin(x);
}

void SymmetryFunctions::cutoffBlock(unsigned n, const double* r, double* fc, double* dfc) const {
  // scalar: only the few pairs in the switching shell need a cosine
  for (unsigned b = 0; b < n; ++b) cutoff(r[b], fc[b], dfc[b]);
}

namespace {

/// Everything the block kernels need, as plain arrays.
struct Params {
  unsigned nS1, nS2, nvec, base;
  const double *s1Rs, *s1Eta, *s2Kappa, *s3Cos, *s3Eta, *s4Kappa;
  const unsigned *angOff, *nS3;
};

constexpr unsigned B = SymmetryFunctions::kBlock;

template <bool Fast>
inline double expNeg(double x) {
  return Fast ? fastmath::expNegative(x) : std::exp(x);
}
template <bool Fast>
inline void sinCos(double x, double& s, double& c) {
  if (Fast) {
    fastmath::sinCos(x, s, c);
  } else {
    s = std::sin(x);
    c = std::cos(x);
  }
}

// The loops over b (pairs of a block) are the ones the compiler vectorises.
template <bool Fast>
inline __attribute__((always_inline)) void valuesImpl(const Params& P, unsigned n, const double* __restrict r,
                                                      const double* __restrict fc, const double* __restrict cosv,
                                                      double* __restrict t) {
  for (unsigned i = 0; i < P.nS1; ++i) {
    const double rs = P.s1Rs[i], eta = P.s1Eta[i];
    double* __restrict out = t + i * B;
    for (unsigned b = 0; b < n; ++b) {
      const double x = r[b] - rs;
      out[b] = expNeg<Fast>(-eta * x * x) * fc[b];
    }
  }
  for (unsigned i = 0; i < P.nS2; ++i) {
    const double k = P.s2Kappa[i];
    double* __restrict out = t + (P.nS1 + i) * B;
    for (unsigned b = 0; b < n; ++b) {
      double sn, cs;
      sinCos<Fast>(k * r[b], sn, cs);
      out[b] = cs * fc[b];
    }
  }
  for (unsigned s = 0; s < P.nvec; ++s) {
    const double* __restrict c = cosv + s * B;
    const unsigned beg = P.angOff[s], mid = beg + P.nS3[s], end = P.angOff[s + 1];
    for (unsigned i = beg; i < mid; ++i) {
      const double c0 = P.s3Cos[i - P.base], eta = P.s3Eta[i - P.base];
      double* __restrict out = t + i * B;
      for (unsigned b = 0; b < n; ++b) {
        const double x = c[b] - c0;
        out[b] = expNeg<Fast>(-eta * x * x) * fc[b];
      }
    }
    for (unsigned i = mid; i < end; ++i) {
      const double k = P.s4Kappa[i - P.base];
      double* __restrict out = t + i * B;
      for (unsigned b = 0; b < n; ++b) {
        double sn, cs;
        sinCos<Fast>(k * c[b], sn, cs);
        out[b] = cs * fc[b];
      }
    }
  }
}

template <bool Fast>
inline __attribute__((always_inline)) void derivativesImpl(const Params& P, unsigned n, const double* __restrict r,
                                                           const double* __restrict fc, const double* __restrict dfc,
                                                           const double* __restrict cosv, double* __restrict dr,
                                                           double* __restrict dc) {
  for (unsigned i = 0; i < P.nS1; ++i) {
    const double rs = P.s1Rs[i], eta = P.s1Eta[i];
    double* __restrict o = dr + i * B;
    double* __restrict oc = dc + i * B;
    for (unsigned b = 0; b < n; ++b) {
      const double x = r[b] - rs;
      const double e = expNeg<Fast>(-eta * x * x);
      o[b] = e * (dfc[b] - 2.0 * eta * x * fc[b]);
      oc[b] = 0.0;
    }
  }
  for (unsigned i = 0; i < P.nS2; ++i) {
    const double k = P.s2Kappa[i];
    double* __restrict o = dr + (P.nS1 + i) * B;
    double* __restrict oc = dc + (P.nS1 + i) * B;
    for (unsigned b = 0; b < n; ++b) {
      double sn, cs;
      sinCos<Fast>(k * r[b], sn, cs);
      o[b] = cs * dfc[b] - k * sn * fc[b];
      oc[b] = 0.0;
    }
  }
  for (unsigned s = 0; s < P.nvec; ++s) {
    const double* __restrict c = cosv + s * B;
    const unsigned beg = P.angOff[s], mid = beg + P.nS3[s], end = P.angOff[s + 1];
    for (unsigned i = beg; i < mid; ++i) {
      const double c0 = P.s3Cos[i - P.base], eta = P.s3Eta[i - P.base];
      double* __restrict o = dr + i * B;
      double* __restrict oc = dc + i * B;
      for (unsigned b = 0; b < n; ++b) {
        const double x = c[b] - c0;
        const double g = expNeg<Fast>(-eta * x * x);
        oc[b] = -2.0 * eta * x * g * fc[b];
        o[b] = g * dfc[b];  // zero unless the pair is in the switching shell
      }
    }
    for (unsigned i = mid; i < end; ++i) {
      const double k = P.s4Kappa[i - P.base];
      double* __restrict o = dr + i * B;
      double* __restrict oc = dc + i * B;
      for (unsigned b = 0; b < n; ++b) {
        double sn, cs;
        sinCos<Fast>(k * c[b], sn, cs);
        oc[b] = -k * sn * fc[b];
        o[b] = cs * dfc[b];
      }
    }
  }
}

MOLENV_CLONES void valuesFast(const Params& P, unsigned n, const double* r, const double* fc, const double* cosv, double* t) {
  valuesImpl<true>(P, n, r, fc, cosv, t);
}
void valuesLibm(const Params& P, unsigned n, const double* r, const double* fc, const double* cosv, double* t) {
  valuesImpl<false>(P, n, r, fc, cosv, t);
}
MOLENV_CLONES void derivativesFast(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv,
                                   double* dr, double* dc) {
  derivativesImpl<true>(P, n, r, fc, dfc, cosv, dr, dc);
}
void derivativesLibm(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv, double* dr,
                     double* dc) {
  derivativesImpl<false>(P, n, r, fc, dfc, cosv, dr, dc);
}

template <bool Fast>
inline __attribute__((always_inline)) void contractedImpl(const Params& P, unsigned n, const double* __restrict r,
                                                          const double* __restrict fc, const double* __restrict dfc,
                                                          const double* __restrict cosv, const double* __restrict C,
                                                          double* __restrict A, double* __restrict Bc) {
  for (unsigned b = 0; b < n; ++b) A[b] = 0.0;
  for (unsigned s = 0; s < P.nvec; ++s)
    for (unsigned b = 0; b < n; ++b) Bc[s * B + b] = 0.0;
  for (unsigned i = 0; i < P.nS1; ++i) {
    const double rs = P.s1Rs[i], eta = P.s1Eta[i];
    const double* __restrict w = C + i * B;
    for (unsigned b = 0; b < n; ++b) {
      const double x = r[b] - rs;
      const double e = expNeg<Fast>(-eta * x * x);
      A[b] += w[b] * (e * (dfc[b] - 2.0 * eta * x * fc[b]));
    }
  }
  for (unsigned i = 0; i < P.nS2; ++i) {
    const double k = P.s2Kappa[i];
    const double* __restrict w = C + (P.nS1 + i) * B;
    for (unsigned b = 0; b < n; ++b) {
      double sn, cs;
      sinCos<Fast>(k * r[b], sn, cs);
      A[b] += w[b] * (cs * dfc[b] - k * sn * fc[b]);
    }
  }
  for (unsigned s = 0; s < P.nvec; ++s) {
    const double* __restrict c = cosv + s * B;
    double* __restrict bs = Bc + s * B;
    const unsigned beg = P.angOff[s], mid = beg + P.nS3[s], end = P.angOff[s + 1];
    for (unsigned i = beg; i < mid; ++i) {
      const double c0 = P.s3Cos[i - P.base], eta = P.s3Eta[i - P.base];
      const double* __restrict w = C + i * B;
      for (unsigned b = 0; b < n; ++b) {
        const double x = c[b] - c0;
        const double g = expNeg<Fast>(-eta * x * x);
        bs[b] += w[b] * (-2.0 * eta * x * g * fc[b]);
        A[b] += w[b] * (g * dfc[b]);  // zero unless the pair is in the switching shell
      }
    }
    for (unsigned i = mid; i < end; ++i) {
      const double k = P.s4Kappa[i - P.base];
      const double* __restrict w = C + i * B;
      for (unsigned b = 0; b < n; ++b) {
        double sn, cs;
        sinCos<Fast>(k * c[b], sn, cs);
        bs[b] += w[b] * (-k * sn * fc[b]);
        A[b] += w[b] * (cs * dfc[b]);
      }
    }
  }
}

MOLENV_CLONES void contractedFast(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv,
                                  const double* C, double* A, double* Bc) {
  contractedImpl<true>(P, n, r, fc, dfc, cosv, C, A, Bc);
}
void contractedLibm(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv, const double* C,
                    double* A, double* Bc) {
  contractedImpl<false>(P, n, r, fc, dfc, cosv, C, A, Bc);
}

}  // namespace

#define MOLENV_PARAMS                                                                                                          \
  Params P{nS1_, nS2_, nvec_, radialEnd(), s1Rs_.data(), s1Eta_.data(), s2Kappa_.data(), s3Cos_.data(), s3Eta_.data(), \
           s4Kappa_.data(), angOff_.data(), nS3_.data()}

void SymmetryFunctions::values(unsigned n, const double* r, const double* cosTheta, double* t) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  MOLENV_PARAMS;
  if (libm_) valuesLibm(P, n, r, fc, cosTheta, t);
  else valuesFast(P, n, r, fc, cosTheta, t);
}

void SymmetryFunctions::derivatives(unsigned n, const double* r, const double* cosTheta, double* dr, double* dc) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  MOLENV_PARAMS;
  if (libm_) derivativesLibm(P, n, r, fc, dfc, cosTheta, dr, dc);
  else derivativesFast(P, n, r, fc, dfc, cosTheta, dr, dc);
}

void SymmetryFunctions::contractedDerivatives(unsigned n, const double* r, const double* cosTheta, const double* C, double* A,
                                              double* Bc) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  MOLENV_PARAMS;
  if (libm_) contractedLibm(P, n, r, fc, dfc, cosTheta, C, A, Bc);
  else contractedFast(P, n, r, fc, dfc, cosTheta, C, A, Bc);
}

}  // namespace molenv
}  // namespace PLMD
