// The run directory (--out of train): one training at a time (a lock file), a fresh run never mixes with an
// old one, and log.csv is cut back to the checkpoint a run resumes from.
#pragma once
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include "wavres/io/hdf5.hpp"

namespace wavres {

constexpr const char* kLogHeader = "step,tokens,train_loss,val_loss,lr,tokens_per_s,grad_norm";

// An exclusive flock() on <dir>/.wavres.lock, which holds the owner's PID. The kernel drops the lock when its
// process dies (even by SIGKILL), so a lock file left by a dead process is simply taken over; the file is
// removed on a normal exit.
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& dir) : path_(dir + "/.wavres.lock") {
    for (;;) {
      fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd_ < 0) throw IoError(path_ + ": cannot create the run lock (" + std::strerror(errno) + ")");
      if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        const std::string owner = read_owner();
        ::close(fd_);
        fd_ = -1;
        if (e == EWOULDBLOCK)
          throw IoError(dir + ": another training is running in this directory (PID " + owner + ", lock " +
                        path_ + ")");
        throw IoError(path_ + ": cannot lock (" + std::strerror(e) + ")");
      }
      // A previous owner may have unlinked the file between our open and flock: then we hold a lock on a
      // file nobody else will open; start again on the current one.
      struct stat a {
      }, b{};
      if (::fstat(fd_, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
          a.st_dev == b.st_dev)
        break;
      ::close(fd_);
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
      throw IoError(path_ + ": cannot write the run lock (" + std::strerror(errno) + ")");
  }
  ~RunDirLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // while still locked: nobody can take a lock on the file being removed
    ::close(fd_);
  }
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  std::string read_owner() const {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string s(buf, n > 0 ? size_t(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? "unknown" : s;
  }
  std::string path_;
  int fd_ = -1;
};

// What a run left in a directory: log.csv and checkpoints (also unfinished ones, *.h5.tmp).
inline std::vector<std::string> run_files(const std::string& dir) {
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool ckpt = n.rfind("ckpt_", 0) == 0 && (ends_with(n, ".h5") || ends_with(n, ".h5.tmp"));
    if (n == "log.csv" || ckpt) out.push_back(e.path().string());
  }
  return out;
}

// A fresh run must not mix with the run already in `dir` (its log replaced, its checkpoints rotated away, a
// later --resume latest picking up the old run): it is refused, or with --overwrite the old run's files are
// removed first.
inline void prepare_fresh_run_dir(const std::string& dir, bool overwrite) {
  const auto old = run_files(dir);
  if (old.empty()) return;
  if (!overwrite)
    throw IoError(
        dir + ": holds another run (" + std::to_string(old.size()) +
        " files: log.csv, ckpt_*.h5); resume it with --resume latest, choose another --out, or pass "
        "--overwrite to replace it");
  for (const auto& p : old)
    if (::unlink(p.c_str()) != 0) throw IoError(p + ": cannot remove (" + std::strerror(errno) + ")");
}

// Cuts log.csv back to the rows of steps <= last_step, so a resumed run logs no step twice, and makes sure it
// starts with the header (a new --out, or a deleted log). A last line without its newline is a row torn by a
// kill and is dropped; any other line that is not a row is an error naming it (nothing is thrown away).
inline void cut_log(const std::string& path, int64_t last_step) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::string kept = std::string(kLogHeader) + "\n";
  size_t pos = 0;
  for (int line_no = 1; pos < text.size(); ++line_no) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // torn last row
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("step,", 0) == 0 || line.empty()) continue;  // the header is rewritten above
    const std::string first = line.substr(0, line.find(','));
    char* end = nullptr;
    errno = 0;
    const long long step = std::strtoll(first.c_str(), &end, 10);
    if (first.empty() || *end || errno || step < 1) {
      std::string shown = line.substr(0, 40);
      for (char& c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
      throw IoError(path + ": line " + std::to_string(line_no) + " is not a log row ('" + shown +
                    "'); move the file away or repair it");
    }
    if (step <= last_step) kept += line + "\n";
  }
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << kept;
  out.flush();
  if (!out) throw IoError(path + ": cannot be written (" + std::strerror(errno) + ")");
}

}  // namespace wavres
