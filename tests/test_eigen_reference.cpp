// An independent host implementation of the forward pass of docs/routing-spec.md (§0 backbone, §1 PreNorm, §2
// depth mixer, §3 Full AttnRes, §4 Block AttnRes, §5 WAV v1) in Eigen, written from the spec text: it shares
// no code with the library except the parameter table (names, shapes, offsets) through which it reads the
// model's flat parameter buffer. The library's Model::forward must reproduce its mean cross-entropy:
//   double model: relative 1e-10. Both sides are double; the only differences are summation order and
//     vectorisation (≈ 1e-16 per operation, a few hundred operations deep), so agreement is expected to
//     ~1e-14; 1e-10 leaves four orders of margin while any wrong term (a missing gain, a wrong source order,
//     a wrong sign) moves the loss by ≥ 1e-4 at the non-trivial parameters used here.
//   float model (same parameters rounded to float, which the reference then reads back exactly): relative
//   1e-5.
//     Float rounding is 6e-8 per operation; through ~10 sublayers of O(10)-term dot products, RMS norms and
//     softmaxes the accumulated relative error of the loss is a few 1e-7 (measured and logged below), and
//     1e-5 still rejects any modelling error of the size above.
// Causality is tested on the reference (perturbing token t0 leaves logits of positions < t0 bit-identical)
// and on the library through its public API only (see causality_probe): giving two vocabulary entries a and b
// the same token embedding makes them indistinguishable as inputs, so changing target t+1 between a and b
// changes the mean loss by exactly (z_t[a] − z_t[b]) / (B·T): a probe of one position's logits. That probe is
// compared with the reference logits and must be unaffected by any change of later tokens.
#include <Eigen/Dense>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <string>
#include <vector>
#include "model_fixtures.hpp"

using namespace wavres;
using namespace wavres::test;

namespace {

using MX = Eigen::MatrixXd;
using RowV = Eigen::RowVectorXd;
using Ser = Kokkos::Serial;

double rho(const RowV& x) {
  return std::sqrt(x.squaredNorm() / double(x.size()) + 1e-6);
}

// ---------------------------------------------------------------------------------------------------------------
// The reference model. Parameters are read once, by name, from the library's flat buffer; [out, in] matrices.
class Reference {
 public:
  struct Out {
    std::vector<MX> logits;        // per batch row: [T, V]
    std::vector<double> pos_loss;  // per position b·T + t
    double mean = 0;
  };

  template <class M>
  explicit Reference(const M& m) : d_(m.dims()), variant_(M::variant), n_layer_(M::NL), S_(M::spec::S) {
    auto p = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.params());
    for (auto& e : m.table().entries) {
      const int64_t cols = e.cols ? e.cols : 1;
      MX x(e.rows, cols);
      for (int64_t r = 0; r < e.rows; ++r)
        for (int64_t c = 0; c < cols; ++c) x(r, c) = double(p(e.offset + r * cols + c));
      P_[e.name] = x;
    }
  }

  Out forward(const View2<int32_t, Host>& tok) const {
    const int B = d_.B, T = d_.T, D = d_.D, L = 2 * n_layer_;
    Out o;
    o.pos_loss.resize(size_t(B) * T);
    for (int b = 0; b < B; ++b) {
      MX x0(T, D);
      for (int t = 0; t < T; ++t) x0.row(t) = W("embed/token").row(tok(b, t)) + W("embed/position").row(t);
      MX hout;
      if (variant_ == Variant::prenorm) {  // §1
        MX h = x0;
        for (int l = 1; l <= L; ++l) h += sublayer(l, h);
        hout = h;
      } else if (variant_ == Variant::full_attnres) {  // §3: sources are x0 and every update
        std::vector<MX> v{x0};
        std::vector<int> kind{0};
        for (int l = 1; l <= L; ++l) {
          const MX h = mix(l - 1, v, kind);
          v.push_back(sublayer(l, h));
          kind.push_back(0);
        }
        hout = mix(L, v, kind);
      } else {  // §4 / §5
        const bool wav = variant_ == Variant::wav_v1;
        const int S = S_;
        std::vector<MX> src{x0};  // b0, then per completed block: b_m (+ phase~_m, split~_m)
        std::vector<int> kind{0};
        MX partial, phase, split;
        for (int l = 1; l <= L; ++l) {
          const int i = (l - 1) % S + 1;
          std::vector<MX> s = src;
          std::vector<int> k = kind;
          if (i >= 2) s.push_back(partial), k.push_back(0);
          const MX y = sublayer(l, mix(l - 1, s, k));
          const double cp = l % 2 == 1 ? 1.0 : -1.0;  // attention +1, MLP −1
          const double cs = 2 * i <= S ? 1.0 : -1.0;  // early +1, late −1
          if (i == 1) {
            partial = y, phase = cp * y, split = cs * y;
          } else {
            partial += y, phase += cp * y, split += cs * y;
          }
          if (i == S) {
            src.push_back(partial), kind.push_back(0);
            if (wav) {  // detached RMS matching: the forward value is κ·π with κ = ρ(b)/ρ(π), per token
              MX pt(T, D), st(T, D);
              for (int t = 0; t < T; ++t) {
                pt.row(t) = rho(partial.row(t)) / rho(phase.row(t)) * phase.row(t);
                st.row(t) = rho(partial.row(t)) / rho(split.row(t)) * split.row(t);
              }
              src.push_back(pt), kind.push_back(1);
              src.push_back(st), kind.push_back(2);
            }
          }
        }
        hout = mix(L, src, kind);
      }
      const MX z = rmsnorm(hout, W("final_norm/gain")) * W("lm_head").transpose();
      for (int t = 0; t < T; ++t) {
        const double m = z.row(t).maxCoeff();
        const double lse = m + std::log((z.row(t).array() - m).exp().sum());
        const double l = lse - z(t, tok(b, t + 1));
        o.pos_loss[size_t(b) * T + t] = l;
        o.mean += l;
      }
      o.logits.push_back(z);
    }
    o.mean /= double(B) * T;
    return o;
  }

 private:
  const MX& W(const std::string& name) const { return P_.at(name); }

  static MX rmsnorm(const MX& x, const MX& g) {
    MX y(x.rows(), x.cols());
    for (int t = 0; t < x.rows(); ++t) y.row(t) = x.row(t).cwiseProduct(g.col(0).transpose()) / rho(x.row(t));
    return y;
  }

  // Causal multi-head attention, scores scaled by 1/sqrt(head_dim), two-pass softmax over s ≤ t.
  MX attention(const MX& x, int k) const {
    const std::string p = "layers/" + std::to_string(k) + "/attn/";
    const int T = int(x.rows()), D = d_.D, H = d_.H, hd = D / H;
    const MX q = x * W(p + "wq").transpose(), kk = x * W(p + "wk").transpose(),
             v = x * W(p + "wv").transpose();
    MX o = MX::Zero(T, D);
    for (int h = 0; h < H; ++h) {
      const MX s = q.middleCols(h * hd, hd) * kk.middleCols(h * hd, hd).transpose() / std::sqrt(double(hd));
      for (int t = 0; t < T; ++t) {
        const double m = s.row(t).head(t + 1).maxCoeff();
        const Eigen::ArrayXd e = (s.row(t).head(t + 1).array() - m).exp().transpose();
        const Eigen::ArrayXd pr = e / e.sum();
        for (int u = 0; u <= t; ++u) o.block(t, h * hd, 1, hd) += pr(u) * v.block(u, h * hd, 1, hd);
      }
    }
    return o * W(p + "wo").transpose();
  }

  MX mlp(const MX& x, int k) const {
    const std::string p = "layers/" + std::to_string(k) + "/mlp/";
    const MX g = x * W(p + "w_gate").transpose(), u = x * W(p + "w_up").transpose();
    const MX a = g.unaryExpr([](double z) { return z / (1 + std::exp(-z)); }).cwiseProduct(u);
    return a * W(p + "w_down").transpose();
  }

  // f_l(h): attention for odd l, MLP for even l, each behind its own RMSNorm.
  MX sublayer(int l, const MX& h) const {
    const int k = (l - 1) / 2;
    const std::string p = "layers/" + std::to_string(k) + "/";
    if (l % 2 == 1) return attention(rmsnorm(h, W(p + "attn_norm/gain")), k);
    return mlp(rmsnorm(h, W(p + "mlp_norm/gain")), k);
  }

  // §2: s_j = ⟨w_c ⊙ g_c, v_j/ρ(v_j)⟩ + β_{c,kind(j)},  α = softmax_j,  h = Σ α_j v_j (raw sources).
  MX mix(int c, const std::vector<MX>& v, const std::vector<int>& kind) const {
    const RowV q = W("routing/query").row(c).cwiseProduct(W("routing/key_gain").row(c));
    double beta[3] = {0, 0, 0};
    if (variant_ == Variant::wav_v1)
      beta[1] = W("routing/detail_bias")(c, 0), beta[2] = W("routing/detail_bias")(c, 1);
    const int T = int(v[0].rows()), n = int(v.size());
    MX h = MX::Zero(T, v[0].cols());
    for (int t = 0; t < T; ++t) {
      Eigen::ArrayXd s(n);
      for (int j = 0; j < n; ++j) s(j) = q.dot(v[j].row(t)) / rho(v[j].row(t)) + beta[kind[j]];
      const Eigen::ArrayXd e = (s - s.maxCoeff()).exp();
      const Eigen::ArrayXd a = e / e.sum();
      for (int j = 0; j < n; ++j) h.row(t) += a(j) * v[j].row(t);
    }
    return h;
  }

  Dims d_;
  Variant variant_;
  int n_layer_, S_;
  std::map<std::string, MX> P_;
};

// ---------------------------------------------------------------------------------------------------------------
// Parameters at a point where every part of the network matters: matrices N(0, 1/in) so that activations are
// O(1) (at the spec's 0.02 init everything is nearly linear and the loss is ≈ ln V whatever the routing
// does), embeddings N(0, 1), gains 1 ± 0.3, pseudo-queries N(0, 0.5²) so the mixer weights are far from
// uniform, detail biases −0.5 ± 0.5 so the WAV details carry weight.
template <class M>
void reference_params(M& m, uint64_t seed) {
  m.init_params(seed, 0.5);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.params());
  Rng rng(seed + 17);
  for (auto& e : m.table().entries)
    for (int64_t k = 0; k < e.size(); ++k) {
      double v = double(h(e.offset + k));
      switch (e.init) {
        case ParamEntry::normal:
        case ParamEntry::normal_scaled:
          v = rng.normal() * (e.name.rfind("embed/", 0) == 0 ? 1.0 : 1.0 / std::sqrt(double(e.cols)));
          break;
        case ParamEntry::ones:
          v = 1.0 + 0.3 * rng.normal();
          break;
        case ParamEntry::detail_bias:
          v = -0.5 + 0.5 * rng.normal();
          break;
        default:
          break;
      }
      h(e.offset + k) = typename M::real(v);
    }
  Kokkos::deep_copy(m.params(), h);
}

template <class Dst, class Src>
void copy_params(Dst& dst, const Src& src) {
  auto s = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), src.params());
  auto d = Kokkos::create_mirror_view(dst.params());
  BOOST_REQUIRE(d.extent(0) == s.extent(0));
  for (size_t k = 0; k < s.extent(0); ++k) d(k) = typename Dst::real(s(k));
  Kokkos::deep_copy(dst.params(), d);
}

bool rel_close(double got, double want, double rel) {
  return std::abs(got - want) <= rel * std::abs(want);
}

// ---------------------------------------------------------------------------------------------------------------
// Library loss against the reference, in double (1e-10) and in float (1e-5), at generic parameters and at the
// spec's init (where the mixer is a uniform average).
template <class Spec>
void compare_with_reference() {
  const Dims d = tiny_dims();
  Model<Spec, double, Dev> m(
      d);  // the library on its backend (CUDA in a CUDA build), the reference on the host
  for (int trial = 0; trial < 3; ++trial) {
    if (trial == 0) {
      m.init_params(5);  // spec §6 init: zero queries, so every routed h_l is the mean of its sources
    } else {
      reference_params(m, 100 + trial);
    }
    auto tok = random_tokens<Dev>(d, 200 + trial);
    const Reference ref(m);
    const double want = ref.forward(random_tokens<Host>(d, 200 + trial)).mean;  // the same tokens
    const double got = m.forward(tok, false);
    const double got_g = m.forward(tok, true);  // the fused gradient path must report the same loss
    BOOST_TEST_MESSAGE(Spec::name() << " trial " << trial << ": reference " << want << ", double model "
                                    << got << ", rel diff " << std::abs(got - want) / want);
    BOOST_TEST(rel_close(got, want, 1e-10), Spec::name() << " double: " << got << " vs reference " << want);
    BOOST_TEST(rel_close(got_g, want, 1e-10), Spec::name()
                                                  << " double (with_grad): " << got_g << " vs " << want);
    if constexpr (is_blocked(
                      Spec::variant)) {  // the default is the two-phase block mixer; check the plain one too
      m.set_two_phase(false);
      const double got_plain = m.forward(tok, false);
      m.set_two_phase(true);
      BOOST_TEST(rel_close(got_plain, want, 1e-10), Spec::name() << " double (plain mixer): " << got_plain);
    }

    Model<Spec, float, Dev> mf(d);
    copy_params(mf, m);
    const Reference ref_f(mf);  // the float-rounded parameters, read back exactly
    const double want_f = ref_f.forward(random_tokens<Host>(d, 200 + trial)).mean;
    const double got_f = mf.forward(tok, false);
    BOOST_TEST_MESSAGE(Spec::name() << " trial " << trial << ": float model " << got_f << ", rel diff "
                                    << std::abs(got_f - want_f) / want_f);
    BOOST_TEST(rel_close(got_f, want_f, 1e-5), Spec::name()
                                                   << " float: " << got_f << " vs reference " << want_f);
    if constexpr (is_blocked(Spec::variant)) {
      mf.set_two_phase(false);
      const double got_fp = mf.forward(tok, false);
      BOOST_TEST(rel_close(got_fp, want_f, 1e-5), Spec::name() << " float (plain mixer): " << got_fp);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Causality of the reference itself: perturbing the input token at t0 leaves logits of positions < t0
// bit-identical (and changes position t0).
template <class Spec>
void reference_causality() {
  const Dims d = tiny_dims();
  Model<Spec, double, Host> m(d);
  reference_params(m, 31);
  const Reference ref(m);
  auto tok = random_tokens<Host>(d, 32);
  const auto base = ref.forward(tok);
  for (int t0 = 0; t0 < d.T; ++t0) {
    auto tok2 = random_tokens<Host>(d, 32);
    for (int b = 0; b < d.B; ++b) tok2(b, t0) = (tok2(b, t0) + 1) % d.V;
    const auto pert = ref.forward(tok2);
    for (int b = 0; b < d.B; ++b) {
      BOOST_TEST((pert.logits[b].topRows(t0).array() == base.logits[b].topRows(t0).array()).all(),
                 Spec::name() << " reference: logits before " << t0 << " changed");
      BOOST_TEST((pert.logits[b].row(t0).array() != base.logits[b].row(t0).array()).any());
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Library causality through Model's public API. Tokens a = 0 and b = 1 get the same embedding row, and the
// remaining tokens are drawn from 2..V-1. probe(t) sets token t+1 of batch row 0 to a, then to b: as inputs
// they are identical, as targets of position t they differ, so
//   probe(t) = B·T · (loss(b) − loss(a)) = z_t[a] − z_t[b]      (exactly, up to the rounding of the mean).
// Checks, per position t: probe(t) equals the reference's logit difference; it does not change when every
// token after t+1 changes (causality); it does change when token t, an input of position t, changes (power).
template <class Spec, class Exec>
void causality_probe() {
  const Dims d = tiny_dims();
  const int T = d.T, N = d.B * d.T;
  Model<Spec, double, Exec> m(d);
  reference_params(m, 41);
  {
    auto p = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.params());
    const int64_t off = m.table().at("embed/token").offset;
    for (int k = 0; k < d.D; ++k) p(off + d.D + k) = p(off + k);  // E_tok[1] = E_tok[0]
    Kokkos::deep_copy(m.params(), p);
  }
  View2<int32_t, Exec> tok("tokens", d.B, T + 1);
  auto th = Kokkos::create_mirror_view(tok);
  Rng rng(42);
  for (int b = 0; b < d.B; ++b)
    for (int s = 0; s <= T; ++s) th(b, s) = int32_t(2 + rng.below(d.V - 2));
  auto probe = [&](View2<int32_t, Host>& h, int t) {
    const int32_t keep = h(0, t + 1);
    h(0, t + 1) = 0;
    Kokkos::deep_copy(tok, h);
    const double la = m.forward(tok, false);
    h(0, t + 1) = 1;
    Kokkos::deep_copy(tok, h);
    const double lb = m.forward(tok, false);
    h(0, t + 1) = keep;
    return double(N) * (lb - la);
  };
  const Reference ref(m);
  double worst_ref = 0, worst_future = 0, least_past = 1e300;
  for (int t = 0; t < T; ++t) {
    View2<int32_t, Host> h("h", d.B, T + 1);
    Kokkos::deep_copy(h, th);
    const double p0 = probe(h, t);
    // reference logits of position t (token t+1 = a; the reference is causal, so its value is irrelevant)
    h(0, t + 1) = 0;
    const auto out = ref.forward(h);
    h(0, t + 1) = th(0, t + 1);
    const double want = out.logits[0](t, 0) - out.logits[0](t, 1);
    worst_ref = std::max(worst_ref, std::abs(p0 - want));
    BOOST_TEST(std::abs(p0 - want) <= 1e-9 * (1 + std::abs(want)),
               Spec::name() << " probe(" << t << ") = " << p0 << ", reference z[a]-z[b] = " << want);
    if (t + 2 <= T) {  // change every later token
      for (int s = t + 2; s <= T; ++s)
        h(0, s) = int32_t(2 + (h(0, s) - 2 + 1 + rng.below(d.V - 3)) % (d.V - 2));
      const double pf = probe(h, t);
      worst_future = std::max(worst_future, std::abs(pf - p0));
      BOOST_TEST(std::abs(pf - p0) <= 1e-11,
                 Spec::name() << " position " << t << " sees the future: probe " << p0 << " -> " << pf);
      Kokkos::deep_copy(h, th);
    }
    h(0, t) = int32_t(2 + (h(0, t) - 2 + 1) % (d.V - 2));  // change the input of position t itself
    const double pp = probe(h, t);
    least_past = std::min(least_past, std::abs(pp - p0));
    BOOST_TEST(std::abs(pp - p0) > 1e-6, Spec::name() << " probe(" << t << ") blind to its own input");
  }
  BOOST_TEST_MESSAGE(Spec::name() << " [" << Exec::name() << "] causality probe: max |probe - reference| "
                                  << worst_ref << ", max change from future tokens " << worst_future
                                  << ", min change from own input " << least_past);
}

using PreNorm3 = ModelSpec<Variant::prenorm, 3>;
using Full3 = ModelSpec<Variant::full_attnres, 3>;
using Block4 = ModelSpec<Variant::block_attnres, 4, 4>;
using Wav4 = ModelSpec<Variant::wav_v1, 4, 4>;
using Wav3S6 = ModelSpec<Variant::wav_v1, 3, 6>;  // one block of 6: S % 4 != 0, split = first 3 vs last 3

}  // namespace

BOOST_AUTO_TEST_SUITE(eigen_reference)

BOOST_AUTO_TEST_CASE(prenorm) {
  compare_with_reference<PreNorm3>();
}
BOOST_AUTO_TEST_CASE(full_attnres) {
  compare_with_reference<Full3>();
}
BOOST_AUTO_TEST_CASE(block_attnres) {
  compare_with_reference<Block4>();
}
BOOST_AUTO_TEST_CASE(wav_v1) {
  compare_with_reference<Wav4>();
}
BOOST_AUTO_TEST_CASE(wav_v1_single_block_s6) {
  compare_with_reference<Wav3S6>();
}

BOOST_AUTO_TEST_CASE(reference_is_causal) {
  reference_causality<PreNorm3>();
  reference_causality<Full3>();
  reference_causality<Block4>();
  reference_causality<Wav4>();
}

// The full sweep runs on Kokkos::Serial (identical kernels, no per-launch fork/join, so it stays fast on a
// loaded machine); the default host space (OpenMP) runs it for the PreNorm and WAV models.
BOOST_AUTO_TEST_CASE(library_is_causal) {
  causality_probe<PreNorm3, Ser>();
  causality_probe<Full3, Ser>();
  causality_probe<Block4, Ser>();
  causality_probe<Wav4, Ser>();
  causality_probe<PreNorm3, Host>();
  causality_probe<Wav4, Host>();
}

// Spec §5: with β → −∞ WAV v1 is exactly Block AttnRes (same shared parameters, details weighted 0).
BOOST_AUTO_TEST_CASE(wav_with_very_negative_bias_is_block) {
  const Dims d = tiny_dims();
  Model<Block4, double, Host> mb(d);
  Model<Wav4, double, Host> mw(d);
  reference_params(mb, 61);
  reference_params(mw, 62);
  auto pb = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), mb.params());
  auto pw = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), mw.params());
  for (auto& e : mb.table().entries) {
    const auto& ew = mw.table().at(e.name);
    for (int64_t k = 0; k < e.size(); ++k) pw(ew.offset + k) = pb(e.offset + k);
  }
  const auto& eb = mw.table().at("routing/detail_bias");
  for (int64_t k = 0; k < eb.size(); ++k) pw(eb.offset + k) = -1e9;
  Kokkos::deep_copy(mw.params(), pw);
  auto tok = random_tokens<Host>(d, 63);
  const double lb = mb.forward(tok, false), lw = mw.forward(tok, false);
  BOOST_TEST_MESSAGE("block " << lb << ", wav(beta=-1e9) " << lw);
  BOOST_TEST(rel_close(lw, lb, 1e-13));
  // and the reference agrees with both
  const Reference rw(mw);
  BOOST_TEST(rel_close(rw.forward(tok).mean, lb, 1e-10));
  // at finite β the details matter (the comparison above is not vacuous)
  for (int64_t k = 0; k < eb.size(); ++k) pw(eb.offset + k) = 0.0;
  Kokkos::deep_copy(mw.params(), pw);
  BOOST_TEST(std::abs(mw.forward(tok, false) - lb) > 1e-4);
}

BOOST_AUTO_TEST_SUITE_END()
