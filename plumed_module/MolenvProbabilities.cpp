/* molenv: the MOLENV_PROBABILITIES action.  LGPL-3.0-or-later.

   The per-molecule class probabilities that a MOLENV_CLASSIFY action has computed at this
   step, as one PLUMED matrix value (molecules x classes; GNN models: then the topology
   classes), for a code that takes them through PLUMED's data interface (GET, or the cmd
   getDataRank/getDataShape/setMemoryForData) instead of PROB_FILE text: `molenv
   reanalyse --analyse` adds one to the input it runs.  Nothing is recomputed: the values
   are copied from the classifier, which runs first (it is a dependency, and is defined
   before this action).  Without this action nothing of it runs; with it, the classifier
   evaluates every molecule (also those a region leaves out) only at the steps where this
   action is active.  The matrix has no derivatives and takes no forces.  Full
   documentation: docs/plumed_action.md, "MOLENV_PROBABILITIES". */
#include "MolenvProbabilities.h"

#include "core/ActionRegister.h"
#include "core/ActionSet.h"
#include "core/ActionWithValue.h"
#include "core/PlumedMain.h"

namespace PLMD {
namespace molenv {

//+PLUMEDOC ANALYSIS MOLENV_PROBABILITIES
/*
The per-molecule class probabilities of a MOLENV_CLASSIFY action at the current step, as a
matrix with one row per molecule (MOLECULES/MOLECULEn order) and one column per class (GNN
models: the polymorph classes, then the topology classes), the numbers of its PROB_FILE.
Nothing is recomputed; the matrix has no derivatives.

\plumedfile
LOAD FILE=/path/printed/by/molenv-plumed-lib
cls: MOLENV_CLASSIFY MODEL=urea.molenv MOLECULES=1-3456
p: MOLENV_PROBABILITIES CLASSIFIER=cls
GET ARG=p STRIDE=1
\endplumedfile

See docs/plumed_action.md of molenv.
*/
//+ENDPLUMEDOC

class MolenvProbabilities : public ActionWithValue {
public:
  static void registerKeywords(Keywords& keys);
  explicit MolenvProbabilities(const ActionOptions&);
  unsigned getNumberOfDerivatives() override { return 0; }
  void calculate() override;
  void apply() override;
  /// the column names where a matrix is printed (DUMPVECTOR): <label>.<class>
  void getMatrixColumnTitles(std::vector<std::string>& argnames) const override;

private:
  const ProbabilitySource* source_ = nullptr;
};

PLUMED_REGISTER_ACTION(MolenvProbabilities, "MOLENV_PROBABILITIES")

void MolenvProbabilities::registerKeywords(Keywords& keys) {
  Action::registerKeywords(keys);
  ActionWithValue::registerKeywords(keys);
  keys.remove("NUMERICAL_DERIVATIVES");  // a matrix without derivatives
  keys.add("compulsory", "CLASSIFIER", "the label of the MOLENV_CLASSIFY action whose per-molecule probabilities are read");
  keys.setValueDescription("matrix",
                           "the class probabilities of every molecule (rows, in MOLECULES order) and class (columns; GNN: the "
                           "polymorph, then the topology classes), as in PROB_FILE; no derivatives");
}

MolenvProbabilities::MolenvProbabilities(const ActionOptions& ao) : Action(ao), ActionWithValue(ao) {
  std::string label;
  parse("CLASSIFIER", label);
  checkRead();
  // only an action defined before this one can be found, so the classifier also runs first in a step
  Action* classifier = plumed.getActionSet().selectWithLabel<Action*>(label);
  if (!classifier) error("CLASSIFIER: there is no action labelled " + label + " before this line");
  ProbabilitySource* source = dynamic_cast<ProbabilitySource*>(classifier);
  if (!source) error("CLASSIFIER=" + label + " is a " + classifier->getName() + " action, not MOLENV_CLASSIFY");
  addDependency(classifier);  // active whenever this action is
  source->addProbabilityReader(this);
  source_ = source;

  const std::vector<std::string>& names = source_->probabilityNames();
  const std::size_t nmol = source_->numberOfMolecules(), ncol = names.size();
  addValue({nmol, ncol});
  setNotPeriodic();
  getPntrToValue()->reshapeMatrixStore(ncol);  // dense: every element stored
  std::string columns;
  for (std::size_t k = 0; k < ncol; ++k) columns += (k ? "," : "") + names[k];
  log.printf("  the probabilities of the %zu molecules of %s: a %zu x %zu matrix, columns %s\n", nmol, label.c_str(), nmol, ncol,
             columns.c_str());
}

void MolenvProbabilities::calculate() { source_->copyProbabilities(*getPntrToValue()); }

void MolenvProbabilities::getMatrixColumnTitles(std::vector<std::string>& argnames) const {
  for (const std::string& name : source_->probabilityNames()) argnames.push_back(getLabel() + "." + name);
}

void MolenvProbabilities::apply() {
  if (getPntrToValue()->forcesWereAdded())
    error("a bias acts on the probability matrix " + getLabel() + ", which has no derivatives: bias the n_<CLASS>, f_<CLASS>, s or z "
          "components of the MOLENV_CLASSIFY action instead");
}

}  // namespace molenv
}  // namespace PLMD
