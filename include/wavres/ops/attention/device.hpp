// Attention, device body: FlashAttention-2 in Kokkos teams. The math is in ops/attention.hpp.
//
//   forward  team = (b, h, query block of QB rows); threads = query rows, lanes = keys (scores, online
//            softmax); then lanes = (row, head dim) pairs across the team (output update)
//   Δ        team = 8 rows (b, h, t); threads = rows, lanes = head dim; Δ_t = do_t·o_t into the scratch view
//   dK, dV   team = (b, h, key block of KB keys), walking the query blocks at or after it
//   dQ       team = (b, h, query block of QB rows), walking the key blocks at or before it
//
// Why this shape. A (b, h) pair per thread (the host body) gives 64 threads at the benchmark shape; a team
// per block gives B·H·T/QB teams of a few hundred threads each (>= 64k threads in flight). Each K/V (or Q/dO)
// tile is staged once in team scratch and read by every row of the other block: the arithmetic intensity of a
// QB×KB tile instead of one row. Only the log-sum-exp leaves the forward; the backward recomputes P from it,
// so no T×T matrix exists anywhere. The backward is split as FlashAttention-2 does, but without its atomic
// dQ: dK/dV need a sum over queries, dQ a sum over keys, so one kernel owns each key block and another each
// query block; both recompute P, and every sum runs in a fixed order (deterministic, independent of team
// sizes).
//
// Scratch arrays of rows × head dim use an odd row stride ld, so lanes that walk rows at a fixed d hit
// distinct shared-memory banks; lanes that walk d read consecutive addresses. Per-row state (m, l, the
// rescale factor α) and the accumulators live in scratch, not in per-thread arrays: with head dims up to 256
// those would spill to local memory.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/ops/attention/args.hpp"

namespace wavres::device {

// Query and key block of a kernel, and where its team scratch lives: level 0 (shared memory) when the tiles
// fit the budget, else level 1 (global memory on a GPU; the same memory on the host).
struct AttentionTiles {
  int qb = 0, kb = 0, level = 0;
  size_t bytes = 0;
};

// Kokkos 3.4 allows 40 KiB of level-0 scratch per team on CUDA (TeamPolicy<Cuda>::scratch_size_max(0)). The
// tiles are chosen against that budget on every backend, so the OpenMP build of these bodies runs the same
// block shapes as a GPU (its own level-0 cap, 32 KiB, only moves some tiles to level 1).
constexpr size_t kAttentionScratchBudget = 40 * 1024;

// Row stride of a [rows][hd] scratch array: odd, so lanes walking rows at a fixed d use distinct banks.
KOKKOS_INLINE_FUNCTION int attention_ld(int hd) {
  return hd + 1 - (hd & 1);
}

// Scratch elements per team of each kernel, for blocks of qb queries and kb keys (layout in the kernels).
inline size_t attention_forward_elems(int qb, int kb, int ld) {
  return 2 * size_t(qb) * ld + 2 * size_t(kb) * ld + size_t(qb) * kb + 3 * size_t(qb);
}
inline size_t attention_dkdv_elems(int qb, int kb, int ld) {
  return 4 * size_t(kb) * ld + 2 * size_t(qb) * ld + 2 * size_t(qb) * kb + 2 * size_t(qb);
}
inline size_t attention_dq_elems(int qb, int kb, int ld) {
  return 3 * size_t(qb) * ld + 2 * size_t(kb) * ld + size_t(qb) * kb + 2 * size_t(qb);
}

template <class R, class Exec>
using AttentionScratch = Kokkos::View<R*, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;

// The largest blocks whose scratch fits the budget (larger blocks: more reuse of each staged tile); if none
// does (head dims near 256), 32×32 blocks in level-1 scratch: smaller blocks would leave too few threads per
// team and stage each tile for too few rows.
template <class R, class Exec>
AttentionTiles attention_tiles(int hd, size_t (*elems)(int, int, int)) {
  constexpr int kCandidates[][2] = {{64, 64}, {64, 32}, {32, 32}, {32, 16}, {16, 16}, {16, 8}};
  AttentionTiles t;
  t.qb = t.kb = 32;
  t.bytes = AttentionScratch<R, Exec>::shmem_size(elems(32, 32, attention_ld(hd)));
  for (const auto& c : kCandidates) {
    const size_t bytes = AttentionScratch<R, Exec>::shmem_size(elems(c[0], c[1], attention_ld(hd)));
    if (bytes <= kAttentionScratchBudget) {
      t.qb = c[0], t.kb = c[1], t.bytes = bytes;
      break;
    }
  }
  t.level = t.bytes <= size_t(Kokkos::TeamPolicy<Exec>::scratch_size_max(0)) ? 0 : 1;
  return t;
}
template <class R, class Exec>
AttentionTiles attention_forward_tiles(int hd) {
  return attention_tiles<R, Exec>(hd, attention_forward_elems);
}
template <class R, class Exec>
AttentionTiles attention_dkdv_tiles(int hd) {
  return attention_tiles<R, Exec>(hd, attention_dkdv_elems);
}
template <class R, class Exec>
AttentionTiles attention_dq_tiles(int hd) {
  return attention_tiles<R, Exec>(hd, attention_dq_elems);
}

// Scratch-view elements the device body needs: Δ, [B·H·T].
inline size_t attention_scratch_elems(int B, int T, int H) {
  return size_t(B) * H * T;
}

// Team shapes on a GPU. Forward: one thread per query row (team = QB) with 8 lanes over its keys. The other
// kernels spread flat (row, column) ranges over the whole team (TeamVectorRange): 32 × 8 = 256 threads.
// Δ: 8 rows per team, 32 lanes over the head dim.
constexpr int kAttnForwardVector = 8;
constexpr int kAttnBlockTeam = 32, kAttnBlockVector = 8;
constexpr int kAttnDeltaRows = 8, kAttnDeltaVector = 32;

// The launches of the device body at a shape, as a GPU runs them: for the parallelism check (league × team ×
// vector threads exposed per launch) and for reports.
struct AttentionLaunch {
  const char* label;
  int64_t league;
  int team, vector;
};
template <class R, class Exec>
std::vector<AttentionLaunch> attention_launches(int B, int T, int H, int D) {
  const int hd = D / H, fq = attention_forward_tiles<R, Exec>(hd).qb;
  const int kb = attention_dkdv_tiles<R, Exec>(hd).kb, qq = attention_dq_tiles<R, Exec>(hd).qb;
  const int64_t BH = int64_t(B) * H;
  return {{"attention_forward[device]", BH * ((T + fq - 1) / fq), fq, kAttnForwardVector},
          {"attention_backward[device]:delta", (BH * T + kAttnDeltaRows - 1) / kAttnDeltaRows, kAttnDeltaRows,
           kAttnDeltaVector},
          {"attention_backward[device]:dkdv", BH * ((T + kb - 1) / kb), kAttnBlockTeam, kAttnBlockVector},
          {"attention_backward[device]:dq", BH * ((T + qq - 1) / qq), kAttnBlockTeam, kAttnBlockVector}};
}

// A team policy: on a GPU the given team and vector sizes (team · vector <= 1024); on the host a few threads
// per team (so the barriers are exercised) and vector length 1, which Kokkos' host backends use anyway.
template <class Exec>
Kokkos::TeamPolicy<Exec> attention_policy(int league, int gpu_team, int gpu_vector, const AttentionTiles& t) {
  Kokkos::TeamPolicy<Exec> p = [&] {
    if constexpr (is_gpu_space_v<Exec>) {
      return Kokkos::TeamPolicy<Exec>(league, gpu_team, gpu_vector);
    } else {
      const int c = Exec().concurrency();
      return Kokkos::TeamPolicy<Exec>(league, c < 4 ? c : 4, 1);
    }
  }();
  if (t.bytes > 0) p.set_scratch_size(t.level, Kokkos::PerTeam(t.bytes));
  return p;
}

// Forward (math in ops/attention.hpp). Per key block the team stages K and V, then each row's thread scores
// its queries against the block (lanes = keys) and updates its online softmax: m_new = max(m, max_j s_j),
// α = exp(m − m_new), l = α·l + Σ_j exp(s_j − m_new); then lanes over (row, d) update O = α·O + P·V. At the
// end o = O / l and lse = m + log l. Every row sees key 0 in the first block, so m is finite from then on.
template <class R, class Exec>
void attention_forward(const AttentionForwardArgs<R, Exec>& a) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  const auto out = a.out;
  const auto lse = a.lse;
  const auto qkv = a.qkv;
  const int T = a.T, H = a.H, D = int(out.extent(1)), hd = D / H, ld = attention_ld(hd);
  const R scale = R(1) / kmath::sqrt(R(hd));
  const AttentionTiles tl = attention_forward_tiles<R, Exec>(hd);
  const int QB = tl.qb, KB = tl.kb, level = tl.level, nqb = (T + QB - 1) / QB;
  const size_t elems = attention_forward_elems(QB, KB, ld);
  Kokkos::parallel_for(
      "attention_forward[device]", attention_policy<Exec>(a.B * H * nqb, QB, kAttnForwardVector, tl),
      KOKKOS_LAMBDA(const Member& team) {
        const int bh = team.league_rank() / nqb;
        const int qb = nqb - 1 - team.league_rank() % nqb;  // causal: later blocks do more work, start first
        const int h = bh % H, t0 = qb * QB, nq = T - t0 < QB ? T - t0 : QB;
        const int64_t base = int64_t(bh / H) * T;
        AttentionScratch<R, Exec> buf(team.team_scratch(level), elems);
        R* Qs = buf.data();    // [QB][ld] queries of the block, times the score scale c
        R* Os = Qs + QB * ld;  // [QB][ld] unnormalised outputs
        R* Ks = Os + QB * ld;  // [KB][ld]
        R* Vs = Ks + KB * ld;  // [KB][ld]
        R* S = Vs + KB * ld;   // [QB][KB] scores, then probabilities (relative to m)
        R* m = S + QB * KB;    // [QB] running max
        R* l = m + QB;         // [QB] running sum of exp(s − m)
        R* alpha = l + QB;     // [QB] this block's rescale of O
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
          const int r = i / hd, d = i % hd;
          Qs[r * ld + d] = qkv(base + t0 + r, h * hd + d) * scale;
          Os[r * ld + d] = 0;
        });
        const int nkeys = t0 + nq;  // causal: the block's rows see keys 0 .. t0+nq−1
        for (int s0 = 0; s0 < nkeys; s0 += KB) {
          const int nk = nkeys - s0 < KB ? nkeys - s0 : KB;
          team.team_barrier();  // the previous block's O update is done reading Vs and S
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nk * hd), [&](int i) {
            const int j = i / hd, d = i % hd;
            Ks[j * ld + d] = qkv(base + s0 + j, D + h * hd + d);
            Vs[j * ld + d] = qkv(base + s0 + j, 2 * D + h * hd + d);
          });
          team.team_barrier();  // K, V (and at the first block Q) in scratch
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](int r) {
            const int jn = t0 + r - s0 + 1 < nk ? t0 + r - s0 + 1 : nk;  // keys of the block row r sees
            if (jn <= 0) {  // the whole block lies after t: nothing to add, O keeps its scale
              Kokkos::single(Kokkos::PerThread(team), [&] { alpha[r] = 1; });
              return;
            }
            R* Sr = S + r * KB;
            const R* q = Qs + r * ld;
            R bmax;
            Kokkos::parallel_reduce(
                Kokkos::ThreadVectorRange(team, jn),
                [&](int j, R& mx) {
                  const R* k = Ks + j * ld;
                  R s = 0;
                  for (int d = 0; d < hd; ++d) s += q[d] * k[d];
                  Sr[j] = s;
                  mx = s > mx ? s : mx;
                },
                Kokkos::Max<R>(bmax));
            const R mold = m[r];
            const R mnew = s0 == 0 || bmax > mold ? bmax : mold;
            R bsum;
            Kokkos::parallel_reduce(
                Kokkos::ThreadVectorRange(team, jn),
                [&](int j, R& sum) {
                  const R p = kmath::exp_vec(Sr[j] - mnew);  // the lane that wrote Sr[j] reads it
                  Sr[j] = p;
                  sum += p;
                },
                bsum);
            Kokkos::single(Kokkos::PerThread(team), [&] {
              const R al = s0 == 0 ? R(0) : kmath::exp_vec(mold - mnew);
              alpha[r] = al;
              l[r] = (s0 == 0 ? R(0) : al * l[r]) + bsum;
              m[r] = mnew;
            });
          });
          team.team_barrier();  // P and α in scratch
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
            const int r = i / hd, d = i % hd;
            const int jn = t0 + r - s0 + 1 < nk ? t0 + r - s0 + 1 : nk;
            const R* Pr = S + r * KB;
            R acc = 0;
            for (int j = 0; j < jn; ++j) acc += Pr[j] * Vs[j * ld + d];
            Os[r * ld + d] = alpha[r] * Os[r * ld + d] + acc;
          });
        }
        team.team_barrier();  // O, l and m final
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
          const int r = i / hd, d = i % hd;
          out(base + t0 + r, h * hd + d) = Os[r * ld + d] / l[r];
          if (d == 0) lse(int64_t(bh) * T + t0 + r) = m[r] + kmath::log(l[r]);
        });
      });
}

// Backward (math in ops/attention.hpp), three kernels: Δ_t = do_t·o_t; dK and dV per key block; dQ per query
// block. Both block kernels recompute p_ts = exp(c·q_t·k_s − lse_t) with the forward's arithmetic (queries
// pre-scaled by c, the same sum order over d), and ds_ts = p_ts (dp_ts − Δ_t) with dp_ts = do_t·v_s.
template <class R, class Exec>
void attention_backward(const AttentionBackwardArgs<R, Exec>& a) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  const auto dqkv = a.dqkv;
  const auto dout = a.dout;
  const auto out = a.out;
  const auto lse = a.lse;
  const auto qkv = a.qkv;
  const auto delta = a.scratch;  // Δ, [B·H·T] like lse
  const int B = a.B, T = a.T, H = a.H, D = int(out.extent(1)), hd = D / H, ld = attention_ld(hd);
  const R scale = R(1) / kmath::sqrt(R(hd));
  if (delta.extent(0) < attention_scratch_elems(B, T, H))
    throw std::invalid_argument("attention_backward: scratch has " + std::to_string(delta.extent(0)) +
                                " elements, needs " + std::to_string(attention_scratch_elems(B, T, H)));
  const int64_t BHT = int64_t(B) * H * T;

  Kokkos::parallel_for(
      "attention_backward[device]:delta",
      attention_policy<Exec>(int((BHT + kAttnDeltaRows - 1) / kAttnDeltaRows), kAttnDeltaRows,
                             kAttnDeltaVector, AttentionTiles{}),
      KOKKOS_LAMBDA(const Member& team) {
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, kAttnDeltaRows), [&](int i) {
          const int64_t row = int64_t(team.league_rank()) * kAttnDeltaRows + i;  // bh·T + t
          if (row >= BHT) return;
          const int64_t bh = row / T, tok = (bh / H) * T + row % T;
          const int col = int(bh % H) * hd;
          R dot;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, hd),
              [&](int d, R& s) { s += dout(tok, col + d) * out(tok, col + d); }, dot);
          Kokkos::single(Kokkos::PerThread(team), [&] { delta(row) = dot; });
        });
      });

  // dK, dV: dv_s = Σ_{t ≥ s} p_ts do_t,  dk_s = Σ_{t ≥ s} ds_ts (c q_t)
  {
    const AttentionTiles tl = attention_dkdv_tiles<R, Exec>(hd);
    const int QB = tl.qb, KB = tl.kb, level = tl.level, nkb = (T + KB - 1) / KB;
    const size_t elems = attention_dkdv_elems(QB, KB, ld);
    Kokkos::parallel_for(
        "attention_backward[device]:dkdv",
        attention_policy<Exec>(B * H * nkb, kAttnBlockTeam, kAttnBlockVector, tl),
        KOKKOS_LAMBDA(const Member& team) {
          const int bh = team.league_rank() / nkb, kb = team.league_rank() % nkb;  // early keys: most work
          const int h = bh % H, s0 = kb * KB, nk = T - s0 < KB ? T - s0 : KB;
          const int64_t base = int64_t(bh / H) * T;
          AttentionScratch<R, Exec> buf(team.team_scratch(level), elems);
          R* Ks = buf.data();      // [KB][ld]
          R* Vs = Ks + KB * ld;    // [KB][ld]
          R* dKs = Vs + KB * ld;   // [KB][ld]
          R* dVs = dKs + KB * ld;  // [KB][ld]
          R* Qs = dVs + KB * ld;   // [QB][ld] queries times c
          R* Gs = Qs + QB * ld;    // [QB][ld] output gradients do
          R* P = Gs + QB * ld;     // [QB][KB]
          R* dS = P + QB * KB;     // [QB][KB]
          R* Ls = dS + QB * KB;    // [QB] lse
          R* Ds = Ls + QB;         // [QB] Δ
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nk * hd), [&](int i) {
            const int j = i / hd, d = i % hd;
            Ks[j * ld + d] = qkv(base + s0 + j, D + h * hd + d);
            Vs[j * ld + d] = qkv(base + s0 + j, 2 * D + h * hd + d);
            dKs[j * ld + d] = 0;
            dVs[j * ld + d] = 0;
          });
          for (int t0 = s0; t0 < T; t0 += QB) {  // causal: only queries t >= s0 see the block
            const int nq = T - t0 < QB ? T - t0 : QB;
            team.team_barrier();  // the previous query block's accumulation is done reading Q, do, P, dS
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
              const int r = i / hd, d = i % hd;
              Qs[r * ld + d] = qkv(base + t0 + r, h * hd + d) * scale;
              Gs[r * ld + d] = dout(base + t0 + r, h * hd + d);
            });
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq), [&](int r) {
              Ls[r] = lse(int64_t(bh) * T + t0 + r);
              Ds[r] = delta(int64_t(bh) * T + t0 + r);
            });
            team.team_barrier();  // this query block in scratch
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * nk), [&](int i) {
              const int r = i / nk, j = i % nk;
              R p = 0, ds = 0;
              if (s0 + j <= t0 + r) {
                const R *q = Qs + r * ld, *g = Gs + r * ld, *k = Ks + j * ld, *v = Vs + j * ld;
                R s = 0, dp = 0;
                for (int d = 0; d < hd; ++d) s += q[d] * k[d];
                for (int d = 0; d < hd; ++d) dp += g[d] * v[d];
                p = kmath::exp_vec(s - Ls[r]);
                ds = p * (dp - Ds[r]);
              }
              P[r * KB + j] = p;
              dS[r * KB + j] = ds;
            });
            team.team_barrier();  // P, dS in scratch
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nk * hd), [&](int i) {
              const int j = i / hd, d = i % hd;
              R dv = 0, dk = 0;
              for (int r = 0; r < nq; ++r) {
                dv += P[r * KB + j] * Gs[r * ld + d];
                dk += dS[r * KB + j] * Qs[r * ld + d];
              }
              dVs[j * ld + d] += dv;
              dKs[j * ld + d] += dk;
            });
          }
          team.team_barrier();
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nk * hd), [&](int i) {
            const int j = i / hd, d = i % hd;
            dqkv(base + s0 + j, D + h * hd + d) = dKs[j * ld + d];
            dqkv(base + s0 + j, 2 * D + h * hd + d) = dVs[j * ld + d];
          });
        });
  }

  // dQ: dq_t = c Σ_{s ≤ t} ds_ts k_s
  {
    const AttentionTiles tl = attention_dq_tiles<R, Exec>(hd);
    const int QB = tl.qb, KB = tl.kb, level = tl.level, nqb = (T + QB - 1) / QB;
    const size_t elems = attention_dq_elems(QB, KB, ld);
    Kokkos::parallel_for(
        "attention_backward[device]:dq",
        attention_policy<Exec>(B * H * nqb, kAttnBlockTeam, kAttnBlockVector, tl),
        KOKKOS_LAMBDA(const Member& team) {
          const int bh = team.league_rank() / nqb;
          const int qb = nqb - 1 - team.league_rank() % nqb;  // late queries: most work
          const int h = bh % H, t0 = qb * QB, nq = T - t0 < QB ? T - t0 : QB;
          const int64_t base = int64_t(bh / H) * T;
          AttentionScratch<R, Exec> buf(team.team_scratch(level), elems);
          R* Qs = buf.data();     // [QB][ld] queries times c
          R* Gs = Qs + QB * ld;   // [QB][ld] output gradients do
          R* dQs = Gs + QB * ld;  // [QB][ld]
          R* Ks = dQs + QB * ld;  // [KB][ld]
          R* Vs = Ks + KB * ld;   // [KB][ld]
          R* dS = Vs + KB * ld;   // [QB][KB], times c
          R* Ls = dS + QB * KB;   // [QB] lse
          R* Ds = Ls + QB;        // [QB] Δ
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
            const int r = i / hd, d = i % hd;
            Qs[r * ld + d] = qkv(base + t0 + r, h * hd + d) * scale;
            Gs[r * ld + d] = dout(base + t0 + r, h * hd + d);
            dQs[r * ld + d] = 0;
          });
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq), [&](int r) {
            Ls[r] = lse(int64_t(bh) * T + t0 + r);
            Ds[r] = delta(int64_t(bh) * T + t0 + r);
          });
          const int nkeys = t0 + nq;
          for (int s0 = 0; s0 < nkeys; s0 += KB) {
            const int nk = nkeys - s0 < KB ? nkeys - s0 : KB;
            team.team_barrier();  // the previous key block's accumulation is done reading K and dS
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nk * hd), [&](int i) {
              const int j = i / hd, d = i % hd;
              Ks[j * ld + d] = qkv(base + s0 + j, D + h * hd + d);
              Vs[j * ld + d] = qkv(base + s0 + j, 2 * D + h * hd + d);
            });
            team.team_barrier();  // K, V (and at the first block Q, do, lse, Δ) in scratch
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * nk), [&](int i) {
              const int r = i / nk, j = i % nk;
              R ds = 0;
              if (s0 + j <= t0 + r) {
                const R *q = Qs + r * ld, *g = Gs + r * ld, *k = Ks + j * ld, *v = Vs + j * ld;
                R s = 0, dp = 0;
                for (int d = 0; d < hd; ++d) s += q[d] * k[d];
                for (int d = 0; d < hd; ++d) dp += g[d] * v[d];
                ds = kmath::exp_vec(s - Ls[r]) * (dp - Ds[r]) * scale;
              }
              dS[r * KB + j] = ds;
            });
            team.team_barrier();  // dS in scratch
            Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
              const int r = i / hd, d = i % hd;
              R dq = 0;
              for (int j = 0; j < nk; ++j) dq += dS[r * KB + j] * Ks[j * ld + d];
              dQs[r * ld + d] += dq;
            });
          }
          team.team_barrier();
          Kokkos::parallel_for(Kokkos::TeamVectorRange(team, nq * hd), [&](int i) {
            const int r = i / hd, d = i % hd;
            dqkv(base + t0 + r, h * hd + d) = dQs[r * ld + d];
          });
        });
  }
}

}  // namespace wavres::device
