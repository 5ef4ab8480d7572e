// Linear layer y = x Wᵀ, all matrices row-major with W in [out, in] convention, through KokkosBlas::gemm
// (OpenBLAS on the host, cuBLAS on CUDA).
#pragma once
#include <KokkosBlas3_gemm.hpp>
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres {

// Forward:  y[N,out] = x[N,in] · W[out,in]ᵀ   (+ beta·y, so that residual adds can fuse into the gemm)
template <class R, class Exec>
void linear_forward(Mat<R, Exec> y, Mat<const R, Exec> x, Mat<const R, Exec> W, R beta = R(0)) {
  KokkosBlas::gemm("N", "T", R(1), x, W, beta, y);
}

// Backward: dx[N,in] (= or +=) dy · W,   dW[out,in] += dyᵀ · x
template <class R, class Exec>
void linear_backward(Mat<R, Exec> dx, Mat<R, Exec> dW, Mat<const R, Exec> dy, Mat<const R, Exec> x,
                     Mat<const R, Exec> W, R dx_beta = R(0)) {
  if (dx.data()) KokkosBlas::gemm("N", "N", R(1), dy, W, dx_beta, dx);
  KokkosBlas::gemm("T", "N", R(1), dy, x, R(1), dW);
}

}  // namespace wavres
