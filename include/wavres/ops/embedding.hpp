// Token + position embedding.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// What the backward reads and writes (host and device bodies take the same struct).
template <class R, class Exec>
struct EmbeddingBackwardArgs {
  Mat<R, Exec> dE_tok, dE_pos;      // [V, D], [T, D]; both +=
  Mat<const R, Exec> dx0;           // [B·T, D]
  Mat<const int32_t, Exec> tokens;  // [B, T+1]
  int T;
  View3<R, Exec> partial;  // [embedding_partial_chunks, V, D]; allocated here when too small
};

}  // namespace wavres

#include "wavres/ops/embedding/device.hpp"
#include "wavres/ops/embedding/host.hpp"

namespace wavres {

// Row chunks of the token gradient's partials on Exec (the first extent of `partial`).
template <class Exec>
int64_t embedding_partial_chunks(int64_t V, int64_t D) {
  return use_device_body_v<Exec> ? device::embedding_token_chunks(V, D) : int64_t(kRowChunks);
}

// Forward:  x0[b·T+t, :] = E_tok[tok[b,t], :] + E_pos[t, :]
// tokens is [B, T+1] (inputs are columns 0..T-1).
template <class R, class Exec>
void embedding_forward(Mat<R, Exec> x0, Mat<const int32_t, Exec> tokens, Mat<const R, Exec> E_tok,
                       Mat<const R, Exec> E_pos, int T) {
  if constexpr (use_device_body_v<Exec>)
    device::embedding_forward<R, Exec>(x0, tokens, E_tok, E_pos, T);
  else
    host::embedding_forward<R, Exec>(x0, tokens, E_tok, E_pos, T);
}

// Backward: dE_tok[v, :] += Σ_{(b,t): tok=v} dx0[b·T+t, :],   dE_pos[t, :] += Σ_b dx0[b·T+t, :]
// The token sums go per row chunk into `partial` [chunks, V, D], then are summed in chunk order: no atomics,
// and the same sums in the same order on every run.
template <class R, class Exec>
void embedding_backward(Mat<R, Exec> dE_tok, Mat<R, Exec> dE_pos, Mat<const R, Exec> dx0,
                        Mat<const int32_t, Exec> tokens, int T, View3<R, Exec> partial = {}) {
  const EmbeddingBackwardArgs<R, Exec> a{dE_tok, dE_pos, dx0, tokens, T, partial};
  if constexpr (use_device_body_v<Exec>)
    device::embedding_backward<R, Exec>(a);
  else
    host::embedding_backward<R, Exec>(a);
}

}  // namespace wavres
