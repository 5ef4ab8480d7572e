// Thin RAII layer over the HDF5 C API (see include/wavres/io/hdf5.hpp).
#include "wavres/io/hdf5.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace wavres {
namespace {

static_assert(sizeof(hid_t) <= sizeof(int64_t), "hid_t must fit in the int64_t handle of H5File");

// Turn off libhdf5's automatic error-stack printing; errors become IoError messages instead. Called on every
// file open: it is cheap, and in thread-safe builds the setting is per thread.
void silence_hdf5() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// The innermost message on the HDF5 error stack (e.g. "truncated file: eof = 1024, ..."), then clears it.
std::string hdf5_detail() {
  std::string msg;
  auto walker = [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
    auto* out = static_cast<std::string*>(data);
    if (n == 0 && e && e->desc) *out = e->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walker, &msg);  // n == 0: the innermost, most specific error
  H5Eclear2(H5E_DEFAULT);
  // one line only
  for (char& c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  return msg;
}

// RAII handle with the right close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

Handle dataset_h(hid_t id) {
  return Handle(id, H5Dclose);
}
Handle space_h(hid_t id) {
  return Handle(id, H5Sclose);
}
Handle type_h(hid_t id) {
  return Handle(id, H5Tclose);
}
Handle plist_h(hid_t id) {
  return Handle(id, H5Pclose);
}
Handle attr_h(hid_t id) {
  return Handle(id, H5Aclose);
}
Handle object_h(hid_t id) {
  return Handle(id, H5Oclose);
}
Handle group_h(hid_t id) {
  return Handle(id, H5Gclose);
}

// "/a/b" -> {"a", "b"}; a missing leading slash is tolerated.
std::vector<std::string> components(const std::string& obj) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < obj.size()) {
    size_t j = obj.find('/', i);
    if (j == std::string::npos) j = obj.size();
    if (j > i) out.push_back(obj.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string normalize(const std::string& obj) {
  std::string out;
  for (const auto& c : components(obj)) out += "/" + c;
  return out.empty() ? std::string("/") : out;
}

std::string with_detail(const std::string& what) {
  std::string d = hdf5_detail();
  return d.empty() ? what : what + " (" + d + ")";
}

hsize_t element_count(const std::vector<int64_t>& dims) {
  hsize_t n = 1;
  for (int64_t d : dims) n *= hsize_t(d);
  return n;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

// Memory and file types of the numeric element types.
template <class T>
struct H5Types;
template <>
struct H5Types<float> {
  static hid_t mem() { return H5T_NATIVE_FLOAT; }
  static hid_t file() { return H5T_IEEE_F32LE; }
  static const char* name() { return "float32"; }
};
template <>
struct H5Types<double> {
  static hid_t mem() { return H5T_NATIVE_DOUBLE; }
  static hid_t file() { return H5T_IEEE_F64LE; }
  static const char* name() { return "float64"; }
};
template <>
struct H5Types<int32_t> {
  static hid_t mem() { return H5T_NATIVE_INT32; }
  static hid_t file() { return H5T_STD_I32LE; }
  static const char* name() { return "int32"; }
};
template <>
struct H5Types<int64_t> {
  static hid_t mem() { return H5T_NATIVE_INT64; }
  static hid_t file() { return H5T_STD_I64LE; }
  static const char* name() { return "int64"; }
};
template <>
struct H5Types<uint8_t> {
  static hid_t mem() { return H5T_NATIVE_UINT8; }
  static hid_t file() { return H5T_STD_U8LE; }
  static const char* name() { return "uint8"; }
};
template <>
struct H5Types<uint64_t> {
  static hid_t mem() { return H5T_NATIVE_UINT64; }
  static hid_t file() { return H5T_STD_U64LE; }
  static const char* name() { return "uint64"; }
};

void reclaim_vlen(hid_t type, hid_t space, void* buf) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}

// Trim a fixed-length string according to its padding.
std::string trim_fixed(const char* p, size_t size, H5T_str_t pad) {
  size_t n = size;
  if (pad == H5T_STR_SPACEPAD) {
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\0')) --n;
  } else {
    const void* z = std::memchr(p, '\0', size);
    if (z) n = size_t(static_cast<const char*>(z) - p);
  }
  return std::string(p, n);
}

// Reads `n` strings from a dataset or attribute whose stored type is `ftype`.
// read(memtype, buf) performs the H5Dread/H5Aread.
template <class ReadFn>
bool read_string_values(hid_t ftype, hid_t space, hsize_t n, ReadFn read, std::vector<std::string>& out,
                        std::string& err) {
  if (H5Tget_class(ftype) != H5T_STRING) {
    err = "is not a string";
    return false;
  }
  const htri_t vlen = H5Tis_variable_str(ftype);
  if (vlen < 0) {
    err = with_detail("cannot inspect its string type");
    return false;
  }
  Handle mt = type_h(H5Tcopy(H5T_C_S1));
  if (!mt.ok()) {
    err = with_detail("cannot create a string type");
    return false;
  }
  H5Tset_cset(mt.get(), H5Tget_cset(ftype));
  out.clear();
  out.reserve(size_t(n));
  if (vlen > 0) {
    H5Tset_size(mt.get(), H5T_VARIABLE);
    std::vector<char*> buf(static_cast<size_t>(n), nullptr);
    if (n > 0 && read(mt.get(), buf.data()) < 0) {
      err = with_detail("cannot read the strings");
      return false;
    }
    for (char* s : buf) out.emplace_back(s ? s : "");
    if (n > 0) reclaim_vlen(mt.get(), space, buf.data());
  } else {
    const size_t size = H5Tget_size(ftype);
    if (size == 0) {
      err = with_detail("has a zero-size string type");
      return false;
    }
    H5Tset_size(mt.get(), size);
    const H5T_str_t pad = H5Tget_strpad(ftype);
    H5Tset_strpad(mt.get(), pad == H5T_STR_ERROR ? H5T_STR_NULLPAD : pad);
    std::vector<char> buf(static_cast<size_t>(n) * size);
    if (n > 0 && read(mt.get(), buf.data()) < 0) {
      err = with_detail("cannot read the strings");
      return false;
    }
    for (hsize_t i = 0; i < n; ++i) out.push_back(trim_fixed(buf.data() + i * size, size, pad));
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// file

H5File::H5File(const std::string& path, Mode mode) : path_(path) {
  silence_hdf5();
  hid_t id = -1;
  if (mode == Mode::read) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw IoError(path + ": no such file (" + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) throw IoError(path + ": not a regular file");
    const htri_t is = H5Fis_hdf5(path.c_str());
    if (is == 0) {
      H5Eclear2(H5E_DEFAULT);
      throw IoError(path + ": not an HDF5 file");
    }
    if (is < 0) throw IoError(path + ": " + with_detail("cannot read file"));
    id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw IoError(path + ": " + with_detail("corrupt or truncated HDF5 file"));
  } else if (mode == Mode::memory) {
    // core driver without backing store: the file lives in memory, grown 16 MiB at a time
    Handle fapl = plist_h(H5Pcreate(H5P_FILE_ACCESS));
    if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), size_t(16) << 20, 0) < 0)
      throw IoError(path + ": " + with_detail("cannot set up an in-memory HDF5 file"));
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    if (id < 0) throw IoError(path + ": " + with_detail("cannot create an in-memory HDF5 file"));
  } else {
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0) throw IoError(path + ": " + with_detail("cannot create HDF5 file"));
  }
  id_ = int64_t(id);
}

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(hid_t(id_));
}

H5File::H5File(H5File&& o) noexcept : path_(std::move(o.path_)), id_(o.id_) {
  o.id_ = -1;
}

bool H5File::exists(const std::string& obj) const {
  const hid_t f = hid_t(id_);
  std::string prefix;
  for (const auto& c : components(obj)) {
    prefix += "/" + c;
    const htri_t e = H5Lexists(f, prefix.c_str(), H5P_DEFAULT);
    if (e <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  if (prefix.empty()) return true;                                     // the root group
  const htri_t e = H5Oexists_by_name(f, prefix.c_str(), H5P_DEFAULT);  // false for a dangling soft link
  H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

void H5File::flush() {
  if (H5Fflush(hid_t(id_), H5F_SCOPE_GLOBAL) < 0) throw IoError(path_ + ": " + with_detail("cannot flush"));
}

void H5File::close_into(const std::string& dest) {
  flush();
  const ssize_t n = H5Fget_file_image(hid_t(id_), nullptr, 0);
  if (n < 0) throw IoError(path_ + ": " + with_detail("cannot get the in-memory file image"));
  std::vector<char> image(static_cast<size_t>(n));
  if (H5Fget_file_image(hid_t(id_), image.data(), size_t(n)) != n)
    throw IoError(path_ + ": " + with_detail("cannot copy the in-memory file image"));
  H5Fclose(hid_t(id_));  // in memory: nothing to flush to disk, so this cannot fail on a full disk
  id_ = -1;
  const int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(dest + ": cannot be created (" + std::strerror(errno) + ")");
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    throw IoError(dest + ": " + what + ": " + std::strerror(e));
  };
  for (size_t done = 0; done < image.size();) {
    const ssize_t w = ::write(fd, image.data() + done, image.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("cannot be written");  // ENOSPC, EFBIG (ulimit -f with SIGXFSZ ignored), EIO, ...
    done += size_t(w);
  }
  if (::fsync(fd) != 0 && errno != EINVAL) fail("fsync failed");
  if (::close(fd) != 0)
    throw IoError(dest + ": cannot be closed (" + std::string(std::strerror(errno)) + ")");
}

namespace {

// H5Lvisit callback: records the paths of datasets (groups, named types and dangling links are skipped).
herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t*, void* data) {
  const hid_t o = H5Oopen(group, name, H5P_DEFAULT);
  if (o < 0) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  if (H5Iget_type(o) == H5I_DATASET)
    static_cast<std::vector<std::string>*>(data)->push_back("/" + std::string(name));
  H5Oclose(o);
  return 0;
}

}  // namespace

std::vector<std::string> H5File::datasets() const {
  std::vector<std::string> out;
  if (H5Lvisit(hid_t(id_), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &out) < 0)
    throw IoError(path_ + ": " + with_detail("cannot list the datasets"));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// writing

namespace {

// Deletes `obj` if it exists and returns a link-creation property list that creates intermediate groups.
Handle prepare_create(const H5File& f, hid_t fid, const std::string& obj) {
  if (components(obj).empty()) throw IoError(f.path() + ": cannot create a dataset at the root group");
  if (H5Lexists(fid, obj.c_str(), H5P_DEFAULT) > 0) {
    if (H5Ldelete(fid, obj.c_str(), H5P_DEFAULT) < 0)
      throw IoError(f.path() + ": " + with_detail("cannot replace " + obj));
  }
  H5Eclear2(H5E_DEFAULT);
  Handle lcpl = plist_h(H5Pcreate(H5P_LINK_CREATE));
  if (!lcpl.ok() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
    throw IoError(f.path() + ": " + with_detail("cannot create a property list for " + obj));
  return lcpl;
}

Handle make_space(const H5File& f, const std::string& obj, const std::vector<int64_t>& dims) {
  if (dims.empty()) {
    Handle s = space_h(H5Screate(H5S_SCALAR));
    if (!s.ok()) throw IoError(f.path() + ": " + with_detail("cannot create a dataspace for " + obj));
    return s;
  }
  std::vector<hsize_t> hd(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) throw IoError(f.path() + ": negative dimension in " + dims_str(dims) + " for " + obj);
    hd[i] = hsize_t(dims[i]);
  }
  Handle s = space_h(H5Screate_simple(int(hd.size()), hd.data(), nullptr));
  if (!s.ok())
    throw IoError(f.path() + ": " +
                  with_detail("cannot create a dataspace " + dims_str(dims) + " for " + obj));
  return s;
}

template <class T>
void write_numeric(const H5File& f, hid_t fid, const std::string& obj_in, const T* data,
                   const std::vector<int64_t>& dims) {
  const std::string obj = normalize(obj_in);
  Handle space = make_space(f, obj, dims);
  if (element_count(dims) > 0 && data == nullptr) throw IoError(f.path() + ": null data for " + obj);
  Handle lcpl = prepare_create(f, fid, obj);
  Handle ds = dataset_h(
      H5Dcreate2(fid, obj.c_str(), H5Types<T>::file(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!ds.ok()) throw IoError(f.path() + ": " + with_detail("cannot create dataset " + obj));
  if (element_count(dims) > 0 &&
      H5Dwrite(ds.get(), H5Types<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw IoError(f.path() + ": " + with_detail("cannot write dataset " + obj));
}

}  // namespace

void H5File::write(const std::string& obj, const float* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}
void H5File::write(const std::string& obj, const double* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}
void H5File::write(const std::string& obj, const int32_t* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}
void H5File::write(const std::string& obj, const int64_t* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}
void H5File::write(const std::string& obj, const uint8_t* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}
void H5File::write(const std::string& obj, const uint64_t* data, const std::vector<int64_t>& dims) {
  write_numeric(*this, hid_t(id_), obj, data, dims);
}

void H5File::write_strings(const std::string& obj_in, const std::vector<std::string>& s,
                           const std::vector<int64_t>& dims) {
  const std::string obj = normalize(obj_in);
  const hid_t fid = hid_t(id_);
  Handle space = make_space(*this, obj, dims);
  if (element_count(dims) != hsize_t(s.size()))
    throw IoError(path_ + ": " + std::to_string(s.size()) + " strings do not fit dims " + dims_str(dims) +
                  " of " + obj);
  std::vector<const char*> ptrs(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].find('\0') != std::string::npos)
      throw IoError(path_ + ": string " + std::to_string(i) + " of " + obj + " contains a NUL byte");
    ptrs[i] = s[i].c_str();
  }
  Handle type = type_h(H5Tcopy(H5T_C_S1));
  if (!type.ok() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    throw IoError(path_ + ": " + with_detail("cannot create a string type for " + obj));
  Handle lcpl = prepare_create(*this, fid, obj);
  Handle ds =
      dataset_h(H5Dcreate2(fid, obj.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!ds.ok()) throw IoError(path_ + ": " + with_detail("cannot create dataset " + obj));
  if (!ptrs.empty() && H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    throw IoError(path_ + ": " + with_detail("cannot write dataset " + obj));
}

// ---------------------------------------------------------------------------------------------------------------
// reading

namespace {

Handle open_dataset(const H5File& f, hid_t fid, const std::string& obj) {
  if (!f.exists(obj)) throw IoError(f.path() + ": no dataset " + obj);
  Handle ds = dataset_h(H5Dopen2(fid, obj.c_str(), H5P_DEFAULT));
  if (!ds.ok()) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(f.path() + ": " + obj + " is not a dataset");
  }
  return ds;
}

Handle dataset_space(const H5File& f, const Handle& ds, const std::string& obj, hsize_t& n) {
  Handle space = space_h(H5Dget_space(ds.get()));
  if (!space.ok()) throw IoError(f.path() + ": " + with_detail("cannot get the dataspace of " + obj));
  const hssize_t np = H5Sget_simple_extent_npoints(space.get());
  if (np < 0) throw IoError(f.path() + ": " + with_detail("cannot get the size of " + obj));
  n = hsize_t(np);
  return space;
}

template <class T>
std::vector<T> read_numeric(const H5File& f, hid_t fid, const std::string& obj_in) {
  const std::string obj = normalize(obj_in);
  Handle ds = open_dataset(f, fid, obj);
  hsize_t n = 0;
  Handle space = dataset_space(f, ds, obj, n);
  Handle ftype = type_h(H5Dget_type(ds.get()));
  if (!ftype.ok()) throw IoError(f.path() + ": " + with_detail("cannot get the type of " + obj));
  const H5T_class_t cls = H5Tget_class(ftype.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw IoError(f.path() + ": " + obj + " is not numeric, cannot read it as " + H5Types<T>::name());
  std::vector<T> out(static_cast<size_t>(n));
  if (n > 0 && H5Dread(ds.get(), H5Types<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw IoError(f.path() + ": " +
                  with_detail(std::string("cannot read ") + obj + " as " + H5Types<T>::name()));
  return out;
}

}  // namespace

std::vector<int64_t> H5File::dims(const std::string& obj_in) const {
  const std::string obj = normalize(obj_in);
  Handle ds = open_dataset(*this, hid_t(id_), obj);
  Handle space = space_h(H5Dget_space(ds.get()));
  if (!space.ok()) throw IoError(path_ + ": " + with_detail("cannot get the dataspace of " + obj));
  const int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0) throw IoError(path_ + ": " + with_detail("cannot get the rank of " + obj));
  std::vector<hsize_t> hd(static_cast<size_t>(nd));
  if (nd > 0 && H5Sget_simple_extent_dims(space.get(), hd.data(), nullptr) < 0)
    throw IoError(path_ + ": " + with_detail("cannot get the dims of " + obj));
  return std::vector<int64_t>(hd.begin(), hd.end());
}

std::string H5File::dtype(const std::string& obj_in) const {
  const std::string obj = normalize(obj_in);
  Handle ds = open_dataset(*this, hid_t(id_), obj);
  Handle t = type_h(H5Dget_type(ds.get()));
  if (!t.ok()) throw IoError(path_ + ": " + with_detail("cannot get the type of " + obj));
  const H5T_class_t cls = H5Tget_class(t.get());
  const size_t size = H5Tget_size(t.get());
  if (cls == H5T_STRING) return "string";
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : "other";
  if (cls == H5T_INTEGER) {
    const bool sgn = H5Tget_sign(t.get()) == H5T_SGN_2;
    if (size == 1 && !sgn) return "uint8";
    if (size == 4 && sgn) return "int32";
    if (size == 8) return sgn ? "int64" : "uint64";
  }
  return "other";
}

std::vector<float> H5File::read_f32(const std::string& obj) const {
  return read_numeric<float>(*this, hid_t(id_), obj);
}
std::vector<double> H5File::read_f64(const std::string& obj) const {
  return read_numeric<double>(*this, hid_t(id_), obj);
}
std::vector<int32_t> H5File::read_i32(const std::string& obj) const {
  return read_numeric<int32_t>(*this, hid_t(id_), obj);
}
std::vector<int64_t> H5File::read_i64(const std::string& obj) const {
  return read_numeric<int64_t>(*this, hid_t(id_), obj);
}
std::vector<uint8_t> H5File::read_u8(const std::string& obj) const {
  return read_numeric<uint8_t>(*this, hid_t(id_), obj);
}
std::vector<uint64_t> H5File::read_u64(const std::string& obj) const {
  return read_numeric<uint64_t>(*this, hid_t(id_), obj);
}

std::vector<std::string> H5File::read_strings(const std::string& obj_in) const {
  const std::string obj = normalize(obj_in);
  Handle ds = open_dataset(*this, hid_t(id_), obj);
  hsize_t n = 0;
  Handle space = dataset_space(*this, ds, obj, n);
  Handle ftype = type_h(H5Dget_type(ds.get()));
  if (!ftype.ok()) throw IoError(path_ + ": " + with_detail("cannot get the type of " + obj));
  std::vector<std::string> out;
  std::string err;
  const hid_t d = ds.get();
  auto rd = [d, &space](hid_t mt, void* buf) {
    return H5Dread(d, mt, space.get(), space.get(), H5P_DEFAULT, buf);
  };
  if (!read_string_values(ftype.get(), space.get(), n, rd, out, err))
    throw IoError(path_ + ": " + obj + " " + err);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// attributes

namespace {

// Opens the object at `group`, creating a group there (with intermediate groups) if it is missing.
Handle open_or_create_object(const H5File& f, hid_t fid, const std::string& group) {
  if (!f.exists(group)) {
    Handle lcpl = plist_h(H5Pcreate(H5P_LINK_CREATE));
    if (!lcpl.ok() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
      throw IoError(f.path() + ": " + with_detail("cannot create a property list for " + group));
    Handle g = group_h(H5Gcreate2(fid, group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!g.ok()) throw IoError(f.path() + ": " + with_detail("cannot create group " + group));
  }
  Handle o = object_h(H5Oopen(fid, group.c_str(), H5P_DEFAULT));
  if (!o.ok()) throw IoError(f.path() + ": " + with_detail("cannot open " + group));
  return o;
}

// Creates (replacing) a scalar attribute and writes one value of `mem_type`.
void write_scalar_attr(const H5File& f, hid_t fid, const std::string& group_in, const std::string& name,
                       hid_t file_type, hid_t mem_type, const void* value) {
  const std::string group = normalize(group_in);
  const std::string where = group + (group == "/" ? "" : "/") + "@" + name;
  Handle o = open_or_create_object(f, fid, group);
  const htri_t ex = H5Aexists(o.get(), name.c_str());
  if (ex < 0) throw IoError(f.path() + ": " + with_detail("cannot look up attribute " + where));
  if (ex > 0 && H5Adelete(o.get(), name.c_str()) < 0)
    throw IoError(f.path() + ": " + with_detail("cannot replace attribute " + where));
  Handle space = space_h(H5Screate(H5S_SCALAR));
  Handle a = attr_h(H5Acreate2(o.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.ok()) throw IoError(f.path() + ": " + with_detail("cannot create attribute " + where));
  if (H5Awrite(a.get(), mem_type, value) < 0)
    throw IoError(f.path() + ": " + with_detail("cannot write attribute " + where));
}

struct OpenAttr {
  Handle obj, attr, space, type;
  hsize_t n = 0;
  std::string where;
};

OpenAttr open_attr(const H5File& f, hid_t fid, const std::string& group_in, const std::string& name) {
  OpenAttr r;
  const std::string group = normalize(group_in);
  r.where = group + (group == "/" ? "" : "/") + "@" + name;
  if (!f.exists(group))
    throw IoError(f.path() + ": no group " + group + " (looking for attribute " + name + ")");
  r.obj = object_h(H5Oopen(fid, group.c_str(), H5P_DEFAULT));
  if (!r.obj.ok()) throw IoError(f.path() + ": " + with_detail("cannot open " + group));
  const htri_t ex = H5Aexists(r.obj.get(), name.c_str());
  if (ex <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw IoError(f.path() + ": no attribute " + r.where);
  }
  r.attr = attr_h(H5Aopen(r.obj.get(), name.c_str(), H5P_DEFAULT));
  if (!r.attr.ok()) throw IoError(f.path() + ": " + with_detail("cannot open attribute " + r.where));
  r.space = space_h(H5Aget_space(r.attr.get()));
  r.type = type_h(H5Aget_type(r.attr.get()));
  if (!r.space.ok() || !r.type.ok())
    throw IoError(f.path() + ": " + with_detail("cannot inspect attribute " + r.where));
  const hssize_t np = H5Sget_simple_extent_npoints(r.space.get());
  if (np < 0) throw IoError(f.path() + ": " + with_detail("cannot get the size of attribute " + r.where));
  r.n = hsize_t(np);
  return r;
}

}  // namespace

void H5File::set_attr(const std::string& group, const std::string& name, const std::string& value) {
  if (value.find('\0') != std::string::npos)
    throw IoError(path_ + ": attribute " + name + " of " + group + " contains a NUL byte");
  Handle type = type_h(H5Tcopy(H5T_C_S1));
  if (!type.ok() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    throw IoError(path_ + ": " + with_detail("cannot create a string type for attribute " + name));
  const char* p = value.c_str();
  write_scalar_attr(*this, hid_t(id_), group, name, type.get(), type.get(), &p);
}

void H5File::set_attr(const std::string& group, const std::string& name, int64_t value) {
  write_scalar_attr(*this, hid_t(id_), group, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void H5File::set_attr(const std::string& group, const std::string& name, double value) {
  write_scalar_attr(*this, hid_t(id_), group, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

bool H5File::has_attr(const std::string& group_in, const std::string& name) const {
  const std::string group = normalize(group_in);
  if (!exists(group)) return false;
  const htri_t e = H5Aexists_by_name(hid_t(id_), group.c_str(), name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

std::string H5File::attr_string(const std::string& group, const std::string& name) const {
  OpenAttr a = open_attr(*this, hid_t(id_), group, name);
  if (a.n != 1)
    throw IoError(path_ + ": attribute " + a.where + " has " + std::to_string(a.n) + " elements, expected 1");
  std::vector<std::string> out;
  std::string err;
  const hid_t aid = a.attr.get();
  auto rd = [aid](hid_t mt, void* buf) { return H5Aread(aid, mt, buf); };
  if (!read_string_values(a.type.get(), a.space.get(), a.n, rd, out, err))
    throw IoError(path_ + ": attribute " + a.where + " " + err);
  return out.at(0);
}

int64_t H5File::attr_int(const std::string& group, const std::string& name) const {
  OpenAttr a = open_attr(*this, hid_t(id_), group, name);
  if (H5Tget_class(a.type.get()) != H5T_INTEGER)
    throw IoError(path_ + ": attribute " + a.where + " is not an integer");
  if (a.n != 1)
    throw IoError(path_ + ": attribute " + a.where + " has " + std::to_string(a.n) + " elements, expected 1");
  int64_t v = 0;
  if (H5Aread(a.attr.get(), H5T_NATIVE_INT64, &v) < 0)
    throw IoError(path_ + ": " + with_detail("cannot read attribute " + a.where + " as int64"));
  return v;
}

double H5File::attr_double(const std::string& group, const std::string& name) const {
  OpenAttr a = open_attr(*this, hid_t(id_), group, name);
  const H5T_class_t cls = H5Tget_class(a.type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw IoError(path_ + ": attribute " + a.where + " is not numeric");
  if (a.n != 1)
    throw IoError(path_ + ": attribute " + a.where + " has " + std::to_string(a.n) + " elements, expected 1");
  double v = 0;
  if (H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v) < 0)
    throw IoError(path_ + ": " + with_detail("cannot read attribute " + a.where + " as float64"));
  return v;
}

}  // namespace wavres
