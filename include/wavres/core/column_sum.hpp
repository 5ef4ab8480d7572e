// Second level of a device column reduction: out[d] += Σ_c partial[c, d] over C row-chunk partials.
//
// team = 32 columns; lanes = the columns (a warp reads 128 consecutive bytes of one partial row); threads =
// kColumnSumGroups chunk groups, group g summing chunks g, g + G, g + 2G, … in order; then each column adds
// its G group sums in group order. The order depends only on the constants, never on how many threads a team
// really has: bit-identical on any thread count.
#pragma once
#include "wavres/core/launch.hpp"
#include "wavres/core/types.hpp"

namespace wavres::device {

constexpr int kColumnSumGroups = 32;

// C·D additions (1024 × 256 at the benchmark shape) give D/32 × 32 × 32 threads (8192 at D = 256), each
// adding C/32 values; a third level would cost a launch to save less than one.
inline LaunchShape column_sum_launch(int64_t D) {
  return {ceil_div(D, 32), kColumnSumGroups, 32};
}

template <class R, class Exec, class Partial>
void column_sum(const char* label, Vec<R, Exec> out, const Partial& partial, int64_t C, int64_t D) {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  using Scratch =
      Kokkos::View<R**, Kokkos::LayoutRight, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;
  constexpr int G = kColumnSumGroups;
  const LaunchShape s = column_sum_launch(D);
  Kokkos::parallel_for(
      label, team_policy<Exec>(s, Scratch::shmem_size(G, 32)), KOKKOS_LAMBDA(const Member& t) {
        const int64_t d0 = int64_t(t.league_rank()) * 32;
        Scratch group(t.team_scratch(0), G, 32);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(t, G), [&](int g) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(t, 32), [&](int l) {
            R acc = 0;
            if (d0 + l < D)
              for (int64_t c = g; c < C; c += G) acc += partial(c, d0 + l);
            group(g, l) = acc;
          });
        });
        t.team_barrier();  // every group sum is in scratch
        Kokkos::parallel_for(Kokkos::TeamVectorRange(t, 32), [&](int l) {
          if (d0 + l >= D) return;
          R acc = 0;
          for (int g = 0; g < G; ++g) acc += group(g, l);
          out(d0 + l) += acc;
        });
      });
}

}  // namespace wavres::device
