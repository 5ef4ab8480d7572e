// Fix up the process environment before OpenBLAS and the OpenMP runtime read it (see blas_env.hpp).
#include "wavres/cli/blas_env.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace wavres {

namespace {

// Undo libgomp's narrowing of the start-up thread before the re-exec. When OMP_PROC_BIND or OMP_PLACES is
// set, libgomp binds the initial thread to the first place while it loads, i.e. before main; an exec inherits
// that one-place mask, the new process builds its places from it, and every OpenMP thread lands on one core
// (issue 18: the l12 benchmark ran 3.2 s instead of 1.1 s per step under OMP_PROC_BIND=spread
// OMP_PLACES=threads).
// libgomp built its place list from the mask the process started with (intersected with OMP_PLACES), so the
// places' union is that mask as far as OpenMP can use it; the thread's mask is widened to it, never narrowed.
// The symbols are looked up at run time so that a build without -fopenmp still repairs the mask when libgomp
// is loaded by a dependency (OpenBLAS's OpenMP flavour).
void restore_startup_affinity() {
  using CountFn = int (*)();
  using NumProcsFn = int (*)(int);
  using IdsFn = void (*)(int, int*);
  auto num_places = reinterpret_cast<CountFn>(::dlsym(RTLD_DEFAULT, "omp_get_num_places"));
  auto place_num_procs = reinterpret_cast<NumProcsFn>(::dlsym(RTLD_DEFAULT, "omp_get_place_num_procs"));
  auto place_proc_ids = reinterpret_cast<IdsFn>(::dlsym(RTLD_DEFAULT, "omp_get_place_proc_ids"));
  if (!num_places || !place_num_procs || !place_proc_ids) return;  // no OpenMP runtime: nothing narrowed it
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (::sched_getaffinity(0, sizeof mask, &mask) != 0) return;
  const int places = num_places();  // 0 when libgomp did not bind (OMP_PROC_BIND=false or unset)
  bool widened = false;
  for (int p = 0; p < places; ++p) {
    std::vector<int> ids(size_t(place_num_procs(p)));
    if (ids.empty()) continue;
    place_proc_ids(p, ids.data());
    for (int cpu : ids)
      if (cpu >= 0 && cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mask)) CPU_SET(cpu, &mask), widened = true;
  }
  // Failure (a CPU taken away since start-up) leaves the narrowed mask: slower, never wrong.
  if (widened) ::sched_setaffinity(0, sizeof mask, &mask);
}

}  // namespace

void ensure_blas_coretype(int argc, char** argv) {
  // After the re-exec every variable is set, so `changed` stays false and the second run returns without
  // re-executing; WAVRES_NO_REEXEC is only the user's opt-out.
  if (std::getenv("WAVRES_NO_REEXEC") || argc < 1 || argv == nullptr || argv[0] == nullptr) return;
  bool changed = false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!std::getenv("OPENBLAS_CORETYPE") && __builtin_cpu_supports("avx512f"))
    changed |= ::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
#endif
  // libgomp reads OMP_PROC_BIND at load time too; Kokkos warns when it is unset. OMP_PLACES or
  // GOMP_CPU_AFFINITY alone makes libgomp bind as if OMP_PROC_BIND=true; writing that keeps the user's
  // placement (a default of `false` unpinned it).
  if (!std::getenv("OMP_PROC_BIND")) {
    if (std::getenv("OMP_PLACES") || std::getenv("GOMP_CPU_AFFINITY"))
      changed |= ::setenv("OMP_PROC_BIND", "true", 1) == 0;
    else
      changed |= ::setenv("OMP_PROC_BIND", "false", 1) == 0;  // unpinned: see README, "Thread placement"
  }
  // Waiting threads spin briefly, then sleep (libgomp polls GOMP_SPINCOUNT times; its own default is 300000).
  // With other processes on the cores, long spins take time from the working threads: libgomp's default made
  // l12 steps 1.35x slower with one busy process beside them, 3000 polls 1.01-1.02x against sleeping at once
  // (OMP_WAIT_POLICY=passive); on a quiet machine 3000 polls were as fast as libgomp's default, and 0-3 %
  // faster than passive waits (README, "Thread placement"). A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is
  // kept.
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    changed |= ::setenv("GOMP_SPINCOUNT", "3000", 1) == 0;
  // Transparent huge pages for large mallocs (glibc >= 2.35; ignored by older glibc and where THP is off). A
  // step streams ~1 GiB of activations; with 4 KiB pages the TLB misses cost 3-5 % of it (measured on the l12
  // benchmarks). glibc reads the tunable at start-up, hence here. A user's own GLIBC_TUNABLES is left alone.
  if (!std::getenv("GLIBC_TUNABLES")) changed |= ::setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1) == 0;
  if (!changed) return;
  restore_startup_affinity();
  std::fflush(nullptr);  // nothing buffered may be lost by the exec
  ::execv("/proc/self/exe", argv);
  // execv failed (no /proc?): carry on with whatever OpenBLAS and libgomp picked.
}

}  // namespace wavres
