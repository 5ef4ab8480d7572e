// RMSNorm, device body. Included by ops/rmsnorm.hpp, whose math comment it implements.
//
// Forward: team = kRowsPerTeam token rows; thread = one row; lanes = d. A warp reads one row's consecutive
// values (coalesced), reduces Σ x² across its lanes and writes y.
// Backward: team = one row chunk of N / kDeviceRowChunks rows (4 at the benchmark shape); thread = one row of
// the chunk for its dot product over d (lanes = d), kept in team scratch; then thread × lane = one column d,
// which walks the chunk's rows in order, writes dx and sums its dg partial. 1024 chunks × 256 threads fill a
// GPU, and each column's partial is a serial sum in row order: the same bits on any team size.
#pragma once
#include <stdexcept>
#include <string>
#include "wavres/core/column_sum.hpp"
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::device {

inline LaunchShape rmsnorm_forward_launch(int64_t N) {
  return {ceil_div(N, kRowsPerTeam), kRowsPerTeam, kRowLanes};
}
inline LaunchShape rmsnorm_backward_launch() {
  return {kDeviceRowChunks, kRowsPerTeam, kRowLanes};
}
// The per-row coefficients of a chunk live in team scratch: at most this many rows per chunk (N ≤ 2M rows; 16
// KiB in double).
constexpr int64_t kRmsMaxChunkRows = 2048;

template <class R, class Exec>
void rmsnorm_forward(Mat<R, Exec> y, Vec<R, Exec> rstd, Mat<const R, Exec> x, Vec<const R, Exec> g) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  const int64_t N = x.extent(0);
  const int D = int(x.extent(1));
  const LaunchShape s = rmsnorm_forward_launch(N);
  const int rows = s.team;
  Kokkos::parallel_for(
      "rmsnorm_forward[device]", team_policy<Exec>(s), KOKKOS_LAMBDA(const Member& t) {
        Kokkos::parallel_for(Kokkos::TeamThreadRange(t, rows), [&](int k) {
          const int64_t i = int64_t(t.league_rank()) * rows + k;
          if (i >= N) return;
          R ss = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(t, D), [&](int d, R& acc) { acc += x(i, d) * x(i, d); }, ss);
          const R r = R(1) / kmath::sqrt(ss / R(D) + R(kRmsEps));
          Kokkos::single(Kokkos::PerThread(t), [&] { rstd(i) = r; });
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(t, D), [&](int d) { y(i, d) = g(d) * x(i, d) * r; });
        });
      });
}

template <class R, class Exec>
void rmsnorm_backward(const RmsNormBackwardArgs<R, Exec>& a) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  using Scratch = Kokkos::View<R*, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;
  const auto dx = a.dx;
  const auto dy = a.dy;
  const auto x = a.x;
  const auto rstd = a.rstd;
  const auto g = a.g;
  const bool accumulate = a.accumulate;
  const int64_t N = x.extent(0);
  const int D = int(x.extent(1));
  constexpr int64_t C = kDeviceRowChunks;
  auto partial = a.partial;
  if (partial.extent(0) < size_t(C) || partial.extent(1) < size_t(D))
    partial = View2<R, Exec>("rmsnorm_partial", C, D);
  const int64_t max_rows = ceil_div(N, C);
  if (max_rows > kRmsMaxChunkRows)
    throw std::invalid_argument("rmsnorm_backward: " + std::to_string(N) + " rows exceed the device body's " +
                                std::to_string(C * kRmsMaxChunkRows));
  Kokkos::parallel_for(
      "rmsnorm_backward[device]", team_policy<Exec>(rmsnorm_backward_launch(), Scratch::shmem_size(max_rows)),
      KOKKOS_LAMBDA(const Member& t) {
        const int64_t c = t.league_rank(), i0 = N * c / C, n = N * (c + 1) / C - i0;
        Scratch coef(t.team_scratch(0), max_rows);  // coef[k] = mean_d(g⊙dy⊙x̂)·r for row i0 + k
        Kokkos::parallel_for(Kokkos::TeamThreadRange(t, n), [&](int64_t k) {
          const int64_t i = i0 + k;
          R dot = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(t, D), [&](int d, R& acc) { acc += g(d) * dy(i, d) * x(i, d); }, dot);
          const R r = rstd(i);
          Kokkos::single(Kokkos::PerThread(t), [&] { coef(k) = dot * r * r / R(D); });
        });
        t.team_barrier();  // every row's coefficient is in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(t, D), [&](int d) {
          R part = 0;
          for (int64_t k = 0; k < n; ++k) {
            const int64_t i = i0 + k;
            const R r = rstd(i);
            const R v = r * (g(d) * dy(i, d) - x(i, d) * coef(k));
            dx(i, d) = accumulate ? dx(i, d) + v : v;
            part += dy(i, d) * x(i, d) * r;
          }
          partial(c, d) = part;
        });
      });
  column_sum<R, Exec>("rmsnorm_backward_dg[device]", a.dg, partial, C, D);
}

}  // namespace wavres::device
