// Basic vocabulary types: views in an execution space's memory, run-time dimensions.
#pragma once
#include <Kokkos_Core.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace wavres {

// Views live in the execution space's memory; the Device type makes Kokkos Kernels dispatch on Exec.
template <class Exec>
using DeviceOf = Kokkos::Device<Exec, typename Exec::memory_space>;
template <class R, class Exec>
using View1 = Kokkos::View<R*, Kokkos::LayoutRight, DeviceOf<Exec>>;
template <class R, class Exec>
using View2 = Kokkos::View<R**, Kokkos::LayoutRight, DeviceOf<Exec>>;
template <class R, class Exec>
using View3 = Kokkos::View<R***, Kokkos::LayoutRight, DeviceOf<Exec>>;
// Unmanaged 2-D window onto a flat buffer (parameters and activations are carved out of big slabs).
template <class R, class Exec>
using Mat = Kokkos::View<R**, Kokkos::LayoutRight, DeviceOf<Exec>, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class R, class Exec>
using Vec = Kokkos::View<R*, Kokkos::LayoutRight, DeviceOf<Exec>, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

template <class Exec>
using Range = Kokkos::RangePolicy<Exec, Kokkos::IndexType<int64_t>>;

template <class R, class Exec>
Mat<R, Exec> mat(R* p, int64_t rows, int64_t cols) {
  return Mat<R, Exec>(p, rows, cols);
}

// Run-time model dimensions. B*T = number of token rows in every activation matrix.
struct Dims {
  int B = 16, T = 256, D = 256, H = 4, F = 704, V = 27;
  int head_dim() const { return D / H; }
  int64_t rows() const { return int64_t(B) * T; }
  void validate() const {
    auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
    if (B <= 0) bad("--batch must be > 0, got " + std::to_string(B));
    if (T <= 0) bad("--seq-len must be > 0, got " + std::to_string(T));
    if (D <= 0) bad("--d-model must be > 0, got " + std::to_string(D));
    if (H <= 0) bad("--heads must be > 0, got " + std::to_string(H));
    if (F <= 0) bad("--d-ff must be > 0, got " + std::to_string(F));
    if (D % H != 0) bad("--heads " + std::to_string(H) + " does not divide --d-model " + std::to_string(D));
    if (D / H > 256) bad("head dimension " + std::to_string(D / H) + " exceeds 256 (use more --heads)");
    if (V <= 0 || V > 256) bad("vocabulary size must be in 1..256, got " + std::to_string(V));
    // gemm dimensions are 32-bit ints in Kokkos Kernels' BLAS interface
    if (rows() > 2147483647LL || int64_t(3) * D > 2147483647LL || int64_t(2) * F > 2147483647LL)
      bad("--batch x --seq-len = " + std::to_string(rows()) + " rows exceeds the 2^31-1 a gemm can address");
  }
};

// Which of the widths the command line set explicitly: a checkpoint supplies the others, and only these are
// checked against it.
struct DimsGiven {
  bool D = false, H = false, F = false, T = false;
};

// Host-side name of the Kokkos execution space, as recorded in checkpoints.
template <class Exec>
std::string backend_name() {
  return Exec::name();
}

}  // namespace wavres
