/* molenv: symmetry-function pair terms and derivatives (see SymmetryFunctions.h).

   S1 = sum_J exp(-eta (r - Rs)^2) fc(r)          S2 = sum_J cos(kappa r) fc(r)
   S3 = sum_J exp(-eta (c_s - cs)^2) fc(r)        S4 = sum_J cos(kappa c_s) fc(r)
   with c_s = cos theta_IJ,s and r in Angstrom (METHOD.md section 2), c_s^2 in place of c_s
   for a sign-invariant vector s.

   Each kind's pair term and its partial derivatives are written once (Kind: a Gaussian
   or a cosine shape, radial or angular); the three kernels (values, derivatives,
   derivatives contracted with weights) differ only in what they do with them, and all
   visit the descriptors in the same order (forEachDescriptor). */
#include "SymmetryFunctions.h"
#include "FastMath.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

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
    squared_.push_back(model.vectors[s].signInvariant);
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

struct SymmetryFunctions::Params {
  unsigned nS1, nS2, nvec, base;
  const double *s1Rs, *s1Eta, *s2Kappa, *s3Cos, *s3Eta, *s4Kappa;
  const unsigned *angOff, *nS3;
  const char* squared;
};

SymmetryFunctions::Params SymmetryFunctions::params() const {
  return {nS1_, nS2_, nvec_, radialEnd(), s1Rs_.data(), s1Eta_.data(), s2Kappa_.data(),
          s3Cos_.data(), s3Eta_.data(), s4Kappa_.data(), angOff_.data(), nS3_.data(), squared_.data()};
}

namespace {

using Params = SymmetryFunctions::Params;
constexpr unsigned B = SymmetryFunctions::kBlock;

// Fast: FastMath's branch-free versions (vectorised); else libm (huge arguments)
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

/* Every kind is a shape f, a Gaussian or a cosine, of one variable x, r for the radial
   kinds and c = cos theta_s for the angular ones, times the cutoff fc(r):
       radial  (S1, S2):  t = f(r) fc(r),  dt/dr = f dfc + f' fc,  dt/dc = 0
       angular (S3, S4):  t = f(c) fc(r),  dt/dr = f dfc,          dt/dc = f' fc
   Everything below is inlined into the kernels' loops over pairs, so what a kernel does
   not use (the derivatives in the values kernel) is not computed. */

/// f(x) = exp(-eta (x - centre)^2) and f'(x)
template <bool Fast>
struct Gaussian {
  double centre, eta;
  void operator()(double x, double& f, double& df) const {
    const double d = x - centre;
    f = expNeg<Fast>(-eta * d * d);
    df = -2.0 * eta * d * f;
  }
};

/// f(x) = cos(kappa x) and f'(x)
template <bool Fast>
struct Cosine {
  double kappa;
  void operator()(double x, double& f, double& df) const {
    double sn;
    sinCos<Fast>(kappa * x, sn, f);
    df = -kappa * sn;
  }
};

/// f(x^2) and its derivative in x: the shape of a sign-invariant vector's angular kinds
template <class Shape>
struct OfSquare {
  Shape f;
  void operator()(double x, double& v, double& dv) const {
    double d;
    f(x * x, v, d);
    dv = 2.0 * x * d;
  }
};

/// The pair term t of one descriptor, dt/dr and dt/dc.
struct Term {
  double t, dr, dc;
};

/// A kind: its shape f of x = r (radial) or x = c (angular), times fc(r).
template <class Shape, bool Angular>
struct Kind {
  static constexpr bool kAngular = Angular;
  Shape f;
  Term operator()(double x, double fc, double dfc) const {
    double v, dv;
    f(x, v, dv);
    // angular: dt/dr is zero unless the pair is in the switching shell
    return Angular ? Term{v * fc, v * dfc, dv * fc} : Term{v * fc, v * dfc + dv * fc, 0.0};
  }
};

template <bool Fast> using S1 = Kind<Gaussian<Fast>, false>;
template <bool Fast> using S2 = Kind<Cosine<Fast>, false>;
template <bool Fast> using S3 = Kind<Gaussian<Fast>, true>;
template <bool Fast> using S4 = Kind<Cosine<Fast>, true>;
template <bool Fast> using S3OfSquare = Kind<OfSquare<Gaussian<Fast>>, true>;
template <bool Fast> using S4OfSquare = Kind<OfSquare<Cosine<Fast>>, true>;

/// visit(i, s, kind, x) for every internal descriptor i, in internal order: its kind
/// with its parameters, and x, the column it is evaluated on (r, or the cosines of
/// vector s; s is 0 for the radial kinds).  The visitors are always inlined, capture
/// by reference and add no __restrict of their own, so that their loops stay in the
/// kernel's __restrict scope: GCC then vectorises them and unrolls-and-jams the loop
/// over descriptors without checks for overlapping columns.
template <bool Fast, class Visit>
inline __attribute__((always_inline)) void forEachDescriptor(const Params& P, const double* r, const double* cosv, Visit&& visit) {
  for (unsigned i = 0; i < P.nS1; ++i) visit(i, 0u, S1<Fast>{{P.s1Rs[i], P.s1Eta[i]}}, r);
  for (unsigned i = 0; i < P.nS2; ++i) visit(P.nS1 + i, 0u, S2<Fast>{{P.s2Kappa[i]}}, r);
  for (unsigned s = 0; s < P.nvec; ++s) {
    const double* c = cosv + s * B;
    const unsigned beg = P.angOff[s], mid = beg + P.nS3[s], end = P.angOff[s + 1];
    if (P.squared[s]) {
      for (unsigned i = beg; i < mid; ++i) visit(i, s, S3OfSquare<Fast>{{{P.s3Cos[i - P.base], P.s3Eta[i - P.base]}}}, c);
      for (unsigned i = mid; i < end; ++i) visit(i, s, S4OfSquare<Fast>{{{P.s4Kappa[i - P.base]}}}, c);
      continue;
    }
    for (unsigned i = beg; i < mid; ++i) visit(i, s, S3<Fast>{{P.s3Cos[i - P.base], P.s3Eta[i - P.base]}}, c);
    for (unsigned i = mid; i < end; ++i) visit(i, s, S4<Fast>{{P.s4Kappa[i - P.base]}}, c);
  }
}

// The kernels on a block: n pairs, the columns r, fc, dfc (at r) and cosv (s*B + b).

template <bool Fast>
inline __attribute__((always_inline)) void valuesImpl(const Params& P, unsigned n, const double* __restrict r,
                                                      const double* __restrict fc, const double* __restrict dfc,
                                                      const double* __restrict cosv, double* __restrict t) {
  forEachDescriptor<Fast>(P, r, cosv, [&](unsigned i, unsigned /*s*/, const auto& kind, const double* x) __attribute__((always_inline)) {
    double* __restrict out = t + i * B;
    for (unsigned b = 0; b < n; ++b) out[b] = kind(x[b], fc[b], dfc[b]).t;
  });
}

template <bool Fast>
inline __attribute__((always_inline)) void derivativesImpl(const Params& P, unsigned n, const double* __restrict r,
                                                           const double* __restrict fc, const double* __restrict dfc,
                                                           const double* __restrict cosv, double* __restrict dr,
                                                           double* __restrict dc) {
  forEachDescriptor<Fast>(P, r, cosv, [&](unsigned i, unsigned /*s*/, const auto& kind, const double* x) __attribute__((always_inline)) {
    double* __restrict o = dr + i * B;
    double* __restrict oc = dc + i * B;
    for (unsigned b = 0; b < n; ++b) {
      const Term d = kind(x[b], fc[b], dfc[b]);
      o[b] = d.dr;
      oc[b] = d.dc;
    }
  });
}

template <bool Fast>
inline __attribute__((always_inline)) void contractedImpl(const Params& P, unsigned n, const double* __restrict r,
                                                          const double* __restrict fc, const double* __restrict dfc,
                                                          const double* __restrict cosv, const double* __restrict C,
                                                          double* __restrict A, double* __restrict Bc) {
  for (unsigned b = 0; b < n; ++b) A[b] = 0.0;
  for (unsigned s = 0; s < P.nvec; ++s)
    for (unsigned b = 0; b < n; ++b) Bc[s * B + b] = 0.0;
  forEachDescriptor<Fast>(P, r, cosv, [&](unsigned i, unsigned s, const auto& kind, const double* x) __attribute__((always_inline)) {
    const double* __restrict w = C + i * B;
    double* __restrict bs = Bc + s * B;
    for (unsigned b = 0; b < n; ++b) {
      const Term d = kind(x[b], fc[b], dfc[b]);
      if constexpr (std::decay_t<decltype(kind)>::kAngular) bs[b] += w[b] * d.dc;
      A[b] += w[b] * d.dr;
    }
  });
}

// One entry per kernel and kind of maths: FastMath's, cloned per instruction set, and libm's.
MOLENV_CLONES void valuesFast(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv,
                              double* t) {
  valuesImpl<true>(P, n, r, fc, dfc, cosv, t);
}
void valuesLibm(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv, double* t) {
  valuesImpl<false>(P, n, r, fc, dfc, cosv, t);
}
MOLENV_CLONES void derivativesFast(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv,
                                   double* dr, double* dc) {
  derivativesImpl<true>(P, n, r, fc, dfc, cosv, dr, dc);
}
void derivativesLibm(const Params& P, unsigned n, const double* r, const double* fc, const double* dfc, const double* cosv, double* dr,
                     double* dc) {
  derivativesImpl<false>(P, n, r, fc, dfc, cosv, dr, dc);
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

void SymmetryFunctions::values(unsigned n, const double* r, const double* cosTheta, double* t) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  (libm_ ? valuesLibm : valuesFast)(params(), n, r, fc, dfc, cosTheta, t);
}

void SymmetryFunctions::derivatives(unsigned n, const double* r, const double* cosTheta, double* dr, double* dc) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  (libm_ ? derivativesLibm : derivativesFast)(params(), n, r, fc, dfc, cosTheta, dr, dc);
}

void SymmetryFunctions::contractedDerivatives(unsigned n, const double* r, const double* cosTheta, const double* C, double* A,
                                              double* Bc) const {
  double fc[B], dfc[B];
  cutoffBlock(n, r, fc, dfc);
  (libm_ ? contractedLibm : contractedFast)(params(), n, r, fc, dfc, cosTheta, C, A, Bc);
}

}  // namespace molenv
}  // namespace PLMD
