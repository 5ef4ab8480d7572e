// Incremental (KV-cached) decoding of a Model, one token at a time (batch 1), for text generation.
//
// A new token at position t costs one token's forward: its q|k|v row is appended to each attention layer's
// cache and attention reads the cache (ops/attention_decode.hpp); every other op is the training op on one
// row. Routing needs no cache: a consumer mixes its sources along depth, never across tokens, so the source
// bank holds only the current token's sources ([bank_size, 1, D]) and the K/V caches are the whole state.
//
// The learned position table has T rows, so the window holds at most T tokens. When a token arrives at a full
// window, the window slides: the last `keep` tokens (default T−1) are re-encoded at positions 0..keep−1 by
// one full B = 1 forward of the model (prefill), then the new token is decoded at position keep. With the
// default every token past T re-encodes the window (as costly as re-running the full forward); a smaller keep
// re-encodes every T−keep tokens, at the price of a shorter context right after each slide.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>
#include "wavres/model/model.hpp"
#include "wavres/ops/attention_decode.hpp"

namespace wavres {

template <class Spec, class R = float, class Exec = Kokkos::DefaultExecutionSpace>
class Decoder {
 public:
  static constexpr int L = Spec::L;
  static constexpr int NL = Spec::n_layer;
  static constexpr Variant variant = Spec::variant;
  using HostLogits = typename View2<R, Exec>::HostMirror;

  // d.B is ignored (decoding is batch 1). Load parameters into params() before decoding.
  explicit Decoder(Dims d) : dims_(batch1(d)), full_(dims_), src_(make_source_list<Spec>()), keep_(d.T - 1) {
    const int64_t D = d.D, F = d.F, T = d.T;
    cache_ = View3<R, Exec>("kv_cache", NL, T, 3 * D);
    h_ = View3<R, Exec>("dec_h", L + 1, 1, D);
    xn_ = View2<R, Exec>("dec_xn", 1, D);
    rstd_ = View1<R, Exec>("dec_rstd", 1);
    att_ = View2<R, Exec>("dec_att", 1, D);
    gu_ = View2<R, Exec>("dec_gu", 1, 2 * F);
    act_ = View2<R, Exec>("dec_act", 1, F);
    y_ = View2<R, Exec>("dec_y", 1, D);
    xnf_ = View2<R, Exec>("dec_xnf", 1, D);
    logits_ = View2<R, Exec>("dec_logits", 1, d.V);
    logits_h_ = Kokkos::create_mirror_view(logits_);
    scores_ = View2<R, Exec>("dec_scores", d.H, T);
    tok_ = View2<int32_t, Exec>("dec_token", 1, 1);
    tok_h_ = Kokkos::create_mirror_view(tok_);
    window_ = View2<int32_t, Exec>("dec_window", 1, T + 1);
    window_h_ = Kokkos::create_mirror_view(window_);
    if constexpr (Spec::routed) {
      bank_ = View3<R, Exec>("dec_bank", Spec::bank_size, 1, D);
      rinv_ = View2<R, Exec>("dec_rinv", Spec::bank_size, 1);
      alpha_ = View2<R, Exec>("dec_alpha", src_.total(), 1);
      slot_ = View1<int, Exec>("dec_src_slot", src_.total());
      kind_ = View1<int, Exec>("dec_src_kind", src_.total());
      auto hs = Kokkos::create_mirror_view(slot_);
      auto hk = Kokkos::create_mirror_view(kind_);
      for (int e = 0; e < src_.total(); ++e) hs(e) = src_.bank[e], hk(e) = src_.kind[e];
      Kokkos::deep_copy(slot_, hs);
      Kokkos::deep_copy(kind_, hk);
    }
    if constexpr (variant == Variant::wav_v1) kappa_ = View2<R, Exec>("dec_kappa", 2, 1);
    const auto& t = full_.table();
    for (int i = 0; i < NL; ++i) {
      const std::string p = "layers/" + std::to_string(i) + "/";
      layer_[i] = {t.at(p + "attn/wq").offset,        t.at(p + "attn/wo").offset,
                   t.at(p + "mlp/w_gate").offset,     t.at(p + "mlp/w_down").offset,
                   t.at(p + "attn_norm/gain").offset, t.at(p + "mlp_norm/gain").offset};
    }
    off_tok_ = t.at("embed/token").offset;
    off_pos_ = t.at("embed/position").offset;
    off_head_ = t.at("lm_head").offset;
    off_gf_ = t.at("final_norm/gain").offset;
    if constexpr (Spec::routed) {
      off_query_ = t.at("routing/query").offset;
      off_kgain_ = t.at("routing/key_gain").offset;
    }
    if constexpr (variant == Variant::wav_v1) off_dbias_ = t.at("routing/detail_bias").offset;
  }

  const Dims& dims() const { return dims_; }
  const ParamTable& table() const { return full_.table(); }
  const SourceList& sources() const { return src_; }
  // Shared by the one-token path and the prefill model.
  View1<R, Exec> params() const { return full_.params(); }

  // Tokens kept when the window slides (1 ≤ keep ≤ T−1; default T−1).
  void set_keep(int keep) {
    if (keep < 1 || keep > dims_.T - 1)
      throw std::invalid_argument("the kept context must be in [1, " + std::to_string(dims_.T - 1) +
                                  "], got " + std::to_string(keep));
    keep_ = keep;
  }
  // Benchmark baseline: re-encode the whole window before every token instead of using the cache.
  void set_no_cache(bool on) { no_cache_ = on; }
  int position() const { return pos_; }  // tokens in the cache
  int slides() const { return slides_; }

  // Starts a new text: the prompt's last T tokens are the window (all but the newest prefilled), and the
  // newest is decoded. Returns the logits predicting the next token.
  const HostLogits& start(const std::vector<int32_t>& prompt) {
    if (prompt.empty()) throw std::invalid_argument("the prompt is empty");
    const size_t T = size_t(dims_.T), n = prompt.size(), first = n > T ? n - T : 0;
    history_.assign(prompt.begin() + long(first), prompt.end() - 1);
    prefill(history_);
    return decode(prompt.back());
  }

  // Appends one token (sliding the window first if it is full) and returns the logits predicting the next.
  const HostLogits& feed(int32_t token) {
    if (pos_ == dims_.T || no_cache_) {
      const size_t k = no_cache_ && pos_ < dims_.T ? history_.size() : size_t(keep_);
      if (history_.size() > k) history_.erase(history_.begin(), history_.end() - long(k));
      prefill(history_);
      if (!no_cache_) ++slides_;
    }
    return decode(token);
  }

  // The mixer weights of the last decoded token, per consumer over its sources: [L+1][n_max] row-major, NaN
  // where a consumer has fewer sources (the /routing/alpha_mean layout and labels). Empty for PreNorm.
  std::vector<float> routing() const {
    if constexpr (!Spec::routed) return {};
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), alpha_);
    const int nmax = src_.max_count();
    std::vector<float> out(size_t(L + 1) * nmax, std::numeric_limits<float>::quiet_NaN());
    for (int c = 0; c <= L; ++c)
      for (int j = 0; j < src_.count(c); ++j) out[size_t(c) * nmax + j] = float(h(src_.start[c] + j, 0));
    return out;
  }
  std::vector<std::string> source_labels() const { return full_.source_labels(); }

 private:
  struct LayerOffsets {
    int64_t wqkv, wo, wgu, wdown, g_attn, g_mlp;
  };
  static Dims batch1(Dims d) {
    d.B = 1;
    d.validate();
    return d;
  }

  // Re-encodes `tokens` (≤ T−1 of them) at positions 0.. with one full forward of the B = 1 model: causal
  // attention makes rows 0..n−1 of its q|k|v independent of the padding behind them.
  void prefill(const std::vector<int32_t>& tokens) {
    const int n = int(tokens.size());
    if (n >= dims_.T)
      throw std::logic_error("prefill of " + std::to_string(n) + " tokens into a window of T");
    pos_ = n;
    if (n == 0) return;
    for (int s = 0; s <= dims_.T; ++s) window_h_(0, s) = s < n ? tokens[size_t(s)] : 0;
    Kokkos::deep_copy(window_, window_h_);
    full_.forward(window_, false);
    for (int k = 0; k < NL; ++k) Kokkos::deep_copy(cache_layer(k), full_.layer_qkv(k));
  }

  // One token's forward at position pos_ (the steps of Model::forward on one row; routed variants mix with
  // the one-phase mixer, which the two-phase one equals up to rounding: test_routing_identities).
  const HostLogits& decode(int32_t token) {
    if (pos_ >= dims_.T)
      throw std::logic_error("decode past the window (position " + std::to_string(pos_) + ")");
    if (token < 0 || token >= dims_.V)
      throw std::invalid_argument("token id " + std::to_string(token) + " out of range");
    const Dims& d = dims_;
    const int64_t D = d.D;
    tok_h_(0, 0) = token;
    Kokkos::deep_copy(tok_, tok_h_);
    history_.push_back(token);
    if (history_.size() > size_t(d.T)) history_.erase(history_.begin());
    // x0 = E_tok[token] + E_pos[pos]: the embedding op on one row, with the position table starting at pos
    Mat<R, Exec> x0 = Spec::routed ? slot(bank_, 0) : slot(h_, 0);
    embedding_forward<R, Exec>(x0, Mat<const int32_t, Exec>(tok_.data(), 1, 1), cP(off_tok_, d.V, D),
                               cP(off_pos_ + int64_t(pos_) * D, 1, D), 1);
    if constexpr (Spec::routed) source_rinv<R, Exec>(rinv_, bank_, 0);
    for (int l = 1; l <= L; ++l) {
      const int c = l - 1;
      Mat<R, Exec> h = slot(h_, c);
      if constexpr (Spec::routed) mix(c, h);
      Mat<R, Exec> y;
      R beta = 0;
      if constexpr (variant == Variant::prenorm) {
        y = slot(h_, l);
        Kokkos::deep_copy(y, h);
        beta = 1;
      } else if constexpr (variant == Variant::full_attnres) {
        y = slot(bank_, l);
      } else {
        y = slot2(y_);
      }
      sublayer(l, h, y, beta);
      if constexpr (variant == Variant::full_attnres) source_rinv<R, Exec>(rinv_, bank_, l);
      if constexpr (is_blocked(variant)) {
        constexpr int S = Spec::S;
        const int n = (l - 1) / S + 1, i = (l - 1) % S + 1, out = (n - 1) * S + i;
        block_accumulate_forward<R, Exec>(bank_, rinv_, out, i == 1 ? -1 : out - 1, y);
        if constexpr (variant == Variant::wav_v1)
          if (i == S)
            wav_details_forward<R, Exec>(bank_, rinv_, slot2(kappa_), (n - 1) * S + 1, S, phase_slot<Spec>(n),
                                         split_slot<Spec>(n));
      }
    }
    if constexpr (Spec::routed) mix(L, slot(h_, L));
    rmsnorm_forward<R, Exec>(slot2(xnf_), Vec<R, Exec>(rstd_.data(), 1), slot(h_, L), cV(off_gf_, D));
    linear_forward<R, Exec>(slot2(logits_), slot2(xnf_), cP(off_head_, d.V, D));
    Kokkos::deep_copy(logits_h_, logits_);
    ++pos_;
    return logits_h_;
  }

  void mix(int c, Mat<R, Exec> h) {
    const int64_t D = dims_.D;
    Vec<const R, Exec> beta;
    if constexpr (variant == Variant::wav_v1) beta = cV(off_dbias_ + 2 * c, 2);
    mixer_forward<R, Exec>(h, alpha_, bank_, rinv_, {slot_, kind_, src_.start[c], src_.count(c)},
                           cV(off_query_ + c * D, D), cV(off_kgain_ + c * D, D), beta);
  }

  // y (=, or += with beta = 1) f_l(h) for the token at pos_: attention (its q|k|v row goes into the cache)
  // for odd l, SwiGLU MLP for even l.
  void sublayer(int l, Mat<R, Exec> h, Mat<R, Exec> y, R beta) {
    const Dims& d = dims_;
    const int64_t D = d.D, F = d.F;
    const int k = (l - 1) / 2;
    const auto& lp = layer_[k];
    auto xn = slot2(xn_);
    Vec<R, Exec> rstd(rstd_.data(), 1);
    if (l % 2 == 1) {
      rmsnorm_forward<R, Exec>(xn, rstd, h, cV(lp.g_attn, D));
      Mat<R, Exec> cache = cache_layer(k);
      linear_forward<R, Exec>(Mat<R, Exec>(cache.data() + int64_t(pos_) * 3 * D, 1, 3 * D), xn,
                              cP(lp.wqkv, 3 * D, D));
      attention_decode<R, Exec>(slot2(att_), cache, pos_, d.H, scores_);
      linear_forward<R, Exec>(y, slot2(att_), cP(lp.wo, D, D), beta);
    } else {
      rmsnorm_forward<R, Exec>(xn, rstd, h, cV(lp.g_mlp, D));
      linear_forward<R, Exec>(slot2(gu_), xn, cP(lp.wgu, 2 * F, D));
      swiglu_forward<R, Exec>(slot2(act_), slot2(gu_));
      linear_forward<R, Exec>(y, slot2(act_), cP(lp.wdown, D, F), beta);
    }
  }

  // Sub-views by pointer arithmetic (host code must not index device views).
  Mat<R, Exec> slot(View3<R, Exec> v, int s) const {
    return Mat<R, Exec>(v.data() + size_t(s) * v.extent(1) * v.extent(2), v.extent(1), v.extent(2));
  }
  Mat<R, Exec> slot2(View2<R, Exec> v) const { return Mat<R, Exec>(v.data(), v.extent(0), v.extent(1)); }
  Mat<R, Exec> cache_layer(int k) const { return slot(cache_, k); }
  Mat<const R, Exec> cP(int64_t off, int64_t r, int64_t c) const {
    return Mat<const R, Exec>(full_.params().data() + off, r, c);
  }
  Vec<const R, Exec> cV(int64_t off, int64_t n) const {
    return Vec<const R, Exec>(full_.params().data() + off, n);
  }

  Dims dims_;
  Model<Spec, R, Exec> full_;  // B = 1: the parameters, and the prefill of a window
  SourceList src_;
  int keep_;
  bool no_cache_ = false;
  int pos_ = 0, slides_ = 0;
  std::vector<int32_t> history_;  // the tokens of the window, oldest first (at most T)
  View3<R, Exec> cache_, h_, bank_;
  View2<R, Exec> xn_, att_, gu_, act_, y_, xnf_, logits_, scores_, rinv_, alpha_, kappa_;
  View1<R, Exec> rstd_;
  HostLogits logits_h_;
  View2<int32_t, Exec> tok_, window_;
  typename View2<int32_t, Exec>::HostMirror tok_h_, window_h_;
  View1<int, Exec> slot_, kind_;
  LayerOffsets layer_[NL];
  int64_t off_tok_ = 0, off_pos_ = 0, off_head_ = 0, off_gf_ = 0, off_query_ = 0, off_kgain_ = 0,
          off_dbias_ = 0;
};

}  // namespace wavres
