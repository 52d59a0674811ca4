/* molenv: reader of the model file of kind gnn (docs/model_format.md, "The GNN kind"),
   mirror of py/molenv/gnn/modelfile.py: read_gnn_model() and GNNModel.validate().
   Keep the two in step: same records, same order, same validation rules, same
   messages (tests/test_plumed_gnn.py compares them on broken files). */
#include "GnnModelFile.h"
#include "ModelRecords.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

namespace PLMD {
namespace molenv {

namespace {

constexpr const char* kVersion = "2";
constexpr const char* kOodVersion = "4";  ///< version 2 plus the ood block (Python: GNN_OOD_FORMAT_VERSION)
constexpr const char* kKind = "gnn";
constexpr const char* kRadialBasis = "bessel";
constexpr const char* kAttention = "transformer";
constexpr const char* kActivation = "gelu_erf";
constexpr const char* kPooling = "max";

/// the keywords of a GNN file (Python: KEYWORDS): a record whose keyword is none of
/// these is "unknown"
const std::set<std::string> kKeywords = {
    "molenv_model", "kind", "name", "meta", "classes", "topology_classes", "molecule_atoms", "graph_cutoff",
    "atom_types", "atom_type", "radial_basis", "radial_frequencies", "activation", "conv_count", "conv",
    "attention", "pooling", "head_block_count", "head_block", "linear", "layer_norm", "end",
    "ood", "ood_softmin", "ood_threshold", "ood_calibration", "ood_whitening", "ood_mean",
};

std::string pyStrList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + pyRepr(v[i]);
  return out + "]";
}

/// The GNN records on top of the shared tokenizer (Python: _GNNRecords).
class GnnRecords {
public:
  explicit GnnRecords(const std::string& path) : r(path) { r.keywords(kKeywords); }
  Records r;

  /// a record of n non-negative integers
  std::vector<long> count(const std::string& keyword, int n, unsigned& ln) { return r.count(keyword, n, ln); }

  /// keyword n name_1 ... name_n
  std::vector<std::string> names(const std::string& keyword) {
    unsigned ln;
    auto f = r.fields(keyword, -1, ln);
    const long n = f.empty() ? 0 : r.integer(f[0], ln, keyword);
    if (n < 1 || static_cast<long>(f.size()) - 1 != n)
      throw r.error("'" + keyword + "' announces " + std::to_string(n) + " names, found " + std::to_string(static_cast<long>(f.size()) - 1), ln);
    return std::vector<std::string>(f.begin() + 1, f.end());
  }

  /// a row of exactly n numbers (a record without keyword)
  std::vector<double> row(std::size_t n, const std::string& what) {
    auto rec = r.next();
    const auto& tokens = rec.second;
    if (tokens.size() != n)
      throw r.error(what + " has " + std::to_string(tokens.size()) + " numbers, expected " + std::to_string(n), rec.first);
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = r.number(tokens[i], rec.first, what);
    return out;
  }

  /// linear NAME n_in n_out bias|nobias and its rows; the name must be `name`
  GnnLinear linear(const std::string& name, const std::string& where = "") {
    unsigned ln;
    auto f = r.fields("linear", 4, ln);
    const std::string label = where + "linear '" + name + "'";
    if (f[0] != name) throw r.error("expected " + label + ", found linear '" + f[0] + "'", ln);
    const long nin = r.integer(f[1], ln, label + " inputs"), nout = r.integer(f[2], ln, label + " outputs");
    if (nin < 1 || nout < 1)
      throw r.error(label + " has " + std::to_string(nin) + " inputs and " + std::to_string(nout) + " outputs", ln);
    if (f[3] != "bias" && f[3] != "nobias") throw r.error(label + ": last field must be 'bias' or 'nobias', found '" + f[3] + "'", ln);
    const bool hasBias = f[3] == "bias";
    GnnLinear L;
    L.nin = nin;
    L.nout = nout;
    for (long j = 0; j < nout; ++j) {  // nothing allocated before the rows are read
      auto values = row(nin + (hasBias ? 1 : 0), label + " row " + std::to_string(j + 1) + " (" + (hasBias ? "bias + " : "") +
                                                     std::to_string(nin) + " weights)");
      if (hasBias) L.b.push_back(values[0]);
      L.w.insert(L.w.end(), values.begin() + (hasBias ? 1 : 0), values.end());
    }
    return L;
  }

  GnnBlock block(const std::string& where) {
    unsigned ln;
    auto f = r.fields("layer_norm", 3, ln);
    if (f[0] != "block_norm") throw r.error("expected " + where + "layer_norm 'block_norm', found '" + f[0] + "'", ln);
    const long n = r.integer(f[1], ln, where + "layer_norm features");
    if (n < 1) throw r.error(where + "layer_norm has " + std::to_string(n) + " features", ln);
    GnnBlock b;
    b.norm.eps = r.number(f[2], ln, where + "layer_norm eps");
    b.norm.weight = row(n, where + "layer_norm weight");
    b.norm.bias = row(n, where + "layer_norm bias");
    b.linear = linear("block_linear", where);
    return b;
  }

  void keywordValue(const std::string& keyword, const std::string& expected) {
    unsigned ln;
    auto f = r.fields(keyword, -1, ln);
    if (f.empty() || f[0] != expected) {
      std::string all;
      for (std::size_t i = 0; i < f.size(); ++i) all += (i ? " " : "") + f[i];
      throw r.error("unsupported " + keyword + " '" + all + "' (this molenv knows '" + expected + "')", ln);
    }
  }
};

// ---- validation (Python: GNNModel.validate, _check_linear, _check_block)

void checkLinear(const GnnLinear& L, const std::string& where, unsigned nin, unsigned nout, bool hasBias) {
  if (L.nin != nin || L.nout != nout)
    throw ModelFileError(where + " has shape (" + std::to_string(L.nout) + ", " + std::to_string(L.nin) + ") (outputs, inputs); the model needs (" +
                         std::to_string(nout) + ", " + std::to_string(nin) + ")");
  if (hasBias && L.b.size() != nout) throw ModelFileError(where + " needs a bias of " + std::to_string(nout) + " numbers");
  if (!hasBias && L.hasBias()) throw ModelFileError(where + " takes no bias");
}

void checkBlock(const GnnBlock& b, const std::string& where, unsigned hidden) {
  if (b.norm.weight.size() != hidden || b.norm.bias.size() != hidden)
    throw ModelFileError(where + " layer_norm 'block_norm' has " + std::to_string(b.norm.weight.size()) + " features; the model needs " +
                         std::to_string(hidden));
  if (!(std::isfinite(b.norm.eps) && b.norm.eps > 0))
    throw ModelFileError(where + " layer_norm 'block_norm' eps must be a positive number, got " + pyFloat(b.norm.eps));
  checkLinear(b.linear, where + " linear 'block_linear'", hidden, hidden, true);
}

void validate(const GnnModel& m) {
  std::vector<std::string> names = m.classes;
  names.insert(names.end(), m.topologyClasses.begin(), m.topologyClasses.end());
  if (m.classes.empty() || m.topologyClasses.empty())
    throw ModelFileError("need at least one polymorph and one topology class, got " + std::to_string(m.classes.size()) + " and " +
                         std::to_string(m.topologyClasses.size()));
  static const std::regex className("^[A-Za-z0-9_]+$");
  for (const auto& c : names)
    if (!std::regex_match(c, className))
      throw ModelFileError("class name " + pyRepr(c) + " must match [A-Za-z0-9_]+ (it becomes a PLUMED component name)");
  if (std::set<std::string>(names.begin(), names.end()).size() != names.size())
    throw ModelFileError("duplicate class names in " + pyStrList(m.classes) + " + topology " + pyStrList(m.topologyClasses));
  if (!(std::isfinite(m.cutoff) && m.cutoff > 0)) throw ModelFileError("graph_cutoff must be a positive number, got " + pyFloat(m.cutoff));
  const std::set<long> types(m.atomTypes.begin(), m.atomTypes.end());
  if (m.atomTypes.empty() || *types.begin() < 1 || types.size() != m.atomTypes.size())
    throw ModelFileError("atom types must be distinct atomic numbers >= 1, got " + pyIntList(m.atomTypes));
  if (m.moleculeAtoms.empty()) throw ModelFileError("molecule_atoms lists no atoms");
  std::set<long> unknown;
  for (long z : m.moleculeAtoms)
    if (!types.count(z)) unknown.insert(z);
  if (!unknown.empty())
    throw ModelFileError("molecule_atoms has elements " + pyIntList(std::vector<long>(unknown.begin(), unknown.end())) +
                         " that are not atom types " + pyIntList(m.atomTypes));
  if (m.radialFrequencies.empty()) throw ModelFileError("the radial basis needs at least one frequency");
  if (m.envelopeExponent < 1) throw ModelFileError("the envelope exponent must be >= 1, got " + std::to_string(m.envelopeExponent));
  if (m.convs.empty()) throw ModelFileError("the model needs at least one graph convolution");
  const unsigned hidden = m.typeIn.nout, channels = m.convs[0].query.nout, radial = m.radialFrequencies.size();
  checkLinear(m.typeIn, "linear 'type_in'", m.typeDim, hidden, true);
  for (std::size_t k = 0; k < m.convs.size(); ++k) {
    const GnnConv& c = m.convs[k];
    const std::string where = "conv " + std::to_string(k + 1) + " linear";
    checkLinear(c.nodeIn, where + " 'node_in'", hidden, channels, false);
    checkLinear(c.edgeIn, where + " 'edge_in'", radial, channels, false);
    checkLinear(c.query, where + " 'query'", channels, channels, true);
    checkLinear(c.key, where + " 'key'", channels, channels, true);
    checkLinear(c.value, where + " 'value'", channels, channels, true);
    checkLinear(c.edge, where + " 'edge'", channels, channels, false);
    checkLinear(c.skip, where + " 'skip'", channels, channels, true);
    checkLinear(c.beta, where + " 'beta'", 3 * channels, 1, false);
    checkLinear(c.nodeOut, where + " 'node_out'", channels, hidden, true);
    checkBlock(c.block, "conv " + std::to_string(k + 1), hidden);
  }
  if (m.head.empty()) throw ModelFileError("the head needs at least one residual block");
  for (std::size_t k = 0; k < m.head.size(); ++k) checkBlock(m.head[k], "head_block " + std::to_string(k + 1), hidden);
  checkLinear(m.output, "linear 'output'", hidden, names.size(), false);
  // every number was checked finite when it was read
}

}  // namespace

ModelKind modelFileKind(const std::string& path) {
  if (!fileProblem(path, "model file").empty()) return ModelKind::sf;
  try {
    Records r(path);
    if (r.peek() != "molenv_model") return ModelKind::sf;
    const auto version = r.peekFields(0);
    if (version.size() != 1 || (version[0] != kVersion && version[0] != kOodVersion)) return ModelKind::sf;
    unsigned ln;
    r.fields("molenv_model", 1, ln);
    return r.peek() == "kind" ? ModelKind::gnn : ModelKind::sf;
  } catch (const ModelFileError&) {
    return ModelKind::sf;  // the SF reader reports what is wrong with the file
  }
}

GnnModel readGnnModelFile(const std::string& path) {
  const std::string problem = fileProblem(path, "model file");
  if (!problem.empty()) throw ModelFileError(problem);
  GnnRecords g(path);
  Records& r = g.r;
  GnnModel m;
  m.path = path;
  unsigned ln = 0;

  auto f = r.fields("molenv_model", 1, ln);
  if (f[0] != kVersion && f[0] != kOodVersion) {
    const std::string what = f[0] == "1" || f[0] == "3" ? "an SF model file: read it with molenv.modelfile.read_model" : "not a version this molenv reads";
    throw r.error("a GNN model file starts with 'molenv_model 2' (or 4), found version " + f[0] + " (" + what + ")", ln);
  }
  const bool withOod = f[0] == kOodVersion;  // the ood block may appear
  f = r.fields("kind", 1, ln);
  if (f[0] != kKind) throw r.error("unknown model kind '" + f[0] + "' (this molenv reads kind 'gnn' in version 2 and 4 files)", ln);
  f = r.fields("name", -1, ln);
  for (std::size_t i = 0; i < f.size(); ++i) m.name += (i ? " " : "") + f[i];
  r.meta();
  m.classes = g.names("classes");
  m.topologyClasses = g.names("topology_classes");
  f = r.fields("molecule_atoms", -1, ln);
  const long nAtoms = f.empty() ? 0 : r.integer(f[0], ln, "molecule_atoms");
  if (nAtoms < 1 || static_cast<long>(f.size()) - 1 != nAtoms)
    throw r.error("'molecule_atoms' announces " + std::to_string(nAtoms) + " atoms, found " + std::to_string(static_cast<long>(f.size()) - 1), ln);
  for (std::size_t i = 1; i < f.size(); ++i) m.moleculeAtoms.push_back(r.integer(f[i], ln, "molecule_atoms element"));
  f = r.fields("graph_cutoff", 1, ln);
  m.cutoff = r.number(f[0], ln, "graph_cutoff");
  const auto types = g.count("atom_types", 2, ln);
  const long nTypes = types[0], typeDim = types[1];
  if (nTypes < 1 || typeDim < 1)
    throw r.error("'atom_types' needs at least one type and an embedding width >= 1, found " + std::to_string(nTypes) + " " +
                      std::to_string(typeDim),
                  ln);
  m.typeDim = typeDim;
  for (long k = 1; k <= nTypes; ++k) {
    f = r.fields("atom_type", -1, ln);
    if (static_cast<long>(f.size()) != 2 + typeDim)
      throw r.error("'atom_type' " + std::to_string(k) + " has " + std::to_string(std::max<long>(static_cast<long>(f.size()) - 2, 0)) +
                        " embedding numbers, expected " + std::to_string(typeDim) + " (atom_types announces width " + std::to_string(typeDim) + ")",
                    ln);
    r.index(f[0], ln, k, "atom_type");
    m.atomTypes.push_back(r.integer(f[1], ln, "atom_type atomic number"));
    for (long d = 0; d < typeDim; ++d) m.embedding.push_back(r.number(f[2 + d], ln, "atom_type " + std::to_string(k) + " embedding"));
  }
  m.typeIn = g.linear("type_in");
  f = r.fields("radial_basis", 3, ln);
  if (f[0] != kRadialBasis) throw r.error("unsupported radial_basis '" + f[0] + "' (this molenv knows 'bessel')", ln);
  const long numRadial = r.integer(f[1], ln, "radial_basis size");
  m.envelopeExponent = r.integer(f[2], ln, "radial_basis envelope exponent");
  if (numRadial < 1) throw r.error("radial_basis needs at least one function, found " + std::to_string(numRadial), ln);
  f = r.fields("radial_frequencies", -1, ln);
  if (static_cast<long>(f.size()) != numRadial)
    throw r.error("'radial_frequencies' has " + std::to_string(f.size()) + " numbers, radial_basis announces " + std::to_string(numRadial), ln);
  for (const auto& x : f) m.radialFrequencies.push_back(r.number(x, ln, "radial_frequencies"));
  g.keywordValue("activation", kActivation);
  const long nConvs = g.count("conv_count", 1, ln)[0];
  for (long k = 1; k <= nConvs; ++k) {
    f = r.fields("conv", 1, ln);
    r.index(f[0], ln, k, "conv");
    const std::string where = "conv " + std::to_string(k) + " ";
    GnnConv c;
    c.nodeIn = g.linear("node_in", where);
    c.edgeIn = g.linear("edge_in", where);
    f = r.fields("attention", 2, ln);
    if (f[0] != kAttention || f[1] != "1")
      throw r.error("unsupported attention '" + f[0] + " " + f[1] + "' (this molenv knows 'transformer 1': one head)", ln);
    c.query = g.linear("query", where);
    c.key = g.linear("key", where);
    c.value = g.linear("value", where);
    c.edge = g.linear("edge", where);
    c.skip = g.linear("skip", where);
    c.beta = g.linear("beta", where);
    c.nodeOut = g.linear("node_out", where);
    c.block = g.block(where);
    m.convs.push_back(std::move(c));
  }
  g.keywordValue("pooling", kPooling);
  const long nBlocks = g.count("head_block_count", 1, ln)[0];
  for (long k = 1; k <= nBlocks; ++k) {
    f = r.fields("head_block", 1, ln);
    r.index(f[0], ln, k, "head_block");
    m.head.push_back(g.block("head_block " + std::to_string(k) + " "));
  }
  m.output = g.linear("output");
  // the ood block is a version 4 record: in a version 2 file it is refused as any record out of place
  if (withOod && r.peek() == "ood") {
    std::vector<unsigned> inputs(1, m.moleculeAtoms.size() * m.radialFrequencies.size());  // layer 1: the radial sums of the molecule's atoms
    for (const GnnBlock& b : m.head) inputs.push_back(b.linear.nin);
    inputs.push_back(m.output.nin);
    std::vector<std::string> names = m.classes;
    names.insert(names.end(), m.topologyClasses.begin(), m.topologyClasses.end());
    readOod(r, m.classes, names, inputs, m.ood);
  }
  r.fields("end", 0, ln);
  if (!r.peek().empty()) throw r.error("unexpected record '" + r.peek() + "' after 'end'", r.peekLine());
  try {
    validate(m);
  } catch (const ModelFileError& e) {
    throw ModelFileError(path + ": " + e.what());
  }
  return m;
}

}  // namespace molenv
}  // namespace PLMD
