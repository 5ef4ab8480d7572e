// Thread placement across the start-up re-exec (src/cli/blas_env.cpp): a run must get as many cores as it has
// threads under any placement a user may set, and never more CPUs than it was started with.
//
// Each case starts this executable again (the disabled `probe` case) in the environment under test, with
// OPENBLAS_CORETYPE and GLIBC_TUNABLES unset so that the re-exec happens on any CPU. The probe starts Kokkos'
// thread pool and prints every thread's Cpus_allowed_list from /proc/self/task: the kernel's view,
// independent of the code under test. Expected CPUs come from this process's own mask, so the suite runs with
// OMP_PROC_BIND=false (tests/CMakeLists.txt), which leaves that mask as it was started.
#include <boost/test/unit_test.hpp>

#include <sched.h>
#include <unistd.h>

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "wavres/cli/placement.hpp"

namespace fs = std::filesystem;

namespace {

// "0-2,5" -> {0, 1, 2, 5}
std::set<int> parse_cpu_list(const std::string& s) {
  std::set<int> cpus;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) {
    const auto dash = part.find('-');
    const int lo = std::stoi(part.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) cpus.insert(c);
  }
  return cpus;
}

std::vector<int> own_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  BOOST_TEST_REQUIRE(::sched_getaffinity(0, sizeof mask, &mask) == 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mask)) cpus.push_back(c);
  return cpus;
}

struct ProbeResult {
  std::vector<std::set<int>> tasks;  // each thread's Cpus_allowed_list
  std::set<int> all;                 // their union
  std::string glibc_tunables;        // set by the re-exec: proves it happened
  std::string wait_policy;           // OMP_WAIT_POLICY after the re-exec
  std::string spincount;             // GOMP_SPINCOUNT after the re-exec
  int distinct_reported = -1;        // ThreadPlacement::distinct_cpus() in the child
  std::string output;
};

// Runs the probe under `env` (prefixed to the command line through env(1); `taskset` optional).
ProbeResult run_probe(const std::string& env, const std::string& taskset = "") {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::string cmd =
      "env -u OPENBLAS_CORETYPE -u GLIBC_TUNABLES -u WAVRES_NO_REEXEC -u OMP_PROC_BIND -u OMP_WAIT_POLICY "
      "-u GOMP_SPINCOUNT -u OMP_PLACES -u GOMP_CPU_AFFINITY " +
      env + " " + taskset + " " + exe + " --run_test=probe --log_level=nothing 2>&1";
  ProbeResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  BOOST_TEST_REQUIRE(p != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  const int status = ::pclose(p);
  BOOST_TEST_INFO("command: " << cmd << "\noutput:\n" << r.output);
  BOOST_TEST_REQUIRE(status == 0);
  std::stringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    std::stringstream ls(line);
    std::string tag, value;
    ls >> tag >> value;
    if (tag == "probe-task") {
      r.tasks.push_back(parse_cpu_list(value));
      r.all.insert(r.tasks.back().begin(), r.tasks.back().end());
    } else if (tag == "probe-tunables") {
      r.glibc_tunables = value;
    } else if (tag == "probe-wait-policy") {
      r.wait_policy = value;
    } else if (tag == "probe-spincount") {
      r.spincount = value;
    } else if (tag == "probe-distinct") {
      r.distinct_reported = std::stoi(value);
    }
  }
  return r;
}

// OMP_NUM_THREADS for the pinned cases: every CPU this process has, at most 4 (enough to see narrowing).
// Places are hardware threads throughout, so a pinned thread has exactly one CPU on SMT machines too.
int pinned_threads(const std::vector<int>& cpus) {
  BOOST_TEST_INFO("these cases need at least 2 CPUs in the affinity mask of the test process");
  BOOST_TEST_REQUIRE(cpus.size() >= 2u);
  return int(std::min<size_t>(cpus.size(), 4));
}

}  // namespace

// Not a check by itself: the child side of the cases below (run explicitly with --run_test=probe).
BOOST_AUTO_TEST_CASE(probe, *boost::unit_test::disabled()) {
  int sum = 0;  // one parallel region, so every pool thread exists and has been placed
  Kokkos::parallel_reduce(
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, 4096), [](int i, int& s) { s += i & 1; },
      sum);
  BOOST_TEST(sum == 2048);
  for (auto& e : fs::directory_iterator("/proc/self/task")) {
    std::ifstream status(e.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0) {
        std::stringstream ls(line.substr(18));
        std::string list;
        ls >> list;
        std::printf("probe-task %s\n", list.c_str());
      }
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::printf("probe-tunables %s\n", tunables ? tunables : "unset");
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  std::printf("probe-wait-policy %s\n", wait ? wait : "unset");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  std::printf("probe-spincount %s\n", spin ? spin : "unset");
  const auto placement = wavres::thread_placement();
  std::printf("probe-distinct %d\nprobe-placement %s\n", placement.distinct_cpus(),
              placement.describe().c_str());
}

// The bug of issue 18: libgomp binds the initial thread to the first place before main, the re-exec inherited
// that one-CPU mask, and every thread of the new process ran on one core (half speed). Also: OMP_PLACES alone
// or GOMP_CPU_AFFINITY alone means "bind" to libgomp, and the re-exec's default OMP_PROC_BIND=false used to
// unpin such a run.
BOOST_AUTO_TEST_CASE(pinned_run_gets_one_core_per_thread) {
  const auto cpus = own_cpus();
  const int n = pinned_threads(cpus);
  std::string affinity;  // GOMP_CPU_AFFINITY=c0,c1,...: the first n CPUs of this process
  for (int t = 0; t < n; ++t) affinity += (t ? "," : "") + std::to_string(cpus[size_t(t)]);
  const std::vector<std::string> placements = {"OMP_PROC_BIND=spread OMP_PLACES=threads",
                                               "OMP_PROC_BIND=close OMP_PLACES=threads", "OMP_PROC_BIND=true",
                                               "OMP_PLACES=threads", "GOMP_CPU_AFFINITY=" + affinity};
  for (const auto& placement : placements) {
    BOOST_TEST_CONTEXT(placement << " OMP_NUM_THREADS=" << n) {
      const auto r = run_probe(placement + " OMP_NUM_THREADS=" + std::to_string(n));
      BOOST_TEST_CONTEXT("probe output:\n" << r.output) {
        BOOST_TEST(r.glibc_tunables == "glibc.malloc.hugetlb=1");  // the re-exec ran
        BOOST_TEST(r.tasks.size() >= size_t(n));                   // the pool exists
        BOOST_TEST(r.all.size() == size_t(n));                     // n threads, n CPUs
        for (auto& t : r.tasks) BOOST_TEST(t.size() == 1u);        // each thread pinned, as asked
        BOOST_TEST(r.distinct_reported == n);                      // and the benchmarks' report says so
        for (int c : r.all) BOOST_TEST(std::count(cpus.begin(), cpus.end(), c) == 1);
      }
    }
  }
}

// The default (no placement set) may use every CPU the process was started with.
BOOST_AUTO_TEST_CASE(default_run_uses_every_cpu) {
  const auto cpus = own_cpus();
  const int n = pinned_threads(cpus);
  const auto r = run_probe("OMP_NUM_THREADS=" + std::to_string(n));
  BOOST_TEST_CONTEXT("probe output:\n" << r.output) {
    BOOST_TEST(r.glibc_tunables == "glibc.malloc.hugetlb=1");
    BOOST_TEST(r.tasks.size() >= size_t(n));
    BOOST_TEST(r.all.size() >= size_t(n));
    for (int c : r.all) BOOST_TEST(std::count(cpus.begin(), cpus.end(), c) == 1);
  }
}

// Repairing the mask must not widen it: a run started on one CPU (taskset) stays on that CPU.
BOOST_AUTO_TEST_CASE(re_exec_never_widens_the_start_mask) {
  const auto cpus = own_cpus();
  pinned_threads(cpus);
  const int last = cpus.back();
  const auto r = run_probe("OMP_PROC_BIND=spread OMP_PLACES=threads OMP_NUM_THREADS=2",
                           "taskset -c " + std::to_string(last));
  BOOST_TEST_CONTEXT("probe output:\n" << r.output) {
    BOOST_TEST(r.glibc_tunables == "glibc.malloc.hugetlb=1");
    BOOST_TEST((r.all == std::set<int>{last}));
  }
}

// The default spins briefly before sleeping (GOMP_SPINCOUNT=3000; README, "Thread placement": libgomp's own
// 300000 polls cost 1.35x beside a busy process); a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept.
BOOST_AUTO_TEST_CASE(default_waits_briefly_unless_told) {
  const auto cpus = own_cpus();
  const int n = pinned_threads(cpus);
  const auto dflt = run_probe("OMP_NUM_THREADS=" + std::to_string(n));
  BOOST_TEST_CONTEXT("probe output:\n" << dflt.output) {
    BOOST_TEST(dflt.wait_policy == "unset");
    BOOST_TEST(dflt.spincount == "3000");
  }
  const auto own = run_probe("OMP_WAIT_POLICY=passive OMP_NUM_THREADS=" + std::to_string(n));
  BOOST_TEST_CONTEXT("probe output:\n" << own.output) {
    BOOST_TEST(own.wait_policy == "passive");
    BOOST_TEST(own.spincount == "unset");
  }
  const auto spin = run_probe("GOMP_SPINCOUNT=300000 OMP_NUM_THREADS=" + std::to_string(n));
  BOOST_TEST_CONTEXT("probe output:\n" << spin.output) {
    BOOST_TEST(spin.wait_policy == "unset");
    BOOST_TEST(spin.spincount == "300000");
  }
}
