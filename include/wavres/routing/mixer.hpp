// The depth mixer (spec §2), shared by Full AttnRes, Block AttnRes and WAV v1.
// One consumer c mixes n sources v_j (rows of the source bank) per token:
//   u_j = v_j / ρ(v_j),   s_j = ⟨w_c ⊙ g_c, u_j⟩ + β_{c,kind(j)},   α = softmax_j(s),   h_c = Σ_j α_j v_j
// 1/ρ(v_j) is computed once per source when it is written (rinv), not once per consumer.
#pragma once
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
void mixer_forward(Mat<R, Exec> h, View2<R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                   MixerSources<Exec> src, Vec<const R, Exec> w, Vec<const R, Exec> g,
                   Vec<const R, Exec> beta) {
  const int64_t D = h.extent(1);
  const int start = src.start, n = src.n;
  const bool has_beta = beta.extent(0) > 0;
  auto slot = src.slot;
  auto kind = src.kind;
  Kokkos::parallel_for(
      "mixer_forward", Range<Exec>(0, h.extent(0)), KOKKOS_LAMBDA(int64_t i) {
        R smax = R(-1e30);
        const R* KOKKOS_RESTRICT wr = w.data();
        const R* KOKKOS_RESTRICT gr = g.data();
        for (int j = 0; j < n; ++j) {
          const int sj = slot(start + j);
          const R* KOKKOS_RESTRICT v = &bank(sj, i, 0);
          R dot = 0;
          WAVRES_SIMD_SUM(dot)
          for (int64_t d = 0; d < D; ++d) dot += wr[d] * gr[d] * v[d];
          const int k = kind(start + j);
          const R s = dot * rinv(sj, i) + (has_beta && k > 0 ? beta(k - 1) : R(0));
          alpha(start + j, i) = s;
          smax = s > smax ? s : smax;
        }
        R sum = 0;
        for (int j = 0; j < n; ++j) {
          const R e = kmath::exp(alpha(start + j, i) - smax);
          alpha(start + j, i) = e;
          sum += e;
        }
        const R inv = R(1) / sum;
        R* KOKKOS_RESTRICT hr = &h(i, 0);
        for (int64_t d = 0; d < D; ++d) hr[d] = 0;
        for (int j = 0; j < n; ++j) {
          const R a = alpha(start + j, i) * inv;
          alpha(start + j, i) = a;
          const R* KOKKOS_RESTRICT v = &bank(slot(start + j), i, 0);
          for (int64_t d = 0; d < D; ++d) hr[d] += a * v[d];
        }
      });
}

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

// ∂w += g ⊙ Σ_c r_part(c), ∂g += w ⊙ Σ_c r_part(c): the query and key-gain gradients of one consumer from the
// per-row-chunk partials of r = Σ_j (δ_j/ρ_j) v_j (chunk order fixed: deterministic).
template <class R, class Exec>
void mixer_param_grads(Vec<R, Exec> dw, Vec<R, Exec> dg, View2<const R, Exec> r_part, Vec<const R, Exec> w,
                       Vec<const R, Exec> g) {
  Kokkos::parallel_for(
      "mixer_backward_params", Range<Exec>(0, w.extent(0)), KOKKOS_LAMBDA(int64_t d) {
        R acc = 0;
        for (int c = 0; c < kRowChunks; ++c) acc += r_part(c, d);
        dw(d) += g(d) * acc;
        dg(d) += w(d) * acc;
      });
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
template <class R, class Exec>
void mixer_backward(View3<R, Exec> dbank, Vec<R, Exec> dw, Vec<R, Exec> dg, Vec<R, Exec> dbeta,
                    View2<R, Exec> r_part, View2<R, Exec> k_part, Mat<const R, Exec> G, Mat<const R, Exec> h,
                    View2<const R, Exec> alpha, View3<const R, Exec> bank, View2<const R, Exec> rinv,
                    MixerSources<Exec> src, Vec<const R, Exec> w, Vec<const R, Exec> g,
                    FirstWrite first = FirstWrite::none) {
  const int64_t N = h.extent(0), D = h.extent(1);
  const int start = src.start, n = src.n;
  const bool has_beta = dbeta.extent(0) > 0;
  auto slot = src.slot;
  auto kind = src.kind;
  // the partials are [kRowChunks, D] and [kRowChunks, 2]; a smaller scratch gets a private one (tests do
  // this)
  if (r_part.extent(0) < size_t(kRowChunks) || r_part.extent(1) < size_t(D))
    r_part = View2<R, Exec>("mixer_r_part", kRowChunks, D);
  if (k_part.extent(0) < size_t(kRowChunks) || k_part.extent(1) < 2)
    k_part = View2<R, Exec>("mixer_k_part", kRowChunks, 2);
  Kokkos::parallel_for(
      "mixer_backward", Range<Exec>(0, kRowChunks), KOKKOS_LAMBDA(int64_t c) {
        R* KOKKOS_RESTRICT r = &r_part(c, 0);
        const R* KOKKOS_RESTRICT wr = w.data();
        const R* KOKKOS_RESTRICT gr = g.data();
        for (int64_t d = 0; d < D; ++d) r[d] = 0;
        R ks[2] = {0, 0};
        for (int64_t i = N * c / kRowChunks; i < N * (c + 1) / kRowChunks; ++i) {
          const R* KOKKOS_RESTRICT Gi = &G(i, 0);
          const R* KOKKOS_RESTRICT hi = &h(i, 0);
          R gh = 0;
          WAVRES_SIMD_SUM(gh)
          for (int64_t d = 0; d < D; ++d) gh += Gi[d] * hi[d];
          for (int j = 0; j < n; ++j) {
            const int sj = slot(start + j);
            const R* KOKKOS_RESTRICT v = &bank(sj, i, 0);
            R* KOKKOS_RESTRICT dv = &dbank(sj, i, 0);
            R gv = 0, qv = 0;
            WAVRES_SIMD_SUM(gv, qv)
            for (int64_t d = 0; d < D; ++d) {
              gv += Gi[d] * v[d];
              qv += wr[d] * gr[d] * v[d];
            }
            const R a = alpha(start + j, i);
            const auto [delta, c1, c2] = mixer_grad_coeffs(a, gv, gh, qv, rinv(sj, i), D);
            const bool assign = first == FirstWrite::all || (first == FirstWrite::last && j == n - 1);
            for (int64_t d = 0; d < D; ++d) {
              const R t = a * Gi[d] + c1 * wr[d] * gr[d] - c2 * v[d];
              dv[d] = assign ? t : dv[d] + t;
              r[d] += c1 * v[d];
            }
            const int k = kind(start + j);
            if (k > 0) ks[k - 1] += delta;
          }
        }
        if (has_beta) {
          k_part(c, 0) = ks[0];
          k_part(c, 1) = ks[1];
        }
      });
  mixer_param_grads<R, Exec>(dw, dg, r_part, w, g);
  if (has_beta)
    Kokkos::parallel_for(
        "mixer_backward_beta", Range<Exec>(0, 2), KOKKOS_LAMBDA(int64_t k) {
          R acc = 0;
          for (int c = 0; c < kRowChunks; ++c) acc += k_part(c, k);
          dbeta(k) += acc;
        });
}

// 1/ρ of one bank slot, per token: rinv(slot, i) = 1/sqrt(mean_d v² + 1e-6).
template <class R, class Exec>
void source_rinv(View2<R, Exec> rinv, View3<const R, Exec> bank, int slot) {
  const int64_t D = bank.extent(2);
  Kokkos::parallel_for(
      "source_rinv", Range<Exec>(0, bank.extent(1)), KOKKOS_LAMBDA(int64_t i) {
        R ss = 0;
        WAVRES_SIMD_SUM(ss)
        for (int64_t d = 0; d < D; ++d) ss += bank(slot, i, d) * bank(slot, i, d);
        rinv(slot, i) = R(1) / kmath::sqrt(ss / R(D) + R(1e-6));
      });
}

// Mean of each α row over tokens (the /routing/alpha_mean statistic), into out[start .. start+n).
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
