// wavres-inspect CKPT [--csv]: a human-readable summary of a wavres checkpoint or dump (configuration, run
// metadata, parameter counts per group, and the learned depth routing of the routed variants), or with --csv
// the per-consumer routing table as CSV. Reads the pinned HDF5 layout (../shared/docs/checkpoint-layout.md)
// through H5File only.
//
// Exit status: 0 ok; 1 the file is missing, unreadable, not HDF5, or not a wavres checkpoint/dump (one line
// on stderr, "wavres-inspect: <file>: <what>"); 2 bad usage.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "wavres/io/checksum.hpp"
#include "wavres/io/hdf5.hpp"

namespace {

using wavres::H5File;
using wavres::IoError;

constexpr const char* kProg = "wavres-inspect";
// Per-block (or per-update) columns are printed in the human table only up to this many.
constexpr int kMaxDetailColumns = 12;

std::string usage() {
  return std::string("usage: ") + kProg +
         " CKPT [--csv]\n"
         "  Summarises a wavres checkpoint or dump (HDF5): configuration, run metadata, parameter counts "
         "per\n"
         "  group, and for routed variants the learned routing (/routing/alpha_mean) per consumer.\n"
         "  --csv   print only the per-consumer routing table as CSV, full precision:\n"
         "          consumer,kind,<source label...>,entropy[,phase_bias,split_bias]\n";
}

// ------------------------------------------------------------------------------------------------------------
// formatting helpers

std::string fixed(double x, int prec) {
  if (std::isnan(x)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, x);
  return buf;
}

std::string full(double x, int digits) {  // round-trip precision: 9 digits for float32, 17 for float64
  if (std::isnan(x)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  return buf;
}

std::string grouped(int64_t n) {  // 1234567 -> 1,234,567
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string dims_str(const std::vector<int64_t>& d) {
  if (d.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

std::string pad_right(const std::string& s, size_t w) {
  return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}
std::string pad_left(const std::string& s, size_t w) {
  return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}

// CSV field: quoted only if needed.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// One line, printable ASCII: control characters and bytes >= 0x80 escaped (attributes such as command_line
// are free text; a vocabulary lists single bytes of UTF-8 text, which are not valid UTF-8 on their own).
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else
      out += char(c);
  }
  return out;
}

int64_t product(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

// ------------------------------------------------------------------------------------------------------------
// the file

struct Config {
  std::string format, variant, dataset, backend;
  int64_t format_version = -1, n_layer = 0, block_sublayers = 0, d_model = 0, n_head = 0, d_ff = 0,
          vocab_size = 0, seq_len = 0, step = 0;
  int64_t L() const { return 2 * n_layer; }
  bool routed() const { return variant != "prenorm"; }
  bool is_dump() const { return format == "wavres-dump"; }
};

// Checks that this is a wavres checkpoint or dump and reads /config (a missing attribute is an IoError).
Config read_config(const H5File& f) {
  if (!f.exists("/config") || !f.has_attr("/config", "format"))
    throw IoError(f.path() + ": not a wavres checkpoint or dump (no /config format attribute)");
  Config c;
  c.format = f.attr_string("/config", "format");
  if (c.format != "wavres-checkpoint" && c.format != "wavres-dump")
    throw IoError(f.path() + ": not a wavres checkpoint or dump (/config format is '" + printable(c.format) +
                  "', expected wavres-checkpoint or wavres-dump)");
  if (f.has_attr("/config", "format_version")) c.format_version = f.attr_int("/config", "format_version");
  c.variant = f.attr_string("/config", "variant");
  c.n_layer = f.attr_int("/config", "n_layer");
  c.block_sublayers = f.attr_int("/config", "block_sublayers");
  c.d_model = f.attr_int("/config", "d_model");
  c.n_head = f.attr_int("/config", "n_head");
  c.d_ff = f.attr_int("/config", "d_ff");
  c.vocab_size = f.attr_int("/config", "vocab_size");
  c.seq_len = f.attr_int("/config", "seq_len");
  c.dataset = f.attr_string("/config", "dataset");
  c.backend = f.attr_string("/config", "backend");
  c.step = f.attr_int("/config", "step");
  if (c.n_layer <= 0 || c.n_layer > 100000)
    throw IoError(f.path() + ": /config n_layer is " + std::to_string(c.n_layer));
  return c;
}

// The known tensors under /params, by group (checkpoint-layout.md).
struct ParamPath {
  std::string group, path;  // path relative to /params/
};

const std::vector<std::string> kGroups = {"embeddings", "attention", "mlp", "norms", "lm_head", "routing"};

std::vector<ParamPath> known_params(const Config& c) {
  std::vector<ParamPath> p;
  p.push_back({"embeddings", "embed/token"});
  p.push_back({"embeddings", "embed/position"});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string l = "layers/" + std::to_string(i) + "/";
    p.push_back({"norms", l + "attn_norm/gain"});
    for (const char* w : {"wq", "wk", "wv", "wo"}) p.push_back({"attention", l + "attn/" + w});
    p.push_back({"norms", l + "mlp_norm/gain"});
    for (const char* w : {"w_gate", "w_up", "w_down"}) p.push_back({"mlp", l + "mlp/" + w});
  }
  p.push_back({"norms", "final_norm/gain"});
  p.push_back({"lm_head", "lm_head"});
  if (c.routed()) {
    p.push_back({"routing", "routing/query"});
    p.push_back({"routing", "routing/key_gain"});
  }
  if (c.variant == "wav_v1") p.push_back({"routing", "routing/detail_bias"});
  return p;
}

// ------------------------------------------------------------------------------------------------------------
// routing

// Source kinds as they appear in /routing/source_labels.
enum class Kind { embedding, block, phase, split, partial, update, other };

struct LabelInfo {
  Kind kind = Kind::other;
  int index = 0;  // block m of b<m>/phase<m>/split<m>, update l of y<l>
};

bool parse_suffix(const std::string& s, const std::string& prefix, int& idx) {
  if (s.size() <= prefix.size() || s.compare(0, prefix.size(), prefix) != 0) return false;
  int v = 0;
  for (size_t i = prefix.size(); i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || v > 10000000) return false;
    v = v * 10 + (s[i] - '0');
  }
  idx = v;
  return true;
}

LabelInfo classify(const std::string& s) {
  LabelInfo li;
  int k = 0;
  if (s == "b0" || s == "x0")
    li.kind = Kind::embedding;
  else if (s == "partial")
    li.kind = Kind::partial;
  else if (parse_suffix(s, "phase", k))
    li = {Kind::phase, k};
  else if (parse_suffix(s, "split", k))
    li = {Kind::split, k};
  else if (parse_suffix(s, "b", k))
    li = {Kind::block, k};
  else if (parse_suffix(s, "y", k))
    li = {Kind::update, k};
  return li;
}

// Canonical column order for the union of labels: embedding, then per block b/phase/split (or y<l>), then
// partial, then anything unknown in order of first appearance.
std::vector<std::string> label_union(const std::vector<std::string>& labels) {
  std::vector<std::string> seen;
  for (const auto& s : labels)
    if (!s.empty() && std::find(seen.begin(), seen.end(), s) == seen.end()) seen.push_back(s);
  auto key = [&](const std::string& s) {
    const LabelInfo li = classify(s);
    const int64_t appear = std::find(seen.begin(), seen.end(), s) - seen.begin();
    switch (li.kind) {
      case Kind::embedding:
        return std::make_tuple(0, int64_t(0), 0);
      case Kind::block:
        return std::make_tuple(1, int64_t(li.index), 0);
      case Kind::update:
        return std::make_tuple(1, int64_t(li.index), 0);
      case Kind::phase:
        return std::make_tuple(1, int64_t(li.index), 1);
      case Kind::split:
        return std::make_tuple(1, int64_t(li.index), 2);
      case Kind::partial:
        return std::make_tuple(2, int64_t(0), 0);
      default:
        return std::make_tuple(3, appear, 0);
    }
  };
  std::stable_sort(seen.begin(), seen.end(),
                   [&](const std::string& a, const std::string& b) { return key(a) < key(b); });
  return seen;
}

struct Consumer {
  std::string name, kind;           // "l3", "attn" | "mlp" | "out"
  std::map<std::string, double> w;  // label -> mean weight
  double by_kind[7] = {0, 0, 0, 0, 0, 0, 0};
  bool has_kind[7] = {false, false, false, false, false, false, false};
  std::map<int, double> block_w, update_w;  // b<m> / y<l> weights
  int n = 0;                                // number of sources
  double sum = 0, entropy = 0;
  bool nan_weight = false;  // a labelled source with a NaN weight
  double phase_bias = NAN, split_bias = NAN;
};

struct Routing {
  int64_t rows = 0, cols = 0;
  std::vector<std::string> columns;  // union of labels, canonical order
  std::vector<Consumer> consumers;
  bool has_bias = false;
  int max_block = 0, max_update = 0;
  bool any_other = false;
};

Routing read_routing(const H5File& f, const Config& c) {
  const std::string A = "/routing/alpha_mean", S = "/routing/source_labels";
  if (!f.exists(A)) throw IoError(f.path() + ": " + c.variant + " file has no " + A);
  if (!f.exists(S)) throw IoError(f.path() + ": " + c.variant + " file has no " + S);
  const auto da = f.dims(A), ds = f.dims(S);
  if (da.size() != 2 || da[0] != c.L() + 1)
    throw IoError(f.path() + ": " + A + " has shape " + dims_str(da) + ", expected [" +
                  std::to_string(c.L() + 1) + ", n_max]");
  if (ds != da)
    throw IoError(f.path() + ": " + S + " has shape " + dims_str(ds) + ", " + A + " " + dims_str(da));
  const auto alpha = f.read_f32(A);
  const auto labels = f.read_strings(S);
  Routing r;
  r.rows = da[0];
  r.cols = da[1];
  r.columns = label_union(labels);
  std::vector<float> bias;
  const std::string B = "/params/routing/detail_bias";
  if (c.variant == "wav_v1" && f.exists(B)) {
    const auto db = f.dims(B);
    if (db != std::vector<int64_t>{c.L() + 1, 2})
      throw IoError(f.path() + ": " + B + " has shape " + dims_str(db) + ", expected " +
                    std::to_string(c.L() + 1) + "x2");
    bias = f.read_f32(B);
    r.has_bias = true;
  }
  for (int64_t row = 0; row < r.rows; ++row) {
    Consumer k;
    if (row < c.L()) {
      k.name = "l" + std::to_string(row + 1);
      k.kind = (row % 2 == 0) ? "attn" : "mlp";
    } else {
      k.name = "out";
      k.kind = "out";
    }
    for (int64_t j = 0; j < r.cols; ++j) {
      const std::string& lab = labels[size_t(row * r.cols + j)];
      const double a = alpha[size_t(row * r.cols + j)];
      if (lab.empty()) continue;
      ++k.n;
      if (std::isnan(a)) {
        k.nan_weight = true;
        continue;
      }
      k.w[lab] += a;
      const LabelInfo li = classify(lab);
      k.by_kind[int(li.kind)] += a;
      k.has_kind[int(li.kind)] = true;
      if (li.kind == Kind::block) {
        k.block_w[li.index] += a;
        r.max_block = std::max(r.max_block, li.index);
      }
      if (li.kind == Kind::update) {
        k.update_w[li.index] += a;
        r.max_update = std::max(r.max_update, li.index);
      }
      if (li.kind == Kind::other) r.any_other = true;
      k.sum += a;
      if (a > 0) k.entropy -= a * std::log(a);
    }
    if (r.has_bias) {
      k.phase_bias = bias[size_t(row * 2)];
      k.split_bias = bias[size_t(row * 2 + 1)];
    }
    r.consumers.push_back(std::move(k));
  }
  return r;
}

// ------------------------------------------------------------------------------------------------------------
// output

void print_csv(std::ostream& out, const Config& c, const Routing* r) {
  out << "consumer,kind";
  if (r)
    for (const auto& s : r->columns) out << "," << csv_field(s);
  out << ",entropy";
  if (r && r->has_bias) out << ",phase_bias,split_bias";
  out << "\n";
  if (!r) return;  // prenorm: no learned routing, header only
  (void)c;
  for (const auto& k : r->consumers) {
    out << k.name << "," << k.kind;
    for (const auto& s : r->columns) {
      out << ",";
      auto it = k.w.find(s);
      if (it != k.w.end()) out << full(it->second, 9);
    }
    out << "," << full(k.entropy, 17);
    if (r->has_bias) out << "," << full(k.phase_bias, 9) << "," << full(k.split_bias, 9);
    out << "\n";
  }
}

void kv(std::ostream& out, const std::string& k, const std::string& v) {
  out << "  " << pad_right(k, 17) << v << "\n";
}

void print_config(std::ostream& out, const H5File& f, const Config& c, int verified) {
  out << "file " << f.path() << "\n";
  out << "[config]\n";
  kv(out, "format",
     c.format + (c.format_version >= 0 ? " (format_version " + std::to_string(c.format_version) + ")" : ""));
  kv(out, "checksums",
     std::to_string(verified) + " datasets verified" +
         (c.format_version >= 2 ? " (every tensor, /vocab and /train_state carry one)" : ""));
  kv(out, "variant", c.variant);
  kv(out, "n_layer", std::to_string(c.n_layer) + "  (L = " + std::to_string(c.L()) + " sublayers)");
  std::string bs = std::to_string(c.block_sublayers);
  if (c.block_sublayers > 0) bs += "  (N = " + std::to_string(c.L() / c.block_sublayers) + " blocks)";
  kv(out, "block_sublayers", bs);
  kv(out, "d_model", std::to_string(c.d_model));
  kv(out, "n_head",
     std::to_string(c.n_head) +
         (c.n_head > 0 ? "  (head_dim " + std::to_string(c.d_model / c.n_head) + ")" : ""));
  kv(out, "d_ff", std::to_string(c.d_ff));
  kv(out, "vocab_size", std::to_string(c.vocab_size));
  kv(out, "seq_len", std::to_string(c.seq_len));
  kv(out, "dataset", printable(c.dataset));
  kv(out, "backend", printable(c.backend));
  kv(out, "step", std::to_string(c.step));

  if (f.exists("/run")) {
    out << "[run]\n";
    for (const char* a :
         {"git_revision", "build_type", "backend", "threads", "ranks", "command_line", "start_time"}) {
      if (!f.has_attr("/run", a)) continue;
      std::string v;
      if (std::string(a) == "threads" || std::string(a) == "ranks")
        v = std::to_string(f.attr_int("/run", a));
      else
        v = printable(f.attr_string("/run", a));
      kv(out, a, v);
    }
  }

  if (f.exists("/vocab")) {
    const auto v = f.read_u8("/vocab");
    std::string s;
    for (auto b : v) s += char(b);
    std::string shown = printable(s);
    if (shown.size() > 100) shown = shown.substr(0, 100) + "...";
    out << "[vocab]\n";
    kv(out, "bytes", std::to_string(v.size()) + "  \"" + shown + "\"");
  }

  if (c.is_dump()) {
    out << "[dump]\n";
    if (f.exists("/loss")) {
      const auto l = f.read_f64("/loss");
      if (l.size() == 1)
        kv(out, "loss", fixed(l[0], 7) + " nats  (" + fixed(l[0] / std::log(2.0), 5) + " bits/char)");
    } else {
      kv(out, "loss", "(missing /loss)");
    }
    if (f.exists("/batch/tokens")) {
      const auto d = f.dims("/batch/tokens");
      std::string s = dims_str(d);
      if (d.size() == 2)
        s += "  (" + std::to_string(d[0]) + " sequences x " + std::to_string(d[1] - 1) + " targets)";
      kv(out, "batch/tokens", s);
    }
  } else {
    out << "[checkpoint]\n";
    kv(out, "optimizer state",
       f.exists("/optimizer/m") && f.exists("/optimizer/v") ? "AdamW m, v" : "(missing)");
    if (f.exists("/train_state")) {
      auto scalar = [&](const char* name) -> std::string {
        const std::string p = std::string("/train_state/") + name;
        if (!f.exists(p)) return "";
        const auto v = f.read_i64(p);
        return v.size() == 1 ? std::to_string(v[0]) : "";
      };
      const std::string total = scalar("total_steps"), warm = scalar("warmup_steps"),
                        toks = scalar("tokens_seen");
      if (!total.empty()) kv(out, "total_steps", total + (warm.empty() ? "" : "  (warm-up " + warm + ")"));
      if (f.exists("/train_state/lr_peak")) {
        const auto lr = f.read_f64("/train_state/lr_peak");
        if (lr.size() == 1) kv(out, "lr_peak", full(lr[0], 6));
      }
      if (!toks.empty()) kv(out, "tokens_seen", grouped(std::stoll(toks)));
    }
  }
}

void print_params(std::ostream& out, const H5File& f, const Config& c) {
  std::map<std::string, int64_t> count;
  std::vector<std::string> missing;
  int64_t total = 0;
  for (const auto& p : known_params(c)) {
    const std::string path = "/params/" + p.path;
    if (!f.exists(path)) {
      missing.push_back(path);
      continue;
    }
    const int64_t n = product(f.dims(path));
    count[p.group] += n;
    total += n;
  }
  out << "[parameters]  (from the known /params paths)\n";
  for (const auto& g : kGroups) {
    if (g == "routing" && !c.routed()) continue;
    const int64_t n = count[g];
    out << "  " << pad_right(g, 17) << pad_left(grouped(n), 13) << "  "
        << pad_left(fixed(total > 0 ? 100.0 * double(n) / double(total) : 0.0, 2), 6) << " %\n";
  }
  out << "  " << pad_right("total", 17) << pad_left(grouped(total), 13) << "\n";
  if (!missing.empty())
    out << "  warning: " << missing.size() << " known tensor(s) missing, first " << missing.front() << "\n";

  if (c.is_dump() && f.exists("/grads")) {
    double ss = 0;
    bool all = true;
    for (const auto& p : known_params(c)) {
      const std::string path = "/grads/" + p.path;
      if (!f.exists(path)) {
        all = false;
        continue;
      }
      for (float g : f.read_f32(path)) ss += double(g) * double(g);
    }
    kv(out, "grad norm", full(std::sqrt(ss), 7) + (all ? "" : "  (some /grads tensors missing)"));
  }
}

void print_routing(std::ostream& out, const Config& c, const Routing& r) {
  out << "[routing]  /routing/alpha_mean [" << r.rows << " x " << r.cols
      << "]: mean mixer weight per consumer and "
      << "source kind\n";
  out << "  note: alpha_mean is a batch mean, so 'entropy' is the entropy of the mean weights in nats "
         "(-sum a log a over the consumer's sources; at most log n), not the mean per-token entropy\n";

  const bool full_variant = c.variant == "full_attnres";
  // Which columns exist at all.
  bool has[7] = {false, false, false, false, false, false, false};
  for (const auto& k : r.consumers)
    for (int i = 0; i < 7; ++i) has[i] = has[i] || k.has_kind[i];
  const bool per_block = !full_variant && r.max_block >= 1 && r.max_block <= kMaxDetailColumns;
  const bool per_update = full_variant && r.max_update >= 1 && r.max_update <= kMaxDetailColumns;

  struct Col {
    std::string head;
    std::function<std::string(const Consumer&)> cell;
  };
  std::vector<Col> cols;
  auto kind_col = [&](const std::string& head, Kind kd) {
    cols.push_back({head, [kd](const Consumer& k) {
                      return k.has_kind[int(kd)] ? fixed(k.by_kind[int(kd)], 4) : std::string("-");
                    }});
  };
  cols.push_back({"n", [](const Consumer& k) { return std::to_string(k.n); }});
  kind_col(full_variant ? "x0" : "b0", Kind::embedding);
  if (full_variant) {
    kind_col("y_sum", Kind::update);
    if (per_update)
      for (int l = 1; l <= r.max_update; ++l)
        cols.push_back({"y" + std::to_string(l), [l](const Consumer& k) {
                          auto it = k.update_w.find(l);
                          return it == k.update_w.end() ? std::string("-") : fixed(it->second, 4);
                        }});
  } else {
    if (has[int(Kind::block)]) kind_col("blocks", Kind::block);
    if (per_block)
      for (int m = 1; m <= r.max_block; ++m)
        cols.push_back({"b" + std::to_string(m), [m](const Consumer& k) {
                          auto it = k.block_w.find(m);
                          return it == k.block_w.end() ? std::string("-") : fixed(it->second, 4);
                        }});
    if (has[int(Kind::phase)] || c.variant == "wav_v1") kind_col("phase", Kind::phase);
    if (has[int(Kind::split)] || c.variant == "wav_v1") kind_col("split", Kind::split);
    kind_col("partial", Kind::partial);
  }
  if (has[int(Kind::update)] && !full_variant) kind_col("y_sum", Kind::update);
  if (r.any_other) kind_col("other", Kind::other);
  cols.push_back({"entropy", [](const Consumer& k) { return fixed(k.entropy, 4); }});
  cols.push_back(
      {"log n", [](const Consumer& k) { return fixed(k.n > 0 ? std::log(double(k.n)) : 0.0, 4); }});
  if (r.has_bias) {
    cols.push_back({"phase_bias", [](const Consumer& k) { return fixed(k.phase_bias, 4); }});
    cols.push_back({"split_bias", [](const Consumer& k) { return fixed(k.split_bias, 4); }});
  }

  std::vector<size_t> w(cols.size());
  for (size_t i = 0; i < cols.size(); ++i) {
    w[i] = std::max<size_t>(cols[i].head.size(), 6);
    for (const auto& k : r.consumers) w[i] = std::max(w[i], cols[i].cell(k).size());
  }
  const size_t cw = 10;
  out << "  " << pad_right("consumer", cw);
  for (size_t i = 0; i < cols.size(); ++i) out << "  " << pad_left(cols[i].head, w[i]);
  out << "\n";
  bool bad_sum = false, any_nan = false;
  for (const auto& k : r.consumers) {
    out << "  " << pad_right(k.kind == "out" ? std::string("out") : k.name + " " + k.kind, cw);
    for (size_t i = 0; i < cols.size(); ++i) out << "  " << pad_left(cols[i].cell(k), w[i]);
    out << "\n";
    if (k.nan_weight)
      any_nan = true;
    else if (std::fabs(k.sum - 1.0) > 1e-3)
      bad_sum = true;
  }
  if (per_block || per_update)
    out << "  (" << (full_variant ? "y_sum = y1+...+yL" : "blocks = b1+...+bN") << "; per-"
        << (full_variant ? "update" : "block")
        << " columns follow it; '-' = not a source of that consumer)\n";
  else
    out << "  ('-' = not a source of that consumer)\n";
  if (r.has_bias)
    out << "  detail biases: /params/routing/detail_bias (logit added to every phase / split source; init "
           "-2)\n";
  if (any_nan) out << "  warning: some consumers have NaN weights on labelled sources\n";
  if (bad_sum) out << "  warning: some consumers' weights do not sum to 1\n";
}

std::string strip_path(const std::string& what, const std::string& path) {
  const std::string p = path + ": ";
  if (what.compare(0, p.size(), p) == 0) return what.substr(p.size());
  return what;
}

}  // namespace

int main(int argc, char** argv) {
  std::string file;
  bool csv = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << usage();
      return 0;
    }
    if (a == "--csv") {
      csv = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::cerr << kProg << ": unknown option " << a << "\n" << usage();
      return 2;
    } else if (file.empty()) {
      file = a;
    } else {
      std::cerr << kProg << ": more than one file given (" << file << ", " << a << ")\n" << usage();
      return 2;
    }
  }
  if (file.empty()) {
    std::cerr << kProg << ": no file given\n" << usage();
    return 2;
  }

  std::ostringstream out;  // printed only when the whole file was read
  try {
    H5File f(file, H5File::Mode::read);
    const Config c = read_config(f);
    // fnv1a64 of every dataset that has one; from format version 2 on these must have one
    std::vector<std::string> required;
    if (c.format_version >= 2) required = {"/params/", "/optimizer/", "/grads/", "/vocab", "/train_state/"};
    const int verified = wavres::verify_all_checksums(f, required);
    std::unique_ptr<Routing> r;
    if (c.routed()) r = std::make_unique<Routing>(read_routing(f, c));
    if (csv) {
      print_csv(out, c, r.get());
    } else {
      print_config(out, f, c, verified);
      print_params(out, f, c);
      if (r)
        print_routing(out, c, *r);
      else
        out << "[routing]  none: " << c.variant << " has no learned routing (h_{l+1} = h_l + y_l)\n";
    }
  } catch (const std::exception& e) {
    std::string what = printable(strip_path(e.what(), file));
    std::cerr << kProg << ": " << file << ": " << what << "\n";
    return 1;
  }
  std::cout << out.str();
  std::cout.flush();
  return std::cout ? 0 : 1;
}
