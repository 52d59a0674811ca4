/* molenv: branch-free exp and sin/cos for the symmetry-function kernel.

   Why: evaluating 24 descriptors per pair costs ~24 exp/cos calls, and libm's scalar
   calls (~9 ns exp, ~17 ns sin+cos here) dominate the whole action.  These inline
   versions contain no calls and no branches, so that GCC vectorises loops over
   blocks of pairs with whatever SIMD width the target offers (SSE2 by default), and
   they are about as accurate as libm (max error 1 ulp for exp on [-708, 0] and
   1.1e-16 absolute for sin/cos on |x| < 120, measured against glibc on 4M random
   arguments; the regression tests compare the action with numpy to 1e-9).

   Range: expNegative() for finite x <= 0 (all our exponents are -eta*(...)^2),
   returning exactly 0 below about -708; sinCos() for |x| < 2^20 (Cody-Waite reduction with a
   three-part pi/2); callers fall back to libm beyond that. */
#ifndef __MOLENV_FastMath_h
#define __MOLENV_FastMath_h

#include <cstdint>

namespace PLMD {
namespace molenv {
namespace fastmath {

// __builtin_bit_cast (GCC >= 11, clang >= 9) keeps these vectorisable, memcpy does not
inline double bitsToDouble(std::uint64_t u) { return __builtin_bit_cast(double, u); }
inline std::uint64_t doubleToBits(double d) { return __builtin_bit_cast(std::uint64_t, d); }

/// Adding then subtracting 1.5*2^52 rounds to the nearest integer (|v| < 2^51); the
/// low bits of the sum hold that integer.
constexpr double kRound = 6755399441055744.0;

/// exp(x) for x <= 0 (~1 ulp; 0 below -708, where the result would be subnormal).
inline double expNegative(double x) {
  const double t = x * 1.4426950408889634 + kRound;  // n = round(x / ln 2)
  const double n = t - kRound;
  const std::uint64_t ni = doubleToBits(t) - doubleToBits(kRound);  // n as a two's complement integer
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;  // |r| <= ln2/2
  // Taylor series of exp(r) to r^13 (remainder < 1e-17 relative)
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^n from the exponent bits; n < -1022 gives 0.  No floating-point compare: with
  // GCC's default -ftrapping-math a compare/select would stop the vectorisation.
  const std::uint64_t keep = ((ni + 1022) >> 63) - 1;  // all ones if n >= -1022, else 0
  return p * bitsToDouble(((ni + 1023) << 52) & keep);
}

/// sin(x) and cos(x) for |x| < 2^20.
inline void sinCos(double x, double& s, double& c) {
  const double t = x * 0.63661977236758134308 + kRound;  // n = round(x / (pi/2))
  const double n = t - kRound;
  const std::uint64_t q = doubleToBits(t) & 3;  // quadrant n mod 4 (two's complement low bits)
  // three-part pi/2 (fdlibm's pio2_1, pio2_2, pio2_3): exact n*pio2_1 for |n| < 2^20
  const double r = ((x - n * 1.57079632673412561417e+00) - n * 6.07710050630396597660e-11) - n * 2.02226624879595063154e-21;
  const double r2 = r * r;
  // Taylor series on |r| <= pi/4 to r^17 (sin) and r^18 (cos): remainders < 1e-19
  double ps = 1.0 / 355687428096000.0;
  ps = ps * r2 - 1.0 / 1307674368000.0;
  ps = ps * r2 + 1.0 / 6227020800.0;
  ps = ps * r2 - 1.0 / 39916800.0;
  ps = ps * r2 + 1.0 / 362880.0;
  ps = ps * r2 - 1.0 / 5040.0;
  ps = ps * r2 + 1.0 / 120.0;
  ps = ps * r2 - 1.0 / 6.0;
  const double sr = r + r * r2 * ps;
  double pc = 1.0 / 6402373705728000.0;
  pc = pc * r2 - 1.0 / 20922789888000.0;
  pc = pc * r2 + 1.0 / 87178291200.0;
  pc = pc * r2 - 1.0 / 479001600.0;
  pc = pc * r2 + 1.0 / 3628800.0;
  pc = pc * r2 - 1.0 / 40320.0;
  pc = pc * r2 + 1.0 / 720.0;
  pc = pc * r2 - 1.0 / 24.0;
  pc = pc * r2 + 0.5;
  const double cr = 1.0 - r2 * pc;
  // quadrant: (sin, cos) = (s, c), (c, -s), (-s, -c), (-c, s); done on the bits (64-bit
  // and/xor/shift only) because SSE2 has no 64-bit integer compare to vectorise a select
  const std::uint64_t swap = static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(q & 1);  // all ones if odd
  const std::uint64_t sb = doubleToBits(sr), cb = doubleToBits(cr);
  const std::uint64_t a = (cb & swap) | (sb & ~swap), b = (sb & swap) | (cb & ~swap);
  s = bitsToDouble(a ^ (static_cast<std::uint64_t>(q & 2) << 62));
  c = bitsToDouble(b ^ (static_cast<std::uint64_t>((q + 1) & 2) << 62));
}

/// 1/(1+exp(-x)) for any finite x, without overflow and without branches (~1 ulp).
inline double sigmoid(double x) {
  const std::uint64_t bits = doubleToBits(x);
  const std::uint64_t negative = static_cast<std::uint64_t>(0) - (bits >> 63);  // all ones if x < 0
  const double e = expNegative(bitsToDouble(bits | (static_cast<std::uint64_t>(1) << 63)));  // exp(-|x|)
  // x >= 0: 1/(1+e);  x < 0: e/(1+e)
  const double num = bitsToDouble((doubleToBits(e) & negative) | (doubleToBits(1.0) & ~negative));
  return num / (1.0 + e);
}

}  // namespace fastmath

// One copy of the hot kernels per instruction set, chosen at load time (GCC function
// multiversioning): AVX2+FMA where the CPU has it, baseline x86-64 else.  The clone is
// chosen by ISA features (x86-64-v3: AVX2, FMA, BMI2, ...), not "arch=haswell", whose
// resolver tests the CPU model and so picks the baseline on every AMD processor.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && __GNUC__ >= 12
#define MOLENV_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MOLENV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MOLENV_CLONES
#endif

}  // namespace molenv
}  // namespace PLMD

#endif
