// Device bodies of the depth mixer (routing/mixer.hpp has the math; routing/device_team.hpp the shape
// helpers and the lane rules). Each body launches the CUDA shape its `*_launch` function returns.
//   forward, 1/ρ:  team = 128/lanes token rows; thread = one row; lanes = d.
//   backward:      team = one of row_chunks_v<Exec> (1024) row chunks; thread = a slot of the chunk's rows;
//                  lanes = d. The chunk's query/key-gain partial is per slot in team scratch (no atomics),
//                  summed in slot order; chunk_column_sums then adds the 1024 chunk partials.
// The forward is one pass over the sources with an online softmax (h rescaled when the maximum grows), so
// that no thread keeps an array of n scores: the raw scores wait in α (written and re-read by one lane).
#pragma once
#include "wavres/routing/device_team.hpp"
#include "wavres/routing/mixer.hpp"

namespace wavres::device {

using routing_device::lane_sum;
using routing_device::Member;

inline LaunchShape mixer_forward_launch(int64_t N, int64_t D) {
  return routing_device::row_launch(N, D);
}
inline LaunchShape source_rinv_launch(int64_t N, int64_t D) {
  return routing_device::row_launch(N, D);
}
// C = row_chunks_v<Exec> chunks (1024 on a device); team = the chunk's slots.
template <class R>
LaunchShape mixer_backward_launch(int64_t N, int64_t D, int64_t C) {
  return routing_device::chunk_launch<R>(N, D, C);
}

template <class R, class Exec>
void mixer_forward(const MixerForwardArgs<R, Exec>& args) {
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto w = args.w, g = args.g, beta = args.beta;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
  const int64_t N = h.extent(0);
  const int D = int(h.extent(1)), start = args.src.start, n = args.src.n;
  const bool has_beta = beta.extent(0) > 0;
  const LaunchShape shape = mixer_forward_launch(N, D);
  const int rows = shape.team;
  Kokkos::parallel_for(
      "mixer_forward[device]", team_policy<Exec>(shape), KOKKOS_LAMBDA(const Member<Exec>& team) {
        routing_device::for_team_rows<Exec>(team, N, rows, [&](int64_t i) {
          R m = 0, l = 0;  // running max and Σ e^{s−m}; h holds Σ e^{s−m} v so far
          for (int j = 0; j < n; ++j) {
            const int sj = slot(start + j), k = kind(start + j);
            const R s = lane_sum<R, Exec>(team, D, [&](int d) { return w(d) * g(d) * bank(sj, i, d); }) *
                            rinv(sj, i) +
                        (has_beta && k > 0 ? beta(k - 1) : R(0));
            Kokkos::single(Kokkos::PerThread(team), [&]() { alpha(start + j, i) = s; });
            const R mm = j == 0 || s > m ? s : m;
            const R f = j == 0 ? R(0) : kmath::exp(m - mm), e = kmath::exp(s - mm);
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
              h(i, d) = (j == 0 ? R(0) : f * h(i, d)) + e * bank(sj, i, d);
            });
            l = f * l + e;
            m = mm;
          }
          const R inv = R(1) / l;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) { h(i, d) *= inv; });
          Kokkos::single(Kokkos::PerThread(team), [&]() {
            for (int j = 0; j < n; ++j) alpha(start + j, i) = kmath::exp(alpha(start + j, i) - m) * inv;
          });
        });
      });
}

template <class R, class Exec>
void mixer_param_grads(Vec<R, Exec> dw, Vec<R, Exec> dg, View2<const R, Exec> r_part, Vec<const R, Exec> w,
                       Vec<const R, Exec> g) {
  routing_device::chunk_column_sums<R, Exec>(
      "mixer_backward_params[device]", Mat<const R, Exec>(r_part.data(), r_part.extent(0), r_part.extent(1)),
      int64_t(w.extent(0)), KOKKOS_LAMBDA(int64_t d, R sum) {
        dw(d) += g(d) * sum;
        dg(d) += w(d) * sum;
      });
}

template <class R, class Exec>
void mixer_backward(const MixerBackwardArgs<R, Exec>& args) {
  using Scratch2 = routing_device::Scratch2<R, Exec>;
  auto dbank = args.dbank;
  auto dbeta = args.grads.dbeta;
  auto r_part = args.r_part;
  auto k_part = args.k_part;
  auto G = args.G;
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto w = args.w, g = args.g;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
  const FirstWrite first = args.first;
  constexpr int C = row_chunks_v<Exec>;
  const int64_t N = h.extent(0);
  const int D = int(h.extent(1)), start = args.src.start, n = args.src.n;
  const bool has_beta = dbeta.extent(0) > 0;
  const int P = routing_device::chunk_slots(N, C, int64_t(D) * sizeof(R));
  Kokkos::parallel_for(
      "mixer_backward[device]",
      team_policy<Exec>(mixer_backward_launch<R>(N, D, C),
                        Scratch2::shmem_size(P, D) + Scratch2::shmem_size(P, 2)),
      KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int c = team.league_rank();
        const int64_t i0 = N * c / C, i1 = N * (c + 1) / C;
        Scratch2 rp(team.team_scratch(0), P, D), kp(team.team_scratch(0), P, 2);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, P), [&](int q) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) { rp(q, d) = 0; });
          R k1 = 0, k2 = 0;
          for (int64_t i = i0 + q; i < i1; i += P) {
            const R gh = lane_sum<R, Exec>(team, D, [&](int d) { return G(i, d) * h(i, d); });
            for (int j = 0; j < n; ++j) {
              const int sj = slot(start + j);
              const R gv = lane_sum<R, Exec>(team, D, [&](int d) { return G(i, d) * bank(sj, i, d); });
              const R qv = lane_sum<R, Exec>(team, D, [&](int d) { return w(d) * g(d) * bank(sj, i, d); });
              const R a = alpha(start + j, i);
              const MixerGradCoeffs<R> cf = mixer_grad_coeffs(a, gv, gh, qv, rinv(sj, i), int64_t(D));
              const bool assign = first == FirstWrite::all || (first == FirstWrite::last && j == n - 1);
              Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
                const R v = bank(sj, i, d);
                const R t = a * G(i, d) + cf.c1 * w(d) * g(d) - cf.c2 * v;
                dbank(sj, i, d) = assign ? t : dbank(sj, i, d) + t;
                rp(q, d) += cf.c1 * v;
              });
              const int k = kind(start + j);
              if (k == 1) k1 += cf.delta;
              if (k == 2) k2 += cf.delta;
            }
          }
          Kokkos::single(Kokkos::PerThread(team), [&]() { kp(q, 0) = k1, kp(q, 1) = k2; });
        });
        team.team_barrier();  // every slot's partial is in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, D), [&](int d) {
          R s = 0;
          for (int q = 0; q < P; ++q) s += rp(q, d);
          r_part(c, d) = s;
        });
        if (has_beta)
          Kokkos::single(Kokkos::PerTeam(team), [&]() {
            R s1 = 0, s2 = 0;
            for (int q = 0; q < P; ++q) s1 += kp(q, 0), s2 += kp(q, 1);
            k_part(c, 0) = s1, k_part(c, 1) = s2;
          });
      });
  mixer_param_grads<R, Exec>(args.grads.dw, args.grads.dg, r_part, w, g);
  if (has_beta)
    routing_device::chunk_column_sums<R, Exec>(
        "mixer_backward_beta[device]", Mat<const R, Exec>(k_part.data(), k_part.extent(0), k_part.extent(1)),
        2, KOKKOS_LAMBDA(int64_t k, R sum) { dbeta(k) += sum; });
}

template <class R, class Exec>
void source_rinv(View2<R, Exec> rinv, View3<const R, Exec> bank, int slot) {
  const int64_t N = bank.extent(1);
  const int D = int(bank.extent(2));
  const LaunchShape shape = source_rinv_launch(N, D);
  const int rows = shape.team;
  Kokkos::parallel_for(
      "source_rinv[device]", team_policy<Exec>(shape), KOKKOS_LAMBDA(const Member<Exec>& team) {
        routing_device::for_team_rows<Exec>(team, N, rows, [&](int64_t i) {
          const R ss = lane_sum<R, Exec>(team, D, [&](int d) { return bank(slot, i, d) * bank(slot, i, d); });
          Kokkos::single(Kokkos::PerThread(team),
                         [&]() { rinv(slot, i) = R(1) / kmath::sqrt(ss / R(D) + R(1e-6)); });
        });
      });
}

}  // namespace wavres::device
