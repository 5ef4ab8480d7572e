// RMSNorm (spec §0):  ρ(x) = sqrt(mean_d x_d² + 1e-6),  y = g ⊙ x / ρ(x), per token row.
#pragma once
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

constexpr double kRmsEps = 1e-6;

// What the backward reads and writes (host and device bodies take the same struct).
template <class R, class Exec>
struct RmsNormBackwardArgs {
  Mat<R, Exec> dx;             // [N, D], = or += (accumulate)
  Vec<R, Exec> dg;             // [D], +=
  Mat<const R, Exec> dy, x;    // [N, D]
  Vec<const R, Exec> rstd, g;  // [N], [D]
  bool accumulate;
  View2<R, Exec> partial;  // [chunks, D] per-chunk dg partials; allocated here when too small
};

}  // namespace wavres

#include "wavres/ops/rmsnorm/device.hpp"
#include "wavres/ops/rmsnorm/host.hpp"

namespace wavres {

// Forward: y = g ⊙ x · r with r = 1/ρ(x); r is kept for the backward pass.
template <class R, class Exec>
void rmsnorm_forward(Mat<R, Exec> y, Vec<R, Exec> rstd, Mat<const R, Exec> x, Vec<const R, Exec> g) {
  if constexpr (use_device_body_v<Exec>)
    device::rmsnorm_forward<R, Exec>(y, rstd, x, g);
  else
    host::rmsnorm_forward<R, Exec>(y, rstd, x, g);
}

// Backward, with x̂ = x·r:
//   dx = r · ( g⊙dy − x̂ · mean_d(g⊙dy⊙x̂) )       (accumulate: dx += instead of =)
//   dg += Σ_rows dy ⊙ x̂                           (per row chunk into `partial` [chunks, D], then summed in
//                                                  chunk order: no atomics, the same sums on every run)
template <class R, class Exec>
void rmsnorm_backward(Mat<R, Exec> dx, Vec<R, Exec> dg, Mat<const R, Exec> dy, Mat<const R, Exec> x,
                      Vec<const R, Exec> rstd, Vec<const R, Exec> g, bool accumulate = false,
                      View2<R, Exec> partial = {}) {
  const RmsNormBackwardArgs<R, Exec> a{dx, dg, dy, x, rstd, g, accumulate, partial};
  if constexpr (use_device_body_v<Exec>)
    device::rmsnorm_backward<R, Exec>(a);
  else
    host::rmsnorm_backward<R, Exec>(a);
}

}  // namespace wavres
