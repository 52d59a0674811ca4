/* molenv: row <-> pair-column transpositions (see PairBlocks.h). */
#include "PairBlocks.h"

#include <cstdlib>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MOLENV_HAVE_AVX2_PATH 1
#endif

namespace PLMD {
namespace molenv {
namespace pairblocks {

namespace {

void sumRowsScalar(unsigned b0, unsigned nb, unsigned q0, unsigned S, const double* const* rowI, const double* const* rowJ, double* C) {
  for (unsigned b = b0; b < nb; ++b)
    for (unsigned q = q0; q < S; ++q) C[q * B + b] = rowI[b][q] + rowJ[b][q];
}

void toRowsScalar(unsigned b0, unsigned nb, unsigned q0, unsigned S, const double* t, double* rows) {
  for (unsigned b = b0; b < nb; ++b)
    for (unsigned q = q0; q < S; ++q) rows[b * S + q] = t[q * B + b];
}

#ifdef MOLENV_HAVE_AVX2_PATH
/// Stores the transpose of the 4x4 tile whose rows are r[0..3], done in registers:
/// column k goes to out + k*stride.
__attribute__((target("avx2"))) inline void storeTransposed(const __m256d (&r)[4], double* out, unsigned stride) {
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]);  // r0[0] r1[0] r0[2] r1[2]
  const __m256d t1 = _mm256_unpackhi_pd(r[0], r[1]);  // r0[1] r1[1] r0[3] r1[3]
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]);
  const __m256d t3 = _mm256_unpackhi_pd(r[2], r[3]);
  _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));  // r0[0] r1[0] r2[0] r3[0]
  _mm256_storeu_pd(out + stride, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(out + 2 * stride, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(out + 3 * stride, _mm256_permute2f128_pd(t1, t3, 0x31));
}

/// tile(b, q) for every 4x4 tile of the nb pairs x S terms, then scalar(b0, b1, q0) for
/// the terms from q0 of the pairs b0 .. b1-1 that no tile covers.
template <class Tile, class Scalar>
__attribute__((target("avx2"))) inline void byTiles(unsigned nb, unsigned S, Tile tile, Scalar scalar) {
  const unsigned nb4 = nb / 4 * 4, S4 = S / 4 * 4;
  for (unsigned b = 0; b < nb4; b += 4)
    for (unsigned q = 0; q < S4; q += 4) tile(b, q);
  scalar(0, nb4, S4);  // remaining terms of the full tiles
  scalar(nb4, nb, 0);  // remaining pairs
}

__attribute__((target("avx2"))) void sumRowsAvx2(unsigned nb, unsigned S, const double* const* rowI, const double* const* rowJ, double* C) {
  byTiles(
      nb, S,
      [&](unsigned b, unsigned q) __attribute__((target("avx2"))) {
        __m256d r[4];  // r[k]: terms q .. q+3 of pair b+k
        for (unsigned k = 0; k < 4; ++k) r[k] = _mm256_add_pd(_mm256_loadu_pd(rowI[b + k] + q), _mm256_loadu_pd(rowJ[b + k] + q));
        storeTransposed(r, C + q * B + b, B);
      },
      [&](unsigned b0, unsigned b1, unsigned q0) { sumRowsScalar(b0, b1, q0, S, rowI, rowJ, C); });
}

__attribute__((target("avx2"))) void toRowsAvx2(unsigned nb, unsigned S, const double* t, double* rows) {
  byTiles(
      nb, S,
      [&](unsigned b, unsigned q) __attribute__((target("avx2"))) {
        __m256d r[4];  // r[k]: term q+k of pairs b .. b+3
        for (unsigned k = 0; k < 4; ++k) r[k] = _mm256_loadu_pd(t + (q + k) * B + b);
        storeTransposed(r, rows + b * S + q, S);
      },
      [&](unsigned b0, unsigned b1, unsigned q0) { toRowsScalar(b0, b1, q0, S, t, rows); });
}

#endif

bool detectAvx2() {
#ifdef MOLENV_HAVE_AVX2_PATH
  if (std::getenv("MOLENV_NO_AVX2_TILES")) return false;  // for testing the scalar path
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

}  // namespace

bool usingAvx2() {
  static const bool avx2 = detectAvx2();
  return avx2;
}

void sumRowsToColumns(unsigned nb, unsigned S, const double* const* rowI, const double* const* rowJ, double* C) {
#ifdef MOLENV_HAVE_AVX2_PATH
  if (usingAvx2()) {
    sumRowsAvx2(nb, S, rowI, rowJ, C);
    return;
  }
#endif
  sumRowsScalar(0, nb, 0, S, rowI, rowJ, C);
}

void columnsToRows(unsigned nb, unsigned S, const double* t, double* rows) {
#ifdef MOLENV_HAVE_AVX2_PATH
  if (usingAvx2()) {
    toRowsAvx2(nb, S, t, rows);
    return;
  }
#endif
  toRowsScalar(0, nb, 0, S, t, rows);
}

}  // namespace pairblocks
}  // namespace molenv
}  // namespace PLMD
