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
        for (int64_t d = 0; d < D; ++d) ss += x(i, d) * x(i, d);
        const R r = R(1) / kmath::sqrt(ss / R(D) + R(kRmsEps));
        rstd(i) = r;
        for (int64_t d = 0; d < D; ++d) y(i, d) = g(d) * x(i, d) * r;
      });
}

// Backward, with x̂ = x·r:
//   dx = r · ( g⊙dy − x̂ · mean_d(g⊙dy⊙x̂) )       (accumulate: dx += instead of =)
//   dg += Σ_rows dy ⊙ x̂
template <class R, class Exec>
void rmsnorm_backward(Mat<R, Exec> dx, Vec<R, Exec> dg, Mat<const R, Exec> dy, Mat<const R, Exec> x,
                      Vec<const R, Exec> rstd, Vec<const R, Exec> g, bool accumulate = false) {
  const int64_t N = x.extent(0), D = x.extent(1);
  Kokkos::parallel_for(
      "rmsnorm_backward_dx", Range<Exec>(0, N), KOKKOS_LAMBDA(int64_t i) {
        const R r = rstd(i);
        R dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += g(d) * dy(i, d) * x(i, d) * r;
        const R c = dot / R(D);
        for (int64_t d = 0; d < D; ++d) {
          const R v = r * (g(d) * dy(i, d) - x(i, d) * r * c);
          dx(i, d) = accumulate ? dx(i, d) + v : v;
        }
      });
  Kokkos::parallel_for(
      "rmsnorm_backward_dg", Range<Exec>(0, D), KOKKOS_LAMBDA(int64_t d) {
        R acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += dy(i, d) * x(i, d) * rstd(i);
        dg(d) += acc;
      });
}

}  // namespace wavres
