// bench_attention: the attention core's two bodies, llm.c-style (dev/cuda/attention_forward.cu).
//
// 1. Runs the host body on the host (Kokkos::DefaultHostExecutionSpace) as the reference, the device body on
//    the default execution space, and checks out, lse and dqkv against it ("All results match.").
// 2. Times forward and backward of both bodies on the default execution space (fenced, median of --reps).
// 3. Reports ms and GFLOP/s. FLOPs are the causal matmuls an attention needs, per (b, h), over the
//    T(T+1)/2 visible (t, s) pairs, 2 FLOPs per multiply-add:
//      forward  2 matmuls (QKᵀ, PV)                 flops = 2 · 2 · hd · T(T+1)/2 · B·H = 2·B·D·T(T+1)
//      backward 5 matmuls (QKᵀ, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q, dS·K)               flops = 5·B·D·T(T+1)
//    (the device backward recomputes QKᵀ and dO·Vᵀ in both its kernels: it executes 7, counted as 5).
// Options: --batch B --seq-len T --d-model D --heads H --reps N --double (default: the benchmark shape,
// B 16, T 256, D 256, 4 heads, float).
#include "wavres/ops/attention.hpp"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>
#include "wavres/data/corpus.hpp"

using namespace wavres;
using Exec = Kokkos::DefaultExecutionSpace;
using HostExec = Kokkos::DefaultHostExecutionSpace;

namespace {

struct Shape {
  int B = 16, T = 256, D = 256, H = 4, reps = 10;
};

template <class F>
double median_ms(int reps, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    Kokkos::fence();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    Kokkos::fence();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// max |got − want| over max |want|, on host copies
template <class VG, class VW>
double rel_err(const VG& got, const VW& want) {
  auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), got);
  auto w = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), want);
  double mx = 0, err = 0;
  for (size_t k = 0; k < w.span(); ++k) {
    mx = std::max(mx, std::abs(double(w.data()[k])));
    err = std::max(err, std::abs(double(g.data()[k]) - double(w.data()[k])));
  }
  return mx > 0 ? err / mx : err;
}

template <class R>
int run(const Shape& s) {
  const int B = s.B, T = s.T, D = s.D, H = s.H, N = B * T, hd = D / H;
  using E = Exec;
  View2<R, E> qkv("qkv", N, 3 * D), dout("dout", N, D), out_d("out_d", N, D), out_h("out_h", N, D);
  View2<R, E> dqkv_d("dqkv_d", N, 3 * D), dqkv_h("dqkv_h", N, 3 * D);
  View1<R, E> lse_d("lse_d", int64_t(B) * H * T), lse_h("lse_h", int64_t(B) * H * T);
  {
    auto q = Kokkos::create_mirror_view(qkv);
    auto g = Kokkos::create_mirror_view(dout);
    Rng rng(1);
    for (size_t k = 0; k < q.span(); ++k) q.data()[k] = R(rng.normal());
    for (size_t k = 0; k < g.span(); ++k) g.data()[k] = R(rng.normal());
    Kokkos::deep_copy(qkv, q), Kokkos::deep_copy(dout, g);
  }
  View1<R, E> scr_d("scr_d", device::attention_scratch_elems(B, T, H));
  View1<R, E> scr_h("scr_h", size_t(B) * H * host::attention_scratch_per_item(T, hd));
  auto M = [](const View2<R, E>& v) { return Mat<R, E>(v.data(), v.extent(0), v.extent(1)); };
  auto C = [](const View2<R, E>& v) { return Mat<const R, E>(v.data(), v.extent(0), v.extent(1)); };
  auto Vm = [](const View1<R, E>& v) { return Vec<R, E>(v.data(), v.extent(0)); };
  auto Vc = [](const View1<R, E>& v) { return Vec<const R, E>(v.data(), v.extent(0)); };
  const AttentionForwardArgs<R, E> fd{M(out_d), Vm(lse_d), C(qkv), scr_d, B, T, H};
  const AttentionForwardArgs<R, E> fh{M(out_h), Vm(lse_h), C(qkv), scr_h, B, T, H};
  const AttentionBackwardArgs<R, E> bd{M(dqkv_d), C(dout), C(out_d), Vc(lse_d), C(qkv), scr_d, B, T, H};
  const AttentionBackwardArgs<R, E> bh{M(dqkv_h), C(dout), C(out_h), Vc(lse_h), C(qkv), scr_h, B, T, H};

  // 1. reference: the host body on the host
  {
    using HE = HostExec;
    auto q = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), qkv);
    auto g = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dout);
    View2<R, HE> o("o", N, D), dq("dq", N, 3 * D);
    View1<R, HE> l("l", int64_t(B) * H * T),
        sc("sc", size_t(B) * H * host::attention_scratch_per_item(T, hd));
    const Mat<const R, HE> qc(q.data(), N, 3 * D), gc(g.data(), N, D), oc(o.data(), N, D);
    host::attention_forward(AttentionForwardArgs<R, HE>{Mat<R, HE>(o.data(), N, D),
                                                        Vec<R, HE>(l.data(), l.extent(0)), qc, sc, B, T, H});
    host::attention_backward(AttentionBackwardArgs<R, HE>{
        Mat<R, HE>(dq.data(), N, 3 * D), gc, oc, Vec<const R, HE>(l.data(), l.extent(0)), qc, sc, B, T, H});
    Kokkos::fence();
    device::attention_forward(fd);
    device::attention_backward(bd);
    Kokkos::fence();
    auto od = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out_d);
    auto ld = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse_d);
    auto dd = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dqkv_d);
    const double tol = sizeof(R) == 4 ? 5e-6 : 1e-14;  // tests/test_ops_gradcheck.cpp, attention_device_body
    const double e[3] = {rel_err(od, o), rel_err(ld, l), rel_err(dd, dq)};
    const char* names[3] = {"out", "lse", "dqkv"};
    for (int k = 0; k < 3; ++k) {
      std::printf("device body vs host body: %-4s max |diff| / max |ref| = %.2e\n", names[k], e[k]);
      if (!(e[k] <= tol)) {
        std::printf("MISMATCH: %s differs by more than %.0e\n", names[k], tol);
        return 1;
      }
    }
    std::printf("All results match. Starting benchmarks.\n");
  }

  // 2., 3. timing on the default execution space
  const double tt = double(T) * (T + 1), ffwd = 2.0 * B * D * tt, fbwd = 5.0 * B * D * tt;
  const auto tf = device::attention_forward_tiles<R, E>(hd), tk = device::attention_dkdv_tiles<R, E>(hd),
             tq = device::attention_dq_tiles<R, E>(hd);
  std::printf(
      "%s on %s, B %d T %d D %d H %d (hd %d); device blocks: forward %dx%d (scratch level %d), dK/dV "
      "%dx%d, dQ %dx%d\n",
      sizeof(R) == 4 ? "float" : "double", E::name(), B, T, D, H, hd, tf.qb, tf.kb, tf.level, tk.qb, tk.kb,
      tq.qb, tq.kb);
  const double dfw = median_ms(s.reps, [&] { device::attention_forward(fd); });
  const double dbw = median_ms(s.reps, [&] { device::attention_backward(bd); });
  const double hfw = median_ms(s.reps, [&] { host::attention_forward(fh); });
  const double hbw = median_ms(s.reps, [&] { host::attention_backward(bh); });
  std::printf("%-12s %10s %10s %12s %12s\n", "body", "fwd ms", "bwd ms", "fwd GFLOP/s", "bwd GFLOP/s");
  std::printf("%-12s %10.3f %10.3f %12.1f %12.1f\n", "device", dfw, dbw, ffwd / dfw / 1e6, fbwd / dbw / 1e6);
  std::printf("%-12s %10.3f %10.3f %12.1f %12.1f\n", "host", hfw, hbw, ffwd / hfw / 1e6, fbwd / hbw / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Shape s;
  bool dbl = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](int& v) {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      v = std::stoi(argv[++i]);
    };
    try {
      if (a == "--batch")
        next(s.B);
      else if (a == "--seq-len")
        next(s.T);
      else if (a == "--d-model")
        next(s.D);
      else if (a == "--heads")
        next(s.H);
      else if (a == "--reps")
        next(s.reps);
      else if (a == "--double")
        dbl = true;
      else if (a.rfind("--kokkos", 0) != 0)
        throw std::invalid_argument("unknown option " + a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_attention: %s\n", e.what());
      return 2;
    }
  }
  Dims d;
  d.B = s.B, d.T = s.T, d.D = s.D, d.H = s.H;
  try {
    d.validate();
    if (s.reps <= 0) throw std::invalid_argument("--reps must be > 0, got " + std::to_string(s.reps));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 2;
  }
  Kokkos::ScopeGuard guard(argc, argv);
  return dbl ? run<double>(s) : run<float>(s);
}
