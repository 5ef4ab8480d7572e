// Launch shapes and helpers shared by the routing kernels' device bodies (routing/*/device.hpp).
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
// has an order fixed by the shapes alone, not by the team size Kokkos runs: results do not depend on the
// thread count.
#pragma once
#include <algorithm>
#include "wavres/core/exec_traits.hpp"
#include "wavres/core/math.hpp"
#include "wavres/core/types.hpp"

namespace wavres::routing_device {

template <class Exec>
using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
template <class R, class Exec>
using Scratch1 = Kokkos::View<R*, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;
template <class R, class Exec>
using Scratch2 = Kokkos::View<R**, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;

// Vector lanes across a row of D features: a warp on CUDA (fewer for rows narrower than 32), 1 on the host
// (OpenMP runs a ThreadVectorRange as a plain loop).
template <class Exec>
int row_lanes(int64_t D) {
  int lanes = 1;
  if constexpr (is_gpu_space_v<Exec>)
    while (lanes < 32 && lanes < D) lanes *= 2;
  return lanes;
}
// Threads per team when each thread owns `want` independent items (rows, consumers, chunk slots): all of them
// on a GPU up to 256 threads per block (a TeamThreadRange loops over the rest; larger blocks can exceed the
// registers a kernel may use per block), at most the pool size on OpenMP (Kokkos' team_size_max there).
template <class Exec>
int team_threads(int want, int lanes) {
  if constexpr (is_gpu_space_v<Exec>) {
    return std::max(1, std::min(want, 256 / lanes));
  } else {
    (void)lanes;
    return std::max(1, std::min(want, int(Exec::concurrency())));
  }
}

// Row kernels: a team of `rows` token rows, `lanes` lanes each. 4 warps per block on CUDA.
struct RowShape {
  int rows, lanes;
  int64_t league;
};
template <class Exec>
RowShape row_shape(int64_t N, int64_t D) {
  const int lanes = row_lanes<Exec>(D);
  const int rows = is_gpu_space_v<Exec> ? std::max(1, 128 / lanes) : 4;
  return {rows, lanes, (N + rows - 1) / rows};
}
template <class Exec>
Kokkos::TeamPolicy<Exec> row_policy(const RowShape& s) {
  return Kokkos::TeamPolicy<Exec>(s.league, team_threads<Exec>(s.rows, s.lanes), s.lanes);
}
// Runs f(i) for the team's token rows i, one per team thread.
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
template <class R>
int chunk_slots(int64_t N, int C, int64_t row_bytes) {
  const int64_t rows = (N + C - 1) / C;
  const int64_t budget = 32768 / std::max<int64_t>(row_bytes, 1);
  return int(std::max<int64_t>(1, std::min<int64_t>({4, rows, budget})));
}

// out(e, Σ_c part(c, e)) for e < E (part is [C, ≥E]): the per-chunk partials of a column reduction summed
// in a fixed order. team = 32 consecutive columns (one per lane: coalesced), threads = 32 groups of C/32
// chunks each (summed in chunk order into scratch), then the group sums in group order.
template <class R, class Exec, class Out>
void chunk_column_sums(const char* label, Mat<const R, Exec> part, int64_t E, const Out& out) {
  constexpr int G = 32;
  const int C = int(part.extent(0));
  const int lanes = is_gpu_space_v<Exec> ? 32 : 1;
  const int64_t tiles = (E + lanes - 1) / lanes;
  auto policy = Kokkos::TeamPolicy<Exec>(tiles, team_threads<Exec>(G, lanes), lanes);
  policy.set_scratch_size(0, Kokkos::PerTeam(Scratch2<R, Exec>::shmem_size(G, lanes)));
  Kokkos::parallel_for(
      label, policy, KOKKOS_LAMBDA(const Member<Exec>& team) {
        const int64_t e0 = int64_t(team.league_rank()) * lanes;
        const int ne = int(E - e0 < lanes ? E - e0 : lanes);
        Scratch2<R, Exec> group(team.team_scratch(0), G, lanes);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, G), [&](int gi) {
          const int c0 = int(int64_t(C) * gi / G), c1 = int(int64_t(C) * (gi + 1) / G);
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, ne), [&](int k) {
            R s = 0;
            for (int c = c0; c < c1; ++c) s += part(c, e0 + k);
            group(gi, k) = s;
          });
        });
        team.team_barrier();  // every group's sums are in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(team, ne), [&](int k) {
          R s = 0;
          for (int gi = 0; gi < G; ++gi) s += group(gi, k);
          out(e0 + k, s);
        });
      });
}

}  // namespace wavres::routing_device
