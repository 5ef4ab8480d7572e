// Thin RAII layer over the HDF5 C API: the only place that talks to libhdf5.
// Paths are absolute ("/params/embed/token"); intermediate groups are created on write.
// Every failure throws wavres::IoError with a one-line message naming the file and the object.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace wavres {

struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class H5File {
 public:
  // create truncates an existing file; memory builds the file in RAM (HDF5's core driver, nothing touches the
  // disk) until close_into() writes it out, so a full disk is an ordinary write error and never leaves HDF5
  // with a half-flushed open file (which crashed at exit: H5F__close_cb from H5_term_library)
  enum class Mode { read, create, memory };
  H5File(const std::string& path, Mode mode);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  H5File(H5File&&) noexcept;

  const std::string& path() const { return path_; }
  bool exists(const std::string& obj) const;  // a group or dataset at this path
  std::vector<std::string> datasets() const;  // absolute paths of every dataset in the file
  // stored element type: float32, float64, int32, int64, uint8, uint64, string or other
  std::string dtype(const std::string& obj) const;

  // datasets (row-major; dims may be empty for a scalar)
  void write(const std::string& obj, const float* data, const std::vector<int64_t>& dims);
  void write(const std::string& obj, const double* data, const std::vector<int64_t>& dims);
  void write(const std::string& obj, const int32_t* data, const std::vector<int64_t>& dims);
  void write(const std::string& obj, const int64_t* data, const std::vector<int64_t>& dims);
  void write(const std::string& obj, const uint8_t* data, const std::vector<int64_t>& dims);
  void write(const std::string& obj, const uint64_t* data, const std::vector<int64_t>& dims);
  // variable-length UTF-8 strings, row-major
  void write_strings(const std::string& obj, const std::vector<std::string>& s,
                     const std::vector<int64_t>& dims);

  std::vector<int64_t> dims(const std::string& obj) const;
  // read converts to the requested type (HDF5 conversion); throws if the element count differs from expected
  std::vector<float> read_f32(const std::string& obj) const;
  std::vector<double> read_f64(const std::string& obj) const;
  std::vector<int32_t> read_i32(const std::string& obj) const;
  std::vector<int64_t> read_i64(const std::string& obj) const;
  std::vector<uint8_t> read_u8(const std::string& obj) const;
  std::vector<uint64_t> read_u64(const std::string& obj) const;
  std::vector<std::string> read_strings(const std::string& obj) const;

  // attributes on a group (created if missing)
  void set_attr(const std::string& group, const std::string& name, const std::string& value);
  void set_attr(const std::string& group, const std::string& name, int64_t value);
  void set_attr(const std::string& group, const std::string& name, double value);
  bool has_attr(const std::string& group, const std::string& name) const;
  std::string attr_string(const std::string& group, const std::string& name) const;
  int64_t attr_int(const std::string& group, const std::string& name) const;
  double attr_double(const std::string& group, const std::string& name) const;

  void flush();
  // Mode::memory only: closes the file and writes its bytes to `dest` (created or truncated, fsync'ed).
  // Throws IoError naming dest and the errno text (e.g. "No space left on device").
  void close_into(const std::string& dest);

 private:
  std::string path_;
  int64_t id_ = -1;  // hid_t
};

}  // namespace wavres
