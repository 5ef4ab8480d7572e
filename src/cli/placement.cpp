// Thread placement report (see placement.hpp).
#include "wavres/cli/placement.hpp"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace wavres {

namespace {

std::vector<int> own_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof mask, &mask) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &mask)) cpus.push_back(c);
  return cpus;
}

std::string env_or_unset(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "unset";
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? "" : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "";
}

}  // namespace

std::string cpu_list(const std::vector<int>& cpus) {
  std::string s;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + std::to_string(cpus[i]);
    if (j > i) s += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return s.empty() ? "none" : s;
}

int ThreadPlacement::distinct_cpus() const {
  std::set<int> all;
  for (auto& c : cpus) all.insert(c.begin(), c.end());
  return int(all.size());
}

std::string ThreadPlacement::describe() const {
  std::string s = "OMP_PROC_BIND=" + proc_bind + " OMP_PLACES=" + places + ": " +
                  std::to_string(cpus.size()) + " threads on CPUs ";
  for (size_t t = 0; t < cpus.size(); ++t) s += (t ? " | " : "") + cpu_list(cpus[t]);
  return s;
}

ThreadPlacement thread_placement() {
  ThreadPlacement p;
  p.proc_bind = env_or_unset("OMP_PROC_BIND");
  p.places = env_or_unset("OMP_PLACES");
  p.cpu_model = cpu_model_name();
#if defined(_OPENMP)
  p.cpus.resize(size_t(omp_get_max_threads()));
#pragma omp parallel
  p.cpus[size_t(omp_get_thread_num())] = own_cpus();  // each thread writes its own slot
#else
  p.cpus.push_back(own_cpus());
#endif
  return p;
}

}  // namespace wavres
