// SwiGLU, host body (OpenMP, Serial): thread = one token row, vectorised over f (exp_vec is branch-free).
// Included by ops/swiglu.hpp, whose math comment it implements.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::host {

template <class R, class Exec>
void swiglu_forward(Mat<R, Exec> a, Mat<const R, Exec> gu) {
  const int64_t F = a.extent(1);
  Kokkos::parallel_for(
      "swiglu_forward", Range<Exec>(0, a.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        for (int64_t f = 0; f < F; ++f) {
          const R g = gu(i, f);
          a(i, f) = g / (R(1) + kmath::exp_vec(-g)) * gu(i, F + f);
        }
      });
}

template <class R, class Exec>
void swiglu_backward(Mat<R, Exec> dgu, Mat<const R, Exec> da, Mat<const R, Exec> gu) {
  const int64_t F = da.extent(1);
  Kokkos::parallel_for(
      "swiglu_backward", Range<Exec>(0, da.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        for (int64_t f = 0; f < F; ++f) {
          const R g = gu(i, f), u = gu(i, F + f), d = da(i, f);
          const R sg = R(1) / (R(1) + kmath::exp_vec(-g));
          dgu(i, f) = d * u * sg * (R(1) + g * (R(1) - sg));
          dgu(i, F + f) = d * g * sg;
        }
      });
}

}  // namespace wavres::host
