/* molenv: the record tokenizer shared by the readers of both model-file kinds
   (docs/model_format.md, "Syntax"): one record per line, '#' comments, a keyword and
   whitespace-separated fields, matrices as rows of numbers without a keyword; and the
   syntax of the file (UTF-8 text without a byte order mark, no control characters but tab
   and line feed, fields separated by spaces and tabs) and of its numbers (integers
   [+-]?[0-9]+ of magnitude <= kMaxInteger, decimal reals, finite).

   It mirrors py/molenv/modelfile.py: _Records (and, with keywords(), the "unknown
   record" rule of py/molenv/gnn/modelfile.py: _GNNRecords) rule by rule and message by
   message, so that a file rejected by a Python reader is rejected by the matching C++
   reader with the same words.  Kept in one place so that the SF reader (ModelFile.cpp)
   and the GNN reader (GnnModelFile.cpp) cannot drift apart. */
#ifndef __MOLENV_ModelRecords_h
#define __MOLENV_ModelRecords_h

#include "ModelFile.h"

#include <map>
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

/// Every integer of a model file (count, size, index) lies within +-kMaxInteger (Python:
/// MAX_INTEGER): no size can announce more than this, and the readers allocate nothing from
/// a size before the numbers it announces have been read.
constexpr long kMaxInteger = 1000000;

/// Python's molenv.paths.file_problem(path, what): "" for a regular file (or a link to
/// one), else "PATH: WHAT not found", "PATH: is a directory, not a WHAT", ...
std::string fileProblem(const std::string& path, const std::string& what);

/// Line-numbered records of a model file, consumed in order (Python: _Records).  The
/// constructor reads the whole file and throws ModelFileError where it cannot be read or
/// breaks the syntax (BOM, control characters, not UTF-8).
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

  /// [+-]?[0-9]+, magnitude <= kMaxInteger
  long integer(const std::string& text, unsigned lineno, const std::string& what) const;
  /// decimal [+-]?(digits[.[digits]] | .digits)([eE][+-]?digits)?, correctly rounded, finite
  double number(const std::string& text, unsigned lineno, const std::string& what) const;
  void index(const std::string& text, unsigned lineno, long expected, const std::string& what) const;
  /// a record of n non-negative integers (Python: _Records.count)
  std::vector<long> count(const std::string& keyword, int n, unsigned& lineno);
  /// the `meta KEY TEXT` records at this point; keys unique (Python: _Records.meta)
  std::map<std::string, std::string> meta();

private:
  std::string path_;
  std::vector<std::pair<unsigned, std::vector<std::string>>> items_;
  std::size_t pos_ = 0;
  std::set<std::string> known_;
};

/// The optional ood block of either kind (docs/model_format.md, "The ood block"; Python:
/// molenv.modelfile._read_ood) into `o`: `classes` may have a mean, `names` (the classes,
/// and a GNN's topology classes) may not be "other", and layer k has layerInputs[k-1] inputs
/// (SF: the dense layers; GNN: the head blocks, then the output layer).
void readOod(Records& r, const std::vector<std::string>& classes, const std::vector<std::string>& names, const std::vector<unsigned>& layerInputs,
             OodScore& o);

}  // namespace molenv
}  // namespace PLMD

#endif
