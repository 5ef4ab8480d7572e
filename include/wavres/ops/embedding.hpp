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
// Positions: one work item per t. Tokens: per row chunk into `partial` [kRowChunks, V, D], then summed in
// chunk order — no atomics, and the same sums in the same order on every run.
template <class R, class Exec>
void embedding_backward(Mat<R, Exec> dE_tok, Mat<R, Exec> dE_pos, Mat<const R, Exec> dx0,
                        Mat<const int32_t, Exec> tokens, int T, View3<R, Exec> partial = {}) {
  const int64_t N = dx0.extent(0), D = dx0.extent(1), V = dE_tok.extent(0), B = N / T;
  if (partial.extent(0) < size_t(kRowChunks) || partial.extent(1) < size_t(V) ||
      partial.extent(2) < size_t(D))
    partial = View3<R, Exec>("embedding_partial", kRowChunks, V, D);
  Kokkos::parallel_for(
      "embedding_backward_pos", Range<Exec>(0, T), KOKKOS_LAMBDA(int64_t t) {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t d = 0; d < D; ++d) dE_pos(t, d) += dx0(b * T + t, d);
      });
  Kokkos::parallel_for(
      "embedding_backward_tok", Range<Exec>(0, kRowChunks), KOKKOS_LAMBDA(int64_t c) {
        for (int64_t v = 0; v < V; ++v)
          for (int64_t d = 0; d < D; ++d) partial(c, v, d) = 0;
        for (int64_t i = N * c / kRowChunks; i < N * (c + 1) / kRowChunks; ++i) {
          const int tok = tokens(i / T, i % T);
          for (int64_t d = 0; d < D; ++d) partial(c, tok, d) += dx0(i, d);
        }
      });
  Kokkos::parallel_for(
      "embedding_backward_sum", Range<Exec>(0, V * D), KOKKOS_LAMBDA(int64_t k) {
        const int64_t v = k / D, d = k % D;
        R acc = 0;
        for (int c = 0; c < kRowChunks; ++c) acc += partial(c, v, d);
        dE_tok(v, d) += acc;
      });
}

}  // namespace wavres
