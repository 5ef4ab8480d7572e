// Softmax cross-entropy over the vocabulary, fused with its gradient.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/ops/cross_entropy/device.hpp"
#include "wavres/ops/cross_entropy/host.hpp"

namespace wavres {

// Forward:  loss = (1/N) Σ_i ( log Σ_v exp(z_iv) − z_i,y_i ),  accumulated in double.
// Backward (when with_grad, written over the logits in place):  dz_iv = (softmax(z_i)_v − [v = y_i]) / N
// targets(b, t+1) is the target of row b·T+t (tokens is [B, T+1]).
// The loss is a Kokkos reduction: per-thread (host) or per-block (CUDA) partials combined in a fixed order,
// so a given backend and thread count gives the same bits on every run.
template <class R, class Exec>
double cross_entropy_forward_backward(Mat<R, Exec> logits, Mat<const int32_t, Exec> tokens, int T,
                                      bool with_grad) {
  if constexpr (use_device_body_v<Exec>)
    return device::cross_entropy_forward_backward<R, Exec>(logits, tokens, T, with_grad);
  else
    return host::cross_entropy_forward_backward<R, Exec>(logits, tokens, T, with_grad);
}

}  // namespace wavres
