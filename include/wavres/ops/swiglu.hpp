// SwiGLU activation between the MLP's two projections: a = silu(g) ⊙ u, with gu = [g | u] from one fused
// gemm.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"
#include "wavres/ops/swiglu/device.hpp"
#include "wavres/ops/swiglu/host.hpp"

namespace wavres {

// Forward:  a[i,f] = silu(gu[i,f]) · gu[i,F+f],   silu(x) = x·σ(x)
template <class R, class Exec>
void swiglu_forward(Mat<R, Exec> a, Mat<const R, Exec> gu) {
  if constexpr (use_device_body_v<Exec>)
    device::swiglu_forward<R, Exec>(a, gu);
  else
    host::swiglu_forward<R, Exec>(a, gu);
}

// Backward: dg = da · u · σ(g)(1 + g(1−σ(g))),   du = da · silu(g)
template <class R, class Exec>
void swiglu_backward(Mat<R, Exec> dgu, Mat<const R, Exec> da, Mat<const R, Exec> gu) {
  if constexpr (use_device_body_v<Exec>)
    device::swiglu_backward<R, Exec>(dgu, da, gu);
  else
    host::swiglu_backward<R, Exec>(dgu, da, gu);
}

}  // namespace wavres
