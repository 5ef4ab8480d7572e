// Attention, host body: tuned for a few CPU cores, each walking long contiguous stretches.
//
// One work item per (batch, head): it transposes that head's K (and V) into scratch once, so that every inner
// loop below runs over contiguous key positions — vectorised by the compiler without reassociating sums — and
// processes kQueryTile query rows per pass, so each K/V element loaded feeds that many rows' FMAs. Only
// kQueryTile rows of scores exist at a time: no T×T matrix is ever stored. The math is in ops/attention.hpp.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/ops/attention/args.hpp"

namespace wavres::host {

// Query rows per pass over K/V.
constexpr int kQueryTile = 4;
static_assert(kQueryTile == 4, "the attention tile loops below are written out for 4 query rows");

// The inner loops of the 4-row tiles. They are functions so that their pointers are restrict-qualified
// parameters: GCC honours restrict there (also after inlining), not on locals derived from one scratch base,
// and without it gives up vectorising loops with this many streams. tile_gather (dK, dV: a reduction over
// only the tile's 4 rows) accumulates in memory; the other passes reduce over a long axis in registers.
namespace detail {
// y[0..n) += Σ_r c_r · x_r[0..n)
template <class R>
KOKKOS_INLINE_FUNCTION void tile_gather(int n, R* KOKKOS_RESTRICT y, const R* c, const R* KOKKOS_RESTRICT x0,
                                        const R* KOKKOS_RESTRICT x1, const R* KOKKOS_RESTRICT x2,
                                        const R* KOKKOS_RESTRICT x3) {
  const R c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
  for (int i = 0; i < n; ++i) y[i] += c0 * x0[i] + c1 * x1[i] + c2 * x2[i] + c3 * x3[i];
}
// The register-blocked product of the passes that reduce over a long axis (head dim for scores, keys for
// outputs): C[r][0..16) = Σ_{k<n} A[r·lda + k] · X[k·ldx + 0..16) for the 4 rows r, written over C. The 4×16
// accumulators stay in registers (the loops have constant trip counts), so each FMA costs a broadcast and a
// quarter of a vector load instead of a load and a store of an accumulator in memory.
template <class R>
KOKKOS_INLINE_FUNCTION void tile_dot16(int n, const R* KOKKOS_RESTRICT A, size_t lda,
                                       const R* KOKKOS_RESTRICT X, size_t ldx, R* KOKKOS_RESTRICT C,
                                       size_t ldc) {
  R acc[4][16];
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 16; ++i) acc[r][i] = 0;
  for (int k = 0; k < n; ++k) {
    const R* KOKKOS_RESTRICT x = X + size_t(k) * ldx;
    const R a0 = A[k], a1 = A[lda + k], a2 = A[2 * lda + k], a3 = A[3 * lda + k];
    for (int i = 0; i < 16; ++i) {
      acc[0][i] += a0 * x[i];
      acc[1][i] += a1 * x[i];
      acc[2][i] += a2 * x[i];
      acc[3][i] += a3 * x[i];
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 16; ++i) C[r * ldc + i] = acc[r][i];
}
// Scores of a 4-row query tile against keys 0..smax: S[r][s] = Σ_d A[r][d] · XT[d][s], XT transposed [hd][Tp]
// (rows padded by 16, so the last 16-wide block may run past smax into the padding).
template <class R>
KOKKOS_INLINE_FUNCTION void tile_scores(int hd, int smax, const R* A, size_t lda, const R* XT, size_t Tp,
                                        R* S) {
  for (int s0 = 0; s0 <= smax; s0 += 16) tile_dot16(hd, A, lda, XT + s0, Tp, S + s0, Tp);
}
// Outputs of a 4-row tile: O[r][d] = Σ_{s ≤ smax} W[r][s] · X[s][d], X row-major with row stride ldx (a
// head's columns of qkv); 16-column blocks in registers, the remainder (hd not a multiple of 16) column by
// column.
template <class R>
KOKKOS_INLINE_FUNCTION void tile_outputs(int hd, int smax, const R* W, size_t ldw, const R* X, size_t ldx,
                                         R* O, size_t ldo) {
  int d0 = 0;
  for (; d0 + 16 <= hd; d0 += 16) tile_dot16(smax + 1, W, ldw, X + d0, ldx, O + d0, ldo);
  for (int d = d0; d < hd; ++d)
    for (int r = 0; r < 4; ++r) {
      R acc = 0;
      for (int s = 0; s <= smax; ++s) acc += W[r * ldw + s] * X[size_t(s) * ldx + d];
      O[r * ldo + d] = acc;
    }
}
}  // namespace detail

// Scratch per (b,h): K, V, dK, dV transposed [hd, Tp] each and two tiles of score rows [kQueryTile, Tp].
// Rows are padded (Tp = T + 16) and arrays offset by an odd number of cache lines: with T = 256 the unpadded
// rows and arrays sit at multiples of 4 KiB, and the CPU's 4K-aliasing check then stalls loads behind
// unrelated stores (measured: the backward ran 2x slower).
KOKKOS_INLINE_FUNCTION size_t attention_row_stride(int T) {
  return size_t(T) + 16;
}
KOKKOS_INLINE_FUNCTION size_t attention_array_stride(int T, int hd) {
  return size_t(hd) * attention_row_stride(T) + 48;
}
inline size_t attention_scratch_per_item(int T, int hd) {
  return 4 * attention_array_stride(T, hd) + 2 * size_t(kQueryTile) * attention_row_stride(T) + 48;
}

template <class R, class Exec>
void attention_forward(const AttentionForwardArgs<R, Exec>& a) {
  const auto out = a.out;
  const auto lse = a.lse;
  const auto qkv = a.qkv;
  const auto scratch = a.scratch;
  const int B = a.B, T = a.T, H = a.H;
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  const size_t per_item = attention_scratch_per_item(T, hd);
  Kokkos::parallel_for(
      "attention_forward", Range<Exec>(0, int64_t(B) * H), KOKKOS_LAMBDA(int64_t bh) {
        constexpr int Q = kQueryTile;
        const int h = int(bh % H);
        const int64_t base = (bh / H) * T;
        const size_t Tp = attention_row_stride(T), A = attention_array_stride(T, hd);
        R* KOKKOS_RESTRICT kT = scratch.data() + size_t(bh) * per_item;  // [hd][Tp]
        R* KOKKOS_RESTRICT sc = kT + 4 * A;                              // [Q][Tp]
        for (int s = 0; s < T; ++s) {
          const R* k = &qkv(base + s, D + h * hd);
          for (int d = 0; d < hd; ++d) kT[d * Tp + s] = k[d];
        }
        for (int t0 = 0; t0 < T; t0 += Q) {
          const int nq = T - t0 < Q ? T - t0 : Q, smax = t0 + nq - 1;
          R qt[Q][kMaxHeadDim];  // the tile's queries, scaled; rows past the end are zero
          for (int r = 0; r < Q; ++r)
            for (int d = 0; d < hd; ++d) qt[r][d] = r < nq ? qkv(base + t0 + r, h * hd + d) * scale : R(0);
          detail::tile_scores(hd, smax, &qt[0][0], kMaxHeadDim, kT, Tp, sc);
          R inv[Q];
          for (int r = 0; r < Q; ++r) {
            R* row = sc + r * Tp;
            const int last = t0 + r;  // causal: keys 0..t0+r
            if (r >= nq) {
              for (int s = 0; s <= smax; ++s) row[s] = 0;
              inv[r] = 0;
              continue;
            }
            R m = row[0];
            for (int s = 1; s <= last; ++s) m = row[s] > m ? row[s] : m;
            R l = 0;
            WAVRES_SIMD_SUM(l)
            for (int s = 0; s <= last; ++s) {
              row[s] = kmath::exp_vec(row[s] - m);
              l += row[s];
            }
            for (int s = last + 1; s <= smax; ++s) row[s] = 0;
            inv[r] = R(1) / l;
            lse(bh * T + last) = m + kmath::log(l);
          }
          R acc[Q][kMaxHeadDim];  // local: the compiler knows it aliases nothing
          detail::tile_outputs(hd, smax, sc, Tp, &qkv(base, 2 * D + h * hd), size_t(3) * D, &acc[0][0],
                               kMaxHeadDim);
          for (int r = 0; r < nq; ++r)
            for (int d = 0; d < hd; ++d) out(base + t0 + r, h * hd + d) = acc[r][d] * inv[r];
        }
      });
}

// Query tiles run serially inside a work item; dK and dV accumulate transposed in the item's scratch (every
// inner loop runs over contiguous key positions) and are written out once at the end. No atomics, fixed
// order.
template <class R, class Exec>
void attention_backward(const AttentionBackwardArgs<R, Exec>& a) {
  const auto dqkv = a.dqkv;
  const auto dout = a.dout;
  const auto out = a.out;
  const auto lse = a.lse;
  const auto qkv = a.qkv;
  const auto scratch = a.scratch;
  const int B = a.B, T = a.T, H = a.H;
  const int D = int(out.extent(1)), hd = D / H;
  const R scale = R(1) / kmath::sqrt(R(hd));
  const size_t per_item = attention_scratch_per_item(T, hd);
  Kokkos::parallel_for(
      "attention_backward", Range<Exec>(0, int64_t(B) * H), KOKKOS_LAMBDA(int64_t bh) {
        constexpr int Q = kQueryTile;
        const int h = int(bh % H);
        const int64_t base = (bh / H) * T;
        const size_t Tp = attention_row_stride(T), A = attention_array_stride(T, hd);
        R* KOKKOS_RESTRICT kT = scratch.data() + size_t(bh) * per_item;  // [hd][Tp]
        R* KOKKOS_RESTRICT vT = kT + A;                                  // [hd][Tp]
        R* KOKKOS_RESTRICT dkT = vT + A;                                 // [hd][Tp]
        R* KOKKOS_RESTRICT dvT = dkT + A;                                // [hd][Tp]
        R* KOKKOS_RESTRICT P = dvT + A;                                  // [Q][Tp]
        R* KOKKOS_RESTRICT dS = P + size_t(Q) * Tp + 48;                 // [Q][Tp]
        for (int s = 0; s < T; ++s) {
          const R* k = &qkv(base + s, D + h * hd);
          const R* v = &qkv(base + s, 2 * D + h * hd);
          for (int d = 0; d < hd; ++d) {
            kT[d * Tp + s] = k[d];
            vT[d * Tp + s] = v[d];
            dkT[d * Tp + s] = 0;
            dvT[d * Tp + s] = 0;
          }
        }
        for (int t0 = 0; t0 < T; t0 += Q) {
          const int nq = T - t0 < Q ? T - t0 : Q, smax = t0 + nq - 1;
          R delta[Q];
          for (int r = 0; r < Q; ++r) {
            delta[r] = 0;
            if (r < nq)
              for (int d = 0; d < hd; ++d)
                delta[r] += dout(base + t0 + r, h * hd + d) * out(base + t0 + r, h * hd + d);
          }
          {
            R qt[Q][kMaxHeadDim], gt[Q][kMaxHeadDim];  // scaled queries and output gradients of the tile
            for (int r = 0; r < Q; ++r)
              for (int d = 0; d < hd; ++d) {
                qt[r][d] = r < nq ? qkv(base + t0 + r, h * hd + d) * scale : R(0);
                gt[r][d] = r < nq ? dout(base + t0 + r, h * hd + d) : R(0);
              }
            detail::tile_scores(hd, smax, &qt[0][0], kMaxHeadDim, kT, Tp, P);   // c·q_t·k_s
            detail::tile_scores(hd, smax, &gt[0][0], kMaxHeadDim, vT, Tp, dS);  // dp_ts = do_t·v_s
          }
          for (int r = 0; r < Q; ++r) {
            R* prow = P + r * Tp;
            R* erow = dS + r * Tp;
            const int last = r < nq ? t0 + r : -1;  // rows past the end contribute nothing
            const R l = r < nq ? lse(bh * T + t0 + r) : R(0);
            for (int s = 0; s <= smax; ++s) {
              const R ps = s <= last ? kmath::exp_vec(prow[s] - l) : R(0);
              erow[s] = ps * (erow[s] - delta[r]) * scale;  // ds_ts, with the score scale folded in
              prow[s] = ps;
            }
          }
          for (int d = 0; d < hd; ++d) {
            R q[Q], g[Q];
            for (int r = 0; r < Q; ++r) {
              q[r] = r < nq ? qkv(base + t0 + r, h * hd + d) : R(0);
              g[r] = r < nq ? dout(base + t0 + r, h * hd + d) : R(0);
            }
            detail::tile_gather(smax + 1, dkT + d * Tp, q, dS, dS + Tp, dS + 2 * Tp, dS + 3 * Tp);
            detail::tile_gather(smax + 1, dvT + d * Tp, g, P, P + Tp, P + 2 * Tp, P + 3 * Tp);
          }
          R dq[Q][kMaxHeadDim];
          detail::tile_outputs(hd, smax, dS, Tp, &qkv(base, D + h * hd), size_t(3) * D, &dq[0][0],
                               kMaxHeadDim);
          for (int r = 0; r < nq; ++r)
            for (int d = 0; d < hd; ++d) dqkv(base + t0 + r, h * hd + d) = dq[r][d];
        }
        for (int s = 0; s < T; ++s)
          for (int d = 0; d < hd; ++d) {
            dqkv(base + s, D + h * hd + d) = dkT[d * Tp + s];
            dqkv(base + s, 2 * D + h * hd + d) = dvT[d * Tp + s];
          }
      });
}

}  // namespace wavres::host
