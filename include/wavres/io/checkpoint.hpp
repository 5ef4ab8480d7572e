// Checkpoints and dumps in the pinned HDF5 layout (../shared/docs/checkpoint-layout.md).
// Files are built in memory, written to "<path>.tmp" and renamed into place only when complete, so a crash or
// a full disk never leaves a half-written file under the real name.
//
// Format versions (/config format_version): 1 = tensors carry fnv1a64 checksums; 2 (written now) = /vocab and
// every /train_state dataset carry them too, and every checksum is required. Version 1 files are read (their
// tensors verified where a checksum is present, /vocab and /train_state range-checked only); newer versions
// are refused.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>
#include "wavres/data/corpus.hpp"
#include "wavres/io/checksum.hpp"
#include "wavres/io/hdf5.hpp"
#include "wavres/model/params.hpp"
#include "wavres/routing/variant.hpp"

namespace wavres {

struct RunMeta {
  std::string git_rev, build_type, backend, command_line, start_time;
  int64_t threads = 0;
  int64_t ranks = 1;  // processes of a data-parallel run (dist/comm.hpp)
};

// Everything a bit-identical resume needs besides params and moments.
struct TrainState {
  int64_t step = 0;  // optimizer steps taken
  int64_t total_steps = 0;
  int64_t warmup_steps = 0;
  double lr_peak = 0;
  uint64_t seed = 0;
  std::array<uint64_t, 4> data_rng{};
  int64_t tokens_seen = 0;
};

constexpr int64_t kFormatVersion = 2;

// FNV-1a (64 bit) over a tensor's float32 bytes (io/checksum.hpp), the attribute "fnv1a64" of every tensor.
inline int64_t fnv1a64(const float* p, size_t n) {
  return fnv1a64_bytes(p, n * sizeof(float));
}

// /config format_version, checked: 1 .. kFormatVersion.
inline int64_t format_version(const H5File& f) {
  if (!f.has_attr("/config", "format_version")) throw IoError(f.path() + ": /config has no format_version");
  const int64_t v = f.attr_int("/config", "format_version");
  if (v < 1 || v > kFormatVersion)
    throw IoError(f.path() + ": format_version " + std::to_string(v) +
                  " is not readable by this build (it reads 1 to " + std::to_string(kFormatVersion) + ")");
  return v;
}

// Test hook for the disk-full path: WAVRES_INJECT_WRITE_FAILURE=N makes the N-th tensor write of this process
// fail as a full disk would.
inline void maybe_inject_write_failure(const std::string& file) {
  static long count = 0;
  static const long at = [] {
    const char* e = std::getenv("WAVRES_INJECT_WRITE_FAILURE");
    return e ? std::atol(e) : 0L;
  }();
  if (at > 0 && ++count == at)
    throw IoError(file + ": No space left on device (injected by WAVRES_INJECT_WRITE_FAILURE)");
}

// Host copy of a flat device buffer, as float32 per table entry.
template <class View>
std::vector<float> entry_as_f32(const View& host, const ParamEntry& e) {
  std::vector<float> out(size_t(e.size()));
  for (int64_t k = 0; k < e.size(); ++k) out[size_t(k)] = float(host(e.offset + k));
  return out;
}

template <class Spec>
void write_config(H5File& f, const std::string& format, const Dims& d, const std::string& dataset,
                  const std::string& backend, int64_t step) {
  f.set_attr("/config", "format", format);
  f.set_attr("/config", "format_version", kFormatVersion);
  f.set_attr("/config", "variant", std::string(variant_name(Spec::variant)));
  f.set_attr("/config", "n_layer", int64_t(Spec::n_layer));
  f.set_attr("/config", "block_sublayers", int64_t(Spec::S));
  f.set_attr("/config", "d_model", int64_t(d.D));
  f.set_attr("/config", "n_head", int64_t(d.H));
  f.set_attr("/config", "d_ff", int64_t(d.F));
  f.set_attr("/config", "vocab_size", int64_t(d.V));
  f.set_attr("/config", "seq_len", int64_t(d.T));
  f.set_attr("/config", "dataset", dataset);
  f.set_attr("/config", "backend", backend);
  f.set_attr("/config", "step", step);
}

inline void write_run_meta(H5File& f, const RunMeta& m) {
  f.set_attr("/run", "git_revision", m.git_rev);
  f.set_attr("/run", "build_type", m.build_type);
  f.set_attr("/run", "backend", m.backend);
  f.set_attr("/run", "threads", m.threads);
  f.set_attr("/run", "ranks", m.ranks);
  f.set_attr("/run", "command_line", m.command_line);
  f.set_attr("/run", "start_time", m.start_time);
}

// Writes every table entry of a flat buffer under prefix ("/params/", "/grads/", "/optimizer/m/", ...).
template <class Flat>
void write_flat(H5File& f, const std::string& prefix, const ParamTable& t, const Flat& device_buffer) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), device_buffer);
  for (auto& e : t.entries) {
    auto v = entry_as_f32(h, e);
    maybe_inject_write_failure(f.path());
    write_checked(f, prefix + e.name, v.data(), e.dims());
  }
}

// Reads every table entry from prefix into a flat device buffer; a missing tensor, a shape mismatch or a bad
// checksum (a missing one from format version 2 on) is an IoError naming the file and the tensor.
template <class Flat>
void read_flat(const H5File& f, const std::string& prefix, const ParamTable& t, const Flat& device_buffer) {
  auto h = Kokkos::create_mirror_view(device_buffer);
  Kokkos::deep_copy(h, typename Flat::non_const_value_type(0));
  for (auto& e : t.entries) {
    const std::string path = prefix + e.name;
    if (!f.exists(path)) throw IoError(f.path() + ": missing tensor " + path);
    auto dims = f.dims(path);
    if (dims != e.dims()) {
      std::string want, got;
      for (auto x : e.dims()) want += (want.empty() ? "" : "x") + std::to_string(x);
      for (auto x : dims) got += (got.empty() ? "" : "x") + std::to_string(x);
      throw IoError(f.path() + ": " + path + " has shape " + got + ", expected " + want);
    }
    if (f.dtype(path) != "float32")
      throw IoError(f.path() + ": " + path + " is " + f.dtype(path) + ", expected float32");
    verify_checksum(f, path, format_version(f) >= 2);
    auto v = f.read_f32(path);
    for (int64_t k = 0; k < e.size(); ++k)
      h(e.offset + k) = typename Flat::non_const_value_type(v[size_t(k)]);
  }
  Kokkos::deep_copy(device_buffer, h);
}

inline void write_vocab(H5File& f, const Vocab& v) {
  write_checked(f, "/vocab", v.bytes.data(), {int64_t(v.bytes.size())});
}

// The vocabulary, checked: 1-D, 1..256 sorted distinct bytes, as many as /config vocab_size, checksum.
inline Vocab read_vocab(const H5File& f) {
  if (!f.exists("/vocab")) throw IoError(f.path() + ": missing /vocab");
  const auto dims = f.dims("/vocab");  // before reading: a corrupt size must not allocate gigabytes
  if (dims.size() != 1 || dims[0] < 1 || dims[0] > 256)
    throw IoError(
        f.path() + ": /vocab must hold 1 to 256 bytes, it has shape " +
        (dims.empty() ? std::string("scalar") : std::to_string(dims[0]) + (dims.size() > 1 ? "x..." : "")));
  if (f.attr_int("/config", "vocab_size") != dims[0])
    throw IoError(f.path() + ": /vocab has " + std::to_string(dims[0]) + " entries, /config vocab_size is " +
                  std::to_string(f.attr_int("/config", "vocab_size")));
  verify_checksum(f, "/vocab", format_version(f) >= 2);
  auto b = f.read_u8("/vocab");
  for (size_t i = 1; i < b.size(); ++i)
    if (b[i] <= b[i - 1]) throw IoError(f.path() + ": /vocab is not a sorted list of distinct bytes");
  return Vocab::from_bytes(b);
}

template <class Spec>
void write_routing(H5File& f, const std::vector<float>& alpha, const std::vector<std::string>& labels) {
  if (alpha.empty()) return;
  const int64_t rows = Spec::L + 1, cols = int64_t(alpha.size()) / rows;
  f.write("/routing/alpha_mean", alpha.data(), {rows, cols});
  f.write_strings("/routing/source_labels", labels, {rows, cols});
}

inline void write_train_state(H5File& f, const TrainState& s) {
  write_checked(f, "/train_state/step", &s.step, {});
  write_checked(f, "/train_state/total_steps", &s.total_steps, {});
  write_checked(f, "/train_state/warmup_steps", &s.warmup_steps, {});
  write_checked(f, "/train_state/lr_peak", &s.lr_peak, {});
  write_checked(f, "/train_state/seed", &s.seed, {});
  write_checked(f, "/train_state/data_rng", s.data_rng.data(), {4});
  write_checked(f, "/train_state/tokens_seen", &s.tokens_seen, {});
}

// The training state, checksummed (format version 2) and range-checked: the limits are those of the command
// line that produced it (--steps <= 2^40, --lr in [1e-12, 10], --seed <= 2^40), the warm-up lies within the
// run, at most 2^31-1 tokens per step, and the RNG state is not all zero (xoshiro's fixed point: the batch
// sampler would spin forever).
inline TrainState read_train_state(const H5File& f) {
  const bool checked = format_version(f) >= 2;
  auto read = [&](const char* p, std::vector<int64_t> dims, auto reader) {
    const std::string path = std::string("/train_state/") + p;
    if (!f.exists(path)) throw IoError(f.path() + ": missing " + path);
    if (f.dims(path) != dims)
      throw IoError(f.path() + ": " + path + (dims.empty() ? " is not a scalar" : " must hold 4 words"));
    verify_checksum(f, path, checked);
    return reader(path);
  };
  auto i64 = [&](const std::string& p) { return f.read_i64(p); };
  auto u64 = [&](const std::string& p) { return f.read_u64(p); };
  auto f64 = [&](const std::string& p) { return f.read_f64(p); };
  TrainState s;
  s.step = read("step", {}, i64)[0];
  s.total_steps = read("total_steps", {}, i64)[0];
  s.warmup_steps = read("warmup_steps", {}, i64)[0];
  s.lr_peak = read("lr_peak", {}, f64)[0];
  s.seed = read("seed", {}, u64)[0];
  const auto r = read("data_rng", {4}, u64);
  for (int i = 0; i < 4; ++i) s.data_rng[size_t(i)] = r[size_t(i)];
  s.tokens_seen = read("tokens_seen", {}, i64)[0];

  auto bad = [&](const char* p, const std::string& v, const std::string& want) {
    throw IoError(f.path() + ": /train_state/" + p + " is " + v + ", expected " + want);
  };
  constexpr int64_t big = int64_t(1) << 40;
  if (s.total_steps < 1 || s.total_steps > big)
    bad("total_steps", std::to_string(s.total_steps), "1 to 2^40");
  if (s.step < 0 || s.step > s.total_steps)
    bad("step", std::to_string(s.step), "0 to total_steps " + std::to_string(s.total_steps));
  if (s.warmup_steps < 0 || s.warmup_steps > s.total_steps)
    bad("warmup_steps", std::to_string(s.warmup_steps), "0 to total_steps " + std::to_string(s.total_steps));
  if (!(s.lr_peak >= 1e-12 && s.lr_peak <= 10.0)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s.lr_peak);
    bad("lr_peak", buf, "a number in [1e-12, 10]");
  }
  if (s.seed > uint64_t(big)) bad("seed", std::to_string(s.seed), "0 to 2^40");
  if ((s.data_rng[0] | s.data_rng[1] | s.data_rng[2] | s.data_rng[3]) == 0)
    bad("data_rng", "all zero", "a non-zero xoshiro256** state");
  if (s.tokens_seen < s.step || (s.step > 0 && s.tokens_seen / s.step > 2147483647LL) ||
      (s.step == 0 && s.tokens_seen != 0))
    bad("tokens_seen", std::to_string(s.tokens_seen),
        "1 to 2^31-1 tokens per step for " + std::to_string(s.step) + " steps");
  if (f.attr_int("/config", "step") != s.step)
    throw IoError(f.path() + ": /config step " + std::to_string(f.attr_int("/config", "step")) +
                  " differs from /train_state/step " + std::to_string(s.step));
  return s;
}

// The checkpoint must describe the same model as this executable. The widths it records replace those in `d`;
// only those the command line gave (`given`) must agree with it. The message names the first field that
// differs.
template <class Spec>
void check_config(const H5File& f, Dims& d, const DimsGiven& given, const std::string& dataset) {
  if (!f.has_attr("/config", "format")) throw IoError(f.path() + ": not a wavres file (no /config format)");
  const std::string fmt = f.attr_string("/config", "format");
  if (fmt != "wavres-checkpoint" && fmt != "wavres-dump")
    throw IoError(f.path() + ": /config format is '" + fmt + "', expected wavres-checkpoint or wavres-dump");
  const std::string v = f.attr_string("/config", "variant");
  if (v != variant_name(Spec::variant))
    throw IoError(f.path() + ": variant is " + v + ", this executable is " + variant_name(Spec::variant));
  format_version(f);
  auto same = [&](const char* name, int64_t want, const char* what) {
    const int64_t got = f.attr_int("/config", name);
    if (got != want)
      throw IoError(f.path() + ": " + name + " is " + std::to_string(got) + ", " + what + " " +
                    std::to_string(want));
  };
  same("n_layer", Spec::n_layer, "this executable has");
  same("block_sublayers", Spec::S, "this executable has");
  const std::string ds = f.attr_string("/config", "dataset");
  if (ds != dataset)
    throw IoError(f.path() + ": dataset is " + ds + ", this executable trains on " + dataset);
  auto adopt = [&](const char* name, int& dim, bool was_given, const char* what, int64_t hi) {
    if (was_given) return same(name, dim, what);
    const int64_t got = f.attr_int("/config", name);
    if (got < 1 || got > hi)
      throw IoError(f.path() + ": /config " + name + " is " + std::to_string(got) + ", outside 1 to " +
                    std::to_string(hi));
    dim = int(got);
  };
  // the bounds of the corresponding options (cli/options.cpp)
  adopt("d_model", d.D, given.D, "--d-model is", 1 << 16);
  adopt("n_head", d.H, given.H, "--heads is", 1 << 12);
  adopt("d_ff", d.F, given.F, "--d-ff is", 1 << 18);
  adopt("seq_len", d.T, given.T, "--seq-len is", 1 << 16);
  try {
    d.validate();
  } catch (const std::invalid_argument& e) {
    throw IoError(f.path() + ": " + e.what());
  }
}

inline void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && errno != EINVAL) throw IoError(path + ": fsync failed: " + std::strerror(errno));
}

// Build the file in memory, write it to a temporary file and rename, so that the previous file at `path`
// survives any failure. Costs one more copy of the file in host memory while it is written.
inline void write_atomically(const std::string& path, const std::function<void(H5File&)>& body) {
  const std::string tmp = path + ".tmp";
  try {
    {
      H5File f(tmp, H5File::Mode::memory);
      body(f);
      f.close_into(tmp);  // fsync'ed: the data must be on disk before the name points at it (power loss)
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw IoError(path + ": cannot rename " + tmp + " into place");
    const auto dir = std::filesystem::path(path).parent_path();
    sync_file(dir.empty() ? std::string(".") : dir.string());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace wavres
