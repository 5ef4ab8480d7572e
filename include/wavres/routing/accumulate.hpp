// Block-wise source accumulation for Block AttnRes and WAV v1 (spec §4, §5).
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Forward, after sublayer at position i of a block (cp = ±1 phase sign, cs = ±1 split sign):
//   b^i = b^{i-1} + y        (b^0 = 0)      -> bank(out), and its 1/ρ into rinv(out)
//   π  += cp·y,  σ += cs·y   (WAV only; reset at i = 1)
template <class R, class Exec>
void block_accumulate_forward(View3<R, Exec> bank, View2<R, Exec> rinv, int out, int prev,
                              Mat<const R, Exec> y, Mat<R, Exec> phase, Mat<R, Exec> split, R cp, R cs) {
  const int64_t D = y.extent(1);
  const bool first = prev < 0, wav = phase.data() != nullptr;
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
        if (wav) {
          R* KOKKOS_RESTRICT ph = &phase(i, 0);
          R* KOKKOS_RESTRICT sp = &split(i, 0);
          for (int64_t d = 0; d < D; ++d) {
            ph[d] = (first ? R(0) : ph[d]) + cp * yi[d];
            sp[d] = (first ? R(0) : sp[d]) + cs * yi[d];
          }
        }
        rinv(out, i) = R(1) / kmath::sqrt(ss / R(D) + R(1e-6));
      });
}

// WAV v1 details of a completed block n, with detached RMS matching (spec §5):
//   κ_π = ρ(b_n)/ρ(π_n),  π̃_n = κ_π π_n;   κ_σ = ρ(b_n)/ρ(σ_n),  σ̃_n = κ_σ σ_n
// κ is stored (kappa(0|1, i)) because backward treats it as a constant: ∂π_n = κ_π ∂π̃_n.
// frozen_kappa reuses the stored κ instead of recomputing it: finite-difference checks need that, since a
// difference quotient of the forward would otherwise differentiate through the stop-gradient.
template <class R, class Exec>
void wav_details_forward(View3<R, Exec> bank, View2<R, Exec> rinv, Mat<R, Exec> kappa, int summary,
                         int phase_slot, int split_slot, Mat<const R, Exec> phase, Mat<const R, Exec> split,
                         bool frozen_kappa = false) {
  const int64_t D = phase.extent(1);
  Kokkos::parallel_for(
      "wav_details_forward", Range<Exec>(0, phase.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        R sb = 0, sp = 0, ss = 0;
        WAVRES_SIMD_SUM(sb, sp, ss)
        for (int64_t d = 0; d < D; ++d) {
          sb += bank(summary, i, d) * bank(summary, i, d);
          sp += phase(i, d) * phase(i, d);
          ss += split(i, d) * split(i, d);
        }
        const R rb = kmath::sqrt(sb / R(D) + R(1e-6));
        const R kp = frozen_kappa ? kappa(0, i) : rb / kmath::sqrt(sp / R(D) + R(1e-6));
        const R ks = frozen_kappa ? kappa(1, i) : rb / kmath::sqrt(ss / R(D) + R(1e-6));
        kappa(0, i) = kp;
        kappa(1, i) = ks;
        R tp = 0, ts = 0;
        for (int64_t d = 0; d < D; ++d) {
          const R p = kp * phase(i, d), s = ks * split(i, d);
          bank(phase_slot, i, d) = p;
          bank(split_slot, i, d) = s;
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

}  // namespace wavres
