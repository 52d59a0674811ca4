/* molenv: PLUMED module for the machine-learning classification of molecular
   environments (point-vector symmetry functions + MLP).  LGPL-3.0-or-later.

   The model file (docs/model_format.md) is the contract between the Python side
   (py/molenv/modelfile.py) and this module.  The reader below mirrors the Python
   reader rule by rule and message by message, so that a file rejected by one is
   rejected by the other with the same words. */
#ifndef __MOLENV_ModelFile_h
#define __MOLENV_ModelFile_h

#include "OodScore.h"

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace PLMD {
namespace molenv {

/// Any problem with a model file; what() names the file, the line and the problem.
class ModelFileError : public std::runtime_error {
public:
  explicit ModelFileError(const std::string& msg) : std::runtime_error(msg) {}
};

/// The four kinds of point-vector molecular symmetry functions (METHOD.md section 2).
enum class SFKind { S1, S2, S3, S4 };

struct SymmetryFunctionDef {
  SFKind kind;
  int vector;        ///< 0-based vector index for S3/S4, -1 for S1/S2
  double p0 = 0.0;   ///< S1: Rs, S2: kappa, S3: cos_theta_s, S4: kappa
  double p1 = 0.0;   ///< S1: eta, S3: eta (unused for S2/S4)
};

enum class Activation { sigmoid, tanh, softplus, identity, softmax };

/// An intramolecular vector of the molecule template: r(b) - r(a), or the plane normal
/// (r(b) - r(a)) x (r(d) - r(c)); sign-invariant: S3/S4 take cos^2 of its angles.
struct MoleculeVector {
  std::array<unsigned, 4> atoms{};  ///< 0-based a, b (and c, d for a normal)
  bool normal = false;
  bool signInvariant = false;
};

struct DenseLayer {
  unsigned nin = 0, nout = 0;
  std::vector<double> w;  ///< nout x nin, row major (row j = weights into output j)
  std::vector<double> b;  ///< nout
};

struct Model {
  std::string path;
  std::string name;
  std::vector<std::string> classes;
  unsigned atomsPerMolecule = 0;
  std::vector<unsigned> centre;                   ///< 0-based positions: the centre is their centroid (one: that atom)
  std::vector<MoleculeVector> vectors;
  double rmin = 0.0, rmax = 0.0;                  ///< Angstrom
  std::vector<SymmetryFunctionDef> descriptors;
  std::vector<double> mean, stretch;
  Activation hidden = Activation::sigmoid;
  Activation output = Activation::softmax;
  std::vector<DenseLayer> layers;
  OodScore ood;  ///< the optional out-of-distribution score (ood block)

  unsigned nClasses() const { return classes.size(); }
  unsigned nFeatures() const { return descriptors.size(); }
};

/// Read and validate an SF model file (format version 1, or 3: version 1 with the richer
/// geometry records); throws ModelFileError.
Model readModelFile(const std::string& path);

/// Name of an activation as written in model files.
std::string activationName(Activation a);

}  // namespace molenv
}  // namespace PLMD

#endif
