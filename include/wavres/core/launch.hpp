// Launch shapes of the device-shaped bodies, as values: each device body computes its launch from the problem
// dims through a `device::<kernel>_launch(...)` function, and tests/test_parallelism.cpp calls the same
// functions to check how many GPU threads each launch exposes.
#pragma once
#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cstdint>
#include "wavres/core/exec_traits.hpp"

namespace wavres {

// `league` teams of `team` threads × `vector` lanes (on CUDA: blocks of team·vector threads, a lane is
// threadIdx.x), or a flat range of `league` items (team = vector = 1). These are the CUDA sizes; on the host
// team_policy() clamps the team to the thread pool and Kokkos runs the lanes as a loop, so the device bodies
// never let a result depend on how many threads a team really has.
struct LaunchShape {
  int64_t league = 0;
  int team = 1, vector = 1;
  int64_t threads() const { return league * team * vector; }
  bool flat() const { return team == 1 && vector == 1; }
};

constexpr int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Lanes of a row kernel: one warp per row on CUDA (32 lanes read 32 consecutive floats: coalesced).
constexpr int kRowLanes = 32;
// Rows per team of a row kernel: 8 warps = 256-thread blocks, 8 blocks per SM keep 2048 threads resident.
constexpr int kRowsPerTeam = 8;

template <class Exec>
Kokkos::TeamPolicy<Exec> team_policy(const LaunchShape& s, size_t scratch_bytes = 0) {
  int team = s.team, vector = s.vector;
  if constexpr (!is_gpu_space_v<Exec>) {
    team = std::max(1, std::min(team, int(Exec().concurrency())));  // OpenMP aborts above its pool size
    vector = 1;
  }
  Kokkos::TeamPolicy<Exec> p(int(s.league), team, vector);
  if (scratch_bytes) p.set_scratch_size(0, Kokkos::PerTeam(scratch_bytes));
  return p;
}

}  // namespace wavres
