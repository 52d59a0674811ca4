/* molenv: the per-molecule output files of MOLENV_CLASSIFY: PROB_FILE (class
   probabilities) and SF_FILE (raw symmetry functions, model-file order), one row per
   molecule at every FILE_STRIDE-th step, with PLUMED's OFile (backups, RESTART,
   flushing) and %.17g numbers, so that they compare with Python to 1e-9 or better. */
#ifndef __MOLENV_MoleculeFiles_h
#define __MOLENV_MoleculeFiles_h

#include "tools/OFile.h"

#include <string>
#include <vector>

namespace PLMD {
class Action;
namespace molenv {

class MoleculeFiles {
public:
  /// Opens the files whose name is not empty, linked to `action`.
  void open(Action& action, const std::string& probFile, const std::string& sfFile, unsigned stride);
  bool enabled() const { return !probName_.empty() || !sfName_.empty(); }
  /// whether this step writes the files
  bool due(long long step) const { return enabled() && step % stride_ == 0; }
  /// prob[m*K+k] with K = classes.size(); G[m*S+i] in the order where order[i] is the
  /// model-file index of descriptor i
  void write(double time, unsigned nmol, const std::vector<std::string>& classes, const std::vector<double>& prob,
             const std::vector<unsigned>& order, const std::vector<double>& G);

private:
  std::string probName_, sfName_;
  OFile prob_, sf_;
  unsigned stride_ = 1;
};

}  // namespace molenv
}  // namespace PLMD

#endif
