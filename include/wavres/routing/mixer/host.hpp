// Host bodies of the depth mixer (routing/mixer.hpp has the math): one thread per token row (forward, 1/ρ)
// or per row chunk (backward, kRowChunks = 64: two CPU threads want few long stretches), each row's D
// features in one vectorised loop.
#pragma once
#include "wavres/routing/mixer.hpp"

namespace wavres::host {

template <class R, class Exec>
void mixer_forward(const MixerForwardArgs<R, Exec>& args) {
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto w = args.w, g = args.g, beta = args.beta;
  const int64_t D = h.extent(1);
  const int start = args.src.start, n = args.src.n;
  const bool has_beta = beta.extent(0) > 0;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
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

template <class R, class Exec>
void mixer_backward(const MixerBackwardArgs<R, Exec>& args) {
  auto dbank = args.dbank;
  auto dbeta = args.grads.dbeta;
  auto r_part = args.r_part;
  auto k_part = args.k_part;
  auto G = args.G;
  auto h = args.h;
  auto alpha = args.alpha;
  auto bank = args.bank;
  auto rinv = args.rinv;
  auto w = args.w, g = args.g;
  const FirstWrite first = args.first;
  const int64_t N = h.extent(0), D = h.extent(1);
  const int start = args.src.start, n = args.src.n;
  const bool has_beta = dbeta.extent(0) > 0;
  auto slot = args.src.slot;
  auto kind = args.src.kind;
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
  mixer_param_grads<R, Exec>(args.grads.dw, args.grads.dg, r_part, w, g);
  if (has_beta)
    Kokkos::parallel_for(
        "mixer_backward_beta", Range<Exec>(0, 2), KOKKOS_LAMBDA(int64_t k) {
          R acc = 0;
          for (int c = 0; c < kRowChunks; ++c) acc += k_part(c, k);
          dbeta(k) += acc;
        });
}

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

}  // namespace wavres::host
