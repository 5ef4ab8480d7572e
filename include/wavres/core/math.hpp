// Device-callable math: Kokkos 3.4 keeps sqrt/exp/log in Kokkos::Experimental, 3.7+ in Kokkos::.
#pragma once
#include <Kokkos_Core.hpp>
#include <cstdint>
#include "wavres/core/exec_traits.hpp"

namespace wavres::kmath {
#if KOKKOS_VERSION >= 30700
using Kokkos::exp;
using Kokkos::log;
using Kokkos::sqrt;
#else
using Kokkos::Experimental::exp;
using Kokkos::Experimental::log;
using Kokkos::Experimental::sqrt;
#endif

// exp for loops that should vectorise (SwiGLU, the attention softmax). On the host in float, libm's expf is
// a call the compiler cannot vectorise without -ffast-math (which would also drop the non-finite checks), so
// float uses Cephes' expf: round x·log2(e) to n with the 1.5·2^23 trick, r = x − n·ln2 in two parts, a
// degree-7 polynomial (relative error < 1e-7, measured 8.3e-8, against exp in double), times 2^n through the
// exponent bits. Branch-free, so it vectorises. Arguments are clamped to [−87.3, 88.3] (results stay normal
// and finite); NaN stays NaN. double, and CUDA (whose expf is already a fast intrinsic), use exp itself.
template <class R>
KOKKOS_INLINE_FUNCTION R exp_vec(R x) {
  return exp(x);
}
#if !defined(KOKKOS_ENABLE_CUDA)
template <>
inline float exp_vec<float>(float x) {
  x = x > 88.3f ? 88.3f : x;
  x = x < -87.3f ? -87.3f : x;
  // t = 1.5·2^23 + n for the integer n nearest x·log2(e); its low mantissa bits hold n (|n| ≤ 127)
  const float t = x * 1.44269504088896341f + 12582912.f;
  const float n = t - 12582912.f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  uint32_t tb;
  __builtin_memcpy(&tb, &t, sizeof tb);
  const uint32_t bits = (tb - 0x4B400000u + 127u) << 23;  // 2^n; unsigned: no UB, also for NaN
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}
#endif
}  // namespace wavres::kmath

// Per-row sums over the feature axis vectorise only if the compiler may reassociate them; ask for exactly
// that on host OpenMP builds (this changes rounding order, not results beyond float precision).
#define WAVRES_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(KOKKOS_ENABLE_CUDA)
#define WAVRES_SIMD_SUM(...) WAVRES_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define WAVRES_SIMD_SUM(...)
#endif

