// In-process per-kernel timer built on Kokkos' tool callbacks: every parallel_for/reduce and every profiling
// region (Kokkos Kernels wraps each gemm in one) is timed and summed by name. Host backends dispatch
// synchronously, so wall time between begin and end is the kernel's time; on CUDA the callbacks fence.
#pragma once
#include <Kokkos_Core.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace wavres::perf {

struct KernelProfiler {
  struct Entry {
    double seconds = 0;
    long calls = 0;
  };
  static std::map<std::string, Entry>& table() {
    static std::map<std::string, Entry> t;
    return t;
  }
  static std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>>& stack() {
    static std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> s;
    return s;
  }
  static bool& enabled() {
    static bool on = false;
    return on;
  }
  static void begin(const char* name) {
    if (!enabled()) return;
#ifdef KOKKOS_ENABLE_CUDA
    Kokkos::fence();
#endif
    stack().emplace_back(name, std::chrono::steady_clock::now());
  }
  static void end() {
    if (!enabled() || stack().empty()) return;
#ifdef KOKKOS_ENABLE_CUDA
    Kokkos::fence();
#endif
    auto [name, t0] = stack().back();
    stack().pop_back();
    auto& e = table()[name];
    e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    e.calls += 1;
  }
  static void install() {
    namespace KT = Kokkos::Tools::Experimental;
    KT::set_begin_parallel_for_callback([](const char* n, uint32_t, uint64_t*) { begin(n); });
    KT::set_end_parallel_for_callback([](uint64_t) { end(); });
    KT::set_begin_parallel_reduce_callback([](const char* n, uint32_t, uint64_t*) { begin(n); });
    KT::set_end_parallel_reduce_callback([](uint64_t) { end(); });
    KT::set_push_region_callback([](const char* n) { begin(n); });
    KT::set_pop_region_callback([]() { end(); });
    KT::set_begin_deep_copy_callback([](Kokkos::Tools::SpaceHandle, const char*, const void*,
                                        Kokkos::Tools::SpaceHandle, const char*, const void*,
                                        uint64_t) { begin("deep_copy"); });
    KT::set_end_deep_copy_callback([]() { end(); });
  }
  static void reset() {
    table().clear();
  }
};

// Coarse op categories for the breakdown (issue 4): kernel name prefix -> category.
inline std::string category_of(const std::string& k) {
  if (k.rfind("KokkosBlas::gemm", 0) == 0) return "gemms";
  if (k.rfind("embedding", 0) == 0) return "embedding";
  if (k.rfind("rmsnorm", 0) == 0) return "norms";
  if (k.rfind("attention", 0) == 0) return "attention";
  if (k.rfind("swiglu", 0) == 0) return "mlp (swiglu)";
  if (k.rfind("mixer", 0) == 0 || k.rfind("source_rinv", 0) == 0 || k.rfind("block_", 0) == 0 ||
      k.rfind("wav_details", 0) == 0 || k.rfind("alpha", 0) == 0)
    return "mixer / routing";
  if (k.rfind("cross_entropy", 0) == 0) return "loss";
  if (k.rfind("adamw", 0) == 0 || k.rfind("grad_norm", 0) == 0) return "optimizer";
  if (k.rfind("deep_copy", 0) == 0 || k.rfind("Kokkos::View::initialization", 0) == 0 ||
      k.rfind("Kokkos::ViewFill", 0) == 0)
    return "copies / fills";
  return "other (" + k + ")";
}

}  // namespace wavres::perf
