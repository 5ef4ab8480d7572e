// Causal multi-head self-attention core (the projections are linear layers around it).
// qkv is [B·T, 3D]: q in columns [0,D), k in [D,2D), v in [2D,3D); head h owns columns h·hd … (h+1)·hd−1 of
// each.
//
// Two bodies, picked by the execution space (core/exec_traits.hpp):
//   ops/attention/host.hpp    one work item per (batch, head), 4×16 register tiles: two CPU cores
//   ops/attention/device.hpp  FlashAttention-2 teams per (batch, head, query or key block): a GPU
// Neither ever stores a T×T matrix; both keep only lse and recompute p in backward.
#pragma once
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/types.hpp"
#include "wavres/ops/attention/args.hpp"
#include "wavres/ops/attention/device.hpp"
#include "wavres/ops/attention/host.hpp"

namespace wavres {

// Elements of the scratch view the selected body needs: the host body's transposed K, V, dK, dV per
// (b, h); the device body's Δ_t = do_t·o_t per (b, h, t) (its tiles live in team scratch).
template <class Exec>
size_t attention_scratch_size(int B, int T, int H, int D) {
  if constexpr (use_device_body_v<Exec>)
    return device::attention_scratch_elems(B, T, H);
  else
    return size_t(B) * H * host::attention_scratch_per_item(T, D / H);
}
template <class R, class Exec>
View1<R, Exec> attention_scratch(int B, int T, int H, int D) {
  return View1<R, Exec>("attention_scratch", attention_scratch_size<Exec>(B, T, H, D));
}

// Forward, per (b, h, t), with c = 1/sqrt(hd):
//   s_ts = c · q_t·k_s  (s ≤ t),   p_ts = softmax_s(s_ts),   o_t = Σ_s p_ts v_s,   lse_t = log Σ_s exp(s_ts)
// lse is kept so that backward recomputes p exactly instead of storing it.
template <class R, class Exec>
void attention_forward(const AttentionForwardArgs<R, Exec>& args) {
  if constexpr (use_device_body_v<Exec>)
    device::attention_forward(args);
  else
    host::attention_forward(args);
}
template <class R, class Exec>
void attention_forward(Mat<R, Exec> out, Vec<R, Exec> lse, Mat<const R, Exec> qkv, View1<R, Exec> scratch,
                       int B, int T, int H) {
  attention_forward(AttentionForwardArgs<R, Exec>{out, lse, qkv, scratch, B, T, H});
}

// Backward, per (b, h), with p_ts = exp(c·q_t·k_s − lse_t) recomputed and Δ_t = do_t · o_t:
//   dv_s += Σ_t p_ts do_t,   dp_ts = do_t · v_s,   ds_ts = p_ts (dp_ts − Δ_t)
//   dq_t  = c Σ_s ds_ts k_s,  dk_s += c Σ_t ds_ts q_t
// dqkv is overwritten. No atomics: every sum runs in a fixed order.
template <class R, class Exec>
void attention_backward(const AttentionBackwardArgs<R, Exec>& args) {
  if constexpr (use_device_body_v<Exec>)
    device::attention_backward(args);
  else
    host::attention_backward(args);
}
template <class R, class Exec>
void attention_backward(Mat<R, Exec> dqkv, Mat<const R, Exec> dout, Mat<const R, Exec> out,
                        Vec<const R, Exec> lse, Mat<const R, Exec> qkv, View1<R, Exec> scratch, int B, int T,
                        int H) {
  attention_backward(AttentionBackwardArgs<R, Exec>{dqkv, dout, out, lse, qkv, scratch, B, T, H});
}

}  // namespace wavres
