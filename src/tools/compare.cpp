// wavres-compare: tensor-by-tensor comparison of two dumps or two checkpoints (docs/checkpoint-layout.md).
//
//   wavres-compare A.h5 B.h5 [--rtol 1e-5] [--atol 1e-7] [--quiet]
//
// B is the reference. Compared:
//   /config       attributes variant, n_layer, block_sublayers, d_model, n_head, d_ff, vocab_size, seq_len
//   must
//                 be equal (otherwise every difference is printed and nothing else is compared, exit 1);
//   /config step, /batch/tokens, /vocab, /routing/source_labels and every dataset under /train_state (step,
//                 RNG state, schedule)   must be identical;
//   /loss, every float tensor under /params, /grads, /optimizer/m, /optimizer/v, and /routing/alpha_mean:
//                 pass when max|a-b| <= atol + rtol * max|b| and the NaN patterns are identical.
// The set of tensors is the one the layout defines for the /config (variant, n_layer); a tensor or group
// present in one file and not the other is named and counts as a failure.
//
// Output: "A: backend X, B: backend Y", then one line per check (path, shape, max|a-b|, worst relative error
// max|a-b| / max(max|b|, tiny), OK/FAIL; --quiet prints only failures), then "wavres-compare: N passed, M
// failed". Exit status: 0 all pass; 1 a check failed, the tensor sets differ or /config differs; 2 usage
// error or a file that cannot be read as a wavres file (one line "wavres-compare: <file>: <what>").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "wavres/io/hdf5.hpp"

namespace {

using wavres::H5File;
using wavres::IoError;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* const kUsage = "usage: wavres-compare A.h5 B.h5 [--rtol 1e-5] [--atol 1e-7] [--quiet]";

struct Options {
  std::string a, b;
  double rtol = 1e-5, atol = 1e-7;
  bool quiet = false;
  bool help = false;
};

double parse_tolerance(const std::string& opt, const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0)
    throw UsageError(opt + " needs a finite non-negative number, got '" + s + "'");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& opt) -> std::string {
      if (arg.size() > opt.size() && arg.compare(0, opt.size() + 1, opt + "=") == 0)
        return arg.substr(opt.size() + 1);
      if (i + 1 >= argc) throw UsageError(opt + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--quiet" || arg == "-q") {
      o.quiet = true;
    } else if (arg == "--rtol" || arg.rfind("--rtol=", 0) == 0) {
      o.rtol = parse_tolerance("--rtol", value("--rtol"));
    } else if (arg == "--atol" || arg.rfind("--atol=", 0) == 0) {
      o.atol = parse_tolerance("--atol", value("--atol"));
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw UsageError("unknown option " + arg);
    } else {
      files.push_back(arg);
    }
  }
  if (o.help) return o;
  if (files.size() != 2) throw UsageError("expected two files, got " + std::to_string(files.size()));
  o.a = files[0];
  o.b = files[1];
  return o;
}

std::string shape_str(const std::vector<int64_t>& dims) {
  if (dims.empty()) return "scalar";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

// Row-major index -> "[i,j]".
std::string index_str(int64_t flat, const std::vector<int64_t>& dims) {
  if (dims.empty()) return "";
  std::vector<int64_t> idx(dims.size());
  for (size_t k = dims.size(); k-- > 0;) {
    const int64_t d = dims[k] > 0 ? dims[k] : 1;
    idx[k] = flat % d;
    flat /= d;
  }
  return shape_str(idx);
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", x);
  return buf;
}

// ---------------------------------------------------------------------------------------------------------------
// The opened files and their /config

struct Config {
  std::string format, variant, backend;
  int64_t step = -1;                                  // -1: no /config step
  std::vector<std::pair<std::string, int64_t>> ints;  // in kIntAttrs order
};

const char* const kIntAttrs[] = {"n_layer", "block_sublayers", "d_model", "n_head",
                                 "d_ff",    "vocab_size",      "seq_len"};

Config read_config(const H5File& f) {
  if (!f.exists("/config") || !f.has_attr("/config", "format"))
    throw IoError(f.path() + ": not a wavres file (no /config format attribute)");
  Config c;
  c.format = f.attr_string("/config", "format");
  if (c.format != "wavres-checkpoint" && c.format != "wavres-dump")
    throw IoError(f.path() + ": /config format is '" + c.format +
                  "', expected wavres-checkpoint or wavres-dump");
  auto need = [&](const char* name) {
    if (!f.has_attr("/config", name)) throw IoError(f.path() + ": /config lacks attribute " + name);
  };
  need("variant");
  c.variant = f.attr_string("/config", "variant");
  for (const char* name : kIntAttrs) {
    need(name);
    c.ints.emplace_back(name, f.attr_int("/config", name));
  }
  c.backend = f.has_attr("/config", "backend") ? f.attr_string("/config", "backend") : std::string("unknown");
  if (f.has_attr("/config", "step")) c.step = f.attr_int("/config", "step");
  return c;
}

// Tensor names under /params (and the mirrors /grads, /optimizer/m, /optimizer/v) that the layout defines for
// this variant and depth.
std::vector<std::string> param_names(const std::string& variant, int64_t n_layer) {
  std::vector<std::string> n = {"embed/token", "embed/position"};
  for (int64_t i = 0; i < n_layer; ++i) {
    const std::string p = "layers/" + std::to_string(i) + "/";
    for (const char* t : {"attn_norm/gain", "attn/wq", "attn/wk", "attn/wv", "attn/wo", "mlp_norm/gain",
                          "mlp/w_gate", "mlp/w_up", "mlp/w_down"})
      n.push_back(p + t);
  }
  if (variant != "prenorm") {
    n.push_back("routing/query");
    n.push_back("routing/key_gain");
  }
  if (variant == "wav_v1") n.push_back("routing/detail_bias");
  n.push_back("final_norm/gain");
  n.push_back("lm_head");
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Numeric comparison
//
// Criterion (normwise by the largest reference magnitude): a tensor passes if every element satisfies
//     |a - b| <= atol + rtol * max_j |b_j|,
// and its reported relative error is max|a-b| / max(max|b|, tiny).
//
// Why not element-wise |a_i - b_i| / |b_i|: the two sides differ only by float32 rounding (another reduction
// order on another backend, or another thread count). The rounding error of an element is about
// eps * sum_k |terms_k| of the sum that produced it, which is set by the magnitudes of the terms, i.e. by the
// scale of the tensor, not by the size of the result. Elements that come out near zero through cancellation
// (gradients of rarely used embedding rows, of a gain whose contributions cancel, routing weights close to 0)
// carry the same absolute error as their large neighbours, so their element-wise relative error can be 10%,
// 100% or infinite (b_i = 0 exactly on one side) although both results are equally correct. An element-wise
// test would therefore either fail correct results or need a tolerance so loose that it hides real bugs in
// the large entries. Scaling by max|b| measures every error against the scale of the quantities that produced
// it, as check_dump.py does; atol covers tensors that are entirely (close to) zero.

struct NumResult {
  double max_abs = 0, max_b = 0, rel = 0;
  int64_t worst = -1;  // element with the largest |a-b|
  double worst_a = 0, worst_b = 0;
  int64_t nan_mismatch = 0;  // elements NaN on exactly one side
  int64_t first_nan_mismatch = -1;
  bool pass = true;
};

NumResult compare_numeric(const std::vector<double>& a, const std::vector<double>& b, double rtol,
                          double atol) {
  constexpr double kTiny = 1e-30;
  NumResult r;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool na = std::isnan(a[i]), nb = std::isnan(b[i]);
    if (na != nb) {
      if (r.nan_mismatch++ == 0) r.first_nan_mismatch = int64_t(i);
      continue;
    }
    if (na) continue;  // NaN on both sides: same pattern (alpha_mean padding)
    if (std::isfinite(b[i])) r.max_b = std::max(r.max_b, std::fabs(b[i]));
    // equal infinities agree; otherwise an infinity on one side gives an infinite difference
    const double d = (a[i] == b[i]) ? 0.0 : std::fabs(a[i] - b[i]);
    if (d > r.max_abs || (r.worst < 0 && d >= r.max_abs)) {
      r.max_abs = d;
      r.worst = int64_t(i);
      r.worst_a = a[i];
      r.worst_b = b[i];
    }
  }
  r.rel = r.max_abs / std::max(r.max_b, kTiny);
  r.pass = r.nan_mismatch == 0 && std::isfinite(r.max_abs) && r.max_abs <= atol + rtol * r.max_b;
  return r;
}

// ---------------------------------------------------------------------------------------------------------------

class Comparer {
 public:
  Comparer(const Options& o, const H5File& a, const H5File& b) : o_(o), a_(a), b_(b) {}

  int passed() const { return passed_; }
  int failed() const { return failed_; }

  void line(bool ok, const std::string& path, const std::string& shape, const std::string& max_abs,
            const std::string& rel, const std::string& note = "") {
    (ok ? passed_ : failed_)++;
    if (ok && o_.quiet) return;
    char head[512];
    std::snprintf(head, sizeof head, "%-4s %-44s %-10s max|a-b| %-10s rel ", ok ? "OK" : "FAIL", path.c_str(),
                  shape.c_str(), max_abs.c_str());
    std::string out = head;
    if (note.empty()) {
      out += rel;
    } else {
      out += rel + std::string(rel.size() < 10 ? 10 - rel.size() : 0, ' ') + "  " + note;
    }
    std::printf("%s\n", out.c_str());
  }

  void missing(const std::string& path, bool in_a, const std::string& what = "") {
    ++failed_;
    std::printf("FAIL %-44s missing in %s (%s)%s%s\n", path.c_str(), in_a ? "A" : "B",
                (in_a ? a_ : b_).path().c_str(), what.empty() ? "" : ": ", what.c_str());
  }

  // Both present -> true; one present -> reports it missing and returns false; neither -> false.
  bool present(const std::string& path) {
    const bool ia = a_.exists(path), ib = b_.exists(path);
    if (ia && ib) return true;
    if (ia != ib) missing(path, !ia);
    return false;
  }

  void numeric(const std::string& path) {
    const auto da = a_.dims(path), db = b_.dims(path);
    if (da != db) {
      line(false, path, shape_str(db), "-", "-",
           "shape differs: A " + shape_str(da) + ", B " + shape_str(db));
      return;
    }
    const auto va = a_.read_f64(path), vb = b_.read_f64(path);
    const NumResult r = compare_numeric(va, vb, o_.rtol, o_.atol);
    std::string note;
    if (r.nan_mismatch > 0) {
      note = "NaN pattern differs at " + std::to_string(r.nan_mismatch) + " element(s), first " +
             index_str(r.first_nan_mismatch, db);
    } else if (!r.pass && r.worst >= 0) {
      note = "worst " + index_str(r.worst, db) + ": A " + num(r.worst_a) + ", B " + num(r.worst_b) +
             ", max|b| " + num(r.max_b);
    }
    line(r.pass, path, shape_str(db), num(r.max_abs), num(r.rel), note);
  }

  template <class Reader>
  void identical(const std::string& path, Reader read) {
    const auto da = a_.dims(path), db = b_.dims(path);
    if (da != db) {
      line(false, path, shape_str(db), "-", "-",
           "shape differs: A " + shape_str(da) + ", B " + shape_str(db));
      return;
    }
    const auto va = read(a_, path), vb = read(b_, path);
    int64_t ndiff = 0, first = -1;
    for (size_t i = 0; i < va.size() && i < vb.size(); ++i)
      if (!(va[i] == vb[i]) && ndiff++ == 0) first = int64_t(i);
    if (ndiff == 0) {
      line(true, path, shape_str(db), "-", "-", "identical");
    } else {
      line(false, path, shape_str(db), "-", "-",
           "must be identical; differs at " + std::to_string(ndiff) + " of " + std::to_string(vb.size()) +
               " element(s), first " + index_str(first, db));
    }
  }

  // A mirror group of /params ("/grads/", "/optimizer/m/", ...): compared only where at least one file has
  // it; a group present on one side only is one failure naming the group.
  void group(const std::string& prefix, const std::vector<std::string>& names) {
    const std::string g = prefix.substr(0, prefix.size() - 1);
    const bool ia = a_.exists(g), ib = b_.exists(g);
    if (!ia && !ib) return;
    if (ia != ib) {
      missing(g, !ia, "whole group, " + std::to_string(names.size()) + " tensors");
      return;
    }
    for (const auto& n : names) {
      const std::string p = prefix + n;
      if (present(p))
        numeric(p);
      else if (!a_.exists(p) && !b_.exists(p))
        std::fprintf(stderr, "wavres-compare: note: %s is absent from both files\n", p.c_str());
    }
  }

 private:
  const Options& o_;
  const H5File& a_;
  const H5File& b_;
  int passed_ = 0, failed_ = 0;
};

int run(const Options& o) {
  H5File fa(o.a, H5File::Mode::read);
  H5File fb(o.b, H5File::Mode::read);
  const Config ca = read_config(fa), cb = read_config(fb);

  std::printf("A: backend %s, B: backend %s\n", ca.backend.c_str(), cb.backend.c_str());
  if (!o.quiet) {
    std::printf("A = %s (%s, %s)\nB = %s (%s, %s)\nB is the reference; pass: max|a-b| <= %g + %g * max|b|\n",
                o.a.c_str(), ca.format.c_str(), ca.variant.c_str(), o.b.c_str(), cb.format.c_str(),
                cb.variant.c_str(), o.atol, o.rtol);
  }

  // /config: the model must be the same before any tensor comparison means anything.
  int config_diffs = 0;
  if (ca.variant != cb.variant) {
    ++config_diffs;
    std::printf("FAIL /config variant differs: A %s, B %s\n", ca.variant.c_str(), cb.variant.c_str());
  }
  for (size_t k = 0; k < ca.ints.size(); ++k) {
    if (ca.ints[k].second != cb.ints[k].second) {
      ++config_diffs;
      std::printf("FAIL /config %s differs: A %lld, B %lld\n", ca.ints[k].first.c_str(),
                  (long long)ca.ints[k].second, (long long)cb.ints[k].second);
    }
  }
  if (config_diffs > 0) {
    std::printf("wavres-compare: /config differs, tensors not compared\n");
    std::printf("wavres-compare: 0 passed, %d failed\n", config_diffs);
    return 1;
  }

  Comparer c(o, fa, fb);
  const int64_t n_layer = ca.ints[0].second;
  const auto names = param_names(ca.variant, n_layer);

  // the training position: two checkpoints of one run at different steps are different checkpoints
  c.line(ca.step == cb.step, "/config@step", "scalar", "-", "-",
         ca.step == cb.step ? "identical"
                            : "differs: A " + std::to_string(ca.step) + ", B " + std::to_string(cb.step));
  std::set<std::string> state;
  for (const H5File* f : {&fa, &fb})
    for (const auto& d : f->datasets())
      if (d.rfind("/train_state/", 0) == 0) state.insert(d);
  for (const auto& p : state) {
    if (!c.present(p)) continue;
    if (fb.dtype(p) == "float64" || fb.dtype(p) == "float32")
      c.identical(p, [](const H5File& f, const std::string& q) { return f.read_f64(q); });
    else if (fb.dtype(p) == "uint64")
      c.identical(p, [](const H5File& f, const std::string& q) { return f.read_u64(q); });
    else
      c.identical(p, [](const H5File& f, const std::string& q) { return f.read_i64(q); });
  }
  if (c.present("/batch/tokens"))
    c.identical("/batch/tokens", [](const H5File& f, const std::string& p) { return f.read_i64(p); });
  if (c.present("/vocab"))
    c.identical("/vocab", [](const H5File& f, const std::string& p) { return f.read_u8(p); });
  if (c.present("/loss")) c.numeric("/loss");
  if (!fa.exists("/params") && !fb.exists("/params"))
    throw IoError(o.a + ": no /params (nor in " + o.b + ")");
  for (const char* prefix : {"/params/", "/grads/", "/optimizer/m/", "/optimizer/v/"}) c.group(prefix, names);
  if (c.present("/routing/alpha_mean")) c.numeric("/routing/alpha_mean");
  if (c.present("/routing/source_labels"))
    c.identical("/routing/source_labels",
                [](const H5File& f, const std::string& p) { return f.read_strings(p); });

  std::printf("wavres-compare: %d passed, %d failed\n", c.passed(), c.failed());
  return c.failed() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "wavres-compare: %s (%s)\n", e.what(), kUsage);
    return 2;
  }
  if (o.help) {
    std::printf("%s\n", kUsage);
    return 0;
  }
  try {
    return run(o);
  } catch (const IoError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "wavres-compare: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "wavres-compare: %s\n", e.what());
    return 2;
  }
}
