// The decoder-only Transformer with compile-time residual routing (spec §0–§5).
//
// Data flow of one training step (forward, then backward in reverse sublayer order):
//   tokens -> embedding -> x0 ─┬─ PreNorm: h_{l+1} = h_l + y_l
//                              └─ routed:  x0 and the updates y_l go into a source bank; each consumer mixes
//                                          its sources (routing/mixer.hpp) into h_l
//   h_l -> RMSNorm -> attention or SwiGLU MLP -> y_l          (odd l = attention, even l = MLP)
//   h_out -> RMSNorm -> LM head -> cross-entropy
// Every activation that backward needs is kept in slabs allocated once in the constructor: a step allocates
// nothing.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include "wavres/core/types.hpp"
#include "wavres/data/corpus.hpp"
#include "wavres/model/params.hpp"
#include "wavres/ops/attention.hpp"
#include "wavres/ops/cross_entropy.hpp"
#include "wavres/ops/embedding.hpp"
#include "wavres/ops/linear.hpp"
#include "wavres/ops/rmsnorm.hpp"
#include "wavres/ops/swiglu.hpp"
#include "wavres/routing/accumulate.hpp"
#include "wavres/routing/mixer.hpp"
#include "wavres/routing/sources.hpp"
#include "wavres/routing/two_phase.hpp"

namespace wavres {

template <class Spec, class R = float, class Exec = Kokkos::DefaultExecutionSpace>
class Model {
 public:
  using spec = Spec;
  using real = R;
  using exec = Exec;
  static constexpr int L = Spec::L;
  static constexpr int NL = Spec::n_layer;
  static constexpr Variant variant = Spec::variant;

  explicit Model(const Dims& d)
      : dims_(checked(d)), table_(make_param_table<Spec>(d)), src_(make_source_list<Spec>()) {
    const int64_t N = d.rows(), D = d.D, F = d.F;
    params_ = View1<R, Exec>("params", table_.total);
    grads_ = View1<R, Exec>("grads", table_.total);
    hbuf_ = View3<R, Exec>("h", L + 1, N, D);
    xn_ = View3<R, Exec>("xn", L, N, D);
    rstd_ = View2<R, Exec>("rstd", L + 1, N);
    qkv_ = View3<R, Exec>("qkv", NL, N, 3 * D);
    att_ = View3<R, Exec>("att", NL, N, D);
    lse_ = View2<R, Exec>("lse", NL, int64_t(d.B) * d.H * d.T);
    gu_ = View3<R, Exec>("gu", NL, N, 2 * F);
    act_ = View3<R, Exec>("act", NL, N, F);
    xnf_ = View2<R, Exec>("xnf", N, D);
    logits_ = View2<R, Exec>("logits", N, d.V);
    dh_ = View2<R, Exec>("dh", N, D);
    dres_ = View2<R, Exec>("dres", N, D);
    dy_ = View2<R, Exec>("dy", N, D);
    dxn_ = View2<R, Exec>("dxn", N, D);
    datt_ = View2<R, Exec>("datt", N, D);
    dqkv_ = View2<R, Exec>("dqkv", N, 3 * D);
    dgu_ = View2<R, Exec>("dgu", N, 2 * F);
    dact_ = View2<R, Exec>("dact", N, F);
    attn_scratch_ = attention_scratch<R, Exec>(d.B, d.T, d.H, d.D);
    norm_partial_ = View2<R, Exec>("rmsnorm_partial", row_chunks_v<Exec>, D);
    embed_partial_ = View3<R, Exec>("embedding_partial", embedding_partial_chunks<Exec>(d.V, D), d.V, D);
    if constexpr (Spec::routed) {
      bank_ = View3<R, Exec>("bank", Spec::bank_size, N, D);
      dbank_ = View3<R, Exec>("dbank", Spec::bank_size, N, D);
      rinv_ = View2<R, Exec>("rinv", Spec::bank_size, N);
      alpha_ = View2<R, Exec>("alpha", src_.total(), N);
      r_scratch_ = View2<R, Exec>("mixer_r", row_chunks_v<Exec>, D);
      ksum_ = View2<R, Exec>("mixer_ksum", row_chunks_v<Exec>, 2);
      alpha_means_ = View1<double, Exec>("alpha_means", src_.total());
      slot_ = View1<int, Exec>("src_slot", src_.total());
      kind_ = View1<int, Exec>("src_kind", src_.total());
      auto hs = Kokkos::create_mirror_view(slot_);
      auto hk = Kokkos::create_mirror_view(kind_);
      for (int e = 0; e < src_.total(); ++e) hs(e) = src_.bank[e], hk(e) = src_.kind[e];
      Kokkos::deep_copy(slot_, hs);
      Kokkos::deep_copy(kind_, hk);
    }
    if constexpr (is_blocked(variant)) {
      constexpr int S = Spec::S;
      static_assert(S <= kMaxBlockSublayers, "block size above kMaxBlockSublayers (two-phase mixer scratch)");
      apart_ = View3<R, Exec>("mixer_block_partial", S, N, D);
      mpart_ = View2<R, Exec>("mixer_block_max", S, N);
      lpart_ = View2<R, Exec>("mixer_block_sum", S, N);
      qhat_ = View2<R, Exec>("mixer_block_qhat", S, D);
      rblock_ = View3<R, Exec>("mixer_block_r_part", row_chunks_v<Exec>, S, D);
      kblock_ = View3<R, Exec>("mixer_block_k_part", row_chunks_v<Exec>, S, 2);
      block_starts_ = View1<int, Exec>("mixer_block_starts", Spec::N * S);
      auto h = Kokkos::create_mirror_view(block_starts_);
      for (int c = 0; c < L; ++c) h(c) = src_.start[c];
      Kokkos::deep_copy(block_starts_, h);
    }
    if constexpr (variant == Variant::wav_v1) kappa_ = View3<R, Exec>("kappa", Spec::N, 2, N);
    for (int i = 0; i < NL; ++i) {
      const std::string p = "layers/" + std::to_string(i) + "/";
      layer_[i] = {table_.at(p + "attn/wq").offset,        table_.at(p + "attn/wo").offset,
                   table_.at(p + "mlp/w_gate").offset,     table_.at(p + "mlp/w_down").offset,
                   table_.at(p + "attn_norm/gain").offset, table_.at(p + "mlp_norm/gain").offset};
    }
    off_tok_ = table_.at("embed/token").offset;
    off_pos_ = table_.at("embed/position").offset;
    off_head_ = table_.at("lm_head").offset;
    off_gf_ = table_.at("final_norm/gain").offset;
    if constexpr (Spec::routed) {
      off_query_ = table_.at("routing/query").offset;
      off_kgain_ = table_.at("routing/key_gain").offset;
    }
    if constexpr (variant == Variant::wav_v1) off_dbias_ = table_.at("routing/detail_bias").offset;
  }

  const Dims& dims() const { return dims_; }
  const ParamTable& table() const { return table_; }
  const SourceList& sources() const { return src_; }
  View1<R, Exec> params() const { return params_; }
  View1<R, Exec> grads() const { return grads_; }
  // What incremental decoding (model/decoder.hpp) reads after a forward: layer k's q|k|v rows [B·T, 3D] and
  // the logits [B·T, V] (kept by forward(tokens, false); with_grad overwrites them with their gradient).
  Mat<const R, Exec> layer_qkv(int k) const { return slot(qkv_, k); }
  Mat<const R, Exec> logits() const { return slot2(logits_); }

  // Spec §6 init, drawn on the host from one seeded stream in table order, so every backend starts from the
  // same numbers. query_std = 0 gives the pinned zero pseudo-queries.
  void init_params(uint64_t seed, double query_std = 0.0) {
    Rng rng(seed);
    auto h = Kokkos::create_mirror_view(params_);
    Kokkos::deep_copy(h, R(0));
    const double std_scaled = 0.02 / std::sqrt(2.0 * NL);
    for (auto& e : table_.entries)
      for (int64_t k = 0; k < e.size(); ++k) {
        R& v = h(e.offset + k);
        switch (e.init) {
          case ParamEntry::normal:
            v = R(0.02 * rng.normal());
            break;
          case ParamEntry::normal_scaled:
            v = R(std_scaled * rng.normal());
            break;
          case ParamEntry::ones:
            v = R(1);
            break;
          case ParamEntry::zeros:
            v = R(0);
            break;
          case ParamEntry::query:
            v = query_std > 0 ? R(query_std * rng.normal()) : R(0);
            break;
          case ParamEntry::detail_bias:
            v = R(-2);
            break;
        }
      }
    Kokkos::deep_copy(params_, h);
  }

  // Mean cross-entropy (nats) of a batch; tokens is [B, T+1]. Keeps what backward needs.
  double forward(View2<int32_t, Exec> tokens, bool with_grad = true) {
    const Dims& d = dims_;
    const int64_t N = d.rows();
    auto tok = Mat<const int32_t, Exec>(tokens.data(), tokens.extent(0), tokens.extent(1));
    Mat<R, Exec> x0 = Spec::routed ? slot(bank_, 0) : slot(hbuf_, 0);
    embedding_forward<R, Exec>(x0, tok, cP(off_tok_, d.V, d.D), cP(off_pos_, d.T, d.D), d.T);
    if constexpr (Spec::routed) source_rinv<R, Exec>(rinv_, bank_, 0);

    for (int l = 1; l <= L; ++l) {
      const int c = l - 1;
      Mat<R, Exec> h = slot(hbuf_, c);
      if constexpr (is_blocked(variant)) {
        if (two_phase_)
          block_mix_forward(l);
        else
          mix_forward(c);
      } else if constexpr (Spec::routed) {
        mix_forward(c);
      }
      // where y_l goes: PreNorm adds it onto a copy of h_l (beta = 1 fuses the residual into the gemm)
      Mat<R, Exec> y;
      R beta = 0;
      if constexpr (variant == Variant::prenorm) {
        y = slot(hbuf_, l);
        // On the execution space's queue: the plain deep_copy fences the device, 2L times a step on a GPU.
        Kokkos::deep_copy(Exec(), y, h);
        beta = 1;
      } else if constexpr (variant == Variant::full_attnres) {
        y = slot(bank_, l);
      } else {
        y = mat<R, Exec>(dy_.data(), N, d.D);  // dy_ doubles as the forward scratch for y_l
      }
      sublayer_forward(l, h, y, beta);
      if constexpr (variant == Variant::full_attnres) source_rinv<R, Exec>(rinv_, bank_, l);
      if constexpr (is_blocked(variant)) {
        constexpr int S = Spec::S;
        const int n = (l - 1) / S + 1, i = (l - 1) % S + 1, out = (n - 1) * S + i;
        block_accumulate_forward<R, Exec>(bank_, rinv_, out, i == 1 ? -1 : out - 1, y);
        if constexpr (variant == Variant::wav_v1)
          if (i == S)
            wav_details_forward<R, Exec>(bank_, rinv_, kappa_slot(n - 1), (n - 1) * S + 1, S,
                                         phase_slot<Spec>(n), split_slot<Spec>(n), frozen_kappa_);
      }
    }
    if constexpr (Spec::routed) mix_forward(L);
    auto xnf = slot2(xnf_);
    rmsnorm_forward<R, Exec>(xnf, row(rstd_, L), slot(hbuf_, L), cV(off_gf_, d.D));
    auto logits = slot2(logits_);
    linear_forward<R, Exec>(logits, xnf, cP(off_head_, d.V, d.D));
    return cross_entropy_forward_backward<R, Exec>(logits, tok, d.T, with_grad);
  }

  // ∂loss/∂params of the last forward (which must have had with_grad), written over grads().
  void backward(View2<int32_t, Exec> tokens) {
    const Dims& d = dims_;
    const int64_t N = d.rows(), D = d.D;
    auto tok = Mat<const int32_t, Exec>(tokens.data(), tokens.extent(0), tokens.extent(1));
    // Queued on Exec, no fence. dbank_ needs no zeroing: each slot's first writer assigns (mixer.hpp).
    Kokkos::deep_copy(Exec(), grads_, R(0));

    auto dxn = slot2(dxn_);
    linear_backward<R, Exec>(dxn, gP(off_head_, d.V, D), slot2(logits_), slot2(xnf_), cP(off_head_, d.V, D));
    Mat<R, Exec> dtop = variant == Variant::prenorm ? slot2(dres_) : slot2(dh_);
    rmsnorm_backward<R, Exec>(dtop, gV(off_gf_, D), dxn, slot(hbuf_, L), row(rstd_, L), cV(off_gf_, D), false,
                              norm_partial_);
    if constexpr (Spec::routed)
      mix_backward(L, sources_of(L), slot2(dh_), FirstWrite::all);  // uses every slot

    auto acc = slot2(dres_);  // Block/WAV one-phase: suffix sum of the block's slot gradients
    for (int l = L; l >= 1; --l) {
      const int c = l - 1;
      Mat<R, Exec> dY;
      if constexpr (variant == Variant::prenorm) {
        dY = slot2(dres_);
      } else if constexpr (variant == Variant::full_attnres) {
        dY = slot(dbank_, l);
      } else {
        constexpr int S = Spec::S;
        const int n = (l - 1) / S + 1, i = (l - 1) % S + 1;
        const R cp = R(phase_sign(l)), cs = R(split_sign(i, S));
        const bool wav = variant == Variant::wav_v1;
        const int pslot = wav ? phase_slot<Spec>(n) : -1, sslot = wav ? split_slot<Spec>(n) : -1;
        Mat<const R, Exec> kap;
        if constexpr (variant == Variant::wav_v1) kap = kappa_slot(n - 1);
        if (two_phase_) {  // i < S: dy_ already holds dy_l (mixer_block_partial_backward at sublayer l+1)
          if (i == S)
            block_last_update_backward<R, Exec>(slot2(dy_), dbank_, n * S, pslot, sslot, kap, cp, cs);
          dY = slot2(dy_);
        } else {
          block_accumulate_backward<R, Exec>(slot2(dy_), acc, dbank_, (n - 1) * S + i, i == S, pslot, sslot,
                                             kap, cp, cs);
          dY = wav ? slot2(dy_) : acc;
        }
      }
      sublayer_backward(l, dY);  // leaves ∂loss/∂(normed input) in dxn
      const auto& lp = layer_[c / 2];
      const int64_t goff = (l % 2 == 1) ? lp.g_attn : lp.g_mlp;
      if constexpr (variant == Variant::prenorm) {
        rmsnorm_backward<R, Exec>(slot2(dres_), gV(goff, D), dxn, slot(hbuf_, c), row(rstd_, c), cV(goff, D),
                                  true, norm_partial_);
      } else {
        // ∂h_c; the two-phase backward keeps the block's S of them (in apart_, free in backward)
        Mat<R, Exec> G = slot2(dh_);
        if constexpr (is_blocked(variant))
          if (two_phase_) G = slot(apart_, (l - 1) % Spec::S);
        rmsnorm_backward<R, Exec>(G, gV(goff, D), dxn, slot(hbuf_, c), row(rstd_, c), cV(goff, D), false,
                                  norm_partial_);
        if constexpr (is_blocked(variant)) {
          // one-phase: a consumer past its block's first position is the only reader of its running partial
          if (two_phase_)
            block_mix_backward(l);
          else
            mix_backward(c, sources_of(c), G, (l - 1) % Spec::S ? FirstWrite::last : FirstWrite::none);
        } else {
          mix_backward(c, sources_of(c), G, FirstWrite::none);
        }
      }
    }
    Mat<R, Exec> dx0 = Spec::routed ? slot(dbank_, 0) : slot2(dres_);
    embedding_backward<R, Exec>(gP(off_tok_, d.V, D), gP(off_pos_, d.T, D), dx0, tok, d.T, embed_partial_);
  }

  // Testing hook (WAV v1): reuse the RMS-matching factors κ of the previous forward, so that finite
  // differences see κ as the constant the spec's stop-gradient makes it.
  void freeze_kappa(bool on) { frozen_kappa_ = on; }
  // Block/WAV: evaluate the mixer in two phases (routing/two_phase.hpp; the default) or consumer by consumer.
  void set_two_phase(bool on) { two_phase_ = on; }

  double loss_and_grad(View2<int32_t, Exec> tokens) {
    const double loss = forward(tokens, true);
    backward(tokens);
    return loss;
  }

  // Per consumer, the mixer weights of the last forward averaged over its tokens: [L+1, n_max] row-major,
  // NaN where a consumer has fewer sources (the /routing/alpha_mean layout). Empty for PreNorm.
  std::vector<float> alpha_mean() {
    if constexpr (!Spec::routed) return {};
    alpha_row_means<R, Exec>(alpha_means_, alpha_);
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), alpha_means_);
    const int nmax = src_.max_count();
    std::vector<float> out(size_t(L + 1) * nmax, std::numeric_limits<float>::quiet_NaN());
    for (int c = 0; c <= L; ++c)
      for (int j = 0; j < src_.count(c); ++j) out[size_t(c) * nmax + j] = float(h(src_.start[c] + j));
    return out;
  }
  std::vector<std::string> source_labels() const {
    const int nmax = src_.max_count();
    std::vector<std::string> out(size_t(L + 1) * nmax);
    for (int c = 0; c <= L; ++c)
      for (int j = 0; j < src_.count(c); ++j) out[size_t(c) * nmax + j] = src_.label[src_.start[c] + j];
    return out;
  }

  // What the constructor will allocate, in bytes, computed without allocating (for the up-front memory check;
  // test_training checks it against bytes_allocated()).
  static int64_t bytes_required(const Dims& d) {
    const int64_t N = d.rows(), D = d.D, F = d.F, BHT = int64_t(d.B) * d.H * d.T;
    const int64_t P = make_param_table<Spec>(d).total;
    int64_t idx_bytes = 0;
    int64_t n = 2 * P;                                                            // params, grads
    n += (L + 1) * N * D + L * N * D + (L + 1) * N;                               // h, xn, rstd
    n += NL * (N * 3 * D + N * D + BHT + N * 2 * F + N * F);                      // qkv, att, lse, gu, act
    n += N * D + N * d.V + 5 * N * D + N * 3 * D + N * 2 * F + N * F;             // xnf, logits, scratch
    n += int64_t(attention_scratch_size<Exec>(d.B, d.T, d.H, d.D));               // attention scratch
    constexpr int64_t C = row_chunks_v<Exec>;
    n += C * D + embedding_partial_chunks<Exec>(d.V, D) * d.V * D;                // reduction partials
    if constexpr (Spec::routed) {
      const int64_t E = make_source_list<Spec>().total();
      n += 2 * Spec::bank_size * N * D + Spec::bank_size * N + E * N + C * (D + 2);
      idx_bytes += E * int64_t(sizeof(double) + 2 * sizeof(int));  // alpha_means_, slot_, kind_
    }
    if constexpr (is_blocked(variant)) {
      n += Spec::S * N * D + 2 * Spec::S * N + Spec::S * D + C * Spec::S * (D + 2);
      idx_bytes += Spec::N * Spec::S * int64_t(sizeof(int));  // block_starts_
    }
    if constexpr (variant == Variant::wav_v1) n += Spec::N * 2 * N;
    return n * int64_t(sizeof(R)) + idx_bytes;
  }

  // Bytes held by activations, scratch and parameters (+grads), for reports.
  int64_t bytes_allocated() const {
    int64_t n = 0;
    auto add = [&](auto& v) {
      n += int64_t(v.span()) * int64_t(sizeof(typename std::decay_t<decltype(v)>::value_type));
    };
    add(params_), add(grads_), add(hbuf_), add(xn_), add(rstd_), add(qkv_), add(att_), add(lse_), add(gu_);
    add(act_), add(xnf_), add(logits_), add(dh_), add(dres_), add(dy_), add(dxn_), add(datt_), add(dqkv_);
    add(dgu_), add(dact_), add(bank_), add(dbank_), add(rinv_), add(alpha_), add(r_scratch_), add(ksum_);
    add(kappa_), add(attn_scratch_), add(norm_partial_), add(embed_partial_);
    add(apart_), add(mpart_), add(lpart_), add(qhat_), add(rblock_), add(kblock_), add(alpha_means_),
        add(slot_);
    add(kind_);
    add(block_starts_);
    return n;
  }

 private:
  struct LayerOffsets {
    int64_t wqkv, wo, wgu, wdown, g_attn, g_mlp;
  };

  static const Dims& checked(const Dims& d) {
    d.validate();
    return d;
  }

  // Sub-views by pointer arithmetic: host code must not call operator() on device views (Kokkos aborts).
  Mat<R, Exec> slot(View3<R, Exec> v, int s) const {
    return Mat<R, Exec>(v.data() + size_t(s) * v.extent(1) * v.extent(2), v.extent(1), v.extent(2));
  }
  Vec<R, Exec> row(View2<R, Exec> v, int i) const {
    return Vec<R, Exec>(v.data() + size_t(i) * v.extent(1), v.extent(1));
  }
  Mat<R, Exec> slot2(View2<R, Exec> v) const { return Mat<R, Exec>(v.data(), v.extent(0), v.extent(1)); }
  Mat<R, Exec> kappa_slot(int n) const { return slot(kappa_, n); }
  Mat<const R, Exec> cP(int64_t off, int64_t r, int64_t c) const {
    return Mat<const R, Exec>(params_.data() + off, r, c);
  }
  Mat<R, Exec> gP(int64_t off, int64_t r, int64_t c) const { return Mat<R, Exec>(grads_.data() + off, r, c); }
  Vec<const R, Exec> cV(int64_t off, int64_t n) const { return Vec<const R, Exec>(params_.data() + off, n); }
  Vec<R, Exec> gV(int64_t off, int64_t n) const { return Vec<R, Exec>(grads_.data() + off, n); }

  MixerSources<Exec> sources_of(int c) const { return {slot_, kind_, src_.start[c], src_.count(c)}; }
  Vec<const R, Exec> beta_row(int c) const {
    if constexpr (variant == Variant::wav_v1) return cV(off_dbias_ + 2 * c, 2);
    return {};
  }

  void mix_forward(int c) {
    const int64_t D = dims_.D;
    mixer_forward<R, Exec>(slot(hbuf_, c), alpha_, bank_, rinv_, sources_of(c), cV(off_query_ + c * D, D),
                           cV(off_kgain_ + c * D, D), beta_row(c));
  }
  // Block/WAV forward mixing of sublayer l: phase 1 for the whole block at its first sublayer, then the
  // merge.
  void block_mix_forward(int l) {
    constexpr int S = Spec::S;
    const int64_t D = dims_.D;
    const int n = (l - 1) / S + 1, i = (l - 1) % S + 1, c0 = (n - 1) * S, c = l - 1;
    const int nc = src_.count(c0);
    if (i == 1) {
      mixer_block_queries<R, Exec>(slot2(qhat_), cP(off_query_ + c0 * D, S, D),
                                   cP(off_kgain_ + c0 * D, S, D));
      Mat<const R, Exec> beta;
      if constexpr (variant == Variant::wav_v1) beta = cP(off_dbias_ + 2 * c0, S, 2);
      mixer_block_phase1<R, Exec>(apart_, mpart_, lpart_, alpha_, bank_, rinv_, slot_, kind_, block_starts_,
                                  c0, S, nc, slot2(qhat_), beta);
    }
    mixer_block_merge<R, Exec>(slot(hbuf_, c), alpha_, bank_, rinv_, apart_, mpart_, lpart_, slot2(qhat_),
                               i - 1, src_.start[c], nc, i >= 2 ? c0 + i - 1 : -1);
  }

  // Block/WAV backward mixing of sublayer l (see two_phase.hpp): the running partial now, straight into the
  // previous sublayer's update gradient dy_; G_p is already kept in apart_(p) for the block's completed
  // sources, which get all S consumers' gradient at the block's first sublayer.
  void block_mix_backward(int l) {
    constexpr int S = Spec::S;
    const int64_t N = dims_.rows(), D = dims_.D;
    const int n = (l - 1) / S + 1, p = (l - 1) % S, c0 = (n - 1) * S, c = l - 1;
    const int nc = src_.count(c0);
    if (p >= 1) {
      // the running partial b^p, fused with dy_l -> dy_{l-1}: tp = cp_{l-1} - cp_l, ts = cs_p - cs_{p+1}
      const R tp = R(phase_sign(l - 1) - phase_sign(l)), ts = R(split_sign(p, S) - split_sign(p + 1, S));
      const bool wav = variant == Variant::wav_v1;
      Mat<const R, Exec> kap;
      if constexpr (variant == Variant::wav_v1) kap = kappa_slot(n - 1);
      mixer_block_partial_backward<R, Exec>(
          slot2(dy_), gV(off_query_ + c * D, D), gV(off_kgain_ + c * D, D), r_scratch_, slot(apart_, p),
          slot(hbuf_, c), alpha_, src_.start[c] + nc, bank_, rinv_, c0 + p, cV(off_query_ + c * D, D),
          cV(off_kgain_ + c * D, D), dbank_, wav ? phase_slot<Spec>(n) : -1, wav ? split_slot<Spec>(n) : -1,
          kap, tp, ts);
    }
    if (p == 0) {
      mixer_block_queries<R, Exec>(slot2(qhat_), cP(off_query_ + c0 * D, S, D),
                                   cP(off_kgain_ + c0 * D, S, D));
      Mat<R, Exec> dbeta;
      if constexpr (variant == Variant::wav_v1) dbeta = gP(off_dbias_ + 2 * c0, S, 2);
      mixer_block_backward_completed<R, Exec>(
          dbank_, gP(off_query_ + c0 * D, S, D), gP(off_kgain_ + c0 * D, S, D), dbeta, rblock_, kblock_,
          apart_, View3<const R, Exec>(hbuf_.data() + size_t(c0) * N * D, S, N, D), alpha_, bank_, rinv_,
          slot_, kind_, block_starts_, c0, S, nc, slot2(qhat_), cP(off_query_ + c0 * D, S, D),
          cP(off_kgain_ + c0 * D, S, D));
    }
  }

  // Consumer c's mixer backward over `src` (all its sources, or only the running partial), from G = ∂h_c.
  void mix_backward(int c, MixerSources<Exec> src, Mat<R, Exec> G, FirstWrite first) {
    const int64_t D = dims_.D;
    Vec<R, Exec> dbeta;
    if constexpr (variant == Variant::wav_v1) dbeta = gV(off_dbias_ + 2 * c, 2);
    mixer_backward<R, Exec>(dbank_, gV(off_query_ + c * D, D), gV(off_kgain_ + c * D, D), dbeta, r_scratch_,
                            ksum_, G, slot(hbuf_, c), alpha_, bank_, rinv_, src, cV(off_query_ + c * D, D),
                            cV(off_kgain_ + c * D, D), first);
  }

  // y (=, or += with beta = 1) f_l(h): attention for odd l, SwiGLU MLP for even l.
  void sublayer_forward(int l, Mat<R, Exec> h, Mat<R, Exec> y, R beta) {
    const Dims& d = dims_;
    const int64_t N = d.rows(), D = d.D, F = d.F;
    const int c = l - 1, k = c / 2;
    const auto& lp = layer_[k];
    auto xn = slot(xn_, c);
    Vec<R, Exec> rstd = row(rstd_, c);
    if (l % 2 == 1) {
      rmsnorm_forward<R, Exec>(xn, rstd, h, cV(lp.g_attn, D));
      auto qkv = slot(qkv_, k);
      linear_forward<R, Exec>(qkv, xn, cP(lp.wqkv, 3 * D, D));
      auto att = slot(att_, k);
      attention_forward<R, Exec>(att, row(lse_, k), qkv, attn_scratch_, d.B, d.T, d.H);
      linear_forward<R, Exec>(y, att, cP(lp.wo, D, D), beta);
    } else {
      rmsnorm_forward<R, Exec>(xn, rstd, h, cV(lp.g_mlp, D));
      auto gu = slot(gu_, k);
      linear_forward<R, Exec>(gu, xn, cP(lp.wgu, 2 * F, D));
      auto act = slot(act_, k);
      swiglu_forward<R, Exec>(act, gu);
      linear_forward<R, Exec>(y, act, cP(lp.wdown, D, F), beta);
    }
  }

  // From ∂loss/∂y_l to ∂loss/∂xn_l (left in dxn_), accumulating the sublayer's weight gradients.
  void sublayer_backward(int l, Mat<R, Exec> dY) {
    const Dims& d = dims_;
    const int64_t D = d.D, F = d.F;
    const int c = l - 1, k = c / 2;
    const auto& lp = layer_[k];
    auto dxn = slot2(dxn_);
    if (l % 2 == 1) {
      auto datt = slot2(datt_);
      linear_backward<R, Exec>(datt, gP(lp.wo, D, D), dY, slot(att_, k), cP(lp.wo, D, D));
      auto dqkv = slot2(dqkv_);
      attention_backward<R, Exec>(dqkv, datt, slot(att_, k), row(lse_, k), slot(qkv_, k), attn_scratch_, d.B,
                                  d.T, d.H);
      linear_backward<R, Exec>(dxn, gP(lp.wqkv, 3 * D, D), dqkv, slot(xn_, c), cP(lp.wqkv, 3 * D, D));
    } else {
      auto dact = slot2(dact_);
      linear_backward<R, Exec>(dact, gP(lp.wdown, D, F), dY, slot(act_, k), cP(lp.wdown, D, F));
      auto dgu = slot2(dgu_);
      swiglu_backward<R, Exec>(dgu, dact, slot(gu_, k));
      linear_backward<R, Exec>(dxn, gP(lp.wgu, 2 * F, D), dgu, slot(xn_, c), cP(lp.wgu, 2 * F, D));
    }
  }

  Dims dims_;
  ParamTable table_;
  SourceList src_;
  View1<R, Exec> params_, grads_;
  View3<R, Exec> hbuf_, xn_, qkv_, att_, gu_, act_, bank_, dbank_, kappa_;
  View2<R, Exec> rstd_, lse_, xnf_, logits_, dh_, dres_, dy_, dxn_, datt_, dqkv_, dgu_, dact_;
  View2<R, Exec> rinv_, alpha_, r_scratch_, ksum_;
  View1<double, Exec> alpha_means_;
  View1<R, Exec> attn_scratch_;
  View2<R, Exec> norm_partial_;
  View3<R, Exec> embed_partial_;
  View1<int, Exec> slot_, kind_;
  LayerOffsets layer_[NL];
  bool frozen_kappa_ = false;
  bool two_phase_ = true;
  View3<R, Exec> apart_, rblock_, kblock_;
  View2<R, Exec> mpart_, lpart_, qhat_;
  View1<int, Exec> block_starts_;
  int64_t off_tok_ = 0, off_pos_ = 0, off_head_ = 0, off_gf_ = 0, off_query_ = 0, off_kgain_ = 0,
          off_dbias_ = 0;
};

}  // namespace wavres
