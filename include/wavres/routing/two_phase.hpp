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
//
// Bodies: two_phase/host.hpp (a thread per token row or row chunk), two_phase/device.hpp (teams of rows or
// chunks, lanes over d); use_device_body_v<Exec> picks one.
#pragma once
#include <stdexcept>
#include <string>
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/routing/accumulate.hpp"
#include "wavres/routing/mixer.hpp"

namespace wavres {

constexpr int kMaxBlockSublayers = 64;

// The completed-source table of one block: consumers soff .. soff+S-1 (block positions p = 0..S-1), consumer
// p's entries start at starts(soff + p), and the first nc entries of every consumer are the completed
// sources C_n (same slots and kinds for all p).
template <class Exec>
struct BlockSources {
  View1<int, Exec> slot, kind, starts;
  int soff = 0, S = 0, nc = 0;
};
// Phase 1's per-consumer softmax state over C_n, per token: a_p (apart(p, i, :)), m_p (mpart), l_p (lpart).
template <class R, class Exec>
struct BlockPartials {
  View3<R, Exec> apart;
  View2<R, Exec> mpart, lpart;
};
// A block's S consumers' parameter gradients, accumulated (+=): [S, D] rows of ∂query and ∂key_gain, [S, 2]
// rows of ∂detail_bias (null = none).
template <class R, class Exec>
struct BlockParamGrads {
  Mat<R, Exec> dW, dG, dbeta;
};

// Phase 1: leaves e^{s_pj − m_p} in alpha(starts(soff+p) + j, i), and a_p, m_p, l_p in part. beta is the
// block's [S, 2] detail-bias rows (null = none).
template <class R, class Exec>
struct MixerBlockPhase1Args {
  BlockPartials<R, Exec> part;
  View2<R, Exec> alpha;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  BlockSources<Exec> src;
  Mat<const R, Exec> qhat, beta;
};
// Phase 2 for the consumer at block position p, whose mixer entries start at `start` (partial_slot < 0 at
// p = 0: no partial source yet).
template <class R, class Exec>
struct MixerBlockMergeArgs {
  Mat<R, Exec> h;
  View2<R, Exec> alpha;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  BlockPartials<const R, Exec> part;
  Mat<const R, Exec> qhat;
  int p = 0, start = 0, nc = 0, partial_slot = -1;
};
// Backward of the running partial b^p (bank slot pslot, mixer entry `entry`) of the consumer with query w,
// key gain g; dy holds dy_l and becomes dy_{l-1}; tp, ts are the detail-sign changes (see below).
// r_part [row_chunks_v<Exec>, D] is scratch.
template <class R, class Exec>
struct MixerBlockPartialBackwardArgs {
  Mat<R, Exec> dy;
  MixerParamGrads<R, Exec> grads;  // dw, dg (no dbeta: the running partial is a summary source)
  View2<R, Exec> r_part;
  Mat<const R, Exec> G, h;
  View2<const R, Exec> alpha;
  int entry = 0;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  int pslot = 0;
  Vec<const R, Exec> w, g;
  View3<const R, Exec> dbank;
  DetailGrads<R, Exec> details;
  R tp = 0, ts = 0;
};
// Backward of the completed sources from all S consumers: G_p = gsave(p), h_p = hs(p); r_part
// [row_chunks_v<Exec>, S, D] and k_part [row_chunks_v<Exec>, S, 2] are scratch.
template <class R, class Exec>
struct MixerBlockBackwardArgs {
  View3<R, Exec> dbank;
  BlockParamGrads<R, Exec> grads;
  View3<R, Exec> r_part, k_part;
  View3<const R, Exec> gsave, hs;
  View2<const R, Exec> alpha;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  BlockSources<Exec> src;
  Mat<const R, Exec> qhat, w, g;
};

// q̂_p = w_p ⊙ g_p for the block's consumers, once per block. One body: a flat elementwise range suits both.
namespace device {
inline LaunchShape mixer_block_queries_launch(int64_t S, int64_t D) {
  return {S * D, 1, 1};
}
}  // namespace device
template <class R, class Exec>
void mixer_block_queries(Mat<R, Exec> qhat, Mat<const R, Exec> w, Mat<const R, Exec> g) {
  const int64_t D = w.extent(1);
  Kokkos::parallel_for(
      "mixer_block_queries", Range<Exec>(0, device::mixer_block_queries_launch(w.extent(0), D).league),
      KOKKOS_LAMBDA(int64_t k) { qhat(k / D, k % D) = w(k / D, k % D) * g(k / D, k % D); });
}

}  // namespace wavres

#include "wavres/routing/two_phase/device.hpp"
#include "wavres/routing/two_phase/host.hpp"

namespace wavres {

// Phase 1 (see the top of this file).
template <class R, class Exec>
void mixer_block_phase1(const MixerBlockPhase1Args<R, Exec>& a) {
  if constexpr (use_device_body_v<Exec>)
    device::mixer_block_phase1(a);
  else
    host::mixer_block_phase1(a);
}
template <class R, class Exec>
void mixer_block_phase1(View3<R, Exec> apart, View2<R, Exec> mpart, View2<R, Exec> lpart,
                        View2<R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                        View1<int, Exec> slot, View1<int, Exec> kind, View1<int, Exec> starts, int soff,
                        int S, int nc, Mat<const R, Exec> qhat, Mat<const R, Exec> beta) {
  mixer_block_phase1(MixerBlockPhase1Args<R, Exec>{
      {apart, mpart, lpart}, alpha, bank, rinv, {slot, kind, starts, soff, S, nc}, qhat, beta});
}

// Phase 2 (see the top of this file).
template <class R, class Exec>
void mixer_block_merge(const MixerBlockMergeArgs<R, Exec>& a) {
  if constexpr (use_device_body_v<Exec>)
    device::mixer_block_merge(a);
  else
    host::mixer_block_merge(a);
}
template <class R, class Exec>
void mixer_block_merge(Mat<R, Exec> h, View2<R, Exec> alpha, View3<const R, Exec> bank,
                       View2<const R, Exec> rinv, View3<const R, Exec> apart, View2<const R, Exec> mpart,
                       View2<const R, Exec> lpart, Mat<const R, Exec> qhat, int p, int start, int nc,
                       int partial_slot) {
  mixer_block_merge(MixerBlockMergeArgs<R, Exec>{
      h, alpha, bank, rinv, {apart, mpart, lpart}, qhat, p, start, nc, partial_slot});
}

// Backward at block position p ≥ 1 (two-phase only), fused with the gradient recurrence of the block's
// updates. The running partial b^{p} (bank slot `pslot`, mixer entry `entry`) has this consumer as its only
// reader, so its gradient  ∂b^p = α G + (δ/ρ)(q̂ − (⟨q̂,u⟩/D) u)  (mixer_backward with one source) is final
// here and need not be stored: it goes straight into the update gradient of the previous sublayer,
//   dy_{l-1} = Σ_{k≥p} ∂b^k + cp_{l-1}·κ_π ∂π̃ + cs_{l-1}·κ_σ ∂σ̃ = dy_l + ∂b^p + tp·κ_π ∂π̃ + ts·κ_σ ∂σ̃,
// with tp = cp_{l-1} − cp_l = ±2 and ts = cs_{l-1} − cs_l ∈ {0, 2} (accumulate.hpp), updated in place in dy
// (which held dy_l, already consumed by sublayer l's backward). Block AttnRes: dy_{l-1} = dy_l + ∂b^p.
template <class R, class Exec>
void mixer_block_partial_backward(const MixerBlockPartialBackwardArgs<R, Exec>& a) {
  if (a.r_part.extent(0) < size_t(row_chunks_v<Exec>) || a.r_part.extent(1) < a.h.extent(1))
    throw std::invalid_argument(
        "mixer_block_partial_backward: r_part must be at least [" + std::to_string(row_chunks_v<Exec>) +
        ", D], got [" + std::to_string(a.r_part.extent(0)) + ", " + std::to_string(a.r_part.extent(1)) + "]");
  if constexpr (use_device_body_v<Exec>)
    device::mixer_block_partial_backward(a);
  else
    host::mixer_block_partial_backward(a);
}
template <class R, class Exec>
void mixer_block_partial_backward(Mat<R, Exec> dy, Vec<R, Exec> dw, Vec<R, Exec> dg, View2<R, Exec> r_part,
                                  Mat<const R, Exec> G, Mat<const R, Exec> h, View2<const R, Exec> alpha,
                                  int entry, View3<const R, Exec> bank, View2<const R, Exec> rinv, int pslot,
                                  Vec<const R, Exec> w, Vec<const R, Exec> g, View3<const R, Exec> dbank,
                                  int phase_slot, int split_slot, Mat<const R, Exec> kappa, R tp, R ts) {
  mixer_block_partial_backward(MixerBlockPartialBackwardArgs<R, Exec>{dy,
                                                                      {dw, dg, {}},
                                                                      r_part,
                                                                      G,
                                                                      h,
                                                                      alpha,
                                                                      entry,
                                                                      bank,
                                                                      rinv,
                                                                      pslot,
                                                                      w,
                                                                      g,
                                                                      dbank,
                                                                      {phase_slot, split_slot, kappa},
                                                                      tp,
                                                                      ts});
}

// Backward phase 2, once per block: the completed sources C_n (the first nc entries of every consumer) get
// the gradient of all S consumers (see the top of this file).
template <class R, class Exec>
void mixer_block_backward_completed(const MixerBlockBackwardArgs<R, Exec>& a) {
  const size_t C = row_chunks_v<Exec>, S = size_t(a.src.S), D = a.bank.extent(2);
  if (a.r_part.extent(0) != C || a.r_part.extent(1) != S || a.r_part.extent(2) != D ||
      a.k_part.extent(0) != C || a.k_part.extent(1) != S || a.k_part.extent(2) != 2)
    throw std::invalid_argument(
        "mixer_block_backward_completed: scratch must be [" + std::to_string(C) + ", " + std::to_string(S) +
        ", D|2], got r_part [" + std::to_string(a.r_part.extent(0)) + ", " +
        std::to_string(a.r_part.extent(1)) + ", " + std::to_string(a.r_part.extent(2)) + "]");
  if constexpr (use_device_body_v<Exec>)
    device::mixer_block_backward_completed(a);
  else
    host::mixer_block_backward_completed(a);
}
template <class R, class Exec>
void mixer_block_backward_completed(View3<R, Exec> dbank, Mat<R, Exec> dW, Mat<R, Exec> dG,
                                    Mat<R, Exec> dbeta, View3<R, Exec> r_part, View3<R, Exec> k_part,
                                    View3<const R, Exec> gsave, View3<const R, Exec> hs,
                                    View2<const R, Exec> alpha, View3<const R, Exec> bank,
                                    View2<const R, Exec> rinv, View1<int, Exec> slot, View1<int, Exec> kind,
                                    View1<int, Exec> starts, int soff, int S, int nc, Mat<const R, Exec> qhat,
                                    Mat<const R, Exec> w, Mat<const R, Exec> g) {
  mixer_block_backward_completed(MixerBlockBackwardArgs<R, Exec>{dbank,
                                                                 {dW, dG, dbeta},
                                                                 r_part,
                                                                 k_part,
                                                                 gsave,
                                                                 hs,
                                                                 alpha,
                                                                 bank,
                                                                 rinv,
                                                                 {slot, kind, starts, soff, S, nc},
                                                                 qhat,
                                                                 w,
                                                                 g});
}

}  // namespace wavres
