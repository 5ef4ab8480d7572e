// The canonical source list of every consumer (spec §3–§5), as indices into the model's source bank.
// Consumer c = l-1 is sublayer l (l = 1..L); consumer L is the output.
#pragma once
#include <string>
#include <vector>
#include "wavres/routing/variant.hpp"

namespace wavres {

enum SourceKind : int { kSummary = 0, kPhase = 1, kSplit = 2 };

struct SourceList {
  std::vector<int> start;  // [L+2]: consumer c owns entries start[c] .. start[c+1]-1
  std::vector<int> bank;   // bank index of each entry
  std::vector<int> kind;   // SourceKind of each entry
  std::vector<std::string> label;
  int count(int c) const { return start[c + 1] - start[c]; }
  int max_count() const {
    int m = 0;
    for (size_t c = 0; c + 1 < start.size(); ++c) m = count(int(c)) > m ? count(int(c)) : m;
    return m;
  }
  int total() const { return int(bank.size()); }
};

// Bank slots.  Full: slot j = v_j.  Block/WAV: slot 0 = b0, slot (n-1)S+i = b_n^i (so slot nS = b_n);
// WAV: slot L+1+2(n-1) = phase~_n, slot L+2+2(n-1) = split~_n.
template <class Spec>
constexpr int phase_slot(int n) {  // π̃_n, n = 1..N
  return Spec::L + 1 + 2 * (n - 1);
}
template <class Spec>
constexpr int split_slot(int n) {  // σ̃_n
  return Spec::L + 2 + 2 * (n - 1);
}

template <class Spec>
SourceList make_source_list() {
  constexpr int L = Spec::L, S = Spec::S;
  SourceList s;
  auto add = [&](int slot, int kind, std::string label) {
    s.bank.push_back(slot);
    s.kind.push_back(kind);
    s.label.push_back(std::move(label));
  };
  for (int c = 0; c <= L; ++c) {
    s.start.push_back(int(s.bank.size()));
    if constexpr (Spec::variant == Variant::full_attnres) {
      for (int j = 0; j <= c; ++j) add(j, kSummary, j == 0 ? "x0" : "y" + std::to_string(j));
    } else if constexpr (is_blocked(Spec::variant)) {
      const int l = c + 1;                                  // sublayer number; L+1 for the output
      const int n = c < L ? (l - 1) / S + 1 : Spec::N + 1;  // output behaves like position 1 of block N+1
      const int i = c < L ? (l - 1) % S + 1 : 1;
      add(0, kSummary, "b0");
      for (int m = 1; m < n; ++m) {
        add(m * S, kSummary, "b" + std::to_string(m));
        if constexpr (Spec::variant == Variant::wav_v1) {
          add(phase_slot<Spec>(m), kPhase, "phase" + std::to_string(m));
          add(split_slot<Spec>(m), kSplit, "split" + std::to_string(m));
        }
      }
      if (i >= 2) add((n - 1) * S + i - 1, kSummary, "partial");
    }
  }
  s.start.push_back(int(s.bank.size()));
  return s;
}

}  // namespace wavres
