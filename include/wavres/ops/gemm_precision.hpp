// Which arithmetic the gemms use. FP32 everywhere by default. On CUDA, `--gemm-precision tf32` lets cuBLAS
// use TF32 tensor cores for the FP32 gemms: inputs rounded to a 10-bit mantissa, accumulation in FP32,
// several times the FP32 rate on Ampere and Hopper (what PyTorch does with allow_tf32). FP32 stays the
// default so that the tolerance-based tests keep their meaning; a TF32 run is comparable to a FP32 one to
// ~1e-3, not 1e-6.
#pragma once
#include <stdexcept>
#include <string>
#include "wavres/core/exec_traits.hpp"
#if defined(KOKKOS_ENABLE_CUDA) && defined(KOKKOSKERNELS_ENABLE_TPL_CUBLAS)
#include <KokkosBlas_tpl_spec.hpp>
#endif

namespace wavres {

enum class GemmPrecision { fp32, tf32 };

inline GemmPrecision parse_gemm_precision(const std::string& v) {
  if (v == "fp32") return GemmPrecision::fp32;
  if (v == "tf32") return GemmPrecision::tf32;
  throw std::invalid_argument("--gemm-precision expects fp32 or tf32, got '" + v + "'");
}

// Sets the math mode of the cuBLAS handle that Kokkos Kernels' gemm uses (its process-wide singleton), so it
// holds for every later gemm on Exec. Call after Kokkos is initialised.
template <class Exec>
void set_gemm_precision(GemmPrecision p) {
#if defined(KOKKOS_ENABLE_CUDA) && defined(KOKKOSKERNELS_ENABLE_TPL_CUBLAS)
  if constexpr (is_gpu_space_v<Exec>) {
    const auto mode = p == GemmPrecision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    if (cublasSetMathMode(KokkosBlas::Impl::CudaBlasSingleton::singleton().handle, mode) !=
        CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error("cublasSetMathMode failed (--gemm-precision)");
    return;
  }
#endif
  if (p == GemmPrecision::tf32)
    throw std::invalid_argument("--gemm-precision tf32 needs a CUDA build (this one runs on " +
                                std::string(Exec::name()) + ")");
}

}  // namespace wavres
