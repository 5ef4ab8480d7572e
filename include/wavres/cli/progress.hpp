// A one-line terminal progress bar: "step 120/2000 [####......] loss 1.734 | 5.1k tok/s | ETA 04:12".
// On a TTY it redraws in place (\r); otherwise (CI, pipes) it prints a plain line every `every` updates.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace wavres {

class ProgressBar {
 public:
  ProgressBar(long total, FILE* out = stderr, int plain_every = 10);
  ~ProgressBar() { finish(); }  // an error message after the bar starts on its own line
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // Call once per step; `extra` is appended as is (e.g. "loss 1.734").
  void update(long done, double tokens_done, const std::string& extra);
  void message(const std::string& line);  // prints a line without breaking the bar
  void finish();

 private:
  long total_;
  FILE* out_;
  int plain_every_;
  bool tty_;
  bool drawn_ = false;
  long updates_ = 0;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "1:02:03" or "04:12"

}  // namespace wavres
