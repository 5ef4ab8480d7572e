// The arguments of attention_forward / attention_backward, shared by the public entry points
// (ops/attention.hpp) and both bodies (host.hpp, device.hpp), so that every body takes the same type.
#pragma once
#include "wavres/core/types.hpp"

namespace wavres {

constexpr int kMaxHeadDim = 256;  // Dims::validate() enforces it

// qkv is [B·T, 3D]: q in columns [0,D), k in [D,2D), v in [2D,3D); head h owns columns h·hd … (h+1)·hd−1 of
// each. lse is [B·H·T], lse(bh·T + t) with bh = b·H + h. scratch is attention_scratch<R, Exec>(B, T, H, D).
template <class R, class Exec>
struct AttentionForwardArgs {
  Mat<R, Exec> out;        // [B·T, D]
  Vec<R, Exec> lse;        // [B·H·T]
  Mat<const R, Exec> qkv;  // [B·T, 3D]
  View1<R, Exec> scratch;
  int B, T, H;
};

template <class R, class Exec>
struct AttentionBackwardArgs {
  Mat<R, Exec> dqkv;        // [B·T, 3D], overwritten
  Mat<const R, Exec> dout;  // [B·T, D]
  Mat<const R, Exec> out;   // [B·T, D], the forward's output
  Vec<const R, Exec> lse;   // [B·H·T], the forward's log-sum-exp
  Mat<const R, Exec> qkv;   // [B·T, 3D]
  View1<R, Exec> scratch;
  int B, T, H;
};

}  // namespace wavres
