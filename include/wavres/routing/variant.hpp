// Compile-time model configuration: routing variant, depth and block size (spec §0–§5).
#pragma once
#include <string>

namespace wavres {

enum class Variant { prenorm, full_attnres, block_attnres, wav_v1 };

constexpr const char* variant_name(Variant v) {
  return v == Variant::prenorm         ? "prenorm"
         : v == Variant::full_attnres  ? "full_attnres"
         : v == Variant::block_attnres ? "block_attnres"
                                       : "wav_v1";
}

// Spec §4: 12 layers -> 4, 24 -> 8, 48 -> 12; otherwise the multiple of 4 nearest to L/8 that divides
// L = 2·n_layer (ties go to the larger, which reproduces 24 -> 8).
constexpr int default_block_sublayers(int n_layer) {
  const int L = 2 * n_layer;
  int best = 0;
  for (int k = 4; k <= L; k += 4) {
    if (L % k) continue;
    const int dist = k * 8 > L ? k * 8 - L : L - k * 8;  // |k - L/8|, scaled by 8
    const int best_dist = best * 8 > L ? best * 8 - L : L - best * 8;
    if (best == 0 || dist <= best_dist) best = k;
  }
  return best ? best : 2;
}

constexpr bool is_blocked(Variant v) {
  return v == Variant::block_attnres || v == Variant::wav_v1;
}

// ModelSpec<variant, n_layer, S>: everything that shapes the routing graph is fixed here, so that the source
// lists and the loops over sublayers are known to the compiler; widths stay run-time.
template <Variant V, int NLayer, int BlockSublayers = default_block_sublayers(NLayer)>
struct ModelSpec {
  static constexpr Variant variant = V;
  static constexpr int n_layer = NLayer;
  static constexpr int L = 2 * NLayer;  // sublayers: odd = attention, even = MLP
  static constexpr int S = is_blocked(V) ? BlockSublayers : 0;
  static constexpr int N = is_blocked(V) ? L / (BlockSublayers > 0 ? BlockSublayers : 1) : 0;
  static constexpr bool routed = V != Variant::prenorm;

  static_assert(NLayer >= 1, "n_layer must be at least 1");
  static_assert(!is_blocked(V) || BlockSublayers > 0, "block size must be positive");
  static_assert(!is_blocked(V) || BlockSublayers % 2 == 0,
                "block size counts sublayers and must be even: a block holds whole layers (attention + MLP)");
  static_assert(!is_blocked(V) || BlockSublayers <= 0 || L % BlockSublayers == 0,
                "block size must divide the number of sublayers L = 2*n_layer");
  static_assert(
      V != Variant::wav_v1 || BlockSublayers >= 4,
      "WAV v1 needs a block of at least 4 sublayers: at S = 2 the phase and split details coincide");

  // Sources in the bank: Full keeps x0 and every update; Block/WAV keep b0 and every running partial b_n^i
  // (b_n = b_n^S); WAV adds the RMS-matched phase and split details of each completed block.
  static constexpr int bank_size = V == Variant::prenorm         ? 0
                                   : V == Variant::full_attnres  ? L + 1
                                   : V == Variant::block_attnres ? L + 1
                                                                 : L + 1 + 2 * N;
  static std::string name() {
    return std::string(variant_name(V)) + "_l" + std::to_string(NLayer) + (S ? "_s" + std::to_string(S) : "");
  }
};

}  // namespace wavres
