// Which body an op runs on an execution space: the tuned host body (OpenMP, Serial) or the device-shaped one.
//
// A host body gives each thread a long contiguous stretch of work (a token row, a (batch, head) pair, a chunk
// of rows) and lets the compiler vectorise it: that is what two CPU cores want. A GPU wants tens of thousands
// of threads and coalesced loads: teams per row or per tile, vector lanes across the feature axis, reductions
// split into >= 1024 chunks. Each op's public header (ops/<op>.hpp) is the only place that picks between its
// host/ and device/ body, with `if constexpr (use_device_body_v<Exec>)`.
//
// WAVRES_DEVICE_KERNELS (CMake option of the same name) makes the host's parallel space (OpenMP) run the
// device bodies too: they are portable Kokkos, so the whole test suite checks them in every CI run, GPU or
// not. Kokkos::Serial keeps the host bodies even then: it is the reference that test_backends compares the
// default space against, so that build compares device bodies on OpenMP with host bodies on Serial, every
// variant.
#pragma once
#include <Kokkos_Core.hpp>
#include <type_traits>

namespace wavres {

template <class Exec>
constexpr bool is_gpu_space_v =
#if defined(KOKKOS_ENABLE_CUDA)
    std::is_same_v<Exec, Kokkos::Cuda> ||
#endif
    false;

#if defined(WAVRES_DEVICE_KERNELS) && WAVRES_DEVICE_KERNELS
constexpr bool kForceDeviceBodies = true;
#else
constexpr bool kForceDeviceBodies = false;
#endif

template <class Exec>
constexpr bool use_device_body_v = is_gpu_space_v<Exec> ||
                                   (kForceDeviceBodies && !std::is_same_v<Exec, Kokkos::Serial>);

// Column reductions (gain, query, embedding gradients) are split into this many row chunks: each chunk sums
// its rows into a partial, then the partials are added in chunk order — deterministic for a given backend,
// independent of the thread count. Two CPU threads want few long chunks; a GPU needs >= 1024 to fill its SMs.
constexpr int kRowChunks = 64;
constexpr int kDeviceRowChunks = 1024;
template <class Exec>
constexpr int row_chunks_v = use_device_body_v<Exec> ? kDeviceRowChunks : kRowChunks;
// The name of the body an Exec runs, for reports and checkpoints' /run group.
template <class Exec>
constexpr const char* body_name() {
  return use_device_body_v<Exec> ? "device" : "host";
}

}  // namespace wavres
