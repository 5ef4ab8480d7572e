// Causal multi-head self-attention core (the projections are linear layers around it).
// qkv is [B·T, 3D]: q in columns [0,D), k in [D,2D), v in [2D,3D); head h owns columns h·hd … (h+1)·hd−1 of each.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

constexpr int kMaxHeadDim = 256;

// Forward, per (b, h, t), with c = 1/sqrt(hd):
//   s_ts = c · q_t·k_s  (s ≤ t),   p_ts = softmax_s(s_ts),   o_t = Σ_s p_ts v_s,   lse_t = log Σ_s exp(s_ts)
// One pass with an online softmax, so no T×T matrix is stored; lse is kept so backward can recompute p exactly.
template <class R, class Exec>
void attention_forward(Mat<R, Exec> out, Vec<R, Exec> lse, Mat<const R, Exec> qkv, int B, int T, int H) {
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  Kokkos::parallel_for(
      "attention_forward", Range<Exec>(0, int64_t(B) * H * T), KOKKOS_LAMBDA(int64_t idx) {
        const int t = int(idx % T), h = int((idx / T) % H);
        const int64_t b = idx / (int64_t(T) * H);
        const int64_t row = b * T + t;
        const R* q = &qkv(row, h * hd);
        R acc[kMaxHeadDim];
        for (int d = 0; d < hd; ++d) acc[d] = 0;
        R m = R(-1e30), l = 0;
        for (int s = 0; s <= t; ++s) {
          const R* k = &qkv(b * T + s, D + h * hd);
          const R* v = &qkv(b * T + s, 2 * D + h * hd);
          R dot = 0;
          for (int d = 0; d < hd; ++d) dot += q[d] * k[d];
          const R sc = dot * scale;
          if (sc > m) {  // rescale what was accumulated under the old maximum
            const R f = kmath::exp(m - sc);
            l *= f;
            for (int d = 0; d < hd; ++d) acc[d] *= f;
            m = sc;
          }
          const R p = kmath::exp(sc - m);
          l += p;
          for (int d = 0; d < hd; ++d) acc[d] += p * v[d];
        }
        const R inv = R(1) / l;
        for (int d = 0; d < hd; ++d) out(row, h * hd + d) = acc[d] * inv;
        lse(idx) = m + kmath::log(l);
      });
}

// Backward, per (b, h), with p_ts = exp(c·q_t·k_s − lse_t) recomputed and Δ_t = do_t · o_t:
//   dv_s += Σ_t p_ts do_t,   dp_ts = do_t · v_s,   ds_ts = p_ts (dp_ts − Δ_t)
//   dq_t  = c Σ_s ds_ts k_s,  dk_s += c Σ_t ds_ts q_t
// Parallel over (b, h) with t serial inside, so dk/dv accumulate without atomics in a fixed order.
template <class R, class Exec>
void attention_backward(Mat<R, Exec> dqkv, Mat<const R, Exec> dout, Mat<const R, Exec> out,
                        Vec<const R, Exec> lse, Mat<const R, Exec> qkv, int B, int T, int H) {
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  Kokkos::parallel_for(
      "attention_backward", Range<Exec>(0, int64_t(B) * H), KOKKOS_LAMBDA(int64_t bh) {
        const int h = int(bh % H);
        const int64_t b = bh / H;
        for (int t = 0; t < T; ++t)
          for (int d = 0; d < hd; ++d) {
            dqkv(b * T + t, D + h * hd + d) = 0;
            dqkv(b * T + t, 2 * D + h * hd + d) = 0;
          }
        for (int t = 0; t < T; ++t) {
          const int64_t row = b * T + t;
          const R* q = &qkv(row, h * hd);
          const R* dO = &dout(row, h * hd);
          const R* O = &out(row, h * hd);
          R delta = 0;
          for (int d = 0; d < hd; ++d) delta += dO[d] * O[d];
          const R l = lse(bh * T + t);
          R dq[kMaxHeadDim];
          for (int d = 0; d < hd; ++d) dq[d] = 0;
          for (int s = 0; s <= t; ++s) {
            const int64_t srow = b * T + s;
            const R* k = &qkv(srow, D + h * hd);
            const R* v = &qkv(srow, 2 * D + h * hd);
            R dot = 0, dp = 0;
            for (int d = 0; d < hd; ++d) {
              dot += q[d] * k[d];
              dp += dO[d] * v[d];
            }
            const R p = kmath::exp(dot * scale - l);
            const R ds = p * (dp - delta) * scale;
            R* dk = &dqkv(srow, D + h * hd);
            R* dv = &dqkv(srow, 2 * D + h * hd);
            for (int d = 0; d < hd; ++d) {
              dq[d] += ds * k[d];
              dk[d] += ds * q[d];
              dv[d] += p * dO[d];
            }
          }
          for (int d = 0; d < hd; ++d) dqkv(row, h * hd + d) = dq[d];
        }
      });
}

}  // namespace wavres
