// Shared helpers for model-level tests: tiny dimensions, random batches, finite differences.
#pragma once
#include <cmath>
#include <vector>
#include "wavres/model/model.hpp"

namespace wavres::test {

using Host = Kokkos::DefaultHostExecutionSpace;  // where the host references (Eigen) read their inputs
using Dev = Kokkos::DefaultExecutionSpace;       // where the library runs: OpenMP, or CUDA in a CUDA build

// One parameter entry written in place, wherever the view lives (a one-element deep_copy on a GPU).
template <class V>
void set_entry_value(const V& v, int64_t k, typename V::non_const_value_type x) {
  Kokkos::deep_copy(Kokkos::subview(v, k), x);
}

inline Dims tiny_dims() {
  Dims d;
  d.B = 2, d.T = 6, d.D = 8, d.H = 2, d.F = 12, d.V = 7;
  return d;
}

template <class Exec>
View2<int32_t, Exec> random_tokens(const Dims& d, uint64_t seed) {
  View2<int32_t, Exec> t("tokens", d.B, d.T + 1);
  auto h = Kokkos::create_mirror_view(t);
  Rng rng(seed);
  for (int b = 0; b < d.B; ++b)
    for (int s = 0; s <= d.T; ++s) h(b, s) = int32_t(rng.below(d.V));
  Kokkos::deep_copy(t, h);
  return t;
}

// Parameters at a "generic" point: spec init plus random queries, perturbed gains and detail biases, so
// every path of the backward (key gains, detail biases, key normalisation) carries gradient.
template <class M>
void generic_params(M& m, uint64_t seed) {
  m.init_params(seed, 0.5);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.params());
  Rng rng(seed + 1);
  for (auto& e : m.table().entries)
    if (e.init == ParamEntry::ones || e.init == ParamEntry::detail_bias)
      for (int64_t k = 0; k < e.size(); ++k) h(e.offset + k) += typename M::real(0.3 * rng.normal());
  Kokkos::deep_copy(m.params(), h);
}

}  // namespace wavres::test
