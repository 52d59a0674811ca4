/* molenv: what the MOLENV_PROBABILITIES action (MolenvProbabilities.cpp) reads of a
   MOLENV_CLASSIFY action.  MOLENV_CLASSIFY implements ProbabilitySource; the reader finds
   the classifier by label and reaches it through this interface only, so neither needs
   the other's class declaration. */
#ifndef __MOLENV_MolenvProbabilities_h
#define __MOLENV_MolenvProbabilities_h

#include <string>
#include <vector>

namespace PLMD {
class Action;
class Value;
namespace molenv {

/// The per-molecule class probabilities of the current step of a classifier.
class ProbabilitySource {
public:
  virtual ~ProbabilitySource() = default;
  /// the rows: the molecules, in MOLECULES/MOLECULEn order
  virtual unsigned numberOfMolecules() const = 0;
  /// the columns: the classes, then (GNN models) the topology classes, as in PROB_FILE
  virtual const std::vector<std::string>& probabilityNames() const = 0;
  /// `reader` reads the probabilities of every molecule at the steps where it is active:
  /// the source then evaluates every molecule at those steps, also those a region leaves out
  virtual void addProbabilityReader(const Action* reader) = 0;
  /// the probabilities computed at this step into `out`, a (molecules x columns) matrix
  virtual void copyProbabilities(Value& out) const = 0;
};

}  // namespace molenv
}  // namespace PLMD

#endif
