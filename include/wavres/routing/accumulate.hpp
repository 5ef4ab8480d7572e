// Block-wise source accumulation for Block AttnRes and WAV v1 (spec §4, §5).
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Spec §5 coefficients of the update y_l of sublayer l at block position i: phase +1 for attention (odd l),
// −1 for MLP; split +1 for i ≤ S/2, −1 after. S is even, so a block starts at an odd l and phase_sign(i)
// equals phase_sign(l).
KOKKOS_INLINE_FUNCTION constexpr int phase_sign(int l) {
  return l % 2 == 1 ? 1 : -1;
}
KOKKOS_INLINE_FUNCTION constexpr int split_sign(int i, int S) {
  return 2 * i <= S ? 1 : -1;
}

// Forward, after sublayer at position i of a block:
//   b^i = b^{i-1} + y        (b^0 = 0)      -> bank(out), and its 1/ρ into rinv(out)
// WAV's π and σ are not accumulated here: they are rebuilt from b^1..b^S when the block completes
// (wav_details_forward), which saves two read-modify-write passes per sublayer.
template <class R, class Exec>
void block_accumulate_forward(View3<R, Exec> bank, View2<R, Exec> rinv, int out, int prev,
                              Mat<const R, Exec> y) {
  const int64_t D = y.extent(1);
  const bool first = prev < 0;
  Kokkos::parallel_for(
      "block_accumulate_forward", Range<Exec>(0, y.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        const R* KOKKOS_RESTRICT yi = &y(i, 0);
        R* KOKKOS_RESTRICT out_i = &bank(out, i, 0);
        const R* KOKKOS_RESTRICT prev_i = first ? nullptr : &bank(prev, i, 0);
        R ss = 0;
        WAVRES_SIMD_SUM(ss)
        for (int64_t d = 0; d < D; ++d) {
          const R v = (first ? R(0) : prev_i[d]) + yi[d];
          out_i[d] = v;
          ss += v * v;
        }
        rinv(out, i) = R(1) / kmath::sqrt(ss / R(D) + R(1e-6));
      });
}

// WAV v1 details of a completed block n (spec §5), from its running partials b^1..b^S in bank slots
// first..first+S-1 (b_n = b^S). With y_k = b^k − b^{k-1} (b^0 = 0):
//   π_n = Σ_k cp_k y_k  (cp_k = +1 for attention, k odd),   σ_n = Σ_k cs_k y_k  (cs_k = +1 for k ≤ S/2)
// — the spec's signed sums of the updates, rounded like them to within a few ulps of |b| — then detached RMS
// matching:  κ_π = ρ(b_n)/ρ(π_n),  π̃_n = κ_π π_n;   κ_σ = ρ(b_n)/ρ(σ_n),  σ̃_n = κ_σ σ_n
// κ is stored (kappa(0|1, i)) because backward treats it as a constant: ∂π_n = κ_π ∂π̃_n.
// frozen_kappa reuses the stored κ instead of recomputing it: finite-difference checks need that, since a
// difference quotient of the forward would otherwise differentiate through the stop-gradient.
template <class R, class Exec>
void wav_details_forward(View3<R, Exec> bank, View2<R, Exec> rinv, Mat<R, Exec> kappa, int first, int S,
                         int phase_slot, int split_slot, bool frozen_kappa = false) {
  const int64_t D = bank.extent(2);
  Kokkos::parallel_for(
      "wav_details_forward", Range<Exec>(0, bank.extent(1)), KOKKOS_LAMBDA(int64_t i) {
        R* KOKKOS_RESTRICT ph = &bank(phase_slot, i, 0);
        R* KOKKOS_RESTRICT sp = &bank(split_slot, i, 0);
        for (int k = 1; k <= S; ++k) {
          const R cp = R(phase_sign(k)), cs = R(split_sign(k, S));
          const R* KOKKOS_RESTRICT bk = &bank(first + k - 1, i, 0);
          const R* KOKKOS_RESTRICT bprev = k > 1 ? &bank(first + k - 2, i, 0) : nullptr;
          for (int64_t d = 0; d < D; ++d) {
            const R y = k > 1 ? bk[d] - bprev[d] : bk[d];
            ph[d] = (k > 1 ? ph[d] : R(0)) + cp * y;
            sp[d] = (k > 1 ? sp[d] : R(0)) + cs * y;
          }
        }
        const R* KOKKOS_RESTRICT b = &bank(first + S - 1, i, 0);
        R sb = 0, spp = 0, ss = 0;
        WAVRES_SIMD_SUM(sb, spp, ss)
        for (int64_t d = 0; d < D; ++d) {
          sb += b[d] * b[d];
          spp += ph[d] * ph[d];
          ss += sp[d] * sp[d];
        }
        const R rb = kmath::sqrt(sb / R(D) + R(1e-6));
        const R kp = frozen_kappa ? kappa(0, i) : rb / kmath::sqrt(spp / R(D) + R(1e-6));
        const R ks = frozen_kappa ? kappa(1, i) : rb / kmath::sqrt(ss / R(D) + R(1e-6));
        kappa(0, i) = kp;
        kappa(1, i) = ks;
        R tp = 0, ts = 0;
        WAVRES_SIMD_SUM(tp, ts)
        for (int64_t d = 0; d < D; ++d) {
          const R p = kp * ph[d], s = ks * sp[d];
          ph[d] = p;
          sp[d] = s;
          tp += p * p;
          ts += s * s;
        }
        rinv(phase_slot, i) = R(1) / kmath::sqrt(tp / R(D) + R(1e-6));
        rinv(split_slot, i) = R(1) / kmath::sqrt(ts / R(D) + R(1e-6));
      });
}

// Backward for the sublayer at position i of block n. y_l enters b_n^i … b_n^S, so its gradient is the suffix
// sum of those slots' gradients, kept in `acc` while walking the block backwards:
//   acc = ∂b^S (i = S),  acc += ∂b^i (i < S);   dy = acc + cp·κ_π ∂π̃ + cs·κ_σ ∂σ̃  (WAV; Block: dy = acc)
template <class R, class Exec>
void block_accumulate_backward(Mat<R, Exec> dy, Mat<R, Exec> acc, View3<const R, Exec> dbank, int slot,
                               bool last, int phase_slot, int split_slot, Mat<const R, Exec> kappa, R cp,
                               R cs) {
  const int64_t D = acc.extent(1);
  const bool wav = phase_slot >= 0;
  Kokkos::parallel_for(
      "block_accumulate_backward", Range<Exec>(0, acc.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        const R kp = wav ? cp * kappa(0, i) : R(0), ks = wav ? cs * kappa(1, i) : R(0);
        for (int64_t d = 0; d < D; ++d) {
          const R a = (last ? R(0) : acc(i, d)) + dbank(slot, i, d);
          acc(i, d) = a;
          if (wav) dy(i, d) = a + kp * dbank(phase_slot, i, d) + ks * dbank(split_slot, i, d);
        }
      });
}

// Two-phase backward, last sublayer (i = S) of block n: dy = ∂b_n + cp·κ_π ∂π̃ + cs·κ_σ ∂σ̃  (Block: dy =
// ∂b_n). The block's earlier sublayers get theirs by the recurrence in mixer_block_partial_backward
// (two_phase.hpp).
template <class R, class Exec>
void block_last_update_backward(Mat<R, Exec> dy, View3<const R, Exec> dbank, int slot, int phase_slot,
                                int split_slot, Mat<const R, Exec> kappa, R cp, R cs) {
  const int64_t D = dy.extent(1);
  const bool wav = phase_slot >= 0;
  Kokkos::parallel_for(
      "block_last_update_backward", Range<Exec>(0, dy.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        R* KOKKOS_RESTRICT out = &dy(i, 0);
        const R* KOKKOS_RESTRICT db = &dbank(slot, i, 0);
        if (wav) {
          const R kp = cp * kappa(0, i), ks = cs * kappa(1, i);
          const R* KOKKOS_RESTRICT dp = &dbank(phase_slot, i, 0);
          const R* KOKKOS_RESTRICT ds = &dbank(split_slot, i, 0);
          for (int64_t d = 0; d < D; ++d) out[d] = db[d] + kp * dp[d] + ks * ds[d];
        } else {
          for (int64_t d = 0; d < D; ++d) out[d] = db[d];
        }
      });
}

}  // namespace wavres
