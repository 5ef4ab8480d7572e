// Causal attention of one new token over a layer's K/V cache (incremental decoding; the training kernel,
// ops/attention.hpp, handles whole [B·T] blocks).
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Forward for the token at position t, per head h, with c = 1/sqrt(hd) (the same formula as
// attention_forward):
//   s_j = c · q_t·k_j  (j ≤ t),   p_j = softmax_j(s),   o_t = Σ_j p_j v_j
// cache is the layer's qkv rows [T, 3D] (q | k | v, as linear_forward writes them), row t holding the new
// token's; out is [1, D]; scores is scratch [H, ≥ t+1].
// team = head; threads = cached positions (scores, softmax), then the head's dims (outputs). Scores go to
// global scratch rather than team scratch: T rows of them outgrow a GPU's shared memory at long contexts.
template <class R, class Exec>
void attention_decode(Mat<R, Exec> out, Mat<const R, Exec> cache, int t, int H, View2<R, Exec> scores) {
  using Team = Kokkos::TeamPolicy<Exec>;
  using Member = typename Team::member_type;
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  Kokkos::parallel_for(
      "attention_decode", Team(H, Kokkos::AUTO), KOKKOS_LAMBDA(const Member& m) {
        const int h = m.league_rank();
        const R* q = &cache(t, h * hd);
        R* s = &scores(h, 0);
        R smax = R(-1e30);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, t + 1),
            [&](int j, R& mx) {
              const R* k = &cache(j, D + h * hd);
              R dot = 0;
              for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
              s[j] = dot * scale;
              mx = s[j] > mx ? s[j] : mx;
            },
            Kokkos::Max<R>(smax));
        m.team_barrier();  // every score is written before any thread exponentiates
        R sum = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(m, t + 1),
            [&](int j, R& acc) {
              const R e = kmath::exp(s[j] - smax);
              s[j] = e;
              acc += e;
            },
            sum);
        m.team_barrier();  // every weight is written before the outputs read them
        const R inv = R(1) / sum;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(m, hd), [&](int d) {
          R acc = 0;
          for (int j = 0; j <= t; ++j) acc += s[j] * cache(j, 2 * D + h * hd + d);
          out(0, h * hd + d) = acc * inv;
        });
      });
}

}  // namespace wavres
