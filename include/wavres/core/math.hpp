// Device-callable math: Kokkos 3.4 keeps sqrt/exp/log in Kokkos::Experimental, 3.7+ in Kokkos::.
#pragma once
#include <Kokkos_Core.hpp>

namespace wavres::kmath {
#if KOKKOS_VERSION >= 30700
using Kokkos::exp;
using Kokkos::log;
using Kokkos::sqrt;
#else
using Kokkos::Experimental::exp;
using Kokkos::Experimental::log;
using Kokkos::Experimental::sqrt;
#endif
}  // namespace wavres::kmath
