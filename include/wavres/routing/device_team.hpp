// Launch shapes and lane rules shared by the routing kernels' device bodies (routing/*/device.hpp).
//
// Launches: every device body takes its launch from a `device::<kernel>_launch(...)` function next to it,
// which returns the CUDA shape as a LaunchShape (core/launch.hpp) whatever backend is being compiled, and
// launches it with team_policy<Exec>(shape, scratch) (a flat range for flat shapes). team_policy is the one
// place that fits a CUDA shape to the host (team clamped to the thread pool, one lane), and
// tests/test_parallelism.cpp reads the same functions to count the GPU threads of each launch.
//
// Row kernels: team thread = one token row, vector lanes = the row's features d (on CUDA a warp reads 32
// consecutive floats per load: coalesced). Per-row scalars (dot products, softmax statistics, the mixer
// coefficients) come out of ThreadVectorRange reductions, which hand the result to every lane. A row element
// is written and re-read only by the lane that owns its d (ThreadVectorRange maps d to the same lane every
// time), and per-row scalars kept in memory are written and re-read by one lane (Kokkos::single), so lanes
// never read what another lane wrote in the same kernel: Kokkos 3.4 has no vector barrier. Where a team
// combines its threads' results it goes through team scratch and team_barrier.
//
// Column reductions: a team per row chunk (row_chunks_v<Exec> = 1024 on a device) writes one partial row;
// chunk_column_sums then adds the partials in a fixed order (groups of chunks, then the groups). Every sum
// has an order fixed by the shapes alone (the CUDA shape's rows per team, the chunk and slot counts), never
// by the team size Kokkos runs: results do not depend on the thread count.
#pragma once
#include <algorithm>
#include "wavres/core/column_sum.hpp"
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/launch.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::routing_device {

template <class Exec>
using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
template <class R, class Exec>
using Scratch1 = Kokkos::View<R*, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;
template <class R, class Exec>
using Scratch2 = Kokkos::View<R**, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;

// Vector lanes across a row of D features: a warp (kRowLanes); for D ≤ 16 the power of two ≥ D.
constexpr int row_lanes(int64_t D) {
  int lanes = 1;
  while (lanes < kRowLanes && lanes < D) lanes *= 2;
  return lanes;
}
// Threads × lanes of a routing team: 256 (a TeamThreadRange loops over the rest; larger blocks can exceed the
// registers a kernel may use per block).
constexpr int kTeamWidth = 256;
// Threads × lanes of a row kernel's team: 128, 4 warps per block.
constexpr int kRowTeamWidth = 128;

// `league` teams whose threads each own one of `want` independent items (consumers, chunk slots), with the
// lanes of a D-wide row.
inline LaunchShape team_launch(int64_t league, int64_t want, int64_t D) {
  const int lanes = row_lanes(D);
  return {league, int(std::max<int64_t>(1, std::min<int64_t>(want, kTeamWidth / lanes))), lanes};
}
// Row kernels: a team of kRowTeamWidth / lanes token rows, a thread per row (for_team_rows).
inline LaunchShape row_launch(int64_t N, int64_t D) {
  const int lanes = row_lanes(D), rows = kRowTeamWidth / lanes;
  return {ceil_div(N, rows), rows, lanes};
}
// Runs f(i) for the team's token rows i, one per team thread; `rows` is the launch shape's team (the CUDA
// size: on the host fewer threads loop over the same rows).
template <class Exec, class F>
KOKKOS_INLINE_FUNCTION void for_team_rows(const Member<Exec>& team, int64_t N, int rows, const F& f) {
  const int64_t i0 = int64_t(team.league_rank()) * rows;
  const int nr = int(N - i0 < rows ? N - i0 : rows);
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nr), [&](int t) { f(i0 + t); });
}

// Σ_d f(d) over a row, across the calling thread's vector lanes; every lane gets the sum.
template <class R, class Exec, class F>
KOKKOS_INLINE_FUNCTION R lane_sum(const Member<Exec>& team, int D, const F& f) {
  R s = 0;
  Kokkos::parallel_reduce(
      Kokkos::ThreadVectorRange(team, D), [&](int d, R& acc) { acc += f(d); }, s);
  return s;
}

// Chunk kernels: rows [N·c/C, N·(c+1)/C) of chunk c. A team owns one chunk and splits its rows over `slots`
// virtual threads (row i goes to slot (i − i0) mod slots), each with its own partial row in team scratch, so
// that every chunk's sum has the same order whatever team size Kokkos runs. slots is capped by the rows a
// chunk has (4 at the benchmark shape, N = 4096) and by a 32 KiB scratch budget (CUDA gives 48 KiB per
// block).
inline int chunk_slots(int64_t N, int64_t C, int64_t row_bytes) {
  const int64_t rows = ceil_div(N, C);
  const int64_t budget = 32768 / std::max<int64_t>(row_bytes, 1);
  return int(std::max<int64_t>(1, std::min<int64_t>({4, rows, budget})));
}
// A chunk kernel over C chunks of N rows of D values of R: a team per chunk, a thread per slot.
template <class R>
LaunchShape chunk_launch(int64_t N, int64_t D, int64_t C) {
  return team_launch(C, chunk_slots(N, C, D * int64_t(sizeof(R))), D);
}

// out(e, Σ_c part(c, e)) for e < E (part is [C, ≥E]): the per-chunk partials of a column reduction summed
// in a fixed order. Launch: device::column_sum_launch(E) (core/column_sum.hpp): team = 32 consecutive
// columns (one per lane: coalesced), threads = 32 groups of C/32 consecutive chunks each (summed in chunk
// order into scratch), then the group sums in group order. (device::column_sum groups the chunks g, g + 32,
// … instead: the same count of additions, another rounding.)
template <class R, class Exec, class Out>
void chunk_column_sums(const char* label, Mat<const R, Exec> part, int64_t E, const Out& out) {
  constexpr int G = device::kColumnSumGroups;
  const int C = int(part.extent(0));
  const LaunchShape s = device::column_sum_launch(E);
  const int cols = s.vector;  // columns per team
  Kokkos::parallel_for(
      label, team_policy<Exec>(s, Scratch2<R, Exec>::shmem_size(G, cols)),
      KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int64_t e0 = int64_t(team.league_rank()) * cols;
        const int ne = int(E - e0 < cols ? E - e0 : cols);
        Scratch2<R, Exec> group(team.team_scratch(0), G, cols);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, G), [&](int gi) {
          const int c0 = int(int64_t(C) * gi / G), c1 = int(int64_t(C) * (gi + 1) / G);
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, ne), [&](int k) {
            R sum = 0;
            for (int c = c0; c < c1; ++c) sum += part(c, e0 + k);
            group(gi, k) = sum;
          });
        });
        team.team_barrier();  // every group's sums are in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, ne), [&](int k) {
          R sum = 0;
          for (int gi = 0; gi < G; ++gi) sum += group(gi, k);
          out(e0 + k, sum);
        });
      });
}

}  // namespace wavres::routing_device
