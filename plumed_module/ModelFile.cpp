/* molenv: reader of the model file (docs/model_format.md), mirror of
   py/molenv/modelfile.py: read_model().  Keep the two in step: same records,
   same order, same validation rules, same messages.  The tokenizer (Records) is
   shared with the GNN reader: ModelRecords.h. */
#include "ModelFile.h"
#include "ModelRecords.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

namespace PLMD {
namespace molenv {

namespace {

bool parseActivation(const std::string& name, Activation& a) {
  if (name == "sigmoid") a = Activation::sigmoid;
  else if (name == "tanh") a = Activation::tanh;
  else if (name == "softplus") a = Activation::softplus;
  else if (name == "identity") a = Activation::identity;
  else if (name == "softmax") a = Activation::softmax;
  else return false;
  return true;
}

struct RawDescriptor {
  std::string kind;
  bool hasVector;
  long vector;  // 1-based as in the file
  std::vector<double> params;
};

}  // namespace

/// The optional ood block (docs/model_format.md, "The ood block"); Python: _read_ood.
void readOod(Records& r, const std::vector<std::string>& classes, const std::vector<std::string>& names, const std::vector<unsigned>& layerInputs,
             OodScore& o) {
  unsigned ln = 0;
  auto f = r.fields("ood", 4, ln);
  if (f[0] != "mahalanobis") throw r.error("unknown ood method '" + f[0] + "' (expected mahalanobis)", ln);
  const long layer = r.integer(f[1], ln, "ood layer");
  const long width = r.integer(f[2], ln, "ood features"), nMeans = r.integer(f[3], ln, "ood classes");
  const long nClasses = classes.size();
  if (std::find(names.begin(), names.end(), "other") != names.end())
    throw r.error("a model with an ood block cannot have a class named 'other': its out-of-distribution component is n_other", ln);
  const long nLayers = layerInputs.size();
  if (layer < 1 || layer > nLayers)
    throw r.error("ood: layer " + std::to_string(layer) + " is not a layer of the network (1.." + std::to_string(nLayers) + ")", ln);
  const long inputs = layerInputs[layer - 1];
  if (width != inputs)
    throw r.error("ood: " + std::to_string(width) + " features, but layer " + std::to_string(layer) + " has " + std::to_string(inputs) + " inputs", ln);
  if (nMeans < 1 || nMeans > nClasses)
    throw r.error("ood: " + std::to_string(nMeans) + " class means for a model of " + std::to_string(nClasses) + " classes", ln);
  o.layer = layer;
  o.width = width;
  f = r.fields("ood_softmin", 1, ln);
  o.temperature = r.number(f[0], ln, "ood_softmin");
  if (!(o.temperature > 0)) throw r.error("ood_softmin: the temperature must be positive, got " + f[0], ln);
  f = r.fields("ood_threshold", 2, ln);
  o.threshold = r.number(f[0], ln, "ood_threshold");
  o.scale = r.number(f[1], ln, "ood_threshold");
  if (!(o.scale > 0)) throw r.error("ood_threshold: the width must be positive, got " + f[1], ln);
  f = r.fields("ood_calibration", 3, ln);
  o.quantile = r.number(f[0], ln, "ood_calibration");
  o.lowQuantile = r.number(f[1], ln, "ood_calibration");
  o.nValidation = r.integer(f[2], ln, "ood_calibration");
  if (!(0 < o.lowQuantile && o.lowQuantile < o.quantile && o.quantile < 1 && o.nValidation >= 1))
    throw r.error("ood_calibration: needs 0 < low quantile < quantile < 1 and a validation molecule, got " + f[0] + " " + f[1] + " " + f[2], ln);
  r.fields("ood_whitening", 0, ln);
  for (long j = 0; j < width; ++j) {
    auto rec = r.next();
    const auto& tokens = rec.second;
    if (static_cast<long>(tokens.size()) != width)
      throw r.error("ood_whitening row " + std::to_string(j + 1) + " has " + std::to_string(tokens.size()) + " numbers, expected " +
                        std::to_string(width),
                    rec.first);
    for (const auto& t : tokens) o.whitening.push_back(r.number(t, rec.first, "ood_whitening"));
  }
  long last = -1;
  for (long c = 0; c < nMeans; ++c) {
    f = r.fields("ood_mean", -1, ln);
    if (static_cast<long>(f.size()) != width + 1)
      throw r.error("'ood_mean' takes " + std::to_string(width + 1) + " fields (a class and " + std::to_string(width) + " numbers), found " +
                        std::to_string(f.size()),
                    ln);
    const long k = std::find(classes.begin(), classes.end(), f[0]) - classes.begin();
    if (k == nClasses) throw r.error("ood_mean: '" + f[0] + "' is not a class of the model", ln);
    if (k <= last) throw r.error("ood_mean: class '" + f[0] + "' is repeated or out of the classes' order", ln);
    last = k;
    o.classNames.push_back(f[0]);
    for (long j = 1; j <= width; ++j) o.means.push_back(r.number(f[j], ln, "ood_mean"));
  }
  o.enabled = true;
}


std::string activationName(Activation a) {
  switch (a) {
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::softplus: return "softplus";
    case Activation::identity: return "identity";
    case Activation::softmax: return "softmax";
  }
  return "?";
}

Model readModelFile(const std::string& path) {
  const std::string problem = fileProblem(path, "model file");
  if (!problem.empty()) throw ModelFileError(problem);
  Records r(path);
  Model m;
  m.path = path;
  unsigned ln = 0;

  auto f = r.fields("molenv_model", 1, ln);
  if (f[0] != "1" && f[0] != "3") {
    if ((f[0] == "2" || f[0] == "4") && r.peek() == "kind") {  // a newer kind of model (MOLENV_CLASSIFY gives it to the GNN reader)
      const auto kind = r.peekFields();
      throw r.error("unsupported model file version " + f[0] + " for read_model, which reads SF model files (versions 1 and 3): this is a model of kind '" +
                        (kind.empty() ? std::string("?") : kind[0]) + "'; read a GNN model file with molenv.gnn.modelfile.read_gnn_model",
                    ln);
    }
    throw r.error("unsupported model file version " + f[0] + " (this molenv reads versions 1 and 3)", ln);
  }
  const bool version3 = f[0] == "3";  // the records added since version 1 (richer geometry, ood block) may appear
  f = r.fields("name", -1, ln);
  for (std::size_t i = 0; i < f.size(); ++i) m.name += (i ? " " : "") + f[i];
  r.meta();
  f = r.fields("classes", -1, ln);
  long nClasses = f.empty() ? 0 : r.integer(f[0], ln, "classes");
  if (nClasses < 1 || static_cast<long>(f.size()) - 1 != nClasses)
    throw r.error("'classes' announces " + std::to_string(nClasses) + " names, found " + std::to_string(static_cast<long>(f.size()) - 1), ln);
  m.classes.assign(f.begin() + 1, f.end());

  f = r.fields("atoms_per_molecule", 1, ln);
  long atoms = r.integer(f[0], ln, "atoms_per_molecule");
  std::vector<long> centre;
  const bool centroid = version3 && r.peek() == "centre_atoms";
  if (centroid) {
    f = r.fields("centre_atoms", -1, ln);
    const long n = f.empty() ? 0 : r.integer(f[0], ln, "centre_atoms");
    if (static_cast<long>(f.size()) - 1 != n)
      throw r.error("'centre_atoms' announces " + std::to_string(n) + " atoms, found " + std::to_string(static_cast<long>(f.size()) - 1), ln);
    for (std::size_t k = 1; k < f.size(); ++k) centre.push_back(r.integer(f[k], ln, "centre atom"));
  } else {
    f = r.fields("centre_atom", 1, ln);
    centre.push_back(r.integer(f[0], ln, "centre_atom"));
  }
  const long nVectors = r.count("vector_count", 1, ln)[0];
  std::vector<std::vector<long>> vectors;
  std::vector<bool> signInvariant;
  for (long k = 1; k <= nVectors; ++k) {
    bool flag = false;
    if (!version3) {
      f = r.fields("vector", 3, ln);
    } else {  // index a b | index normal a b c d, then optionally sign_invariant
      f = r.fields("vector", -1, ln);
      if (!f.empty() && f.back() == "sign_invariant") {
        flag = true;
        f.pop_back();
      }
      if (!(f.size() == 3 || (f.size() == 6 && f[1] == "normal")))
        throw r.error("'vector' needs: index a b, or index normal a b c d; then optionally sign_invariant", ln);
    }
    r.index(f[0], ln, k, "vector");
    std::vector<long> atoms;
    for (std::size_t j = f.size() == 6 ? 2 : 1; j < f.size(); ++j) atoms.push_back(r.integer(f[j], ln, "vector atom"));
    vectors.push_back(atoms);
    signInvariant.push_back(flag);
  }
  f = r.fields("cutoff", 2, ln);
  m.rmin = r.number(f[0], ln, "cutoff");
  m.rmax = r.number(f[1], ln, "cutoff");

  // nothing is allocated from a count before its records are read
  const long nSF = r.count("descriptor_count", 1, ln)[0];
  std::vector<RawDescriptor> raw;
  for (long i = 1; i <= nSF; ++i) {
    f = r.fields("descriptor", -1, ln);
    if (f.size() < 3) throw r.error("'descriptor' needs: index kind vector parameters...", ln);
    r.index(f[0], ln, i, "descriptor");
    RawDescriptor d;
    d.kind = f[1];
    d.hasVector = f[2] != "-";
    d.vector = d.hasVector ? r.integer(f[2], ln, "descriptor vector") : 0;
    for (std::size_t j = 3; j < f.size(); ++j) d.params.push_back(r.number(f[j], ln, "descriptor parameter"));
    raw.push_back(d);
  }
  for (long i = 1; i <= nSF; ++i) {
    f = r.fields("scaling", 3, ln);
    r.index(f[0], ln, i, "scaling");
    m.mean.push_back(r.number(f[1], ln, "scaling"));
    m.stretch.push_back(r.number(f[2], ln, "scaling"));
  }
  f = r.fields("hidden_activation", 1, ln);
  std::string hidden = f[0];
  f = r.fields("output_activation", 1, ln);
  std::string output = f[0];
  const long nLayers = r.count("layer_count", 1, ln)[0];
  for (long k = 1; k <= nLayers; ++k) {
    f = r.fields("layer", 3, ln);
    r.index(f[0], ln, k, "layer");
    long nin = r.integer(f[1], ln, "layer inputs"), nout = r.integer(f[2], ln, "layer outputs");
    if (nin < 1 || nout < 1)
      throw r.error("layer " + std::to_string(k) + " has " + std::to_string(nin) + " inputs and " + std::to_string(nout) + " outputs", ln);
    DenseLayer L;
    L.nin = nin;
    L.nout = nout;
    for (long j = 0; j < nout; ++j) {
      auto rec = r.next();
      const auto& tokens = rec.second;
      if (static_cast<long>(tokens.size()) != nin + 1)
        throw r.error("layer " + std::to_string(k) + " row " + std::to_string(j + 1) + " has " + std::to_string(tokens.size()) +
                          " numbers, expected " + std::to_string(nin + 1) + " (bias + " + std::to_string(nin) + " weights)",
                      rec.first);
      std::string what = "layer " + std::to_string(k);
      L.b.push_back(r.number(tokens[0], rec.first, what));
      for (long i = 0; i < nin; ++i) L.w.push_back(r.number(tokens[i + 1], rec.first, what));
    }
    m.layers.push_back(std::move(L));
  }
  // the ood block is a version 3 record: in a version 1 file it is refused as any unknown record
  if (version3 && r.peek() == "ood") {
    std::vector<unsigned> inputs;
    for (const auto& L : m.layers) inputs.push_back(L.nin);
    readOod(r, m.classes, m.classes, inputs, m.ood);
  }
  r.fields("end", 0, ln);
  if (!r.peek().empty()) throw r.error("unexpected record '" + r.peek() + "' after 'end'", r.peekLine());

  // ---- validation (Python: Model.validate, DescriptorSet.validate, Network.validate)
  auto fail = [&](const std::string& msg) { return ModelFileError(path + ": " + msg); };
  static const std::regex className("^[A-Za-z0-9_]+$");
  for (const auto& c : m.classes)
    if (!std::regex_match(c, className))
      throw fail("class name " + pyRepr(c) + " must match [A-Za-z0-9_]+ (it becomes a PLUMED component name)");
  if (std::set<std::string>(m.classes.begin(), m.classes.end()).size() != m.classes.size()) {
    std::string list = "[";
    for (std::size_t i = 0; i < m.classes.size(); ++i) list += (i ? ", " : "") + pyRepr(m.classes[i]);
    throw fail("duplicate class names in " + list + "]");
  }
  if (atoms < 1) throw fail("atoms_per_molecule must be >= 1, got " + std::to_string(atoms));
  const std::string range = " is outside the molecule (1.." + std::to_string(atoms) + ")";
  for (long atom : centre)
    if (atom < 1 || atom > atoms) throw fail("centre atom " + std::to_string(atom) + range);
  if (centroid && (centre.size() < 2 || std::set<long>(centre.begin(), centre.end()).size() != centre.size())) {
    std::string list;
    for (std::size_t k = 0; k < centre.size(); ++k) list += (k ? " " : "") + std::to_string(centre[k]);
    throw fail("a centroid centre needs two or more distinct atoms, got " + list);
  }
  for (std::size_t k = 0; k < vectors.size(); ++k) {
    for (long atom : vectors[k])
      if (atom < 1 || atom > atoms) throw fail("vector " + std::to_string(k + 1) + " atom " + std::to_string(atom) + range);
    for (std::size_t j = 0; j < vectors[k].size(); j += 2)
      if (vectors[k][j] == vectors[k][j + 1])
        throw fail("vector " + std::to_string(k + 1) + " starts and ends on atom " + std::to_string(vectors[k][j]));
  }
  if (!(0 <= m.rmin && m.rmin < m.rmax))
    throw fail("cutoff needs 0 <= rmin < rmax, got rmin=" + pyFloat(m.rmin) + " rmax=" + pyFloat(m.rmax));
  if (raw.empty()) throw fail("no symmetry functions");
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto& d = raw[i];
    const std::string di = "descriptor " + std::to_string(i + 1) + ": ";
    SymmetryFunctionDef sf;
    unsigned nparams;
    bool angular;
    if (d.kind == "S1") { sf.kind = SFKind::S1; nparams = 2; angular = false; }
    else if (d.kind == "S2") { sf.kind = SFKind::S2; nparams = 1; angular = false; }
    else if (d.kind == "S3") { sf.kind = SFKind::S3; nparams = 2; angular = true; }
    else if (d.kind == "S4") { sf.kind = SFKind::S4; nparams = 1; angular = true; }
    else throw fail(di + "unknown kind " + pyRepr(d.kind) + " (expected one of S1, S2, S3, S4)");
    if (d.params.size() != nparams)
      throw fail(di + d.kind + " takes " + std::to_string(nparams) + " parameters, got " + std::to_string(d.params.size()));
    const std::string vec = d.hasVector ? std::to_string(d.vector) : std::string("None");
    if (angular) {
      if (!d.hasVector || d.vector < 1 || d.vector > static_cast<long>(vectors.size()))
        throw fail(di + d.kind + " needs a vector index in 1.." + std::to_string(vectors.size()) + ", got " + vec);
    } else if (d.hasVector) {
      throw fail(di + d.kind + " is radial and takes no vector ('-'), got " + vec);
    }
    sf.vector = angular ? static_cast<int>(d.vector - 1) : -1;
    sf.p0 = d.params[0];
    sf.p1 = nparams > 1 ? d.params[1] : 0.0;
    m.descriptors.push_back(sf);
  }
  Activation act;
  if (!parseActivation(hidden, act) || act == Activation::softmax)
    throw fail("unknown hidden activation " + pyRepr(hidden) + " (expected one of sigmoid, tanh, softplus, identity)");
  m.hidden = act;
  if (!parseActivation(output, act) || !(act == Activation::softmax || act == Activation::sigmoid))
    throw fail("unknown output activation " + pyRepr(output) + " (expected one of softmax, sigmoid)");
  m.output = act;
  if (m.layers.empty()) throw fail("the network needs at least one layer, each with weights and biases");
  unsigned nin = m.descriptors.size();
  for (std::size_t k = 0; k < m.layers.size(); ++k) {
    const auto& L = m.layers[k];
    if (L.nin != nin)
      throw fail("layer " + std::to_string(k + 1) + " has shape (" + std::to_string(L.nout) + ", " + std::to_string(L.nin) +
                 ") (bias (" + std::to_string(L.nout) + ",)); expected " + std::to_string(nin) + " inputs");
    nin = L.nout;
  }
  if (nin != m.classes.size())
    throw fail("the last layer has " + std::to_string(nin) + " outputs for " + std::to_string(m.classes.size()) + " classes");

  m.atomsPerMolecule = atoms;
  for (long atom : centre) m.centre.push_back(atom - 1);
  for (std::size_t k = 0; k < vectors.size(); ++k) {
    MoleculeVector v;
    for (std::size_t j = 0; j < vectors[k].size(); ++j) v.atoms[j] = vectors[k][j] - 1;
    v.normal = vectors[k].size() == 4;
    v.signInvariant = signInvariant[k];
    m.vectors.push_back(v);
  }
  return m;
}

}  // namespace molenv
}  // namespace PLMD
