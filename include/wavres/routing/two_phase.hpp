// Two-phase evaluation of the depth mixer for Block AttnRes and WAV v1 (same result as mixer_forward).
//
// All S consumers of block n see the same completed sources C_n = [b_0, b_1, (π̃_1, σ̃_1), …, b_{n-1}, …];
// only the running partial b_n^{i-1} differs. Phase 1, once per block, scores every consumer's query against
// C_n and accumulates its unnormalised partial output, reading each source twice instead of S times:
//   s_pj = ⟨q̂_p, u_j⟩ + β_p,kind(j),   m_p = max_j s_pj,   l_p = Σ_j e^{s_pj − m_p},   a_p = Σ_j e^{s_pj −
//   m_p} v_j
// Phase 2, at consumer p (position i = p+1), merges the partial source with an online-softmax correction:
//   s* = ⟨q̂_p, u_{b^{i-1}}⟩,  m' = max(m_p, s*),  f = e^{m_p − m'},  e = e^{s* − m'},  L = f·l_p + e
//   h = (f·a_p + e·b^{i-1}) / L,   α_j = e^{s_pj − m_p}·f / L,   α_partial = e / L
//
// Backward in two phases as well. The completed sources' gradients are first needed when backward reaches the
// earlier block that wrote them, so they can wait until all S consumers of block n have their G_p =
// ∂loss/∂h_p: at each consumer only the running partial (needed by the block's own sublayers next) is
// differentiated (mixer_backward with that one source) and G_p is kept (the model's RMSNorm backward writes
// it straight into a per-position buffer); at the block's first consumer one pass over C_n applies, per
// source j and token, the mixer_backward terms of all S consumers at once:
//   δ_pj = α_pj (⟨G_p, v_j⟩ − ⟨G_p, h_p⟩),   ∂v_j += Σ_p [α_pj G_p + (δ_pj/ρ_j) q̂_p] − (Σ_p δ_pj
//   ⟨q̂_p,u_j⟩/(ρ_j D)) v_j r_p += (δ_pj/ρ_j) v_j,   ksum_p[kind j] += δ_pj
// so v_j and ∂v_j are read once per block instead of S times (mixer_backward is memory-bound).
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/routing/mixer.hpp"

namespace wavres {

constexpr int kMaxBlockSublayers = 64;

// The block passes stream one 4·D-byte row from each of up to ~20 bank slots per token; the hardware
// prefetchers lose such streams at every 4 KiB boundary, so the host asks for the next token's rows ahead
// (measured: phase 1 ~5 % faster at l12; the backward pass, which also writes ∂v, got slower with it). A
// no-op on GPUs.
template <class R>
KOKKOS_INLINE_FUNCTION void prefetch_row(const R* row, int64_t D) {
#if !defined(KOKKOS_ENABLE_CUDA) && defined(__GNUC__)
  const char* c = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < D * int64_t(sizeof(R)); b += 64) __builtin_prefetch(c + b);
#else
  (void)row, (void)D;
#endif
}

// q̂_p = w_p ⊙ g_p for the block's consumers, once per block.
template <class R, class Exec>
void mixer_block_queries(Mat<R, Exec> qhat, Mat<const R, Exec> w, Mat<const R, Exec> g) {
  const int64_t D = w.extent(1);
  Kokkos::parallel_for(
      "mixer_block_queries", Range<Exec>(0, w.extent(0) * D),
      KOKKOS_LAMBDA(int64_t k) { qhat(k / D, k % D) = w(k / D, k % D) * g(k / D, k % D); });
}

// Phase 1. starts[soff + p] = first source-table entry of consumer p; the first nc entries of every consumer
// are C_n. Leaves e^{s_pj − m_p} in alpha(starts[p] + j, i), and a_p, m_p, l_p in apart(p, i, :), mpart(p,
// i), lpart(p, i).
template <class R, class Exec>
void mixer_block_phase1(View3<R, Exec> apart, View2<R, Exec> mpart, View2<R, Exec> lpart,
                        View2<R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                        View1<int, Exec> slot, View1<int, Exec> kind, View1<int, Exec> starts, int soff,
                        int S, int nc, Mat<const R, Exec> qhat, Mat<const R, Exec> beta) {
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

// Phase 2 for the consumer at block position p (partial_slot < 0 at p = 0: no partial source yet).
template <class R, class Exec>
void mixer_block_merge(Mat<R, Exec> h, View2<R, Exec> alpha, View3<const R, Exec> bank,
                       View2<const R, Exec> rinv, View3<const R, Exec> apart, View2<const R, Exec> mpart,
                       View2<const R, Exec> lpart, Mat<const R, Exec> qhat, int p, int start, int nc,
                       int partial_slot) {
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

// Backward at block position p ≥ 1 (two-phase only), fused with the gradient recurrence of the block's
// updates. The running partial b^{p} (bank slot `pslot`, mixer entry `entry`) has this consumer as its only
// reader, so its gradient  ∂b^p = α G + (δ/ρ)(q̂ − (⟨q̂,u⟩/D) u)  (mixer_backward with one source) is final
// here and need not be stored: it goes straight into the update gradient of the previous sublayer,
//   dy_{l-1} = Σ_{k≥p} ∂b^k + cp_{l-1}·κ_π ∂π̃ + cs_{l-1}·κ_σ ∂σ̃ = dy_l + ∂b^p + tp·κ_π ∂π̃ + ts·κ_σ ∂σ̃,
// with tp = cp_{l-1} − cp_l = ±2 and ts = cs_{l-1} − cs_l ∈ {0, 2} (accumulate.hpp), updated in place in dy
// (which held dy_l, already consumed by sublayer l's backward). Block AttnRes: dy_{l-1} = dy_l + ∂b^p.
// r_part [kRowChunks, D] is scratch for the query and key-gain gradients.
template <class R, class Exec>
void mixer_block_partial_backward(Mat<R, Exec> dy, Vec<R, Exec> dw, Vec<R, Exec> dg, View2<R, Exec> r_part,
                                  Mat<const R, Exec> G, Mat<const R, Exec> h, View2<const R, Exec> alpha,
                                  int entry, View3<const R, Exec> bank, View2<const R, Exec> rinv, int pslot,
                                  Vec<const R, Exec> w, Vec<const R, Exec> g, View3<const R, Exec> dbank,
                                  int phase_slot, int split_slot, Mat<const R, Exec> kappa, R tp, R ts) {
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
  mixer_param_grads<R, Exec>(dw, dg, r_part, w, g);
}

// Backward phase 2, once per block: the completed sources C_n (the first nc entries of every consumer) get
// the gradient of all S consumers, from G_p = gsave(p) and h_p = hs(p); dW, dG are the [S, D] rows of ∂query
// and ∂key_gain, dbeta the [S, 2] rows of ∂detail_bias (null = none). r_part [kRowChunks, S, D] and k_part
// [kRowChunks, S, 2] are scratch.
template <class R, class Exec>
void mixer_block_backward_completed(View3<R, Exec> dbank, Mat<R, Exec> dW, Mat<R, Exec> dG,
                                    Mat<R, Exec> dbeta, View3<R, Exec> r_part, View3<R, Exec> k_part,
                                    View3<const R, Exec> gsave, View3<const R, Exec> hs,
                                    View2<const R, Exec> alpha, View3<const R, Exec> bank,
                                    View2<const R, Exec> rinv, View1<int, Exec> slot, View1<int, Exec> kind,
                                    View1<int, Exec> starts, int soff, int S, int nc, Mat<const R, Exec> qhat,
                                    Mat<const R, Exec> w, Mat<const R, Exec> g) {
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

}  // namespace wavres
