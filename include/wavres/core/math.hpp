// Device-callable math: Kokkos 3.4 keeps sqrt/exp/log in Kokkos::Experimental, 3.7+ in Kokkos::.
#pragma once
#include <Kokkos_Core.hpp>

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
}  // namespace wavres::kmath

// Per-row sums over the feature axis vectorise only if the compiler may reassociate them; ask for exactly
// that on host OpenMP builds (this changes rounding order, not results beyond float precision).
#define WAVRES_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(KOKKOS_ENABLE_CUDA)
#define WAVRES_SIMD_SUM(...) WAVRES_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#else
#define WAVRES_SIMD_SUM(...)
#endif

namespace wavres {
// Column reductions (gain, query, embedding gradients) are split into this many row chunks: each chunk sums
// its rows contiguously into a partial, then the partials are added in chunk order — fast and deterministic.
constexpr int kRowChunks = 64;
}  // namespace wavres
