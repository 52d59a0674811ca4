/* molenv: symmetry-function pair terms and derivatives (see SymmetryFunctions.h).

   S1 = sum_J exp(-eta (r - Rs)^2) fc(r)          S2 = sum_J cos(kappa r) fc(r)
   S3 = sum_J exp(-eta (c_s - cs)^2) fc(r)        S4 = sum_J cos(kappa c_s) fc(r)
   with c_s = cos theta_IJ,s and r in Angstrom (METHOD.md section 2). */
#include "SymmetryFunctions.h"

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
}

void SymmetryFunctions::cutoff(double r, double& fc, double& dfc) const {
  if (r <= rmin_) { fc = 1.0; dfc = 0.0; return; }
  if (r >= rmax_) { fc = 0.0; dfc = 0.0; return; }
  const double x = piOverWidth_ * (r - rmin_);
  fc = 0.5 * (std::cos(x) + 1.0);
  dfc = -0.5 * piOverWidth_ * std::sin(x);
}

void SymmetryFunctions::values(double r, const double* cosTheta, double* t) const {
  double fc, dfc;
  cutoff(r, fc, dfc);
  for (unsigned i = 0; i < nS1_; ++i) {
    const double x = r - s1Rs_[i];
    t[i] = std::exp(-s1Eta_[i] * x * x) * fc;
  }
  for (unsigned i = 0; i < nS2_; ++i) t[nS1_ + i] = std::cos(s2Kappa_[i] * r) * fc;
  const unsigned base = radialEnd();
  for (unsigned s = 0; s < nvec_; ++s) {
    const double c = cosTheta[s];
    const unsigned b = angOff_[s], m = b + nS3_[s], e = angOff_[s + 1];
    for (unsigned i = b; i < m; ++i) {
      const double x = c - s3Cos_[i - base];
      t[i] = std::exp(-s3Eta_[i - base] * x * x) * fc;
    }
    for (unsigned i = m; i < e; ++i) t[i] = std::cos(s4Kappa_[i - base] * c) * fc;
  }
}

bool SymmetryFunctions::derivatives(double r, const double* cosTheta, double* dr, double* dc) const {
  double fc, dfc;
  cutoff(r, fc, dfc);
  const bool edge = dfc != 0.0;  // only in the switching shell do angular terms depend on r
  for (unsigned i = 0; i < nS1_; ++i) {
    const double x = r - s1Rs_[i];
    const double e = std::exp(-s1Eta_[i] * x * x);
    dr[i] = e * (dfc - 2.0 * s1Eta_[i] * x * fc);
    dc[i] = 0.0;
  }
  for (unsigned i = 0; i < nS2_; ++i) {
    const double k = s2Kappa_[i], kr = k * r;
    dr[nS1_ + i] = std::cos(kr) * dfc - k * std::sin(kr) * fc;
    dc[nS1_ + i] = 0.0;
  }
  const unsigned base = radialEnd();
  for (unsigned s = 0; s < nvec_; ++s) {
    const double c = cosTheta[s];
    const unsigned b = angOff_[s], m = b + nS3_[s], e = angOff_[s + 1];
    for (unsigned i = b; i < m; ++i) {
      const double eta = s3Eta_[i - base], x = c - s3Cos_[i - base];
      const double g = std::exp(-eta * x * x);
      dc[i] = -2.0 * eta * x * g * fc;
      if (edge) dr[i] = g * dfc;
    }
    for (unsigned i = m; i < e; ++i) {
      const double k = s4Kappa_[i - base], kc = k * c;
      dc[i] = -k * std::sin(kc) * fc;
      if (edge) dr[i] = std::cos(kc) * dfc;
    }
  }
  return edge;
}

}  // namespace molenv
}  // namespace PLMD
