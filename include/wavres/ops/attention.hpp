// Causal multi-head self-attention core (the projections are linear layers around it).
// qkv is [B·T, 3D]: q in columns [0,D), k in [D,2D), v in [2D,3D); head h owns columns h·hd … (h+1)·hd−1 of each.
//
// One work item per (batch, head): it transposes that head's K (and V) into scratch once, so that every inner
// loop below is an axpy over contiguous memory — vectorised by the compiler without reassociating sums — and
// only one row of scores exists at a time: no T×T matrix is ever stored.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

constexpr int kMaxHeadDim = 256;  // Dims::validate() enforces it

// Scratch per (b,h): K, V, dK, dV transposed [4·hd, T] and two score rows [2, T].
inline size_t attention_scratch_per_item(int T, int hd) { return 4 * size_t(hd) * T + 2 * size_t(T); }
template <class R, class Exec>
View1<R, Exec> attention_scratch(int B, int T, int H, int D) {
  return View1<R, Exec>("attention_scratch", size_t(B) * H * attention_scratch_per_item(T, D / H));
}

// Forward, per (b, h, t), with c = 1/sqrt(hd):
//   s_ts = c · q_t·k_s  (s ≤ t),   p_ts = softmax_s(s_ts),   o_t = Σ_s p_ts v_s,   lse_t = log Σ_s exp(s_ts)
// lse is kept so that backward recomputes p exactly instead of storing it.
template <class R, class Exec>
void attention_forward(Mat<R, Exec> out, Vec<R, Exec> lse, Mat<const R, Exec> qkv, View1<R, Exec> scratch, int B,
                       int T, int H) {
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  const size_t per_item = attention_scratch_per_item(T, hd);
  Kokkos::parallel_for(
      "attention_forward", Range<Exec>(0, int64_t(B) * H), KOKKOS_LAMBDA(int64_t bh) {
        const int h = int(bh % H);
        const int64_t base = (bh / H) * T;
        R* KOKKOS_RESTRICT kT = scratch.data() + size_t(bh) * per_item;  // [hd][T]
        R* KOKKOS_RESTRICT sc = kT + 4 * size_t(hd) * T;                  // [T]
        for (int s = 0; s < T; ++s) {
          const R* k = &qkv(base + s, D + h * hd);
          for (int d = 0; d < hd; ++d) kT[size_t(d) * T + s] = k[d];
        }
        for (int t = 0; t < T; ++t) {
          const R* q = &qkv(base + t, h * hd);
          for (int s = 0; s <= t; ++s) sc[s] = 0;
          for (int d = 0; d < hd; ++d) {
            const R qd = q[d] * scale;
            const R* kd = kT + size_t(d) * T;
            for (int s = 0; s <= t; ++s) sc[s] += qd * kd[s];
          }
          R m = sc[0];
          for (int s = 1; s <= t; ++s) m = sc[s] > m ? sc[s] : m;
          R l = 0;
          for (int s = 0; s <= t; ++s) {
            sc[s] = kmath::exp(sc[s] - m);
            l += sc[s];
          }
          R acc[kMaxHeadDim];  // local, so the compiler knows it aliases nothing: the axpys vectorise
          for (int d = 0; d < hd; ++d) acc[d] = 0;
          for (int s = 0; s <= t; ++s) {
            const R ps = sc[s];
            const R* v = &qkv(base + s, 2 * D + h * hd);
            for (int d = 0; d < hd; ++d) acc[d] += ps * v[d];
          }
          const R inv = R(1) / l;
          for (int d = 0; d < hd; ++d) out(base + t, h * hd + d) = acc[d] * inv;
          lse(bh * T + t) = m + kmath::log(l);
        }
      });
}

// Backward, per (b, h), with p_ts = exp(c·q_t·k_s − lse_t) recomputed and Δ_t = do_t · o_t:
//   dv_s += Σ_t p_ts do_t,   dp_ts = do_t · v_s,   ds_ts = p_ts (dp_ts − Δ_t)
//   dq_t  = c Σ_s ds_ts k_s,  dk_s += c Σ_t ds_ts q_t
// t runs serially inside a work item; dK and dV accumulate transposed in the item's scratch (so every inner
// loop runs over contiguous key positions) and are written out once at the end. No atomics, fixed order.
template <class R, class Exec>
void attention_backward(Mat<R, Exec> dqkv, Mat<const R, Exec> dout, Mat<const R, Exec> out, Vec<const R, Exec> lse,
                        Mat<const R, Exec> qkv, View1<R, Exec> scratch, int B, int T, int H) {
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  const size_t per_item = attention_scratch_per_item(T, hd);
  Kokkos::parallel_for(
      "attention_backward", Range<Exec>(0, int64_t(B) * H), KOKKOS_LAMBDA(int64_t bh) {
        const int h = int(bh % H);
        const int64_t base = (bh / H) * T;
        R* KOKKOS_RESTRICT kT = scratch.data() + size_t(bh) * per_item;  // [hd][T]
        R* KOKKOS_RESTRICT vT = kT + size_t(hd) * T;                      // [hd][T]
        R* KOKKOS_RESTRICT dkT = vT + size_t(hd) * T;                     // [hd][T]
        R* KOKKOS_RESTRICT dvT = dkT + size_t(hd) * T;                    // [hd][T]
        R* KOKKOS_RESTRICT p = dvT + size_t(hd) * T;                      // [T]
        R* KOKKOS_RESTRICT ds = p + T;                                    // [T]
        for (int s = 0; s < T; ++s) {
          const R* k = &qkv(base + s, D + h * hd);
          const R* v = &qkv(base + s, 2 * D + h * hd);
          for (int d = 0; d < hd; ++d) {
            kT[size_t(d) * T + s] = k[d];
            vT[size_t(d) * T + s] = v[d];
            dkT[size_t(d) * T + s] = 0;
            dvT[size_t(d) * T + s] = 0;
          }
        }
        for (int t = 0; t < T; ++t) {
          R delta = 0;
          WAVRES_SIMD_SUM(delta)
          for (int d = 0; d < hd; ++d) delta += dout(base + t, h * hd + d) * out(base + t, h * hd + d);
          for (int s = 0; s <= t; ++s) p[s] = ds[s] = 0;
          for (int d = 0; d < hd; ++d) {
            const R qd = qkv(base + t, h * hd + d) * scale, gd = dout(base + t, h * hd + d);
            const R* kd = kT + size_t(d) * T;
            const R* vd = vT + size_t(d) * T;
            for (int s = 0; s <= t; ++s) {
              p[s] += qd * kd[s];
              ds[s] += gd * vd[s];
            }
          }
          const R l = lse(bh * T + t);
          for (int s = 0; s <= t; ++s) {
            const R ps = kmath::exp(p[s] - l);
            p[s] = ps;
            ds[s] = ps * (ds[s] - delta) * scale;  // the score scale folded in
          }
          for (int d = 0; d < hd; ++d) {
            const R qd = qkv(base + t, h * hd + d), gd = dout(base + t, h * hd + d);
            R* dkd = dkT + size_t(d) * T;
            R* dvd = dvT + size_t(d) * T;
            for (int s = 0; s <= t; ++s) {
              dkd[s] += ds[s] * qd;
              dvd[s] += p[s] * gd;
            }
          }
          R dq[kMaxHeadDim];
          for (int d = 0; d < hd; ++d) dq[d] = 0;
          for (int s = 0; s <= t; ++s) {
            const R dss = ds[s];
            const R* k = &qkv(base + s, D + h * hd);
            for (int d = 0; d < hd; ++d) dq[d] += dss * k[d];
          }
          for (int d = 0; d < hd; ++d) dqkv(base + t, h * hd + d) = dq[d];
        }
        for (int s = 0; s < T; ++s)
          for (int d = 0; d < hd; ++d) {
            dqkv(base + s, D + h * hd + d) = dkT[size_t(d) * T + s];
            dqkv(base + s, 2 * D + h * hd + d) = dvT[size_t(d) * T + s];
          }
      });
}

}  // namespace wavres
