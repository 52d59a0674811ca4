/* molenv: per-molecule output files (see MoleculeFiles.h). */
#include "MoleculeFiles.h"

#include "core/Action.h"

namespace PLMD {
namespace molenv {

void MoleculeFiles::open(Action& action, const std::string& probFile, const std::string& sfFile, unsigned stride) {
  probName_ = probFile;
  sfName_ = sfFile;
  stride_ = stride;
  if (!probName_.empty()) {
    prob_.link(action);
    prob_.open(probName_);
    prob_.fmtField(" %.17g");
  }
  if (!sfName_.empty()) {
    sf_.link(action);
    sf_.open(sfName_);
    sf_.fmtField(" %.17g");
  }
}

void MoleculeFiles::write(double time, unsigned nmol, const std::vector<std::string>& classes, const std::vector<double>& prob,
                          const std::vector<unsigned>& order, const std::vector<double>& G) {
  const unsigned K = classes.size(), S = order.size();
  if (!probName_.empty()) {
    for (unsigned m = 0; m < nmol; ++m) {
      prob_.printField("time", time).printField("mol", static_cast<int>(m + 1));
      for (unsigned k = 0; k < K; ++k) prob_.printField(classes[k], prob[static_cast<std::size_t>(m) * K + k]);
      prob_.printField();
    }
    prob_.flush();
  }
  if (!sfName_.empty()) {
    std::vector<double> g(S);
    std::vector<std::string> names(S);
    for (unsigned f = 0; f < S; ++f) names[f] = "sf" + std::to_string(f + 1);
    for (unsigned m = 0; m < nmol; ++m) {
      for (unsigned i = 0; i < S; ++i) g[order[i]] = G[static_cast<std::size_t>(m) * S + i];  // model-file order
      sf_.printField("time", time).printField("mol", static_cast<int>(m + 1));
      for (unsigned f = 0; f < S; ++f) sf_.printField(names[f], g[f]);
      sf_.printField();
    }
    sf_.flush();
  }
}

}  // namespace molenv
}  // namespace PLMD
