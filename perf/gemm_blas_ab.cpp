// A/B of two BLAS libraries on exactly the sgemm calls of one training step (issue 18: is BLIS faster than
// OpenBLAS on our shapes?). Plain C++17, no Kokkos: both libraries are loaded at run time with dlopen and
// their Fortran `sgemm_` is called directly, with the arguments Kokkos Kernels passes.
//
//   gemm_blas_ab LIB_A LIB_B [--names A,B] [--threads 2] [--rounds 15] [--warmup 2] [--sets 2] [--routed]
//                [--blis-arch skx] [--batch 16 --seq-len 256 --d-model 256 --d-ff 704 --vocab 27 --layers 12]
//   gemm_blas_ab --list [dims]       the step's call shapes
//   gemm_blas_ab --probe LIB         what one library reports about itself (threads, kernels picked), no gemm
//
// The calls of one step (include/wavres/ops/linear.hpp, include/wavres/model/model.hpp). Every linear layer
// W [out, in] (row-major, LayoutRight) on x [N, in], N = B·T rows, makes three KokkosBlas::gemm calls:
//   forward   y  = x Wᵀ       gemm("N","T", x, W)  -> y [N, out]   (beta 1 for Wo and W_down in PreNorm)
//   backward  dx = dy W       gemm("N","N", dy, W) -> dx [N, in]   (beta 0)
//             dW += dyᵀ x     gemm("T","N", dy, x) -> dW [out, in] (beta 1)
// Kokkos Kernels' BLAS TPL (KokkosBlas3_gemm_tpl_spec_decl.hpp, 3.4 and 4.x) runs an all-LayoutRight gemm
// C = op(A) op(B) as the column-major Cᵀ = op(B)ᵀ op(A)ᵀ: it swaps the operands and keeps the trans flags,
//   sgemm_(transB, transA, C.extent(1), C.extent(0), K, alpha, B, ldb, A, lda, beta, C, ldc)
// so the BLAS sees, with tight leading dimensions:
//   forward   sgemm_('T','N', m=out, n=N,   k=in )
//   dx        sgemm_('N','N', m=in,  n=N,   k=out)
//   dW        sgemm_('N','T', m=in,  n=out, k=N  )
// The layers are the fused Wqkv [3D, D], Wo [D, D], fused W_gate|W_up [2F, D] and W_down [D, F] of each of
// the `layers` layers, plus the LM head [V, D] once: 12·layers + 3 calls a step (147 at 12 layers, what
// bench_<v>_l12 --top lists as KokkosBlas::gemm[TPL_BLAS,float]). Attention, norms and the rest are not
// gemms.
//
// What it measures. Per distinct call shape: one step's worth of its calls (e.g. the 12 Wqkv forwards) back
// to back, for library A then B (B then A on odd rounds), for R rounds after the warm-up; the median per
// library. Then the whole step's 147 calls in step order (forward layer by layer, then backward in reverse),
// again interleaved and paired by round. Each call shape has `sets` buffer sets used in turn, so that
// consecutive calls do not find the previous call's output in cache (the step's layers have their own
// activations). What it does not measure: the kernels between the gemms of a real step (their cache and
// thread wake-up effects), which affect both libraries alike but not necessarily equally.
//
// Correctness: for every shape, both libraries against a double-precision reference on sampled entries, and
// against each other on the whole output; on one shape (the Wo weight gradient, k = N) against a full
// double-precision reference.
#include <dlfcn.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

// The Fortran interface, 32-bit integers (checked below), with the hidden lengths of the two character
// arguments that a gfortran-built BLAS (the reference libblas) expects; C implementations ignore them.
using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*, const int*,
                         size_t, size_t);

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "gemm_blas_ab: %s\n", msg.c_str());
  std::exit(2);
}

struct Library {
  std::string path, name;
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  template <class F>
  F sym(const char* s) const {
    return reinterpret_cast<F>(::dlsym(handle, s));
  }
  void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc) const {
    sgemm(&ta, &tb, &m, &n, &k, &alpha, A, &lda, B, &ldb, &beta, C, &ldc, 1, 1);
  }
};

// One distinct BLAS call shape and how many times a step makes it.
struct Shape {
  char ta, tb;
  int m, n, k;
  float beta;
  int count = 0;
  std::string what;
  int lda() const { return ta == 'N' ? m : k; }
  int ldb() const { return tb == 'N' ? k : n; }
  int ldc() const { return m; }
  size_t a_size() const { return size_t(m) * k; }
  size_t b_size() const { return size_t(k) * n; }
  size_t c_size() const { return size_t(m) * n; }
  double flops() const { return 2.0 * m * n * k; }
};

struct Dims {
  int B = 16, T = 256, D = 256, F = 704, V = 27, layers = 12;
  bool prenorm = true;  // PreNorm fuses the residual add into the Wo and W_down forwards (beta 1)
};

// The step's calls in order, as indices into `shapes` (distinct shapes in order of first appearance).
struct Step {
  std::vector<Shape> shapes;
  std::vector<int> calls;
};

Step make_step(const Dims& d) {
  Step s;
  std::map<std::tuple<char, char, int, int, int, float>, int> index;
  auto add = [&](char ta, char tb, int m, int n, int k, float beta, const std::string& what) {
    const auto key = std::make_tuple(ta, tb, m, n, k, beta);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, int(s.shapes.size())).first;
      s.shapes.push_back({ta, tb, m, n, k, beta, 0, what});
    } else if (s.shapes[it->second].what.find(what) == std::string::npos) {
      s.shapes[it->second].what += ", " + what;
    }
    s.shapes[it->second].count++;
    s.calls.push_back(it->second);
  };
  const int N = d.B * d.T;
  // linear layer W [out, in]: the three KokkosBlas::gemm calls as the BLAS sees them (see the top comment)
  auto fwd = [&](const char* w, int out, int in, float beta) {
    add('T', 'N', out, N, in, beta, std::string(w) + " fwd");
  };
  auto bwd = [&](const char* w, int out, int in) {
    add('N', 'N', in, N, out, 0.f, std::string(w) + " dx");
    add('N', 'T', in, out, N, 1.f, std::string(w) + " dW");
  };
  const float rb = d.prenorm ? 1.f : 0.f;
  const int D = d.D, F = d.F;
  for (int i = 0; i < d.layers; ++i) {  // sublayer 2i+1 attention, 2i+2 MLP
    fwd("Wqkv", 3 * D, D, 0.f);
    fwd("Wo", D, D, rb);
    fwd("Wgu", 2 * F, D, 0.f);
    fwd("Wdown", D, F, rb);
  }
  fwd("head", d.V, D, 0.f);
  bwd("head", d.V, D);
  for (int i = d.layers - 1; i >= 0; --i) {
    bwd("Wdown", D, F);
    bwd("Wgu", 2 * F, D);
    bwd("Wo", D, D);
    bwd("Wqkv", 3 * D, D);
  }
  return s;
}

// Fast deterministic fill, uniform in [-1, 1).
void fill(std::vector<float>& v, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e = float(int64_t(x >> 40) - (int64_t(1) << 23)) / float(1 << 23);
  }
}

struct Buffers {
  std::vector<float> A, B, C;
};

std::string read_first(const char* file, const char* key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) {
        auto v = line.substr(p + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
    }
  return "?";
}

const char* env_or(const char* name, const char* dflt = "(unset)") {
  const char* v = std::getenv(name);
  return v ? v : dflt;
}

std::string affinity_list() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return "?";
  std::string s;
  int n = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) s += (n++ ? "," : "") + std::to_string(c);
  return s + " (" + std::to_string(n) + " CPUs)";
}

// Shared objects mapped into this process whose name marks an OpenMP runtime.
std::set<std::string> openmp_runtimes() {
  std::set<std::string> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto p = line.find('/');
    if (p == std::string::npos) continue;
    const std::string path = line.substr(p);
    const std::string base = path.substr(path.rfind('/') + 1);
    for (const char* rt : {"libgomp", "libiomp", "libomp.", "libomp-", "libomp5", "libgomp-"})
      if (base.rfind(rt, 0) == 0) out.insert(path);
  }
  return out;
}

std::string real_path(const std::string& p) {
  char buf[4096];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

Library load(const std::string& path, const std::string& name) {
  Library L;
  L.path = path, L.name = name;
  // RTLD_LOCAL: neither library's symbols join the global scope, so each one's own calls (and our dlsym on
  // its handle) resolve inside it; both share the process's one libgomp.
  L.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!L.handle) die("dlopen " + path + ": " + ::dlerror());
  L.sgemm = L.sym<SgemmFn>("sgemm_");
  if (!L.sgemm) die(path + " has no sgemm_");
  return L;
}

// Sets the library's thread count where it has a setter, and prints what it reports about itself.
void describe(const Library& L, int threads) {
  std::printf("  %s: %s", L.name.c_str(), L.path.c_str());
  const std::string rp = real_path(L.path);
  if (rp != L.path) std::printf(" -> %s", rp.c_str());
  std::printf("\n");
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(L.sgemm), &info) && info.dli_fname)
    std::printf("    sgemm_ resolved in %s\n", real_path(info.dli_fname).c_str());
  bool known = false;
  // OpenBLAS
  if (auto set = L.sym<void (*)(int)>("openblas_set_num_threads")) set(threads), known = true;
  if (auto get = L.sym<int (*)()>("openblas_get_num_threads"))
    std::printf("    openblas_get_num_threads() = %d\n", get()), known = true;
  if (auto cfg = L.sym<char* (*)()>("openblas_get_config")) {
    const char* c = cfg();
    std::printf("    openblas_get_config() = %s\n", c);
    if (std::strstr(c, "USE64BITINT")) die(L.path + " uses 64-bit integers; this tool passes 32-bit ones");
  }
  if (auto core = L.sym<char* (*)()>("openblas_get_corename"))
    std::printf("    openblas_get_corename() = %s\n", core());
  if (auto par = L.sym<int (*)()>("openblas_get_parallel"))
    std::printf("    openblas_get_parallel() = %d (0 sequential, 1 pthreads, 2 OpenMP)\n", par());
  // BLIS (dim_t and arch_t: 64-bit integer and enum)
  if (auto set = L.sym<void (*)(int64_t)>("bli_thread_set_num_threads")) set(threads), known = true;
  if (auto ver = L.sym<const char* (*)()>("bli_info_get_version_str"))
    std::printf("    bli_info_get_version_str() = %s\n", ver());
  if (auto get = L.sym<int64_t (*)()>("bli_thread_get_num_threads"))
    std::printf("    bli_thread_get_num_threads() = %lld\n", (long long)get()), known = true;
  if (auto omp = L.sym<int64_t (*)()>("bli_info_get_enable_openmp"))
    std::printf("    bli_info_get_enable_openmp() = %lld\n", (long long)omp());
  if (auto bis = L.sym<int64_t (*)()>("bli_info_get_blas_int_type_size")) {
    const long long b = (long long)bis();
    std::printf("    bli_info_get_blas_int_type_size() = %lld\n", b);
    if (b != 32)
      die(L.path + " has " + std::to_string(b) + "-bit BLAS integers; this tool passes 32-bit ones");
  }
  auto arch_id = L.sym<int (*)()>("bli_arch_query_id");
  auto arch_str = L.sym<const char* (*)(int)>("bli_arch_string");
  if (arch_id && arch_str) {
    const int id = arch_id();
    std::printf(
        "    bli_arch_query_id() = %d: %s (the configuration in use: detected, or BLIS_ARCH_TYPE=%s)\n", id,
        arch_str(id), env_or("BLIS_ARCH_TYPE"));
  }
  if (!known)
    std::printf(
        "    (no thread-count query function found: it runs with what it read from the environment)\n");
}

// BLIS 0.9 picks its configuration once, at its first call, from BLIS_ARCH_TYPE (the number of an arch_t) or
// from cpuid. The numbers come from the library's own table, bli_arch_string(id), whose last entry is
// "generic". Call before anything initialises BLIS.
void force_blis_arch(std::initializer_list<const Library*> libs, const std::string& name) {
  for (const Library* L : libs) {
    auto arch_str = L->sym<const char* (*)(int)>("bli_arch_string");
    if (!arch_str) continue;
    std::string known;
    for (int id = 0; id < 64; ++id) {
      const char* s = arch_str(id);
      if (!s) break;
      if (name == s) {
        ::setenv("BLIS_ARCH_TYPE", std::to_string(id).c_str(), 1);
        std::printf("  --blis-arch %s: BLIS_ARCH_TYPE=%d\n", name.c_str(), id);
        return;
      }
      known += std::string(known.empty() ? "" : " ") + s;
      if (!std::strcmp(s, "generic")) break;
    }
    die("BLIS has no configuration '" + name + "' (its table: " + known + ")");
  }
  die("--blis-arch: neither library is BLIS (no bli_arch_string)");
}

void check_blis_arch(std::initializer_list<const Library*> libs, const std::string& name) {
  for (const Library* L : libs) {
    auto arch_id = L->sym<int (*)()>("bli_arch_query_id");
    auto arch_str = L->sym<const char* (*)(int)>("bli_arch_string");
    if (arch_id && arch_str && name != arch_str(arch_id()))
      die(L->path + " runs configuration " + arch_str(arch_id()) + ", not the --blis-arch " + name +
          " asked for (was it built without BLIS_ARCH_TYPE support, or with that configuration missing?)");
  }
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

// Entry (i, j) of op(A) op(B) in double, plus beta·C0(i, j).
double ref_entry(const Shape& s, const float* A, const float* B, const float* C0, int i, int j) {
  double acc = 0;
  const int lda = s.lda(), ldb = s.ldb();
  for (int p = 0; p < s.k; ++p) {
    const double a = s.ta == 'N' ? A[i + size_t(p) * lda] : A[p + size_t(i) * lda];
    const double b = s.tb == 'N' ? B[p + size_t(j) * ldb] : B[j + size_t(p) * ldb];
    acc += a * b;
  }
  return acc + double(s.beta) * C0[i + size_t(j) * s.ldc()];
}

// max |C - ref| / max |ref| over the given entries
double rel_err(const Shape& s, const std::vector<float>& C, const std::vector<double>& ref,
               const std::vector<std::pair<int, int>>& at) {
  double err = 0, mag = 0;
  for (size_t e = 0; e < at.size(); ++e) {
    const double c = C[at[e].first + size_t(at[e].second) * s.ldc()];
    err = std::max(err, std::fabs(c - ref[e]));
    mag = std::max(mag, std::fabs(ref[e]));
  }
  return mag > 0 ? err / mag : err;
}

void usage() {
  std::printf(
      "usage: gemm_blas_ab LIB_A LIB_B [--names A,B] [--threads 2] [--rounds 15] [--warmup 2] [--sets 2]\n"
      "                    [--routed] [--batch 16] [--seq-len 256] [--d-model 256] [--d-ff 704] [--vocab "
      "27]\n"
      "                    [--layers 12] [--samples 256] [--blis-arch NAME] [--list] [--probe LIB]\n"
      "  LIB_A, LIB_B: shared libraries exporting the Fortran sgemm_ (e.g. a libblas.so.3 alternative).\n"
      "  --routed: the routed variants' step (no residual fused into the Wo / W_down forwards: beta 0).\n"
      "  --blis-arch NAME: make BLIS use its configuration NAME (skx, zen3, haswell, ...) instead of the one "
      "it\n"
      "      detects (BLIS_ARCH_TYPE, which BLIS 0.9 reads as the configuration's number).\n"
      "  --list: print the step's call shapes and exit.  --probe LIB: describe LIB and exit.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> libs;
  std::string names;
  Dims d;
  int threads = 2, rounds = 15, warmup = 2, sets = 2, samples = 256;
  bool list_only = false;
  std::string probe, blis_arch;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    auto next_int = [&](int lo) {
      const std::string v = next();
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (!end || *end || x < lo || x > 1 << 30) die(a + " expects an integer >= " + std::to_string(lo));
      return int(x);
    };
    const std::map<std::string, std::pair<int*, int>> ints = {
        {"--threads", {&threads, 1}}, {"--rounds", {&rounds, 1}},   {"--warmup", {&warmup, 0}},
        {"--sets", {&sets, 1}},       {"--samples", {&samples, 1}}, {"--batch", {&d.B, 1}},
        {"--seq-len", {&d.T, 1}},     {"--d-model", {&d.D, 1}},     {"--d-ff", {&d.F, 1}},
        {"--vocab", {&d.V, 1}},       {"--layers", {&d.layers, 1}}};
    if (a == "-h" || a == "--help") return usage(), 0;
    if (auto it = ints.find(a); it != ints.end())
      *it->second.first = next_int(it->second.second);
    else if (a == "--names")
      names = next();
    else if (a == "--probe")
      probe = next();
    else if (a == "--blis-arch")
      blis_arch = next();
    else if (a == "--routed")
      d.prenorm = false;
    else if (a == "--list")
      list_only = true;
    else if (!a.empty() && a[0] == '-')
      die("unknown option " + a + " (--help)");
    else
      libs.push_back(a);
  }

  const std::string t = std::to_string(threads);
  for (const char* v : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS"})
    ::setenv(v, t.c_str(), 1);
  if (!probe.empty()) {
    const Library L = load(probe, "probe");
    describe(L, threads);
    return 0;
  }

  const Step step = make_step(d);
  const auto& shapes = step.shapes;
  double step_flops = 0;
  for (const auto& s : shapes) step_flops += s.flops() * s.count;

  std::printf(
      "== gemm calls of one training step (%s, B %d, T %d: N = %d rows, D %d, F %d, V %d, %d layers)\n",
      d.prenorm ? "PreNorm" : "routed variants", d.B, d.T, d.B * d.T, d.D, d.F, d.V, d.layers);
  std::printf(
      "   as the column-major BLAS sees them (Kokkos Kernels swaps the operands of a LayoutRight gemm)\n");
  std::printf("   #  transa transb      m      n      k  beta  calls  GFLOP/step  layer\n");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& s = shapes[i];
    std::printf("  %2zu  %c      %c      %6d %6d %6d  %3.0f  %5d  %10.3f  %s\n", i, s.ta, s.tb, s.m, s.n, s.k,
                s.beta, s.count, s.flops() * s.count * 1e-9, s.what.c_str());
  }
  std::printf("  total: %zu calls, %.2f GFLOP (2mnk)\n", step.calls.size(), step_flops * 1e-9);
  if (list_only) return 0;
  if (libs.size() != 2) return usage(), 2;

  std::string name_a = "A", name_b = "B";
  if (!names.empty()) {
    const auto c = names.find(',');
    if (c == std::string::npos) die("--names expects A,B");
    name_a = names.substr(0, c), name_b = names.substr(c + 1);
  }
  if (real_path(libs[0]) == real_path(libs[1])) std::printf("warning: both paths are the same library\n");

  std::printf("\n== machine and environment\n");
  std::printf("  CPU: %s (family %s, model %s), %ld online\n",
              read_first("/proc/cpuinfo", "model name").c_str(),
              read_first("/proc/cpuinfo", "cpu family").c_str(),
              read_first("/proc/cpuinfo", "model\t").c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("  affinity of this process: %s\n", affinity_list().c_str());
  for (const char* v : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "OMP_PROC_BIND",
                        "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_CORETYPE",
                        "OPENBLAS_L2_SIZE", "BLIS_ARCH_TYPE", "GLIBC_TUNABLES"})
    std::printf("  %s=%s\n", v, env_or(v));

  const Library LA = load(libs[0], name_a), LB = load(libs[1], name_b);
  if (LA.sgemm == LB.sgemm) die("both paths resolve sgemm_ to the same function");
  if (!blis_arch.empty()) force_blis_arch({&LA, &LB}, blis_arch);
  std::printf("\n== libraries (%d threads asked of each)\n", threads);
  describe(LA, threads);
  describe(LB, threads);
  if (!blis_arch.empty()) check_blis_arch({&LA, &LB}, blis_arch);
  for (const Library* L : {&LA, &LB})
    if (auto max_threads = L->sym<int (*)()>("omp_get_max_threads")) {
      std::printf("  omp_get_max_threads() (as seen through %s) = %d\n", L->name.c_str(), max_threads());
      break;
    }
  const auto rts = openmp_runtimes();
  std::printf("  OpenMP runtimes mapped in this process: %zu%s\n", rts.size(),
              rts.size() == 1 ? " (one: both libraries share its thread pool)" : "");
  for (const auto& r : rts) std::printf("    %s\n", r.c_str());
  if (rts.size() > 1)
    std::printf("  WARNING: more than one OpenMP runtime: the two libraries' threads compete\n");

  // Buffers: `sets` per shape, each call of a shape takes the next set.
  std::printf("\n== buffers\n");
  std::vector<std::vector<Buffers>> buf(shapes.size());
  size_t bytes = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const int ns = std::min(sets, shapes[i].count);
    for (int s = 0; s < ns; ++s) {
      Buffers b{std::vector<float>(shapes[i].a_size()), std::vector<float>(shapes[i].b_size()),
                std::vector<float>(shapes[i].c_size())};
      fill(b.A, 1000 * i + 3 * s + 1), fill(b.B, 1000 * i + 3 * s + 2), fill(b.C, 1000 * i + 3 * s + 3);
      bytes += sizeof(float) * (b.A.size() + b.B.size() + b.C.size());
      buf[i].push_back(std::move(b));
    }
  }
  std::printf("  %.0f MiB in %d set(s) per shape\n", double(bytes) / (1 << 20), sets);

  // ---- correctness
  std::printf("\n== agreement (max |C - ref| / max |ref|; ref in double)\n");
  std::printf("   #  %-12s %-12s %-12s\n", (name_a + " vs ref").c_str(), (name_b + " vs ref").c_str(),
              (name_a + " vs " + name_b).c_str());
  bool ok = true;
  const double tol = 1e-4;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& s = shapes[i];
    const auto& b = buf[i][0];
    std::vector<float> CA = b.C, CB = b.C;
    LA.gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, b.A.data(), s.lda(), b.B.data(), s.ldb(), s.beta, CA.data(),
            s.ldc());
    LB.gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, b.A.data(), s.lda(), b.B.data(), s.ldb(), s.beta, CB.data(),
            s.ldc());
    std::vector<std::pair<int, int>> at = {{0, 0}, {s.m - 1, 0}, {0, s.n - 1}, {s.m - 1, s.n - 1}};
    uint64_t x = 12345 + i;
    while (int(at.size()) < samples) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      at.push_back({int(x % uint64_t(s.m)), int((x >> 32) % uint64_t(s.n))});
    }
    std::vector<double> ref(at.size());
    for (size_t e = 0; e < at.size(); ++e)
      ref[e] = ref_entry(s, b.A.data(), b.B.data(), b.C.data(), at[e].first, at[e].second);
    double ab = 0, mag = 0;
    for (size_t e = 0; e < CA.size(); ++e)
      ab = std::max(ab, double(std::fabs(CA[e] - CB[e]))), mag = std::max(mag, double(std::fabs(CA[e])));
    ab = mag > 0 ? ab / mag : ab;
    const double ea = rel_err(s, CA, ref, at), eb = rel_err(s, CB, ref, at);
    const bool good = ea < tol && eb < tol && ab < tol;
    ok &= good;
    std::printf("  %2zu  %-12.2e %-12.2e %-12.2e%s\n", i, ea, eb, ab, good ? "" : "  <-- DISAGREE");
  }
  std::printf("  (entries: %d sampled per shape against ref; %s vs %s over the whole output)\n", samples,
              name_a.c_str(), name_b.c_str());
  {
    // the full reference on one shape: the Wo weight gradient, a k = N accumulation
    size_t i = 0;
    for (size_t j = 0; j < shapes.size(); ++j)
      if (shapes[j].what.find("Wo dW") != std::string::npos) i = j;
    const auto& s = shapes[i];
    const auto& b = buf[i][0];
    std::vector<float> CA = b.C, CB = b.C;
    LA.gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, b.A.data(), s.lda(), b.B.data(), s.ldb(), s.beta, CA.data(),
            s.ldc());
    LB.gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, b.A.data(), s.lda(), b.B.data(), s.ldb(), s.beta, CB.data(),
            s.ldc());
    std::vector<std::pair<int, int>> at;
    at.reserve(s.c_size());
    for (int j = 0; j < s.n; ++j)
      for (int r = 0; r < s.m; ++r) at.push_back({r, j});
    std::vector<double> ref(at.size());
    for (size_t e = 0; e < at.size(); ++e)
      ref[e] = ref_entry(s, b.A.data(), b.B.data(), b.C.data(), at[e].first, at[e].second);
    const double ea = rel_err(s, CA, ref, at), eb = rel_err(s, CB, ref, at);
    const bool good = ea < tol && eb < tol;
    ok &= good;
    std::printf("  full reference, shape %zu (%s, %dx%dx%d): %s %.2e, %s %.2e%s\n", i, s.what.c_str(), s.m,
                s.n, s.k, name_a.c_str(), ea, name_b.c_str(), eb, good ? "" : "  <-- DISAGREE");
  }
  std::printf("  %s (tolerance %.0e)\n",
              ok ? "both libraries agree with the reference and with each other"
                 : "DISAGREEMENT: the timings below compare different results",
              tol);

  // ---- timing
  const Library* lib[2] = {&LA, &LB};
  std::vector<int> next_set(shapes.size(), 0);
  auto call = [&](const Library& L, int i) {
    const auto& s = shapes[i];
    auto& b = buf[i][next_set[i]];
    next_set[i] = (next_set[i] + 1) % int(buf[i].size());
    L.gemm(s.ta, s.tb, s.m, s.n, s.k, 1.f, b.A.data(), s.lda(), b.B.data(), s.ldb(), s.beta, b.C.data(),
           s.ldc());
  };
  // t_shape[lib][shape][round], t_step[lib][round], cpu_step[lib][round]
  std::vector<std::vector<std::vector<double>>> t_shape(2, std::vector<std::vector<double>>(shapes.size()));
  std::vector<std::vector<double>> t_step(2), cpu_step(2);
  std::printf(
      "\n== timing: %d warm-up + %d rounds, each round every shape (%s, %s; swapped on odd rounds), then the "
      "whole step in order\n",
      warmup, rounds, name_a.c_str(), name_b.c_str());
  std::fflush(stdout);
  const double t_begin = now_s();
  for (int r = -warmup; r < rounds; ++r) {
    const bool swap = ((r + warmup) % 2) == 1;
    for (size_t i = 0; i < shapes.size(); ++i)
      for (int o = 0; o < 2; ++o) {
        const int l = swap ? 1 - o : o;
        const double t0 = now_s();
        for (int c = 0; c < shapes[i].count; ++c) call(*lib[l], int(i));
        const double t1 = now_s();
        if (r >= 0) t_shape[l][i].push_back(t1 - t0);
      }
    for (int o = 0; o < 2; ++o) {
      const int l = swap ? 1 - o : o;
      const double c0 = cpu_s(), t0 = now_s();
      for (int i : step.calls) call(*lib[l], i);
      const double t1 = now_s(), c1 = cpu_s();
      if (r >= 0) t_step[l].push_back(t1 - t0), cpu_step[l].push_back(c1 - c0);
    }
  }
  const double t_total = now_s() - t_begin;

  std::printf("\n== per shape: median over rounds of one step's worth of its calls\n");
  std::printf("   #  calls  %10s %8s  %10s %8s  %s\n", (name_a + " ms").c_str(), "GFLOP/s",
              (name_b + " ms").c_str(), "GFLOP/s", (name_a + "/" + name_b + " time").c_str());
  double sum_a = 0, sum_b = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const double a = median(t_shape[0][i]), b = median(t_shape[1][i]),
                 f = shapes[i].flops() * shapes[i].count;
    sum_a += a, sum_b += b;
    std::printf("  %2zu  %5d  %10.2f %8.1f  %10.2f %8.1f  %6.3f\n", i, shapes[i].count, 1e3 * a, f / a * 1e-9,
                1e3 * b, f / b * 1e-9, a / b);
  }
  std::printf("  sum  %5zu  %10.1f %8.1f  %10.1f %8.1f  %6.3f\n", step.calls.size(), 1e3 * sum_a,
              step_flops / sum_a * 1e-9, 1e3 * sum_b, step_flops / sum_b * 1e-9, sum_a / sum_b);

  std::vector<double> paired(t_step[0].size());
  int b_wins = 0;
  for (size_t r = 0; r < paired.size(); ++r) paired[r] = t_step[0][r] / t_step[1][r], b_wins += paired[r] > 1;
  std::printf("\n== whole step in order (%zu calls), %d paired rounds\n", step.calls.size(), rounds);
  for (int l = 0; l < 2; ++l) {
    std::vector<double> par(t_step[l].size());
    for (size_t r = 0; r < par.size(); ++r) par[r] = cpu_step[l][r] / t_step[l][r];
    const double m = median(t_step[l]);
    std::printf("  %-10s median %8.1f ms  (q25 %.1f, q75 %.1f)  %6.1f GFLOP/s  CPU/wall %.2f\n",
                lib[l]->name.c_str(), 1e3 * m, 1e3 * quantile(t_step[l], 0.25),
                1e3 * quantile(t_step[l], 0.75), step_flops / m * 1e-9, median(par));
  }
  std::printf(
      "  %s time / %s time: median of paired rounds %.3f (q25 %.3f, q75 %.3f); %s faster in %d of %d "
      "rounds\n",
      name_a.c_str(), name_b.c_str(), median(paired), quantile(paired, 0.25), quantile(paired, 0.75),
      name_b.c_str(), b_wins, rounds);
  std::printf(
      "  (> 1: %s is faster. CPU/wall: process CPU time over wall time, ~%d when all %d threads work)\n",
      name_b.c_str(), threads, threads);
  std::printf("  timed section: %.1f s\n", t_total);
  return ok ? 0 : 1;
}
