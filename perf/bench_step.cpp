// Times a full training step (forward, backward, AdamW) of one grid configuration and reports tokens/s,
// achieved GFLOP/s against the machine's measured FP32 peak, memory, and a per-op breakdown.
//
// FLOPs are counted analytically per step (forward ×3 for forward+backward, the usual convention):
//   per token, per layer: 2·(4D² + 3DF) for the seven projections + 2·D·(T+1) for causal QKᵀ and PV
//   (on average (T+1)/2 keys per query, 2 matmuls, 2 FLOPs per multiply-add); plus 2·D·V for the head.
// Mixer and elementwise work is not counted: it is the overhead that routing adds.
// Options: --timed N --warmup N --no-profile --json --top N (kernels listed), then any experiment option.
// --json prints one line with the figures and the top kernels of the profiled step (the GPU kit reads it).
#include <sys/resource.h>

#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <numeric>
#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "kernel_profiler.hpp"
#include "wavres/cli/blas_env.hpp"
#include "wavres/cli/options.hpp"
#include "wavres/cli/placement.hpp"
#include "wavres/model/model.hpp"
#include "wavres/ops/gemm_precision.hpp"
#include "wavres/optim/adamw.hpp"

using namespace wavres;
using Spec = ModelSpec<Variant::WAVRES_VARIANT, WAVRES_LAYERS, WAVRES_BLOCK>;
using Exec = Kokkos::DefaultExecutionSpace;

// FP32 peak of the host: every thread runs 12 independent AVX-512 FMA chains (enough to cover FMA latency on
// both ports, few enough to stay in registers). The chains start from different values: twelve identical
// chains are one chain to the compiler (it kept a single vfmadd and the count was 12× too high).
static double measure_fp32_peak_gflops() {
#if defined(__AVX512F__)
  const long iters = 100'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
      __m512 a0 = _mm512_set1_ps(0.10f), a1 = _mm512_set1_ps(0.11f), a2 = _mm512_set1_ps(0.12f),
             a3 = _mm512_set1_ps(0.13f), a4 = _mm512_set1_ps(0.14f), a5 = _mm512_set1_ps(0.15f),
             a6 = _mm512_set1_ps(0.16f), a7 = _mm512_set1_ps(0.17f), a8 = _mm512_set1_ps(0.18f),
             a9 = _mm512_set1_ps(0.19f), a10 = _mm512_set1_ps(0.20f), a11 = _mm512_set1_ps(0.21f);
      const __m512 m = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(0.0001f);
      for (long i = 0; i < iters / 12; ++i) {
        a0 = _mm512_fmadd_ps(a0, m, b), a1 = _mm512_fmadd_ps(a1, m, b), a2 = _mm512_fmadd_ps(a2, m, b);
        a3 = _mm512_fmadd_ps(a3, m, b), a4 = _mm512_fmadd_ps(a4, m, b), a5 = _mm512_fmadd_ps(a5, m, b);
        a6 = _mm512_fmadd_ps(a6, m, b), a7 = _mm512_fmadd_ps(a7, m, b), a8 = _mm512_fmadd_ps(a8, m, b);
        a9 = _mm512_fmadd_ps(a9, m, b), a10 = _mm512_fmadd_ps(a10, m, b), a11 = _mm512_fmadd_ps(a11, m, b);
      }
      __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                               _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
      s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
      sink += _mm512_reduce_add_ps(s);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = double(omp_get_max_threads()) * double(iters / 12 * 12) * 16 * 2;
    best = std::max(best, flops / secs / 1e9);
    if (sink == 12345.f) std::puts("");
  }
  return best;
#else
  return 0;  // unknown: reported as n/a
#endif
}

static double step_flops(const Dims& d) {
  const double D = d.D, F = d.F, T = d.T, V = d.V, tokens = double(d.B) * d.T;
  const double per_token = Spec::n_layer * (2 * (4 * D * D + 3 * D * F) + 2 * D * (T + 1)) + 2 * D * V;
  return 3 * tokens * per_token;
}

int main(int argc, char** argv) {
  ensure_blas_coretype(argc, argv);
  std::vector<char*> args{argv[0], const_cast<char*>("train")};
  int timed = 5, warmup = 2;
  bool profile = true, json = false;
  int top = 8;  // kernels listed in the breakdown
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--timed" && i + 1 < argc)
      timed = std::stoi(argv[++i]);
    else if (a == "--warmup" && i + 1 < argc)
      warmup = std::stoi(argv[++i]);
    else if (a == "--no-profile")
      profile = false;
    else if (a == "--top" && i + 1 < argc)
      top = std::atoi(argv[++i]);
    else if (a == "--json")
      json = true;
    else
      args.push_back(argv[i]);
  }
  Options o;
  try {
    o = parse_options(int(args.size()), args.data(), "", "");
  } catch (const UsageError& e) {
    std::cerr << "bench: " << e.what() << "\n";
    return 2;
  }
  Kokkos::ScopeGuard guard(argc, argv);
  try {
    set_gemm_precision<Exec>(o.tf32 ? GemmPrecision::tf32 : GemmPrecision::fp32);
  } catch (const std::exception& e) {
    std::cerr << "bench: " << e.what() << "\n";
    return 2;
  }
  perf::KernelProfiler::install();
  // Device memory: free memory before the model exists and after the timed steps (a step allocates nothing,
  // so what is in use then is the peak; cuBLAS' workspace is counted, the CUDA context is not).
  const auto device_free_bytes = []() -> double {
#if defined(KOKKOS_ENABLE_CUDA)
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) return double(free_b);
#endif
    return -1;
  };
  const double device_free0 = device_free_bytes();
  // Printed with every figure: pinned and unpinned threads differ by up to 1.6x per step (README,
  // Performance).
  const ThreadPlacement placement = thread_placement();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  const char* spincount = std::getenv("GOMP_SPINCOUNT");
  Dims d = o.dims;
  d.V = 27;
  Model<Spec, float, Exec> model(d);
  model.init_params(o.seed, 0.0);
  View1<float, Exec> m("m", model.table().total), v("v", model.table().total);
  View2<int32_t, Exec> tokens("tokens", d.B, d.T + 1);
  {
    auto h = Kokkos::create_mirror_view(tokens);
    Rng rng(o.seed);
    for (int b = 0; b < d.B; ++b)
      for (int t = 0; t <= d.T; ++t) h(b, t) = int32_t(rng.below(d.V));
    Kokkos::deep_copy(tokens, h);
  }
  AdamWConfig cfg;
  int64_t step = 0;
  auto train_step = [&] {
    model.loss_and_grad(tokens);
    const double gn = global_grad_norm<float, Exec>(model.grads());
    adamw_step<float, Exec>(model.params(), model.grads(), m, v, model.table().decay_end, 1e-4, ++step, gn,
                            cfg);
    Kokkos::fence();
  };
  for (int i = 0; i < warmup; ++i) train_step();
  std::vector<double> times;
  for (int i = 0; i < timed; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    train_step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double tokens_per_s = double(d.B) * d.T / med;
  const double gflops = step_flops(d) / med / 1e9;
  const double peak = measure_fp32_peak_gflops();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = double(ru.ru_maxrss) / 1024.0;
  const double alloc_mib = double(model.bytes_allocated() + 3 * m.span() * sizeof(float)) / (1 << 20);

  const double device_mib = device_free0 >= 0 ? (device_free0 - device_free_bytes()) / (1 << 20) : -1;

  // One more step with every kernel timed (on CUDA the profiler fences around each kernel, so this step is
  // slower than the timed ones; its breakdown, not its total, is what it is for).
  std::vector<std::pair<double, std::string>> kernels, cats;
  double prof_total = 0, covered = 0;
  if (profile) {
    perf::KernelProfiler::reset();
    perf::KernelProfiler::enabled() = true;
    const auto t0 = std::chrono::steady_clock::now();
    train_step();
    prof_total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    perf::KernelProfiler::enabled() = false;
    std::map<std::string, double> cat;
    for (auto& [k, e] : perf::KernelProfiler::table()) {
      cat[perf::category_of(k)] += e.seconds;
      kernels.push_back({e.seconds, k});
    }
    for (auto& [c, sec] : cat) cats.push_back({sec, c}), covered += sec;
    std::sort(cats.rbegin(), cats.rend());
    std::sort(kernels.rbegin(), kernels.rend());
    kernels.resize(std::min<size_t>(size_t(std::max(top, 0)), kernels.size()));
  }
  auto& table = perf::KernelProfiler::table();

  if (json) {
    std::printf(
        "{\"config\":\"%s\",\"variant\":\"%s\",\"backend\":\"%s\",\"n_layer\":%d,\"d_model\":%d,\"heads\":%d,"
        "\"d_ff\":%d,\"seq_len\":%d,\"batch\":%d,\"threads\":%d,\"median_step_s\":%.5f,\"tokens_per_s\":%.1f,"
        "\"gflops\":%.1f,\"peak_gflops\":%.1f,\"peak_rss_mib\":%.1f,\"allocated_mib\":%.1f,"
        "\"device_mib\":%.1f,\"gemm\":\"%s\",\"omp_proc_bind\":\"%s\",\"omp_places\":\"%s\","
        "\"omp_wait_policy\":\"%s\",\"gomp_spincount\":\"%s\",\"distinct_cpus\":%d,\"placement\":\"%s\","
        "\"cpu\":\"%s\","
        "\"profiled_step_s\":%.5f,\"top_kernels\":[",
        Spec::name().c_str(), variant_name(Spec::variant), Exec::name(), Spec::n_layer, d.D, d.H, d.F, d.T,
        d.B, int(Exec().concurrency()), med, tokens_per_s, gflops, peak, rss_mib, alloc_mib, device_mib,
        o.tf32 ? "tf32" : "fp32", placement.proc_bind.c_str(), placement.places.c_str(),
        wait_policy ? wait_policy : "unset", spincount ? spincount : "unset", placement.distinct_cpus(),
        placement.describe().c_str(), placement.cpu_model.c_str(), prof_total);
    for (size_t i = 0; i < kernels.size(); ++i)
      std::printf("%s{\"name\":\"%s\",\"ms\":%.3f,\"calls\":%ld}", i ? "," : "", kernels[i].second.c_str(),
                  1e3 * kernels[i].first, table.at(kernels[i].second).calls);
    std::printf("]}\n");
    return 0;
  }
  std::printf("%s  D=%d H=%d F=%d T=%d B=%d  %s x%d\n", Spec::name().c_str(), d.D, d.H, d.F, d.T, d.B,
              Exec::name(), int(Exec().concurrency()));
  std::printf("  placement: %s, OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s; CPU: %s\n",
              placement.describe().c_str(), wait_policy ? wait_policy : "unset",
              spincount ? spincount : "unset", placement.cpu_model.c_str());
  std::printf("  step (median of %d): %.3f s   %.0f tokens/s   %.1f GFLOP/s", timed, med, tokens_per_s,
              gflops);
  if (peak > 0) std::printf(" = %.1f %% of the measured FP32 peak %.0f GFLOP/s", 100 * gflops / peak, peak);
  std::printf("\n  memory: %.0f MiB allocated by the model + optimizer, peak RSS %.0f MiB", alloc_mib,
              rss_mib);
  if (device_mib >= 0) std::printf(", %.0f MiB of device memory in use", device_mib);
  std::printf("\n");
  if (profile) {
    std::printf("  per-op breakdown of one profiled step (%.3f s):\n", prof_total);
    for (auto& [sec, c] : cats)
      std::printf("    %-22s %8.1f ms  %5.1f %%\n", c.c_str(), 1e3 * sec, 100 * sec / prof_total);
    std::printf("    %-22s %8.1f ms  %5.1f %%\n", "(host glue)", 1e3 * (prof_total - covered),
                100 * (prof_total - covered) / prof_total);
    std::printf("  top kernels:\n");
    for (auto& [sec, k] : kernels)
      std::printf("    %-40s %8.1f ms  %4ld calls\n", k.c_str(), 1e3 * sec, table.at(k).calls);
  }
  return 0;
}
