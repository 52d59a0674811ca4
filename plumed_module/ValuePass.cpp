/* molenv: descriptors and probabilities of a step (see ValuePass.h). */
#include "ValuePass.h"
#include "PairBlocks.h"

#include <algorithm>

namespace PLMD {
namespace molenv {

ValuePass::ValuePass(const SymmetryFunctions& sf, const Network& net, unsigned nthreads, const RankSplit& ranks)
    : sf_(sf), net_(net), nthreads_(nthreads), ranks_(ranks), gbuf_(nthreads) {}

void ValuePass::descriptors(const MoleculeFrame& frame, const PairLists& pairs) {
  const unsigned T = nthreads_, N = frame.nmol, S = sf_.size(), V = frame.nvec;
  const std::vector<char>& computed = frame.computed;
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
      const std::vector<MoleculePair>& list = pairs[t];
      // the list is grouped by its first molecule: its terms are summed in acc and added
      // to G once per molecule
      unsigned cur = N;
      auto flush = [&]() {
        if (cur < N && computed[cur]) {
          double* gi = &g[static_cast<std::size_t>(cur) * S];
          for (unsigned q = 0; q < S; ++q) gi[q] += acc[q];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
      };
      for (std::size_t p0 = 0; p0 < list.size(); p0 += Bk) {
        const unsigned nb = std::min<std::size_t>(Bk, list.size() - p0);
        pairblocks::pairColumns(frame, &list[p0], nb, rb.data(), cb.data());
        sf_.values(nb, rb.data(), cb.data(), tb.data());
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
          if (computed[p.j]) {
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
  ranks_.sum(G_);  // the other ranks' pairs
}

void ValuePass::network(const MoleculeFrame& frame) {
  const unsigned T = nthreads_, N = frame.nmol, S = sf_.size(), K = net_.nOutputs();
  constexpr unsigned NB = Network::kBlock;
  netList_.clear();
  for (unsigned m = 0; m < N; ++m)
    if (frame.computed[m]) netList_.push_back(m);
  const unsigned nblocks = nBlocks();
  const std::size_t storeSize = net_.storeSize();
  prob_.assign(static_cast<std::size_t>(N) * K, 0.0);
  store_.resize(nblocks * storeSize);  // only this rank's blocks are written
  const unsigned blk0 = firstBlock(), blk1 = lastBlock();
  #pragma omp parallel num_threads(T)
  {
    std::vector<double> gin(static_cast<std::size_t>(NB) * S), pout(static_cast<std::size_t>(NB) * K);
    #pragma omp for schedule(static)
    for (unsigned blk = blk0; blk < blk1; ++blk) {
      const unsigned first = blk * NB, nm = std::min<unsigned>(NB, netList_.size() - first);
      for (unsigned mm = 0; mm < nm; ++mm)
        std::copy_n(&G_[static_cast<std::size_t>(netList_[first + mm]) * S], S, &gin[static_cast<std::size_t>(mm) * S]);
      net_.forward(nm, gin.data(), pout.data(), &store_[blk * storeSize]);
      for (unsigned mm = 0; mm < nm; ++mm)
        std::copy_n(&pout[static_cast<std::size_t>(mm) * K], K, &prob_[static_cast<std::size_t>(netList_[first + mm]) * K]);
    }
  }
  ranks_.sum(prob_);  // the other ranks' blocks
}

}  // namespace molenv
}  // namespace PLMD
