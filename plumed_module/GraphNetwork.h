/* molenv: the graph classifier of a GNN model file (kind gnn), in double precision,
   and its reverse pass (backpropagation) down to the atom positions and the cell.

   Forward: the steps of molenv.gnn.numpy_model.classify_frame, the executable
   specification (docs/model_format.md, "The network"):
     x_i   = type_in(embedding(Z_i))                 (one row per atom type, precomputed)
     b_ij  = u(r_ij / c) sin(f_k r_ij / c)           Bessel basis with DimeNet's envelope
     per convolution:
       h_i = node_in x_i,  q_i = query h_i,  k_j = key h_j,  v_j = value h_j
       e_ij = W_e b_ij with W_e = edge . edge_in (C x R: both bias-free, so one matrix)
       score_ij = q_i . (k_j + e_ij) / sqrt(C),  a_ij = softmax over the edges into i
       o_i = sum_j a_ij (v_j + e_ij),  s_i = skip h_i
       beta_i = sigmoid(w_beta . [o_i, s_i, o_i - s_i]),  h_i = beta_i s_i + (1 - beta_i) o_i
       x_i = node_out h_i;  x_i = x_i + GELU(block_linear(LayerNorm(x_i)))
     y_M = max over the atoms of molecule M (feature by feature)
     head blocks y = y + GELU(block_linear(LayerNorm(y))), logits = output y,
     softmax over the polymorph logits and, separately, over the topology logits.
   The per-edge work is O(C + R): q_i . e_ij = (W_e^T q_i) . b_ij and
   sum_j a_ij e_ij = W_e sum_j a_ij b_ij move the C x R products to the atoms.

   With the model's ood block enabled (MOLENV_CLASSIFY OOD), each molecule has one output
   more after its polymorph probabilities, the out-of-distribution score other (OodScore.h)
   of the molecule's features of layer k: k = 1 the radial sums G_i = sum_j b_ij of its atoms
   (concatenated in molecule order), k >= 2 the inputs of head block k - 1 (k = 2: the pooled
   embedding) or, k = blocks + 2, of the output layer.  Its gradient with respect to those
   features is kept from the forward pass, and the reverse pass adds it, times other's seed,
   where it reaches that layer, exactly as the polymorph head's gradient enters (for k = 1:
   dX/dr_ij += seed dother/dG_i . db_ij/dr of every edge into atom i): one reverse pass
   carries both.

   Reverse pass: for a scalar X = sum_M sum_k seed[M][k] p_k(M) it returns dX/dr for
   every atom and the box derivative, by backpropagation through softmax, output layer,
   head blocks (LayerNorm, exact GELU), max pooling (the gradient of each pooled feature
   goes to the atom that holds the maximum), and each convolution in reverse order
   (residual block, node_out, the gated skip with its sigmoid, the attention softmax over
   the incoming edges, query/key/value, node_in), down to dX/dr_ij of every edge, which
   the radial basis' derivative gives.  Then, with d_ij = r_j - r_i,
       dX/dr_i = - sum_j (dX/dr_ij + dX/dr_ji) d_ij / r_ij,
       box derivative = - sum over unordered pairs d (x) dX/dd = - sum_edges (dX/dr_ij) d_ij (x) d_ij / r_ij,
   PLUMED's virial convention (DerivativePass.h): the energy depends on the atoms and the
   cell only through the pair vectors.

   Cost: the forward pass stores what the reverse pass needs (per atom and convolution
   about 6 C + 2 H + R numbers, per edge the attention weight and R basis values and
   derivatives).  One reverse pass costs about as much as two forward passes.  The
   action needs ONE reverse pass per step for the bias forces whatever is biased (seed:
   sum_k gamma_k, the bias forces contracted with the component derivatives), and one per
   class (K passes) to fill PLUMED's derivative arrays (FULL_DERIVATIVES, DUMPDERIVATIVES).

   Threads: every loop runs over atoms (or molecules) and writes only that atom's (or
   molecule's) numbers; what an atom receives from its neighbours is gathered through
   the reverse edges, never scattered; the box sum is taken atom by atom in atom order.
   So the results do not depend on the number of threads at all.

   MPI ranks (RankSplit.h): each rank computes the atoms of its share of the molecules
   (the radial basis of the edges into them, every per-atom loop, the head of its
   molecules).  What an atom reads of its neighbours is summed over the ranks, which is
   exact (one rank writes each entry): per convolution the queries, keys and values in
   the forward pass, and dX/do and dX/dscore in the reverse pass; then the edge
   derivatives, the atom gradients and the per-atom box terms, which every rank adds in
   atom order.  So the results do not depend on the number of ranks either. */
#ifndef __MOLENV_GraphNetwork_h
#define __MOLENV_GraphNetwork_h

#include "AtomGraph.h"
#include "DerivativePass.h"
#include "GnnModelFile.h"
#include "RankSplit.h"

#include <vector>

namespace PLMD {
namespace molenv {

class GraphNetwork {
public:
  /// The network of `model` for nmol molecules of model.moleculeAtoms atoms each; with
  /// `ood`, also the out-of-distribution output (the model must have an ood block).
  GraphNetwork(const GnnModel& model, unsigned nmol, unsigned nthreads, const RankSplit& ranks, bool ood = false);

  /// Probabilities of every molecule for the graph (nodes molecule-major); keeps the
  /// activations for backward(), and the basis derivatives when `derivatives`.
  void forward(const AtomGraph& graph, bool derivatives);
  /// outputs per molecule: F = model.nForms() polymorph probabilities, then with ood other
  unsigned nOutputs() const { return nout_; }
  /// polymorph probabilities (then, with ood, other) p[m*nOutputs()+k]
  const std::vector<double>& polymorph() const { return poly_; }
  /// topology probabilities t[m*G+k], G = model.nTopology()
  const std::vector<double>& topology() const { return topo_; }
  /// polymorph probabilities (and other), then topology probabilities of each molecule, [m*(nOutputs()+G)+k]
  std::vector<double> allProbabilities() const;

  /// Reverse pass of X = sum_m sum_k seed[m*nOutputs()+k] p_k(m) after forward(): grad[3*i+x] =
  /// dX/dr_i,x (1/Angstrom) and box[3*a+b] = -sum_edges d_a dX/dd_b.
  void backward(const AtomGraph& graph, const double* seed, double* grad, double* box);

  /// The channels of `seeds` (DerivativePass.h: X_j = sum_k sigma_jk n_k + tau_j W with
  /// n_k = sum_m p_k(m) and W = nmol, a constant) into `sink`: one reverse pass per
  /// channel with pair terms.
  void derivatives(const AtomGraph& graph, const Seeds& seeds, DerivativeSink& sink);

  /// A dense layer with both weight layouts: wT (nin x nout) for y = b + W x as a sum
  /// of scaled rows (vectorises without reassociation), w (nout x nin) for W^T dy.
  struct Dense {
    unsigned nin = 0, nout = 0;
    std::vector<double> w, wT, b;  ///< b: nout (zeros for a bias-free layer)
  };
  struct Block {
    Dense linear;
    std::vector<double> lnWeight, lnBias;
    double eps = 0.0;
  };

private:
  struct Conv {
    Dense nodeIn, query, key, value, skip, nodeOut;
    std::vector<double> we, weT;    ///< W_e = edge . edge_in: C x R and R x C
    std::vector<double> betaO, betaS;  ///< the gate's weights on o and s: w_o + w_diff, w_s - w_diff
    std::vector<double> betaW;      ///< 3C: [w_o, w_s, w_diff] as in the file
    Block block;
  };
  /// activations of one convolution kept for the reverse pass
  struct ConvStore {
    std::vector<double> q, k, v, s, o, beta, qe, xo, u, stats, alpha;
  };

  const GnnModel& model_;
  unsigned nmol_, apm_, nthreads_, H_, C_, R_, F_, G_;
  bool ood_;
  unsigned nout_;  ///< F_ (+1 with ood)
  const RankSplit& ranks_;
  unsigned mol0_, mol1_;  ///< this rank's molecules mol0_ .. mol1_-1, their atoms (nodes) mol0_*apm_ .. mol1_*apm_-1
  double invSqrtC_;
  std::vector<double> typeFeatures_;  ///< per atom of the molecule: type_in(embedding row), apm x H
  std::vector<Conv> convs_;
  std::vector<Block> head_;
  Dense output_;

  // forward state
  unsigned n_ = 0;       ///< nodes
  std::size_t E_ = 0;    ///< edges
  std::vector<double> basis_, dbasis_;  ///< E x R: b(r) and db/dr
  bool dbasisValid_ = false;
  std::vector<ConvStore> store_;
  std::vector<double> x_, xnext_;       ///< atom features (n x H)
  std::vector<double> pooled_;          ///< nmol x H (input of the head)
  std::vector<unsigned> argmax_;        ///< nmol x H: node holding each maximum
  std::vector<double> headIn_, headU_, headStats_;  ///< per head block: nmol x H, nmol x H, nmol x 2
  std::vector<double> poly_, topo_;
  std::vector<double> oodGrad_;  ///< with ood: nmol x ood.width, d other / d (the features of layer ood.layer)
  // reverse-pass buffers
  std::vector<double> dx_, dO_, dS_, dH_, dsc_, gr_, atomBox_;

  void radialBasis(const AtomGraph& graph, bool derivatives);
};

}  // namespace molenv
}  // namespace PLMD

#endif
