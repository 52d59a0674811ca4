/* molenv: the model-file record tokenizer (see ModelRecords.h). */
#include "ModelRecords.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace PLMD {
namespace molenv {

std::string pyFloat(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string pyIntList(const std::vector<long>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

Records::Records(const std::string& path) : path_(path) {
  std::ifstream in(path);
  std::string line;
  unsigned lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ss(line);
    std::vector<std::string> tokens;
    std::string t;
    while (ss >> t) tokens.push_back(t);
    if (!tokens.empty()) items_.push_back({lineno, tokens});
  }
}

ModelFileError Records::error(const std::string& msg, unsigned lineno) const {
  std::string where = path_;
  if (lineno) where += ":" + std::to_string(lineno);
  return ModelFileError(where + ": " + msg);
}

std::pair<unsigned, std::vector<std::string>> Records::next(const std::string& keyword) {
  if (pos_ >= items_.size())
    throw error("unexpected end of file, expected " + (keyword.empty() ? std::string("more records") : keyword));
  const auto& it = items_[pos_];
  if (!keyword.empty() && it.second[0] != keyword) {
    if (!known_.empty() && !known_.count(it.second[0]))
      throw error("unknown record '" + it.second[0] + "' (expected '" + keyword + "')", it.first);
    throw error("expected record '" + keyword + "', found '" + it.second[0] + "'", it.first);
  }
  ++pos_;
  return it;
}

std::vector<std::string> Records::peekFields(std::size_t ahead) const {
  if (pos_ + ahead >= items_.size()) return {};
  const auto& tokens = items_[pos_ + ahead].second;
  return std::vector<std::string>(tokens.begin() + 1, tokens.end());
}

std::vector<std::string> Records::fields(const std::string& keyword, int n, unsigned& lineno) {
  auto rec = next(keyword);
  lineno = rec.first;
  std::vector<std::string> f(rec.second.begin() + 1, rec.second.end());
  if (n >= 0 && static_cast<int>(f.size()) != n)
    throw error("'" + keyword + "' takes " + std::to_string(n) + " fields, found " + std::to_string(f.size()), lineno);
  return f;
}

long Records::integer(const std::string& text, unsigned lineno, const std::string& what) const {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) throw error(what + ": '" + text + "' is not an integer", lineno);
  return v;
}

double Records::number(const std::string& text, unsigned lineno, const std::string& what) const {
  char* end = nullptr;
  // hexadecimal floats are accepted by strtod but not by Python's float()
  bool hex = text.find_first_of("xX") != std::string::npos;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || hex) throw error(what + ": '" + text + "' is not a number", lineno);
  if (!std::isfinite(v)) throw error(what + ": non-finite number '" + text + "'", lineno);
  return v;
}

void Records::index(const std::string& text, unsigned lineno, long expected, const std::string& what) const {
  if (integer(text, lineno, what) != expected)
    throw error(what + ": expected index " + std::to_string(expected) + ", found " + text, lineno);
}

}  // namespace molenv
}  // namespace PLMD
