/* molenv: point-vector molecular symmetry functions (Kuroshima et al., JCTC 2024),
   pair terms and their derivatives.

   Every descriptor of molecule I is a sum over neighbours J of a pair term
   t(r_IJ, cos theta_IJ,s) that is symmetric in I and J.  This class evaluates the
   pair terms of all descriptors at once, and their partial derivatives with respect
   to r and to cos theta_s, so that the caller can contract them with the network
   Jacobians of both molecules of the pair in a single pass.

   Descriptors are stored grouped by kind ("internal order"): all radial ones
   (S1, S2) first, then for each vector s its angular ones (S3, S4).  With this
   layout the derivative with respect to cos theta_s is a contiguous range.
   order()[i] gives the model-file index of internal descriptor i.

   A sign-invariant vector s (MoleculeVector::signInvariant) enters its S3/S4 through
   cos^2 theta_s: the kernels take the cosines as always and return dt/dcos theta_s
   (= dt/dcos^2 * 2 cos theta_s), so that the callers do not know the difference. */
#ifndef __MOLENV_SymmetryFunctions_h
#define __MOLENV_SymmetryFunctions_h

#include "ModelFile.h"

#include <vector>

namespace PLMD {
namespace molenv {

class SymmetryFunctions {
public:
  explicit SymmetryFunctions(const Model& model);

  unsigned size() const { return order_.size(); }
  unsigned nVectors() const { return nvec_; }
  const std::vector<unsigned>& order() const { return order_; }
  /// internal descriptors [0, radialEnd()) are radial
  unsigned radialEnd() const { return nS1_ + nS2_; }
  /// internal descriptors [angularBegin(s), angularEnd(s)) depend on cos theta_s
  unsigned angularBegin(unsigned s) const { return angOff_[s]; }
  unsigned angularEnd(unsigned s) const { return angOff_[s + 1]; }
  double rmin() const { return rmin_; }
  double rmax() const { return rmax_; }

  /// Cosine cutoff fc(r) (= PLUMED's COSINUS switching function with D_0=rmin,
  /// R_0=rmax-rmin) and its derivative.
  void cutoff(double r, double& fc, double& dfc) const;

  /// Pairs are evaluated in blocks of up to kBlock pairs stored by columns:
  /// r[b] (Angstrom, < rmax), cosTheta[s*kBlock+b]; outputs by descriptor,
  /// out[i*kBlock+b] for internal descriptor i.  Blocks let the compiler vectorise the
  /// exp/sin/cos of FastMath.h across pairs.
  static constexpr unsigned kBlock = 64;

  /// t[i*kBlock+b] = pair term of internal descriptor i for pair b.
  void values(unsigned n, const double* r, const double* cosTheta, double* t) const;

  /// dr[i*kBlock+b] = dt_i/dr, dc[i*kBlock+b] = dt_i/dcos theta_(vector of i) (0 for radial).
  void derivatives(unsigned n, const double* r, const double* cosTheta, double* dr, double* dc) const;

  /// Derivatives contracted on the fly with one weight per descriptor and pair
  /// (C[i*kBlock+b]: the sum of the two molecules' weighted Jacobian rows):
  /// A[b] = sum_i C[i*kBlock+b] dt_i/dr and
  /// Bc[s*kBlock+b] = sum_(i of vector s) C[i*kBlock+b] dt_i/dcos theta_s.
  void contractedDerivatives(unsigned n, const double* r, const double* cosTheta, const double* C, double* A, double* Bc) const;

  /// Everything the block kernels (SymmetryFunctions.cpp) need, as plain arrays.
  struct Params;

private:
  unsigned nvec_;
  double rmin_, rmax_, piOverWidth_;
  std::vector<unsigned> order_;
  unsigned nS1_ = 0, nS2_ = 0;
  std::vector<double> s1Rs_, s1Eta_, s2Kappa_;
  // angular, per vector: offsets into the internal order, S3 block then S4 block
  std::vector<unsigned> angOff_, nS3_;
  std::vector<char> squared_;  // per vector: sign-invariant (cos^2 theta_s)
  std::vector<double> s3Cos_, s3Eta_, s4Kappa_;  // in internal order, indexed from radialEnd()
  bool libm_ = false;  ///< arguments too large for FastMath::sinCos: use libm

  void cutoffBlock(unsigned n, const double* r, double* fc, double* dfc) const;
  Params params() const;
};

}  // namespace molenv
}  // namespace PLMD

#endif
