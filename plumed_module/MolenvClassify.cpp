/* molenv: the MOLENV_CLASSIFY action.  LGPL-3.0-or-later.

   Classifies the local environment of every molecule with point-vector molecular
   symmetry functions and a small network per molecule (Kuroshima, Kilgour,
   Tuckerman, Rogal, J. Chem. Theory Comput. 20, 6197 (2024)), and reports soft class
   populations, fractions and a path CV in fraction space, all with analytic
   derivatives with respect to the atoms and the cell.  Full documentation:
   docs/plumed_action.md.

   Derivative scheme.  Every descriptor of molecule I is a sum of pair terms
   t_g(r_IJ, cos theta_IJ,s) that are symmetric in I and J.  With J_I = dp(I)/dG(I)
   the network Jacobian and w_I the region weight,
       d n_k = sum_pairs sum_g (w_I J_I[k,g] + w_J J_J[k,g]) d t_g(I,J) + sum_I p_k(I) d w_I,
   and f_k, nmol, s and z are functions of (n_k, W = sum_I w_I), so the derivative of
   every component c is sum_k alpha_ck d n_k + beta_c d W with coefficients known once
   the values are.  Each unordered pair is visited once per step for the values
   (pass 1) and once for the derivatives (pass 2), where the pair terms are contracted
   on the fly with the weighted Jacobians of both molecules; nothing of size
   N*neighbours*n_sf is stored.

   What a step needs is the forces, not the derivatives: with bias forces F_c on the
   components, the force on the atoms is -sum_c F_c dc/dx = the derivative of
   sum_k gamma_k n_k + delta W with gamma_k = sum_c F_c alpha_ck, delta = sum_c F_c beta_c.
   So by default calculate() computes values only (and keeps the network activations),
   and apply() turns the forces on the components into gamma, delta, runs ONE
   vector-Jacobian product per molecule (seed w_I gamma) and ONE contracted pass 2, and
   hands the atom forces and the virial to PLUMED: the cost does not grow with the
   number of classes or of biased components.  PLUMED's per-component derivative
   arrays are filled (per class: K Jacobian sweeps and a K-wide pass 2) only when
   something reads them: FULL_DERIVATIVES, a DUMPDERIVATIVES/DUMPPROJECTIONS of a
   component, an action that asks for gradients (e.g. METAD ADAPTIVE=GEOM), or
   NUMERICAL_DERIVATIVES (then PLUMED fills them itself).

   Threads (OpenMP, NUM_THREADS): pairs are owned by contiguous molecule ranges, one
   per thread; each thread accumulates into its own buffers, which are summed in
   thread order.  Results are reproducible run to run for a given NUM_THREADS, and
   differ between thread counts only by rounding (~1e-15 relative).

   Units: the model works in Angstrom; positions are converted from PLUMED's internal
   length unit once per step, derivatives converted back. */
#include "ModelFile.h"
#include "Network.h"
#include "NeighbourCells.h"
#include "PairBlocks.h"
#include "PathCV.h"
#include "SlabRegion.h"
#include "SymmetryFunctions.h"

#include "colvar/Colvar.h"
#include "config/version.h"
#include "core/ActionRegister.h"
#include "core/ActionSet.h"
#include "core/ActionWithArguments.h"
#include "core/PlumedMain.h"
#include "tools/OFile.h"
#include "tools/Pbc.h"
#include "tools/Units.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace PLMD {
namespace molenv {

//+PLUMEDOC COLVAR MOLENV_CLASSIFY
/*
Classify the local environment of every molecule (polymorph, melt, ...) with
point-vector molecular symmetry functions and a per-molecule network, and report
soft class populations n_<CLASS>, fractions f_<CLASS>, the number of molecules
counted (nmol) and optionally a path CV (s in 0..1, z) in class-fraction space.
Component names are built from the class names stored in the model file.

\plumedfile
LOAD FILE=/path/printed/by/molenv-plumed-lib
cls: MOLENV_CLASSIFY MODEL=urea.molenv MOLECULES=1-3456
PRINT ARG=cls.* FILE=COLVAR
\endplumedfile

See docs/plumed_action.md of molenv for every keyword, component and convention.
*/
//+ENDPLUMEDOC

class MolenvClassify : public Colvar {
public:
  static void registerKeywords(Keywords& keys);
  explicit MolenvClassify(const ActionOptions&);
  ~MolenvClassify();
  void calculate() override;
  void apply() override;
#if PLUMED_VERSION_MAJOR > 2 || (PLUMED_VERSION_MAJOR == 2 && PLUMED_VERSION_MINOR >= 10)
  void clearDerivatives(const bool& force = false) override;
#endif

private:
  // ---- model and kernels
  Model model_;
  std::unique_ptr<SymmetryFunctions> sf_;
  std::unique_ptr<Network> net_;
  unsigned nmol_ = 0, nvec_ = 0, ncls_ = 0, nsf_ = 0;
  // requested atoms are molecule-major: atom slot q of molecule m is m*nlocal_+q;
  // slots are the distinct model positions among the centre and vector end points
  unsigned nlocal_ = 0, centreSlot_ = 0;
  std::vector<unsigned> vecASlot_, vecBSlot_;
  // ---- options
  bool nopbc_ = false;
  unsigned nthreads_ = 1;
  SlabRegion region_;
  double regionCentre_ = 0, regionHalfwidth_ = 0, regionSmoothing_ = 0;  // PLUMED units
  bool hasPath_ = false;
  PathCV path_;
  std::vector<unsigned> pathClasses_;
  std::string probFileName_, sfFileName_;
  OFile probFile_, sfFile_;
  unsigned fileStride_ = 1;
  bool probVectors_ = false;
  // ---- outputs
  std::vector<Value*> nVal_, fVal_, pVec_;
  Value* nmolVal_ = nullptr;
  Value* sVal_ = nullptr;
  Value* zVal_ = nullptr;
  // ---- derivatives: what this step computes (see "Derivative scheme" above)
  enum class Deriv { none, full, forces };
  Deriv mode_ = Deriv::none;
  bool fullDerivatives_ = false;  ///< FULL_DERIVATIVES flag
  bool consumersChecked_ = false, dumpConsumer_ = false;
  // ---- per-step work arrays (Angstrom)
  CellGeometry cell_;
  double toA_ = 1.0;
  std::vector<double> centres_, vraw_, unitv_, vlen_;
  std::vector<double> weight_, dweight_, rbox_;
  std::vector<char> active_, computed_;
  std::vector<double> G_, prob_, wjac_, cjac_;
  std::vector<unsigned> netList_;  ///< computed molecules, in blocks of Network::kBlock
  std::vector<double> store_;      ///< network activations of each block (for the backward sweeps)
  std::vector<std::vector<double>> gbuf_, dbuf_, boxbuf_;
  NeighbourCells cells_;
  std::vector<std::vector<MoleculePair>> pairs_;
  std::vector<unsigned> ranges_;
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

  void checkConsumers();
  void fullDerivativePass();
  void forcePass(const std::vector<double>& gamma, double delta);
  void setupGeometry(double toA);
  void writeFiles();
};

PLUMED_REGISTER_ACTION(MolenvClassify, "MOLENV_CLASSIFY")

void MolenvClassify::registerKeywords(Keywords& keys) {
  Colvar::registerKeywords(keys);
  keys.add("compulsory", "MODEL", "the molenv model file (docs/model_format.md): descriptors, cutoff, network, class names; lengths in Angstrom");
  keys.add("atoms", "MOLECULES",
           "the atoms of all molecules, cut into consecutive molecules of atoms_per_molecule atoms each "
           "(in the model's atom order); the number of atoms must be a multiple of atoms_per_molecule");
  keys.add("numbered", "MOLECULE",
           "the atoms of one molecule in the model's atom order (MOLECULE1, MOLECULE2, ...), for systems whose atoms "
           "are not ordered molecule by molecule; use instead of MOLECULES");
  keys.reset_style("MOLECULE", "atoms");
  keys.add("optional", "NUM_THREADS",
           "number of OpenMP threads for this action (default: the environment variable PLUMED_NUM_THREADS, else 1)");
  keys.add("optional", "REGION_AXIS",
           "restrict n_/f_ to molecules whose centre is in a slab normal to the cell face spanned by the two other cell "
           "vectors: x, y or z");
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
  keys.add("optional", "PROB_FILE", "write the class probabilities of every molecule to this file");
  keys.add("optional", "SF_FILE", "write the raw (unscaled) symmetry functions of every molecule to this file");
  keys.add("compulsory", "FILE_STRIDE", "1", "write PROB_FILE/SF_FILE every this many steps");
  keys.addFlag("TIMINGS", false, "write a breakdown of this action's wall-clock time per stage to the log at the end");
  keys.addFlag("FULL_DERIVATIVES", false,
               "fill PLUMED's derivative arrays of every component at every step (per class: slower); by default the bias "
               "forces are contracted with the derivatives directly, and the arrays are filled only when DUMPDERIVATIVES, "
               "DUMPPROJECTIONS or gradients (e.g. METAD ADAPTIVE=GEOM) need them");
  keys.addFlag("PROB_VECTORS", false,
               "also output the per-molecule class probabilities as vector components p_<CLASS> (one element per "
               "molecule; no derivatives, so they can be analysed but not biased)");
#if PLUMED_VERSION_MAJOR > 2 || (PLUMED_VERSION_MAJOR == 2 && PLUMED_VERSION_MINOR >= 10)
  keys.addOutputComponent("nmol", "default", "scalar", "the number of molecules counted: N, or sum_I w_I with a region");
  keys.addOutputComponent("s", "LAMBDA", "scalar", "progress along the path in class-fraction space, 0 at the first image, 1 at the last");
  keys.addOutputComponent("z", "LAMBDA", "scalar", "distance from the path, -(1/lambda) ln sum_i exp(-lambda D_i)");
#else
  keys.addOutputComponent("nmol", "default", "the number of molecules counted: N, or sum_I w_I with a region");
  keys.addOutputComponent("s", "LAMBDA", "progress along the path in class-fraction space, 0 at the first image, 1 at the last");
  keys.addOutputComponent("z", "LAMBDA", "distance from the path, -(1/lambda) ln sum_i exp(-lambda D_i)");
#endif
  // n_<CLASS>, f_<CLASS> and p_<CLASS> take their names from the model's classes
  ActionWithValue::useCustomisableComponents(keys);
}

namespace {

bool classIndex(const Model& m, const std::string& name, unsigned& k) {
  for (k = 0; k < m.classes.size(); ++k)
    if (m.classes[k] == name) return true;
  return false;
}

std::string joinNames(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

}  // namespace

MolenvClassify::MolenvClassify(const ActionOptions& ao) : PLUMED_COLVAR_INIT(ao) {
  std::string modelPath;
  parse("MODEL", modelPath);
  try {
    model_ = readModelFile(modelPath);
  } catch (const ModelFileError& e) {
    error(std::string("cannot read MODEL: ") + e.what());
  }
  ncls_ = model_.nClasses();
  nvec_ = model_.vectors.size();
  sf_ = std::make_unique<SymmetryFunctions>(model_);
  net_ = std::make_unique<Network>(model_, sf_->order());
  nsf_ = sf_->size();
  const unsigned apm = model_.atomsPerMolecule;

  // ---- molecules
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
  {
    std::set<unsigned> seen;
    for (const auto& mol : molecules)
      for (const auto& a : mol)
        if (!seen.insert(a.index()).second) error("atom " + std::to_string(a.serial()) + " belongs to more than one molecule");
  }
  // local atom slots: the distinct model positions the descriptors use
  std::vector<unsigned> used = {model_.centre};
  for (const auto& v : model_.vectors) { used.push_back(v[0]); used.push_back(v[1]); }
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  nlocal_ = used.size();
  auto slot = [&](unsigned pos) { return static_cast<unsigned>(std::lower_bound(used.begin(), used.end(), pos) - used.begin()); };
  centreSlot_ = slot(model_.centre);
  for (const auto& v : model_.vectors) { vecASlot_.push_back(slot(v[0])); vecBSlot_.push_back(slot(v[1])); }
  std::vector<AtomNumber> requested;
  requested.reserve(nmol_ * nlocal_);
  for (const auto& mol : molecules)
    for (unsigned pos : used) requested.push_back(mol[pos]);

  // ---- threads
  parseFlag("NOPBC", nopbc_);
  nthreads_ = 1;
  if (const char* env = std::getenv("PLUMED_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) nthreads_ = n;
  }
  int nt = 0;
  parse("NUM_THREADS", nt);
  if (nt < 0) error("NUM_THREADS must be positive");
  if (nt > 0) nthreads_ = nt;
#ifndef _OPENMP
  nthreads_ = 1;
#endif

  // ---- region
  std::string axis;
  parse("REGION_AXIS", axis);
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

  // ---- path
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
  if (hasPath_) {
    if (linear && !images.empty()) error("give either PATH_START/PATH_END/PATH_NIMAGES or PATH_IMAGE1, PATH_IMAGE2, ..., not both");
    if (pcls.empty()) pcls = model_.classes;
    for (const auto& c : pcls) {
      unsigned k;
      if (!classIndex(model_, c, k)) error("PATH_CLASSES: no class " + c + " in the model (classes: " + joinNames(model_.classes) + ")");
      if (std::find(pathClasses_.begin(), pathClasses_.end(), k) != pathClasses_.end()) error("PATH_CLASSES: class " + c + " given twice");
      pathClasses_.push_back(k);
    }
    const unsigned dim = pathClasses_.size();
    if (linear) {
      if (pstart.size() != dim || pend.size() != dim)
        error("PATH_START and PATH_END need one fraction per path class (" + std::to_string(dim) + ": " + joinNames(pcls) + ")");
      if (nimages < 2) error("PATH_NIMAGES must be at least 2");
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
  } else if (!pcls.empty() || lambda != 0.0) {
    error("PATH_CLASSES/LAMBDA need path images: PATH_START, PATH_END, PATH_NIMAGES or PATH_IMAGE1, PATH_IMAGE2, ...");
  }

  // ---- files and vectors
  parse("PROB_FILE", probFileName_);
  parse("SF_FILE", sfFileName_);
  int stride = 1;
  parse("FILE_STRIDE", stride);
  if (stride < 1) error("FILE_STRIDE must be at least 1");
  fileStride_ = stride;
  parseFlag("PROB_VECTORS", probVectors_);
  parseFlag("TIMINGS", timings_);
  parseFlag("FULL_DERIVATIVES", fullDerivatives_);
  double skin = std::nan("");
  parse("NL_SKIN", skin);
  if (skin < 0.0) error("NL_SKIN must be >= 0 (0: search neighbours at every step)");
  const double skinA = std::isnan(skin) ? 1.0 : skin * getUnits().getLength() * 10.0;  // Angstrom
  cells_.setSkin(skinA);
  checkRead();

  // ---- components
  for (const auto& c : model_.classes) {
    addComponentWithDerivatives("n_" + c);
    componentIsNotPeriodic("n_" + c);
    nVal_.push_back(getPntrToComponent("n_" + c));
  }
  for (const auto& c : model_.classes) {
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
  if (probVectors_) {
    std::vector<std::size_t> shape(1, nmol_);
    for (const auto& c : model_.classes) {
      addComponent("p_" + c, shape);
      componentIsNotPeriodic("p_" + c);
      pVec_.push_back(getPntrToComponent("p_" + c));
    }
  }
  requestAtoms(requested);

  if (!probFileName_.empty()) {
    probFile_.link(*this);
    probFile_.open(probFileName_);
    probFile_.fmtField(" %.17g");
  }
  if (!sfFileName_.empty()) {
    sfFile_.link(*this);
    sfFile_.open(sfFileName_);
    sfFile_.fmtField(" %.17g");
  }

  // ---- thread ranges and buffers
  ranges_.resize(nthreads_ + 1);
  for (unsigned t = 0; t <= nthreads_; ++t) ranges_[t] = static_cast<unsigned long>(nmol_) * t / nthreads_;
  gbuf_.resize(nthreads_);
  dbuf_.resize(nthreads_);
  boxbuf_.resize(nthreads_);

  // ---- log
  log.printf("  model %s: \"%s\", %u classes (%s), %u atoms per molecule, %u vectors, %u symmetry functions, cutoff %g-%g A, %s outputs\n",
             model_.path.c_str(), model_.name.c_str(), ncls_, joinNames(model_.classes).c_str(), apm, nvec_, nsf_, model_.rmin, model_.rmax,
             activationName(model_.output).c_str());
  log.printf("  %u molecules, %u atoms each used (centre and vector atoms)\n", nmol_, nlocal_);
  log.printf("  %u OpenMP thread(s)%s\n", nthreads_, nopbc_ ? ", no periodic boundary conditions (NOPBC)" : "");
  if (region_.enabled)
    log.printf("  populations restricted to the slab normal to axis %s: centre %g, half width %g, smoothing %g (length units)\n", axis.c_str(),
               regionCentre_, regionHalfwidth_, regionSmoothing_);
  if (hasPath_) {
    log.printf("  path in the fractions of %s: %u images, lambda %g; s runs from 0 (first image) to 1 (last image)\n",
               joinNames(pcls).c_str(), path_.nImages(), path_.lambda());
    for (unsigned i = 0; i < path_.nImages(); ++i) {
      log.printf("    image %u:", i + 1);
      for (double q : path_.images()[i]) log.printf(" %g", q);
      log.printf("\n");
    }
  }
  if (!probFileName_.empty()) log.printf("  per-molecule probabilities to %s every %u steps\n", probFileName_.c_str(), fileStride_);
  if (!sfFileName_.empty()) log.printf("  per-molecule symmetry functions to %s every %u steps\n", sfFileName_.c_str(), fileStride_);
  if (skinA > 0.0)
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
  static const char* names[nStages] = {"geometry and region", "neighbour cells", "pass 1 (descriptors)", "network",
                                       "values and files", "network backward", "pass 2 (pair derivatives)", "forces / derivative arrays"};
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
  if (!nopbc_ && getPbc().isSet()) {
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
  const double toA = getUnits().getLength() * 10.0;  // Angstrom per PLUMED length unit
  toA_ = toA;
  setupGeometry(toA);
  if (!consumersChecked_) {
    checkConsumers();
    consumersChecked_ = true;
  }
  const bool derivs = !doNotCalculateDerivatives() && !checkNumericalDerivatives();
  mode_ = !derivs ? Deriv::none : (fullDerivatives_ || dumpConsumer_ || isOptionOn("GRADIENTS")) ? Deriv::full : Deriv::forces;
  const bool fileStep = (!probFileName_.empty() || !sfFileName_.empty()) && getStep() % fileStride_ == 0;
  const bool needAll = fileStep || probVectors_;
  const unsigned T = nthreads_, N = nmol_, K = ncls_, S = nsf_, V = nvec_;

  // ---- per-molecule geometry, in Angstrom
  centres_.resize(3 * N);
  vraw_.resize(3 * N * V);
  unitv_.resize(3 * N * V);
  vlen_.resize(N * V);
  weight_.assign(N, 1.0);
  dweight_.assign(3 * N, 0.0);
  rbox_.resize(3 * N);
  active_.assign(N, 1);
  computed_.assign(N, 1);
  unsigned zeroVector = N;
  #pragma omp parallel for num_threads(T)
  for (unsigned m = 0; m < N; ++m) {
    const Vector& c = getPosition(m * nlocal_ + centreSlot_);
    for (unsigned j = 0; j < 3; ++j) centres_[3 * m + j] = c[j] * toA;
    for (unsigned s = 0; s < V; ++s) {
      const Vector& a = getPosition(m * nlocal_ + vecASlot_[s]);
      const Vector& b = getPosition(m * nlocal_ + vecBSlot_[s]);
      // intramolecular vectors with the minimum image (molecules may be split across the
      // boundary in wrapped input); exact since they are shorter than half the smallest
      // cell height (the cell is at least 2 rmax high)
      const double ra[3] = {a[0] * toA, a[1] * toA, a[2] * toA}, rb[3] = {b[0] * toA, b[1] * toA, b[2] * toA};
      double* vr = &vraw_[3 * (m * V + s)];
      cell_.difference(ra, rb, vr);
      const double len = std::sqrt(vr[0] * vr[0] + vr[1] * vr[1] + vr[2] * vr[2]);
      vlen_[m * V + s] = len;
      if (!(len > 0.0)) {
        #pragma omp critical
        zeroVector = std::min(zeroVector, m);
        continue;
      }
      for (unsigned j = 0; j < 3; ++j) unitv_[3 * (m * V + s) + j] = vr[j] / len;
    }
    if (region_.enabled) {
      weight_[m] = region_.weight(cell_, &centres_[3 * m], &dweight_[3 * m], &rbox_[3 * m]);
      active_[m] = weight_[m] > 0.0;
      computed_[m] = active_[m] || needAll;
    }
  }
  if (zeroVector < N) error("molecule " + std::to_string(zeroVector + 1) + " has an intramolecular vector of zero length (two atoms coincide)");
  lap(sGeometry);

  // ---- neighbour pairs (pairs of two molecules that need no descriptors are skipped)
  if (cells_.update(centres_, cell_, sf_->rmax(), computed_, ranges_, T, pairs_)) ++rebuilds_;
  ++steps_;
  for (const auto& list : pairs_) pairCount_ += list.size();
  lap(sNeighbours);

  // ---- pass 1: descriptors G(I) = sum_J t(I,J)
  G_.resize(static_cast<std::size_t>(N) * S);
  #pragma omp parallel num_threads(T)
  {
    #pragma omp for schedule(static, 1)
    for (unsigned t = 0; t < T; ++t) {
      std::vector<double>& g = (T == 1) ? G_ : gbuf_[t];
      g.assign(static_cast<std::size_t>(N) * S, 0.0);
      // pairs go through the kernel in blocks (columns: pair b of the block)
      constexpr unsigned Bk = SymmetryFunctions::kBlock;
      std::vector<double> rb(Bk), cb(static_cast<std::size_t>(V) * Bk + 1), tb(static_cast<std::size_t>(S) * Bk),
          tr(static_cast<std::size_t>(S) * Bk), acc(S, 0.0);
      const std::vector<MoleculePair>& list = pairs_[t];
      // the list is grouped by its first molecule: its terms are summed in acc and added
      // to G once per molecule
      unsigned cur = N;
      auto flush = [&]() {
        if (cur < N && computed_[cur]) {
          double* gi = &g[static_cast<std::size_t>(cur) * S];
          for (unsigned q = 0; q < S; ++q) gi[q] += acc[q];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
      };
      for (std::size_t p0 = 0; p0 < list.size(); p0 += Bk) {
        const unsigned nb = std::min<std::size_t>(Bk, list.size() - p0);
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          rb[b] = p.r;
          for (unsigned s = 0; s < V; ++s) {
            const double* ui = &unitv_[3 * (p.i * V + s)];
            const double* uj = &unitv_[3 * (p.j * V + s)];
            cb[s * Bk + b] = ui[0] * uj[0] + ui[1] * uj[1] + ui[2] * uj[2];
          }
        }
        sf_->values(nb, rb.data(), cb.data(), tb.data());
        pairblocks::columnsToRows(nb, S, tb.data(), tr.data());  // tr[b*S+q]: the terms of pair b
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          if (p.i != cur) {
            flush();
            cur = p.i;
          }
          double* __restrict a = acc.data();
          const double* __restrict row = &tr[static_cast<std::size_t>(b) * S];
          for (unsigned q = 0; q < S; ++q) a[q] += row[q];
          if (computed_[p.j]) {
            double* __restrict gj = &g[static_cast<std::size_t>(p.j) * S];
            for (unsigned q = 0; q < S; ++q) gj[q] += row[q];
          }
        }
      }
      flush();
    }
    if (T > 1) {
      // G = sum over the threads' buffers, in thread order
      #pragma omp for schedule(static)
      for (unsigned m = 0; m < N; ++m) {
        double* gm = &G_[static_cast<std::size_t>(m) * S];
        std::copy_n(&gbuf_[0][static_cast<std::size_t>(m) * S], S, gm);
        for (unsigned t = 1; t < T; ++t)
          for (unsigned q = 0; q < S; ++q) gm[q] += gbuf_[t][static_cast<std::size_t>(m) * S + q];
      }
    }
  }

  lap(sPass1);

  // ---- network, in blocks of computed molecules: probabilities (and activations kept
  // for the backward sweeps)
  constexpr unsigned NB = Network::kBlock;
  netList_.clear();
  for (unsigned m = 0; m < N; ++m)
    if (computed_[m]) netList_.push_back(m);
  const unsigned nblocks = (netList_.size() + NB - 1) / NB;
  const std::size_t storeSize = net_->storeSize();
  prob_.assign(static_cast<std::size_t>(N) * K, 0.0);
  store_.resize(nblocks * storeSize);
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> gin(static_cast<std::size_t>(NB) * S), pout(static_cast<std::size_t>(NB) * K);
    #pragma omp for schedule(static)
    for (unsigned blk = 0; blk < nblocks; ++blk) {
      const unsigned first = blk * NB, nm = std::min<unsigned>(NB, netList_.size() - first);
      for (unsigned mm = 0; mm < nm; ++mm)
        std::copy_n(&G_[static_cast<std::size_t>(netList_[first + mm]) * S], S, &gin[static_cast<std::size_t>(mm) * S]);
      net_->forward(nm, gin.data(), pout.data(), &store_[blk * storeSize]);
      for (unsigned mm = 0; mm < nm; ++mm)
        std::copy_n(&pout[static_cast<std::size_t>(mm) * K], K, &prob_[static_cast<std::size_t>(netList_[first + mm]) * K]);
    }
  }

  lap(sNetwork);

  // ---- values: populations, fractions, path (sums in molecule order)
  std::vector<double> n(K, 0.0);
  double W = 0.0;
  for (unsigned m = 0; m < N; ++m) {
    if (!active_[m]) continue;
    W += weight_[m];
    for (unsigned k = 0; k < K; ++k) n[k] += weight_[m] * prob_[static_cast<std::size_t>(m) * K + k];
  }
  const double invW = W > 0 ? 1.0 / W : 0.0;  // empty region: fractions reported as 0
  for (unsigned k = 0; k < K; ++k) {
    nVal_[k]->set(n[k]);
    fVal_[k]->set(n[k] * invW);
  }
  nmolVal_->set(W);
  // derivative coefficients of each component: d c = sum_k alpha[c][k] d n_k + beta[c] d W
  comps_.clear();
  alpha_.clear();
  beta_.clear();
  for (unsigned k = 0; k < K; ++k) {
    comps_.push_back(nVal_[k]);
    alpha_.emplace_back(K, 0.0);
    alpha_.back()[k] = 1.0;
    beta_.push_back(0.0);
  }
  for (unsigned k = 0; k < K; ++k) {
    comps_.push_back(fVal_[k]);
    alpha_.emplace_back(K, 0.0);
    alpha_.back()[k] = invW;
    beta_.push_back(-n[k] * invW * invW);
  }
  comps_.push_back(nmolVal_);
  alpha_.emplace_back(K, 0.0);
  beta_.push_back(1.0);
  if (hasPath_) {
    const unsigned D = pathClasses_.size();
    std::vector<double> Q(D), dsdQ(D), dzdQ(D);
    for (unsigned q = 0; q < D; ++q) Q[q] = n[pathClasses_[q]] * invW;
    double s, z;
    path_.evaluate(Q.data(), s, z, dsdQ.data(), dzdQ.data());
    sVal_->set(s);
    zVal_->set(z);
    for (const auto* grad : {&dsdQ, &dzdQ}) {
      comps_.push_back(grad == &dsdQ ? sVal_ : zVal_);
      alpha_.emplace_back(K, 0.0);
      double b = 0.0;
      for (unsigned q = 0; q < D; ++q) {
        const unsigned k = pathClasses_[q];
        alpha_.back()[k] += (*grad)[q] * invW;
        b -= (*grad)[q] * n[k] * invW * invW;
      }
      beta_.push_back(b);
    }
  }
  if (probVectors_) {
    for (unsigned k = 0; k < K; ++k)
      for (unsigned m = 0; m < N; ++m) pVec_[k]->set(m, prob_[static_cast<std::size_t>(m) * K + k]);
  }
  if (fileStep) writeFiles();
  lap(sValues);
  if (mode_ == Deriv::full) fullDerivativePass();
}

void MolenvClassify::fullDerivativePass() {
  ++derivSteps_;
  const double toA = toA_;
  const unsigned T = nthreads_, N = nmol_, K = ncls_, S = nsf_, V = nvec_;
  const unsigned dstride = K * (1 + V) * 3;  // per molecule: per class, centre + vectors
  const unsigned Kp = (K + 3) / 4 * 4;       // classes padded for SIMD
  const std::vector<Value*>& comps = comps_;
  const std::vector<std::vector<double>>& alpha = alpha_;
  const std::vector<double>& beta = beta_;

  // ---- weighted Jacobians w_I dp(I)/dG(I): one backward sweep per class, stored
  // descriptor-major with the classes padded to Kp, so that the pair contraction in pass
  // 2 runs over classes with independent, vectorisable accumulators
  constexpr unsigned NB = Network::kBlock;
  const unsigned nblocks = (netList_.size() + NB - 1) / NB;
  const std::size_t storeSize = net_->storeSize();
  wjac_.assign(static_cast<std::size_t>(N) * Kp * S, 0.0);
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> seed(static_cast<std::size_t>(NB) * K), grad(static_cast<std::size_t>(NB) * S);
    #pragma omp for schedule(static)
    for (unsigned blk = 0; blk < nblocks; ++blk) {
      const unsigned first = blk * NB, nm = std::min<unsigned>(NB, netList_.size() - first);
      for (unsigned k = 0; k < K; ++k) {
        std::fill(seed.begin(), seed.end(), 0.0);
        for (unsigned mm = 0; mm < nm; ++mm) seed[static_cast<std::size_t>(mm) * K + k] = active_[netList_[first + mm]] ? weight_[netList_[first + mm]] : 0.0;
        net_->backward(nm, &store_[blk * storeSize], seed.data(), grad.data());
        for (unsigned mm = 0; mm < nm; ++mm) {
          const unsigned m = netList_[first + mm];
          if (!active_[m]) continue;
          double* out = &wjac_[static_cast<std::size_t>(m) * Kp * S];
          for (unsigned q = 0; q < S; ++q) out[q * Kp + k] = grad[static_cast<std::size_t>(mm) * S + q];
        }
      }
    }
  }

  lap(sBackward);

  // ---- pass 2: derivatives of n_k with respect to pair geometry, per class
  #pragma omp parallel num_threads(T)
  {
    #pragma omp for schedule(static, 1)
    for (unsigned t = 0; t < T; ++t) {
      std::vector<double>& db = dbuf_[t];
      db.assign(static_cast<std::size_t>(N) * dstride, 0.0);
      std::vector<double>& box = boxbuf_[t];
      box.assign(9 * (K + 1), 0.0);
      constexpr unsigned Bk = SymmetryFunctions::kBlock;
      std::vector<double> rb(Bk), cb(static_cast<std::size_t>(V) * Bk + 1), drb(static_cast<std::size_t>(S) * Bk),
          dcb(static_cast<std::size_t>(S) * Bk);
      std::vector<double> dr(S), dc(S), A(Kp), Bv(static_cast<std::size_t>(Kp) * V + 1), gI(3 * V + 1), gJ(3 * V + 1);
      const std::vector<double> zeroJac(static_cast<std::size_t>(Kp) * S, 0.0);  // inactive molecule: w = 0
      const unsigned radEnd = sf_->radialEnd();
      const std::vector<MoleculePair>& list = pairs_[t];
      for (std::size_t p0 = 0; p0 < list.size(); p0 += Bk) {
        const unsigned nb = std::min<std::size_t>(Bk, list.size() - p0);
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          rb[b] = p.r;
          for (unsigned s = 0; s < V; ++s) {
            const double* ui = &unitv_[3 * (p.i * V + s)];
            const double* uj = &unitv_[3 * (p.j * V + s)];
            cb[s * Bk + b] = ui[0] * uj[0] + ui[1] * uj[1] + ui[2] * uj[2];
          }
        }
        sf_->derivatives(nb, rb.data(), cb.data(), drb.data(), dcb.data());
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          if (!active_[p.i] && !active_[p.j]) continue;  // only needed for files/vectors
          if (!(p.r > 0.0)) continue;                      // coincident centres: no direction
          for (unsigned q = 0; q < S; ++q) {
            dr[q] = drb[q * Bk + b];
            dc[q] = dcb[q * Bk + b];
          }
          // angular terms depend on r only in the switching shell
          const unsigned rEnd = p.r > sf_->rmin() ? S : radEnd;
          const double* Ji = active_[p.i] ? &wjac_[static_cast<std::size_t>(p.i) * Kp * S] : zeroJac.data();
          const double* Jj = active_[p.j] ? &wjac_[static_cast<std::size_t>(p.j) * Kp * S] : zeroJac.data();
          // A_k = sum_q C[q,k] dt_q/dr, B_sk = sum_q C[q,k] dt_q/dcos_s with C = w_I J_I + w_J J_J;
          // q outer, k inner: one accumulator per class
          std::fill(A.begin(), A.end(), 0.0);
          std::fill(Bv.begin(), Bv.end(), 0.0);
          double* __restrict a = A.data();
          for (unsigned q = 0; q < radEnd; ++q) {
            const double* __restrict ji = Ji + q * Kp;
            const double* __restrict jj = Jj + q * Kp;
            const double d = dr[q];
            for (unsigned k = 0; k < Kp; ++k) a[k] += (ji[k] + jj[k]) * d;
          }
          const bool edge = rEnd > radEnd;
          for (unsigned s = 0; s < V; ++s) {
            double* __restrict bv = Bv.data() + s * Kp;
            for (unsigned q = sf_->angularBegin(s); q < sf_->angularEnd(s); ++q) {
              const double* __restrict ji = Ji + q * Kp;
              const double* __restrict jj = Jj + q * Kp;
              const double d = dc[q];
              for (unsigned k = 0; k < Kp; ++k) bv[k] += (ji[k] + jj[k]) * d;
              if (edge) {
                const double e = dr[q];
                for (unsigned k = 0; k < Kp; ++k) a[k] += (ji[k] + jj[k]) * e;
              }
            }
          }
          // d cos_s / d v_I = (u_J - c u_I)/|v_I|, and symmetrically for J
          for (unsigned s = 0; s < V; ++s) {
            const double c = cb[s * Bk + b];
            const double* ui = &unitv_[3 * (p.i * V + s)];
            const double* uj = &unitv_[3 * (p.j * V + s)];
            const double li = vlen_[p.i * V + s], lj = vlen_[p.j * V + s];
            for (unsigned x = 0; x < 3; ++x) {
              gI[3 * s + x] = (uj[x] - c * ui[x]) / li;
              gJ[3 * s + x] = (ui[x] - c * uj[x]) / lj;
            }
          }
          const double inv = 1.0 / p.r;
          const double dhat[3] = {p.d[0] * inv, p.d[1] * inv, p.d[2] * inv};
          double* di = &db[static_cast<std::size_t>(p.i) * dstride];
          double* dj = &db[static_cast<std::size_t>(p.j) * dstride];
          for (unsigned k = 0; k < K; ++k) {
            double* ci = di + k * (1 + V) * 3;
            double* cj = dj + k * (1 + V) * 3;
            for (unsigned x = 0; x < 3; ++x) {
              const double f = A[k] * dhat[x];  // d n_k / d d_x
              ci[x] -= f;
              cj[x] += f;
              // box derivative of the pair term: -d (x) dF/dd
              for (unsigned y = 0; y < 3; ++y) box[9 * k + 3 * y + x] -= p.d[y] * f;
            }
            for (unsigned s = 0; s < V; ++s) {
              const double bks = Bv[s * Kp + k];
              for (unsigned x = 0; x < 3; ++x) {
                ci[3 * (1 + s) + x] += bks * gI[3 * s + x];
                cj[3 * (1 + s) + x] += bks * gJ[3 * s + x];
              }
            }
          }
        }
      }
    }
  }

  lap(sPass2);

  // ---- reduce over threads, add vector and region terms, write PLUMED derivatives
  const unsigned C = comps.size();
  std::vector<std::vector<double>> boxPart(T, std::vector<double>(9 * (K + 1), 0.0));
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> local(static_cast<std::size_t>(K + 1) * nlocal_ * 3);  // dn_k (and dW) per local atom
    std::vector<double> comp(3 * nlocal_);
    #pragma omp for schedule(static)
    for (unsigned m = 0; m < N; ++m) {
      double* d0 = &dbuf_[0][static_cast<std::size_t>(m) * dstride];
      for (unsigned t = 1; t < T; ++t) {
        const double* dt = &dbuf_[t][static_cast<std::size_t>(m) * dstride];
        for (unsigned q = 0; q < dstride; ++q) d0[q] += dt[q];
      }
      const int tid =
#ifdef _OPENMP
          omp_get_thread_num();
#else
          0;
#endif
      double* bp = boxPart[tid].data();
      std::fill(local.begin(), local.end(), 0.0);
      const double* dw = &dweight_[3 * m];
      const double* ri = &rbox_[3 * m];
      const bool inShell = region_.enabled && (dw[0] != 0.0 || dw[1] != 0.0 || dw[2] != 0.0);
      for (unsigned k = 0; k <= K; ++k) {
        double* lk = &local[static_cast<std::size_t>(k) * nlocal_ * 3];
        if (k < K) {
          const double* dk = d0 + k * (1 + V) * 3;
          for (unsigned x = 0; x < 3; ++x) lk[3 * centreSlot_ + x] += dk[x];
          for (unsigned s = 0; s < V; ++s) {
            const double* vr = &vraw_[3 * (m * V + s)];
            for (unsigned x = 0; x < 3; ++x) {
              const double g = dk[3 * (1 + s) + x];
              lk[3 * vecBSlot_[s] + x] += g;
              lk[3 * vecASlot_[s] + x] -= g;
              for (unsigned y = 0; y < 3; ++y) bp[9 * k + 3 * y + x] -= vr[y] * g;  // -v (x) dF/dv
            }
          }
        }
        if (inShell) {
          // n_k depends on w_I through w_I p_k(I); W through w_I
          const double pk = (k < K) ? prob_[static_cast<std::size_t>(m) * K + k] : 1.0;
          for (unsigned x = 0; x < 3; ++x) {
            const double g = pk * dw[x];
            lk[3 * centreSlot_ + x] += g;
            for (unsigned y = 0; y < 3; ++y) bp[9 * k + 3 * y + x] -= ri[y] * g;  // see SlabRegion.h
          }
        }
      }
      // every component is a linear combination of the n_k and W derivatives
      for (unsigned c = 0; c < C; ++c) {
        std::fill(comp.begin(), comp.end(), 0.0);
        for (unsigned k = 0; k <= K; ++k) {
          const double coef = (k < K) ? alpha[c][k] : beta[c];
          if (coef == 0.0) continue;
          const double* lk = &local[static_cast<std::size_t>(k) * nlocal_ * 3];
          for (unsigned q = 0; q < 3 * nlocal_; ++q) comp[q] += coef * lk[q];
        }
        Value* v = comps[c];
        const unsigned base = 3 * m * nlocal_;
        for (unsigned q = 0; q < 3 * nlocal_; ++q) v->setDerivative(base + q, comp[q] * toA);
      }
    }
  }
  // box derivatives (dimensionless: no unit conversion)
  std::vector<double> boxTotal(9 * (K + 1), 0.0);
  for (unsigned t = 0; t < T; ++t)
    for (unsigned q = 0; q < boxTotal.size(); ++q) boxTotal[q] += boxbuf_[t][q] + boxPart[t][q];
  const unsigned natoms = getNumberOfAtoms();
  for (unsigned c = 0; c < C; ++c) {
    for (unsigned q = 0; q < 9; ++q) {
      double b = beta[c] * boxTotal[9 * K + q];
      for (unsigned k = 0; k < K; ++k) b += alpha[c][k] * boxTotal[9 * k + q];
      comps[c]->setDerivative(3 * natoms + q, b);
    }
  }
  lap(sWrite);
}

void MolenvClassify::forcePass(const std::vector<double>& gamma, double delta) {
  const double toA = toA_;
  const unsigned T = nthreads_, N = nmol_, K = ncls_, S = nsf_, V = nvec_;
  const unsigned FS = 3 * (1 + V);  // per molecule: centre, then each vector

  // ---- contracted Jacobian rows c_I = w_I sum_k gamma_k dp_k(I)/dG(I): one backward
  // sweep per block of molecules
  constexpr unsigned NB = Network::kBlock;
  const unsigned nblocks = (netList_.size() + NB - 1) / NB;
  const std::size_t storeSize = net_->storeSize();
  cjac_.resize(static_cast<std::size_t>(N) * S);  // rows are read only for active molecules, whose blocks are all written
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> seed(static_cast<std::size_t>(NB) * K), grad(static_cast<std::size_t>(NB) * S);
    #pragma omp for schedule(static)
    for (unsigned blk = 0; blk < nblocks; ++blk) {
      const unsigned first = blk * NB, nm = std::min<unsigned>(NB, netList_.size() - first);
      bool any = false;
      for (unsigned mm = 0; mm < nm; ++mm) {
        const unsigned m = netList_[first + mm];
        const double w = active_[m] ? weight_[m] : 0.0;
        any |= w != 0.0;
        for (unsigned k = 0; k < K; ++k) seed[static_cast<std::size_t>(mm) * K + k] = w * gamma[k];
      }
      if (!any) continue;
      net_->backward(nm, &store_[blk * storeSize], seed.data(), grad.data());
      for (unsigned mm = 0; mm < nm; ++mm)
        std::copy_n(&grad[static_cast<std::size_t>(mm) * S], S, &cjac_[static_cast<std::size_t>(netList_[first + mm]) * S]);
    }
  }

  lap(sBackward);

  // ---- pass 2: d(sum_k gamma_k n_k)/d(pair geometry), accumulated per molecule
  #pragma omp parallel num_threads(T)
  {
    #pragma omp for schedule(static, 1)
    for (unsigned t = 0; t < T; ++t) {
      std::vector<double>& fb = dbuf_[t];
      fb.assign(static_cast<std::size_t>(N) * FS, 0.0);
      std::vector<double>& vir = boxbuf_[t];
      vir.assign(9, 0.0);
      constexpr unsigned Bk = SymmetryFunctions::kBlock;
      std::vector<double> rb(Bk), cb(static_cast<std::size_t>(V) * Bk + 1), Cb(static_cast<std::size_t>(S) * Bk), A(Bk),
          Bc(static_cast<std::size_t>(V) * Bk + 1);
      const std::vector<double> zero(S, 0.0);
      const double* rowI[Bk];
      const double* rowJ[Bk];
      const std::vector<MoleculePair>& list = pairs_[t];
      for (std::size_t p0 = 0; p0 < list.size(); p0 += Bk) {
        const unsigned nb = std::min<std::size_t>(Bk, list.size() - p0);
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          rb[b] = p.r;
          for (unsigned s = 0; s < V; ++s) {
            const double* ui = &unitv_[3 * (p.i * V + s)];
            const double* uj = &unitv_[3 * (p.j * V + s)];
            cb[s * Bk + b] = ui[0] * uj[0] + ui[1] * uj[1] + ui[2] * uj[2];
          }
          rowI[b] = active_[p.i] ? &cjac_[static_cast<std::size_t>(p.i) * S] : zero.data();
          rowJ[b] = active_[p.j] ? &cjac_[static_cast<std::size_t>(p.j) * S] : zero.data();
        }
        pairblocks::sumRowsToColumns(nb, S, rowI, rowJ, Cb.data());  // Cb[q*Bk+b] = c_I[q] + c_J[q]
        sf_->contractedDerivatives(nb, rb.data(), cb.data(), Cb.data(), A.data(), Bc.data());
        for (unsigned b = 0; b < nb; ++b) {
          const MoleculePair& p = list[p0 + b];
          if (!active_[p.i] && !active_[p.j]) continue;  // only needed for files/vectors
          if (!(p.r > 0.0)) continue;                      // coincident centres: no direction
          double* fi = &fb[static_cast<std::size_t>(p.i) * FS];
          double* fj = &fb[static_cast<std::size_t>(p.j) * FS];
          const double a = A[b] / p.r;
          for (unsigned x = 0; x < 3; ++x) {
            const double f = a * p.d[x];  // d/d d_x, d = r_J - r_I
            fi[x] -= f;
            fj[x] += f;
            for (unsigned y = 0; y < 3; ++y) vir[3 * y + x] -= p.d[y] * f;  // -d (x) dF/dd
          }
          // d cos_s / d v_I = (u_J - c u_I)/|v_I|, and symmetrically for J
          for (unsigned s = 0; s < V; ++s) {
            const double c = cb[s * Bk + b], bs = Bc[s * Bk + b];
            if (bs == 0.0) continue;
            const double* ui = &unitv_[3 * (p.i * V + s)];
            const double* uj = &unitv_[3 * (p.j * V + s)];
            const double gi = bs / vlen_[p.i * V + s], gj = bs / vlen_[p.j * V + s];
            for (unsigned x = 0; x < 3; ++x) {
              fi[3 * (1 + s) + x] += gi * (uj[x] - c * ui[x]);
              fj[3 * (1 + s) + x] += gj * (ui[x] - c * uj[x]);
            }
          }
        }
      }
    }
  }

  lap(sPass2);

  // ---- per molecule: sum the threads' buffers, add the vector and region terms, and
  // hand PLUMED the derivative of sum_k gamma_k n_k + delta W (= sum_c F_c dc/dx)
  const unsigned natoms = getNumberOfAtoms();
  forcesToApply_.resize(3 * natoms + 9);  // every atom entry is written below
  std::fill(forcesToApply_.end() - 9, forcesToApply_.end(), 0.0);
  std::vector<std::vector<double>> boxPart(T, std::vector<double>(9, 0.0));
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> local(3 * nlocal_), D(FS);
    const int tid =
#ifdef _OPENMP
        omp_get_thread_num();
#else
        0;
#endif
    double* bp = boxPart[tid].data();
    #pragma omp for schedule(static)
    for (unsigned m = 0; m < N; ++m) {
      std::copy_n(&dbuf_[0][static_cast<std::size_t>(m) * FS], FS, D.begin());
      for (unsigned t = 1; t < T; ++t) {
        const double* dt = &dbuf_[t][static_cast<std::size_t>(m) * FS];
        for (unsigned q = 0; q < FS; ++q) D[q] += dt[q];
      }
      std::fill(local.begin(), local.end(), 0.0);
      for (unsigned x = 0; x < 3; ++x) local[3 * centreSlot_ + x] += D[x];
      for (unsigned s = 0; s < V; ++s) {
        const double* vr = &vraw_[3 * (m * V + s)];
        for (unsigned x = 0; x < 3; ++x) {
          const double g = D[3 * (1 + s) + x];
          local[3 * vecBSlot_[s] + x] += g;
          local[3 * vecASlot_[s] + x] -= g;
          for (unsigned y = 0; y < 3; ++y) bp[3 * y + x] -= vr[y] * g;  // -v (x) dF/dv
        }
      }
      const double* dw = &dweight_[3 * m];
      if (region_.enabled && (dw[0] != 0.0 || dw[1] != 0.0 || dw[2] != 0.0)) {
        // n_k depends on w_I through w_I p_k(I), W through w_I
        double coef = delta;
        for (unsigned k = 0; k < K; ++k) coef += gamma[k] * prob_[static_cast<std::size_t>(m) * K + k];
        const double* ri = &rbox_[3 * m];
        for (unsigned x = 0; x < 3; ++x) {
          const double g = coef * dw[x];
          local[3 * centreSlot_ + x] += g;
          for (unsigned y = 0; y < 3; ++y) bp[3 * y + x] -= ri[y] * g;  // see SlabRegion.h
        }
      }
      double* out = &forcesToApply_[3 * m * nlocal_];
      for (unsigned q = 0; q < 3 * nlocal_; ++q) out[q] = local[q] * toA;
    }
  }
  // box (dimensionless: no unit conversion), summed in thread order
  for (unsigned t = 0; t < T; ++t)
    for (unsigned q = 0; q < 9; ++q) forcesToApply_[3 * natoms + q] += boxbuf_[t][q] + boxPart[t][q];
  unsigned ind = 0;
  setForcesOnAtoms(forcesToApply_, ind);
  lap(sWrite);
}

void MolenvClassify::writeFiles() {
  const double time = getTime();
  if (!probFileName_.empty()) {
    for (unsigned m = 0; m < nmol_; ++m) {
      probFile_.printField("time", time).printField("mol", static_cast<int>(m + 1));
      for (unsigned k = 0; k < ncls_; ++k) probFile_.printField(model_.classes[k], prob_[static_cast<std::size_t>(m) * ncls_ + k]);
      probFile_.printField();
    }
    probFile_.flush();
  }
  if (!sfFileName_.empty()) {
    // model-file order of the descriptors
    const auto& order = sf_->order();
    std::vector<double> g(nsf_);
    std::vector<std::string> names(nsf_);
    for (unsigned f = 0; f < nsf_; ++f) names[f] = "sf" + std::to_string(f + 1);
    for (unsigned m = 0; m < nmol_; ++m) {
      for (unsigned i = 0; i < nsf_; ++i) g[order[i]] = G_[static_cast<std::size_t>(m) * nsf_ + i];
      sfFile_.printField("time", time).printField("mol", static_cast<int>(m + 1));
      for (unsigned f = 0; f < nsf_; ++f) sfFile_.printField(names[f], g[f]);
      sfFile_.printField();
    }
    sfFile_.flush();
  }
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
      error("a bias acts on the per-molecule vector p_" + model_.classes[k] +
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
  forcePass(gamma, delta);
}

}  // namespace molenv
}  // namespace PLMD
