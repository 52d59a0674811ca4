/* molenv: the record tokenizer shared by the readers of both model-file kinds
   (docs/model_format.md, "Syntax"): one record per line, '#' comments, a keyword and
   whitespace-separated fields, matrices as rows of numbers without a keyword.

   It mirrors py/molenv/modelfile.py: _Records (and, with keywords(), the "unknown
   record" rule of py/molenv/gnn/modelfile.py: _GNNRecords) rule by rule and message by
   message, so that a file rejected by a Python reader is rejected by the matching C++
   reader with the same words.  Kept in one place so that the SF reader (ModelFile.cpp)
   and the GNN reader (GnnModelFile.cpp) cannot drift apart. */
#ifndef __MOLENV_ModelRecords_h
#define __MOLENV_ModelRecords_h

#include "ModelFile.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace PLMD {
namespace molenv {

/// Python's repr(float): shortest round-trip digits, with ".0" for integral values,
/// so that messages read the same as the Python reader's.
std::string pyFloat(double x);
/// Python's repr(str) for the names that appear in messages ('name').
inline std::string pyRepr(const std::string& s) { return "'" + s + "'"; }
/// Python's repr of a list of ints: [1, 6, 7, 8].
std::string pyIntList(const std::vector<long>& v);

/// Line-numbered records of a model file, consumed in order (Python: _Records).
class Records {
public:
  explicit Records(const std::string& path);

  /// The keywords of the file's kind: with them, a record whose keyword is not the one
  /// expected and none of these is reported as "unknown record" (Python: _GNNRecords).
  void keywords(std::set<std::string> known) { known_ = std::move(known); }

  ModelFileError error(const std::string& msg, unsigned lineno = 0) const;

  /// Next record; with a keyword, it must be that record.
  std::pair<unsigned, std::vector<std::string>> next(const std::string& keyword = "");

  std::string peek() const { return pos_ < items_.size() ? items_[pos_].second[0] : std::string(); }
  unsigned peekLine() const { return pos_ < items_.size() ? items_[pos_].first : 0; }
  /// the fields of the record after the next one (empty at the end of the file)
  std::vector<std::string> peekFields(std::size_t ahead = 0) const;

  /// Fields of a keyword record (without the keyword); n<0: any number.
  std::vector<std::string> fields(const std::string& keyword, int n, unsigned& lineno);

  long integer(const std::string& text, unsigned lineno, const std::string& what) const;
  double number(const std::string& text, unsigned lineno, const std::string& what) const;
  void index(const std::string& text, unsigned lineno, long expected, const std::string& what) const;

private:
  std::string path_;
  std::vector<std::pair<unsigned, std::vector<std::string>>> items_;
  std::size_t pos_ = 0;
  std::set<std::string> known_;
};

}  // namespace molenv
}  // namespace PLMD

#endif
