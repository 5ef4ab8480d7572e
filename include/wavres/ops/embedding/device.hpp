// Token + position embedding, device body. Included by ops/embedding.hpp, whose math comment it implements.
//
// Forward and the position gradient: flat ranges over all outputs (N·D and T·D), consecutive threads on
// consecutive d (coalesced); a position sums its B rows in batch order.
// Token gradient, sort-free two-level reduction: level 1, team = (row chunk c, token v), threads × lanes = d:
// each column walks the chunk's rows in order and adds the rows whose token is v; level 2, thread = (v, d)
// adds the chunks in order. No atomics; the order depends only on the dims: the same bits on any thread
// count.
//
// Why this shape (sizes computed from the dims, not measured): with the 1024 chunks of the other column
// reductions, the partial [1024, V, D] would be 256 MiB in float at V = D = 256 (27 MiB at text8's V = 27)
// and every step would write and read all of it. A one-hot gemm (dE_tok += onehot[N, V]ᵀ · dx0) needs only
// N·V scratch, but spends 2·N·V·D flops of which all but a 1/V share multiply zeros, and it would inherit the
// gemm precision (TF32 would round every gradient row to a 10-bit mantissa). Here the chunk count is chosen
// so that the partial holds about 2^18 values (1 MiB in float, any V): level 1 then exposes ~2^18 threads,
// and each team reads N / chunks tokens (108 at the benchmark shape; the token reads are the same address
// for the whole team).
#pragma once
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::device {

constexpr int64_t kEmbeddingPartialTarget = int64_t(1) << 18;

inline int64_t embedding_token_chunks(int64_t V, int64_t D) {
  const int64_t c = ceil_div(kEmbeddingPartialTarget, V * D);
  return c < 1 ? 1 : (c > kDeviceRowChunks ? kDeviceRowChunks : c);
}
inline LaunchShape embedding_forward_launch(int64_t N, int64_t D) {
  return {N * D, 1, 1};
}
inline LaunchShape embedding_pos_launch(int64_t T, int64_t D) {
  return {T * D, 1, 1};
}
inline LaunchShape embedding_tok_launch(int64_t V, int64_t D) {
  const int64_t warps = ceil_div(D, kRowLanes);
  return {embedding_token_chunks(V, D) * V, int(warps < kRowsPerTeam ? warps : kRowsPerTeam), kRowLanes};
}
inline LaunchShape embedding_tok_sum_launch(int64_t V, int64_t D) {
  return {V * D, 1, 1};
}

template <class R, class Exec>
void embedding_forward(Mat<R, Exec> x0, Mat<const int32_t, Exec> tokens, Mat<const R, Exec> E_tok,
                       Mat<const R, Exec> E_pos, int T) {
  const int64_t N = x0.extent(0), D = x0.extent(1);
  Kokkos::parallel_for(
      "embedding_forward[device]", Range<Exec>(0, embedding_forward_launch(N, D).league),
      KOKKOS_LAMBDA(int64_t k) {
        const int64_t i = k / D, d = k - i * D, t = i % T;
        x0(i, d) = E_tok(tokens(i / T, t), d) + E_pos(t, d);
      });
}

template <class R, class Exec>
void embedding_backward(const EmbeddingBackwardArgs<R, Exec>& a) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  const auto dE_tok = a.dE_tok;
  const auto dE_pos = a.dE_pos;
  const auto dx0 = a.dx0;
  const auto tokens = a.tokens;
  const int T = a.T;
  const int64_t N = dx0.extent(0), D = dx0.extent(1), V = dE_tok.extent(0), B = N / T;
  const int64_t C = embedding_token_chunks(V, D);
  auto partial = a.partial;
  if (partial.extent(0) < size_t(C) || partial.extent(1) < size_t(V) || partial.extent(2) < size_t(D))
    partial = View3<R, Exec>("embedding_partial", C, V, D);

  Kokkos::parallel_for(
      "embedding_backward_pos[device]", Range<Exec>(0, embedding_pos_launch(T, D).league),
      KOKKOS_LAMBDA(int64_t k) {
        const int64_t t = k / D, d = k - t * D;
        R acc = 0;
        for (int64_t b = 0; b < B; ++b) acc += dx0(b * T + t, d);
        dE_pos(t, d) += acc;
      });
  Kokkos::parallel_for(
      "embedding_backward_tok[device]", team_policy<Exec>(embedding_tok_launch(V, D)),
      KOKKOS_LAMBDA(const Member& m) {
        const int64_t c = m.league_rank() / V, v = m.league_rank() % V;
        const int64_t i0 = N * c / C, i1 = N * (c + 1) / C;
        Kokkos::parallel_for(Kokkos::TeamVectorRange(m, D), [&](int64_t d) {
          R acc = 0;
          for (int64_t i = i0; i < i1; ++i)
            if (tokens(i / T, i % T) == v) acc += dx0(i, d);
          partial(c, v, d) = acc;
        });
      });
  Kokkos::parallel_for(
      "embedding_backward_sum[device]", Range<Exec>(0, embedding_tok_sum_launch(V, D).league),
      KOKKOS_LAMBDA(int64_t k) {
        const int64_t v = k / D, d = k - v * D;
        R acc = 0;
        for (int64_t c = 0; c < C; ++c) acc += partial(c, v, d);
        dE_tok(v, d) += acc;
      });
}

}  // namespace wavres::device
