// All parameters live in one flat buffer (and so do their gradients and AdamW moments), so that the
// optimizer, the gradient norm and checkpoint I/O are single loops. Each tensor is a named window into it;
// names are the HDF5 paths under /params (checkpoint-layout.md).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
#include "wavres/core/types.hpp"
#include "wavres/routing/variant.hpp"

namespace wavres {

struct ParamEntry {
  std::string name;  // e.g. "layers/3/attn/wq"
  int64_t rows = 0;  // matrices [rows, cols]; vectors have cols = 0
  int64_t cols = 0;
  int64_t offset = 0;  // in elements
  bool decay = false;  // AdamW weight decay (rank-2 weights and embeddings only, spec §6)
  enum Init { normal, normal_scaled, ones, zeros, query, detail_bias } init = normal;
  int64_t size() const { return cols ? rows * cols : rows; }
  std::vector<int64_t> dims() const {
    return cols ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows};
  }
};

struct ParamTable {
  std::vector<ParamEntry> entries;
  int64_t total = 0;
  int64_t decay_end = 0;  // entries with decay occupy [0, decay_end)

  const ParamEntry& at(const std::string& name) const {
    for (auto& e : entries)
      if (e.name == name) return e;
    throw std::out_of_range("no parameter named " + name);
  }
  int64_t count_parameters() const {
    int64_t n = 0;
    for (auto& e : entries) n += e.size();
    return n;
  }
};

// Decayed tensors first so that weight decay is a single range test. Within a layer wq,wk,wv are adjacent
// (one [3D,D] gemm) and so are w_gate,w_up (one [2F,D] gemm). Offsets are 16-element aligned.
template <class Spec>
ParamTable make_param_table(const Dims& d) {
  ParamTable t;
  auto add = [&](std::string name, int64_t r, int64_t c, bool decay, ParamEntry::Init init,
                 bool align = true) {
    if (align) t.total = (t.total + 15) / 16 * 16;
    t.entries.push_back({std::move(name), r, c, t.total, decay, init});
    t.total += c ? r * c : r;
  };
  const int64_t D = d.D, F = d.F, V = d.V, T = d.T, L = Spec::L;
  add("embed/token", V, D, true, ParamEntry::normal);
  add("embed/position", T, D, true, ParamEntry::normal);
  for (int i = 0; i < Spec::n_layer; ++i) {
    const std::string p = "layers/" + std::to_string(i) + "/";
    add(p + "attn/wq", D, D, true, ParamEntry::normal);
    add(p + "attn/wk", D, D, true, ParamEntry::normal, false);
    add(p + "attn/wv", D, D, true, ParamEntry::normal, false);
    add(p + "attn/wo", D, D, true, ParamEntry::normal_scaled);
    add(p + "mlp/w_gate", F, D, true, ParamEntry::normal);
    add(p + "mlp/w_up", F, D, true, ParamEntry::normal, false);
    add(p + "mlp/w_down", D, F, true, ParamEntry::normal_scaled);
  }
  add("lm_head", V, D, true, ParamEntry::normal);
  t.total = (t.total + 15) / 16 * 16;
  t.decay_end = t.total;
  for (int i = 0; i < Spec::n_layer; ++i) {
    const std::string p = "layers/" + std::to_string(i) + "/";
    add(p + "attn_norm/gain", D, 0, false, ParamEntry::ones);
    add(p + "mlp_norm/gain", D, 0, false, ParamEntry::ones);
  }
  add("final_norm/gain", D, 0, false, ParamEntry::ones);
  if constexpr (Spec::routed) {
    add("routing/query", L + 1, D, false, ParamEntry::query);
    add("routing/key_gain", L + 1, D, false, ParamEntry::ones);
  }
  if constexpr (Spec::variant == Variant::wav_v1)
    add("routing/detail_bias", L + 1, 2, false, ParamEntry::detail_bias);
  t.total = (t.total + 15) / 16 * 16;
  return t;
}

}  // namespace wavres
