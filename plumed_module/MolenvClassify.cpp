/* molenv: the MOLENV_CLASSIFY action.  LGPL-3.0-or-later.

   Classifies the local environment of every molecule with point-vector molecular
   symmetry functions and a small network per molecule (Kuroshima, Kilgour,
   Tuckerman, Rogal, J. Chem. Theory Comput. 20, 6197 (2024)), and reports soft class
   populations, fractions and a path CV in fraction space, all with analytic
   derivatives with respect to the atoms and the cell.  Full documentation:
   docs/plumed_action.md.

   This file is the action: keywords, parsing, components, and the orchestration of a
   step; the computation lives in
     MoleculeFrame     per-step geometry of the molecules (centres, vectors, region weights)
     NeighbourCells    pairs of molecules within the cutoff (cell list + Verlet list)
     ValuePass         pass 1 over the pairs (descriptors) and the network (probabilities)
     DerivativePass    backward sweeps, pass 2 over the pairs, per-molecule reduction,
                       contracted with per-molecule seeds
     MoleculeFiles     PROB_FILE / SF_FILE
   on top of the kernels SymmetryFunctions, Network, PairBlocks, PathCV, SlabRegion.  The
   companion action MOLENV_PROBABILITIES (MolenvProbabilities.cpp) reads the per-molecule
   probabilities of a step through the ProbabilitySource interface, as a matrix value.

   Derivative scheme.  Every descriptor of molecule I is a sum of pair terms
   t_g(r_IJ, cos theta_IJ,s) that are symmetric in I and J.  With J_I = dp(I)/dG(I)
   the network Jacobian and w_I the region weight,
       d n_k = sum_pairs sum_g (w_I J_I[k,g] + w_J J_J[k,g]) d t_g(I,J) + sum_I p_k(I) d w_I,
   and f_k, nmol, s and z are functions of (n_k, W = sum_I w_I), so the derivative of
   every component c is sum_k alpha_ck d n_k + beta_c d W with coefficients known once
   the values are (setComponents()).  Each unordered pair is visited once per step for
   the values (pass 1) and once for the derivatives (pass 2), where the pair terms are
   contracted on the fly with the weighted Jacobians of both molecules; nothing of size
   N*neighbours*n_sf is stored.

   What a step needs is the forces, not the derivatives: with bias forces F_c on the
   components, the force on the atoms is -sum_c F_c dc/dx = the derivative of
   sum_k gamma_k n_k + delta W with gamma_k = sum_c F_c alpha_ck, delta = sum_c F_c beta_c.
   So by default calculate() computes values only (and keeps the network activations),
   and apply() turns the forces on the components into gamma, delta and runs the
   derivative pass with that ONE seed: one vector-Jacobian product per molecule (seed
   w_I gamma) and one contracted pass 2, which hand the atom forces and the virial to
   PLUMED: the cost does not grow with the number of classes or of biased components.
   PLUMED's per-component derivative arrays are filled (the same pass with K + 1 seeds,
   n_0 .. n_{K-1} and W: K Jacobian sweeps and a K-wide pass 2, combined with alpha and
   beta) only when something reads them: FULL_DERIVATIVES, a
   DUMPDERIVATIVES/DUMPPROJECTIONS of a component, an action that asks for gradients
   (e.g. METAD ADAPTIVE=GEOM), or NUMERICAL_DERIVATIVES (then PLUMED fills them itself).

   Threads (OpenMP): PLUMED's thread count (OpenMP::getNumThreads(): PLUMED_NUM_THREADS
   if set, else what the MD engine set with setNumOMPthreads, else 1) unless NUM_THREADS
   overrides it.  Pairs are owned by contiguous molecule ranges, one per thread; each
   thread accumulates into its own buffers, which are summed in thread order.  Results
   are reproducible run to run for a given thread count, and differ between thread
   counts only by rounding (~1e-15 relative).

   MPI: with several ranks in PLUMED's communicator (unless SERIAL), each rank computes a
   contiguous share of the molecules, with its threads inside that share, and the
   per-molecule numbers are summed over the ranks (RankSplit.h), so that every rank has
   all values and forces; they differ from one rank's only by rounding (SF; the GNN's do
   not depend on the number of ranks).

   Units: the model works in Angstrom; positions are converted from PLUMED's internal
   length unit once per step, derivatives converted back.

   Model kinds.  The action dispatches on the model file's kind (modelFileKind()): the
   SF kind above, or the GNN kind (molenv_model 2, kind gnn: GnnModelFile, AtomGraph,
   GraphNetwork), a graph network over all atoms of all molecules.  For the GNN the
   elements of the atoms are the model's molecule_atoms (every atom of a MOLECULES
   group, in the model's atom order), the per-molecule probabilities are the polymorph
   probabilities, and n_k = sum_I p_k(I), W = nmol: the same components, coefficients
   alpha and beta, and the same two ways of applying forces, with GraphNetwork's reverse
   pass in place of the three SF passes (one reverse pass per seed channel).  The
   topology probabilities (bulk / surface) are extra per-molecule outputs (PROB_FILE
   columns, p_<TOPOLOGY> vectors, MOLENV_PROBABILITIES columns).  No slab region (the GNN
   has no centre atom) and no SF_FILE (no symmetry functions) for the GNN kind. */
#include "AtomGraph.h"
#include "DerivativePass.h"
#include "GnnModelFile.h"
#include "GraphNetwork.h"
#include "ModelFile.h"
#include "MoleculeFiles.h"
#include "MoleculeFrame.h"
#include "MolenvProbabilities.h"
#include "Network.h"
#include "NeighbourCells.h"
#include "PathCV.h"
#include "RankSplit.h"
#include "SlabRegion.h"
#include "SymmetryFunctions.h"
#include "ValuePass.h"

#include "core/Colvar.h"  // PLMD::Colvar itself (colvar/Colvar.h forwards to it and is installed only with the colvar module)
#include "config/version.h"
#include "core/ActionRegister.h"
#include "core/ActionSet.h"
#include "core/ActionWithArguments.h"
#include "core/PlumedMain.h"
#include "tools/Communicator.h"
#include "tools/OpenMP.h"
#include "tools/Pbc.h"
#include "tools/Units.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>

namespace PLMD {
namespace molenv {

// Upper bounds of keywords whose absurd values would hang or exhaust the machine.
constexpr int kMaxThreads = 1024;
constexpr int kMaxPathImages = 100000;


//+PLUMEDOC COLVAR MOLENV_CLASSIFY
/*
Classify the local environment of every molecule (polymorph, melt, ...) with
point-vector molecular symmetry functions and a per-molecule network, and report
soft class populations n_<CLASS>, fractions f_<CLASS>, the number of molecules
counted (nmol) and optionally a path CV (s in 0..1, z) in class-fraction space.
Component names are built from the class names stored in the model file.

The model file is of kind SF (version 1: symmetry functions and an MLP per molecule) or of
kind gnn (version 2: the graph classifier of molenv train gnn, a graph network over all
atoms of all molecules, run in double precision; the components are computed from its
polymorph probabilities, the topology (bulk/surface) probabilities are per-molecule outputs
only; no REGION_* or SF_FILE).  Both kinds have analytic derivatives of every scalar
component with respect to the atoms and the cell.

\plumedfile
LOAD FILE=/path/printed/by/molenv-plumed-lib
cls: MOLENV_CLASSIFY MODEL=urea.molenv MOLECULES=1-3456
PRINT ARG=cls.* FILE=COLVAR
\endplumedfile

See docs/plumed_action.md of molenv for every keyword, component and convention.
*/
//+ENDPLUMEDOC

class MolenvClassify : public Colvar, public ProbabilitySource {
public:
  static void registerKeywords(Keywords& keys);
  explicit MolenvClassify(const ActionOptions&);
  ~MolenvClassify();
  void calculate() override;
  void apply() override;
#if PLUMED_VERSION_MAJOR > 2 || (PLUMED_VERSION_MAJOR == 2 && PLUMED_VERSION_MINOR >= 10)
  void clearDerivatives(const bool& force = false) override;
#endif
  // ---- ProbabilitySource: what MOLENV_PROBABILITIES reads
  unsigned numberOfMolecules() const override { return nmol_; }
  const std::vector<std::string>& probabilityNames() const override { return vecNames_; }
  void addProbabilityReader(const Action* reader) override { probabilityReaders_.push_back(reader); }
  void copyProbabilities(Value& out) const override;

private:
  // ---- model, kernels and the passes over the pairs
  ModelKind kind_ = ModelKind::sf;
  Model model_;  ///< SF kind
  std::vector<std::string> classes_;  ///< the classes of the n_/f_ components (GNN: the polymorph classes)
  std::unique_ptr<SymmetryFunctions> sf_;
  std::unique_ptr<Network> net_;
  unsigned nmol_ = 0, nvec_ = 0, ncls_ = 0, nsf_ = 0;
  AtomSlots slots_;  ///< requested atoms are molecule-major: slot q of molecule m is m*nlocal+q
  std::unique_ptr<ValuePass> values_;
  std::unique_ptr<DerivativePass> derivs_;
  // ---- GNN kind: the model, the atom graph and the network
  GnnModel gnnModel_;
  std::unique_ptr<GraphNetwork> gnn_;
  std::unique_ptr<AtomGraphBuilder> graphBuilder_;
  AtomGraph graph_;
  std::vector<double> atomPos_;  ///< Angstrom, 3 per requested atom
  // ---- options
  bool nopbc_ = false;
  unsigned nthreads_ = 1;
  RankSplit ranks_;  ///< this rank's share of the molecules (MPI)
  SlabRegion region_;
  double regionCentre_ = 0, regionHalfwidth_ = 0, regionSmoothing_ = 0;  // PLUMED units
  bool hasPath_ = false;
  PathCV path_;
  std::vector<unsigned> pathClasses_;
  MoleculeFiles files_;
  bool probVectors_ = false;
  bool ood_ = false;  ///< OOD: the out-of-distribution score is the last of classes_ ("other")
  std::vector<const Action*> probabilityReaders_;  ///< MOLENV_PROBABILITIES actions reading this one
  // ---- outputs
  std::vector<Value*> nVal_, fVal_, pVec_;
  std::vector<std::string> vecNames_;  ///< per-molecule outputs (p_<NAME> vectors, PROB_FILE columns): classes (+ GNN topology classes)
  Value* nmolVal_ = nullptr;
  Value* sVal_ = nullptr;
  Value* zVal_ = nullptr;
  // ---- derivatives: what this step computes (see "Derivative scheme" above)
  enum class Deriv { none, full, forces };
  Deriv mode_ = Deriv::none;
  bool fullDerivatives_ = false;  ///< FULL_DERIVATIVES flag
  bool consumersChecked_ = false, dumpConsumer_ = false;
  // ---- per-step state (Angstrom)
  CellGeometry cell_;
  double toA_ = 1.0;
  MoleculeFrame frame_;
  NeighbourCells cells_;
  PairLists pairs_;
  std::vector<unsigned> ranges_;  ///< thread t of this rank owns the pairs found from molecules ranges_[t] .. ranges_[t+1]-1
  // derivative coefficients of the components: d c = sum_k alpha_[c][k] d n_k + beta_[c] d W
  std::vector<Value*> comps_;
  std::vector<std::vector<double>> alpha_;
  std::vector<double> beta_;
  std::vector<double> forcesToApply_;

  // ---- optional per-stage wall-clock timings (TIMINGS flag)
  bool timings_ = false;
  enum Stage { sGeometry, sNeighbours, sPass1, sNetwork, sValues, sBackward, sPass2, sWrite, nStages };
  double stageTime_[nStages] = {0, 0, 0, 0, 0, 0, 0, 0};
  unsigned long steps_ = 0, derivSteps_ = 0, pairCount_ = 0, rebuilds_ = 0;
  std::chrono::steady_clock::time_point tick_;
  void lap(Stage s) {
    if (!timings_) return;
    auto now = std::chrono::steady_clock::now();
    stageTime_[s] += std::chrono::duration<double>(now - tick_).count();
    tick_ = now;
  }

  // ---- set-up (the constructor's steps, in their order)
  /// what the later steps need of FILE_STRIDE, PROB_FILE, SF_FILE and NL_SKIN
  struct Options {
    std::string probFile, sfFile;
    int stride = 1;
    double skinA = 1.0;  ///< neighbour-list skin, Angstrom
  };
  void parseModel();
  void parseOod(const std::string& modelPath);
  std::vector<std::vector<AtomNumber>> parseMolecules();
  std::vector<AtomNumber> setupSlots(const std::vector<std::vector<AtomNumber>>& molecules);
  void parseThreads();
  void setupRanks();
  std::string parseRegion();
  std::vector<std::string> parsePath();
  Options parseOptions();
  void addComponents();
  void setupPasses(double skinA);
  void logSetup(const std::string& axis, const std::vector<std::string>& pathClasses, const Options& options);
  bool gnnKind() const { return kind_ == ModelKind::gnn; }
  unsigned atomsPerMolecule() const;

  void checkConsumers();
  void setupGeometry(double toA);
  void graphValues();
  const std::vector<double>& probabilities() const { return gnn_ ? gnn_->polymorph() : values_->prob(); }
  bool probabilitiesRead() const;
  void setComponents();
  void derivatives(const Seeds& seeds, DerivativeSink& sink);
  void fillDerivativeArrays();
};

PLUMED_REGISTER_ACTION(MolenvClassify, "MOLENV_CLASSIFY")

void MolenvClassify::registerKeywords(Keywords& keys) {
  Colvar::registerKeywords(keys);
  keys.add("compulsory", "MODEL",
           "the molenv model file (docs/model_format.md), lengths in Angstrom: kind SF (version 1: descriptors, cutoff, network, "
           "class names) or kind gnn (version 2: a graph network over all atoms of all molecules, the elements of each molecule's "
           "atoms, polymorph and topology classes)");
  keys.add("atoms", "MOLECULES",
           "the atoms of all molecules, cut into consecutive molecules of atoms_per_molecule atoms each "
           "(in the model's atom order); the number of atoms must be a multiple of atoms_per_molecule (GNN: the number of "
           "molecule_atoms, whose elements the atoms are taken to be)");
  keys.add("numbered", "MOLECULE",
           "the atoms of one molecule in the model's atom order (MOLECULE1, MOLECULE2, ...), for systems whose atoms "
           "are not ordered molecule by molecule; use instead of MOLECULES");
  keys.reset_style("MOLECULE", "atoms");
  keys.add("optional", "NUM_THREADS",
           "number of OpenMP threads for this action (default: PLUMED's thread count, i.e. the environment variable "
           "PLUMED_NUM_THREADS if set, else the MD engine's setting, else 1)");
  keys.addFlag("SERIAL", false,
               "compute every molecule on every MPI rank (default: the ranks of PLUMED's communicator share the molecules and sum "
               "their results)");
  keys.add("optional", "REGION_AXIS",
           "restrict n_/f_ to molecules whose centre is in a slab normal to the cell face spanned by the two other cell "
           "vectors: x, y or z (SF models only)");
  keys.add("optional", "REGION_CENTER", "position of the slab centre along the slab normal (length units)");
  keys.add("optional", "REGION_HALFWIDTH", "half width of the slab in which molecules count fully (length units)");
  keys.add("optional", "REGION_SMOOTHING",
           "width of the smooth switching shell outside the half width (length units); 0 gives a hard cut without forces "
           "from the boundary (analysis only)");
  keys.add("optional", "PATH_CLASSES",
           "comma separated class names spanning the path space (default: all classes), e.g. PATH_CLASSES=I,IV");
  keys.add("optional", "PATH_START", "fractions of the PATH_CLASSES at the first image (linear path, with PATH_END, PATH_NIMAGES)");
  keys.add("optional", "PATH_END", "fractions of the PATH_CLASSES at the last image");
  keys.add("optional", "PATH_NIMAGES", "number of images of the linear path from PATH_START to PATH_END (at least 2)");
  keys.add("numbered", "PATH_IMAGE", "explicit path images, PATH_IMAGE1=..., PATH_IMAGE2=..., fractions of the PATH_CLASSES");
  keys.add("optional", "LAMBDA", "lambda of the path CV (1/fraction^2), e.g. 200; needed with a path");
  keys.add("optional", "NL_SKIN",
           "skin of the neighbour list (length units; default 0.1 nm): pairs closer than the cutoff plus the skin are listed "
           "and the list is reused until a molecule centre has moved by more than half the skin or the cell changes; 0 "
           "searches neighbours at every step");
  keys.add("optional", "PROB_FILE",
           "write the class probabilities of every molecule to this file (GNN: the polymorph, then the topology probabilities)");
  keys.add("optional", "SF_FILE", "write the raw (unscaled) symmetry functions of every molecule to this file (SF models only)");
  keys.add("compulsory", "FILE_STRIDE", "1", "write PROB_FILE/SF_FILE every this many steps");
  keys.addFlag("TIMINGS", false, "write a breakdown of this action's wall-clock time per stage to the log at the end");
  keys.addFlag("FULL_DERIVATIVES", false,
               "fill PLUMED's derivative arrays of every component at every step (per class: slower); by default the bias "
               "forces are contracted with the derivatives directly, and the arrays are filled only when DUMPDERIVATIVES, "
               "DUMPPROJECTIONS or gradients (e.g. METAD ADAPTIVE=GEOM) need them");
  keys.addFlag("OOD", false,
               "add the out-of-distribution score of the model's ood block as one more class, other: components n_other and "
               "f_other (smooth, with derivatives: they can be printed and biased), a PROB_FILE column and, with PROB_VECTORS, "
               "p_other (a model file, SF or GNN, with an ood block; docs/plumed_action.md)");
  keys.addFlag("PROB_VECTORS", false,
               "also output the per-molecule class probabilities as vector components p_<CLASS> (one element per "
               "molecule; GNN: also p_<TOPOLOGY> for the topology classes; no derivatives, so they can be analysed but not biased)");
#if PLUMED_VERSION_MAJOR > 2 || (PLUMED_VERSION_MAJOR == 2 && PLUMED_VERSION_MINOR >= 10)
  keys.addOutputComponent("nmol", "default", "scalar", "the number of molecules counted: N, or sum_I w_I with a region");
  keys.addOutputComponent("s", "LAMBDA", "scalar", "progress along the path in class-fraction space, 0 at the first image, 1 at the last");
  keys.addOutputComponent("z", "LAMBDA", "scalar", "distance from the path, -(1/lambda) ln sum_i exp(-lambda D_i)");
#else
  keys.addOutputComponent("nmol", "default", "the number of molecules counted: N, or sum_I w_I with a region");
  keys.addOutputComponent("s", "LAMBDA", "progress along the path in class-fraction space, 0 at the first image, 1 at the last");
  keys.addOutputComponent("z", "LAMBDA", "distance from the path, -(1/lambda) ln sum_i exp(-lambda D_i)");
#endif
  // n_<CLASS>, f_<CLASS> and p_<CLASS> take their names from the model's classes (and, with OOD, other;
  // PLUMED reserves the underscore in registered component names, so n_other cannot be registered)
  ActionWithValue::useCustomisableComponents(keys);
}

namespace {

bool classIndex(const std::vector<std::string>& classes, const std::string& name, unsigned& k) {
  for (k = 0; k < classes.size(); ++k)
    if (classes[k] == name) return true;
  return false;
}

std::string joinNames(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

/// Forces (default): the derivatives of the one channel sum_k gamma_k n_k + delta W,
/// in PLUMED's units, into the array handed to setForcesOnAtoms (atoms, then the box).
class ForceSink : public DerivativeSink {
public:
  ForceSink(std::vector<double>& forces, unsigned nlocal, double toA) : forces_(forces), nlocal_(nlocal), toA_(toA) {}
  void molecule(unsigned m, const double* local) override {
    double* out = &forces_[3 * m * nlocal_];
    for (unsigned q = 0; q < 3 * nlocal_; ++q) out[q] = local[q] * toA_;
  }
  void box(const double* box) override {
    std::copy_n(box, 9, forces_.end() - 9);  // dimensionless: no unit conversion
  }

private:
  std::vector<double>& forces_;
  unsigned nlocal_;
  double toA_;
};

/// Derivative arrays: from the channels n_0 .. n_{K-1}, W, every component's
/// derivatives d c = sum_k alpha[c][k] d n_k + beta[c] d W.
class ComponentSink : public DerivativeSink {
public:
  ComponentSink(const std::vector<Value*>& comps, const std::vector<std::vector<double>>& alpha, const std::vector<double>& beta,
                unsigned K, unsigned nlocal, unsigned natoms, double toA)
      : comps_(comps), alpha_(alpha), beta_(beta), K_(K), nlocal_(nlocal), natoms_(natoms), toA_(toA), terms_(comps.size()) {
    // the nonzero coefficients of each component, channel W last
    for (std::size_t c = 0; c < comps.size(); ++c)
      for (unsigned k = 0; k <= K; ++k) {
        const double coef = (k < K) ? alpha[c][k] : beta[c];
        if (coef != 0.0) terms_[c].emplace_back(k, coef);
      }
  }
  void molecule(unsigned m, const double* local) override {
    const unsigned n = 3 * nlocal_, base = m * n;
    for (std::size_t c = 0; c < comps_.size(); ++c) {
      for (unsigned q = 0; q < n; ++q) {
        double d = 0.0;
        for (const auto& term : terms_[c]) d += term.second * local[term.first * n + q];
        comps_[c]->setDerivative(base + q, d * toA_);
      }
    }
  }
  void box(const double* box) override {
    // dimensionless: no unit conversion
    for (std::size_t c = 0; c < comps_.size(); ++c) {
      for (unsigned q = 0; q < 9; ++q) {
        double b = beta_[c] * box[9 * K_ + q];
        for (unsigned k = 0; k < K_; ++k) b += alpha_[c][k] * box[9 * k + q];
        comps_[c]->setDerivative(3 * natoms_ + q, b);
      }
    }
  }

private:
  const std::vector<Value*>& comps_;
  const std::vector<std::vector<double>>& alpha_;
  const std::vector<double>& beta_;
  unsigned K_, nlocal_, natoms_;
  double toA_;
  std::vector<std::vector<std::pair<unsigned, double>>> terms_;
};

}  // namespace

MolenvClassify::MolenvClassify(const ActionOptions& ao) : PLUMED_COLVAR_INIT(ao) {
  parseModel();
  const std::vector<AtomNumber> atoms = setupSlots(parseMolecules());
  parseThreads();
  setupRanks();
  const std::string axis = parseRegion();
  const std::vector<std::string> pathClasses = parsePath();
  const Options options = parseOptions();
  checkRead();
  addComponents();
  requestAtoms(atoms);
  files_.open(*this, options.probFile, options.sfFile, options.stride);
  setupPasses(options.skinA);
  logSetup(axis, pathClasses, options);
}

unsigned MolenvClassify::atomsPerMolecule() const {
  return gnnKind() ? gnnModel_.moleculeAtoms.size() : model_.atomsPerMolecule;
}

// MODEL: the model of either kind, its classes and (SF kind) its kernels
void MolenvClassify::parseModel() {
  std::string modelPath;
  parse("MODEL", modelPath);
  kind_ = modelFileKind(modelPath);
  try {
    if (gnnKind()) gnnModel_ = readGnnModelFile(modelPath);
    else model_ = readModelFile(modelPath);
  } catch (const ModelFileError& e) {
    error(std::string("cannot read MODEL: ") + e.what());
  }
  if (gnnKind()) {
    classes_ = gnnModel_.classes;
    parseOod(modelPath);
    vecNames_ = classes_;
    vecNames_.insert(vecNames_.end(), gnnModel_.topologyClasses.begin(), gnnModel_.topologyClasses.end());
  } else {
    classes_ = model_.classes;
    parseOod(modelPath);
    vecNames_ = classes_;
    nvec_ = model_.vectors.size();
    sf_ = std::make_unique<SymmetryFunctions>(model_);
    net_ = std::make_unique<Network>(model_, sf_->order(), ood_);
    nsf_ = sf_->size();
  }
  ncls_ = classes_.size();
}

// OOD: the score of the model's ood block as the class "other" (after the model's classes)
void MolenvClassify::parseOod(const std::string& modelPath) {
  parseFlag("OOD", ood_);
  if (!ood_) return;
  if (!(gnnKind() ? gnnModel_.ood : model_.ood).enabled)
    error("OOD needs a model file with an ood block (the calibrated out-of-distribution score), and " + modelPath +
          " has none: export the model again with molenv export, or add the block with molenv ood-calibrate (docs/training.md)");
  classes_.push_back("other");
}

// MOLECULES or MOLECULE1, MOLECULE2, ...: the atoms of each molecule, in the model's order
std::vector<std::vector<AtomNumber>> MolenvClassify::parseMolecules() {
  const unsigned apm = atomsPerMolecule();
  std::vector<AtomNumber> all;
  parseAtomList("MOLECULES", all);
  std::vector<std::vector<AtomNumber>> molecules;
  for (int i = 1;; ++i) {
    std::vector<AtomNumber> one;
    parseAtomList("MOLECULE", i, one);
    if (one.empty()) break;
    if (one.size() != apm)
      error("MOLECULE" + std::to_string(i) + " lists " + std::to_string(one.size()) + " atoms but the model's molecules have atoms_per_molecule=" +
            std::to_string(apm));
    molecules.push_back(one);
  }
  if (!all.empty() && !molecules.empty()) error("give either MOLECULES or MOLECULE1, MOLECULE2, ..., not both");
  if (all.empty() && molecules.empty()) error("no molecules: give MOLECULES=first-last or MOLECULE1, MOLECULE2, ...");
  if (!all.empty()) {
    if (all.size() % apm != 0)
      error("MOLECULES lists " + std::to_string(all.size()) + " atoms, which is not a multiple of the model's atoms_per_molecule=" +
            std::to_string(apm));
    for (std::size_t m = 0; m < all.size() / apm; ++m) molecules.emplace_back(all.begin() + m * apm, all.begin() + (m + 1) * apm);
  }
  nmol_ = molecules.size();
  if (nmol_ < 2) error("at least two molecules are needed");
  std::set<unsigned> seen;
  for (const auto& mol : molecules)
    for (const auto& a : mol)
      if (!seen.insert(a.index()).second) error("atom " + std::to_string(a.serial()) + " belongs to more than one molecule");
  return molecules;
}

// The local atom slots: the distinct model positions the descriptors use (GNN: every atom
// of the molecule, a node of the graph).  Returns the atoms to request, molecule-major.
std::vector<AtomNumber> MolenvClassify::setupSlots(const std::vector<std::vector<AtomNumber>>& molecules) {
  std::vector<unsigned> used;
  if (gnnKind()) {
    for (unsigned a = 0; a < atomsPerMolecule(); ++a) used.push_back(a);
    slots_.nlocal = used.size();
  } else {
    slots_ = AtomSlots::ofModel(model_, used);
  }
  std::vector<AtomNumber> requested;
  requested.reserve(nmol_ * slots_.nlocal);
  for (const auto& mol : molecules)
    for (unsigned pos : used) requested.push_back(mol[pos]);
  return requested;
}

// NUM_THREADS
void MolenvClassify::parseThreads() {
  // By default PLUMED's own count, so that the thread count an MD engine hands PLUMED
  // (setNumOMPthreads, unless PLUMED_NUM_THREADS is set) is honoured as by PLUMED's own actions.
  nthreads_ = std::max(1u, OpenMP::getNumThreads());
  int nt = 0;
  parse("NUM_THREADS", nt);
  if (nt < 0) error("NUM_THREADS must be positive");
  // A count far beyond the machine is a typo (80 for 8) and would make OpenMP start
  // thousands of threads: refused, as molenv's Python options refuse it.
  if (nt > kMaxThreads) error("NUM_THREADS=" + std::to_string(nt) + " is more than " + std::to_string(kMaxThreads) + " threads");
  if (nt > 0) nthreads_ = nt;
#ifndef _OPENMP
  nthreads_ = 1;
#endif
}

// SERIAL: the MPI ranks share the molecules unless it is given
void MolenvClassify::setupRanks() {
  bool serial = false;
  parseFlag("SERIAL", serial);
  if (serial) return;
  ranks_.rank = comm.Get_rank();
  ranks_.size = comm.Get_size();
  ranks_.allSum = [this](double* data, std::size_t n) { comm.Sum(data, static_cast<int>(n)); };
}

// REGION_*: the slab; returns REGION_AXIS as given (for the log)
std::string MolenvClassify::parseRegion() {
  std::string axis;
  parse("REGION_AXIS", axis);
  if (!axis.empty() && gnnKind())
    error("REGION_AXIS needs an SF model: a GNN model (kind gnn) has no centre atom to place molecules in a slab");
  if (!axis.empty()) {
    if (axis == "x" || axis == "X") region_.axis = 0;
    else if (axis == "y" || axis == "Y") region_.axis = 1;
    else if (axis == "z" || axis == "Z") region_.axis = 2;
    else error("REGION_AXIS must be x, y or z, got " + axis);
    regionHalfwidth_ = regionSmoothing_ = -1.0;
    regionCentre_ = std::nan("");
    parse("REGION_CENTER", regionCentre_);
    if (std::isnan(regionCentre_)) error("REGION_AXIS needs REGION_CENTER (position of the slab centre along the axis)");
    parse("REGION_HALFWIDTH", regionHalfwidth_);
    parse("REGION_SMOOTHING", regionSmoothing_);
    if (regionHalfwidth_ < 0) error("REGION_AXIS needs REGION_HALFWIDTH >= 0 (and REGION_CENTER, REGION_SMOOTHING)");
    if (regionSmoothing_ < 0) error("REGION_AXIS needs REGION_SMOOTHING >= 0 (0: hard cut, no forces from the boundary)");
    region_.enabled = true;
  } else {
    double dummy = -1;
    parse("REGION_CENTER", dummy);
    parse("REGION_HALFWIDTH", dummy);
    parse("REGION_SMOOTHING", dummy);
    if (dummy != -1) error("REGION_CENTER/REGION_HALFWIDTH/REGION_SMOOTHING need REGION_AXIS");
  }
  return axis;
}

// PATH_*, LAMBDA: the path CV; returns the names of the path classes (for the log)
std::vector<std::string> MolenvClassify::parsePath() {
  std::vector<std::string> pcls;
  parseVector("PATH_CLASSES", pcls);
  std::vector<double> pstart, pend;
  parseVector("PATH_START", pstart);
  parseVector("PATH_END", pend);
  int nimages = 0;
  parse("PATH_NIMAGES", nimages);
  std::vector<std::vector<double>> images;
  for (int i = 1;; ++i) {
    std::vector<double> img;
    if (!parseNumberedVector("PATH_IMAGE", i, img)) break;
    images.push_back(img);
  }
  double lambda = 0.0;
  parse("LAMBDA", lambda);
  const bool linear = !pstart.empty() || !pend.empty() || nimages != 0;
  hasPath_ = linear || !images.empty();
  if (!hasPath_) {
    if (!pcls.empty() || lambda != 0.0)
      error("PATH_CLASSES/LAMBDA need path images: PATH_START, PATH_END, PATH_NIMAGES or PATH_IMAGE1, PATH_IMAGE2, ...");
    return pcls;
  }
  if (linear && !images.empty()) error("give either PATH_START/PATH_END/PATH_NIMAGES or PATH_IMAGE1, PATH_IMAGE2, ..., not both");
  if (pcls.empty()) pcls.assign(classes_.begin(), classes_.end() - (ood_ ? 1 : 0));  // the model's classes
  for (const auto& c : pcls) {
    unsigned k;
    if (!classIndex(classes_, c, k)) error("PATH_CLASSES: no class " + c + " in the model (classes: " + joinNames(classes_) + ")");
    if (std::find(pathClasses_.begin(), pathClasses_.end(), k) != pathClasses_.end()) error("PATH_CLASSES: class " + c + " given twice");
    pathClasses_.push_back(k);
  }
  const unsigned dim = pathClasses_.size();
  if (linear) {
    if (pstart.size() != dim || pend.size() != dim)
      error("PATH_START and PATH_END need one fraction per path class (" + std::to_string(dim) + ": " + joinNames(pcls) + ")");
    if (nimages < 2) error("PATH_NIMAGES must be at least 2");
    // the images are stored: a huge count would exhaust memory before any message
    if (nimages > kMaxPathImages) error("PATH_NIMAGES must be at most " + std::to_string(kMaxPathImages));
    for (int i = 0; i < nimages; ++i) {
      std::vector<double> img(dim);
      for (unsigned k = 0; k < dim; ++k) img[k] = pstart[k] + (pend[k] - pstart[k]) * i / (nimages - 1.0);
      images.push_back(img);
    }
  } else {
    if (images.size() < 2) error("a path needs at least two images (PATH_IMAGE1, PATH_IMAGE2, ...)");
    for (std::size_t i = 0; i < images.size(); ++i)
      if (images[i].size() != dim)
        error("PATH_IMAGE" + std::to_string(i + 1) + " has " + std::to_string(images[i].size()) + " fractions, expected one per path class (" +
              std::to_string(dim) + ": " + joinNames(pcls) + ")");
  }
  if (!(lambda > 0)) error("a path needs LAMBDA > 0");
  path_ = PathCV(images, lambda);
  return pcls;
}

// NOPBC, the files, the output and derivative flags and NL_SKIN
MolenvClassify::Options MolenvClassify::parseOptions() {
  Options o;
  parseFlag("NOPBC", nopbc_);
  parse("PROB_FILE", o.probFile);
  parse("SF_FILE", o.sfFile);
  parse("FILE_STRIDE", o.stride);
  if (o.stride < 1) error("FILE_STRIDE must be at least 1");
  if (gnnKind() && !o.sfFile.empty()) error("SF_FILE needs an SF model: a GNN model (kind gnn) has no symmetry functions");
  parseFlag("PROB_VECTORS", probVectors_);
  parseFlag("TIMINGS", timings_);
  parseFlag("FULL_DERIVATIVES", fullDerivatives_);
  double skin = std::nan("");
  parse("NL_SKIN", skin);
  if (skin < 0.0) error("NL_SKIN must be >= 0 (0: search neighbours at every step)");
  o.skinA = std::isnan(skin) ? 1.0 : skin * getUnits().getLength() * 10.0;
  return o;
}

// The scalar components (n_, f_, nmol, s, z) with their derivative coefficients, and the
// per-molecule vectors p_
void MolenvClassify::addComponents() {
  for (const auto& c : classes_) {
    addComponentWithDerivatives("n_" + c);
    componentIsNotPeriodic("n_" + c);
    nVal_.push_back(getPntrToComponent("n_" + c));
  }
  for (const auto& c : classes_) {
    addComponentWithDerivatives("f_" + c);
    componentIsNotPeriodic("f_" + c);
    fVal_.push_back(getPntrToComponent("f_" + c));
  }
  addComponentWithDerivatives("nmol");
  componentIsNotPeriodic("nmol");
  nmolVal_ = getPntrToComponent("nmol");
  if (hasPath_) {
    addComponentWithDerivatives("s");
    componentIsNotPeriodic("s");
    addComponentWithDerivatives("z");
    componentIsNotPeriodic("z");
    sVal_ = getPntrToComponent("s");
    zVal_ = getPntrToComponent("z");
  }
  // the scalar components in the order of their derivative coefficients (setComponents())
  comps_.insert(comps_.end(), nVal_.begin(), nVal_.end());
  comps_.insert(comps_.end(), fVal_.begin(), fVal_.end());
  comps_.push_back(nmolVal_);
  if (hasPath_) {
    comps_.push_back(sVal_);
    comps_.push_back(zVal_);
  }
  alpha_.assign(comps_.size(), std::vector<double>(ncls_, 0.0));
  beta_.assign(comps_.size(), 0.0);
  if (probVectors_) {
    std::vector<std::size_t> shape(1, nmol_);
    for (const auto& c : vecNames_) {
      addComponent("p_" + c, shape);
      componentIsNotPeriodic("p_" + c);
      pVec_.push_back(getPntrToComponent("p_" + c));
    }
  }
}

// The threads' molecule ranges, the neighbour search and the passes of the model's kind
void MolenvClassify::setupPasses(double skinA) {
  // this rank's molecules, a contiguous range per thread
  const unsigned first = ranks_.first(nmol_), count = ranks_.last(nmol_) - first;
  ranges_.resize(nthreads_ + 1);
  for (unsigned t = 0; t <= nthreads_; ++t) ranges_[t] = first + static_cast<unsigned long>(count) * t / nthreads_;
  if (gnnKind()) {
    gnn_ = std::make_unique<GraphNetwork>(gnnModel_, nmol_, nthreads_, ranks_, ood_);
    graphBuilder_ = std::make_unique<AtomGraphBuilder>(nthreads_);
    graphBuilder_->setSkin(skinA);
    frame_.nmol = nmol_;  // every molecule counts with weight 1 (no region for the GNN kind)
    frame_.weight.assign(nmol_, 1.0);
    frame_.active.assign(nmol_, 1);
  } else {
    cells_.setSkin(skinA);
    values_ = std::make_unique<ValuePass>(*sf_, *net_, nthreads_, ranks_);
    derivs_ = std::make_unique<DerivativePass>(*sf_, *net_, slots_, nthreads_, ranks_);
  }
}

void MolenvClassify::logSetup(const std::string& axis, const std::vector<std::string>& pathClasses, const Options& options) {
  const unsigned apm = atomsPerMolecule();
  const double skinA = options.skinA;
  if (gnnKind()) {
    std::string elements;
    for (long z : gnnModel_.moleculeAtoms) elements += (elements.empty() ? "" : ",") + std::to_string(z);
    log.printf("  model %s: \"%s\", kind gnn: %u polymorph classes (%s), topology classes (%s), %zu graph convolution(s), hidden %u, "
               "%u channels, %u radial functions, graph cutoff %g A\n",
               gnnModel_.path.c_str(), gnnModel_.name.c_str(), ncls_, joinNames(classes_).c_str(), joinNames(gnnModel_.topologyClasses).c_str(),
               gnnModel_.convs.size(), gnnModel_.hidden(), gnnModel_.channels(), gnnModel_.numRadial(), gnnModel_.cutoff);
    log.printf("  %u molecules of %u atoms, all nodes of the atom graph; elements (atomic numbers, from the model's molecule_atoms, "
               "in MOLECULES order): %s\n",
               nmol_, apm, elements.c_str());
    if (ood_) {
      const OodScore& o = gnnModel_.ood;
      // the names of molenv.ood.layer_name
      const std::string what = o.layer == 1   ? std::string("the radial sums of the molecule's atoms")
                               : o.layer == 2 ? std::string("the pooled molecule embedding")
                                              : "the outputs of head block " + std::to_string(o.layer - 2);
      log.printf("  out-of-distribution score as class other (OOD): soft minimum (tau %g) of the Mahalanobis distances of the features of "
                 "layer %u (%s, %u features) to %u class means, other = sigmoid((d - %g)/%g): %g of %ld known-class validation molecules "
                 "below the threshold\n",
                 o.temperature, o.layer, what.c_str(), o.width, o.nMeans(), o.threshold, o.scale, o.quantile, o.nValidation);
    }
  } else {
    log.printf("  model %s: \"%s\", %u classes (%s), %u atoms per molecule, %u vectors, %u symmetry functions, cutoff %g-%g A, %s outputs\n",
               model_.path.c_str(), model_.name.c_str(), ncls_, joinNames(classes_).c_str(), apm, nvec_, nsf_, model_.rmin, model_.rmax,
               activationName(model_.output).c_str());
    log.printf("  %u molecules, %u atoms each used (centre and vector atoms)\n", nmol_, slots_.nlocal);
    if (ood_)
      log.printf("  out-of-distribution score as class other (OOD): soft minimum (tau %g) of the Mahalanobis distances of the inputs of "
                 "layer %u (%u features) to %u class means, other = sigmoid((d - %g)/%g): %g of %ld known-class validation molecules below "
                 "the threshold\n",
                 model_.ood.temperature, model_.ood.layer, model_.ood.width, model_.ood.nMeans(), model_.ood.threshold, model_.ood.scale,
                 model_.ood.quantile, model_.ood.nValidation);
  }
  log.printf("  %u OpenMP thread(s)%s\n", nthreads_, nopbc_ ? ", no periodic boundary conditions (NOPBC)" : "");
  if (ranks_.split()) log.printf("  %u MPI ranks share the molecules (SERIAL: every rank computes all)\n", ranks_.size);
  if (region_.enabled)
    log.printf("  populations restricted to the slab normal to axis %s: centre %g, half width %g, smoothing %g (length units)\n", axis.c_str(),
               regionCentre_, regionHalfwidth_, regionSmoothing_);
  if (hasPath_) {
    log.printf("  path in the fractions of %s: %u images, lambda %g; s runs from 0 (first image) to 1 (last image)\n",
               joinNames(pathClasses).c_str(), path_.nImages(), path_.lambda());
    for (unsigned i = 0; i < path_.nImages(); ++i) {
      log.printf("    image %u:", i + 1);
      for (double q : path_.images()[i]) log.printf(" %g", q);
      log.printf("\n");
    }
  }
  if (!options.probFile.empty()) log.printf("  per-molecule probabilities to %s every %d steps\n", options.probFile.c_str(), options.stride);
  if (!options.sfFile.empty()) log.printf("  per-molecule symmetry functions to %s every %d steps\n", options.sfFile.c_str(), options.stride);
  if (skinA > 0.0 && gnnKind())
    log.printf("  neighbour list of the atoms: pairs within %g A (cutoff + skin %g A; the skin is capped at half the smallest cell height "
               "minus the cutoff), rebuilt when an atom has moved by more than half the skin or the cell changes\n",
               gnnModel_.cutoff + skinA, skinA);
  else if (skinA > 0.0)
    log.printf("  neighbour list: pairs within %g A (cutoff + skin %g A), rebuilt when a centre has moved by more than %g A or the cell changes\n",
               model_.rmax + skinA, skinA, 0.5 * skinA);
  else
    log.printf("  neighbour list: searched at every step (NL_SKIN=0)\n");
  log.printf("  derivatives: %s\n", fullDerivatives_ ? "derivative arrays of every component filled at every step (FULL_DERIVATIVES)"
                                                      : "bias forces contracted with the derivatives in apply(); derivative arrays only "
                                                        "when DUMPDERIVATIVES/DUMPPROJECTIONS or gradients need them");
  log << "  Please cite: " << cite("Kuroshima, Kilgour, Tuckerman, Rogal, J. Chem. Theory Comput. 20, 6197 (2024)") << "\n";
}

MolenvClassify::~MolenvClassify() {
  if (!timings_ || steps_ == 0) return;
  static const char* sfNames[nStages] = {"geometry and region", "neighbour cells", "pass 1 (descriptors)", "network",
                                         "values and files", "network backward", "pass 2 (pair derivatives)", "forces / derivative arrays"};
  static const char* gnnNames[nStages] = {"positions and cell", "atom graph (neighbours)", "-", "graph network forward",
                                          "values and files", "reverse pass (backprop)", "-", "forces / derivative arrays"};
  const char* const* names = gnn_ ? gnnNames : sfNames;
  double total = 0;
  for (double t : stageTime_) total += t;
  log.printf("  MOLENV_CLASSIFY %s timings: %lu steps (%lu with forces or derivatives), %.1f pairs per step on average, "
             "%lu neighbour-list builds, %u thread(s)\n",
             getLabel().c_str(), steps_, derivSteps_, double(pairCount_) / steps_, rebuilds_, nthreads_);
  for (unsigned s = 0; s < nStages; ++s)
    log.printf("    %-28s %10.6f s  %6.1f us/molecule/step\n", names[s], stageTime_[s], 1e6 * stageTime_[s] / (double(steps_) * nmol_));
  log.printf("    %-28s %10.6f s  %6.1f us/molecule/step\n", "total", total, 1e6 * total / (double(steps_) * nmol_));
}

void MolenvClassify::setupGeometry(double toA) {
  cell_ = CellGeometry();
  if (!nopbc_ && getPbc().isSet() && gnn_) {
    // the GNN's cell: the reduced basis of the lattice, every height above 2 * cutoff (AtomGraph.h)
    const Tensor& box = getBox();
    double h[3][3];
    for (unsigned i = 0; i < 3; ++i)
      for (unsigned j = 0; j < 3; ++j) h[i][j] = box(i, j) * toA;
    const std::string problem = graphCell(h, gnnModel_.cutoff, cell_);
    if (!problem.empty()) error(problem);
  } else if (!nopbc_ && getPbc().isSet()) {
    const Tensor& box = getBox();
    double h[3][3];
    for (unsigned i = 0; i < 3; ++i)
      for (unsigned j = 0; j < 3; ++j) h[i][j] = box(i, j) * toA;
    cell_.setBox(h);
    for (unsigned a = 0; a < 3; ++a)
      if (cell_.height[a] < 2.0 * model_.rmax) {
        const char* names = "abc";
        error(std::string("the periodic box is too small for the model cutoff: the cell height perpendicular to the face opposite cell vector ") +
              names[a] + " is " + std::to_string(cell_.height[a]) + " A, it must be at least 2*rmax = " + std::to_string(2.0 * model_.rmax) +
              " A (use a larger supercell)");
      }
  }
  if (region_.enabled) {
    region_.centre = regionCentre_ * toA;
    region_.halfwidth = regionHalfwidth_ * toA;
    region_.smoothing = regionSmoothing_ * toA;
    if (cell_.periodic && region_.halfwidth + region_.smoothing > 0.5 * cell_.height[region_.axis])
      error("REGION_HALFWIDTH + REGION_SMOOTHING (" + std::to_string(region_.halfwidth + region_.smoothing) +
            " A) exceeds half the cell height along the region axis (" + std::to_string(0.5 * cell_.height[region_.axis]) +
            " A): the slab would overlap its periodic image");
  }
}

void MolenvClassify::checkConsumers() {
  // derivative arrays are read (not just used to apply forces) by these actions
  const ActionWithValue* self = this;
  for (const auto& a : plumed.getActionSet()) {
    auto* aa = dynamic_cast<ActionWithArguments*>(a.get());
    if (!aa || (a->getName() != "DUMPDERIVATIVES" && a->getName() != "DUMPPROJECTIONS")) continue;
    for (Value* v : aa->getArguments())
      if (v->getPntrToAction() == self) dumpConsumer_ = true;
  }
  if (dumpConsumer_) log.printf("  %s: a DUMPDERIVATIVES/DUMPPROJECTIONS reads the derivative arrays: filling them at every step\n", getLabel().c_str());
}

void MolenvClassify::calculate() {
  if (timings_) tick_ = std::chrono::steady_clock::now();
  toA_ = getUnits().getLength() * 10.0;  // Angstrom per PLUMED length unit
  setupGeometry(toA_);
  if (!consumersChecked_) {
    checkConsumers();
    consumersChecked_ = true;
  }
  const bool derivs = !doNotCalculateDerivatives() && !checkNumericalDerivatives();
  mode_ = !derivs ? Deriv::none : (fullDerivatives_ || dumpConsumer_ || isOptionOn("GRADIENTS")) ? Deriv::full : Deriv::forces;
  const bool fileStep = files_.due(getStep());
  if (gnn_) {
    graphValues();
    return;
  }

  // ---- per-molecule geometry, in Angstrom; molecules outside the region need descriptors
  // only at file steps, with PROB_VECTORS and when a MOLENV_PROBABILITIES reads them
  const bool everyMolecule = fileStep || probVectors_ || probabilitiesRead();
  const unsigned zeroVector = frame_.update(getPositions(), slots_, toA_, cell_, region_, everyMolecule, nthreads_);
  if (zeroVector < nmol_) error("molecule " + std::to_string(zeroVector + 1) + " has an intramolecular vector of zero length (two atoms coincide, or a plane normal's two vectors are parallel)");
  lap(sGeometry);

  // ---- neighbour pairs (pairs of two molecules that need no descriptors are skipped)
  if (cells_.update(frame_.centres, cell_, sf_->rmax(), frame_.computed, ranges_, nthreads_, pairs_)) ++rebuilds_;
  ++steps_;
  for (const auto& list : pairs_) pairCount_ += list.size();
  lap(sNeighbours);

  // ---- pass 1: descriptors G(I) = sum_J t(I,J); network: probabilities (activations
  // kept for the backward sweeps)
  values_->descriptors(frame_, pairs_);
  lap(sPass1);
  values_->network(frame_);
  lap(sNetwork);

  // ---- values of the components and outputs
  setComponents();
  const std::vector<double>& prob = values_->prob();
  if (probVectors_) {
    for (unsigned k = 0; k < ncls_; ++k)
      for (unsigned m = 0; m < nmol_; ++m) pVec_[k]->set(m, prob[static_cast<std::size_t>(m) * ncls_ + k]);
  }
  if (fileStep) files_.write(getTime(), nmol_, classes_, prob, sf_->order(), values_->G());
  lap(sValues);

  if (mode_ == Deriv::full) fillDerivativeArrays();
}

// whether a MOLENV_PROBABILITIES reads this step's probabilities (PLUMED activates the
// actions of a step before it calculates any)
bool MolenvClassify::probabilitiesRead() const {
  return std::any_of(probabilityReaders_.begin(), probabilityReaders_.end(), [](const Action* a) { return a->isActive(); });
}

void MolenvClassify::copyProbabilities(Value& out) const {
  const unsigned K = ncls_, W = vecNames_.size();  // W - K topology classes (GNN)
  const std::vector<double>& prob = probabilities();
  for (unsigned m = 0; m < nmol_; ++m)
    for (unsigned k = 0; k < K; ++k) out.set(static_cast<std::size_t>(m) * W + k, prob[static_cast<std::size_t>(m) * K + k]);
  if (W == K) return;
  const std::vector<double>& topology = gnn_->topology();
  for (unsigned m = 0; m < nmol_; ++m)
    for (unsigned g = 0; g < W - K; ++g)
      out.set(static_cast<std::size_t>(m) * W + K + g, topology[static_cast<std::size_t>(m) * (W - K) + g]);
}

// The derivative arrays, when something reads them: the derivatives of n_0 .. n_{K-1} and W,
// combined into each component's (both model kinds).
void MolenvClassify::fillDerivativeArrays() {
  ++derivSteps_;
  ComponentSink sink(comps_, alpha_, beta_, ncls_, slots_.nlocal, getNumberOfAtoms(), toA_);
  derivatives(Seeds::populations(ncls_), sink);
  lap(sWrite);
}

void MolenvClassify::graphValues() {
  // ---- positions in Angstrom (molecule-major: the nodes of the graph) and the atom graph
  const std::vector<Vector>& pos = getPositions();
  const unsigned natoms = pos.size();
  atomPos_.resize(3 * static_cast<std::size_t>(natoms));
  for (unsigned a = 0; a < natoms; ++a)
    for (unsigned x = 0; x < 3; ++x) atomPos_[3 * a + x] = pos[a][x] * toA_;
  lap(sGeometry);
  if (graphBuilder_->build(atomPos_, cell_, gnnModel_.cutoff, graph_)) ++rebuilds_;
  if (graph_.coincident)
    error("atoms " + std::to_string(getAbsoluteIndex(graph_.coincidentA).serial()) + " and " +
          std::to_string(getAbsoluteIndex(graph_.coincidentB).serial()) + " coincide (distance 0): the GNN's radial basis is infinite there");
  ++steps_;
  pairCount_ += graph_.edges() / 2;
  lap(sNeighbours);

  // ---- the network: polymorph and topology probabilities of every molecule
  gnn_->forward(graph_, mode_ != Deriv::none);
  lap(sNetwork);

  // ---- values of the components and outputs
  setComponents();
  if (probVectors_ || files_.due(getStep())) {
    const std::vector<double> all = gnn_->allProbabilities();
    const unsigned W = vecNames_.size();
    if (probVectors_)
      for (unsigned k = 0; k < W; ++k)
        for (unsigned m = 0; m < nmol_; ++m) pVec_[k]->set(m, all[static_cast<std::size_t>(m) * W + k]);
    if (files_.due(getStep())) files_.write(getTime(), nmol_, vecNames_, all, {}, {});
  }
  lap(sValues);

  if (mode_ == Deriv::full) fillDerivativeArrays();
}

void MolenvClassify::setComponents() {
  // populations and W, summed in molecule order
  const unsigned N = nmol_, K = ncls_;
  const std::vector<double>& prob = probabilities();
  std::vector<double> n(K, 0.0);
  double W = 0.0;
  for (unsigned m = 0; m < N; ++m) {
    if (!frame_.active[m]) continue;
    W += frame_.weight[m];
    for (unsigned k = 0; k < K; ++k) n[k] += frame_.weight[m] * prob[static_cast<std::size_t>(m) * K + k];
  }
  const double invW = W > 0 ? 1.0 / W : 0.0;  // empty region: fractions reported as 0
  for (unsigned k = 0; k < K; ++k) {
    nVal_[k]->set(n[k]);
    fVal_[k]->set(n[k] * invW);
  }
  nmolVal_->set(W);
  // derivative coefficients of each component (order of comps_): d c = sum_k alpha[c][k] d n_k + beta[c] d W
  for (auto& a : alpha_) std::fill(a.begin(), a.end(), 0.0);
  for (unsigned k = 0; k < K; ++k) {
    alpha_[k][k] = 1.0;  // n_k
    beta_[k] = 0.0;
    alpha_[K + k][k] = invW;  // f_k = n_k / W
    beta_[K + k] = -n[k] * invW * invW;
  }
  beta_[2 * K] = 1.0;  // nmol = W
  if (hasPath_) {
    const unsigned D = pathClasses_.size();
    std::vector<double> Q(D), dsdQ(D), dzdQ(D);
    for (unsigned q = 0; q < D; ++q) Q[q] = n[pathClasses_[q]] * invW;
    double s, z;
    path_.evaluate(Q.data(), s, z, dsdQ.data(), dzdQ.data());
    sVal_->set(s);
    zVal_->set(z);
    // s and z depend on the fractions Q_q = n_k(q) / W
    const std::vector<double>* grads[2] = {&dsdQ, &dzdQ};
    for (unsigned g = 0; g < 2; ++g) {
      const unsigned c = 2 * K + 1 + g;
      double b = 0.0;
      for (unsigned q = 0; q < D; ++q) {
        const unsigned k = pathClasses_[q];
        alpha_[c][k] += (*grads[g])[q] * invW;
        b -= (*grads[g])[q] * n[k] * invW * invW;
      }
      beta_[c] = b;
    }
  }
}

void MolenvClassify::derivatives(const Seeds& seeds, DerivativeSink& sink) {
  if (gnn_) {
    gnn_->derivatives(graph_, seeds, sink);  // one reverse pass per channel with pair terms
    lap(sBackward);
    return;
  }
  derivs_->backward(frame_, *values_, seeds);
  lap(sBackward);
  derivs_->pairDerivatives(frame_, pairs_);
  lap(sPass2);
  derivs_->reduce(frame_, *values_, seeds, region_, sink);
}

#if PLUMED_VERSION_MAJOR > 2 || (PLUMED_VERSION_MAJOR == 2 && PLUMED_VERSION_MINOR >= 10)
void MolenvClassify::clearDerivatives(const bool& force) {
  // PLUMED zeroes the 3*natoms+9 derivatives of every component before each step.  This
  // action never writes them in the default mode and overwrites every element in the
  // full mode, so only numerical derivatives (which PLUMED accumulates) need the zeroing.
  if (checkNumericalDerivatives()) ActionWithValue::clearDerivatives(force);
}
#endif

void MolenvClassify::apply() {
  // the per-molecule vectors carry no derivatives: a force on them cannot be applied
  for (unsigned k = 0; k < pVec_.size(); ++k)
    if (pVec_[k]->forcesWereAdded())
      error("a bias acts on the per-molecule vector p_" + vecNames_[k] +
            ", which has no derivatives: bias the n_<CLASS>, f_<CLASS>, s or z components instead");
  if (mode_ != Deriv::forces) {
    Colvar::apply();  // derivative arrays (full mode, numerical derivatives) or no derivatives at all
    return;
  }
  // bias forces on the components -> one combination of the populations and of W
  std::vector<double> gamma(ncls_, 0.0);
  double delta = 0.0;
  bool any = false;
  for (std::size_t c = 0; c < comps_.size(); ++c) {
    if (!comps_[c]->forcesWereAdded()) continue;
    const double f = comps_[c]->getForce();
    if (f == 0.0) continue;
    any = true;
    for (unsigned k = 0; k < ncls_; ++k) gamma[k] += f * alpha_[c][k];
    delta += f * beta_[c];
  }
  if (!any) return;
  if (timings_) tick_ = std::chrono::steady_clock::now();
  ++derivSteps_;
  // hand PLUMED the derivative of sum_k gamma_k n_k + delta W (= sum_c F_c dc/dx)
  forcesToApply_.resize(3 * getNumberOfAtoms() + 9);  // every entry is written by the sink
  ForceSink sink(forcesToApply_, slots_.nlocal, toA_);
  derivatives(Seeds::combination(gamma, delta), sink);
  unsigned ind = 0;
  setForcesOnAtoms(forcesToApply_, ind);
  lap(sWrite);
}

}  // namespace molenv
}  // namespace PLMD
