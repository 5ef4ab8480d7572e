// The gradient allreduce of a data-parallel step: every rank's flat gradient buffer becomes the sum over the
// ranks, in place, in the execution space's memory.
//
//   host spaces        MPI_Allreduce on the buffer itself (the kernels that wrote it have returned: OpenMP
//   and
//                      Serial launches are synchronous, the fence is free)
//   CUDA with NCCL     ncclAllReduce on Kokkos' stream: ordered after the backward's kernels and before
//   AdamW's
//                      without a fence or a host round trip; one NCCL communicator per run, its id broadcast
//                      over MPI (WAVRES_HAVE_NCCL, found with the CUDA toolkit)
//   CUDA without NCCL  through a host mirror (allocated once), since an MPI library need not be CUDA-aware
//
// One blocking allreduce after the backward pass. Overlapping it with the backward (buckets reduced while
// earlier layers' gradients are still being computed) was not built: on this 2-core machine there is nothing
// to overlap with, and no GPU has run it; perf/allreduce_model.py shows when it would matter (README,
// "Several processes": at TF32 rates over 100 Gb/s the allreduce is as long as the compute).
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include "wavres/core/types.hpp"
#include "wavres/dist/comm.hpp"
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
#include <nccl.h>
#endif

namespace wavres {

template <class Exec>
class GradientAllreduce {
  static constexpr bool host_memory =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible;

 public:
  // n: the length of the buffers that will be reduced (the parameter count).
  GradientAllreduce(const Comm& comm, int64_t n) : comm_(comm), n_(n) {
    if (!comm_.distributed()) return;
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
    if constexpr (!host_memory) {
      ncclUniqueId id;
      if (comm_.leader()) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      std::string bytes(reinterpret_cast<const char*>(&id), sizeof id);
      comm_.broadcast(bytes);
      std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(&id));
      nccl_check(ncclCommInitRank(&nccl_, comm_.size(), id, comm_.rank()), "ncclCommInitRank");
      return;
    }
#endif
    if constexpr (!host_memory)
      staging_ = Kokkos::View<float*, Kokkos::HostSpace>("allreduce_staging", size_t(n));
  }
  ~GradientAllreduce() {
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
    if (nccl_) ncclCommDestroy(nccl_);
#endif
  }
  GradientAllreduce(const GradientAllreduce&) = delete;
  GradientAllreduce& operator=(const GradientAllreduce&) = delete;

  // Which transport sum() uses, for the start-up line.
  std::string transport() const {
    if (!comm_.distributed()) return "none";
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
    if (nccl_) return "NCCL";
#endif
    return host_memory ? "MPI" : "MPI via host memory";
  }

  // g ← Σ_ranks g, in place.
  void sum(View1<float, Exec> g) {
    if (!comm_.distributed()) return;
    if (int64_t(g.extent(0)) != n_)
      throw std::logic_error("GradientAllreduce: buffer of " + std::to_string(g.extent(0)) +
                             " elements, made for " + std::to_string(n_));
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
    if (nccl_) {
      nccl_check(
          ncclAllReduce(g.data(), g.data(), size_t(n_), ncclFloat, ncclSum, nccl_, Exec().cuda_stream()),
          "ncclAllReduce");
      return;
    }
#endif
    if constexpr (host_memory) {
      Exec().fence();
      host_sum(g.data());
    } else {
      Kokkos::deep_copy(staging_, g);
      host_sum(staging_.data());
      Kokkos::deep_copy(g, staging_);
    }
  }

 private:
  void host_sum(float* p) {
    // MPI counts are int: reduce in pieces of at most 2^30 floats
    for (int64_t off = 0; off < n_; off += (int64_t(1) << 30)) {
      const int64_t count = std::min<int64_t>(n_ - off, int64_t(1) << 30);
      comm_.sum(p + off, int(count));
    }
  }
#if defined(KOKKOS_ENABLE_CUDA) && defined(WAVRES_HAVE_NCCL)
  static void nccl_check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + ncclGetErrorString(r));
  }
  ncclComm_t nccl_ = nullptr;
#endif
  const Comm& comm_;
  int64_t n_;
  Kokkos::View<float*, Kokkos::HostSpace> staging_;
};

}  // namespace wavres
