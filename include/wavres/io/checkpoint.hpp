// Checkpoints and dumps in the pinned HDF5 layout (../shared/docs/checkpoint-layout.md).
// Files are written to "<path>.tmp" and renamed into place only when complete, so a crash or a full disk
// never leaves a half-written file under the real name.
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
#include "wavres/io/hdf5.hpp"
#include "wavres/model/params.hpp"
#include "wavres/routing/variant.hpp"

namespace wavres {

struct RunMeta {
  std::string git_rev, build_type, backend, command_line, start_time;
  int64_t threads = 0;
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

// FNV-1a (64 bit) over a tensor's float32 bytes, stored as the attribute "fnv1a64" of every tensor written
// and verified on load: HDF5 does not checksum raw data, and a flipped bit in a checkpoint must not resume
// silently.
inline int64_t fnv1a64(const float* p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ULL;
  return int64_t(h);
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
  f.set_attr("/config", "format_version", int64_t(1));
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
    f.write(prefix + e.name, v.data(), e.dims());
    f.set_attr(prefix + e.name, "fnv1a64", fnv1a64(v.data(), v.size()));
  }
}

// Reads every table entry from prefix into a flat device buffer; a missing tensor or a shape mismatch is an
// IoError naming the file and the tensor.
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
    auto v = f.read_f32(path);
    if (f.has_attr(path, "fnv1a64") && f.attr_int(path, "fnv1a64") != fnv1a64(v.data(), v.size()))
      throw IoError(f.path() + ": " + path + " fails its checksum (the file is corrupted)");
    for (int64_t k = 0; k < e.size(); ++k)
      h(e.offset + k) = typename Flat::non_const_value_type(v[size_t(k)]);
  }
  Kokkos::deep_copy(device_buffer, h);
}

inline void write_vocab(H5File& f, const Vocab& v) {
  f.write("/vocab", v.bytes.data(), {int64_t(v.bytes.size())});
}

inline Vocab read_vocab(const H5File& f) {
  if (!f.exists("/vocab")) throw IoError(f.path() + ": missing /vocab");
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
  f.write("/train_state/step", &s.step, {});
  f.write("/train_state/total_steps", &s.total_steps, {});
  f.write("/train_state/warmup_steps", &s.warmup_steps, {});
  f.write("/train_state/lr_peak", &s.lr_peak, {});
  f.write("/train_state/seed", &s.seed, {});
  f.write("/train_state/data_rng", s.data_rng.data(), {4});
  f.write("/train_state/tokens_seen", &s.tokens_seen, {});
}

inline TrainState read_train_state(const H5File& f) {
  TrainState s;
  auto one = [&](const char* p, auto v) {  // exactly one element, else an IoError naming the dataset
    if (v.size() != 1) throw IoError(f.path() + ": /train_state/" + p + " is not a scalar");
    return v[0];
  };
  auto path = [](const char* p) { return std::string("/train_state/") + p; };
  s.step = one("step", f.read_i64(path("step")));
  s.total_steps = one("total_steps", f.read_i64(path("total_steps")));
  s.warmup_steps = one("warmup_steps", f.read_i64(path("warmup_steps")));
  s.lr_peak = one("lr_peak", f.read_f64(path("lr_peak")));
  s.seed = one("seed", f.read_u64(path("seed")));
  auto r = f.read_u64(path("data_rng"));
  if (r.size() != 4) throw IoError(f.path() + ": /train_state/data_rng must hold 4 words");
  for (int i = 0; i < 4; ++i) s.data_rng[size_t(i)] = r[size_t(i)];
  s.tokens_seen = one("tokens_seen", f.read_i64(path("tokens_seen")));
  if (s.step < 0 || s.total_steps < 1 || s.step > s.total_steps || s.warmup_steps < 0)
    throw IoError(f.path() + ": /train_state is inconsistent (step " + std::to_string(s.step) + " of " +
                  std::to_string(s.total_steps) + ")");
  return s;
}

// The checkpoint must describe the same model as this executable and its width options; the message names
// the first field that differs.
template <class Spec>
void check_config(const H5File& f, const Dims& d, const std::string& dataset) {
  if (!f.has_attr("/config", "format")) throw IoError(f.path() + ": not a wavres file (no /config format)");
  const std::string fmt = f.attr_string("/config", "format");
  if (fmt != "wavres-checkpoint" && fmt != "wavres-dump")
    throw IoError(f.path() + ": /config format is '" + fmt + "', expected wavres-checkpoint or wavres-dump");
  const std::string v = f.attr_string("/config", "variant");
  if (v != variant_name(Spec::variant))
    throw IoError(f.path() + ": variant is " + v + ", this executable is " + variant_name(Spec::variant));
  auto same = [&](const char* name, int64_t want, const char* what) {
    const int64_t got = f.attr_int("/config", name);
    if (got != want)
      throw IoError(f.path() + ": " + name + " is " + std::to_string(got) + ", " + what + " " +
                    std::to_string(want));
  };
  same("n_layer", Spec::n_layer, "this executable has");
  same("block_sublayers", Spec::S, "this executable has");
  same("d_model", d.D, "--d-model is");
  same("n_head", d.H, "--heads is");
  same("d_ff", d.F, "--d-ff is");
  same("seq_len", d.T, "--seq-len is");
  const std::string ds = f.attr_string("/config", "dataset");
  if (ds != dataset)
    throw IoError(f.path() + ": dataset is " + ds + ", this executable trains on " + dataset);
}

inline void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && errno != EINVAL) throw IoError(path + ": fsync failed: " + std::strerror(errno));
}

// Write through a temporary file and rename, so that the previous file at `path` survives any failure.
inline void write_atomically(const std::string& path, const std::function<void(H5File&)>& body) {
  const std::string tmp = path + ".tmp";
  try {
    {
      H5File f(tmp, H5File::Mode::create);
      body(f);
      f.flush();
    }
    sync_file(tmp);  // the data must be on disk before the name points at it (power loss)
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
