// AdamW with global-norm gradient clipping over the flat parameter buffer (spec §6), one fused kernel.
#pragma once
#include <cmath>
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, clip_norm = 1.0;
};

// ‖g‖₂ over all parameters, accumulated in double. A non-finite result means some gradient is non-finite.
template <class R, class Exec>
double global_grad_norm(View1<const R, Exec> g) {
  double ss = 0;
  Kokkos::parallel_reduce(
      "grad_norm", Range<Exec>(0, g.extent(0)),
      KOKKOS_LAMBDA(int64_t i, double& acc) { acc += double(g(i)) * double(g(i)); }, ss);
  return std::sqrt(ss);
}

// One AdamW step, t = 1-based step count for bias correction; decayed parameters are [0, decay_end).
// grad_scale multiplies g first (1/R for the sum over R data-parallel ranks); grad_norm is that of the scaled
// g.
//   g ← g·min(1, clip/(‖g‖+1e-6));  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//   p ← p − lr·wd·p  (decayed only);  p ← p − lr · (m/(1−β1ᵗ)) / (sqrt(v/(1−β2ᵗ)) + eps)
template <class R, class Exec>
void adamw_step(View1<R, Exec> p, View1<const R, Exec> g, View1<R, Exec> m, View1<R, Exec> v,
                int64_t decay_end, double lr, int64_t t, double grad_norm, const AdamWConfig& c,
                double grad_scale = 1.0) {
  // as torch.nn.utils.clip_grad_norm_; one multiplier, so the 1/R of data parallelism costs no pass of its
  // own
  const R clip = R(std::fmin(1.0, c.clip_norm / (grad_norm + 1e-6)) * grad_scale);
  const R b1 = R(c.beta1), b2 = R(c.beta2), eps = R(c.eps), lr_r = R(lr), wd = R(lr * c.weight_decay);
  const R bc1 = R(1.0 / (1.0 - std::pow(c.beta1, double(t))));
  const R bc2 = R(1.0 / (1.0 - std::pow(c.beta2, double(t))));
  Kokkos::parallel_for(
      "adamw_step", Range<Exec>(0, p.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        const R gi = g(i) * clip;
        const R mi = b1 * m(i) + (R(1) - b1) * gi;
        const R vi = b2 * v(i) + (R(1) - b2) * gi * gi;
        m(i) = mi;
        v(i) = vi;
        R pi = p(i);
        if (i < decay_end) pi -= wd * pi;
        p(i) = pi - lr_r * (mi * bc1) / (kmath::sqrt(vi * bc2) + eps);
      });
}

}  // namespace wavres
