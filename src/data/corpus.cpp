// Byte-level corpora: discovery, memory mapping, splits, vocabulary, batch gathering.
#include "wavres/data/corpus.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace wavres {

namespace {

// What `p` is when it is not a regular file ("a directory", "a FIFO", "a symbolic link loop", ...); empty for
// a regular file (or a link to one) and for nothing at all.
std::string non_regular_kind(const std::string& p) {
  struct stat ls {
  }, st{};
  if (::lstat(p.c_str(), &ls) != 0) return {};
  if (::stat(p.c_str(), &st) != 0)
    return errno == ELOOP ? "a symbolic link loop"
                          : "a dangling symbolic link (" + std::string(std::strerror(errno)) + ")";
  if (S_ISREG(st.st_mode)) return {};
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

// A read-only memory mapping of one whole file.
struct Corpus::Mapping {
  std::string path;
  int fd = -1;
  const uint8_t* data = nullptr;
  int64_t size = 0;

  explicit Mapping(const std::string& p) : path(p) {
    const std::string kind = non_regular_kind(p);  // before open(): opening a FIFO would block
    if (!kind.empty()) throw DataError(p + ": " + kind + ", not a regular file");
    fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DataError(p + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      throw DataError(p + ": cannot stat (" + std::strerror(e) + ")");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw DataError(p + ": not a regular file");
    }
    size = int64_t(st.st_size);
    if (size == 0) {
      ::close(fd);
      throw DataError(p + ": file is empty");
    }
    void* m = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw DataError(p + ": cannot memory-map (" + std::strerror(e) + ")");
    }
    data = static_cast<const uint8_t*>(m);
  }
  ~Mapping() {
    if (data) ::munmap(const_cast<uint8_t*>(data), size_t(size));
    if (fd >= 0) ::close(fd);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

namespace {

bool is_regular_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// The first of dirs that holds a regular file `name`, as a path; empty if none.
std::string find_in(const std::vector<std::string>& dirs, const std::string& name) {
  for (const auto& d : dirs) {
    std::string p = join(d, name);
    if (is_regular_file(p)) return p;
  }
  return {};
}

// Why none of `names` in `dirs` could be used: the first candidate that exists but is not a regular file, as
// " (…/text8-prefix is a FIFO, not a regular file)"; empty if there is none. `skip` is never a candidate (the
// dataset's own subdirectory, data_dir/text8, has the name of the full file).
std::string unusable_candidates(const std::vector<std::string>& dirs, const std::vector<std::string>& names,
                                const std::string& skip) {
  for (const auto& d : dirs)
    for (const auto& n : names) {
      const std::string p = join(d, n);
      if (p == skip) continue;
      const std::string kind = non_regular_kind(p);
      if (!kind.empty()) return " (" + p + " is " + kind + ", not a regular file)";
    }
  return {};
}

std::string list(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// Marks every byte value present in [p, p+n).
void mark_bytes(const uint8_t* p, int64_t n, std::array<uint8_t, 256>& seen) {
  // Four tables break the store-to-load dependency between neighbouring equal bytes.
  std::array<std::array<uint8_t, 256>, 4> t{};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    t[0][p[i]] = 1;
    t[1][p[i + 1]] = 1;
    t[2][p[i + 2]] = 1;
    t[3][p[i + 3]] = 1;
  }
  for (; i < n; ++i) t[0][p[i]] = 1;
  for (int b = 0; b < 256; ++b) seen[b] |= uint8_t(t[0][b] | t[1][b] | t[2][b] | t[3][b]);
}

std::string byte_str(uint8_t b) {
  char buf[32];
  if (b >= 0x20 && b < 0x7f && b != '\'')
    std::snprintf(buf, sizeof buf, "0x%02x ('%c')", unsigned(b), char(b));
  else
    std::snprintf(buf, sizeof buf, "0x%02x", unsigned(b));
  return buf;
}

constexpr int64_t kText8Size = 100000000;
constexpr int64_t kText8Train = 90000000;
constexpr int64_t kText8Val = 5000000;

}  // namespace

Vocab Vocab::from_bytes(const std::vector<uint8_t>& sorted_bytes) {
  Vocab v;
  v.id_of.fill(-1);
  for (size_t i = 0; i < sorted_bytes.size(); ++i) {
    if (i > 0 && sorted_bytes[i] <= sorted_bytes[i - 1])
      throw DataError("vocabulary bytes are not sorted and distinct (entry " + std::to_string(i) + " is " +
                      byte_str(sorted_bytes[i]) + ")");
    v.id_of[sorted_bytes[i]] = int16_t(i);
  }
  v.bytes = sorted_bytes;
  return v;
}

Corpus Corpus::open(const std::string& dataset, const std::string& data_dir) {
  Corpus c;
  c.dataset_ = dataset;
  const std::vector<std::string> dirs = {data_dir, join(data_dir, dataset)};
  const std::string where = list(dirs, " and ");

  if (dataset == "text8") {
    std::string full = find_in(dirs, "text8");
    if (!full.empty()) {
      auto m = std::make_shared<Mapping>(full);
      if (m->size != kText8Size)
        throw DataError(full + ": the full text8 must be exactly " + std::to_string(kText8Size) +
                        " bytes, found " + std::to_string(m->size) +
                        " (a shorter file should be named text8-prefix)");
      c.train_ = Split{full, m->data, kText8Train};
      c.val_ = Split{full, m->data + kText8Train, kText8Val};
      c.maps_.push_back(m);
    } else {
      std::string prefix = find_in(dirs, "text8-prefix");
      if (prefix.empty())
        throw DataError("text8: found neither text8 nor text8-prefix in " + where +
                        unusable_candidates(dirs, {"text8", "text8-prefix"}, join(data_dir, dataset)));
      auto m = std::make_shared<Mapping>(prefix);
      const int64_t split = m->size * 9 / 10;  // floor(0.9 * size), exact in integers
      if (split == 0 || split == m->size)
        throw DataError(prefix + ": too small for a 90 %/10 % train/validation split (" +
                        std::to_string(m->size) + " bytes)");
      c.train_ = Split{prefix, m->data, split};
      c.val_ = Split{prefix, m->data + split, m->size - split};
      c.maps_.push_back(m);
    }
  } else if (dataset == "tinystories") {
    std::string tr = find_in(dirs, "TinyStories-train.txt"), va = find_in(dirs, "TinyStories-valid.txt");
    if (tr.empty() || va.empty()) {
      tr = find_in(dirs, "train-prefix.txt");
      va = find_in(dirs, "valid-subset.txt");
      if (tr.empty() || va.empty()) {
        std::string found;
        for (const char* n :
             {"TinyStories-train.txt", "TinyStories-valid.txt", "train-prefix.txt", "valid-subset.txt"})
          if (!find_in(dirs, n).empty()) found += std::string(found.empty() ? "" : ", ") + n;
        throw DataError(
            "tinystories: found neither TinyStories-train.txt + TinyStories-valid.txt nor train-prefix.txt + "
            "valid-subset.txt in " +
            where + (found.empty() ? std::string() : " (only " + found + ")") +
            unusable_candidates(
                dirs,
                {"TinyStories-train.txt", "TinyStories-valid.txt", "train-prefix.txt", "valid-subset.txt"},
                ""));
      }
    }
    auto mt = std::make_shared<Mapping>(tr);
    auto mv = std::make_shared<Mapping>(va);
    c.train_ = Split{tr, mt->data, mt->size};
    c.val_ = Split{va, mv->data, mv->size};
    c.maps_.push_back(mt);
    c.maps_.push_back(mv);
  } else {
    throw DataError("unknown dataset '" + dataset + "' (expected text8 or tinystories)");
  }

  std::array<uint8_t, 256> seen{};
  mark_bytes(c.train_.data, c.train_.size, seen);
  mark_bytes(c.val_.data, c.val_.size, seen);
  if (dataset == "text8") c.require_text8_alphabet(seen);
  std::vector<uint8_t> bytes;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) bytes.push_back(uint8_t(b));
  if (bytes.size() < 2)  // a one-token vocabulary trains to loss 0 and learns nothing
    throw DataError(c.train_.file + ": holds a single distinct byte, " + byte_str(bytes.at(0)) +
                    "; there is nothing to learn");
  c.vocab_ = Vocab::from_bytes(bytes);
  return c;
}

std::string Corpus::describe() const {
  std::string s = dataset_ + ": ";
  if (train_.file == val_.file)
    s +=
        train_.file + " train " + std::to_string(train_.size) + " B, val " + std::to_string(val_.size) + " B";
  else
    s += "train " + train_.file + " " + std::to_string(train_.size) + " B, val " + val_.file + " " +
         std::to_string(val_.size) + " B";
  return s + ", vocab " + std::to_string(vocab_.size());
}

void Corpus::use_vocab(const Vocab& v) {
  for (const Split* s : {&train_, &val_}) {
    std::array<uint8_t, 256> seen{};
    mark_bytes(s->data, s->size, seen);
    bool missing = false;
    for (int b = 0; b < 256; ++b) missing |= seen[b] && v.id_of[b] < 0;
    if (!missing) continue;
    // the offset within the file (the validation split of text8 starts inside the file)
    int64_t base = 0;
    for (const auto& m : maps_)
      if (s->data >= m->data && s->data < m->data + m->size) base = s->data - m->data;
    for (int64_t i = 0; i < s->size; ++i) {
      const uint8_t b = s->data[i];
      if (v.id_of[b] < 0)
        throw DataError(s->file + ": byte " + byte_str(b) + " at offset " + std::to_string(base + i) +
                        " is not in the vocabulary (" + std::to_string(v.size()) + " entries)");
    }
  }
  vocab_ = v;
}

// text8 is lower-case a-z and space by definition (Mahoney's cleaning of Wikipedia): any other byte means
// another file (UTF-8 text, CRLF line ends, binary data), named with its first offset. TinyStories is
// byte-level and takes any byte.
void Corpus::require_text8_alphabet(const std::array<uint8_t, 256>& seen) const {
  auto allowed = [](int b) { return b == ' ' || (b >= 'a' && b <= 'z'); };
  bool bad = false;
  for (int b = 0; b < 256; ++b) bad |= seen[b] && !allowed(b);
  if (!bad) return;
  for (const Split* s : {&train_, &val_}) {
    const int64_t base = s == &val_ && val_.file == train_.file ? train_.size : 0;
    for (int64_t i = 0; i < s->size; ++i)
      if (!allowed(s->data[i]))
        throw DataError(s->file + ": byte " + byte_str(s->data[i]) + " at offset " +
                        std::to_string(base + i) + " is not text8 (a-z and space only)");
  }
}

void Corpus::require_window(const Split& s, int T) const {
  const char* which = &s == &train_ ? "training" : &s == &val_ ? "validation" : "data";
  if (T < 1) throw DataError(s.file + ": window length T must be at least 1, got " + std::to_string(T));
  if (s.size < int64_t(T) + 1)
    throw DataError(s.file + ": the " + std::string(which) + " split has " + std::to_string(s.size) +
                    " bytes, fewer than the T+1 = " + std::to_string(int64_t(T) + 1) +
                    " needed for one window");
}

void Corpus::gather(const Split& s, const std::vector<int64_t>& offsets, int T, int32_t* out) const {
  const int64_t W = int64_t(T) + 1;
  const auto& id_of = vocab_.id_of;
  for (size_t b = 0; b < offsets.size(); ++b) {
    const int64_t off = offsets[b];
    assert(off >= 0 && off + W <= s.size);
    const uint8_t* src = s.data + off;
    int32_t* dst = out + int64_t(b) * W;
    for (int64_t t = 0; t < W; ++t) {
      dst[t] = id_of[src[t]];
      assert(dst[t] >= 0);
    }
  }
}

}  // namespace wavres
