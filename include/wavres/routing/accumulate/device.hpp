// Device bodies of the block accumulation (routing/accumulate.hpp has the math; routing/device_team.hpp the
// shape helpers and the lane rules). Each body launches the CUDA shape its `*_launch` function returns.
//   forward, WAV details:  team = 128/lanes token rows; thread = one row; lanes = d (1/ρ and κ need a row
//                          sum). wav_details keeps π_d, σ_d of its lane in registers over the S partials.
//   backward (suffix sum, last update): elementwise, a flat range over all N·D elements.
#pragma once
#include "wavres/routing/accumulate.hpp"
#include "wavres/routing/device_team.hpp"

namespace wavres::device {

using routing_device::lane_sum;
using routing_device::Member;

inline LaunchShape block_accumulate_forward_launch(int64_t N, int64_t D) {
  return routing_device::row_launch(N, D);
}
inline LaunchShape wav_details_forward_launch(int64_t N, int64_t D) {
  return routing_device::row_launch(N, D);
}
// The elementwise backward kernels: a flat range over the N·D elements.
inline LaunchShape block_accumulate_backward_launch(int64_t N, int64_t D) {
  return {N * D, 1, 1};
}
inline LaunchShape block_last_update_backward_launch(int64_t N, int64_t D) {
  return {N * D, 1, 1};
}

template <class R, class Exec>
void block_accumulate_forward(View3<R, Exec> bank, View2<R, Exec> rinv, int out, int prev,
                              Mat<const R, Exec> y) {
  const int64_t N = y.extent(0);
  const int D = int(y.extent(1));
  const bool first = prev < 0;
  const LaunchShape shape = block_accumulate_forward_launch(N, D);
  const int rows = shape.team;
  Kokkos::parallel_for(
      "block_accumulate_forward[device]", team_policy<Exec>(shape), KOKKOS_LAMBDA(const Member<Exec>& team) {
        routing_device::for_team_rows<Exec>(team, N, rows, [&](int64_t i) {
          R ss = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, D),
              [&](int d, R& acc) {
                const R v = (first ? R(0) : bank(prev, i, d)) + y(i, d);
                bank(out, i, d) = v;
                acc += v * v;
              },
              ss);
          Kokkos::single(Kokkos::PerThread(team),
                         [&]() { rinv(out, i) = R(1) / kmath::sqrt(ss / R(D) + R(1e-6)); });
        });
      });
}

template <class R, class Exec>
void wav_details_forward(View3<R, Exec> bank, View2<R, Exec> rinv, Mat<R, Exec> kappa, int first, int S,
                         int phase_slot, int split_slot, bool frozen_kappa) {
  const int64_t N = bank.extent(1);
  const int D = int(bank.extent(2));
  const LaunchShape shape = wav_details_forward_launch(N, D);
  const int rows = shape.team;
  Kokkos::parallel_for(
      "wav_details_forward[device]", team_policy<Exec>(shape), KOKKOS_LAMBDA(const Member<Exec>& team) {
        routing_device::for_team_rows<Exec>(team, N, rows, [&](int64_t i) {
          // π, σ: the signed sums of y_k = b^k − b^{k−1}, in the host's order (k ascending)
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
            R ph = 0, sp = 0;
            for (int k = 1; k <= S; ++k) {
              const R y = k > 1 ? bank(first + k - 1, i, d) - bank(first + k - 2, i, d) : bank(first, i, d);
              ph = (k > 1 ? ph : R(0)) + R(phase_sign(k)) * y;
              sp = (k > 1 ? sp : R(0)) + R(split_sign(k, S)) * y;
            }
            bank(phase_slot, i, d) = ph;
            bank(split_slot, i, d) = sp;
          });
          const R sb = lane_sum<R, Exec>(
              team, D, [&](int d) { return bank(first + S - 1, i, d) * bank(first + S - 1, i, d); });
          const R spp = lane_sum<R, Exec>(
              team, D, [&](int d) { return bank(phase_slot, i, d) * bank(phase_slot, i, d); });
          const R ss = lane_sum<R, Exec>(
              team, D, [&](int d) { return bank(split_slot, i, d) * bank(split_slot, i, d); });
          const R rb = kmath::sqrt(sb / R(D) + R(1e-6));
          const R kp = frozen_kappa ? kappa(0, i) : rb / kmath::sqrt(spp / R(D) + R(1e-6));
          const R ks = frozen_kappa ? kappa(1, i) : rb / kmath::sqrt(ss / R(D) + R(1e-6));
          Kokkos::single(Kokkos::PerThread(team), [&]() { kappa(0, i) = kp, kappa(1, i) = ks; });
          R tp = 0, ts = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, D),
              [&](int d, R& acc) {
                const R p = kp * bank(phase_slot, i, d);
                bank(phase_slot, i, d) = p;
                acc += p * p;
              },
              tp);
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, D),
              [&](int d, R& acc) {
                const R s = ks * bank(split_slot, i, d);
                bank(split_slot, i, d) = s;
                acc += s * s;
              },
              ts);
          Kokkos::single(Kokkos::PerThread(team), [&]() {
            rinv(phase_slot, i) = R(1) / kmath::sqrt(tp / R(D) + R(1e-6));
            rinv(split_slot, i) = R(1) / kmath::sqrt(ts / R(D) + R(1e-6));
          });
        });
      });
}

template <class R, class Exec>
void block_accumulate_backward(Mat<R, Exec> dy, Mat<R, Exec> acc, View3<const R, Exec> dbank, int slot,
                               bool last, const DetailGrads<R, Exec>& details, R cp, R cs) {
  const int64_t D = acc.extent(1);
  const int phase_slot = details.phase_slot, split_slot = details.split_slot;
  auto kappa = details.kappa;
  const bool wav = phase_slot >= 0;
  Kokkos::parallel_for(
      "block_accumulate_backward[device]",
      Range<Exec>(0, block_accumulate_backward_launch(acc.extent(0), D).league), KOKKOS_LAMBDA(int64_t k) {
        const int64_t i = k / D, d = k % D;
        const R a = (last ? R(0) : acc(i, d)) + dbank(slot, i, d);
        acc(i, d) = a;
        if (wav)
          dy(i, d) =
              a + cp * kappa(0, i) * dbank(phase_slot, i, d) + cs * kappa(1, i) * dbank(split_slot, i, d);
      });
}

template <class R, class Exec>
void block_last_update_backward(Mat<R, Exec> dy, View3<const R, Exec> dbank, int slot,
                                const DetailGrads<R, Exec>& details, R cp, R cs) {
  const int64_t D = dy.extent(1);
  const int phase_slot = details.phase_slot, split_slot = details.split_slot;
  auto kappa = details.kappa;
  const bool wav = phase_slot >= 0;
  Kokkos::parallel_for(
      "block_last_update_backward[device]",
      Range<Exec>(0, block_last_update_backward_launch(dy.extent(0), D).league), KOKKOS_LAMBDA(int64_t k) {
        const int64_t i = k / D, d = k % D;
        dy(i, d) = wav ? dbank(slot, i, d) + cp * kappa(0, i) * dbank(phase_slot, i, d) +
                             cs * kappa(1, i) * dbank(split_slot, i, d)
                       : dbank(slot, i, d);
      });
}

}  // namespace wavres::device
