// Token + position embedding, host body (OpenMP, Serial). Included by ops/embedding.hpp, whose math comment
// it implements.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::host {

// thread = one token row
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

// Positions: thread = one t. Tokens: thread = one of kRowChunks row chunks into partial [kRowChunks, V, D],
// then thread = one (v, d) summing the chunks in order.
template <class R, class Exec>
void embedding_backward(const EmbeddingBackwardArgs<R, Exec>& a) {
  const auto dE_tok = a.dE_tok;
  const auto dE_pos = a.dE_pos;
  const auto dx0 = a.dx0;
  const auto tokens = a.tokens;
  const int T = a.T;
  auto partial = a.partial;
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

}  // namespace wavres::host
