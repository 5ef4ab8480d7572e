// Per-dataset checksums (see include/wavres/io/checksum.hpp).
#include "wavres/io/checksum.hpp"

namespace wavres {
namespace {

template <class T>
int64_t hash_of(const std::vector<T>& v) {
  return fnv1a64_bytes(v.data(), v.size() * sizeof(T));
}

}  // namespace

bool verify_checksum(const H5File& f, const std::string& obj, bool required) {
  if (!f.has_attr(obj, "fnv1a64")) {
    if (required)
      throw IoError(f.path() + ": " + obj + " has no fnv1a64 checksum (required by this format version)");
    return false;
  }
  const int64_t want = f.attr_int(obj, "fnv1a64");
  // hash the elements in the type they are stored in, as written
  const std::string t = f.dtype(obj);
  int64_t got = 0;
  if (t == "float32")
    got = hash_of(f.read_f32(obj));
  else if (t == "float64")
    got = hash_of(f.read_f64(obj));
  else if (t == "int32")
    got = hash_of(f.read_i32(obj));
  else if (t == "int64")
    got = hash_of(f.read_i64(obj));
  else if (t == "uint64")
    got = hash_of(f.read_u64(obj));
  else if (t == "uint8")
    got = hash_of(f.read_u8(obj));
  else
    throw IoError(f.path() + ": " + obj + " carries a checksum but has type " + t +
                  ", which is never checksummed");
  if (got != want) throw IoError(f.path() + ": " + obj + " fails its checksum (the file is corrupted)");
  return true;
}

int verify_all_checksums(const H5File& f, const std::vector<std::string>& required_under) {
  int n = 0;
  for (const auto& d : f.datasets()) {
    bool required = false;
    for (const auto& p : required_under) required |= d.compare(0, p.size(), p) == 0;
    n += verify_checksum(f, d, required) ? 1 : 0;
  }
  return n;
}

}  // namespace wavres
