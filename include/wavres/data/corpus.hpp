// Byte-level corpora (text8, TinyStories): file discovery, splits, vocabulary, batch sampling.
// Files are memory-mapped, so the full corpora (100 MB text8, ~2 GB TinyStories) cost no copy.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace wavres {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A byte range of one memory-mapped file.
struct Split {
  std::string file;  // path, for error messages
  const uint8_t* data = nullptr;
  int64_t size = 0;
};

// Vocabulary: the sorted bytes present in train+validation. id_of[b] = -1 for absent bytes.
struct Vocab {
  std::vector<uint8_t> bytes;
  std::array<int16_t, 256> id_of{};
  static Vocab from_bytes(const std::vector<uint8_t>& sorted_bytes);
  int size() const { return int(bytes.size()); }
};

class Corpus {
 public:
  // dataset: "text8" or "tinystories". data_dir holds either the full files
  //   text8:        text8 (100,000,000 bytes -> 90M/5M/5M train/val/test)  else  text8-prefix (90 %/10 %)
  //   tinystories:  TinyStories-train.txt + TinyStories-valid.txt           else  train-prefix.txt +
  //   valid-subset.txt
  // searched in data_dir and data_dir/<dataset>/. Throws DataError naming the file for
  // missing/empty/unreadable.
  static Corpus open(const std::string& dataset, const std::string& data_dir);

  const std::string& dataset() const { return dataset_; }
  const Split& train() const { return train_; }
  const Split& val() const { return val_; }
  const Vocab& vocab() const { return vocab_; }
  std::string describe() const;  // one line: files, split sizes, vocab size

  // Replace the vocabulary (e.g. the one stored in a checkpoint); throws DataError naming the file and byte
  // offset of the first byte that the given vocabulary lacks.
  void use_vocab(const Vocab& v);

  // Throws DataError naming the split's file if it has fewer than T+1 bytes.
  void require_window(const Split& s, int T) const;

  // B windows of T+1 token ids starting at the given byte offsets: out[b*(T+1) + t].
  void gather(const Split& s, const std::vector<int64_t>& offsets, int T, int32_t* out) const;

 private:
  struct Mapping;
  void require_text8_alphabet(const std::array<uint8_t, 256>& seen) const;
  std::string dataset_;
  std::vector<std::shared_ptr<Mapping>> maps_;
  Split train_, val_;
  Vocab vocab_;
};

// Deterministic, platform-independent RNG (splitmix64 seeding + xoshiro256**); its state is 4 words so that
// checkpoints can save and restore it bit-for-bit.
struct Rng {
  std::array<uint64_t, 4> s{};
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();          // [0, 1)
  int64_t below(int64_t n);  // [0, n), n > 0
  double normal();           // standard normal (Box-Muller, no cached second value)
};

}  // namespace wavres
