// HDF5 layer: round trips of every element type, conversions, attributes, and clean IoErrors for bad files.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "wavres/io/hdf5.hpp"

namespace fs = std::filesystem;
using wavres::H5File;
using wavres::IoError;

namespace {

// A fresh directory under the system temp dir, removed at the end of the test.
struct TmpDir {
  fs::path dir;
  TmpDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("wavres_test_hdf5_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

// Runs f, requires an IoError whose message is one line and contains every one of `needles`.
template <class F>
void require_io_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const IoError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("IoError: " << msg);
    BOOST_TEST(msg.find('\n') == std::string::npos);
    for (const auto& n : needles)
      BOOST_TEST(msg.find(n) != std::string::npos, "'" << msg << "' lacks '" << n << "'");
    return;
  }
  BOOST_ERROR("no IoError thrown (expected one mentioning " << needles.at(0) << ")");
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream o(path, std::ios::binary);
  o.write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hdf5)

BOOST_AUTO_TEST_CASE(round_trip_every_type) {
  TmpDir tmp;
  const std::string path = tmp.file("all.h5");
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0e-8f, std::numeric_limits<float>::max(), 0.0f, -0.0f};
  const std::vector<double> f64 = {3.141592653589793, -1e300, 5e-324, 42.0};
  const std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -1, 0, 1,
                                    std::numeric_limits<int32_t>::max(), 7};
  const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), -123456789012345LL, 0,
                                    std::numeric_limits<int64_t>::max()};
  const std::vector<uint8_t> u8 = {0, 1, 127, 128, 255, 32};
  const std::vector<uint64_t> u64 = {0, 1, (uint64_t(1) << 63) + 5, std::numeric_limits<uint64_t>::max()};
  const std::vector<std::string> strs = {"alpha", "",    "naïve – ünïcödé ✓", "with spaces and \"quotes\"",
                                         "x",     "last"};
  const double scalar = 2.718281828459045;
  const int64_t scalar_i = -77;
  {
    H5File f(path, H5File::Mode::create);
    BOOST_TEST(f.path() == path);
    f.write("/params/embed/token", f32.data(), {2, 3});
    f.write("/f64", f64.data(), {4});
    f.write("/ints/i32", i32.data(), {3, 1, 2});
    f.write("/ints/i64", i64.data(), {4});
    f.write("/ints/u8", u8.data(), {6});
    f.write("/ints/u64", u64.data(), {2, 2});
    f.write("/scalar/f64", &scalar, {});
    f.write("/scalar/i64", &scalar_i, {});
    f.write("/empty", f32.data(), {0, 5});
    f.write_strings("/meta/names", strs, {3, 2});
    // overwriting an existing dataset replaces it (new shape and type)
    f.write("/ints/replaced", f32.data(), {6});
    f.write("/ints/replaced", i64.data(), {2, 2});
  }
  H5File f(path, H5File::Mode::read);
  BOOST_TEST(f.exists("/params"));
  BOOST_TEST(f.exists("/params/embed"));
  BOOST_TEST(f.exists("/params/embed/token"));
  BOOST_TEST(f.exists("/"));
  BOOST_TEST(!f.exists("/params/nope"));
  BOOST_TEST(!f.exists("/nope/deeper/still"));
  BOOST_TEST(!f.exists("/params/embed/token/below_a_dataset"));

  BOOST_TEST(f.dims("/params/embed/token") == (std::vector<int64_t>{2, 3}));
  BOOST_TEST(f.dims("/ints/i32") == (std::vector<int64_t>{3, 1, 2}));
  BOOST_TEST(f.dims("/scalar/f64").empty());
  BOOST_TEST(f.dims("/empty") == (std::vector<int64_t>{0, 5}));
  BOOST_TEST(f.dims("/meta/names") == (std::vector<int64_t>{3, 2}));

  const auto rf32 = f.read_f32("/params/embed/token");
  BOOST_TEST(rf32 == f32, boost::test_tools::per_element());
  BOOST_TEST(std::signbit(rf32[5]));  // -0.0 survives bit for bit
  const auto rf64 = f.read_f64("/f64");
  BOOST_TEST(rf64 == f64, boost::test_tools::per_element());
  BOOST_TEST(f.read_i32("/ints/i32") == i32, boost::test_tools::per_element());
  BOOST_TEST(f.read_i64("/ints/i64") == i64, boost::test_tools::per_element());
  BOOST_TEST(f.read_u8("/ints/u8") == u8, boost::test_tools::per_element());
  BOOST_TEST(f.read_u64("/ints/u64") == u64, boost::test_tools::per_element());
  BOOST_TEST(f.read_f64("/scalar/f64") == std::vector<double>{scalar}, boost::test_tools::per_element());
  BOOST_TEST(f.read_i64("/scalar/i64") == std::vector<int64_t>{scalar_i}, boost::test_tools::per_element());
  BOOST_TEST(f.read_f32("/empty").empty());
  BOOST_TEST(f.read_strings("/meta/names") == strs, boost::test_tools::per_element());
  BOOST_TEST(f.dims("/ints/replaced") == (std::vector<int64_t>{2, 2}));
  BOOST_TEST(f.read_i64("/ints/replaced") == i64, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(read_converts_types) {
  TmpDir tmp;
  const std::string path = tmp.file("conv.h5");
  const std::vector<double> d = {0.1, -1.0 / 3.0, 1e10, 2.5};
  const std::vector<int32_t> i = {-5, 0, 300, 41};
  const std::vector<uint8_t> u = {0, 200, 255};
  {
    H5File f(path, H5File::Mode::create);
    f.write("/d", d.data(), {4});
    f.write("/i", i.data(), {2, 2});
    f.write("/u", u.data(), {3});
  }
  H5File f(path, H5File::Mode::read);
  const auto as_f32 = f.read_f32("/d");
  BOOST_REQUIRE_EQUAL(as_f32.size(), d.size());
  for (size_t k = 0; k < d.size(); ++k) BOOST_TEST(as_f32[k] == static_cast<float>(d[k]));  // exact rounding
  const auto i_as_i64 = f.read_i64("/i");
  const auto i_as_f64 = f.read_f64("/i");
  for (size_t k = 0; k < i.size(); ++k) {
    BOOST_TEST(i_as_i64[k] == int64_t(i[k]));
    BOOST_TEST(i_as_f64[k] == double(i[k]));
  }
  const auto u_as_i32 = f.read_i32("/u");
  BOOST_TEST(u_as_i32 == (std::vector<int32_t>{0, 200, 255}), boost::test_tools::per_element());
  require_io_error([&] { f.read_f32("/nope_not_here"); }, {path, "no dataset /nope_not_here"});
}

BOOST_AUTO_TEST_CASE(attributes) {
  TmpDir tmp;
  const std::string path = tmp.file("attrs.h5");
  {
    H5File f(path, H5File::Mode::create);
    f.set_attr("/", "format", std::string("wavres-checkpoint"));
    f.set_attr("/", "version", int64_t(3));
    f.set_attr("/run/config", "lr", 3e-4);                    // group created on demand
    f.set_attr("/run/config", "name", std::string("ünï ✓"));  // UTF-8
    f.set_attr("/run/config", "empty", std::string());
    f.set_attr("/run/config", "big", std::numeric_limits<int64_t>::min());
    f.set_attr("/run/config", "step", int64_t(10));
    f.set_attr("/run/config", "step", int64_t(20));  // replaced
    f.set_attr("/run/config", "kind", int64_t(1));
    f.set_attr("/run/config", "kind", std::string("now a string"));  // replaced with another type
    const float w[2] = {1.f, 2.f};
    f.write("/params/w", w, {2});
    f.set_attr("/params/w", "init", std::string("normal"));  // attributes on a dataset work too
    f.flush();
  }
  H5File f(path, H5File::Mode::read);
  BOOST_TEST(f.exists("/run/config"));
  BOOST_TEST(f.attr_string("/", "format") == "wavres-checkpoint");
  BOOST_TEST(f.attr_int("/", "version") == 3);
  BOOST_TEST(f.attr_double("/", "version") == 3.0);  // integer attributes read as double
  BOOST_TEST(f.attr_double("/run/config", "lr") == 3e-4);
  BOOST_TEST(f.attr_string("/run/config", "name") == "ünï ✓");
  BOOST_TEST(f.attr_string("/run/config", "empty") == "");
  BOOST_TEST(f.attr_int("/run/config", "big") == std::numeric_limits<int64_t>::min());
  BOOST_TEST(f.attr_int("/run/config", "step") == 20);
  BOOST_TEST(f.attr_string("/run/config", "kind") == "now a string");
  BOOST_TEST(f.attr_string("/params/w", "init") == "normal");
  BOOST_TEST(f.has_attr("/", "format"));
  BOOST_TEST(f.has_attr("/run/config", "lr"));
  BOOST_TEST(!f.has_attr("/run/config", "missing"));
  BOOST_TEST(!f.has_attr("/no/such/group", "lr"));
  require_io_error([&] { f.attr_int("/run/config", "missing"); }, {path, "missing"});
  require_io_error([&] { f.attr_string("/no/such/group", "x"); }, {path, "/no/such/group"});
  require_io_error([&] { f.attr_int("/run/config", "name"); }, {path, "name"});     // a string is no integer
  require_io_error([&] { f.attr_int("/run/config", "lr"); }, {path, "lr"});         // nor is a float
  require_io_error([&] { f.attr_string("/run/config", "step"); }, {path, "step"});  // an integer is no string
}

BOOST_AUTO_TEST_CASE(move_constructor_keeps_the_file_open) {
  TmpDir tmp;
  const std::string path = tmp.file("moved.h5");
  const int32_t v[3] = {4, 5, 6};
  {
    H5File a(path, H5File::Mode::create);
    H5File b(std::move(a));
    BOOST_TEST(b.path() == path);
    b.write("/v", v, {3});
  }  // a's destructor must not close b's handle (b writes before), nor double close
  std::vector<H5File> files;
  files.emplace_back(path, H5File::Mode::read);
  files.emplace_back(path, H5File::Mode::read);  // vector growth moves the first one
  for (const auto& f : files)
    BOOST_TEST(f.read_i32("/v") == (std::vector<int32_t>{4, 5, 6}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(flush_makes_the_file_readable_while_open) {
  TmpDir tmp;
  const std::string path = tmp.file("live.h5"), copy = tmp.file("copy.h5");
  H5File f(path, H5File::Mode::create);
  const double x[2] = {1.25, -8.5};
  f.write("/metrics/loss", x, {2});
  f.set_attr("/metrics", "step", int64_t(99));
  f.flush();
  fs::copy_file(path, copy);  // a snapshot of the bytes on disk while f is still open
  H5File c(copy, H5File::Mode::read);
  BOOST_TEST(c.read_f64("/metrics/loss") == (std::vector<double>{1.25, -8.5}),
             boost::test_tools::per_element());
  BOOST_TEST(c.attr_int("/metrics", "step") == 99);
}

BOOST_AUTO_TEST_CASE(errors_name_the_file_and_object) {
  TmpDir tmp;
  // missing file
  const std::string missing = tmp.file("does_not_exist.h5");
  require_io_error([&] { H5File f(missing, H5File::Mode::read); }, {missing});

  // random bytes
  const std::string junk = tmp.file("junk.h5");
  std::mt19937 gen(12345);
  std::string bytes(4096, '\0');
  for (auto& c : bytes) c = char(gen() & 0xff);
  write_bytes(junk, bytes);
  require_io_error([&] { H5File f(junk, H5File::Mode::read); }, {junk, "not an HDF5 file"});

  // empty file
  const std::string empty = tmp.file("empty.h5");
  write_bytes(empty, "");
  require_io_error([&] { H5File f(empty, H5File::Mode::read); }, {empty});

  // a valid file cut in half
  const std::string full = tmp.file("full.h5"), cut = tmp.file("cut.h5");
  {
    H5File f(full, H5File::Mode::create);
    std::vector<float> big(50000);
    for (size_t k = 0; k < big.size(); ++k) big[k] = float(k);
    f.write("/params/lm_head", big.data(), {250, 200});
    f.set_attr("/", "format", std::string("wavres"));
  }
  {
    H5File f(full, H5File::Mode::read);  // the intact file is fine
    BOOST_TEST(f.read_f32("/params/lm_head").size() == 50000u);
  }
  const uintmax_t size = fs::file_size(full);
  BOOST_REQUIRE(size > 200000u);
  for (const uintmax_t len : {size / 2, size - 1, uintmax_t(4096), uintmax_t(600), uintmax_t(100),
                              uintmax_t(12), uintmax_t(8), uintmax_t(3)}) {
    BOOST_TEST_MESSAGE("cut to " << len << " of " << size << " bytes");
    fs::remove(cut);
    fs::copy_file(full, cut);
    fs::resize_file(cut, len);
    require_io_error(
        [&] {
          H5File f(cut, H5File::Mode::read);
          f.read_f32("/params/lm_head");  // if opening were to succeed, reading must still fail cleanly
        },
        {cut});
  }

  // missing dataset, and wrong kinds of objects
  H5File f(full, H5File::Mode::read);
  require_io_error([&] { f.read_f32("/params/embed"); }, {full, "no dataset /params/embed"});
  require_io_error([&] { f.dims("/nothing/here"); }, {full, "/nothing/here"});
  require_io_error([&] { f.read_f32("/params"); }, {full, "/params"});                      // a group
  require_io_error([&] { f.read_strings("/params/lm_head"); }, {full, "/params/lm_head"});  // not strings
  // writing to a file opened for reading
  const float one = 1.f;
  require_io_error([&] { H5File(full, H5File::Mode::read).write("/x", &one, {1}); }, {full, "/x"});

  // bad arguments on write
  H5File w(tmp.file("w.h5"), H5File::Mode::create);
  require_io_error([&] { w.write_strings("/s", {"a", "b", "c"}, {2}); }, {w.path(), "/s"});
  require_io_error([&] { w.write("/neg", &one, {-1}); }, {w.path(), "/neg"});
  // creating a file in a directory that does not exist
  const std::string nodir = tmp.file("no_dir/x.h5");
  require_io_error([&] { H5File g(nodir, H5File::Mode::create); }, {nodir});
  // strings must not be readable as numbers
  w.write_strings("/s", {"1", "2"}, {2});
  require_io_error([&] { w.read_f64("/s"); }, {w.path(), "/s"});
}

// Mode::memory builds the file in RAM and close_into() writes it in one go: the same file as Mode::create,
// and a write that cannot happen is an IoError naming the destination, with HDF5 left with no open file.
BOOST_AUTO_TEST_CASE(memory_file_lists_types_and_writes_out) {
  TmpDir tmp;
  const std::string path = tmp.file("mem.h5");
  const std::vector<float> x = {1.f, 2.f, 3.f};
  const int64_t step = 9;
  const std::vector<uint8_t> vocab = {' ', 'a'};
  {
    H5File m(path, H5File::Mode::memory);
    m.write("/params/x", x.data(), {3});
    m.write("/train_state/step", &step, {});
    m.write("/vocab", vocab.data(), {2});
    m.set_attr("/config", "format", std::string("wavres-checkpoint"));
    BOOST_TEST(!fs::exists(path));  // nothing on disk before close_into
    m.close_into(path);
  }
  H5File f(path, H5File::Mode::read);
  BOOST_TEST(f.read_f32("/params/x") == x, boost::test_tools::per_element());
  BOOST_TEST(f.read_i64("/train_state/step").at(0) == 9);
  BOOST_TEST(f.attr_string("/config", "format") == "wavres-checkpoint");
  const std::vector<std::string> want = {"/params/x", "/train_state/step", "/vocab"};
  BOOST_TEST(f.datasets() == want, boost::test_tools::per_element());
  BOOST_TEST(f.dtype("/params/x") == "float32");
  BOOST_TEST(f.dtype("/train_state/step") == "int64");
  BOOST_TEST(f.dtype("/vocab") == "uint8");

  const std::string nodir = tmp.file("no_dir/x.h5");
  H5File m(nodir, H5File::Mode::memory);
  m.write("/params/x", x.data(), {3});
  require_io_error([&] { m.close_into(nodir); }, {nodir, "cannot be created", "No such file or directory"});
  BOOST_TEST(!fs::exists(nodir));
}

BOOST_AUTO_TEST_SUITE_END()
