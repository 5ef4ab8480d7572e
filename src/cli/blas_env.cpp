// Fix up the process environment before OpenBLAS and the OpenMP runtime read it (see blas_env.hpp).
#include "wavres/cli/blas_env.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace wavres {

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
  // libgomp reads OMP_PROC_BIND at load time too; Kokkos warns when it is unset. Unpinned threads are the
  // safe default on shared machines; set OMP_PROC_BIND=spread OMP_PLACES=threads yourself on a dedicated one.
  if (!std::getenv("OMP_PROC_BIND")) changed |= ::setenv("OMP_PROC_BIND", "false", 1) == 0;
  // Transparent huge pages for large mallocs (glibc >= 2.35; ignored by older glibc and where THP is off). A
  // step streams ~1 GiB of activations; with 4 KiB pages the TLB misses cost 3-5 % of it (measured on the l12
  // benchmarks). glibc reads the tunable at start-up, hence here. A user's own GLIBC_TUNABLES is left alone.
  if (!std::getenv("GLIBC_TUNABLES")) changed |= ::setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1) == 0;
  if (!changed) return;
  std::fflush(nullptr);  // nothing buffered may be lost by the exec
  ::execv("/proc/self/exe", argv);
  // execv failed (no /proc?): carry on with whatever OpenBLAS and libgomp picked.
}

}  // namespace wavres
