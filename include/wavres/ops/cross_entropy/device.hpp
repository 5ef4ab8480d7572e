// Cross-entropy, device body. Included by ops/cross_entropy.hpp, whose math comment it implements.
//
// team = kRowsPerTeam token rows; thread = one row; lanes = v (a warp reads the row's V consecutive logits:
// coalesced; V ≤ 256 is at most 8 loads per lane). The max and the sum of exponentials are lane reductions;
// the rows' losses are summed over the team (a fixed shuffle tree on CUDA, rank order on the host), and one
// thread per team adds that into the double reduction.
#pragma once
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::device {

inline LaunchShape cross_entropy_launch(int64_t N) {
  return {ceil_div(N, kRowsPerTeam), kRowsPerTeam, kRowLanes};
}

template <class R, class Exec>
double cross_entropy_forward_backward(Mat<R, Exec> logits, Mat<const int32_t, Exec> tokens, int T,
                                      bool with_grad) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  const int64_t N = logits.extent(0);
  const int V = int(logits.extent(1));
  const LaunchShape s = cross_entropy_launch(N);
  const int rows = s.team;
  double total = 0;
  Kokkos::parallel_reduce(
      "cross_entropy[device]", team_policy<Exec>(s),
      KOKKOS_LAMBDA(const Member& t, double& acc) {
        double team_loss = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(t, rows),
            [&](int k, double& row_sum) {
              const int64_t i = int64_t(t.league_rank()) * rows + k;
              if (i >= N) return;
              const int y = tokens(i / T, i % T + 1);
              // read before the lane reductions below: they synchronise the lanes, so no lane overwrites
              // z_y (with_grad) before every lane has read it
              const R zy = logits(i, y);
              R m = zy;
              Kokkos::parallel_reduce(
                  Kokkos::ThreadVectorRange(t, V),
                  [&](int v, R& mx) { mx = logits(i, v) > mx ? logits(i, v) : mx; }, Kokkos::Max<R>(m));
              R se = 0;
              Kokkos::parallel_reduce(
                  Kokkos::ThreadVectorRange(t, V),
                  [&](int v, R& acc2) { acc2 += kmath::exp(logits(i, v) - m); }, se);
              // every lane adds: Kokkos' team reduction expects all lanes of a thread to hold the same value
              row_sum += double(m + kmath::log(se) - zy);
              if (with_grad) {
                const R inv_s = R(1) / se, inv_n = R(1) / R(N);
                Kokkos::parallel_for(Kokkos::ThreadVectorRange(t, V), [&](int v) {
                  logits(i, v) = (kmath::exp(logits(i, v) - m) * inv_s - (v == y ? R(1) : R(0))) * inv_n;
                });
              }
            },
            team_loss);
        Kokkos::single(Kokkos::PerTeam(t), [&] { acc += team_loss; });
      },
      total);
  return total / double(N);
}

}  // namespace wavres::device
