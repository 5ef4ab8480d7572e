// Per-dataset checksums: the attribute "fnv1a64" (FNV-1a, 64 bit, over the dataset's elements in their stored
// type, little-endian) on every dataset a checkpoint needs to resume or evaluate. HDF5 does not checksum raw
// data, so a flipped bit would otherwise load silently. Shared by the checkpoint reader and the tools.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include "wavres/io/hdf5.hpp"

namespace wavres {

inline int64_t fnv1a64_bytes(const void* p, size_t bytes) {
  uint64_t h = 1469598103934665603ULL;
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  return int64_t(h);
}

// Writes a numeric dataset and its checksum attribute.
template <class T>
void write_checked(H5File& f, const std::string& obj, const T* data, const std::vector<int64_t>& dims) {
  size_t n = 1;
  for (auto d : dims) n *= size_t(d);
  f.write(obj, data, dims);
  f.set_attr(obj, "fnv1a64", fnv1a64_bytes(data, n * sizeof(T)));
}

// Recomputes the checksum of a numeric dataset from its stored bytes. Throws IoError naming the file and
// dataset if it does not match ("fails its checksum"), or if it is missing and `required`
// ("has no fnv1a64 checksum"). Returns false (nothing checked) when it is missing and not required.
bool verify_checksum(const H5File& f, const std::string& obj, bool required);

// Verifies every dataset of the file that carries a checksum; with `required_under`, a dataset below one of
// these prefixes ("/params/", "/vocab", ...) without a checksum is an error too. Returns the number verified.
int verify_all_checksums(const H5File& f, const std::vector<std::string>& required_under);

}  // namespace wavres
