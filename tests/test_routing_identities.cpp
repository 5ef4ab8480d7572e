// The identities of routing-spec.md's closing paragraph, on the library itself (double precision):
//  * zero pseudo-queries: every consumer's weights are uniform over its sources (WAV: up to e^β on details);
//  * WAV v1 with detail biases at −1e9 computes exactly Block AttnRes (loss and every shared gradient);
//  * the two-phase block mixer equals the consumer-by-consumer mixer;
//  * a backward pass leaves no state behind (the source-gradient bank is assigned, never zeroed).
#include <boost/test/unit_test.hpp>
#include "model_fixtures.hpp"

using namespace wavres;
using namespace wavres::test;

namespace {

template <class M>
void set_entry(M& m, const std::string& name, double value) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.params());
  const auto& e = m.table().at(name);
  for (int64_t k = 0; k < e.size(); ++k) h(e.offset + k) = value;
  Kokkos::deep_copy(m.params(), h);
}

template <class Spec>
void uniform_at_zero_queries(double detail_bias) {
  Model<Spec, double, Dev> m(tiny_dims());
  m.init_params(3, 0.0);
  if constexpr (Spec::variant == Variant::wav_v1) set_entry(m, "routing/detail_bias", detail_bias);
  auto tokens = random_tokens<Dev>(tiny_dims(), 4);
  m.forward(tokens, false);
  const auto a = m.alpha_mean();
  const auto& src = m.sources();
  const int nmax = src.max_count();
  int checked = 0;
  for (int c = 0; c <= Spec::L; ++c) {
    double z = 0;  // softmax normaliser with zero logits except the detail biases
    for (int j = 0; j < src.count(c); ++j)
      z += src.kind[src.start[c] + j] == kSummary ? 1.0 : std::exp(detail_bias);
    for (int j = 0; j < src.count(c); ++j) {
      const double want = (src.kind[src.start[c] + j] == kSummary ? 1.0 : std::exp(detail_bias)) / z;
      BOOST_TEST(a[size_t(c) * nmax + j] == want, boost::test_tools::tolerance(1e-6));  // stored as float32
      ++checked;
    }
    for (int j = src.count(c); j < nmax; ++j) BOOST_TEST(std::isnan(a[size_t(c) * nmax + j]));
  }
  BOOST_TEST(checked == src.total());
}

template <class M>
std::vector<double> grads_of(M& m, const std::string& name) {
  auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.grads());
  const auto& e = m.table().at(name);
  return std::vector<double>(g.data() + e.offset, g.data() + e.offset + e.size());
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 1e-300;
  for (size_t k = 0; k < a.size(); ++k)
    num = std::max(num, std::abs(a[k] - b[k])), den = std::max(den, std::abs(b[k]));
  return num / den;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(routing_identities)

BOOST_AUTO_TEST_CASE(uniform_weights_at_zero_queries) {
  uniform_at_zero_queries<ModelSpec<Variant::full_attnres, 3>>(0);
  uniform_at_zero_queries<ModelSpec<Variant::block_attnres, 4, 4>>(0);
  uniform_at_zero_queries<ModelSpec<Variant::wav_v1, 4, 4>>(0.0);
  uniform_at_zero_queries<ModelSpec<Variant::wav_v1, 4, 4>>(-2.0);  // the pinned init: details weigh e^-2
}

// Detail logits at −1e9 underflow to exactly zero weight, so WAV's mix is Block's mix; only the summation
// order of exact zeros differs, hence a 1e-12 relative bound in double.
BOOST_AUTO_TEST_CASE(wav_with_vanishing_details_is_block_attnres) {
  const Dims d = tiny_dims();
  Model<ModelSpec<Variant::block_attnres, 4, 4>, double, Dev> block(d);
  Model<ModelSpec<Variant::wav_v1, 4, 4>, double, Dev> wav(d);
  block.init_params(9, 0.5);
  wav.init_params(9, 0.5);  // same stream: every shared tensor gets the same values (detail_bias comes last)
  set_entry(wav, "routing/detail_bias", -1e9);
  auto tokens = random_tokens<Dev>(d, 10);
  const double lb = block.loss_and_grad(tokens), lw = wav.loss_and_grad(tokens);
  BOOST_TEST(lw == lb, boost::test_tools::tolerance(1e-12));
  for (auto& e : block.table().entries) {
    const double r = max_rel_diff(grads_of(wav, e.name), grads_of(block, e.name));
    BOOST_TEST_CONTEXT(e.name) {
      BOOST_TEST(r < 1e-10);
    }
  }
  for (double g : grads_of(wav, "routing/detail_bias")) BOOST_TEST(g == 0.0);
}

template <class Spec>
void two_phase_equals_plain() {
  const Dims d = tiny_dims();
  Model<Spec, double, Dev> m(d);
  generic_params(m, 21);
  auto tokens = random_tokens<Dev>(d, 22);
  m.set_two_phase(false);
  const double l_plain = m.loss_and_grad(tokens);
  const auto a_plain = m.alpha_mean();
  auto g_plain = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.grads());
  std::vector<double> gp(g_plain.data(), g_plain.data() + g_plain.extent(0));
  m.set_two_phase(true);
  const double l_two = m.loss_and_grad(tokens);
  const auto a_two = m.alpha_mean();
  auto g_two = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.grads());
  BOOST_TEST(l_two == l_plain, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(max_rel_diff(std::vector<double>(g_two.data(), g_two.data() + g_two.extent(0)), gp) < 1e-11);
  for (size_t k = 0; k < a_plain.size(); ++k)
    if (!std::isnan(a_plain[k])) BOOST_TEST(a_two[k] == a_plain[k], boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(two_phase_mixer_equals_plain_mixer) {
  two_phase_equals_plain<ModelSpec<Variant::block_attnres, 4, 4>>();
  two_phase_equals_plain<ModelSpec<Variant::wav_v1, 4, 4>>();
  two_phase_equals_plain<ModelSpec<Variant::block_attnres, 6, 6>>();
  two_phase_equals_plain<ModelSpec<Variant::wav_v1, 6, 4>>();
}

// The source-gradient bank is not zeroed between steps: each slot's first writer assigns. A slot that was
// accumulated into instead would carry the previous batch's gradient, so a model that has just run a
// backward on other tokens must give bit-identical gradients to a fresh one.
template <class Spec>
void backward_is_stateless(bool two_phase) {
  const Dims d = tiny_dims();
  Model<Spec, double, Dev> used(d), fresh(d);
  generic_params(used, 31);
  generic_params(fresh, 31);
  if constexpr (is_blocked(Spec::variant)) used.set_two_phase(two_phase), fresh.set_two_phase(two_phase);
  auto other = random_tokens<Dev>(d, 32), tokens = random_tokens<Dev>(d, 33);
  used.loss_and_grad(other);
  const double l_used = used.loss_and_grad(tokens), l_fresh = fresh.loss_and_grad(tokens);
  BOOST_TEST(l_used == l_fresh);
  auto gu = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), used.grads());
  auto gf = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), fresh.grads());
  int64_t differ = 0;
  for (size_t k = 0; k < gu.extent(0); ++k) differ += gu(k) != gf(k);
  BOOST_TEST(differ == 0);
}

BOOST_AUTO_TEST_CASE(backward_leaves_no_state) {
  backward_is_stateless<ModelSpec<Variant::full_attnres, 3>>(true);
  for (bool two_phase : {true, false}) {
    backward_is_stateless<ModelSpec<Variant::block_attnres, 4, 4>>(two_phase);
    backward_is_stateless<ModelSpec<Variant::wav_v1, 4, 4>>(two_phase);
    backward_is_stateless<ModelSpec<Variant::wav_v1, 6, 4>>(two_phase);
  }
}

BOOST_AUTO_TEST_SUITE_END()
