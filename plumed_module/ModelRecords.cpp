/* molenv: the model-file record tokenizer (see ModelRecords.h). */
#include "ModelRecords.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <locale.h>
#include <sys/stat.h>
#if defined(__APPLE__)
#include <xlocale.h>
#endif

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

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

/// where a byte of the file is: (line, byte within the line), both 1-based
std::pair<unsigned, std::size_t> position(const std::string& data, std::size_t pos) {
  unsigned line = 1;
  std::size_t lineStart = 0;
  for (std::size_t i = 0; i < pos; ++i)
    if (data[i] == '\n') {
      ++line;
      lineStart = i + 1;
    }
  return {line, pos - lineStart + 1};
}

std::string hexByte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", b);
  return buf;
}

/// Position of the first byte that starts an ill-formed UTF-8 sequence (Unicode table 3-7:
/// no overlong forms, no surrogates, nothing above U+10FFFF), or npos.  This is where
/// Python's strict decoder reports the error (UnicodeDecodeError.start).
std::size_t firstInvalidUtf8(const std::string& s) {
  const std::size_t n = s.size();
  auto in = [&](std::size_t i, unsigned lo, unsigned hi) {
    return i < n && static_cast<unsigned char>(s[i]) >= lo && static_cast<unsigned char>(s[i]) <= hi;
  };
  std::size_t i = 0;
  while (i < n) {
    const unsigned b = static_cast<unsigned char>(s[i]);
    std::size_t len;
    bool ok;
    if (b < 0x80) { len = 1; ok = true; }
    else if (b >= 0xc2 && b <= 0xdf) { len = 2; ok = in(i + 1, 0x80, 0xbf); }
    else if (b == 0xe0) { len = 3; ok = in(i + 1, 0xa0, 0xbf) && in(i + 2, 0x80, 0xbf); }
    else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) { len = 3; ok = in(i + 1, 0x80, 0xbf) && in(i + 2, 0x80, 0xbf); }
    else if (b == 0xed) { len = 3; ok = in(i + 1, 0x80, 0x9f) && in(i + 2, 0x80, 0xbf); }
    else if (b == 0xf0) { len = 4; ok = in(i + 1, 0x90, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf); }
    else if (b >= 0xf1 && b <= 0xf3) { len = 4; ok = in(i + 1, 0x80, 0xbf) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf); }
    else if (b == 0xf4) { len = 4; ok = in(i + 1, 0x80, 0x8f) && in(i + 2, 0x80, 0xbf) && in(i + 3, 0x80, 0xbf); }
    else { len = 1; ok = false; }
    if (!ok) return i;
    i += len;
  }
  return std::string::npos;
}

/// Python: _check_text (same checks, same order, same messages)
void checkText(const std::string& path, const std::string& data) {
  if (data.compare(0, 3, "\xef\xbb\xbf") == 0)
    throw ModelFileError(path + ":1: the file starts with a byte order mark (BOM); a model file is UTF-8 text without one");
  for (std::size_t i = 0; i < data.size(); ++i) {
    const unsigned char c = data[i];
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
      const auto where = position(data, i);
      const std::string at = path + ":" + std::to_string(where.first) + ": ";
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n')
        throw ModelFileError(at + "the line ends with CR LF (a Windows line ending); a model file ends its lines with LF alone");
      throw ModelFileError(at + "control character " + hexByte(c) + " at byte " + std::to_string(where.second) +
                           " of the line; a model file holds no control characters but tab and line feed");
    }
  }
  const std::size_t bad = firstInvalidUtf8(data);
  if (bad != std::string::npos) {
    const auto where = position(data, bad);
    throw ModelFileError(path + ":" + std::to_string(where.first) + ": byte " + std::to_string(where.second) + " of the line (" +
                         hexByte(data[bad]) + ") is not UTF-8; a model file is UTF-8 text");
  }
}

}  // namespace

std::string fileProblem(const std::string& path, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return path + ": " + what + " not found";
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISDIR(st.st_mode)) return path + ": is a directory, not a " + what;
  std::string kind = "not a regular file";
  if (S_ISFIFO(st.st_mode)) kind = "a FIFO (named pipe)";
  else if (S_ISSOCK(st.st_mode)) kind = "a socket";
  else if (S_ISCHR(st.st_mode)) kind = "a character device";
  else if (S_ISBLK(st.st_mode)) kind = "a block device";
  return path + ": is " + kind + ", not a " + what + ": give a regular file";
}

Records::Records(const std::string& path) : path_(path) {
  std::string data;
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) throw ModelFileError(path + ": cannot read the model file (" + std::strerror(errno) + ")");
  char buf[1 << 16];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), fp)) > 0) data.append(buf, got);
  const bool failed = std::ferror(fp);
  const int err = errno;
  std::fclose(fp);
  if (failed) throw ModelFileError(path + ": cannot read the model file (" + std::strerror(err) + ")");
  checkText(path, data);
  // lines end with '\n' (the last may lack it); '#' starts a comment; fields are
  // separated by spaces and tabs
  unsigned lineno = 0;
  std::size_t start = 0;
  while (start < data.size()) {
    std::size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    ++lineno;
    std::size_t stop = data.find('#', start);
    if (stop == std::string::npos || stop > end) stop = end;
    std::vector<std::string> tokens;
    std::size_t i = start;
    while (i < stop) {
      while (i < stop && (data[i] == ' ' || data[i] == '\t')) ++i;
      std::size_t j = i;
      while (j < stop && data[j] != ' ' && data[j] != '\t') ++j;
      if (j > i) tokens.emplace_back(data, i, j - i);
      i = j;
    }
    if (!tokens.empty()) items_.push_back({lineno, std::move(tokens)});
    start = end + 1;
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
  std::size_t i = (!text.empty() && (text[0] == '+' || text[0] == '-')) ? 1 : 0;
  if (i == text.size()) throw error(what + ": '" + text + "' is not an integer", lineno);
  for (std::size_t k = i; k < text.size(); ++k)
    if (!isDigit(text[k])) throw error(what + ": '" + text + "' is not an integer", lineno);
  while (i + 1 < text.size() && text[i] == '0') ++i;  // leading zeros
  const std::string limit = std::to_string(kMaxInteger);
  long magnitude = 0;
  if (text.size() - i <= limit.size()) magnitude = std::stol(text.substr(i));
  if (text.size() - i > limit.size() || magnitude > kMaxInteger)
    throw error(what + ": '" + text + "' is out of range (integers in a model file lie between -" + limit + " and " + limit + ")", lineno);
  return text[0] == '-' ? -magnitude : magnitude;
}

namespace {

/// the decimal real syntax: [+-]?(digits[.[digits]] | .digits)([eE][+-]?digits)?
bool isReal(const std::string& t) {
  std::size_t i = 0, n = t.size();
  if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
  std::size_t mantissa = 0;
  while (i < n && isDigit(t[i])) ++i, ++mantissa;
  if (i < n && t[i] == '.') {
    ++i;
    while (i < n && isDigit(t[i])) ++i, ++mantissa;
  }
  if (mantissa == 0) return false;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t digits = 0;
    while (i < n && isDigit(t[i])) ++i, ++digits;
    if (digits == 0) return false;
  }
  return i == n;
}

/// [+-]?(inf|infinity|nan), any case: words of a non-finite number
bool isNonFiniteWord(const std::string& t) {
  std::string w;
  for (std::size_t i = (!t.empty() && (t[0] == '+' || t[0] == '-')) ? 1 : 0; i < t.size(); ++i)
    w += static_cast<char>(std::tolower(static_cast<unsigned char>(t[i])));
  return w == "inf" || w == "infinity" || w == "nan";
}

/// strtod in the C locale, whatever locale the MD code has set (a decimal comma would
/// break strtod): correctly rounded, +-HUGE_VAL beyond the double range, 0 or subnormal
/// below it, as Python's float()
double parseCDouble(const std::string& text) {
  static const locale_t c = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
  return strtod_l(text.c_str(), nullptr, c);
}

}  // namespace

double Records::number(const std::string& text, unsigned lineno, const std::string& what) const {
  if (!isReal(text)) {
    if (isNonFiniteWord(text)) throw error(what + ": non-finite number '" + text + "'", lineno);
    throw error(what + ": '" + text + "' is not a number", lineno);
  }
  const double v = parseCDouble(text);
  if (!std::isfinite(v)) throw error(what + ": non-finite number '" + text + "'", lineno);
  return v;
}

void Records::index(const std::string& text, unsigned lineno, long expected, const std::string& what) const {
  if (integer(text, lineno, what) != expected)
    throw error(what + ": expected index " + std::to_string(expected) + ", found " + text, lineno);
}

std::vector<long> Records::count(const std::string& keyword, int n, unsigned& lineno) {
  auto f = fields(keyword, n, lineno);
  std::vector<long> values;
  bool negative = false;
  for (const auto& x : f) {
    values.push_back(integer(x, lineno, keyword));
    negative |= values.back() < 0;
  }
  if (negative) {
    std::string all;
    for (std::size_t i = 0; i < f.size(); ++i) all += (i ? " " : "") + f[i];
    throw error("'" + keyword + "' needs non-negative counts, found " + all, lineno);
  }
  return values;
}

std::map<std::string, std::string> Records::meta() {
  std::map<std::string, std::string> out;
  while (peek() == "meta") {
    unsigned ln;
    auto f = fields("meta", -1, ln);
    if (f.empty()) throw error("'meta' needs a key", ln);
    if (out.count(f[0])) throw error("'meta' key '" + f[0] + "' given twice", ln);
    std::string text;
    for (std::size_t i = 1; i < f.size(); ++i) text += (i > 1 ? " " : "") + f[i];
    out[f[0]] = text;
  }
  return out;
}

}  // namespace molenv
}  // namespace PLMD
