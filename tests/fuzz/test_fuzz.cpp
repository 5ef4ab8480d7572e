// Fuzz-style robustness test, built only with -DWAVRES_FUZZ=ON (the `asan` preset) under AddressSanitizer and
// UndefinedBehaviorSanitizer. Random/truncated/overwritten bytes are fed as a checkpoint and as a corpus;
// every input must either load cleanly or fail with a wavres error (IoError / DataError /
// std::runtime_error): never crash, hang, or trip a sanitizer. Deterministic: fixed seeds, wavres::Rng.
#define BOOST_TEST_MODULE wavres_fuzz
#define BOOST_TEST_NO_MAIN
#include <Kokkos_Core.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "wavres/data/corpus.hpp"
#include "wavres/io/checkpoint.hpp"
#include "wavres/io/hdf5.hpp"
#include "wavres/model/params.hpp"
#include "wavres/routing/variant.hpp"

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  return boost::unit_test::unit_test_main([] { return true; }, argc, argv);
}

namespace {

using namespace wavres;
using Spec = ModelSpec<Variant::wav_v1, 4, 4>;

Dims tiny_dims() {
  Dims d;
  d.B = 2;
  d.D = 8;
  d.H = 2;
  d.F = 12;
  d.T = 6;
  d.V = 5;
  return d;
}

// A fresh temporary directory, removed (with its plain files and one level of subdirectories) on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wavres_fuzz_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path = buf.data();
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::vector<uint8_t> slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void spit(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  if (!out) throw std::runtime_error("cannot write " + p);
}

std::vector<uint8_t> random_bytes(Rng& rng, size_t n) {
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(rng.next() & 0xff);
  return b;
}

// Outcome of one input: loaded, or which kind of exception it threw.
enum class Outcome { ok, io_error, data_error, runtime_error, other_exception, unknown_exception };
const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::ok:
      return "ok";
    case Outcome::io_error:
      return "IoError";
    case Outcome::data_error:
      return "DataError";
    case Outcome::runtime_error:
      return "runtime_error";
    case Outcome::other_exception:
      return "other std::exception";
    default:
      return "unknown exception";
  }
}

template <class F>
Outcome classify(F&& body, std::string& what) {
  try {
    body();
    return Outcome::ok;
  } catch (const IoError& e) {
    what = e.what();
    return Outcome::io_error;
  } catch (const DataError& e) {
    what = e.what();
    return Outcome::data_error;
  } catch (const std::runtime_error& e) {
    what = e.what();
    return Outcome::runtime_error;
  } catch (const std::exception& e) {
    what = std::string("non-runtime_error exception: ") + e.what();
    return Outcome::other_exception;
  } catch (...) {
    what = "unknown exception";
    return Outcome::unknown_exception;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// checkpoint

struct Reference {
  ParamTable table;
  std::vector<float> params;
  Vocab vocab;
  TrainState state;
};

Reference write_reference_checkpoint(const std::string& path) {
  const Dims d = tiny_dims();
  Reference r;
  r.table = make_param_table<Spec>(d);
  Kokkos::View<float*, Kokkos::HostSpace> buf("params", size_t(r.table.total));
  Rng rng(20240611);
  for (int64_t i = 0; i < r.table.total; ++i) buf(i) = float(rng.normal());
  r.params.assign(buf.data(), buf.data() + r.table.total);
  r.vocab = Vocab::from_bytes({' ', 'a', 'b', 'c', 'z'});
  r.state.step = 7;
  r.state.total_steps = 100;
  r.state.warmup_steps = 10;
  r.state.lr_peak = 3e-4;
  r.state.seed = 42;
  r.state.data_rng = {1, 2, 3, 4};
  r.state.tokens_seen = 7 * 2 * 6;
  H5File f(path, H5File::Mode::create);
  write_config<Spec>(f, "wavres-checkpoint", d, "text8", "OpenMP", r.state.step);
  write_flat(f, "/params/", r.table, buf);
  write_vocab(f, r.vocab);
  write_train_state(f, r.state);
  f.flush();
  return r;
}

// The resume read path. Sets `params_match` to whether the loaded tensors equal the reference, and
// `rest_match` to whether the vocabulary and train state do (checksummed too since format version 2).
void read_checkpoint(const std::string& path, const Reference& ref, bool& params_match, bool& rest_match) {
  Dims d = tiny_dims();
  H5File f(path, H5File::Mode::read);
  check_config<Spec>(f, d, DimsGiven{true, true, true, true}, "text8");
  const Vocab v = read_vocab(f);
  const TrainState s = read_train_state(f);
  Kokkos::View<float*, Kokkos::HostSpace> buf("loaded", size_t(ref.table.total));
  read_flat(f, "/params/", ref.table, buf);
  params_match = true;
  for (auto& e : ref.table.entries)
    for (int64_t k = 0; k < e.size(); ++k)
      params_match = params_match && buf(e.offset + k) == ref.params[size_t(e.offset + k)];
  rest_match = v.bytes == ref.vocab.bytes && s.step == ref.state.step &&
               s.total_steps == ref.state.total_steps && s.warmup_steps == ref.state.warmup_steps &&
               s.lr_peak == ref.state.lr_peak && s.seed == ref.state.seed &&
               s.data_rng == ref.state.data_rng && s.tokens_seen == ref.state.tokens_seen;
}

BOOST_AUTO_TEST_CASE(checkpoint_reference_reads_back) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  const Reference ref = write_reference_checkpoint(path);
  bool match = false, rest = false;
  read_checkpoint(path, ref, match, rest);
  BOOST_TEST(match);
  BOOST_TEST(rest);
  H5File f(path, H5File::Mode::read);
  BOOST_TEST(read_vocab(f).bytes == ref.vocab.bytes);
  const TrainState s = read_train_state(f);
  BOOST_TEST(s.step == ref.state.step);
  BOOST_TEST(s.tokens_seen == ref.state.tokens_seen);
  BOOST_TEST((s.data_rng == ref.state.data_rng));

  // Inputs that are not checkpoints at all.
  BOOST_CHECK_THROW(H5File(dir / "missing.h5", H5File::Mode::read), IoError);
  BOOST_CHECK_THROW(H5File(dir.path, H5File::Mode::read), IoError);
  spit(dir / "empty.h5", {});
  BOOST_CHECK_THROW(H5File(dir / "empty.h5", H5File::Mode::read), IoError);
}

BOOST_AUTO_TEST_CASE(checkpoint_mutants_fail_cleanly) {
  TempDir dir;
  const std::string good = dir / "ckpt.h5";
  const Reference ref = write_reference_checkpoint(good);
  const std::vector<uint8_t> orig = slurp(good);
  BOOST_TEST_REQUIRE(orig.size() > 512u);
  const std::string path = dir / "mutant.h5";

  enum Kind { truncate, overwrite, bitflip, zero_page, append, random_file, n_kinds };
  const char* kind_name[n_kinds] = {"truncate", "overwrite", "bitflip", "zero_page", "append", "random_file"};
  std::map<std::string, std::map<std::string, int>> counts;  // kind -> outcome -> n
  int errors = 0, total = 0, bad = 0, silent_corruption = 0, silent_state = 0;
  Rng rng(0xf022);
  const int n_mutants = 240;
  for (int i = 0; i < n_mutants; ++i) {
    const Kind kind = Kind(i % n_kinds);
    std::vector<uint8_t> b = orig;
    switch (kind) {
      case truncate:
        b.resize(size_t(rng.below(int64_t(orig.size()))));
        break;
      case overwrite: {
        const size_t len = size_t(1 + rng.below(64));
        const size_t at = size_t(rng.below(int64_t(b.size() - len)));
        for (size_t k = 0; k < len; ++k) b[at + k] = uint8_t(rng.next() & 0xff);
        break;
      }
      case bitflip: {
        const int flips = int(1 + rng.below(4));
        for (int k = 0; k < flips; ++k)
          b[size_t(rng.below(int64_t(b.size())))] ^= uint8_t(1u << rng.below(8));
        break;
      }
      case zero_page: {
        const size_t pages = (b.size() + 4095) / 4096;
        const size_t at = size_t(rng.below(int64_t(pages))) * 4096;
        std::fill(b.begin() + std::ptrdiff_t(at), b.begin() + std::ptrdiff_t(std::min(b.size(), at + 4096)),
                  0);
        break;
      }
      case append: {
        auto junk = random_bytes(rng, size_t(1 + rng.below(8192)));
        if (rng.below(2)) b.resize(size_t(rng.below(int64_t(b.size()))));  // truncated, then junk
        b.insert(b.end(), junk.begin(), junk.end());
        break;
      }
      case random_file: {
        b = random_bytes(rng, size_t(rng.below(16384)));
        // Half of them carry the HDF5 signature so that they get past H5Fis_hdf5 into the parser.
        static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
        if (rng.below(2)) {
          if (b.size() < 64) b.resize(64);
          std::copy(sig, sig + 8, b.begin());
          // a plausible superblock version byte and the rest of the header from the real file, sometimes
          if (rng.below(2)) std::copy(orig.begin() + 8, orig.begin() + 64, b.begin() + 8);
        }
        break;
      }
      default:
        break;
    }
    spit(path, b);
    std::string what;
    bool match = false, rest = false;
    const Outcome o = classify([&] { read_checkpoint(path, ref, match, rest); }, what);
    ++total;
    ++counts[kind_name[kind]][outcome_name(o)];
    if (o == Outcome::ok) {
      // Loaded: the checksums passed, so the tensors must be the ones written.
      if (!match) {
        ++silent_corruption;
        BOOST_TEST_MESSAGE("mutant " << i << " (" << kind_name[kind] << ") loaded with different parameters");
      }
      if (!rest) {  // /vocab and /train_state carry checksums since format version 2
        ++silent_state;
        BOOST_TEST_MESSAGE("mutant " << i << " (" << kind_name[kind]
                                     << ") loaded with a different vocab/train_state");
      }
    } else if (o == Outcome::io_error || o == Outcome::data_error || o == Outcome::runtime_error) {
      ++errors;
      BOOST_TEST(!what.empty());
    } else {
      ++bad;
      BOOST_ERROR("mutant " << i << " (" << kind_name[kind] << "): " << what);
    }
  }
  for (auto& [kind, m] : counts) {
    std::string line = std::string("checkpoint ") + kind + ":";
    for (auto& [o, n] : m) line += " " + o + "=" + std::to_string(n);
    BOOST_TEST_MESSAGE(line);
  }
  BOOST_TEST_MESSAGE("checkpoint mutants: " << total << ", clean errors " << errors << ", loaded "
                                            << total - errors - bad << ", silent parameter corruption "
                                            << silent_corruption << ", silent vocab/train_state change "
                                            << silent_state << ", bad " << bad);
  BOOST_TEST(bad == 0);
  BOOST_TEST(silent_corruption == 0);
  BOOST_TEST(silent_state == 0);
  BOOST_TEST(errors * 2 > total);  // most mutants must be rejected
}

// ---------------------------------------------------------------------------------------------------------------
// corpus

// File contents: random bytes of all values (0x00 and 0xFF included), or text from a small alphabet.
std::vector<uint8_t> corpus_bytes(Rng& rng, size_t n) {
  if (rng.below(2)) {
    auto b = random_bytes(rng, n);
    if (n > 0 && rng.below(2)) b[0] = 0x00;
    if (n > 1 && rng.below(2)) b[n - 1] = 0xff;
    return b;
  }
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz ";
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(alphabet[rng.below(27)]);
  return b;
}

size_t corpus_size(Rng& rng) {
  static const size_t fixed[] = {0, 1, 2, 9, 10, 11, 19, 20};
  if (rng.below(2)) return fixed[rng.below(8)];
  return size_t(rng.below(6000));
}

// A random subset of byte values, sorted and distinct.
Vocab random_vocab(Rng& rng, const Vocab& present) {
  std::vector<uint8_t> b;
  const int mode = int(rng.below(3));
  for (int x = 0; x < 256; ++x) {
    const bool in = present.id_of[size_t(x)] >= 0;
    if (mode == 0 ? rng.below(8) == 0 : mode == 1 ? (in && rng.below(16) != 0) : (in || rng.below(4) == 0))
      b.push_back(uint8_t(x));
  }
  return Vocab::from_bytes(b);
}

// Opens the corpus and runs the training-side checks and a few gathers; returns the first error, if any.
void exercise_corpus(const std::string& dataset, const std::string& data_dir, Rng& rng, int& gathered) {
  Corpus c = Corpus::open(dataset, data_dir);
  BOOST_TEST(!c.describe().empty());
  const int T = rng.below(3) == 0 ? int(1 + rng.below(3)) : int(1 + rng.below(64));
  if (rng.below(8) == 0) {
    BOOST_CHECK_THROW(c.require_window(c.train(), 0), DataError);
  }
  c.require_window(c.train(), T);
  c.require_window(c.val(), T);
  // The corpus's own vocabulary always fits; a random one may not.
  c.use_vocab(c.vocab());
  if (rng.below(4) != 0) c.use_vocab(random_vocab(rng, c.vocab()));
  const int64_t W = int64_t(T) + 1;
  for (const Split* s : {&c.train(), &c.val()}) {
    const int B = int(1 + rng.below(4));
    std::vector<int64_t> offsets(static_cast<size_t>(B));
    for (auto& o : offsets) o = rng.below(s->size - W + 1);
    std::vector<int32_t> out(size_t(B * W), -7);
    c.gather(*s, offsets, T, out.data());
    for (int32_t id : out) BOOST_TEST((id >= 0 && id < c.vocab().size()));
    ++gathered;
  }
}

BOOST_AUTO_TEST_CASE(corpus_random_files_fail_cleanly) {
  Rng rng(0xc0de);
  std::map<std::string, int> counts;
  int bad = 0, total = 0, gathered = 0;
  const int n_cases = 160;
  for (int i = 0; i < n_cases; ++i) {
    TempDir dir;
    const bool text8 = i % 2 == 0;
    const bool nested = rng.below(2) != 0;  // data_dir/<dataset>/file instead of data_dir/file
    const std::string dataset = text8 ? "text8" : "tinystories";
    std::string where = dir.path;
    if (nested) {
      where = dir / dataset;
      ::mkdir(where.c_str(), 0700);
    }
    const int variant = int(rng.below(10));
    if (text8) {
      if (variant == 0) {
        ::mkdir((where + "/text8-prefix").c_str(), 0700);  // a directory, not a file
      } else if (variant == 1) {
        spit(where + "/text8", corpus_bytes(rng, corpus_size(rng)));  // full text8 of the wrong size
      } else if (variant != 2) {                                      // variant 2: nothing there
        spit(where + "/text8-prefix", corpus_bytes(rng, corpus_size(rng)));
      }
    } else {
      if (variant != 0) spit(where + "/train-prefix.txt", corpus_bytes(rng, corpus_size(rng)));
      if (variant != 1) spit(where + "/valid-subset.txt", corpus_bytes(rng, corpus_size(rng)));
      if (variant == 2) spit(where + "/TinyStories-train.txt", corpus_bytes(rng, corpus_size(rng)));
    }
    std::string what;
    const Outcome o = classify([&] { exercise_corpus(dataset, dir.path, rng, gathered); }, what);
    ++total;
    ++counts[dataset + " " + outcome_name(o)];
    if (o != Outcome::ok && o != Outcome::data_error) {
      ++bad;
      BOOST_ERROR("corpus case " << i << " threw " << outcome_name(o) << ": " << what);
    }
  }
  // Unknown dataset, missing directory.
  BOOST_CHECK_THROW(Corpus::open("enwik8", "/nonexistent"), DataError);
  BOOST_CHECK_THROW(Corpus::open("text8", "/nonexistent/wavres"), DataError);
  // Vocabularies that are not sorted and distinct.
  for (int i = 0; i < 50; ++i) {
    auto b = random_bytes(rng, size_t(2 + rng.below(20)));
    if (std::is_sorted(b.begin(), b.end()) && std::adjacent_find(b.begin(), b.end()) == b.end()) continue;
    BOOST_CHECK_THROW(Vocab::from_bytes(b), DataError);
  }
  std::string line = "corpus cases:";
  for (auto& [k, n] : counts) line += " [" + k + "]=" + std::to_string(n);
  BOOST_TEST_MESSAGE(line << ", gathered splits " << gathered << ", bad " << bad);
  BOOST_TEST(bad == 0);
  BOOST_TEST(gathered > 0);
  BOOST_TEST(counts.size() >= 3u);  // both successes and DataErrors occurred
}

}  // namespace
