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
/// in-register transposition of the 4x4 tile (r0..r3 rows) into columns c0..c3
__attribute__((target("avx2"))) inline void transpose4(__m256d r0, __m256d r1, __m256d r2, __m256d r3, __m256d& c0, __m256d& c1,
                                                       __m256d& c2, __m256d& c3) {
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1);  // r0[0] r1[0] r0[2] r1[2]
  const __m256d t1 = _mm256_unpackhi_pd(r0, r1);  // r0[1] r1[1] r0[3] r1[3]
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3);
  const __m256d t3 = _mm256_unpackhi_pd(r2, r3);
  c0 = _mm256_permute2f128_pd(t0, t2, 0x20);  // r0[0] r1[0] r2[0] r3[0]
  c1 = _mm256_permute2f128_pd(t1, t3, 0x20);
  c2 = _mm256_permute2f128_pd(t0, t2, 0x31);
  c3 = _mm256_permute2f128_pd(t1, t3, 0x31);
}

__attribute__((target("avx2"))) void sumRowsAvx2(unsigned nb, unsigned S, const double* const* rowI, const double* const* rowJ, double* C) {
  const unsigned nb4 = nb / 4 * 4, S4 = S / 4 * 4;
  for (unsigned b = 0; b < nb4; b += 4) {
    for (unsigned q = 0; q < S4; q += 4) {
      const __m256d r0 = _mm256_add_pd(_mm256_loadu_pd(rowI[b] + q), _mm256_loadu_pd(rowJ[b] + q));
      const __m256d r1 = _mm256_add_pd(_mm256_loadu_pd(rowI[b + 1] + q), _mm256_loadu_pd(rowJ[b + 1] + q));
      const __m256d r2 = _mm256_add_pd(_mm256_loadu_pd(rowI[b + 2] + q), _mm256_loadu_pd(rowJ[b + 2] + q));
      const __m256d r3 = _mm256_add_pd(_mm256_loadu_pd(rowI[b + 3] + q), _mm256_loadu_pd(rowJ[b + 3] + q));
      __m256d c0, c1, c2, c3;
      transpose4(r0, r1, r2, r3, c0, c1, c2, c3);
      _mm256_storeu_pd(C + (q + 0) * B + b, c0);
      _mm256_storeu_pd(C + (q + 1) * B + b, c1);
      _mm256_storeu_pd(C + (q + 2) * B + b, c2);
      _mm256_storeu_pd(C + (q + 3) * B + b, c3);
    }
  }
  sumRowsScalar(0, nb4, S4, S, rowI, rowJ, C);    // remaining terms of the full tiles
  sumRowsScalar(nb4, nb, 0, S, rowI, rowJ, C);    // remaining pairs
}

__attribute__((target("avx2"))) void toRowsAvx2(unsigned nb, unsigned S, const double* t, double* rows) {
  const unsigned nb4 = nb / 4 * 4, S4 = S / 4 * 4;
  for (unsigned b = 0; b < nb4; b += 4) {
    for (unsigned q = 0; q < S4; q += 4) {
      const __m256d r0 = _mm256_loadu_pd(t + (q + 0) * B + b);  // term q for pairs b..b+3
      const __m256d r1 = _mm256_loadu_pd(t + (q + 1) * B + b);
      const __m256d r2 = _mm256_loadu_pd(t + (q + 2) * B + b);
      const __m256d r3 = _mm256_loadu_pd(t + (q + 3) * B + b);
      __m256d c0, c1, c2, c3;
      transpose4(r0, r1, r2, r3, c0, c1, c2, c3);
      _mm256_storeu_pd(rows + (b + 0) * S + q, c0);
      _mm256_storeu_pd(rows + (b + 1) * S + q, c1);
      _mm256_storeu_pd(rows + (b + 2) * S + q, c2);
      _mm256_storeu_pd(rows + (b + 3) * S + q, c3);
    }
  }
  toRowsScalar(0, nb4, S4, S, t, rows);
  toRowsScalar(nb4, nb, 0, S, t, rows);
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
