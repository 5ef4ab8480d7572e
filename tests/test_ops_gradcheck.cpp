// Op-level gradient checks: every hand-written backward in include/wavres/{ops,routing,optim} against central
// finite differences of its forward, in double precision on the host, at small random sizes.
//
// Scalar-loss trick: for an op y = f(x) we test the scalar L(x) = Σ r ⊙ f(x) with a fixed random r, so the
// upstream gradient ∂L/∂y is exactly r and the backward's output must equal ∂L/∂x, which central differences
// estimate entry by entry.
//
// Tolerance. With step h = 1e-5 in double, the central difference has truncation error h²/6·|L'''| ≈
// 2e-11·|L'''|
// (|L'''| is O(1..10) at these sizes and scales) and rounding error ≈ ε·Σ|r ⊙ y| / h ≈ 1e-16·100 / 1e-5 =
// 1e-9. So |fd − analytic| ≤ 1e-8 + 1e-6·|fd| has one to two orders of margin, while any wrong term of a
// backward (a dropped factor, a sign, a missing accumulation) perturbs the gradient by ≥ 1e-3 of its size and
// fails. Every check also asserts that the analytic gradient is not trivially zero, so that a test cannot
// pass vacuously. Each check was seen to fail on deliberate faults (sign flips, dropped factors, = for +=) in
// private copies of the headers compiled through a shadowing include path.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>
#include "wavres/core/types.hpp"
#include "wavres/data/corpus.hpp"
#include "wavres/ops/attention.hpp"
#include "wavres/ops/cross_entropy.hpp"
#include "wavres/ops/embedding.hpp"
#include "wavres/ops/linear.hpp"
#include "wavres/ops/rmsnorm.hpp"
#include "wavres/ops/swiglu.hpp"
#include "wavres/optim/adamw.hpp"
#include "wavres/optim/schedule.hpp"
#include "wavres/routing/accumulate.hpp"
#include "wavres/routing/mixer.hpp"
#include "wavres/routing/two_phase.hpp"

using namespace wavres;

namespace {

// The analytic backward (and the forward values) are checked on the default host space (OpenMP): the backend
// the library runs on. The thousands of forward evaluations of the finite differences run on Kokkos::Serial:
// same code, same HostSpace memory, but no fork/join per kernel, which on a loaded 2-core machine costs
// milliseconds per launch with OpenMP and would make this test take minutes.
using Host = Kokkos::DefaultHostExecutionSpace;
using Ser = Kokkos::Serial;
using V1 = View1<double, Host>;
using V2 = View2<double, Host>;
using V3 = View3<double, Host>;
using M = Mat<double, Host>;
using CM = Mat<const double, Host>;
using Vc = Vec<const double, Host>;
using Vm = Vec<double, Host>;

constexpr double kStep = 1e-5, kAbs = 1e-8, kRel = 1e-6;

template <class V>
void fill_normal(const V& v, Rng& rng, double std = 1.0, double mean = 0.0) {
  auto* p = v.data();
  for (size_t k = 0; k < v.span(); ++k) p[k] = mean + std * rng.normal();
}
template <class V>
void fill_const(const V& v, double c) {
  auto* p = v.data();
  for (size_t k = 0; k < v.span(); ++k) p[k] = c;
}
// Windows onto the test's host arrays for execution space E (both spaces share HostSpace memory).
template <class E = Host>
Mat<double, E> m2(const V2& v) {
  return Mat<double, E>(v.data(), v.extent(0), v.extent(1));
}
template <class E = Host>
Mat<const double, E> c2(const V2& v) {
  return Mat<const double, E>(v.data(), v.extent(0), v.extent(1));
}
template <class E = Host>
Mat<const double, E> c3(const V3& v, int s) {
  return Mat<const double, E>(&v(s, 0, 0), v.extent(1), v.extent(2));
}
template <class E = Host>
Vec<double, E> m1(const V1& v) {
  return Vec<double, E>(v.data(), v.extent(0));
}
template <class E = Host>
Vec<const double, E> c1(const V1& v) {
  return Vec<const double, E>(v.data(), v.extent(0));
}
template <class E = Host>
View1<double, E> w1(const V1& v) {
  return View1<double, E>(v.data(), v.extent(0));
}
template <class E = Host>
View2<double, E> w2(const V2& v) {
  return View2<double, E>(v.data(), v.extent(0), v.extent(1));
}
template <class E = Host>
View3<double, E> w3(const V3& v) {
  return View3<double, E>(v.data(), v.extent(0), v.extent(1), v.extent(2));
}

double dot(const double* a, const double* b, size_t n) {
  double s = 0;
  for (size_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}
template <class V>
double weighted_sum(const V& y, const V& r) {
  return dot(y.data(), r.data(), y.span());
}

// Central differences of loss() w.r.t. x[0..n) (every `stride`-th entry) against analytic[0..n). loss() must
// recompute everything that depends on x.
void check_fd(const std::string& what, double* x, size_t n, const double* analytic,
              const std::function<double()>& loss, size_t stride = 1) {
  const double h = kStep;
  int failed = 0;
  size_t checked = 0;
  double max_err = 0, max_g = 0;
  for (size_t k = 0; k < n; k += stride, ++checked) {
    const double orig = x[k];
    x[k] = orig + h;
    const double lp = loss();
    x[k] = orig - h;
    const double lm = loss();
    x[k] = orig;
    const double fd = (lp - lm) / (2 * h);
    const double err = std::abs(fd - analytic[k]);
    max_err = std::max(max_err, err);
    max_g = std::max(max_g, std::abs(analytic[k]));
    if (err > kAbs + kRel * std::abs(fd)) {
      if (++failed <= 5) BOOST_TEST_MESSAGE(what << "[" << k << "] analytic " << analytic[k] << " fd " << fd);
    }
  }
  loss();  // leave the forward state at the unperturbed point
  BOOST_TEST_MESSAGE(what << ": " << checked << " entries, max |fd - analytic| = " << max_err);
  BOOST_TEST(failed == 0,
             what << ": " << failed << " of " << checked << " entries disagree with finite differences");
  BOOST_TEST(max_g > 1e-3, what << ": analytic gradient is (nearly) zero, the check would be vacuous");
}

void check_close(const std::string& what, double got, double want, double abs_tol, double rel_tol) {
  BOOST_TEST(std::abs(got - want) <= abs_tol + rel_tol * std::abs(want),
             what << ": got " << got << " want " << want);
}

// Device body against host body at the shapes where the production paths are taken (thousands of rows, 1024
// row chunks, D not a multiple of the 32 lanes). Both run on float and double inputs, and each is compared
// with a double-precision reference computed here from the same inputs. Tolerance: a value computed with n
// rounded operations in any order (as host and device bodies sum in different orders) is within n·u·S of the
// exact value, S being the same computation over absolute values (the `scale` entries); so each check asserts
// |got − ref| ≤ n·u·scale with the op's longest chain n. A dropped term, a wrong row or a missed chunk errs
// by the size of one term, ≥ 1/n of S at these shapes, far above n·u·S.
template <class R, class G>
void check_bound(const std::string& what, const G* got, const std::vector<double>& ref,
                 const std::vector<double>& scale, double n_ops) {
  const double u = std::numeric_limits<R>::epsilon() / 2;
  int failed = 0;
  double worst = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    const double err = std::abs(double(got[k]) - ref[k]), tol = n_ops * u * scale[k];
    worst = std::max(worst, err / (n_ops * u * scale[k] + 1e-300));
    if (!(err <= tol) && ++failed <= 5)
      BOOST_TEST_MESSAGE(what << "[" << k << "] got " << double(got[k]) << " want " << ref[k] << " tol "
                              << tol);
  }
  BOOST_TEST_MESSAGE(what << ": " << ref.size() << " entries, worst |err| / bound = " << worst);
  BOOST_TEST(failed == 0, what << ": " << failed << " of " << ref.size() << " entries outside the bound");
}

// Snapshot of a view's contents.
template <class V>
std::vector<double> snap(const V& v) {
  return std::vector<double>(v.data(), v.data() + v.span());
}
template <class V>
std::vector<double> minus(const V& v, const std::vector<double>& base) {
  std::vector<double> out(v.span());
  for (size_t k = 0; k < v.span(); ++k) out[k] = v.data()[k] - base[k];
  return out;
}

View2<int32_t, Host> tokens_view(int B, int T, const std::vector<int>& vals) {
  View2<int32_t, Host> t("tokens", B, T + 1);
  for (int b = 0; b < B; ++b)
    for (int s = 0; s <= T; ++s) t(b, s) = vals[size_t(b) * (T + 1) + s];
  return t;
}
template <class E = Host>
Mat<const int32_t, E> ctok(const View2<int32_t, Host>& t) {
  return Mat<const int32_t, E>(t.data(), t.extent(0), t.extent(1));
}

// Windows of any element type onto host arrays, for the device-vs-host checks in float and double.
template <class E, class V>
auto wm(const V& v) {
  return Mat<typename V::value_type, E>(v.data(), v.extent(0), v.extent(1));
}
template <class E, class V>
auto wc(const V& v) {
  return Mat<const typename V::value_type, E>(v.data(), v.extent(0), v.extent(1));
}
template <class E, class V>
auto wv(const V& v) {
  return Vec<typename V::value_type, E>(v.data(), v.extent(0));
}
template <class E, class V>
auto wcv(const V& v) {
  return Vec<const typename V::value_type, E>(v.data(), v.extent(0));
}
template <class R>
std::string real_name() {
  return std::is_same_v<R, float> ? "float" : "double";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_gradcheck)

// ---------------------------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(linear) {
  Rng rng(101);
  const int N = 5, IN = 4, OUT = 3;
  V2 x("x", N, IN), W("W", OUT, IN), y("y", N, OUT), r("r", N, OUT), y0("y0", N, OUT);
  fill_normal(x, rng), fill_normal(W, rng), fill_normal(r, rng), fill_normal(y0, rng);

  // forward against the definition, both with beta = 0 and with the fused residual beta = 1
  linear_forward<double, Host>(m2(y), c2(x), c2(W));
  for (int i = 0; i < N; ++i)
    for (int o = 0; o < OUT; ++o) {
      double s = 0;
      for (int k = 0; k < IN; ++k) s += x(i, k) * W(o, k);
      check_close("linear y", y(i, o), s, 1e-14, 1e-13);
    }
  V2 yb("yb", N, OUT);
  Kokkos::deep_copy(yb, y0);
  linear_forward<double, Host>(m2(yb), c2(x), c2(W), 1.0);
  for (int i = 0; i < N; ++i)
    for (int o = 0; o < OUT; ++o) check_close("linear y+=", yb(i, o), y0(i, o) + y(i, o), 1e-14, 1e-13);

  auto loss = [&] {
    linear_forward<double, Ser>(m2<Ser>(y), c2<Ser>(x), c2<Ser>(W));
    return weighted_sum(y, r);
  };
  // dW accumulates (+=): start it from garbage and compare the increment; dx is overwritten (dx_beta = 0)
  V2 dx("dx", N, IN), dW("dW", OUT, IN);
  fill_normal(dx, rng), fill_normal(dW, rng);
  const auto dW0 = snap(dW);
  linear_backward<double, Host>(m2(dx), m2(dW), c2(r), c2(x), c2(W));
  check_fd("linear dx", x.data(), x.span(), dx.data(), loss);
  const auto ddW = minus(dW, dW0);
  check_fd("linear dW", W.data(), W.span(), ddW.data(), loss);

  // dx_beta = 1 accumulates into dx
  V2 dx2("dx2", N, IN), dW2("dW2", OUT, IN);
  fill_normal(dx2, rng);
  const auto dx20 = snap(dx2);
  linear_backward<double, Host>(m2(dx2), m2(dW2), c2(r), c2(x), c2(W), 1.0);
  const auto ddx2 = minus(dx2, dx20);
  check_fd("linear dx (dx_beta=1)", x.data(), x.span(), ddx2.data(), loss);

  // a null dx skips the input gradient but still accumulates dW
  V2 dW3("dW3", OUT, IN);
  linear_backward<double, Host>(M(), m2(dW3), c2(r), c2(x), c2(W));
  for (size_t k = 0; k < dW3.span(); ++k)
    check_close("linear dW (no dx)", dW3.data()[k], ddW[k], 1e-14, 1e-13);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
void embedding_case(int B, int T, const std::vector<int>& tokens, uint64_t seed) {
  const std::string tag = "embedding B" + std::to_string(B) + " T" + std::to_string(T);
  Rng rng(seed);
  const int V = 6, D = 3;
  auto tok = tokens_view(B, T, tokens);
  V2 Et("E_tok", V, D), Ep("E_pos", T, D), x0("x0", B * T, D), r("r", B * T, D);
  fill_normal(Et, rng), fill_normal(Ep, rng), fill_normal(r, rng);
  auto forward = [&](auto exec) {
    using E = decltype(exec);
    embedding_forward<double, E>(m2<E>(x0), ctok<E>(tok), c2<E>(Et), c2<E>(Ep), T);
  };
  auto loss = [&] {
    forward(Ser());
    return weighted_sum(x0, r);
  };
  forward(Host());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int d = 0; d < D; ++d)
        check_close(tag + " x0", x0(b * T + t, d), Et(tok(b, t), d) + Ep(t, d), 0, 0);

  V2 dEt("dE_tok", V, D), dEp("dE_pos", T, D);
  fill_normal(dEt, rng), fill_normal(dEp, rng);  // both accumulate (+=)
  const auto dEt0 = snap(dEt), dEp0 = snap(dEp);
  embedding_backward<double, Host>(m2(dEt), m2(dEp), c2(r), ctok(tok), T);
  const auto gEt = minus(dEt, dEt0), gEp = minus(dEp, dEp0);
  check_fd(tag + " dE_tok", Et.data(), Et.span(), gEt.data(), loss);
  check_fd(tag + " dE_pos", Ep.data(), Ep.span(), gEp.data(), loss);
  for (int v = 4; v < V; ++v)
    for (int d = 0; d < D; ++d) BOOST_TEST(gEt[size_t(v) * D + d] == 0.0);  // unused rows untouched
}
}  // namespace

BOOST_AUTO_TEST_CASE(embedding) {
  // repeated tokens (token 1 six times, within and across rows); tokens 4, 5 never appear as inputs
  embedding_case(3, 4,
                 {1, 2, 1, 0, 5,  //
                  3, 1, 1, 2, 4,  //
                  1, 0, 3, 1, 5},
                 202);
  // more rows than kRowChunks (the token-gradient reduction is chunked); inputs drawn from 0..3 only
  std::vector<int> many;
  Rng pick(203);
  for (int k = 0; k < 5 * 31; ++k) many.push_back(k % 31 == 30 ? 5 : int(pick.below(4)));
  embedding_case(5, 30, many, 204);
}

namespace {
// The device body (on the default host space) and the host body (on Serial) against a double reference.
// Token 0 takes ~30% of the rows (as the space does in text8), the last two tokens never occur.
template <class R>
void embedding_device_case(int B, int T, int V, int D, uint64_t seed) {
  const std::string tag = "embedding " + real_name<R>() + " B" + std::to_string(B) + " T" +
                          std::to_string(T) + " V" + std::to_string(V) + " D" + std::to_string(D);
  Rng rng(seed);
  const int N = B * T;
  std::vector<int> vals(size_t(B) * (T + 1));
  for (auto& v : vals) v = rng.below(10) < 3 ? 0 : int(rng.below(V - 2));
  auto tok = tokens_view(B, T, vals);
  View2<R, Host> Et("E_tok", V, D), Ep("E_pos", T, D), dx0("dx0", N, D), dEt0("dEt0", V, D),
      dEp0("dEp0", T, D);
  fill_normal(Et, rng), fill_normal(Ep, rng), fill_normal(dx0, rng), fill_normal(dEt0, rng);
  fill_normal(dEp0, rng);
  std::vector<double> x0(size_t(N) * D), sx0(x0.size()), dEt(size_t(V) * D), sdEt(dEt.size());
  std::vector<double> dEp(size_t(T) * D), sdEp(dEp.size());
  for (int v = 0; v < V; ++v)
    for (int d = 0; d < D; ++d)
      dEt[size_t(v) * D + d] = dEt0(v, d), sdEt[size_t(v) * D + d] = std::abs(dEt0(v, d));
  for (int t = 0; t < T; ++t)
    for (int d = 0; d < D; ++d)
      dEp[size_t(t) * D + d] = dEp0(t, d), sdEp[size_t(t) * D + d] = std::abs(dEp0(t, d));
  for (int i = 0; i < N; ++i) {
    const int v = tok(i / T, i % T), t = i % T;
    for (int d = 0; d < D; ++d) {
      const size_t k = size_t(i) * D + d, kv = size_t(v) * D + d, kt = size_t(t) * D + d;
      x0[k] = double(Et(v, d)) + Ep(t, d), sx0[k] = std::abs(x0[k]);
      dEt[kv] += dx0(i, d), sdEt[kv] += std::abs(dx0(i, d));
      dEp[kt] += dx0(i, d), sdEp[kt] += std::abs(dx0(i, d));
    }
  }
  for (const bool device_body : {false, true}) {
    const std::string who = tag + (device_body ? " device body" : " host body");
    View2<R, Host> x0b("x0", N, D), dEtb("dEt", V, D), dEpb("dEp", T, D);
    Kokkos::deep_copy(dEtb, dEt0), Kokkos::deep_copy(dEpb, dEp0);
    auto run = [&](auto exec, auto body_fwd, auto body_bwd) {
      using E = decltype(exec);
      body_fwd(wm<E>(x0b), ctok<E>(tok), wc<E>(Et), wc<E>(Ep), T);
      body_bwd(EmbeddingBackwardArgs<R, E>{wm<E>(dEtb), wm<E>(dEpb), wc<E>(dx0), ctok<E>(tok), T, {}});
    };
    if (device_body)
      run(Host(), device::embedding_forward<R, Host>, device::embedding_backward<R, Host>);
    else
      run(Ser(), host::embedding_forward<R, Ser>, host::embedding_backward<R, Ser>);
    Kokkos::fence();
    check_bound<R>(who + " x0", x0b.data(), x0, sx0, 2);  // one rounding (bound u), margin 2
    check_bound<R>(who + " dE_pos", dEpb.data(), dEp, sdEp, B + 1);
    check_bound<R>(who + " dE_tok", dEtb.data(), dEt, sdEt, N + 1);
    bool untouched = true;  // tokens that never occur keep their gradient rows bit for bit
    for (int v = V - 2; v < V; ++v)
      for (int d = 0; d < D; ++d) untouched = untouched && dEtb(v, d) == dEt0(v, d);
    BOOST_TEST(untouched, who << ": rows of absent tokens changed");
  }
}
}  // namespace

// Production paths of the device body: text8's V = 27 (243 row chunks at D = 40) and V = 256 (26 chunks),
// N > 4 × the chunk count, D a multiple of the 32 lanes and not.
BOOST_AUTO_TEST_CASE(embedding_device_body) {
  embedding_device_case<double>(17, 243, 27, 40, 210);
  embedding_device_case<float>(17, 243, 27, 40, 211);
  embedding_device_case<double>(16, 256, 256, 64, 212);
  embedding_device_case<float>(16, 256, 256, 64, 213);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
void rmsnorm_case(int N, uint64_t seed) {
  const std::string tag = "rmsnorm N" + std::to_string(N);
  Rng rng(seed);
  const int D = 6;
  V2 x("x", N, D), y("y", N, D), r("r", N, D);
  V1 g("g", D), rstd("rstd", N);
  fill_normal(x, rng), fill_normal(r, rng), fill_normal(g, rng, 0.3, 1.0);
  for (int d = 0; d < D; ++d)
    x(1, d) *= 0.2, x(2, d) *= 7.0;  // rows of very different scale (a smaller one makes |L'''| ~ 1/ρ³ large)
  auto forward = [&](auto exec) {
    using E = decltype(exec);
    rmsnorm_forward<double, E>(m2<E>(y), m1<E>(rstd), c2<E>(x), c1<E>(g));
  };
  auto loss = [&] {
    forward(Ser());
    return weighted_sum(y, r);
  };
  forward(Host());
  for (int i = 0; i < N; ++i) {
    double ss = 0;
    for (int d = 0; d < D; ++d) ss += x(i, d) * x(i, d);
    const double rho = std::sqrt(ss / D + 1e-6);
    check_close(tag + " rstd", rstd(i), 1 / rho, 0, 1e-14);
    for (int d = 0; d < D; ++d) check_close(tag + " y", y(i, d), g(d) * x(i, d) / rho, 1e-15, 1e-14);
  }

  V2 dx("dx", N, D);
  V1 dg("dg", D);
  fill_const(dx, 1e3);   // accumulate = false must overwrite
  fill_normal(dg, rng);  // dg always accumulates
  const auto dg0 = snap(dg);
  rmsnorm_backward<double, Host>(m2(dx), m1(dg), c2(r), c2(x), c1(rstd), c1(g));
  check_fd(tag + " dx", x.data(), x.span(), dx.data(), loss, N > 64 ? 7 : 1);  // a sample at large N
  const auto gdg = minus(dg, dg0);
  check_fd(tag + " dg", g.data(), g.span(), gdg.data(), loss);

  V2 dxa("dxa", N, D);
  V1 dg2("dg2", D);
  fill_normal(dxa, rng);
  const auto dxa0 = snap(dxa);
  rmsnorm_backward<double, Host>(m2(dxa), m1(dg2), c2(r), c2(x), c1(rstd), c1(g), true);
  const auto gdxa = minus(dxa, dxa0);
  check_fd(tag + " dx (accumulate)", x.data(), x.span(), gdxa.data(), loss, N > 64 ? 7 : 1);
}
}  // namespace

BOOST_AUTO_TEST_CASE(rmsnorm) {
  rmsnorm_case(4, 303);
  rmsnorm_case(150, 304);  // more rows than kRowChunks (the dg reduction is chunked)
}

namespace {
// The device body (on the default host space) and the host body (on Serial) against a double reference.
template <class R>
void rmsnorm_device_case(int N, int D, uint64_t seed) {
  const std::string tag = "rmsnorm " + real_name<R>() + " N" + std::to_string(N) + " D" + std::to_string(D);
  Rng rng(seed);
  View2<R, Host> x("x", N, D), dy("dy", N, D), dx0("dx0", N, D);
  View1<R, Host> g("g", D), dg0("dg0", D);
  fill_normal(x, rng), fill_normal(dy, rng), fill_normal(dx0, rng), fill_normal(g, rng, 0.3, 1.0);
  fill_normal(dg0, rng);
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < D; ++d)
      x(i, d) *= R(i % 3 == 1 ? 0.2 : i % 3 == 2 ? 7.0 : 1.0);  // rows of unlike scale
  // reference and scales (check_bound): y and r carry the Σx² chain (D), dx the dot product and r³ (< 3D)
  std::vector<double> r(N), y(size_t(N) * D), sy(y.size()), rs(N), dx(y.size()), sdx(y.size());
  std::vector<double> dxa(y.size()), sdxa(y.size()), dg(D), sdg(D);
  for (int d = 0; d < D; ++d) dg[d] = dg0(d), sdg[d] = std::abs(double(dg0(d)));
  for (int i = 0; i < N; ++i) {
    double ss = 0, dot = 0, adot = 0;
    for (int d = 0; d < D; ++d) ss += double(x(i, d)) * x(i, d);
    r[i] = 1 / std::sqrt(ss / D + kRmsEps), rs[i] = r[i];
    for (int d = 0; d < D; ++d) {
      const double t = double(g(d)) * dy(i, d) * x(i, d);
      dot += t, adot += std::abs(t);
    }
    for (int d = 0; d < D; ++d) {
      const size_t k = size_t(i) * D + d;
      y[k] = g(d) * x(i, d) * r[i], sy[k] = std::abs(y[k]);
      dx[k] = r[i] * (g(d) * dy(i, d) - x(i, d) * dot * r[i] * r[i] / D);
      sdx[k] =
          r[i] * (std::abs(double(g(d)) * dy(i, d)) + std::abs(double(x(i, d))) * adot * r[i] * r[i] / D);
      dxa[k] = dx0(i, d) + dx[k], sdxa[k] = std::abs(double(dx0(i, d))) + sdx[k];
      dg[d] += double(dy(i, d)) * x(i, d) * r[i], sdg[d] += std::abs(double(dy(i, d)) * x(i, d) * r[i]);
    }
  }
  for (const bool device_body : {false, true}) {
    const std::string who = tag + (device_body ? " device body" : " host body");
    View2<R, Host> yb("y", N, D), dxb("dx", N, D), dxab("dxa", N, D);
    View1<R, Host> rb("r", N), dgb("dg", D), dgab("dga", D);
    fill_const(dxb, 1e3);  // = must overwrite
    Kokkos::deep_copy(dxab, dx0), Kokkos::deep_copy(dgb, dg0);
    auto run = [&](auto exec, auto body_fwd, auto body_bwd) {
      using E = decltype(exec);
      body_fwd(wm<E>(yb), wv<E>(rb), wc<E>(x), wcv<E>(g));
      body_bwd(RmsNormBackwardArgs<R, E>{
          wm<E>(dxb), wv<E>(dgb), wc<E>(dy), wc<E>(x), wcv<E>(rb), wcv<E>(g), false, {}});
      body_bwd(RmsNormBackwardArgs<R, E>{
          wm<E>(dxab), wv<E>(dgab), wc<E>(dy), wc<E>(x), wcv<E>(rb), wcv<E>(g), true, {}});
    };
    if (device_body)
      run(Host(), device::rmsnorm_forward<R, Host>, device::rmsnorm_backward<R, Host>);
    else
      run(Ser(), host::rmsnorm_forward<R, Ser>, host::rmsnorm_backward<R, Ser>);
    Kokkos::fence();
    check_bound<R>(who + " y", yb.data(), y, sy, D + 10);
    check_bound<R>(who + " rstd", rb.data(), r, rs, D + 10);
    check_bound<R>(who + " dx", dxb.data(), dx, sdx, 3 * D + 30);
    check_bound<R>(who + " dx (accumulate)", dxab.data(), dxa, sdxa, 3 * D + 31);
    check_bound<R>(who + " dg", dgb.data(), dg, sdg, N + D + 10);
    std::vector<double> dg2(D), sdg2(D);  // the second call started from dg = 0
    for (int d = 0; d < D; ++d) dg2[d] = dg[d] - double(dg0(d)), sdg2[d] = sdg[d] - std::abs(double(dg0(d)));
    check_bound<R>(who + " dg (from 0)", dgab.data(), dg2, sdg2, N + D + 10);
  }
}
}  // namespace

// Production paths of the device body: N ≥ 4 × 1024 chunks and not a multiple of the 8 rows per team, D a
// multiple of the 32 lanes and not.
BOOST_AUTO_TEST_CASE(rmsnorm_device_body) {
  for (const int D : {40, 256}) {
    rmsnorm_device_case<double>(4 * kDeviceRowChunks + 37, D, 310 + D);
    rmsnorm_device_case<float>(4 * kDeviceRowChunks + 37, D, 320 + D);
  }
  rmsnorm_device_case<double>(300, 24, 330);  // fewer rows than chunks: most chunks are empty
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
void attention_case(int B, int T, int H, int hd, double scale, uint64_t seed) {
  const std::string tag = "attention B" + std::to_string(B) + " T" + std::to_string(T) + " H" +
                          std::to_string(H) + " hd" + std::to_string(hd);
  Rng rng(seed);
  const int D = H * hd, N = B * T;
  V2 qkv("qkv", N, 3 * D), out("out", N, D), r("r", N, D);
  V1 lse("lse", int64_t(B) * H * T);
  // The FD forwards run on Serial, which always takes the host body; its scratch is also large enough for the
  // device body (Δ, B·H·T elements) that Host runs in a WAVRES_DEVICE_KERNELS build.
  V1 scratch("attention_scratch", attention_scratch_size<Ser>(B, T, H, D));
  fill_normal(qkv, rng, scale), fill_normal(r, rng);
  auto forward = [&](auto exec) {
    using E = decltype(exec);
    attention_forward<double, E>(m2<E>(out), m1<E>(lse), c2<E>(qkv), w1<E>(scratch), B, T, H);
  };
  auto loss = [&] {
    forward(Ser());
    return weighted_sum(out, r);
  };
  forward(Host());
  // forward against a naive two-pass softmax
  const double c = 1 / std::sqrt(double(hd));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int u = 0; u <= t; ++u) {
          double dd = 0;
          for (int k = 0; k < hd; ++k) dd += qkv(b * T + t, h * hd + k) * qkv(b * T + u, D + h * hd + k);
          s[u] = c * dd;
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (int u = 0; u <= t; ++u) z += std::exp(s[u] - mx);
        check_close(tag + " lse", lse((int64_t(b) * H + h) * T + t), mx + std::log(z), 1e-13, 1e-13);
        for (int k = 0; k < hd; ++k) {
          double o = 0;
          for (int u = 0; u <= t; ++u) o += std::exp(s[u] - mx) / z * qkv(b * T + u, 2 * D + h * hd + k);
          check_close(tag + " out", out(b * T + t, h * hd + k), o, 1e-13, 1e-12);
        }
      }
  V2 dqkv("dqkv", N, 3 * D);
  fill_const(dqkv, 1e3);  // backward must overwrite all of dq, dk, dv
  attention_backward<double, Host>(m2(dqkv), c2(r), c2(out), c1(lse), c2(qkv), scratch, B, T, H);
  if (T > 1) {
    check_fd(tag + " dqkv", qkv.data(), qkv.span(), dqkv.data(), loss);
  } else {  // T = 1: the output is v, so dq = dk = 0 (up to rounding of do·v − do·o) and dv = r
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < D; ++k) {
        BOOST_TEST(std::abs(dqkv(i, k)) < 1e-14);
        BOOST_TEST(std::abs(dqkv(i, D + k)) < 1e-14);
        check_close(tag + " dv", dqkv(i, 2 * D + k), r(i, k), 0, 1e-15);
      }
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(attention) {
  attention_case(2, 5, 2, 3, 1.0, 404);
  attention_case(1, 7, 3, 2, 2.5, 405);  // large scores: a peaked softmax that needs the max subtraction
  attention_case(2, 4, 1, 5, 0.7, 406);
  attention_case(3, 1, 2, 2, 1.0, 407);
  // head dims 16 and 20: the register-blocked 16-column output/dq tiles (and, at 20, their remainder), and
  // T = 21 spans two 16-key score blocks with a partial last query tile
  attention_case(1, 21, 2, 16, 0.5, 409);
  attention_case(1, 18, 1, 20, 0.5, 410);
  // Where the device body (WAVRES_DEVICE_KERNELS build) takes its production paths in double: T not a
  // multiple of the query block and more than one key block in every kernel (attention_device_tiles below
  // asserts it), head dims 16, 20 (not a multiple of 16) and 64 (smaller blocks: its tiles fill the scratch
  // budget sooner).
  attention_case(1, 70, 2, 16, 0.5, 411);
  attention_case(2, 45, 1, 20, 0.5, 412);
  attention_case(1, 37, 1, 64, 0.3, 413);
  // hd 32: the forward's query blocks are longer than its key blocks (32×16 in double), so in the last key
  // block the first rows of a query block see no key at all (the block is skipped, O keeps its scale)
  attention_case(1, 50, 1, 32, 0.5, 414);
}

namespace {
// The device body's blocks at the shapes above: every kernel sees a partial last query block and several key
// blocks, so the FD cases cover the block edges and the online-softmax rescale, not one tile.
template <class R>
void expect_multi_block(int T, int hd) {
  using Tiles = device::AttentionTiles;
  const Tiles f = device::attention_forward_tiles<R, Host>(hd),
              kv = device::attention_dkdv_tiles<R, Host>(hd), q = device::attention_dq_tiles<R, Host>(hd);
  BOOST_TEST_MESSAGE("attention device tiles, " << sizeof(R) * 8 << "-bit hd " << hd << ": forward " << f.qb
                                                << "x" << f.kb << " (level " << f.level << "), dK/dV "
                                                << kv.qb << "x" << kv.kb << ", dQ " << q.qb << "x" << q.kb);
  for (const Tiles& t : {f, kv, q}) {
    BOOST_TEST(T % t.qb != 0,
               "T " << T << " is a multiple of the query block " << t.qb << " (hd " << hd << ")");
    BOOST_TEST(T > t.qb, "T " << T << " fits one query block " << t.qb << " (hd " << hd << ")");
    BOOST_TEST(T > t.kb, "T " << T << " fits one key block " << t.kb << " (hd " << hd << ")");
  }
}

// The device body on the default host space (OpenMP) against the host body on Serial, in float and double:
// out, lse and dqkv (every entry: backward must overwrite dq, dk and dv). Both backwards get the host body's
// out and lse, so a backward difference is the backward's own. Tolerance: every entry is a sum of at most
// T·hd ≤ 2·10^4 products of O(1) terms, in a different order in the two bodies, so rounding differences of a
// few ulps of the array's largest entry are expected: measured ≤ 4.5e-7 (float) and ≤ 7.1e-16 (double) of
// it. The bounds (5e-6, 1e-14) keep a margin of ~10x, while a wrong block edge, mask or rescale changes
// entries by > 1e-3 of it. The device backward run twice must agree bit for bit (fixed summation order, no
// races between the team's threads).
template <class R>
void attention_device_vs_host(int B, int T, int H, int hd, uint64_t seed) {
  const std::string tag = std::string(sizeof(R) == 4 ? "float" : "double") + " attention B" +
                          std::to_string(B) + " T" + std::to_string(T) + " H" + std::to_string(H) + " hd" +
                          std::to_string(hd);
  const double tol = sizeof(R) == 4 ? 5e-6 : 1e-14;
  const int D = H * hd, N = B * T;
  Rng rng(seed);
  View2<R, Host> qkv("qkv", N, 3 * D), dout("dout", N, D), out_h("out_h", N, D), out_d("out_d", N, D);
  View2<R, Host> dqkv_h("dqkv_h", N, 3 * D), dqkv_d("dqkv_d", N, 3 * D), dqkv_d2("dqkv_d2", N, 3 * D);
  View1<R, Host> lse_h("lse_h", int64_t(B) * H * T), lse_d("lse_d", int64_t(B) * H * T);
  for (size_t k = 0; k < qkv.span(); ++k) qkv.data()[k] = R(rng.normal());
  for (size_t k = 0; k < dout.span(); ++k) dout.data()[k] = R(rng.normal());
  Kokkos::deep_copy(dqkv_d, R(1e3)), Kokkos::deep_copy(dqkv_d2, R(-1e3));
  View1<R, Ser> scr_h("scr_h", size_t(B) * H * host::attention_scratch_per_item(T, hd));
  View1<R, Host> scr_d("scr_d", device::attention_scratch_elems(B, T, H));
  auto ms = [](const View2<R, Host>& v) { return Mat<R, Ser>(v.data(), v.extent(0), v.extent(1)); };
  auto cs = [](const View2<R, Host>& v) { return Mat<const R, Ser>(v.data(), v.extent(0), v.extent(1)); };
  auto md = [](const View2<R, Host>& v) { return Mat<R, Host>(v.data(), v.extent(0), v.extent(1)); };
  auto cd = [](const View2<R, Host>& v) { return Mat<const R, Host>(v.data(), v.extent(0), v.extent(1)); };
  const Vec<R, Ser> lse_hs(lse_h.data(), lse_h.extent(0));

  host::attention_forward(AttentionForwardArgs<R, Ser>{ms(out_h), lse_hs, cs(qkv), scr_h, B, T, H});
  device::attention_forward(AttentionForwardArgs<R, Host>{
      md(out_d), Vec<R, Host>(lse_d.data(), lse_d.extent(0)), cd(qkv), scr_d, B, T, H});
  host::attention_backward(
      AttentionBackwardArgs<R, Ser>{ms(dqkv_h), cs(dout), cs(out_h), lse_hs, cs(qkv), scr_h, B, T, H});
  const Vec<const R, Host> lse_hd(lse_h.data(), lse_h.extent(0));
  device::attention_backward(
      AttentionBackwardArgs<R, Host>{md(dqkv_d), cd(dout), cd(out_h), lse_hd, cd(qkv), scr_d, B, T, H});
  device::attention_backward(
      AttentionBackwardArgs<R, Host>{md(dqkv_d2), cd(dout), cd(out_h), lse_hd, cd(qkv), scr_d, B, T, H});
  Kokkos::fence();

  auto compare = [&](const char* what, const R* got, const R* want, size_t n) {
    double mx = 0, err = 0;
    for (size_t k = 0; k < n; ++k) mx = std::max(mx, std::abs(double(want[k])));
    for (size_t k = 0; k < n; ++k) err = std::max(err, std::abs(double(got[k]) - double(want[k])));
    BOOST_TEST_MESSAGE(tag << " " << what << ": max |device - host| " << err << ", max |host| " << mx);
    BOOST_TEST(mx > 0.1, tag << " " << what << ": reference is trivially small");
    BOOST_TEST(err <= tol * mx, tag << " " << what << ": device body differs from host body by " << err
                                    << " > " << tol << " x " << mx);
  };
  compare("out", out_d.data(), out_h.data(), out_h.span());
  compare("lse", lse_d.data(), lse_h.data(), lse_h.span());
  compare("dqkv", dqkv_d.data(), dqkv_h.data(), dqkv_h.span());
  size_t differ = 0;
  for (size_t k = 0; k < dqkv_d.span(); ++k) differ += dqkv_d.data()[k] != dqkv_d2.data()[k];
  BOOST_TEST(differ == 0u, tag << ": " << differ << " dqkv entries differ between two device backward runs");
}
}  // namespace

// Exposed parallelism of the device body on a GPU at the benchmark shape (B 16, T 256, D 256, 4 heads, float)
// and the paper preset's heads (D 512, 8 heads): every launch exposes >= 64k threads (league × team × vector;
// a GPU keeps ~270k in flight), against B·H = 64 threads of the host body's work item per (b, h).
BOOST_AUTO_TEST_CASE(attention_device_parallelism) {
  for (auto [D, H] : {std::pair{256, 4}, {512, 8}})
    for (const auto& l : device::attention_launches<float, Host>(16, 256, H, D)) {
      const int64_t threads = l.league * l.team * l.vector;
      BOOST_TEST_MESSAGE(l.label << " at D " << D << ": league " << l.league << " x team " << l.team
                                 << " x vector " << l.vector << " = " << threads << " threads");
      BOOST_TEST(l.team * l.vector <= 1024);
      BOOST_TEST(threads >= 65536, l.label << " exposes only " << threads << " threads at D " << D);
    }
}

BOOST_AUTO_TEST_CASE(attention_device_tiles) {
  expect_multi_block<double>(70, 16);
  expect_multi_block<double>(45, 20);
  expect_multi_block<double>(37, 64);
  expect_multi_block<double>(50, 32);
  const auto f = device::attention_forward_tiles<double, Host>(32);
  BOOST_TEST(f.qb > f.kb, "hd 32: forward blocks " << f.qb << "x" << f.kb << " no longer skip rows");
}

// Runs in every build: the device body is portable Kokkos, so OpenMP runs it here even without
// WAVRES_DEVICE_KERNELS. Shapes: head dims 16, 20 (not a multiple of 16), 32 (forward query blocks longer
// than its key blocks), 64 and 256 (its tiles exceed the level-0 budget: the level-1 path); T not a multiple
// of any kernel's query block, several key blocks.
BOOST_AUTO_TEST_CASE(attention_device_body) {
  for (auto [T, hd] : {std::pair{150, 16}, {100, 20}, {90, 64}, {70, 256}, {75, 32}}) {
    expect_multi_block<float>(T, hd);
    expect_multi_block<double>(T, hd);
  }
  // hd 32: query blocks longer than key blocks in the forward (rows that skip a key block)
  const auto f32 = device::attention_forward_tiles<float, Host>(32);
  BOOST_TEST(f32.qb > f32.kb, "hd 32: forward blocks " << f32.qb << "x" << f32.kb << " no longer skip rows");
  attention_device_vs_host<float>(2, 75, 2, 32, 428);
  attention_device_vs_host<double>(2, 75, 2, 32, 429);
  attention_device_vs_host<float>(2, 150, 2, 16, 420);
  attention_device_vs_host<double>(2, 150, 2, 16, 421);
  attention_device_vs_host<float>(1, 100, 3, 20, 422);
  attention_device_vs_host<double>(1, 100, 3, 20, 423);
  attention_device_vs_host<float>(2, 90, 1, 64, 424);
  attention_device_vs_host<double>(2, 90, 1, 64, 425);
  attention_device_vs_host<float>(1, 70, 1, 256, 426);
  attention_device_vs_host<double>(1, 70, 1, 256, 427);
}

// kmath::exp_vec<float> (the vectorisable exp of SwiGLU and the attention softmax) against exp in double:
// relative error below 1.2e-7 (one float ulp at 1) everywhere on its range; outside it clamps to finite,
// normal values; NaN propagates.
BOOST_AUTO_TEST_CASE(exp_vec_float) {
  double worst = 0;
  for (double x = -87.3; x <= 88.3; x += 3.7e-4) {
    const float xf = float(x);
    const double want = std::exp(double(xf));
    worst = std::max(worst, std::abs(double(kmath::exp_vec(xf)) - want) / want);
  }
  BOOST_TEST_MESSAGE("exp_vec<float>: worst relative error " << worst);
  BOOST_TEST(worst < 1.2e-7);
  BOOST_TEST(kmath::exp_vec(0.0f) == 1.0f);
#if !defined(KOKKOS_ENABLE_CUDA)  // a CUDA build uses exp itself for float too: no clamping there
  BOOST_TEST(std::isfinite(kmath::exp_vec(1e30f)));
  BOOST_TEST(kmath::exp_vec(1e30f) > 1e38f);
  BOOST_TEST(kmath::exp_vec(-1e30f) > 0.0f);
  BOOST_TEST(kmath::exp_vec(-1e30f) < 1.3e-38f);
#endif
  BOOST_TEST(std::isnan(kmath::exp_vec(std::numeric_limits<float>::quiet_NaN())));
  BOOST_TEST(kmath::exp_vec(0.5) == std::exp(0.5));  // double: exp itself
}

// Causality of the attention core: changing q/k/v of positions > t leaves rows ≤ t bit-for-bit unchanged.
BOOST_AUTO_TEST_CASE(attention_causal) {
  Rng rng(408);
  const int B = 2, T = 6, H = 2, hd = 3, D = H * hd, N = B * T;
  V2 qkv("qkv", N, 3 * D), out0("out0", N, D), out1("out1", N, D);
  V1 lse0("lse0", B * H * T), lse1("lse1", B * H * T);
  auto scratch = attention_scratch<double, Host>(B, T, H, D);
  fill_normal(qkv, rng);
  attention_forward<double, Host>(m2(out0), m1(lse0), c2(qkv), scratch, B, T, H);
  for (int t0 = 0; t0 < T; ++t0) {
    V2 q2("q2", N, 3 * D);
    Kokkos::deep_copy(q2, qkv);
    for (int b = 0; b < B; ++b)
      for (int u = t0 + 1; u < T; ++u)
        for (int k = 0; k < 3 * D; ++k) q2(b * T + u, k) += 1.0 + rng.normal();
    attention_forward<double, Host>(m2(out1), m1(lse1), c2(q2), scratch, B, T, H);
    bool same = true, later_changed = t0 == T - 1;
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t)
        for (int k = 0; k < D; ++k) {
          if (t <= t0)
            same = same && out1(b * T + t, k) == out0(b * T + t, k);
          else
            later_changed = later_changed || out1(b * T + t, k) != out0(b * T + t, k);
        }
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int t = 0; t <= t0; ++t) same = same && lse1((b * H + h) * T + t) == lse0((b * H + h) * T + t);
    BOOST_TEST(same, "attention rows <= " << t0 << " changed when later q/k/v changed");
    BOOST_TEST(later_changed);
  }
}

// ---------------------------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(swiglu) {
  Rng rng(505);
  const int N = 4, F = 5;
  V2 gu("gu", N, 2 * F), a("a", N, F), r("r", N, F);
  fill_normal(gu, rng, 2.0), fill_normal(r, rng);
  auto loss = [&] {
    swiglu_forward<double, Ser>(m2<Ser>(a), c2<Ser>(gu));
    return weighted_sum(a, r);
  };
  swiglu_forward<double, Host>(m2(a), c2(gu));
  for (int i = 0; i < N; ++i)
    for (int f = 0; f < F; ++f) {
      const double g = gu(i, f);
      check_close("swiglu a", a(i, f), g / (1 + std::exp(-g)) * gu(i, F + f), 1e-15, 1e-14);
    }
  V2 dgu("dgu", N, 2 * F);
  fill_const(dgu, 1e3);
  swiglu_backward<double, Host>(m2(dgu), c2(r), c2(gu));
  check_fd("swiglu dgu", gu.data(), gu.span(), dgu.data(), loss);
}

namespace {
// The device body (on the default host space) and the host body (on Serial) against a double reference;
// each output is a handful of rounded operations (n = 12 covers exp, the divisions and 1 − σ).
template <class R>
void swiglu_device_case(int N, int F, uint64_t seed) {
  const std::string tag = "swiglu " + real_name<R>() + " N" + std::to_string(N) + " F" + std::to_string(F);
  Rng rng(seed);
  View2<R, Host> gu("gu", N, 2 * F), da("da", N, F);
  fill_normal(gu, rng, 2.0), fill_normal(da, rng);
  std::vector<double> a(size_t(N) * F), sa(a.size()), dgu(size_t(N) * 2 * F), sdgu(dgu.size());
  for (int i = 0; i < N; ++i)
    for (int f = 0; f < F; ++f) {
      const double g = gu(i, f), u = gu(i, F + f), d = da(i, f), sg = 1 / (1 + std::exp(-g));
      const size_t k = size_t(i) * F + f, kg = size_t(i) * 2 * F + f;
      a[k] = g * sg * u, sa[k] = std::abs(a[k]);
      dgu[kg] = d * u * sg * (1 + g * (1 - sg)), sdgu[kg] = std::abs(d * u * sg) * (1 + std::abs(g));
      dgu[kg + F] = d * g * sg, sdgu[kg + F] = std::abs(dgu[kg + F]);
    }
  for (const bool device_body : {false, true}) {
    const std::string who = tag + (device_body ? " device body" : " host body");
    View2<R, Host> ab("a", N, F), dgub("dgu", N, 2 * F);
    fill_const(dgub, 1e3);
    auto run = [&](auto exec, auto body_fwd, auto body_bwd) {
      using E = decltype(exec);
      body_fwd(wm<E>(ab), wc<E>(gu));
      body_bwd(wm<E>(dgub), wc<E>(da), wc<E>(gu));
    };
    if (device_body)
      run(Host(), device::swiglu_forward<R, Host>, device::swiglu_backward<R, Host>);
    else
      run(Ser(), host::swiglu_forward<R, Ser>, host::swiglu_backward<R, Ser>);
    Kokkos::fence();
    check_bound<R>(who + " a", ab.data(), a, sa, 12);
    check_bound<R>(who + " dgu", dgub.data(), dgu, sdgu, 12);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(swiglu_device_body) {
  swiglu_device_case<double>(37, 45, 510);
  swiglu_device_case<float>(37, 45, 511);
}

// ---------------------------------------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(cross_entropy) {
  Rng rng(606);
  const int B = 2, T = 3, V = 5, N = B * T;
  auto tok = tokens_view(B, T,
                         {0, 3, 3, 1,  //
                          4, 2, 0, 4});
  V2 z("z", N, V), zg("zg", N, V);
  fill_normal(z, rng, 3.0);
  for (int v = 0; v < V; ++v) z(2, v) += 40.0;  // large shared offset: needs the max subtraction
  auto forward = [&](auto exec) {
    using E = decltype(exec);
    Kokkos::deep_copy(zg, z);
    return cross_entropy_forward_backward<double, E>(m2<E>(zg), ctok<E>(tok), T, false);
  };
  auto loss = [&] { return forward(Ser()); };
  // loss against the definition
  double want = 0;
  for (int i = 0; i < N; ++i) {
    double mx = -1e300, s = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, z(i, v));
    for (int v = 0; v < V; ++v) s += std::exp(z(i, v) - mx);
    want += mx + std::log(s) - z(i, tok(i / T, i % T + 1));
  }
  want /= N;
  check_close("cross_entropy loss", forward(Host()), want, 0, 1e-14);
  Kokkos::deep_copy(zg, z);
  const double lg = cross_entropy_forward_backward<double, Host>(m2(zg), ctok(tok), T, true);
  check_close("cross_entropy loss (with_grad)", lg, want, 0, 1e-14);
  const auto dz = snap(zg);
  check_fd("cross_entropy dlogits", z.data(), z.span(), dz.data(), loss);
  for (int i = 0; i < N; ++i) {  // each gradient row sums to zero
    double s = 0;
    for (int v = 0; v < V; ++v) s += dz[size_t(i) * V + v];
    BOOST_TEST(std::abs(s) < 1e-15);
  }
}

namespace {
// The device body (on the default host space) and the host body (on Serial) against a double reference.
// A row's loss m + log Σ exp(z − m) − z_y carries the V-term sum: n = V + 10 on the scale 1 + |m| + |log s| +
// |z_y|; dz = (p − [v = y]) / N with p's relative error (V + 4)·u plus u·|z − m| from the exponent's
// argument.
template <class R>
void cross_entropy_device_case(int B, int T, int V, uint64_t seed) {
  const std::string tag =
      "cross_entropy " + real_name<R>() + " N" + std::to_string(B * T) + " V" + std::to_string(V);
  Rng rng(seed);
  const int N = B * T;
  std::vector<int> vals(size_t(B) * (T + 1));
  for (auto& v : vals) v = int(rng.below(V));
  auto tok = tokens_view(B, T, vals);
  View2<R, Host> z("z", N, V);
  fill_normal(z, rng, 3.0);
  for (int i = 0; i < N; i += 5)
    for (int v = 0; v < V; ++v) z(i, v) += R(40);  // large shared offsets: needs the max subtraction
  double loss = 0, sloss = 0;
  std::vector<double> dz(size_t(N) * V), sdz(dz.size());
  for (int i = 0; i < N; ++i) {
    const int y = tok(i / T, i % T + 1);
    double m = -1e300, se = 0;
    for (int v = 0; v < V; ++v) m = std::max(m, double(z(i, v)));
    for (int v = 0; v < V; ++v) se += std::exp(z(i, v) - m);
    loss += m + std::log(se) - z(i, y), sloss += 1 + std::abs(m) + std::abs(std::log(se)) + std::abs(z(i, y));
    for (int v = 0; v < V; ++v) {
      const double p = std::exp(z(i, v) - m) / se;
      dz[size_t(i) * V + v] = (p - (v == y)) / N;
      sdz[size_t(i) * V + v] = (p * (1 + std::abs(z(i, v) - m)) + (v == y)) / N;
    }
  }
  const std::vector<double> want{loss / N}, swant{sloss / N};
  for (const bool device_body : {false, true}) {
    const std::string who = tag + (device_body ? " device body" : " host body");
    View2<R, Host> zb("zb", N, V);
    double got[2];
    auto run = [&](auto exec, auto body) {
      using E = decltype(exec);
      Kokkos::deep_copy(zb, z);
      got[0] = body(wm<E>(zb), ctok<E>(tok), T, false);
      got[1] = body(wm<E>(zb), ctok<E>(tok), T, true);
    };
    if (device_body)
      run(Host(), device::cross_entropy_forward_backward<R, Host>);
    else
      run(Ser(), host::cross_entropy_forward_backward<R, Ser>);
    check_bound<R>(who + " loss", &got[0], want, swant, V + 10);
    check_bound<R>(who + " loss (with_grad)", &got[1], want, swant, V + 10);
    check_bound<R>(who + " dlogits", zb.data(), dz, sdz, V + 10);
  }
}
}  // namespace

// Production path of the device body: rows not a multiple of the 8 rows per team, V below the 32 lanes
// (text8's 27) and above (256: 8 values per lane).
BOOST_AUTO_TEST_CASE(cross_entropy_device_body) {
  for (const int V : {27, 256}) {
    cross_entropy_device_case<double>(5, 203, V, 610 + V);
    cross_entropy_device_case<float>(5, 203, V, 620 + V);
  }
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
// One consumer mixing n = 5 of the 7 bank slots; its entries sit at start = 2 of an 8-entry source table, so
// the start offset is exercised. Kinds mix summaries (0), phase (1) and split (2) details.
void mixer_case(bool with_beta, int N, uint64_t seed) {
  const std::string tag =
      std::string(with_beta ? "mixer(beta)" : "mixer(no beta)") + " N" + std::to_string(N);
  Rng rng(seed);
  const int NS = 7, D = 5, E_ = 8, start = 2, n = 5;
  const int slots[E_] = {2, 6, 0, 3, 4, 5, 1, 2};
  const int kinds[E_] = {0, 0, 0, 0, 1, 2, 0, 0};
  MixerSources<Host> src;
  src.slot = View1<int, Host>("slot", E_);
  src.kind = View1<int, Host>("kind", E_);
  for (int e = 0; e < E_; ++e) src.slot(e) = slots[e], src.kind(e) = kinds[e];
  src.start = start, src.n = n;

  V3 bank("bank", NS, N, D);
  V2 rinv("rinv", NS, N), alpha("alpha", E_, N), h("h", N, D), r("r", N, D);
  V1 w("w", D), g("g", D), beta("beta", 2);
  fill_normal(bank, rng);
  const double scale[NS] = {1.0, 0.3, 1.0, 2.0, 0.7, 1.5, 1.0};
  for (int s = 0; s < NS; ++s)
    for (int i = 0; i < N; ++i)
      for (int d = 0; d < D; ++d) bank(s, i, d) *= scale[s];
  fill_normal(w, rng, 0.5), fill_normal(g, rng, 0.3, 1.0), fill_normal(r, rng);
  beta(0) = -0.4, beta(1) = 0.6;
  fill_const(alpha, 7.0);

  auto forward = [&](auto exec) {
    using E = decltype(exec);
    MixerSources<E> se{View1<int, E>(src.slot.data(), E_), View1<int, E>(src.kind.data(), E_), start, n};
    for (int s = 0; s < NS; ++s)
      source_rinv<double, E>(w2<E>(rinv), w3<E>(bank), s);  // 1/ρ is a function of v
    mixer_forward<double, E>(m2<E>(h), w2<E>(alpha), w3<E>(bank), w2<E>(rinv), se, c1<E>(w), c1<E>(g),
                             with_beta ? c1<E>(beta) : Vec<const double, E>());
  };
  auto loss = [&] {
    forward(Ser());
    return weighted_sum(h, r);
  };
  forward(Host());

  // forward against the spec §2 formula, and α rows outside the consumer untouched
  for (int i = 0; i < N; ++i) {
    std::vector<double> s(n);
    double mx = -1e300;
    for (int j = 0; j < n; ++j) {
      const int sj = slots[start + j];
      double ss = 0, q = 0;
      for (int d = 0; d < D; ++d) ss += bank(sj, i, d) * bank(sj, i, d), q += w(d) * g(d) * bank(sj, i, d);
      const double rho = std::sqrt(ss / D + 1e-6);
      check_close(tag + " rinv", rinv(sj, i), 1 / rho, 0, 1e-14);
      const int k = kinds[start + j];
      s[j] = q / rho + (with_beta && k > 0 ? beta(k - 1) : 0.0);
      mx = std::max(mx, s[j]);
    }
    double z = 0;
    for (int j = 0; j < n; ++j) z += std::exp(s[j] - mx);
    for (int j = 0; j < n; ++j)
      check_close(tag + " alpha", alpha(start + j, i), std::exp(s[j] - mx) / z, 1e-15, 1e-13);
    for (int d = 0; d < D; ++d) {
      double hv = 0;
      for (int j = 0; j < n; ++j) hv += std::exp(s[j] - mx) / z * bank(slots[start + j], i, d);
      check_close(tag + " h", h(i, d), hv, 1e-14, 1e-13);
    }
    for (int e = 0; e < E_; ++e)
      if (e < start || e >= start + n) BOOST_TEST(alpha(e, i) == 7.0);
  }

  // analytic gradients; every output accumulates (+=), so start from garbage and compare increments
  V3 dbank("dbank", NS, N, D);
  V2 rs("r_part", kRowChunks, D), ks("k_part", kRowChunks, 2);  // per-row-chunk partials
  V1 dw("dw", D), dg("dg", D), dbeta("dbeta", 2);
  fill_normal(dbank, rng), fill_normal(dw, rng), fill_normal(dg, rng), fill_normal(dbeta, rng);
  const auto dbank0 = snap(dbank), dw0 = snap(dw), dg0 = snap(dg), dbeta0 = snap(dbeta);
  mixer_backward<double, Host>(dbank, m1(dw), m1(dg), with_beta ? m1(dbeta) : Vm(), m2(rs), ks, c2(r), c2(h),
                               alpha, bank, rinv, src, c1(w), c1(g));
  const auto gbank = minus(dbank, dbank0), gw = minus(dw, dw0), gg = minus(dg, dg0),
             gbeta = minus(dbeta, dbeta0);
  // all source entries at small N; at large N a sample (strides 7 and 97 are coprime to D and N, so they
  // visit every slot and feature and rows in every chunk)
  check_fd(tag + " d(sources)", bank.data(), bank.span(), gbank.data(), loss, N > 1000 ? 97 : N > 64 ? 7 : 1);
  // slots 2 and 6 are not sources of this consumer: their gradient must be exactly zero
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < D; ++d) {
      BOOST_TEST(gbank[(size_t(2) * N + i) * D + d] == 0.0);
      BOOST_TEST(gbank[(size_t(6) * N + i) * D + d] == 0.0);
    }
  check_fd(tag + " dw", w.data(), w.span(), gw.data(), loss);
  check_fd(tag + " dg", g.data(), g.span(), gg.data(), loss);
  if (with_beta) {
    check_fd(tag + " dbeta", beta.data(), beta.span(), gbeta.data(), loss);
  } else {
    BOOST_TEST(gbeta[0] == 0.0);
    BOOST_TEST(gbeta[1] == 0.0);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(mixer) {
  mixer_case(true, 6, 707);
  mixer_case(false, 6, 708);
  mixer_case(true, 150, 709);  // more rows than kRowChunks: chunks of 2 and 3 rows in the column reductions
  // ≥ 4 rows per chunk at the device's 1024 chunks, uneven chunks: the device body's slot path (4 slots)
  mixer_case(true, 4 * 1024 + 37, 710);
}

// At w = 0 the mix is the uniform average of the sources (spec §2, "at init").
BOOST_AUTO_TEST_CASE(mixer_uniform_at_init) {
  Rng rng(709);
  const int NS = 3, N = 4, D = 6;
  MixerSources<Host> src;
  src.slot = View1<int, Host>("slot", NS);
  src.kind = View1<int, Host>("kind", NS);
  for (int e = 0; e < NS; ++e) src.slot(e) = e, src.kind(e) = 0;
  src.n = NS;
  V3 bank("bank", NS, N, D);
  V2 rinv("rinv", NS, N), alpha("alpha", NS, N), h("h", N, D);
  V1 w("w", D), g("g", D);
  fill_normal(bank, rng), fill_normal(g, rng, 0.3, 1.0);
  for (int s = 0; s < NS; ++s) source_rinv<double, Host>(rinv, bank, s);
  mixer_forward<double, Host>(m2(h), alpha, bank, rinv, src, c1(w), c1(g), Vc());
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < D; ++d)
      check_close("uniform mix", h(i, d), (bank(0, i, d) + bank(1, i, d) + bank(2, i, d)) / 3, 1e-15, 1e-14);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
// One block of S sublayers (l = 1..S, so phase sign +1 for odd l, split sign +1 for i ≤ S/2). Bank slots 1..S
// hold b^1..b^S (slot 0 stands for b_0 and is not written), WAV adds π̃ in slot S+1 and σ̃ in slot S+2.
// Loss = Σ over written slots of r_slot ⊙ bank(slot); the gradient of each y_i comes out of
// block_accumulate_backward. κ is frozen for the finite differences (the spec's stop-gradient).
void block_case(int S, bool wav, uint64_t seed) {
  const std::string tag = std::string(wav ? "wav" : "block") + " S" + std::to_string(S);
  Rng rng(seed);
  const int N = 4, D = 5, NS = S + 3;
  V3 ys("ys", S, N, D), bank("bank", NS, N, D), rbank("r", NS, N, D), dbank("dbank", NS, N, D);
  V2 rinv("rinv", NS, N), kappa("kappa", 2, N);
  fill_normal(ys, rng);
  fill_normal(rbank, rng);
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < D; ++d) rbank(0, i, d) = 0;
  if (!wav)
    for (int s = S + 1; s < NS; ++s)
      for (int i = 0; i < N; ++i)
        for (int d = 0; d < D; ++d) rbank(s, i, d) = 0;
  auto cp_of = [](int l) { return l % 2 == 1 ? 1.0 : -1.0; };
  auto cs_of = [S](int i) { return 2 * i <= S ? 1.0 : -1.0; };
  bool frozen = false;
  auto forward = [&](auto exec) {
    using E = decltype(exec);
    for (int i = 1; i <= S; ++i)
      block_accumulate_forward<double, E>(w3<E>(bank), w2<E>(rinv), i, i == 1 ? -1 : i - 1, c3<E>(ys, i - 1));
    if (wav)
      wav_details_forward<double, E>(w3<E>(bank), w2<E>(rinv), m2<E>(kappa), 1, S, S + 1, S + 2, frozen);
  };
  auto loss = [&] {
    forward(Ser());
    return weighted_sum(bank, rbank);
  };
  forward(Host());

  // forward values: partial sums, signed accumulators, κ and the matched details, and every slot's 1/ρ
  auto rho_row = [&](auto&& f) {
    double ss = 0;
    for (int d = 0; d < D; ++d) ss += f(d) * f(d);
    return std::sqrt(ss / D + 1e-6);
  };
  for (int i = 0; i < N; ++i) {
    std::vector<double> part(D, 0.0), ph(D, 0.0), sp(D, 0.0);
    for (int s = 1; s <= S; ++s) {
      for (int d = 0; d < D; ++d) {
        part[d] += ys(s - 1, i, d);
        ph[d] += cp_of(s) * ys(s - 1, i, d);
        sp[d] += cs_of(s) * ys(s - 1, i, d);
        check_close(tag + " b^i", bank(s, i, d), part[d], 1e-15, 1e-14);
      }
      check_close(tag + " rinv(b^i)", rinv(s, i), 1 / rho_row([&](int d) { return part[d]; }), 0, 1e-14);
    }
    if (wav) {
      const double rb = rho_row([&](int d) { return part[d]; });
      const double kp = rb / rho_row([&](int d) { return ph[d]; }),
                   ksg = rb / rho_row([&](int d) { return sp[d]; });
      check_close(tag + " kappa_phase", kappa(0, i), kp, 0, 1e-14);
      check_close(tag + " kappa_split", kappa(1, i), ksg, 0, 1e-14);
      for (int d = 0; d < D; ++d) {
        check_close(tag + " phase~", bank(S + 1, i, d), kp * ph[d], 1e-15, 1e-13);
        check_close(tag + " split~", bank(S + 2, i, d), ksg * sp[d], 1e-15, 1e-13);
      }
      check_close(tag + " rinv(phase~)", rinv(S + 1, i),
                  1 / rho_row([&](int d) { return bank(S + 1, i, d); }), 0, 1e-14);
      check_close(tag + " rinv(split~)", rinv(S + 2, i),
                  1 / rho_row([&](int d) { return bank(S + 2, i, d); }), 0, 1e-14);
    }
  }

  // analytic: walk the block backwards; dbank = r on the written slots
  Kokkos::deep_copy(dbank, rbank);
  V2 dy("dy", N, D), acc("acc", N, D);
  fill_const(acc, 1e3);  // i = S must start the suffix sum afresh
  std::vector<std::vector<double>> grad(S + 1);
  for (int i = S; i >= 1; --i) {
    block_accumulate_backward<double, Host>(m2(dy), m2(acc), dbank, i, i == S, wav ? S + 1 : -1,
                                            wav ? S + 2 : -1, wav ? c2(kappa) : CM(), cp_of(i), cs_of(i));
    grad[i] = wav ? snap(dy) : snap(acc);
  }
  frozen = true;
  for (int i = 1; i <= S; ++i)
    check_fd(tag + " dy_" + std::to_string(i), &ys(i - 1, 0, 0), size_t(N) * D, grad[i].data(), loss);

  if (wav) {
    // Power check: without the freeze the difference quotient also differentiates κ (which the spec
    // detaches), and must then disagree with the analytic gradient somewhere.
    frozen = false;
    double worst = 0;
    for (int k = 0; k < N * D; ++k) {
      double* x = &ys(0, 0, 0) + k;
      const double orig = *x;
      *x = orig + kStep;
      const double lp = loss();
      *x = orig - kStep;
      const double lm = loss();
      *x = orig;
      worst = std::max(worst, std::abs((lp - lm) / (2 * kStep) - grad[1][k]));
    }
    loss();
    BOOST_TEST(worst > 1e-4,
               tag << ": unfrozen kappa should change the finite differences (got " << worst << ")");
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(block_accumulate) {
  block_case(4, false, 808);
  block_case(6, false, 809);
}

BOOST_AUTO_TEST_CASE(wav_details) {
  block_case(4, true, 810);
  block_case(8, true, 811);
  block_case(6, true, 812);  // S % 4 != 0 is allowed (the bases are then not orthogonal)
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
// Device-shaped routing bodies against the host bodies, both called directly (device:: and host::) on the
// default host space, so that every build checks them, not only WAVRES_DEVICE_KERNELS. The shapes take the
// production paths: N = 4·1024 + 37 rows (≥ 4 rows per chunk at 1024 chunks, chunks of uneven size, 4 slots
// per chunk team), D = 20 and 64 (a multiple of 16 and not), a WAV-like block of S = 4 consumers with
// nc = 4 completed sources of all three kinds, running partials and detail biases.
// The bodies differ only in summation order and in the forward's online softmax (rescaled sums), so they
// agree to a few ulps of each tensor's scale times the depth of the sums: normwise
// max|dev − host| ≤ tol·max|host| with tol = 1e-12 in double (measured ≤ 2.5e-15: 400x margin) and 2e-5 in
// float (measured ≤ 1.2e-6: 17x margin). A wrong term (a dropped coefficient, a row or chunk skipped, a
// missing rescale) is off by ≥ 1e-1 of the scale (seen: five such faults each fail here).
template <class V>
double max_abs(const V& v) {
  double m = 0;
  for (size_t k = 0; k < v.span(); ++k) m = std::max(m, std::abs(double(v.data()[k])));
  return m;
}
template <class V>
void expect_same(const std::string& what, const V& dev, const V& host, double tol) {
  double err = 0;
  for (size_t k = 0; k < dev.span(); ++k)
    err = std::max(err, std::abs(double(dev.data()[k]) - double(host.data()[k])));
  const double scale = max_abs(host);
  // FNV-1a of the device result's bytes: runs at different OMP_NUM_THREADS must print the same digests (the
  // device bodies' sums have an order fixed by the shapes, not by the team size)
  uint64_t digest = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(dev.data());
  for (size_t k = 0; k < dev.span() * sizeof(*dev.data()); ++k)
    digest = (digest ^ bytes[k]) * 1099511628211ull;
  BOOST_TEST_MESSAGE(what << ": max |device - host| = " << err << " (scale " << scale << "), device digest "
                          << std::hex << digest << std::dec);
  BOOST_TEST(err <= tol * scale,
             what << ": device body differs from host body by " << err << " (scale " << scale << ")");
  BOOST_TEST(scale > 1e-6, what << ": compared tensor is (nearly) zero, the check would be vacuous");
}
template <class V>
V clone(const V& v) {
  V c(v.label() + "_copy", v.layout());
  Kokkos::deep_copy(c, v);
  return c;
}

template <class R>
void routing_bodies_case(int D, double tol) {
  using U1 = View1<R, Host>;
  using U2 = View2<R, Host>;
  using U3 = View3<R, Host>;
  using CU2 = View2<const R, Host>;
  using CU3 = View3<const R, Host>;
  using UM = Mat<R, Host>;
  using CUM = Mat<const R, Host>;
  using UV = Vec<R, Host>;
  using CUV = Vec<const R, Host>;
  const std::string tag =
      std::string(std::is_same_v<R, double> ? "double" : "float") + " D" + std::to_string(D);
  constexpr int C = row_chunks_v<Host>;
  const int64_t N = 4 * 1024 + 37;
  const int S = 4, nc = 4, NS = 12, E = S * (nc + 1);
  Rng rng(4242 + D);
  auto fill = [&](auto v, double std, double mean = 0.0) {
    for (size_t k = 0; k < v.span(); ++k) v.data()[k] = R(mean + std * rng.normal());
  };
  // source table: consumer p (entries p·(nc+1) ..) reads C_n = {b0, b1, π̃1, σ̃1} and its running partial
  const int comp_slots[nc] = {0, 4, 9, 10}, comp_kinds[nc] = {0, 0, 1, 2};
  View1<int, Host> slot("slot", E), kind("kind", E), starts("starts", S);
  for (int p = 0; p < S; ++p) {
    starts(p) = p * (nc + 1);
    for (int j = 0; j < nc; ++j)
      slot(p * (nc + 1) + j) = comp_slots[j], kind(p * (nc + 1) + j) = comp_kinds[j];
    slot(p * (nc + 1) + nc) = 4 + p, kind(p * (nc + 1) + nc) = 0;  // b_2^p (slot 4 at p = 0: unused)
  }
  U3 bank("bank", NS, N, D);
  fill(bank, 1.0);
  U2 rinv("rinv", NS, N), rinv_d("rinv_d", NS, N);
  for (int s = 0; s < NS; ++s) {
    host::source_rinv<R, Host>(rinv, bank, s);
    device::source_rinv<R, Host>(rinv_d, bank, s);
  }
  expect_same(tag + " source_rinv", rinv_d, rinv, tol);
  U2 qhat("qhat", S, D), w("w", S, D), g("g", S, D), beta("beta", S, 2);
  fill(w, 0.5), fill(g, 0.3, 1.0), fill(beta, 0.5);
  for (int p = 0; p < S; ++p)
    for (int d = 0; d < D; ++d) qhat(p, d) = w(p, d) * g(p, d);
  auto crow = [&](const U2& v, int p) { return CUV(&v(p, 0), v.extent(1)); };
  auto rrow = [&](const U2& v, int p) { return UV(&v(p, 0), v.extent(1)); };

  // mixer forward and backward, consumer p = 3 with all its sources (FirstWrite none / last / all)
  const int cp3 = 3;
  MixerSources<Host> src{slot, kind, cp3 * (nc + 1), nc + 1};
  U2 h("h", N, D), alpha("alpha", E, N);
  fill(alpha, 1.0);
  U2 h_d = clone(h), alpha_d = clone(alpha);
  const MixerForwardArgs<R, Host> fwd{UM(h.data(), N, D), alpha,        bank,           rinv, src,
                                      crow(w, cp3),       crow(g, cp3), crow(beta, cp3)};
  auto fwd_d = fwd;
  fwd_d.h = UM(h_d.data(), N, D), fwd_d.alpha = alpha_d;
  host::mixer_forward(fwd);
  device::mixer_forward(fwd_d);
  expect_same(tag + " mixer_forward h", h_d, h, tol);
  expect_same(tag + " mixer_forward alpha", alpha_d, alpha, tol);
  for (FirstWrite first : {FirstWrite::none, FirstWrite::last, FirstWrite::all}) {
    const std::string t = tag + " mixer_backward(first " + std::to_string(int(first)) + ")";
    U3 dbank("dbank", NS, N, D);
    U2 G("G", N, D), dgr("dgrads", 3, D);  // rows: dw, dg, dbeta (first two entries)
    fill(dbank, 1.0), fill(G, 1.0), fill(dgr, 1.0);
    U3 dbank_d = clone(dbank);
    U2 dgr_d = clone(dgr);
    U2 rp("r_part", C, D), kp("k_part", C, 2), rp_d("r_part_d", C, D), kp_d("k_part_d", C, 2);
    MixerBackwardArgs<R, Host> b{dbank,
                                 {rrow(dgr, 0), rrow(dgr, 1), UV(&dgr(2, 0), 2)},
                                 rp,
                                 kp,
                                 CUM(G.data(), N, D),
                                 CUM(h.data(), N, D),
                                 alpha,
                                 bank,
                                 rinv,
                                 src,
                                 crow(w, cp3),
                                 crow(g, cp3),
                                 first};
    auto b_d = b;
    b_d.dbank = dbank_d, b_d.grads = {rrow(dgr_d, 0), rrow(dgr_d, 1), UV(&dgr_d(2, 0), 2)}, b_d.r_part = rp_d,
    b_d.k_part = kp_d;
    host::mixer_backward(b);
    device::mixer_backward(b_d);
    expect_same(t + " dbank", dbank_d, dbank, tol);
    expect_same(t + " dw, dg, dbeta", dgr_d, dgr, tol);
  }

  // phase 1 and the merge of every block position
  U3 apart("apart", S, N, D);
  U2 mpart("mpart", S, N), lpart("lpart", S, N);
  U3 apart_d = clone(apart);
  U2 mpart_d = clone(mpart), lpart_d = clone(lpart), alpha2 = clone(alpha), alpha2_d = clone(alpha);
  const BlockSources<Host> bsrc{slot, kind, starts, 0, S, nc};
  host::mixer_block_phase1(MixerBlockPhase1Args<R, Host>{
      {apart, mpart, lpart}, alpha2, bank, rinv, bsrc, CUM(qhat.data(), S, D), CUM(beta.data(), S, 2)});
  device::mixer_block_phase1(MixerBlockPhase1Args<R, Host>{{apart_d, mpart_d, lpart_d},
                                                           alpha2_d,
                                                           bank,
                                                           rinv,
                                                           bsrc,
                                                           CUM(qhat.data(), S, D),
                                                           CUM(beta.data(), S, 2)});
  expect_same(tag + " phase1 a_p", apart_d, apart, tol);
  expect_same(tag + " phase1 m_p", mpart_d, mpart, tol);
  expect_same(tag + " phase1 l_p", lpart_d, lpart, tol);
  expect_same(tag + " phase1 alpha", alpha2_d, alpha2, tol);
  U3 hs("hs", S, N, D), hs_d("hs_d", S, N, D);
  for (int p = 0; p < S; ++p) {
    const int pslot = p >= 1 ? 4 + p : -1;
    auto hp = UM(&hs(p, 0, 0), N, D), hp_d = UM(&hs_d(p, 0, 0), N, D);
    host::mixer_block_merge(MixerBlockMergeArgs<R, Host>{
        hp, alpha2, bank, rinv, {apart, mpart, lpart}, CUM(qhat.data(), S, D), p, p * (nc + 1), nc, pslot});
    device::mixer_block_merge(MixerBlockMergeArgs<R, Host>{hp_d,
                                                           alpha2_d,
                                                           bank,
                                                           rinv,
                                                           {apart_d, mpart_d, lpart_d},
                                                           CUM(qhat.data(), S, D),
                                                           p,
                                                           p * (nc + 1),
                                                           nc,
                                                           pslot});
  }
  expect_same(tag + " merge h", hs_d, hs, tol);
  expect_same(tag + " merge alpha", alpha2_d, alpha2, tol);

  // running-partial backward (WAV: tp = −2 with and without the split term, Block: no details), then the
  // completed sources' backward from all S consumers
  U2 kappa("kappa", 2, N);
  fill(kappa, 0.2, 1.0);
  U3 gsave("gsave", S, N, D), dbank("dbank", NS, N, D);
  fill(gsave, 1.0), fill(dbank, 1.0);
  for (int p = 1; p < S; ++p)
    for (bool wav : {true, false}) {
      const std::string t = tag + " partial_backward p" + std::to_string(p) + (wav ? " wav" : " block");
      U2 dy("dy", N, D), dgr("dgrads", 2, D);
      fill(dy, 1.0), fill(dgr, 1.0);
      U2 dy_d = clone(dy), dgr_d = clone(dgr), rp("r_part", C, D), rp_d("r_part_d", C, D);
      const R ts = p == 2 ? R(2) : R(0);  // the split sign changes once per block
      MixerBlockPartialBackwardArgs<R, Host> b{UM(dy.data(), N, D),
                                               {rrow(dgr, 0), rrow(dgr, 1), {}},
                                               rp,
                                               CUM(&gsave(p, 0, 0), N, D),
                                               CUM(&hs(p, 0, 0), N, D),
                                               alpha2,
                                               p * (nc + 1) + nc,
                                               bank,
                                               rinv,
                                               4 + p,
                                               crow(w, p),
                                               crow(g, p),
                                               dbank,
                                               {wav ? 9 : -1, wav ? 10 : -1, CUM(kappa.data(), 2, N)},
                                               R(-2),
                                               ts};
      auto b_d = b;
      b_d.dy = UM(dy_d.data(), N, D), b_d.grads = {rrow(dgr_d, 0), rrow(dgr_d, 1), {}}, b_d.r_part = rp_d;
      host::mixer_block_partial_backward(b);
      device::mixer_block_partial_backward(b_d);
      expect_same(t + " dy", dy_d, dy, tol);
      expect_same(t + " dw, dg", dgr_d, dgr, tol);
    }
  {
    U3 dbank_d = clone(dbank);
    U2 dW("dW", S, D), dG("dG", S, D), dbeta("dbeta", S, 2);
    fill(dW, 1.0), fill(dG, 1.0), fill(dbeta, 1.0);
    U2 dW_d = clone(dW), dG_d = clone(dG), dbeta_d = clone(dbeta);
    U3 rp("r_part", C, S, D), kp("k_part", C, S, 2), rp_d("r_part_d", C, S, D), kp_d("k_part_d", C, S, 2);
    MixerBlockBackwardArgs<R, Host> b{dbank,
                                      {UM(dW.data(), S, D), UM(dG.data(), S, D), UM(dbeta.data(), S, 2)},
                                      rp,
                                      kp,
                                      gsave,
                                      hs,
                                      alpha2,
                                      bank,
                                      rinv,
                                      bsrc,
                                      CUM(qhat.data(), S, D),
                                      CUM(w.data(), S, D),
                                      CUM(g.data(), S, D)};
    auto b_d = b;
    b_d.dbank = dbank_d, b_d.r_part = rp_d, b_d.k_part = kp_d;
    b_d.grads = {UM(dW_d.data(), S, D), UM(dG_d.data(), S, D), UM(dbeta_d.data(), S, 2)};
    host::mixer_block_backward_completed(b);
    device::mixer_block_backward_completed(b_d);
    expect_same(tag + " completed_backward dbank", dbank_d, dbank, tol);
    expect_same(tag + " completed_backward dW", dW_d, dW, tol);
    expect_same(tag + " completed_backward dG", dG_d, dG, tol);
    expect_same(tag + " completed_backward dbeta", dbeta_d, dbeta, tol);
  }

  // accumulation: b^1..b^S into slots 5..8 from updates, WAV details of the block into slots 9, 10
  U3 ys("ys", S, N, D);
  fill(ys, 1.0);
  U3 bank_d = clone(bank);
  U2 rinv2 = clone(rinv), rinv2_d = clone(rinv), kap = clone(kappa), kap_d = clone(kappa);
  for (int i = 1; i <= S; ++i) {
    host::block_accumulate_forward<R, Host>(bank, rinv2, 4 + i, i == 1 ? -1 : 3 + i,
                                            CUM(&ys(i - 1, 0, 0), N, D));
    device::block_accumulate_forward<R, Host>(bank_d, rinv2_d, 4 + i, i == 1 ? -1 : 3 + i,
                                              CUM(&ys(i - 1, 0, 0), N, D));
  }
  for (bool frozen : {false, true}) {
    host::wav_details_forward<R, Host>(bank, rinv2, UM(kap.data(), 2, N), 5, S, 9, 10, frozen);
    device::wav_details_forward<R, Host>(bank_d, rinv2_d, UM(kap_d.data(), 2, N), 5, S, 9, 10, frozen);
    expect_same(tag + " accumulate + wav_details bank" + (frozen ? " (frozen)" : ""), bank_d, bank, tol);
    expect_same(tag + " accumulate + wav_details rinv" + (frozen ? " (frozen)" : ""), rinv2_d, rinv2, tol);
    expect_same(tag + " wav_details kappa" + (frozen ? " (frozen)" : ""), kap_d, kap, tol);
  }
  for (bool wav : {true, false}) {
    const std::string t = tag + (wav ? " wav" : " block");
    const DetailGrads<R, Host> det{wav ? 9 : -1, wav ? 10 : -1, CUM(kap.data(), 2, N)};
    U2 dy("dy", N, D), acc("acc", N, D);
    fill(dy, 1.0), fill(acc, 1.0);
    U2 dy_d = clone(dy), acc_d = clone(acc);
    for (int i = S; i >= 1; --i) {
      host::block_accumulate_backward<R, Host>(UM(dy.data(), N, D), UM(acc.data(), N, D), dbank, 4 + i,
                                               i == S, det, R(phase_sign(i)), R(split_sign(i, S)));
      device::block_accumulate_backward<R, Host>(UM(dy_d.data(), N, D), UM(acc_d.data(), N, D), dbank, 4 + i,
                                                 i == S, det, R(phase_sign(i)), R(split_sign(i, S)));
    }
    expect_same(t + " block_accumulate_backward acc", acc_d, acc, tol);
    if (wav) expect_same(t + " block_accumulate_backward dy", dy_d, dy, tol);
    host::block_last_update_backward<R, Host>(UM(dy.data(), N, D), dbank, 8, det, R(-1), R(-1));
    device::block_last_update_backward<R, Host>(UM(dy_d.data(), N, D), dbank, 8, det, R(-1), R(-1));
    expect_same(t + " block_last_update_backward", dy_d, dy, tol);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(routing_device_bodies_match_host_bodies) {
  routing_bodies_case<double>(20, 1e-12);
  routing_bodies_case<double>(64, 1e-12);
  routing_bodies_case<float>(64, 2e-5);
}

// ---------------------------------------------------------------------------------------------------------------
namespace {
template <class R>
void adamw_case(double abs_tol, double rel_tol) {
  Rng rng(909);
  const int P = 11;
  const int64_t decay_end = 7;
  AdamWConfig cfg;  // β = (0.9, 0.95), eps 1e-8, wd 0.1, clip 1.0
  cfg.weight_decay = 0.3;
  View1<R, Host> p("p", P), g("g", P), m("m", P), v("v", P);
  std::vector<double> hp(P), hm(P, 0.0), hv(P, 0.0);
  for (int i = 0; i < P; ++i) p(i) = R(rng.normal()), hp[i] = double(p(i));
  const double lrs[3] = {3e-2, 1e-2, 2e-2};
  const double gscale[3] = {1.5, 0.1, 0.6};  // norms ≈ 5 (clipped), ≈ 0.33 (not), ≈ 2 (clipped)
  for (int t = 1; t <= 3; ++t) {
    std::vector<double> hg(P);
    for (int i = 0; i < P; ++i) g(i) = R(gscale[t - 1] * rng.normal()), hg[i] = double(g(i));
    double ss = 0;
    for (int i = 0; i < P; ++i) ss += hg[i] * hg[i];
    const double norm = std::sqrt(ss);
    const double lib_norm = global_grad_norm<R, Host>(View1<const R, Host>(g));
    check_close("grad norm", lib_norm, norm, 0, 1e-14);
    adamw_step<R, Host>(p, View1<const R, Host>(g), m, v, decay_end, lrs[t - 1], t, lib_norm, cfg);
    // scalar reference: spec §6 / PyTorch AdamW with clip_grad_norm_
    const double clip = std::min(1.0, cfg.clip_norm / (norm + 1e-6));
    BOOST_TEST_MESSAGE("adamw step " << t << ": |g| = " << norm << ", clip factor " << clip);
    for (int i = 0; i < P; ++i) {
      const double gi = hg[i] * clip;
      hm[i] = cfg.beta1 * hm[i] + (1 - cfg.beta1) * gi;
      hv[i] = cfg.beta2 * hv[i] + (1 - cfg.beta2) * gi * gi;
      if (i < decay_end) hp[i] -= lrs[t - 1] * cfg.weight_decay * hp[i];
      const double mhat = hm[i] / (1 - std::pow(cfg.beta1, t)), vhat = hv[i] / (1 - std::pow(cfg.beta2, t));
      hp[i] -= lrs[t - 1] * mhat / (std::sqrt(vhat) + cfg.eps);
      check_close("adamw m[" + std::to_string(i) + "]", double(m(i)), hm[i], abs_tol, rel_tol);
      check_close("adamw v[" + std::to_string(i) + "]", double(v(i)), hv[i], abs_tol * abs_tol, rel_tol);
      check_close("adamw p[" + std::to_string(i) + "] step " + std::to_string(t), double(p(i)), hp[i],
                  abs_tol, rel_tol);
    }
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(adamw) {
  adamw_case<double>(1e-15, 1e-12);
  adamw_case<float>(1e-6, 1e-5);
}

BOOST_AUTO_TEST_CASE(lr_schedule) {
  const double peak = 1e-3;
  const auto s = LrSchedule::with_defaults(peak, 1000);
  BOOST_TEST(s.warmup_steps == 50);
  check_close("lr warm-up start", s(0), peak / 50, 0, 1e-14);
  check_close("lr warm-up middle", s(24), peak * 25 / 50, 0, 1e-14);
  check_close("lr peak (end of warm-up)", s(49), peak, 0, 1e-14);
  check_close("lr peak (start of decay)", s(50), peak, 0, 1e-14);
  check_close("lr cosine midpoint", s(50 + 475), 0.1 * peak + 0.9 * peak * 0.5, 0, 1e-12);
  check_close("lr quarter", s(50 + 190), 0.1 * peak + 0.9 * peak * 0.5 * (1 + std::cos(M_PI * 0.2)), 0,
              1e-12);
  check_close("lr floor at total", s(1000), 0.1 * peak, 0, 1e-14);
  check_close("lr floor beyond total", s(5000), 0.1 * peak, 0, 1e-14);
  check_close("lr last step ~ floor", s(999), 0.1 * peak, 0, 1e-4);
  for (int64_t k = 1; k < 50; ++k) BOOST_TEST(s(k) > s(k - 1));
  for (int64_t k = 51; k <= 1000; ++k) BOOST_TEST(s(k) <= s(k - 1));
  // no warm-up: starts at the peak
  const auto s0 = LrSchedule::with_defaults(peak, 10);
  BOOST_TEST(s0.warmup_steps == 0);
  check_close("lr no warm-up", s0(0), peak, 0, 1e-14);
  check_close("lr no warm-up end", s0(10), 0.1 * peak, 0, 1e-14);
}

BOOST_AUTO_TEST_SUITE_END()
