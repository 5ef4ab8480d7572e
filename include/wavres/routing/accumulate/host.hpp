// Host bodies of the block accumulation (routing/accumulate.hpp has the math): one thread per token row, its
// D features in one vectorised loop.
#pragma once
#include "wavres/routing/accumulate.hpp"

namespace wavres::host {

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

template <class R, class Exec>
void wav_details_forward(View3<R, Exec> bank, View2<R, Exec> rinv, Mat<R, Exec> kappa, int first, int S,
                         int phase_slot, int split_slot, bool frozen_kappa) {
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

template <class R, class Exec>
void block_accumulate_backward(Mat<R, Exec> dy, Mat<R, Exec> acc, View3<const R, Exec> dbank, int slot,
                               bool last, const DetailGrads<R, Exec>& details, R cp, R cs) {
  const int64_t D = acc.extent(1);
  const int phase_slot = details.phase_slot, split_slot = details.split_slot;
  auto kappa = details.kappa;
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

template <class R, class Exec>
void block_last_update_backward(Mat<R, Exec> dy, View3<const R, Exec> dbank, int slot,
                                const DetailGrads<R, Exec>& details, R cp, R cs) {
  const int64_t D = dy.extent(1);
  const int phase_slot = details.phase_slot, split_slot = details.split_slot;
  auto kappa = details.kappa;
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

}  // namespace wavres::host
