// Test driver: Kokkos lives for the whole test run; OpenBLAS gets its core type before any gemm.
#define BOOST_TEST_MODULE wavres
#define BOOST_TEST_NO_MAIN
#include <Kokkos_Core.hpp>
#include <boost/test/unit_test.hpp>
#include "wavres/cli/blas_env.hpp"

int main(int argc, char** argv) {
  wavres::ensure_blas_coretype(argc, argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  return boost::unit_test::unit_test_main([] { return true; }, argc, argv);
}
