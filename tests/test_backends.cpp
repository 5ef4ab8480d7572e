// The library's backend against Kokkos::Serial: the same model, parameters and batch on the default execution
// space (OpenMP in the default build, CUDA in a CUDA build) and on Serial must give the same loss, gradients
// and routing weights. This is how a CUDA build proves it computes what the host computes; in the OpenMP
// build it checks the parallel reductions and the thread-chunked partial sums.
//
// Tolerances are normwise per tensor, max|a−b| ≤ rtol·max|b| + atol: the backends differ only in summation
// order (threads, cuBLAS' gemm blocking, chunked partials) and by an ulp or two in exp/log, so the error is a
// few ulps of the tensor's scale times the depth of the computation. double: rtol 1e-11 (ε = 1.1e-16, four
// orders of margin); float: rtol 2e-5 (ε = 6e-8, measured OpenMP vs Serial ≤ 2e-6). A wrong kernel is off by
// O(1).
#include <boost/test/unit_test.hpp>
#include "model_fixtures.hpp"

using namespace wavres;
using namespace wavres::test;

namespace {

struct Worst {
  std::string name;
  double err = 0;
};

template <class R>
Worst compare_grads(const ParamTable& table, const std::vector<R>& a, const std::vector<R>& b, double rtol,
                    double atol, int& failed) {
  Worst w;
  for (const auto& e : table.entries) {
    double num = 0, scale = 0;
    for (int64_t k = 0; k < e.size(); ++k) {
      num = std::max(num, std::abs(double(a[e.offset + k]) - double(b[e.offset + k])));
      scale = std::max(scale, std::abs(double(b[e.offset + k])));
    }
    const double rel = num / std::max(scale, 1e-30);
    if (num > rtol * scale + atol) {
      ++failed;
      BOOST_TEST_MESSAGE("  " << e.name << ": max|a-b| " << num << " over scale " << scale);
    }
    if (rel > w.err) w = {e.name, rel};
  }
  return w;
}

template <class R, class E>
std::vector<R> host_copy(const View1<R, E>& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<R>(h.data(), h.data() + h.extent(0));
}

template <class Spec, class R>
void backend_matches_serial(double rtol, double atol) {
  const Dims d = tiny_dims();
  Model<Spec, R, Dev> dev(d);
  Model<Spec, R, Kokkos::Serial> ser(d);
  generic_params(ser, 41);
  Kokkos::deep_copy(dev.params(), ser.params());
  auto tok_dev = random_tokens<Dev>(d, 42);
  auto tok_ser = random_tokens<Kokkos::Serial>(d, 42);
  const double ld = dev.loss_and_grad(tok_dev), ls = ser.loss_and_grad(tok_ser);
  int failed = 0;
  const Worst w =
      compare_grads(ser.table(), host_copy(dev.grads()), host_copy(ser.grads()), rtol, atol, failed);
  BOOST_TEST_MESSAGE(Spec::name() << " " << (sizeof(R) == 4 ? "float" : "double") << " " << Dev::name()
                                  << " vs Serial: loss " << ld << " vs " << ls << ", worst gradient " << w.err
                                  << " (" << w.name << ")");
  BOOST_TEST(std::abs(ld - ls) <= rtol * std::abs(ls));
  BOOST_TEST(failed == 0);
  if constexpr (Spec::routed) {
    const auto ad = dev.alpha_mean(), as = ser.alpha_mean();
    BOOST_REQUIRE_EQUAL(ad.size(), as.size());
    for (size_t k = 0; k < ad.size(); ++k)
      if (!std::isnan(as[k])) BOOST_TEST(std::abs(double(ad[k]) - double(as[k])) <= 1e-5);  // stored as float
  }
  // the comparison is not vacuous: a different batch changes the loss
  BOOST_TEST(std::abs(ser.forward(random_tokens<Kokkos::Serial>(d, 43), false) - ls) > 1e-4);
}

template <class Spec>
void both_precisions() {
  backend_matches_serial<Spec, double>(1e-11, 1e-14);
  backend_matches_serial<Spec, float>(2e-5, 1e-9);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(backends)
BOOST_AUTO_TEST_CASE(prenorm) {
  both_precisions<ModelSpec<Variant::prenorm, 3>>();
}
BOOST_AUTO_TEST_CASE(full_attnres) {
  both_precisions<ModelSpec<Variant::full_attnres, 3>>();
}
BOOST_AUTO_TEST_CASE(block_attnres) {
  both_precisions<ModelSpec<Variant::block_attnres, 4, 4>>();
}
BOOST_AUTO_TEST_CASE(wav_v1) {
  both_precisions<ModelSpec<Variant::wav_v1, 6, 4>>();
}
BOOST_AUTO_TEST_SUITE_END()
