// The depth mixer (spec §2), shared by Full AttnRes, Block AttnRes and WAV v1.
// One consumer c mixes n sources v_j (rows of the source bank) per token:
//   u_j = v_j / ρ(v_j),   s_j = ⟨w_c ⊙ g_c, u_j⟩ + β_{c,kind(j)},   α = softmax_j(s),   h_c = Σ_j α_j v_j
// 1/ρ(v_j) is computed once per source when it is written (rinv), not once per consumer.
//
// Bodies: mixer/host.hpp (a thread per token row or row chunk, vectorised over d), mixer/device.hpp (teams
// of rows, lanes over d); use_device_body_v<Exec> picks one (core/exec_traits.hpp).
#pragma once
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Where a consumer's sources live. `slot`/`kind` are the model's whole source table; entries start..start+n-1
// belong to this consumer; alpha rows start..start+n-1 hold its weights.
template <class Exec>
struct MixerSources {
  View1<int, Exec> slot, kind;
  int start = 0, n = 0;
};

// Forward: writes h [N,D] and α (alpha(start+j, i)); beta is the consumer's detail-bias row (extent 0 =
// none).
template <class R, class Exec>
struct MixerForwardArgs {
  Mat<R, Exec> h;
  View2<R, Exec> alpha;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  MixerSources<Exec> src;
  Vec<const R, Exec> w, g, beta;
};

// The per-token, per-source scalars of the mixer backward below, shared by every kernel that applies it:
//   δ = α (⟨G,v⟩ − ⟨G,h⟩),   c1 = δ/ρ,   c2 = (δ/ρ²)(⟨q̂,u⟩/D),   so that  ∂v += α G + c1 q̂ − c2 v,  r += c1
//   v.
template <class R>
struct MixerGradCoeffs {
  R delta, c1, c2;
};
template <class R>
KOKKOS_INLINE_FUNCTION MixerGradCoeffs<R> mixer_grad_coeffs(R a, R gv, R gh, R qv, R ri, int64_t D) {
  const R delta = a * (gv - gh);
  return {delta, delta * ri, delta * ri * ri * (qv * ri) / R(D)};
}

// Backward, per token with G = ∂loss/∂h_c, q̂ = w ⊙ g:
//   δ_j = α_j ⟨G, v_j − h_c⟩
//   ∂v_j += α_j G + (δ_j/ρ_j) (q̂ − (⟨q̂,u_j⟩/D) u_j)
//   r = Σ_j δ_j u_j,  ksum[k] = Σ_{j of kind k} δ_j      (summed per row chunk into r_part / k_part)
// then over the chunks: ∂w += g ⊙ Σ r,  ∂g += w ⊙ Σ r,  ∂β_k += Σ ksum[k].
// `first` names the sources whose ∂v row this call writes first in a backward pass: those rows are assigned
// (=) instead of accumulated (+=), so the source-gradient bank never needs zeroing (a 19-slot fill is ~9 ms
// of a 12-layer WAV step).
enum class FirstWrite { none, all, last };

// One consumer's parameter gradients, accumulated (+=): query, key gain, detail bias (extent 0 = none).
template <class R, class Exec>
struct MixerParamGrads {
  Vec<R, Exec> dw, dg, dbeta;
};
template <class R, class Exec>
struct MixerBackwardArgs {
  View3<R, Exec> dbank;
  MixerParamGrads<R, Exec> grads;
  View2<R, Exec> r_part, k_part;  // scratch: [row_chunks_v<Exec>, D] and [row_chunks_v<Exec>, 2]
  Mat<const R, Exec> G, h;
  View2<const R, Exec> alpha;
  View3<const R, Exec> bank;
  View2<const R, Exec> rinv;
  MixerSources<Exec> src;
  Vec<const R, Exec> w, g;
  FirstWrite first = FirstWrite::none;
};

}  // namespace wavres

#include "wavres/routing/mixer/device.hpp"
#include "wavres/routing/mixer/host.hpp"

namespace wavres {

template <class R, class Exec>
void mixer_forward(const MixerForwardArgs<R, Exec>& a) {
  if constexpr (use_device_body_v<Exec>)
    device::mixer_forward(a);
  else
    host::mixer_forward(a);
}
template <class R, class Exec>
void mixer_forward(Mat<R, Exec> h, View2<R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                   MixerSources<Exec> src, Vec<const R, Exec> w, Vec<const R, Exec> g,
                   Vec<const R, Exec> beta) {
  mixer_forward(MixerForwardArgs<R, Exec>{h, alpha, bank, rinv, src, w, g, beta});
}

// ∂w += g ⊙ Σ_c r_part(c), ∂g += w ⊙ Σ_c r_part(c): the query and key-gain gradients of one consumer from the
// per-row-chunk partials of r = Σ_j (δ_j/ρ_j) v_j (chunk order fixed: deterministic).
template <class R, class Exec>
void mixer_param_grads(Vec<R, Exec> dw, Vec<R, Exec> dg, View2<const R, Exec> r_part, Vec<const R, Exec> w,
                       Vec<const R, Exec> g) {
  if constexpr (use_device_body_v<Exec>)
    device::mixer_param_grads<R, Exec>(dw, dg, r_part, w, g);
  else
    host::mixer_param_grads<R, Exec>(dw, dg, r_part, w, g);
}

template <class R, class Exec>
void mixer_backward(MixerBackwardArgs<R, Exec> a) {
  constexpr int C = row_chunks_v<Exec>;
  const int64_t D = a.h.extent(1);
  // a smaller scratch gets a private one (tests do this)
  if (a.r_part.extent(0) < size_t(C) || a.r_part.extent(1) < size_t(D))
    a.r_part = View2<R, Exec>("mixer_r_part", C, D);
  if (a.k_part.extent(0) < size_t(C) || a.k_part.extent(1) < 2)
    a.k_part = View2<R, Exec>("mixer_k_part", C, 2);
  if constexpr (use_device_body_v<Exec>)
    device::mixer_backward(a);
  else
    host::mixer_backward(a);
}
template <class R, class Exec>
void mixer_backward(View3<R, Exec> dbank, Vec<R, Exec> dw, Vec<R, Exec> dg, Vec<R, Exec> dbeta,
                    View2<R, Exec> r_part, View2<R, Exec> k_part, Mat<const R, Exec> G, Mat<const R, Exec> h,
                    View2<const R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                    MixerSources<Exec> src, Vec<const R, Exec> w, Vec<const R, Exec> g,
                    FirstWrite first = FirstWrite::none) {
  mixer_backward(MixerBackwardArgs<R, Exec>{
      dbank, {dw, dg, dbeta}, r_part, k_part, G, h, alpha, bank, rinv, src, w, g, first});
}

// 1/ρ of one bank slot, per token: rinv(slot, i) = 1/sqrt(mean_d v² + 1e-6).
template <class R, class Exec>
void source_rinv(View2<R, Exec> rinv, View3<const R, Exec> bank, int slot) {
  if constexpr (use_device_body_v<Exec>)
    device::source_rinv<R, Exec>(rinv, bank, slot);
  else
    host::source_rinv<R, Exec>(rinv, bank, slot);
}

// Mean of each α row over tokens (the /routing/alpha_mean statistic), into out[start .. start+n). One body:
// a diagnostic read at logging steps, not part of the training step.
template <class R, class Exec>
void alpha_row_means(View1<double, Exec> out, View2<const R, Exec> alpha) {
  const int64_t N = alpha.extent(1);
  Kokkos::parallel_for(
      "alpha_row_means", Range<Exec>(0, alpha.extent(0)), KOKKOS_LAMBDA(int64_t e) {
        double acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += double(alpha(e, i));
        out(e) = acc / double(N);
      });
}

}  // namespace wavres
