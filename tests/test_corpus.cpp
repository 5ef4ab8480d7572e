// Corpora (discovery, splits, vocabulary, gather, errors) and the deterministic RNG.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "wavres/data/corpus.hpp"

#ifndef WAVRES_SHARED_DATA
#define WAVRES_SHARED_DATA "/work/shared/data"
#endif

namespace fs = std::filesystem;
using wavres::Corpus;
using wavres::DataError;
using wavres::Rng;
using wavres::Vocab;

namespace {

const std::string kData = WAVRES_SHARED_DATA;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream o(path, std::ios::binary);
  o.write(bytes.data(), std::streamsize(bytes.size()));
}

struct TmpDir {
  fs::path dir;
  TmpDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("wavres_test_corpus_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string str() const { return dir.string(); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

// Runs f, requires a one-line DataError containing every one of `needles`; returns the message.
template <class F>
std::string require_data_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const DataError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("DataError: " << msg);
    BOOST_TEST(msg.find('\n') == std::string::npos);
    for (const auto& n : needles)
      BOOST_TEST(msg.find(n) != std::string::npos, "'" << msg << "' lacks '" << n << "'");
    return msg;
  }
  BOOST_ERROR("no DataError thrown (expected one mentioning " << needles.at(0) << ")");
  return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(corpus)

BOOST_AUTO_TEST_CASE(text8_prefix_split_and_vocab) {
  const std::string path = kData + "/text8/text8-prefix";
  const std::string raw = read_file(path);
  const int64_t size = int64_t(raw.size());
  BOOST_REQUIRE(size > 1000000);
  const int64_t split = int64_t(std::floor(0.9 * double(size)));

  const Corpus c = Corpus::open("text8", kData);  // found in data_dir/text8/
  BOOST_TEST(c.dataset() == "text8");
  BOOST_TEST(c.train().file == path);
  BOOST_TEST(c.val().file == path);
  BOOST_TEST(c.train().size == split);
  BOOST_TEST(c.val().size == size - split);
  // the splits are the file's bytes, in order
  BOOST_TEST(std::string(reinterpret_cast<const char*>(c.train().data), 4096) == raw.substr(0, 4096));
  BOOST_TEST(std::string(reinterpret_cast<const char*>(c.val().data), size_t(c.val().size)) ==
             raw.substr(size_t(split)));

  const Vocab& v = c.vocab();
  BOOST_REQUIRE_EQUAL(v.size(), 27);
  BOOST_TEST(v.bytes[0] == uint8_t(' '));
  for (int k = 0; k < 26; ++k) BOOST_TEST(v.bytes[size_t(k) + 1] == uint8_t('a' + k));
  for (int b = 0; b < 256; ++b) {
    const int expect = b == ' ' ? 0 : (b >= 'a' && b <= 'z') ? b - 'a' + 1 : -1;
    BOOST_TEST(v.id_of[size_t(b)] == expect, "byte " << b);
  }
  const std::string d = c.describe();
  BOOST_TEST_MESSAGE(d);
  BOOST_TEST(d.find("text8") == 0u);
  BOOST_TEST(d.find(path) != std::string::npos);
  BOOST_TEST(d.find(std::to_string(split)) != std::string::npos);
  BOOST_TEST(d.find(std::to_string(size - split)) != std::string::npos);
  BOOST_TEST(d.find("vocab 27") != std::string::npos);

  // the file directly in data_dir works too
  const Corpus c2 = Corpus::open("text8", kData + "/text8");
  BOOST_TEST(c2.train().size == split);
  BOOST_TEST(c2.vocab().size() == 27);
}

BOOST_AUTO_TEST_CASE(tinystories_vocab_covers_both_files) {
  const std::string tp = kData + "/tinystories/train-prefix.txt",
                    vp = kData + "/tinystories/valid-subset.txt";
  const std::string train = read_file(tp), val = read_file(vp);
  std::set<uint8_t> expect;
  for (char ch : train) expect.insert(uint8_t(ch));
  std::set<uint8_t> train_only = expect;
  for (char ch : val) expect.insert(uint8_t(ch));

  const Corpus c = Corpus::open("tinystories", kData);
  BOOST_TEST(c.train().file == tp);
  BOOST_TEST(c.val().file == vp);
  BOOST_TEST(c.train().size == int64_t(train.size()));
  BOOST_TEST(c.val().size == int64_t(val.size()));
  const Vocab& v = c.vocab();
  BOOST_TEST(v.size() > 93);
  BOOST_TEST(v.size() > int(train_only.size()));  // validation adds bytes (README: a few more)
  BOOST_TEST(v.bytes == std::vector<uint8_t>(expect.begin(), expect.end()), boost::test_tools::per_element());
  for (size_t k = 0; k < v.bytes.size(); ++k) BOOST_TEST(v.id_of[v.bytes[k]] == int(k));
  BOOST_TEST(v.id_of[0] == -1);  // no NUL bytes in the text
  BOOST_TEST(c.describe().find("vocab " + std::to_string(v.size())) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(gather_maps_bytes_through_the_vocab) {
  for (const std::string ds : {"text8", "tinystories"}) {
    const Corpus c = Corpus::open(ds, kData);
    const std::string raw_val = read_file(c.val().file);
    const int64_t val_base = ds == "text8" ? c.train().size : 0;  // text8's validation split starts mid-file
    const int T = 64;
    c.require_window(c.val(), T);
    Rng rng(7);
    std::vector<int64_t> offs;
    for (int b = 0; b < 32; ++b) offs.push_back(rng.below(c.val().size - T));
    offs.push_back(0);
    offs.push_back(c.val().size - (T + 1));  // the last full window
    std::vector<int32_t> out(offs.size() * size_t(T + 1), -7);
    c.gather(c.val(), offs, T, out.data());
    for (size_t b = 0; b < offs.size(); ++b)
      for (int t = 0; t <= T; ++t) {
        const uint8_t byte = uint8_t(raw_val[size_t(val_base + offs[b] + t)]);
        const int32_t id = out[b * size_t(T + 1) + size_t(t)];
        BOOST_REQUIRE(id >= 0 && id < c.vocab().size());
        BOOST_REQUIRE_EQUAL(int(c.vocab().bytes[size_t(id)]), int(byte));
        BOOST_REQUIRE_EQUAL(id, int32_t(c.vocab().id_of[byte]));
      }
  }
}

BOOST_AUTO_TEST_CASE(use_vocab_replaces_or_names_the_first_missing_byte) {
  const std::string path = kData + "/text8/text8-prefix";
  const std::string raw = read_file(path);
  Corpus c = Corpus::open("text8", kData);
  const auto first_z = raw.find('z');
  BOOST_REQUIRE(first_z != std::string::npos);
  BOOST_REQUIRE(int64_t(first_z) < c.train().size);

  std::vector<uint8_t> no_z(c.vocab().bytes.begin(), c.vocab().bytes.end() - 1);  // ' ', a..y
  BOOST_REQUIRE_EQUAL(int(no_z.back()), int('y'));
  require_data_error([&] { c.use_vocab(Vocab::from_bytes(no_z)); },
                     {path, "offset " + std::to_string(first_z) + " ", "0x7a"});
  BOOST_TEST(c.vocab().size() == 27);  // unchanged after the failure

  // a larger vocabulary is accepted and changes the ids
  std::vector<uint8_t> all(256);
  for (int b = 0; b < 256; ++b) all[size_t(b)] = uint8_t(b);
  c.use_vocab(Vocab::from_bytes(all));
  BOOST_TEST(c.vocab().size() == 256);
  std::vector<int32_t> out(9);
  c.gather(c.train(), {1000}, 8, out.data());
  for (int t = 0; t < 9; ++t) BOOST_TEST(out[size_t(t)] == int32_t(uint8_t(raw[size_t(1000 + t)])));

  // a byte missing only from the validation split: the offset is the one in the file
  TmpDir tmp;
  std::string text;
  for (int k = 0; k < 30; ++k) text += "ab ";  // 90 bytes: training split
  text += "ab ab qab ";                        // 10 bytes: validation split, 'q' at 96
  write_file(tmp.file("text8-prefix"), text);
  Corpus small = Corpus::open("text8", tmp.str());
  BOOST_TEST(small.train().size == 90);
  BOOST_TEST(small.vocab().bytes == (std::vector<uint8_t>{' ', 'a', 'b', 'q'}),
             boost::test_tools::per_element());
  require_data_error(
      [&] {
        small.use_vocab(Vocab::from_bytes({' ', 'a', 'b'}));
      },
      {tmp.file("text8-prefix"), "offset 96 ", "0x71"});
  // unsorted vocabularies are refused
  require_data_error([&] { Vocab::from_bytes({'b', 'a'}); }, {"sorted"});
}

// text8 is a-z and space: any other byte is an error naming the file, the byte and its offset. TinyStories is
// byte-level: UTF-8, CRLF and NUL bytes are ordinary tokens there.
BOOST_AUTO_TEST_CASE(text8_alphabet_tinystories_bytes) {
  TmpDir tmp;
  std::string text(100, 'a');
  text[42] = '\r';
  write_file(tmp.file("text8-prefix"), text);
  require_data_error([&] { Corpus::open("text8", tmp.str()); },
                     {tmp.file("text8-prefix"), "0x0d", "offset 42 ", "not text8"});
  text[42] = 'b';
  text[95] = 'Q';  // in the validation split: the offset is the one in the file
  write_file(tmp.file("text8-prefix"), text);
  require_data_error([&] { Corpus::open("text8", tmp.str()); }, {"0x51 ('Q')", "offset 95 "});
  write_file(tmp.file("text8-prefix"), std::string(100, 'a'));
  require_data_error([&] { Corpus::open("text8", tmp.str()); },
                     {tmp.file("text8-prefix"), "single distinct byte"});

  write_file(tmp.file("train-prefix.txt"),
             std::string("caf\xc3\xa9\r\nOnce") + std::string(1, '\0') + "upon a time\n");
  write_file(tmp.file("valid-subset.txt"), "The end.\r\n");
  const Corpus c = Corpus::open("tinystories", tmp.str());
  for (int b : {0x00, 0x0d, 0xc3, 0xa9}) BOOST_TEST(c.vocab().id_of[size_t(b)] >= 0);
}

BOOST_AUTO_TEST_CASE(errors_name_the_file) {
  TmpDir tmp;
  // nothing there
  require_data_error([&] { Corpus::open("text8", tmp.str()); }, {"text8-prefix", tmp.str()});
  require_data_error([&] { Corpus::open("tinystories", tmp.str()); },
                     {"train-prefix.txt", "valid-subset.txt", tmp.str()});
  require_data_error([&] { Corpus::open("wikitext", tmp.str()); }, {"wikitext"});

  // an empty file
  write_file(tmp.file("text8-prefix"), "");
  require_data_error([&] { Corpus::open("text8", tmp.str()); }, {tmp.file("text8-prefix"), "empty"});

  // a file too small to split at all
  write_file(tmp.file("text8-prefix"), "a");
  require_data_error([&] { Corpus::open("text8", tmp.str()); }, {tmp.file("text8-prefix")});

  // a split too short for the window
  write_file(tmp.file("text8-prefix"), std::string(95, 'a') + " bc d");  // 100 bytes: 90 train / 10 val
  const Corpus c = Corpus::open("text8", tmp.str());
  BOOST_TEST(c.train().size == 90);
  BOOST_TEST(c.val().size == 10);
  c.require_window(c.val(), 9);  // exactly T+1 = 10 bytes: fine
  require_data_error([&] { c.require_window(c.val(), 10); }, {tmp.file("text8-prefix"), "validation", "11"});
  require_data_error([&] { c.require_window(c.train(), 100); }, {tmp.file("text8-prefix"), "training"});

  // a full-size name with the wrong size
  write_file(tmp.file("text8"), "not one hundred million bytes");
  require_data_error([&] { Corpus::open("text8", tmp.str()); }, {tmp.file("text8"), "100000000"});

  // only one of the TinyStories pair, in data_dir/tinystories/
  fs::create_directories(tmp.dir / "tinystories");
  write_file(tmp.file("tinystories/train-prefix.txt"), "Once upon a time.\n");
  require_data_error([&] { Corpus::open("tinystories", tmp.str()); }, {"valid-subset.txt", tmp.str()});
  // an empty validation file
  write_file(tmp.file("tinystories/valid-subset.txt"), "");
  require_data_error([&] { Corpus::open("tinystories", tmp.str()); },
                     {tmp.file("tinystories/valid-subset.txt"), "empty"});
  write_file(tmp.file("tinystories/valid-subset.txt"), "The end!\n");
  const Corpus ts = Corpus::open("tinystories", tmp.str());
  BOOST_TEST(ts.train().size == 18);
  BOOST_TEST(ts.val().size == 9);
  BOOST_TEST(ts.vocab().id_of['!'] >= 0);  // a validation-only byte is in the vocabulary

  // an unreadable file (permissions do not bind root, so only checked for other users)
  if (::geteuid() != 0) {
    fs::permissions(tmp.file("tinystories/valid-subset.txt"), fs::perms::none);
    require_data_error([&] { Corpus::open("tinystories", tmp.str()); },
                       {tmp.file("tinystories/valid-subset.txt")});
    fs::permissions(tmp.file("tinystories/valid-subset.txt"), fs::perms::owner_all);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(rng)

BOOST_AUTO_TEST_CASE(known_values) {
  // splitmix64 from 0: the published first output is 0xe220a8397b1dcdaf.
  BOOST_TEST(Rng(0).s[0] == 0xe220a8397b1dcdafULL);
  // xoshiro256** from the state {1, 2, 3, 4} (reference implementation by Blackman & Vigna).
  Rng r;
  r.s = {1, 2, 3, 4};
  BOOST_TEST(r.next() == 11520ULL);
  BOOST_TEST(r.next() == 0ULL);
  BOOST_TEST(r.next() == 1509978240ULL);
  BOOST_TEST(r.next() == 1215971899390074240ULL);
}

BOOST_AUTO_TEST_CASE(same_seed_same_stream_and_state_copies_continue) {
  Rng a(42), b(42), c(43);
  int same_as_c = 0;
  for (int k = 0; k < 1000; ++k) {
    const uint64_t x = a.next();
    BOOST_REQUIRE_EQUAL(x, b.next());
    same_as_c += x == c.next();
  }
  BOOST_TEST(same_as_c == 0);

  // mixing every kind of draw, then restoring only the 4 state words reproduces the rest exactly
  for (int k = 0; k < 37; ++k) (void)a.normal();
  Rng restored(999);
  restored.s = a.s;
  Rng copy = a;
  for (int k = 0; k < 500; ++k) {
    const double n = a.normal(), u = a.uniform();
    const int64_t i = a.below(1000 + k);
    BOOST_REQUIRE_EQUAL(n, restored.normal());
    BOOST_REQUIRE_EQUAL(u, restored.uniform());
    BOOST_REQUIRE_EQUAL(i, restored.below(1000 + k));
    BOOST_REQUIRE_EQUAL(n, copy.normal());
    BOOST_REQUIRE_EQUAL(u, copy.uniform());
    BOOST_REQUIRE_EQUAL(i, copy.below(1000 + k));
  }
}

BOOST_AUTO_TEST_CASE(below_stays_in_range_and_covers_it) {
  Rng r(5);
  for (int64_t n : {int64_t(1), int64_t(2), int64_t(3), int64_t(10), int64_t(1000003), (int64_t(1) << 62) + 1,
                    std::numeric_limits<int64_t>::max()}) {
    for (int k = 0; k < 2000; ++k) {
      const int64_t x = r.below(n);
      BOOST_REQUIRE(x >= 0);
      BOOST_REQUIRE(x < n);
    }
  }
  // every residue of n = 7 appears with frequency near 1/7: 70,000 draws give 10,000 expected per bin with a
  // binomial standard deviation of sqrt(70000 * 1/7 * 6/7) ~ 93; +-600 is more than 6 sigma.
  std::array<int, 7> hist{};
  for (int k = 0; k < 70000; ++k) ++hist[size_t(r.below(7))];
  for (int h : hist) BOOST_TEST(std::abs(h - 10000) < 600);
  BOOST_CHECK_THROW(r.below(0), std::invalid_argument);
  for (int k = 0; k < 10000; ++k) {
    const double u = r.uniform();
    BOOST_REQUIRE(u >= 0.0);
    BOOST_REQUIRE(u < 1.0);
  }
}

BOOST_AUTO_TEST_CASE(normal_has_mean_zero_and_unit_variance) {
  // Over N = 100,000 draws the sample mean has standard error 1/sqrt(N) ~ 0.0032 and the sample variance
  // sqrt(2/N) ~ 0.0045 (normal distribution); 0.02 and 0.03 are over 6 standard errors, so a correct
  // generator never fails, while a wrong scale (e.g. variance 0.5 or 2) or bias fails clearly.
  Rng r(2024);
  const int N = 100000;
  double sum = 0, sum2 = 0, sum4 = 0;
  int beyond3 = 0;
  for (int k = 0; k < N; ++k) {
    const double x = r.normal();
    BOOST_REQUIRE(std::isfinite(x));
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
    beyond3 += std::abs(x) > 3;
  }
  const double mean = sum / N, var = sum2 / N - mean * mean;
  BOOST_TEST_MESSAGE("normal: mean " << mean << " var " << var << " E[x^4] " << sum4 / N);
  BOOST_TEST(std::abs(mean) < 0.02);
  BOOST_TEST(std::abs(var - 1.0) < 0.03);
  // the fourth moment (3 for a normal, 1.8 for a uniform of unit variance) checks the shape; its standard
  // error is sqrt(96/N) ~ 0.031, so +-0.2 is over 6 of them.
  BOOST_TEST(std::abs(sum4 / N - 3.0) < 0.2);
  // P(|x| > 3) = 0.0027 -> 270 expected, standard deviation ~16.4
  BOOST_TEST(std::abs(beyond3 - 270) < 100);
}

BOOST_AUTO_TEST_SUITE_END()
