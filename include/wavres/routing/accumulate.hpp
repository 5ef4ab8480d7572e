// Block-wise source accumulation for Block AttnRes and WAV v1 (spec §4, §5).
//
// Bodies: accumulate/host.hpp (a thread per token row), accumulate/device.hpp (rows over lanes, or flat
// element ranges); use_device_body_v<Exec> picks one.
#pragma once
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Spec §5 coefficients of the update y_l of sublayer l at block position i: phase +1 for attention (odd l),
// −1 for MLP; split +1 for i ≤ S/2, −1 after. S is even, so a block starts at an odd l and phase_sign(i)
// equals phase_sign(l).
KOKKOS_INLINE_FUNCTION constexpr int phase_sign(int l) {
  return l % 2 == 1 ? 1 : -1;
}
KOKKOS_INLINE_FUNCTION constexpr int split_sign(int i, int S) {
  return 2 * i <= S ? 1 : -1;
}

// Where WAV's detail gradients enter an update's gradient: the bank slots of ∂π̃_n, ∂σ̃_n and the block's
// stored κ [2, N] (phase_slot < 0: Block AttnRes, no details).
template <class R, class Exec>
struct DetailGrads {
  int phase_slot = -1, split_slot = -1;
  Mat<const R, Exec> kappa;
};

}  // namespace wavres

#include "wavres/routing/accumulate/device.hpp"
#include "wavres/routing/accumulate/host.hpp"

namespace wavres {

// Forward, after sublayer at position i of a block:
//   b^i = b^{i-1} + y        (b^0 = 0)      -> bank(out), and its 1/ρ into rinv(out)
// WAV's π and σ are not accumulated here: they are rebuilt from b^1..b^S when the block completes
// (wav_details_forward), which saves two read-modify-write passes per sublayer.
template <class R, class Exec>
void block_accumulate_forward(View3<R, Exec> bank, View2<R, Exec> rinv, int out, int prev,
                              Mat<const R, Exec> y) {
  if constexpr (use_device_body_v<Exec>)
    device::block_accumulate_forward<R, Exec>(bank, rinv, out, prev, y);
  else
    host::block_accumulate_forward<R, Exec>(bank, rinv, out, prev, y);
}

// WAV v1 details of a completed block n (spec §5), from its running partials b^1..b^S in bank slots
// first..first+S-1 (b_n = b^S). With y_k = b^k − b^{k-1} (b^0 = 0):
//   π_n = Σ_k cp_k y_k  (cp_k = +1 for attention, k odd),   σ_n = Σ_k cs_k y_k  (cs_k = +1 for k ≤ S/2)
// — the spec's signed sums of the updates, rounded like them to within a few ulps of |b| — then detached RMS
// matching:  κ_π = ρ(b_n)/ρ(π_n),  π̃_n = κ_π π_n;   κ_σ = ρ(b_n)/ρ(σ_n),  σ̃_n = κ_σ σ_n
// κ is stored (kappa(0|1, i)) because backward treats it as a constant: ∂π_n = κ_π ∂π̃_n.
// frozen_kappa reuses the stored κ instead of recomputing it: finite-difference checks need that, since a
// difference quotient of the forward would otherwise differentiate through the stop-gradient.
template <class R, class Exec>
void wav_details_forward(View3<R, Exec> bank, View2<R, Exec> rinv, Mat<R, Exec> kappa, int first, int S,
                         int phase_slot, int split_slot, bool frozen_kappa = false) {
  if constexpr (use_device_body_v<Exec>)
    device::wav_details_forward<R, Exec>(bank, rinv, kappa, first, S, phase_slot, split_slot, frozen_kappa);
  else
    host::wav_details_forward<R, Exec>(bank, rinv, kappa, first, S, phase_slot, split_slot, frozen_kappa);
}

// Backward for the sublayer at position i of block n. y_l enters b_n^i … b_n^S, so its gradient is the suffix
// sum of those slots' gradients, kept in `acc` while walking the block backwards:
//   acc = ∂b^S (i = S),  acc += ∂b^i (i < S);   dy = acc + cp·κ_π ∂π̃ + cs·κ_σ ∂σ̃  (WAV; Block: dy = acc)
template <class R, class Exec>
void block_accumulate_backward(Mat<R, Exec> dy, Mat<R, Exec> acc, View3<const R, Exec> dbank, int slot,
                               bool last, const DetailGrads<R, Exec>& details, R cp, R cs) {
  if constexpr (use_device_body_v<Exec>)
    device::block_accumulate_backward<R, Exec>(dy, acc, dbank, slot, last, details, cp, cs);
  else
    host::block_accumulate_backward<R, Exec>(dy, acc, dbank, slot, last, details, cp, cs);
}
template <class R, class Exec>
void block_accumulate_backward(Mat<R, Exec> dy, Mat<R, Exec> acc, View3<const R, Exec> dbank, int slot,
                               bool last, int phase_slot, int split_slot, Mat<const R, Exec> kappa, R cp,
                               R cs) {
  block_accumulate_backward<R, Exec>(dy, acc, dbank, slot, last, {phase_slot, split_slot, kappa}, cp, cs);
}

// Two-phase backward, last sublayer (i = S) of block n: dy = ∂b_n + cp·κ_π ∂π̃ + cs·κ_σ ∂σ̃  (Block: dy =
// ∂b_n). The block's earlier sublayers get theirs by the recurrence in mixer_block_partial_backward
// (two_phase.hpp).
template <class R, class Exec>
void block_last_update_backward(Mat<R, Exec> dy, View3<const R, Exec> dbank, int slot,
                                const DetailGrads<R, Exec>& details, R cp, R cs) {
  if constexpr (use_device_body_v<Exec>)
    device::block_last_update_backward<R, Exec>(dy, dbank, slot, details, cp, cs);
  else
    host::block_last_update_backward<R, Exec>(dy, dbank, slot, details, cp, cs);
}
template <class R, class Exec>
void block_last_update_backward(Mat<R, Exec> dy, View3<const R, Exec> dbank, int slot, int phase_slot,
                                int split_slot, Mat<const R, Exec> kappa, R cp, R cs) {
  block_last_update_backward<R, Exec>(dy, dbank, slot, {phase_slot, split_slot, kappa}, cp, cs);
}

}  // namespace wavres
