// SwiGLU, device body: elementwise, so a flat range over all N·F outputs (2.9M threads at the benchmark
// shape); consecutive threads take consecutive f of a row: coalesced loads of g, u and da.
// Included by ops/swiglu.hpp, whose math comment it implements.
#pragma once
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::device {

inline LaunchShape swiglu_launch(int64_t N, int64_t F) {
  return {N * F, 1, 1};
}

template <class R, class Exec>
void swiglu_forward(Mat<R, Exec> a, Mat<const R, Exec> gu) {
  const int64_t N = a.extent(0), F = a.extent(1);
  Kokkos::parallel_for(
      "swiglu_forward[device]", Range<Exec>(0, swiglu_launch(N, F).league), KOKKOS_LAMBDA(int64_t k) {
        const int64_t i = k / F, f = k - i * F;
        const R g = gu(i, f);
        a(i, f) = g / (R(1) + kmath::exp_vec(-g)) * gu(i, F + f);
      });
}

template <class R, class Exec>
void swiglu_backward(Mat<R, Exec> dgu, Mat<const R, Exec> da, Mat<const R, Exec> gu) {
  const int64_t N = da.extent(0), F = da.extent(1);
  Kokkos::parallel_for(
      "swiglu_backward[device]", Range<Exec>(0, swiglu_launch(N, F).league), KOKKOS_LAMBDA(int64_t k) {
        const int64_t i = k / F, f = k - i * F;
        const R g = gu(i, f), u = gu(i, F + f), d = da(i, f);
        const R sg = R(1) / (R(1) + kmath::exp_vec(-g));
        dgu(i, f) = d * u * sg * (R(1) + g * (R(1) - sg));
        dgu(i, F + f) = d * g * sg;
      });
}

}  // namespace wavres::device
