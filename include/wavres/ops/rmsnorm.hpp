// RMSNorm (spec §0):  ρ(x) = sqrt(mean_d x_d² + 1e-6),  y = g ⊙ x / ρ(x), per token row.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

constexpr double kRmsEps = 1e-6;

// Forward: y = g ⊙ x · r with r = 1/ρ(x); r is kept for the backward pass.
template <class R, class Exec>
void rmsnorm_forward(Mat<R, Exec> y, Vec<R, Exec> rstd, Mat<const R, Exec> x, Vec<const R, Exec> g) {
  const int64_t D = x.extent(1);
  Kokkos::parallel_for(
      "rmsnorm_forward", Range<Exec>(0, x.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        R ss = 0;
        WAVRES_SIMD_SUM(ss)
        for (int64_t d = 0; d < D; ++d) ss += x(i, d) * x(i, d);
        const R r = R(1) / kmath::sqrt(ss / R(D) + R(kRmsEps));
        rstd(i) = r;
        for (int64_t d = 0; d < D; ++d) y(i, d) = g(d) * x(i, d) * r;
      });
}

// Backward, with x̂ = x·r:
//   dx = r · ( g⊙dy − x̂ · mean_d(g⊙dy⊙x̂) )       (accumulate: dx += instead of =)
//   dg += Σ_rows dy ⊙ x̂                           (per row chunk into `partial` [kRowChunks, D], then summed)
template <class R, class Exec>
void rmsnorm_backward(Mat<R, Exec> dx, Vec<R, Exec> dg, Mat<const R, Exec> dy, Mat<const R, Exec> x,
                      Vec<const R, Exec> rstd, Vec<const R, Exec> g, bool accumulate = false,
                      View2<R, Exec> partial = {}) {
  const int64_t N = x.extent(0), D = x.extent(1);
  if (partial.extent(0) < size_t(kRowChunks) || partial.extent(1) < size_t(D))
    partial = View2<R, Exec>("rmsnorm_partial", kRowChunks, D);
  Kokkos::parallel_for(
      "rmsnorm_backward", Range<Exec>(0, kRowChunks), KOKKOS_LAMBDA(int64_t c) {
        R* part = &partial(c, 0);
        for (int64_t d = 0; d < D; ++d) part[d] = 0;
        for (int64_t i = N * c / kRowChunks; i < N * (c + 1) / kRowChunks; ++i) {
          const R r = rstd(i);
          R dot = 0;
          WAVRES_SIMD_SUM(dot)
          for (int64_t d = 0; d < D; ++d) dot += g(d) * dy(i, d) * x(i, d);
          const R cc = dot * r * r / R(D);
          for (int64_t d = 0; d < D; ++d) {
            const R v = r * (g(d) * dy(i, d) - x(i, d) * cc);
            dx(i, d) = accumulate ? dx(i, d) + v : v;
            part[d] += dy(i, d) * x(i, d) * r;
          }
        }
      });
  Kokkos::parallel_for(
      "rmsnorm_backward_dg", Range<Exec>(0, D), KOKKOS_LAMBDA(int64_t d) {
        R acc = 0;
        for (int c = 0; c < kRowChunks; ++c) acc += partial(c, d);
        dg(d) += acc;
      });
}

}  // namespace wavres
