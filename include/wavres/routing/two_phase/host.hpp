// Host bodies of the two-phase block mixer (routing/two_phase.hpp has the math): one thread per token row
// (phase 1, merge) or per row chunk (backward, kRowChunks = 64), each row's D features in one vectorised
// loop; per-consumer state of a row in small per-thread arrays (S ≤ kMaxBlockSublayers).
#pragma once
#include "wavres/routing/two_phase.hpp"

namespace wavres::host {

// The block passes stream one 4·D-byte row from each of up to ~20 bank slots per token; the hardware
// prefetchers lose such streams at every 4 KiB boundary, so the host asks for the next token's rows ahead
// (measured: phase 1 ~5 % faster at l12; the backward pass, which also writes ∂v, got slower with it).
template <class R>
KOKKOS_INLINE_FUNCTION void prefetch_row(const R* row, int64_t D) {
#if !defined(KOKKOS_ENABLE_CUDA) && defined(__GNUC__)
  const char* c = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < D * int64_t(sizeof(R)); b += 64) __builtin_prefetch(c + b);
#else
  (void)row, (void)D;
#endif
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
  const int64_t D = bank.extent(2);
  const bool has_beta = beta.data() != nullptr;
  Kokkos::parallel_for(
      "mixer_block_phase1", Range<Exec>(0, bank.extent(1)), KOKKOS_LAMBDA(int64_t i) {
        R m[kMaxBlockSublayers], l[kMaxBlockSublayers];
        for (int p = 0; p < S; ++p) m[p] = R(-1e30), l[p] = 0;
        const int s0 = starts(soff);
        if (i + 1 < int64_t(bank.extent(1)))
          for (int j = 0; j < nc; ++j) prefetch_row(&bank(slot(s0 + j), i + 1, 0), D);
        for (int j = 0; j < nc; ++j) {
          const int sj = slot(s0 + j), kj = kind(s0 + j);
          const R ri = rinv(sj, i);
          const R* KOKKOS_RESTRICT v = &bank(sj, i, 0);
          for (int p = 0; p < S; ++p) {
            const R* KOKKOS_RESTRICT q = &qhat(p, 0);
            R dot = 0;
            WAVRES_SIMD_SUM(dot)
            for (int64_t d = 0; d < D; ++d) dot += q[d] * v[d];
            const R s = dot * ri + (has_beta && kj > 0 ? beta(p, kj - 1) : R(0));
            alpha(starts(soff + p) + j, i) = s;
            m[p] = s > m[p] ? s : m[p];
          }
        }
        for (int p = 0; p < S; ++p) {
          for (int j = 0; j < nc; ++j) {
            const R e = kmath::exp(alpha(starts(soff + p) + j, i) - m[p]);
            alpha(starts(soff + p) + j, i) = e;
            l[p] += e;
          }
          mpart(p, i) = m[p];
          lpart(p, i) = l[p];
        }
        for (int p = 0; p < S; ++p) {
          R* KOKKOS_RESTRICT a = &apart(p, i, 0);
          for (int64_t d = 0; d < D; ++d) a[d] = 0;
          for (int j = 0; j < nc; ++j) {
            const R e = alpha(starts(soff + p) + j, i);
            const R* KOKKOS_RESTRICT v = &bank(slot(s0 + j), i, 0);
            for (int64_t d = 0; d < D; ++d) a[d] += e * v[d];
          }
        }
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
  const int64_t D = h.extent(1);
  Kokkos::parallel_for(
      "mixer_block_merge", Range<Exec>(0, h.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        const R m = mpart(p, i), l = lpart(p, i);
        R f = 1, e = 0, L = l;
        if (partial_slot >= 0) {
          R dot = 0;
          WAVRES_SIMD_SUM(dot)
          for (int64_t d = 0; d < D; ++d) dot += qhat(p, d) * bank(partial_slot, i, d);
          const R s = dot * rinv(partial_slot, i);
          const R mm = s > m ? s : m;
          f = kmath::exp(m - mm);
          e = kmath::exp(s - mm);
          L = f * l + e;
        }
        const R inv = R(1) / L, fa = f * inv, ea = e * inv;
        R* KOKKOS_RESTRICT hr = &h(i, 0);
        const R* KOKKOS_RESTRICT a = &apart(p, i, 0);
        if (partial_slot >= 0) {
          const R* KOKKOS_RESTRICT v = &bank(partial_slot, i, 0);
          for (int64_t d = 0; d < D; ++d) hr[d] = fa * a[d] + ea * v[d];
        } else {
          for (int64_t d = 0; d < D; ++d) hr[d] = fa * a[d];
        }
        for (int j = 0; j < nc; ++j) alpha(start + j, i) *= fa;
        if (partial_slot >= 0) alpha(start + nc, i) = ea;
      });
}

template <class R, class Exec>
void mixer_block_partial_backward(const MixerBlockPartialBackwardArgs<R, Exec>& args) {
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
  const int64_t N = h.extent(0), D = h.extent(1);
  const bool wav = phase_slot >= 0, with_split = wav && ts != R(0);
  Kokkos::parallel_for(
      "mixer_block_partial_backward", Range<Exec>(0, kRowChunks), KOKKOS_LAMBDA(int64_t c) {
        R* KOKKOS_RESTRICT r = &r_part(c, 0);
        const R* KOKKOS_RESTRICT wr = w.data();
        const R* KOKKOS_RESTRICT gr = g.data();
        for (int64_t d = 0; d < D; ++d) r[d] = 0;
        for (int64_t i = N * c / kRowChunks; i < N * (c + 1) / kRowChunks; ++i) {
          const R* KOKKOS_RESTRICT Gi = &G(i, 0);
          const R* KOKKOS_RESTRICT hi = &h(i, 0);
          const R* KOKKOS_RESTRICT v = &bank(pslot, i, 0);
          R* KOKKOS_RESTRICT dyi = &dy(i, 0);
          R gh = 0, gv = 0, qv = 0;
          WAVRES_SIMD_SUM(gh, gv, qv)
          for (int64_t d = 0; d < D; ++d) {
            gh += Gi[d] * hi[d];
            gv += Gi[d] * v[d];
            qv += wr[d] * gr[d] * v[d];
          }
          const R a = alpha(entry, i);
          const auto [delta, c1, c2] = mixer_grad_coeffs(a, gv, gh, qv, rinv(pslot, i), D);
          for (int64_t d = 0; d < D; ++d) {
            dyi[d] += a * Gi[d] + c1 * wr[d] * gr[d] - c2 * v[d];
            r[d] += c1 * v[d];
          }
          if (wav) {
            const R kp = tp * kappa(0, i);
            const R* KOKKOS_RESTRICT dp = &dbank(phase_slot, i, 0);
            if (with_split) {
              const R ks = ts * kappa(1, i);
              const R* KOKKOS_RESTRICT ds = &dbank(split_slot, i, 0);
              for (int64_t d = 0; d < D; ++d) dyi[d] += kp * dp[d] + ks * ds[d];
            } else {
              for (int64_t d = 0; d < D; ++d) dyi[d] += kp * dp[d];
            }
          }
        }
      });
  mixer_param_grads<R, Exec>(args.grads.dw, args.grads.dg, r_part, w, g);
}

template <class R, class Exec>
void mixer_block_backward_completed(const MixerBlockBackwardArgs<R, Exec>& args) {
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
  const int64_t N = bank.extent(1), D = bank.extent(2);
  const bool has_beta = dbeta.data() != nullptr;
  Kokkos::parallel_for(
      "mixer_block_backward", Range<Exec>(0, kRowChunks), KOKKOS_LAMBDA(int64_t c) {
        for (int p = 0; p < S; ++p) {
          R* KOKKOS_RESTRICT r = &r_part(c, p, 0);
          for (int64_t d = 0; d < D; ++d) r[d] = 0;
          k_part(c, p, 0) = k_part(c, p, 1) = 0;
        }
        const int s0 = starts(soff);
        for (int64_t i = N * c / kRowChunks; i < N * (c + 1) / kRowChunks; ++i) {
          R gh[kMaxBlockSublayers];
          for (int p = 0; p < S; ++p) {
            const R* KOKKOS_RESTRICT Gp = &gsave(p, i, 0);
            const R* KOKKOS_RESTRICT hp = &hs(p, i, 0);
            R acc = 0;
            WAVRES_SIMD_SUM(acc)
            for (int64_t d = 0; d < D; ++d) acc += Gp[d] * hp[d];
            gh[p] = acc;
          }
          for (int j = 0; j < nc; ++j) {
            const int sj = slot(s0 + j), kj = kind(s0 + j);
            const R ri = rinv(sj, i);
            const R* KOKKOS_RESTRICT v = &bank(sj, i, 0);
            R* KOKKOS_RESTRICT dv = &dbank(sj, i, 0);
            R c2sum = 0;
            for (int p = 0; p < S; ++p) {
              const R* KOKKOS_RESTRICT Gp = &gsave(p, i, 0);
              const R* KOKKOS_RESTRICT q = &qhat(p, 0);
              R gv = 0, qv = 0;
              WAVRES_SIMD_SUM(gv, qv)
              for (int64_t d = 0; d < D; ++d) {
                gv += Gp[d] * v[d];
                qv += q[d] * v[d];
              }
              const R a = alpha(starts(soff + p) + j, i);
              const auto [delta, c1, c2] = mixer_grad_coeffs(a, gv, gh[p], qv, ri, D);
              c2sum += c2;
              R* KOKKOS_RESTRICT r = &r_part(c, p, 0);
              for (int64_t d = 0; d < D; ++d) {
                dv[d] += a * Gp[d] + c1 * q[d];
                r[d] += c1 * v[d];
              }
              if (kj > 0) k_part(c, p, kj - 1) += delta;
            }
            for (int64_t d = 0; d < D; ++d) dv[d] -= c2sum * v[d];
          }
        }
      });
  Kokkos::parallel_for(
      "mixer_block_backward_params", Range<Exec>(0, int64_t(S) * D), KOKKOS_LAMBDA(int64_t k) {
        const int p = int(k / D);
        const int64_t d = k % D;
        R acc = 0;
        for (int c = 0; c < kRowChunks; ++c) acc += r_part(c, p, d);
        dW(p, d) += g(p, d) * acc;
        dG(p, d) += w(p, d) * acc;
        if (has_beta && d < 2) {
          R kb = 0;
          for (int c = 0; c < kRowChunks; ++c) kb += k_part(c, p, d);
          dbeta(p, d) += kb;
        }
      });
}

}  // namespace wavres::host
