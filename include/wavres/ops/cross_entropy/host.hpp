// Cross-entropy, host body (OpenMP, Serial): thread = one token row. Included by ops/cross_entropy.hpp,
// whose math comment it implements.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::host {

template <class R, class Exec>
double cross_entropy_forward_backward(Mat<R, Exec> logits, Mat<const int32_t, Exec> tokens, int T,
                                      bool with_grad) {
  const int64_t N = logits.extent(0), V = logits.extent(1);
  double total = 0;
  Kokkos::parallel_reduce(
      "cross_entropy", Range<Exec>(0, N),
      KOKKOS_LAMBDA(int64_t i, double& acc) {
        const int y = tokens(i / T, i % T + 1);
        R m = logits(i, 0);
        for (int64_t v = 1; v < V; ++v) m = logits(i, v) > m ? logits(i, v) : m;
        R s = 0;
        for (int64_t v = 0; v < V; ++v) s += kmath::exp(logits(i, v) - m);
        acc += double(m + kmath::log(s) - logits(i, y));
        if (with_grad) {
          const R inv_s = R(1) / s, inv_n = R(1) / R(N);
          for (int64_t v = 0; v < V; ++v)
            logits(i, v) = (kmath::exp(logits(i, v) - m) * inv_s - (v == y ? R(1) : R(0))) * inv_n;
        }
      },
      total);
  return total / double(N);
}

}  // namespace wavres::host
