// Whole-model gradient check: the hand-derived backward of every variant against central finite differences
// of the forward, in double precision at a tiny width. With h = 1e-5 the truncation error is O(h²·f''') ≈
// 1e-10 and the rounding error O(ε·|loss|/h) ≈ 1e-11, so 1e-7 absolute + 1e-5 relative leaves two orders of
// margin while a wrong term (typically ≥ 1e-3 of the gradient) fails.
#include <boost/test/unit_test.hpp>
#include "model_fixtures.hpp"

using namespace wavres;
using namespace wavres::test;

template <class Spec>
void gradcheck_model() {
  using M = Model<Spec, double, Dev>;
  const Dims d = tiny_dims();
  M m(d);
  generic_params(m, 7);
  auto tokens = random_tokens<Dev>(d, 11);
  m.loss_and_grad(tokens);
  auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.grads());
  m.freeze_kappa(true);  // WAV: the detached RMS factor is a constant of the gradient (spec §5)
  auto p = m.params();
  auto ph = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p);
  Rng pick(3);
  int checked = 0, failed = 0;
  for (auto& e : m.table().entries) {
    const int samples = int(std::min<int64_t>(e.size(), 6));
    for (int s = 0; s < samples; ++s) {
      const int64_t k = e.offset + (e.size() <= 6 ? s : pick.below(e.size()));
      const double orig = ph(k), h = 1e-5;
      set_entry_value(p, k, orig + h);
      const double lp = m.forward(tokens, false);
      set_entry_value(p, k, orig - h);
      const double lm = m.forward(tokens, false);
      set_entry_value(p, k, orig);
      const double fd = (lp - lm) / (2 * h);
      const double err = std::abs(fd - g(k));
      ++checked;
      if (err > 1e-7 + 1e-5 * std::abs(fd)) {
        ++failed;
        BOOST_TEST_MESSAGE(Spec::name() << " " << e.name << "[" << (k - e.offset) << "] analytic " << g(k)
                                        << " fd " << fd);
      }
    }
  }
  BOOST_TEST_MESSAGE(Spec::name() << ": " << checked << " gradient entries checked");
  BOOST_TEST(failed == 0);
}

BOOST_AUTO_TEST_SUITE(model_gradcheck)
BOOST_AUTO_TEST_CASE(prenorm) {
  gradcheck_model<ModelSpec<Variant::prenorm, 2>>();
}
BOOST_AUTO_TEST_CASE(full_attnres) {
  gradcheck_model<ModelSpec<Variant::full_attnres, 2>>();
}
BOOST_AUTO_TEST_CASE(block_attnres) {
  gradcheck_model<ModelSpec<Variant::block_attnres, 4, 4>>();
}
BOOST_AUTO_TEST_CASE(wav_v1) {
  gradcheck_model<ModelSpec<Variant::wav_v1, 4, 4>>();
}
BOOST_AUTO_TEST_SUITE_END()
