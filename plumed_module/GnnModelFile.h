/* molenv: the model file of kind gnn (format version 2, and 4 with the ood block;
   docs/model_format.md "The GNN kind"): a trained graph classifier
   (molenv.gnn.model.MolecularGNN) as plain text.

   The reader mirrors py/molenv/gnn/modelfile.py: read_gnn_model() and
   GNNModel.validate() rule by rule and message by message (same records, same order,
   same checks, same words), so that a file rejected by one is rejected by the other,
   and MOLENV_CLASSIFY accepts exactly the files Python accepts.  The network the model
   describes is evaluated by GraphNetwork. */
#ifndef __MOLENV_GnnModelFile_h
#define __MOLENV_GnnModelFile_h

#include "ModelFile.h"

#include <string>
#include <vector>

namespace PLMD {
namespace molenv {

/// y = W x + b; w is nout x nin, row major (row j = torch's weight[j]); b empty when the
/// layer has no bias.
struct GnnLinear {
  unsigned nin = 0, nout = 0;
  std::vector<double> w, b;
  bool hasBias() const { return !b.empty(); }
};

/// torch.nn.LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias (biased variance).
struct GnnLayerNorm {
  std::vector<double> weight, bias;
  double eps = 0.0;
};

/// Pre-norm residual block: x + GELU(linear(norm(x))).
struct GnnBlock {
  GnnLayerNorm norm;
  GnnLinear linear;
};

/// One graph convolution (molenv.gnn.model.GraphConvBlock): node_in, edge_in, the
/// TransformerConv's lin_query/key/value/edge/skip/beta, node_out, and the block.
struct GnnConv {
  GnnLinear nodeIn, edgeIn, query, key, value, edge, skip, beta, nodeOut;
  GnnBlock block;
};

struct GnnModel {
  std::string path, name;
  std::vector<std::string> classes;          ///< polymorph classes (the first logits)
  std::vector<std::string> topologyClasses;  ///< topology classes (bulk, surface): the last logits
  std::vector<long> moleculeAtoms;           ///< atomic number of each atom of one molecule, in molecule order
  double cutoff = 0.0;                       ///< graph cutoff, Angstrom
  std::vector<long> atomTypes;               ///< atomic numbers of the embedding rows
  std::vector<double> embedding;             ///< atomTypes.size() x typeDim, row major
  unsigned typeDim = 0;
  GnnLinear typeIn;
  std::vector<double> radialFrequencies;
  long envelopeExponent = 0;
  std::vector<GnnConv> convs;
  std::vector<GnnBlock> head;
  GnnLinear output;
  OodScore ood;  ///< the optional out-of-distribution score (ood block, version 4) on the inputs of head layer ood.layer

  unsigned nForms() const { return classes.size(); }
  unsigned nTopology() const { return topologyClasses.size(); }
  unsigned hidden() const { return typeIn.nout; }
  unsigned channels() const { return convs.empty() ? 0 : convs[0].query.nout; }
  unsigned numRadial() const { return radialFrequencies.size(); }
};

enum class ModelKind { sf, gnn };

/// Which reader a model file needs: gnn when its first records are `molenv_model 2` (or 4) and
/// `kind ...` (the GNN reader then judges the kind), sf otherwise (the SF reader then
/// reports a missing file, another version, ...).  Throws nothing.
ModelKind modelFileKind(const std::string& path);

/// Read and validate a model file of kind gnn; throws ModelFileError naming the file,
/// the line and the problem.
GnnModel readGnnModelFile(const std::string& path);

}  // namespace molenv
}  // namespace PLMD

#endif
