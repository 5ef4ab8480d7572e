// Device bodies of the two-phase block mixer (routing/two_phase.hpp has the math; routing/device_team.hpp
// the shape helpers and the lane rules). Each body launches the CUDA shape its `*_launch` function returns.
//   phase 1:            team = one token row; thread = one of the block's S consumers; lanes = d. Each
//                       (row, consumer) is independent: an online softmax over C_n that keeps m_p, l_p in
//                       registers and a_p in its output row (no per-thread arrays of S or nc entries).
//   merge:              team = 128/lanes token rows; thread = one row; lanes = d.
//   partial backward:   team = one of row_chunks_v<Exec> row chunks; thread = a slot of the chunk's rows;
//                       lanes = d; the query/key-gain partial per slot in team scratch, summed in slot order.
//   completed backward: team = one row chunk, walked row by row; per row, thread = consumer p (its δ, c1, c2
//                       for every completed source into team scratch, its r_p partial in r_part(c, p, :)),
//                       then, after a barrier, thread = completed source j (∂v_j from all S consumers, in
//                       consumer order), so that ∂v_j is written by one thread and no atomics are needed.
#pragma once
#include "wavres/routing/device_team.hpp"
#include "wavres/routing/two_phase.hpp"

namespace wavres::device {

using routing_device::lane_sum;
using routing_device::Member;

// A team per token row, a thread per consumer (S ≤ 8 at 32 lanes; a TeamThreadRange loops over more).
inline LaunchShape mixer_block_phase1_launch(int64_t N, int S, int64_t D) {
  return routing_device::team_launch(N, S, D);
}
inline LaunchShape mixer_block_merge_launch(int64_t N, int64_t D) {
  return routing_device::row_launch(N, D);
}
// C = row_chunks_v<Exec> chunks (1024 on a device); team = the chunk's slots.
template <class R>
LaunchShape mixer_block_partial_backward_launch(int64_t N, int64_t D, int64_t C) {
  return routing_device::chunk_launch<R>(N, D, C);
}
// A team per row chunk; its threads are the S consumers, then the nc completed sources.
inline LaunchShape mixer_block_backward_launch(int64_t C, int S, int nc, int64_t D) {
  return routing_device::team_launch(C, S > nc ? S : nc, D);
}

template <class R, class Exec>
void mixer_block_phase1(const MixerBlockPhase1Args<R, Exec>& args) {
  auto apart = args.part.apart;
  auto mpart = args.part.mpart;
  auto lpart = args.part.lpart;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
  auto starts = args.src.starts;
  auto qhat = args.qhat;
  auto beta = args.beta;
  const int soff = args.src.soff, S = args.src.S, nc = args.src.nc;
  const int D = int(bank.extent(2));
  const bool has_beta = beta.data() != nullptr;
  Kokkos::parallel_for(
      "mixer_block_phase1[device]", team_policy<Exec>(mixer_block_phase1_launch(bank.extent(1), S, D)),
      KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int64_t i = team.league_rank();
        const int s0 = starts(soff);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S), [&](int p) {
          const int e0 = starts(soff + p);
          R m = 0, l = 0;  // running max and Σ e^{s−m}; apart(p, i, :) holds Σ e^{s−m} v so far
          for (int j = 0; j < nc; ++j) {
            const int sj = slot(s0 + j), kj = kind(s0 + j);
            const R s =
                lane_sum<R, Exec>(team, D, [&](int d) { return qhat(p, d) * bank(sj, i, d); }) * rinv(sj, i) +
                (has_beta && kj > 0 ? beta(p, kj - 1) : R(0));
            Kokkos::single(Kokkos::PerThread(team), [&]() { alpha(e0 + j, i) = s; });
            const R mm = j == 0 || s > m ? s : m;
            const R f = j == 0 ? R(0) : kmath::exp(m - mm), e = kmath::exp(s - mm);
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
              apart(p, i, d) = (j == 0 ? R(0) : f * apart(p, i, d)) + e * bank(sj, i, d);
            });
            l = f * l + e;
            m = mm;
          }
          Kokkos::single(Kokkos::PerThread(team), [&]() {
            for (int j = 0; j < nc; ++j) alpha(e0 + j, i) = kmath::exp(alpha(e0 + j, i) - m);
            mpart(p, i) = m;
            lpart(p, i) = l;
          });
        });
      });
}

template <class R, class Exec>
void mixer_block_merge(const MixerBlockMergeArgs<R, Exec>& args) {
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto apart = args.part.apart;
  auto mpart = args.part.mpart;
  auto lpart = args.part.lpart;
  auto qhat = args.qhat;
  const int p = args.p, start = args.start, nc = args.nc, partial_slot = args.partial_slot;
  const int64_t N = h.extent(0);
  const int D = int(h.extent(1));
  const LaunchShape shape = mixer_block_merge_launch(N, D);
  const int rows = shape.team;
  Kokkos::parallel_for(
      "mixer_block_merge[device]", team_policy<Exec>(shape), KOKKOS_LAMBDA(const Member<Exec>& team) {
        routing_device::for_team_rows<Exec>(team, N, rows, [&](int64_t i) {
          const R m = mpart(p, i), l = lpart(p, i);
          R f = 1, e = 0, L = l;
          if (partial_slot >= 0) {
            const R s =
                lane_sum<R, Exec>(team, D, [&](int d) { return qhat(p, d) * bank(partial_slot, i, d); }) *
                rinv(partial_slot, i);
            const R mm = s > m ? s : m;
            f = kmath::exp(m - mm);
            e = kmath::exp(s - mm);
            L = f * l + e;
          }
          const R inv = R(1) / L, fa = f * inv, ea = e * inv;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
            h(i, d) = fa * apart(p, i, d) + (partial_slot >= 0 ? ea * bank(partial_slot, i, d) : R(0));
          });
          // α of the completed sources was written by phase 1 (an earlier kernel): any lane may scale it
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, nc),
                               [&](int j) { alpha(start + j, i) *= fa; });
          if (partial_slot >= 0)
            Kokkos::single(Kokkos::PerThread(team), [&]() { alpha(start + nc, i) = ea; });
        });
      });
}

template <class R, class Exec>
void mixer_block_partial_backward(const MixerBlockPartialBackwardArgs<R, Exec>& args) {
  using Scratch2 = routing_device::Scratch2<R, Exec>;
  auto dy = args.dy;
  auto r_part = args.r_part;
  auto G = args.G;
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto w = args.w, g = args.g;
  auto dbank = args.dbank;
  auto kappa = args.details.kappa;
  const int entry = args.entry, pslot = args.pslot;
  const int phase_slot = args.details.phase_slot, split_slot = args.details.split_slot;
  const R tp = args.tp, ts = args.ts;
  constexpr int C = row_chunks_v<Exec>;
  const int64_t N = h.extent(0);
  const int D = int(h.extent(1));
  const bool wav = phase_slot >= 0, with_split = wav && ts != R(0);
  const int P = routing_device::chunk_slots(N, C, int64_t(D) * sizeof(R));
  Kokkos::parallel_for(
      "mixer_block_partial_backward[device]",
      team_policy<Exec>(mixer_block_partial_backward_launch<R>(N, D, C), Scratch2::shmem_size(P, D)),
      KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int c = team.league_rank();
        const int64_t i0 = N * c / C, i1 = N * (c + 1) / C;
        Scratch2 rp(team.team_scratch(0), P, D);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, P), [&](int q) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) { rp(q, d) = 0; });
          for (int64_t i = i0 + q; i < i1; i += P) {
            const R gh = lane_sum<R, Exec>(team, D, [&](int d) { return G(i, d) * h(i, d); });
            const R gv = lane_sum<R, Exec>(team, D, [&](int d) { return G(i, d) * bank(pslot, i, d); });
            const R qv = lane_sum<R, Exec>(team, D, [&](int d) { return w(d) * g(d) * bank(pslot, i, d); });
            const R a = alpha(entry, i);
            const MixerGradCoeffs<R> cf = mixer_grad_coeffs(a, gv, gh, qv, rinv(pslot, i), int64_t(D));
            const R kp = wav ? tp * kappa(0, i) : R(0), ks = with_split ? ts * kappa(1, i) : R(0);
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
              const R v = bank(pslot, i, d);
              R t = a * G(i, d) + cf.c1 * w(d) * g(d) - cf.c2 * v;
              if (wav) t += kp * dbank(phase_slot, i, d);
              if (with_split) t += ks * dbank(split_slot, i, d);
              dy(i, d) += t;
              rp(q, d) += cf.c1 * v;
            });
          }
        });
        team.team_barrier();  // every slot's partial is in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, D), [&](int d) {
          R s = 0;
          for (int q = 0; q < P; ++q) s += rp(q, d);
          r_part(c, d) = s;
        });
      });
  mixer_param_grads<R, Exec>(args.grads.dw, args.grads.dg, r_part, w, g);
}

template <class R, class Exec>
void mixer_block_backward_completed(const MixerBlockBackwardArgs<R, Exec>& args) {
  using Scratch2 = routing_device::Scratch2<R, Exec>;
  auto dbank = args.dbank;
  auto dW = args.grads.dW, dG = args.grads.dG, dbeta = args.grads.dbeta;
  auto r_part = args.r_part;
  auto k_part = args.k_part;
  auto gsave = args.gsave;
  auto hs = args.hs;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
  auto starts = args.src.starts;
  auto qhat = args.qhat, w = args.w, g = args.g;
  const int soff = args.src.soff, S = args.src.S, nc = args.src.nc;
  constexpr int C = row_chunks_v<Exec>;
  const int64_t N = bank.extent(1);
  const int D = int(bank.extent(2));
  const bool has_beta = dbeta.data() != nullptr;
  Kokkos::parallel_for(
      "mixer_block_backward[device]",
      team_policy<Exec>(mixer_block_backward_launch(C, S, nc, D), Scratch2::shmem_size(int64_t(S) * nc, 3)),
      KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int c = team.league_rank();
        const int64_t i0 = N * c / C, i1 = N * (c + 1) / C;
        const int s0 = starts(soff);
        Scratch2 coef(team.team_scratch(0), int64_t(S) * nc, 3);  // (α, c1, c2) of (p, j) for the current row
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S), [&](int p) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) { r_part(c, p, d) = 0; });
          Kokkos::single(Kokkos::PerThread(team), [&]() { k_part(c, p, 0) = k_part(c, p, 1) = 0; });
        });
        team.team_barrier();
        for (int64_t i = i0; i < i1; ++i) {
          // consumers: the coefficients of every completed source, r_p and the detail-bias partials
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S), [&](int p) {
            const R gh = lane_sum<R, Exec>(team, D, [&](int d) { return gsave(p, i, d) * hs(p, i, d); });
            R k1 = 0, k2 = 0;
            for (int j = 0; j < nc; ++j) {
              const int sj = slot(s0 + j), kj = kind(s0 + j);
              const R gv = lane_sum<R, Exec>(team, D, [&](int d) { return gsave(p, i, d) * bank(sj, i, d); });
              const R qv = lane_sum<R, Exec>(team, D, [&](int d) { return qhat(p, d) * bank(sj, i, d); });
              const R a = alpha(starts(soff + p) + j, i);
              const MixerGradCoeffs<R> cf = mixer_grad_coeffs(a, gv, gh, qv, rinv(sj, i), int64_t(D));
              Kokkos::single(Kokkos::PerThread(team), [&]() {
                coef(p * nc + j, 0) = a;
                coef(p * nc + j, 1) = cf.c1;
                coef(p * nc + j, 2) = cf.c2;
              });
              Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D),
                                   [&](int d) { r_part(c, p, d) += cf.c1 * bank(sj, i, d); });
              if (kj == 1) k1 += cf.delta;
              if (kj == 2) k2 += cf.delta;
            }
            Kokkos::single(Kokkos::PerThread(team), [&]() { k_part(c, p, 0) += k1, k_part(c, p, 1) += k2; });
          });
          team.team_barrier();  // every consumer's coefficients for row i are in scratch
          // sources: ∂v_j += Σ_p (α_pj G_p + c1_pj q̂_p) − (Σ_p c2_pj) v_j, consumers in order
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nc), [&](int j) {
            const int sj = slot(s0 + j);
            R c2sum = 0;
            for (int p = 0; p < S; ++p) c2sum += coef(p * nc + j, 2);
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](int d) {
              R t = 0;
              for (int p = 0; p < S; ++p)
                t += coef(p * nc + j, 0) * gsave(p, i, d) + coef(p * nc + j, 1) * qhat(p, d);
              dbank(sj, i, d) += t - c2sum * bank(sj, i, d);
            });
          });
          team.team_barrier();  // the next row reuses the scratch
        }
      });
  const int64_t SD = int64_t(S) * D;
  routing_device::chunk_column_sums<R, Exec>(
      "mixer_block_backward_params[device]", Mat<const R, Exec>(r_part.data(), r_part.extent(0), SD), SD,
      KOKKOS_LAMBDA(int64_t k, R sum) {
        const int p = int(k / D), d = int(k % D);
        dW(p, d) += g(p, d) * sum;
        dG(p, d) += w(p, d) * sum;
      });
  if (has_beta)
    routing_device::chunk_column_sums<R, Exec>(
        "mixer_block_backward_beta[device]",
        Mat<const R, Exec>(k_part.data(), k_part.extent(0), 2 * int64_t(S)), 2 * int64_t(S),
        KOKKOS_LAMBDA(int64_t k, R sum) { dbeta(k / 2, k % 2) += sum; });
}

}  // namespace wavres::device
