// Where the OpenMP threads run: each thread's CPU affinity as the OS enforces it, and the environment that
// chose it. The benchmarks print it beside every timing (pinned and unpinned threads differ by up to 1.6x per
// step on the 2-core machine), perf/compare_torch.py gives the PyTorch side the same placement, and
// tests/test_thread_placement.cpp checks that a pinned run gets as many CPUs as threads.
#pragma once
#include <string>
#include <vector>

namespace wavres {

struct ThreadPlacement {
  std::vector<std::vector<int>> cpus;  // CPUs each OpenMP thread may run on, by omp_get_thread_num()
  std::string proc_bind, places;       // OMP_PROC_BIND, OMP_PLACES as the runtime read them ("unset" if so)
  std::string cpu_model;               // /proc/cpuinfo "model name" (empty where there is none)

  int distinct_cpus() const;  // size of the union of the threads' masks: the cores the run can use
  // "OMP_PROC_BIND=spread OMP_PLACES=threads: 2 threads on CPUs 0 | 1"
  std::string describe() const;
};

// Runs one parallel region of omp_get_max_threads() threads (the team Kokkos' OpenMP backend uses) and reads
// each thread's mask; without OpenMP, the calling thread only.
ThreadPlacement thread_placement();

// "0-3,6" for {0, 1, 2, 3, 6}: the kernel's cpu-list format (Cpus_allowed_list).
std::string cpu_list(const std::vector<int>& cpus);

}  // namespace wavres
