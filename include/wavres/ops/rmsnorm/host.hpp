// RMSNorm, host body (OpenMP, Serial): one thread walks a whole token row, the compiler vectorises over d.
// Included by ops/rmsnorm.hpp, whose math comment it implements.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::host {

// thread = one token row
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

// thread = one chunk of kRowChunks rows (its dx rows and its dg partial row); then thread = one column of dg
template <class R, class Exec>
void rmsnorm_backward(const RmsNormBackwardArgs<R, Exec>& a) {
  const auto dx = a.dx;
  const auto dg = a.dg;
  const auto dy = a.dy;
  const auto x = a.x;
  const auto rstd = a.rstd;
  const auto g = a.g;
  const bool accumulate = a.accumulate;
  auto partial = a.partial;
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

}  // namespace wavres::host
