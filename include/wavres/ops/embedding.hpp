// Token + position embedding.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Forward:  x0[b·T+t, :] = E_tok[tok[b,t], :] + E_pos[t, :]
// tokens is [B, T+1] (inputs are columns 0..T-1).
template <class R, class Exec>
void embedding_forward(Mat<R, Exec> x0, Mat<const int32_t, Exec> tokens, Mat<const R, Exec> E_tok,
                       Mat<const R, Exec> E_pos, int T) {
  const int64_t D = x0.extent(1);
  Kokkos::parallel_for(
      "embedding_forward", Range<Exec>(0, x0.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        const int64_t b = i / T, t = i % T;
        const int tok = tokens(b, t);
        for (int64_t d = 0; d < D; ++d) x0(i, d) = E_tok(tok, d) + E_pos(t, d);
      });
}

// Backward: dE_tok[v, :] += Σ_{(b,t): tok=v} dx0[b·T+t, :],   dE_pos[t, :] += Σ_b dx0[b·T+t, :]
// Parallel over feature columns so that no two threads touch the same gradient element (no atomics, and the
// summation order is fixed, which keeps runs bit-reproducible).
template <class R, class Exec>
void embedding_backward(Mat<R, Exec> dE_tok, Mat<R, Exec> dE_pos, Mat<const R, Exec> dx0,
                        Mat<const int32_t, Exec> tokens, int T) {
  const int64_t N = dx0.extent(0), D = dx0.extent(1);
  Kokkos::parallel_for(
      "embedding_backward", Range<Exec>(0, D), KOKKOS_LAMBDA(int64_t d) {
        for (int64_t i = 0; i < N; ++i) {
          const int64_t b = i / T, t = i % T;
          const R g = dx0(i, d);
          dE_tok(tokens(b, t), d) += g;
          dE_pos(t, d) += g;
        }
      });
}

}  // namespace wavres
